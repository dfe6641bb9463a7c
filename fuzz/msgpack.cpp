// libFuzzer target: bytes read from Redis as MessagePack (a session blob, a binary payload),
// and the same bytes as base64 and as JSON. Invariants: a refusal says why; a decoded value
// encodes to bytes that decode to the same value, and encoding is then stable; a decoded
// session encodes to a session that decodes to the same fields; a value's JSON (binary as
// base64) is valid JSON that reads back; base64 decoding accepts exactly what base64
// encoding writes.
#include <cstdlib>

#include "wire/base64.hpp"
#include "wire/msgpack.hpp"

namespace {

void refusal_says_why(const walcast::Error& e) {
    if (e.message.empty()) std::abort();
}

// Limits for re-reading what was encoded from an accepted value: float32 grows to float64,
// and JSON escapes and base64 grow strings, so sizes get room; counts and depth do not.
walcast::MsgpackLimits roomy(const walcast::MsgpackLimits& l) {
    walcast::MsgpackLimits r = l;
    r.max_bytes = l.max_bytes * 8;
    r.max_string_bytes = l.max_string_bytes * 8;
    return r;
}

void check_value(std::string_view input, const walcast::MsgpackLimits& limits) {
    auto value = walcast::decode_msgpack(input, limits);
    if (!value) return refusal_says_why(value.error());

    const std::string bytes = walcast::encode_msgpack(*value);
    auto again = walcast::decode_msgpack(bytes, roomy(limits));
    if (!again || *again != *value) std::abort();
    if (walcast::encode_msgpack(*again) != bytes) std::abort();

    auto json = walcast::msgpack_value_to_json(*value, walcast::BinaryInJson::Base64);
    if (!json) {
        refusal_says_why(json.error());
    } else {
        auto read = walcast::json_to_msgpack_value(*json, roomy(limits));
        if (!read) std::abort();
    }
}

void check_session(std::string_view input) {
    auto session = walcast::decode_session(input);
    if (!session) return refusal_says_why(session.error());
    const std::string bytes = walcast::encode_session(session->session);
    auto again = walcast::decode_session(bytes, roomy(walcast::MsgpackLimits{}));
    if (!again) std::abort();
    const auto& a = session->session;
    const auto& b = again->session;
    if (a.sid != b.sid || a.pid != b.pid || a.rooms != b.rooms || a.data != b.data) std::abort();
    if (session->walcast.has_value() != again->walcast.has_value()) std::abort();
    if (session->walcast && (session->walcast->user != again->walcast->user ||
                             session->walcast->tenant != again->walcast->tenant ||
                             session->walcast->base != again->walcast->base))
        std::abort();
    if (walcast::encode_session_blob(b) != walcast::base64_encode(bytes)) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);

    check_value(input, walcast::MsgpackLimits{});
    walcast::MsgpackLimits small;
    small.max_bytes = 4096;
    small.max_depth = 4;
    small.max_string_bytes = 64;
    small.max_container_entries = 16;
    small.max_values = 64;
    check_value(input, small);
    check_session(input);

    // The input as the base64 text of a blob.
    auto blob = walcast::decode_session_blob(input);
    if (!blob) refusal_says_why(blob.error());
    auto decoded = walcast::base64_decode(input);
    if (decoded) {
        if (walcast::base64_encode(*decoded) != input) std::abort();
    } else {
        refusal_says_why(decoded.error());
    }
    if (*walcast::base64_decode(walcast::base64_encode(input)) != input) std::abort();

    // The input as JSON.
    auto from_json = walcast::json_to_msgpack_value(input);
    if (!from_json) {
        refusal_says_why(from_json.error());
    } else {
        auto back = walcast::decode_msgpack(walcast::encode_msgpack(*from_json), roomy(walcast::MsgpackLimits{}));
        if (!back || *back != *from_json) std::abort();
    }
    return 0;
}
