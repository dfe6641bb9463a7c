// libFuzzer target: an HTTP long-polling POST body, and the same bytes as a request's query
// string. Invariants: a refusal says why; an accepted body is refused by nothing a plain
// reading of the rules would refuse, and joining its packets with the separator gives the
// body back; an accepted query is within its bounds and its values are printable ASCII.
#include <cstdlib>

#include "wire/engineio.hpp"

namespace {

constexpr std::size_t kMaxPackets = 100;

// The rules, read plainly: split at every separator, then look at each piece.
bool acceptable(std::string_view body) {
    if (body.empty()) return false;
    std::size_t count = 0, start = 0;
    for (;;) {
        std::size_t end = body.find(walcast::kRecordSeparator, start);
        const bool last = end == std::string_view::npos;
        if (last) end = body.size();
        if (++count > kMaxPackets || end == start || body[start] == 'b') return false;
        if (last) return true;
        start = end + 1;
    }
}

bool printable(const std::optional<std::string>& value) {
    if (!value) return true;
    for (char c : *value)
        if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7F) return false;
    return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view body(reinterpret_cast<const char*>(data), size);

    auto packets = walcast::split_polling_payload(body, kMaxPackets);
    if (packets.ok() != acceptable(body)) std::abort();
    if (!packets) {
        if (packets.error().message.empty()) std::abort();
    } else {
        std::string joined;
        for (std::string_view packet : *packets) {
            if (packet.empty() || packet.find(walcast::kRecordSeparator) != std::string_view::npos) std::abort();
            walcast::append_polling_packet(joined, packet);
        }
        if (joined != body) std::abort();
    }

    auto query = walcast::parse_engine_query(body);
    if (!query) {
        if (query.error().message.empty()) std::abort();
    } else {
        if (size > walcast::kMaxEngineQueryBytes) std::abort();
        if (!printable(query->eio) || !printable(query->transport) || !printable(query->sid)) std::abort();
        if (query->sid && query->sid->empty()) std::abort();
    }
    return 0;
}
