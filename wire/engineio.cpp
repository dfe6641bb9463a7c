// Engine.IO v4 long-polling framing, query strings and error bodies (see engineio.hpp).
// Pure; any thread.
#include "wire/engineio.hpp"

#include <iterator>

#include "decoder/json_text.hpp"

namespace walcast {

namespace {

struct ErrorEntry {
    int code;
    int http_status;
    std::string_view message;
};

// Indexed by EngineError.
constexpr ErrorEntry kErrors[] = {
    {0, 400, "Transport unknown"},
    {1, 400, "Session ID unknown"},
    {2, 400, "Bad handshake method"},
    {3, 400, "Bad request"},
    {4, 403, "Forbidden"},
    {5, 400, "Unsupported protocol version"},
};

const ErrorEntry& entry(EngineError error) {
    const auto i = static_cast<std::size_t>(error);
    return kErrors[i < std::size(kErrors) ? i : static_cast<std::size_t>(EngineError::BadRequest)];
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// application/x-www-form-urlencoded decoding: `+` is a space, `%XY` the byte 0xXY. nullopt
// at a `%` not followed by two hex digits, with its offset in `bad_at`.
std::optional<std::string> form_decode(std::string_view text, std::size_t& bad_at) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (c == '+') {
            out.push_back(' ');
        } else if (c != '%') {
            out.push_back(c);
        } else {
            const int hi = i + 1 < text.size() ? hex_value(text[i + 1]) : -1;
            const int lo = i + 2 < text.size() ? hex_value(text[i + 2]) : -1;
            if (hi < 0 || lo < 0) {
                bad_at = i;
                return std::nullopt;
            }
            out.push_back(static_cast<char>(hi * 16 + lo));
            i += 2;
        }
    }
    return out;
}

}  // namespace

Result<std::vector<std::string_view>> split_polling_payload(std::string_view body, std::size_t max_packets) {
    if (body.empty()) return make_error("empty polling payload");
    std::vector<std::string_view> packets;
    std::size_t start = 0;
    for (;;) {
        const std::size_t number = packets.size() + 1;
        if (packets.size() == max_packets)
            return make_error("polling payload holds more than " + std::to_string(max_packets) + " packets (packet " +
                              std::to_string(number) + " starts at byte " + std::to_string(start) + ")");
        std::size_t end = body.find(kRecordSeparator, start);
        const bool last = end == std::string_view::npos;
        if (last) end = body.size();
        if (end == start) {
            if (start == 0) return make_error("polling packet 1 is empty (the payload starts with a separator)");
            if (last)
                return make_error("polling packet " + std::to_string(number) +
                                  " is empty (the payload ends with a separator, at byte " + std::to_string(start - 1) +
                                  ")");
            return make_error("polling packet " + std::to_string(number) + " is empty (separators at bytes " +
                              std::to_string(start - 1) + " and " + std::to_string(start) + ")");
        }
        if (body[start] == 'b')
            return make_error("polling packet " + std::to_string(number) + " (byte " + std::to_string(start) +
                              ") is binary (b<base64>): walcast neither sends nor takes binary data");
        packets.push_back(body.substr(start, end - start));
        if (last) return packets;
        start = end + 1;
    }
}

Result<std::vector<std::string_view>> read_polling_post(std::string_view body, std::size_t max_packets) {
    auto packets = split_polling_payload(body, max_packets);
    if (!packets) return packets;
    if (const std::size_t bad = first_invalid_utf8(body); bad != std::string_view::npos)
        return make_error("polling payload is not UTF-8 (byte " + std::to_string(bad) + ")");
    for (std::size_t k = 0; k < packets->size(); ++k) {
        const std::string_view packet = (*packets)[k];
        if (packet[0] < '0' || packet[0] > '6')
            return make_error("polling packet " + std::to_string(k + 1) + " (byte " +
                              std::to_string(packet.data() - body.data()) + ") has no Engine.IO packet type");
    }
    return packets;
}

void append_polling_packet(std::string& payload, std::string_view packet) {
    if (!payload.empty()) payload.push_back(kRecordSeparator);
    payload += packet;
}

std::string_view engine_error_message(EngineError error) { return entry(error).message; }

int engine_error_http_status(EngineError error) { return entry(error).http_status; }

std::string encode_engine_error(EngineError error, std::string_view message) {
    const ErrorEntry& e = entry(error);
    std::string out = "{\"code\":";
    out += std::to_string(e.code);
    out += ",\"message\":";
    append_json_string(out, message.empty() ? e.message : message);
    out += '}';
    return out;
}

Result<EngineQuery> parse_engine_query(std::string_view query) {
    if (query.size() > kMaxEngineQueryBytes)
        return make_error("query string of " + std::to_string(query.size()) + " bytes, over the " +
                          std::to_string(kMaxEngineQueryBytes) + "-byte limit");
    EngineQuery out;
    bool seen_eio = false, seen_transport = false, seen_sid = false;
    std::size_t pairs = 0;
    for (std::size_t pos = 0; pos <= query.size();) {
        std::size_t amp = query.find('&', pos);
        if (amp == std::string_view::npos) amp = query.size();
        const std::string_view pair = query.substr(pos, amp - pos);
        const std::size_t pair_at = pos;
        pos = amp + 1;
        if (pair.empty()) continue;
        if (++pairs > kMaxEngineQueryPairs)
            return make_error("query string holds more than " + std::to_string(kMaxEngineQueryPairs) +
                              " pairs (pair " + std::to_string(pairs) + " starts at byte " + std::to_string(pair_at) +
                              ")");

        const std::size_t eq = pair.find('=');
        const std::string_view raw_key = pair.substr(0, eq);
        const std::string_view raw_value = eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
        std::size_t bad_at = 0;
        // A key that does not decode cannot be one of ours: skipped like any other.
        const std::optional<std::string> key = form_decode(raw_key, bad_at);
        if (!key) continue;

        if (*key == "j") out.jsonp = true;
        std::optional<std::string>* slot = *key == "EIO"         ? &out.eio
                                           : *key == "transport" ? &out.transport
                                           : *key == "sid"       ? &out.sid
                                                                 : nullptr;
        if (!slot) continue;
        bool* seen = slot == &out.eio ? &seen_eio : slot == &out.transport ? &seen_transport : &seen_sid;

        const std::size_t value_at = pair_at + (eq == std::string_view::npos ? pair.size() : eq + 1);
        if (*seen)
            return make_error("query string gives " + *key + " twice (again at byte " + std::to_string(pair_at) + ")");
        *seen = true;
        std::optional<std::string> value = form_decode(raw_value, bad_at);
        if (!value)
            return make_error("query value of " + *key + " has a bad percent escape at byte " +
                              std::to_string(value_at + bad_at));
        for (std::size_t i = 0; i < value->size(); ++i) {
            const unsigned char c = static_cast<unsigned char>((*value)[i]);
            if (c < 0x20 || c >= 0x7F)
                return make_error("query value of " + *key + " holds a byte that is not printable ASCII (decoded byte " +
                                  std::to_string(i) + ")");
        }
        if (slot == &out.sid && value->empty()) continue;  // `sid=`: a handshake, as in the reference
        *slot = std::move(value);
    }
    return out;
}

std::optional<EngineTransport> engine_transport(std::string_view name) {
    if (name == "polling") return EngineTransport::Polling;
    if (name == "websocket") return EngineTransport::WebSocket;
    return std::nullopt;
}

}  // namespace walcast
