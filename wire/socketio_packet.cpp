// Engine.IO / Socket.IO packet parsing and encoding (see socketio_packet.hpp). Follows the
// grammar of the reference socket.io-parser: <type>[<nsp>,][<ackId>][<json>]. Pure; any thread.
#include "wire/socketio_packet.hpp"

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "decoder/json_text.hpp"

namespace walcast {

namespace {

// Deepest array/object nesting in `json`, counting only brackets outside strings. Stops
// early once `limit` is passed.
int json_depth(std::string_view json, int limit) {
    int depth = 0, deepest = 0;
    bool in_string = false, escaped = false;
    for (char c : json) {
        if (in_string) {
            if (escaped) escaped = false;
            else if (c == '\\') escaped = true;
            else if (c == '"') in_string = false;
            continue;
        }
        if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > deepest) deepest = depth;
            if (deepest > limit) return deepest;
        } else if (c == ']' || c == '}') {
            --depth;
        }
    }
    return deepest;
}

// Whether every string and key in `v` is well-formed UTF-8. JSON lets "\udc00" stand alone;
// decoded, a lone surrogate is bytes no UTF-8 reader accepts, which walcast would pass on in
// room names, logs and acks. Depth is bounded by the caller (kMaxJsonDepth).
bool strings_well_formed(const rapidjson::Value& v) {
    const auto ok = [](const rapidjson::Value& s) {
        return first_invalid_utf8(std::string_view(s.GetString(), s.GetStringLength())) == std::string_view::npos;
    };
    if (v.IsString()) return ok(v);
    if (v.IsArray()) {
        for (const auto& e : v.GetArray())
            if (!strings_well_formed(e)) return false;
    } else if (v.IsObject()) {
        for (const auto& m : v.GetObject())
            if (!ok(m.name) || !strings_well_formed(m.value)) return false;
    }
    return true;
}

PacketArg to_arg(const rapidjson::Value& v) {
    PacketArg arg;
    if (v.IsString()) {
        arg.is_string = true;
        arg.text.assign(v.GetString(), v.GetStringLength());
    } else {
        rapidjson::StringBuffer buffer;
        rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
        v.Accept(writer);
        arg.text.assign(buffer.GetString(), buffer.GetSize());
    }
    return arg;
}

const char* type_name(SioType t) {
    switch (t) {
    case SioType::Connect: return "CONNECT";
    case SioType::Disconnect: return "DISCONNECT";
    case SioType::Event: return "EVENT";
    case SioType::Ack: return "ACK";
    case SioType::ConnectError: return "CONNECT_ERROR";
    case SioType::BinaryEvent: return "BINARY_EVENT";
    case SioType::BinaryAck: return "BINARY_ACK";
    }
    return "?";
}

Result<ClientPacket> parse_socketio(std::string_view s) {
    ClientPacket p;
    p.eio = EioType::Message;
    if (s.empty()) return make_error("empty Socket.IO packet");
    if (s[0] < '0' || s[0] > '6') return make_error("unknown Socket.IO packet type");
    p.type = static_cast<SioType>(s[0] - '0');
    if (p.type == SioType::BinaryEvent || p.type == SioType::BinaryAck)
        return make_error("binary Socket.IO packets are not supported");
    if (p.type == SioType::ConnectError) return make_error("CONNECT_ERROR is sent by servers only");

    std::size_t i = 1;
    if (i < s.size() && s[i] == '/') {
        // The namespace runs to the first ',' or to the end of the packet.
        const std::size_t comma = s.find(',', i);
        const std::size_t end = comma == std::string_view::npos ? s.size() : comma;
        const std::string_view nsp = s.substr(i, end - i);
        if (nsp.size() > kMaxNamespaceBytes)
            return make_error("namespace longer than " + std::to_string(kMaxNamespaceBytes) + " bytes");
        for (char c : nsp)
            if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) return make_error("namespace has a control character");
        p.nsp.assign(nsp);
        i = comma == std::string_view::npos ? s.size() : comma + 1;
    }

    if (i < s.size() && s[i] >= '0' && s[i] <= '9') {
        std::uint64_t id = 0;
        for (; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i) {
            id = id * 10 + static_cast<std::uint64_t>(s[i] - '0');
            if (id > kMaxAckId) return make_error("ack id out of range");
        }
        if (p.type != SioType::Event && p.type != SioType::Ack)
            return make_error(std::string("ack id on a ") + type_name(p.type) + " packet");
        p.ack_id = id;
    }

    const std::string_view payload = s.substr(i);
    rapidjson::Document doc;
    if (!payload.empty()) {
        if (json_depth(payload, kMaxJsonDepth) > kMaxJsonDepth)
            return make_error("payload nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
        doc.Parse<rapidjson::kParseValidateEncodingFlag | rapidjson::kParseIterativeFlag>(payload.data(),
                                                                                           payload.size());
        if (doc.HasParseError())
            return make_error(std::string("payload is not valid JSON (byte ") + std::to_string(doc.GetErrorOffset()) +
                              ": " + rapidjson::GetParseError_En(doc.GetParseError()) + ")");
        if (!strings_well_formed(doc))
            return make_error("payload has a string that is not well-formed UTF-8 (a lone surrogate escape?)");
    }

    switch (p.type) {
    case SioType::Connect:
        if (payload.empty()) break;
        if (!doc.IsObject()) return make_error("CONNECT payload is not an object");
        p.has_auth = true;
        if (auto token = doc.FindMember("token"); token != doc.MemberEnd() && token->value.IsString())
            p.auth_token.emplace(token->value.GetString(), token->value.GetStringLength());
        // Connection-state recovery: the private session id and the last offset received.
        if (auto pid = doc.FindMember("pid"); pid != doc.MemberEnd() && pid->value.IsString())
            p.auth_pid.emplace(pid->value.GetString(), pid->value.GetStringLength());
        if (auto offset = doc.FindMember("offset"); offset != doc.MemberEnd() && offset->value.IsString())
            p.auth_offset.emplace(offset->value.GetString(), offset->value.GetStringLength());
        if (auto snap = doc.FindMember("snapshot"); snap != doc.MemberEnd() && snap->value.IsString())
            p.auth_snapshot.emplace(snap->value.GetString(), snap->value.GetStringLength());
        break;
    case SioType::Disconnect:
        if (!payload.empty()) return make_error("DISCONNECT carries a payload");
        break;
    case SioType::Event: {
        if (payload.empty()) return make_error("EVENT has no payload");
        if (!doc.IsArray()) return make_error("EVENT payload is not an array");
        if (doc.Empty()) return make_error("EVENT payload is an empty array");
        const rapidjson::Value& name = doc[0];
        if (!name.IsString()) return make_error("EVENT name is not a string");
        p.event.assign(name.GetString(), name.GetStringLength());
        if (is_reserved_event_name(p.event)) return make_error("EVENT uses the reserved name \"" + p.event + "\"");
        for (rapidjson::SizeType k = 1; k < doc.Size(); ++k) p.args.push_back(to_arg(doc[k]));
        break;
    }
    case SioType::Ack:
        if (!p.ack_id) return make_error("ACK has no id");
        if (payload.empty() || !doc.IsArray()) return make_error("ACK payload is not an array");
        for (const auto& v : doc.GetArray()) p.args.push_back(to_arg(v));
        break;
    default: break;  // refused above
    }
    return p;
}

}  // namespace

bool is_reserved_event_name(std::string_view name) {
    return name == "connect" || name == "connect_error" || name == "disconnect" || name == "disconnecting" ||
           name == "newListener" || name == "removeListener";
}

Result<ClientPacket> parse_client_packet(std::string_view frame, ClientChannel channel) {
    if (frame.empty()) return make_error("empty frame");
    ClientPacket p;
    if (channel == ClientChannel::UpgradeProbe) {
        // Before `5`, the new WebSocket only proves it works; the session's packets still
        // travel over polling.
        if (frame == "2probe") {
            p.eio = EioType::Ping;
            return p;
        }
        if (frame == "5") {
            p.eio = EioType::Upgrade;
            return p;
        }
        if (frame[0] == '5') return make_error("Engine.IO upgrade carries data (a client sends exactly 5)");
        if (frame[0] == '2') return make_error("Engine.IO ping on an upgrading WebSocket that is not the probe 2probe");
        if (frame[0] < '0' || frame[0] > '6') return make_error("unknown Engine.IO packet type");
        return make_error(std::string("Engine.IO packet type ") + frame[0] +
                          " on an upgrading WebSocket (only 2probe and 5 are valid before the upgrade completes)");
    }
    switch (frame[0]) {
    case '0': return make_error("Engine.IO open from a client (only the server opens)");
    case '1': p.eio = EioType::Close; return p;
    case '2':
        if (frame == "2probe") return make_error("Engine.IO probe 2probe outside a transport upgrade");
        return make_error("Engine.IO ping from a client (v4 heartbeats are sent by the server)");
    case '3': p.eio = EioType::Pong; return p;
    case '4': return parse_socketio(frame.substr(1));
    case '5':
        return make_error("Engine.IO upgrade outside a transport upgrade (only a WebSocket probing a polling session "
                          "sends it)");
    case '6': p.eio = EioType::Noop; return p;
    default: return make_error("unknown Engine.IO packet type");
    }
}

std::string encode_open(std::string_view sid, const std::vector<std::string>& upgrades, std::uint64_t ping_interval_ms,
                        std::uint64_t ping_timeout_ms, std::uint64_t max_payload) {
    std::string out = "0{\"sid\":";
    append_json_string(out, sid);
    out += ",\"upgrades\":[";
    for (std::size_t i = 0; i < upgrades.size(); ++i) {
        if (i) out += ',';
        append_json_string(out, upgrades[i]);
    }
    out += "],\"pingInterval\":";
    out += std::to_string(ping_interval_ms);
    out += ",\"pingTimeout\":";
    out += std::to_string(ping_timeout_ms);
    out += ",\"maxPayload\":";
    out += std::to_string(max_payload);
    out += '}';
    return out;
}

std::string encode_open(std::string_view sid, std::uint64_t ping_interval_ms, std::uint64_t ping_timeout_ms,
                        std::uint64_t max_payload) {
    return encode_open(sid, {}, ping_interval_ms, ping_timeout_ms, max_payload);
}

std::string encode_connect(std::string_view sid, std::string_view pid) {
    std::string out = "40{\"sid\":";
    append_json_string(out, sid);
    if (!pid.empty()) {
        out += ",\"pid\":";
        append_json_string(out, pid);
    }
    out += '}';
    return out;
}

std::string encode_connect_error(std::string_view nsp, std::string_view message) {
    std::string out = "44";
    if (nsp != "/") {
        out += nsp;
        out += ',';
    }
    out += "{\"message\":";
    append_json_string(out, message);
    out += '}';
    return out;
}

void append_event(std::string& out, std::string_view name, std::string_view payload_json, std::string_view offset) {
    out += "42[";
    append_json_string(out, name);
    out += ',';
    out += payload_json;
    if (!offset.empty()) {
        out += ',';
        append_json_string(out, offset);
    }
    out += ']';
}

std::string encode_event(std::string_view name, std::string_view payload_json, std::string_view offset) {
    std::string out;
    out.reserve(name.size() + payload_json.size() + offset.size() + 10);
    append_event(out, name, payload_json, offset);
    return out;
}

std::string encode_ack(std::uint64_t id, std::string_view payload_json) {
    std::string out = "43";
    out += std::to_string(id);
    out += '[';
    out += payload_json;
    out += ']';
    return out;
}

}  // namespace walcast
