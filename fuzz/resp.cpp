// libFuzzer target: a stream of bytes from a Redis server, parsed as RESP2 replies under the
// default limits and under small ones. Invariants: fed in one call, split at points drawn
// from the input, or (for short inputs) byte by byte, the same bytes give the same replies
// and the same refusal; a refusal says why and where; a reply encodes back to bytes that
// parse to the same reply; an incomplete reply never holds more than max_reply_bytes.
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "wire/resp.hpp"

namespace {

struct Outcome {
    std::vector<walcast::RespValue> replies;
    std::optional<std::string> error;

    bool operator==(const Outcome& o) const { return replies == o.replies && error == o.error; }
};

// Feeds `input` in pieces whose sizes come from `next_size`, taking replies as they come.
template <class NextSize>
Outcome run(std::string_view input, const walcast::RespLimits& limits, NextSize next_size) {
    walcast::RespParser parser(limits);
    Outcome out;
    std::size_t at = 0;
    while (at < input.size()) {
        const std::size_t n = std::min(next_size(), input.size() - at);
        auto r = parser.feed(input.substr(at, n));
        at += n;
        walcast::RespValue v;
        std::size_t taken = 0;
        for (; parser.next(v); ++taken) out.replies.push_back(std::move(v));
        if (!r) {
            const std::string& m = r.error().message;
            if (m.rfind("RESP: ", 0) != 0 || m.find(" at byte ") == std::string::npos) std::abort();
            if (!parser.failed()) std::abort();
            out.error = m;
            break;
        }
        if (*r != taken) std::abort();  // the count is what was queued
        if (parser.buffered() > limits.max_reply_bytes) std::abort();
    }
    return out;
}

void check(std::string_view input, const walcast::RespLimits& limits) {
    const Outcome whole = run(input, limits, [&] { return input.size() + 1; });

    // Split points from a generator seeded by the input, so a crash reproduces.
    std::uint64_t state = 1469598103934665603ULL;
    for (unsigned char c : input) state = (state ^ c) * 1099511628211ULL;
    const Outcome split = run(input, limits, [&] {
        state = state * 6364136223846793005ULL + 1442695040888963407ULL;
        const std::uint64_t r = state >> 33;
        return static_cast<std::size_t>(r % 4 == 0 ? r % 4096 + 1 : r % 7 + 1);
    });
    if (!(split == whole)) std::abort();
    if (input.size() <= 4096) {
        const Outcome bytewise = run(input, limits, [] { return std::size_t{1}; });
        if (!(bytewise == whole)) std::abort();
    }

    for (const walcast::RespValue& v : whole.replies) {
        walcast::RespParser again(limits);
        const std::string bytes = walcast::encode_reply(v);
        auto r = again.feed(bytes);
        walcast::RespValue back;
        if (!r || *r != 1 || !again.next(back) || back != v) std::abort();
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    check(input, walcast::RespLimits{});

    walcast::RespLimits small;
    small.max_bulk_bytes = 64;
    small.max_array_elements = 16;
    small.max_depth = 4;
    small.max_line_bytes = 32;
    small.max_reply_bytes = 1024;
    small.max_reply_values = 64;
    check(input, small);
    return 0;
}
