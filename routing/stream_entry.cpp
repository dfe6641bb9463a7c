// Stream entry ids, walcast's tag, and BROADCAST entries of the Redis streams adapter (see
// stream_entry.hpp). `data` is read by one strict pass over the JSON text with an explicit
// stack (no recursion, so depth costs no stack), which validates it, picks out the fields
// that route the event, and copies the event's arguments token by token, whitespace
// dropped. Strings are copied with their escapes as written, so an argument reaches the
// browser exactly as Node's JSON.parse would have read it (a lone surrogate escape stays an
// escape instead of becoming bytes that are not UTF-8). Pure; any thread.
#include "routing/stream_entry.hpp"

#include <charconv>
#include <limits>

#include "decoder/json_text.hpp"

namespace walcast {

namespace {

// Decimal digits only, within `max`; false on anything else (empty, sign, overflow).
template <class T>
bool parse_decimal(std::string_view s, T max, T& out) {
    if (s.empty() || s.size() > 20) return false;
    std::uint64_t v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return false;
        const auto d = static_cast<std::uint64_t>(c - '0');
        if (v > (static_cast<std::uint64_t>(max) - d) / 10) return false;
        v = v * 10 + d;
    }
    out = static_cast<T>(v);
    return true;
}

}  // namespace

std::optional<StreamId> StreamId::parse(std::string_view text) {
    const auto dash = text.find('-');
    if (dash == std::string_view::npos) return std::nullopt;
    StreamId id;
    constexpr auto max = std::numeric_limits<std::uint64_t>::max();
    if (!parse_decimal(text.substr(0, dash), max, id.ms) || !parse_decimal(text.substr(dash + 1), max, id.seq))
        return std::nullopt;
    return id;
}

std::string StreamId::str() const { return std::to_string(ms) + "-" + std::to_string(seq); }

std::optional<StreamId> StreamId::next() const {
    constexpr auto max = std::numeric_limits<std::uint64_t>::max();
    if (seq != max) return StreamId{ms, seq + 1};
    if (ms != max) return StreamId{ms + 1, 0};
    return std::nullopt;
}

std::optional<WalcastTag> WalcastTag::parse(std::string_view text) {
    const auto first = text.find(':');
    if (first == std::string_view::npos) return std::nullopt;
    const auto second = text.find(':', first + 1);
    if (second == std::string_view::npos) return std::nullopt;
    auto lsn = Lsn::parse(text.substr(0, first));
    if (!lsn) return std::nullopt;
    WalcastTag tag;
    tag.end_lsn = *lsn;
    if (!parse_decimal(text.substr(first + 1, second - first - 1), std::numeric_limits<std::uint32_t>::max(), tag.index) ||
        !parse_decimal(text.substr(second + 1), std::numeric_limits<std::int64_t>::max(), tag.xid))
        return std::nullopt;
    return tag;
}

std::string WalcastTag::str() const {
    return end_lsn.str() + ":" + std::to_string(index) + ":" + std::to_string(xid);
}

std::vector<std::string> encode_broadcast_fields(std::string_view uid, std::string_view nsp, std::string_view event_name,
                                                 std::string_view payload_json, const std::vector<std::string>& rooms,
                                                 std::string_view walcast_tag) {
    std::string data;
    std::size_t room_bytes = 0;
    for (const std::string& r : rooms) room_bytes += r.size() + 3;
    data.reserve(96 + event_name.size() + payload_json.size() + room_bytes);
    data += R"({"packet":{"type":2,"data":[)";
    append_json_string(data, event_name);
    if (!payload_json.empty()) {
        data += ',';
        data += payload_json;
    }
    data += R"(]},"opts":{"rooms":[)";
    for (std::size_t i = 0; i < rooms.size(); ++i) {
        if (i) data += ',';
        append_json_string(data, rooms[i]);
    }
    data += R"(],"except":[],"flags":{}}})";

    std::vector<std::string> fields;
    fields.reserve(10);
    fields.emplace_back("uid");
    fields.emplace_back(uid);
    fields.emplace_back("nsp");
    fields.emplace_back(nsp);
    fields.emplace_back("type");
    fields.emplace_back(std::to_string(kBroadcastMessageType));
    fields.emplace_back("data");
    fields.push_back(std::move(data));
    if (!walcast_tag.empty()) {
        fields.emplace_back("walcast");
        fields.emplace_back(walcast_tag);
    }
    return fields;
}

namespace {

std::string limit_text(const char* name, std::size_t value) {
    return std::string(" (limit ") + name + " = " + std::to_string(value) + ")";
}

// Event names Socket.IO keeps for itself; a Node server refuses to emit them.
bool is_reserved_event(std::string_view name) {
    return name == "connect" || name == "connect_error" || name == "disconnect" || name == "disconnecting" ||
           name == "newListener" || name == "removeListener";
}

constexpr bool is_json_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// Bytes of a JSON string copied without a look: printable ASCII other than '"' and '\\'.
struct PlainTable {
    bool plain[256];
    constexpr PlainTable() : plain() {
        for (int c = 0x20; c < 0x80; ++c) plain[c] = c != '"' && c != '\\';
    }
};
constexpr PlainTable kPlain{};

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

void append_utf8(std::string& out, std::uint32_t cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
}

// The text of a JSON string literal already validated by the scanner (quotes included);
// nullopt when it escapes a lone UTF-16 surrogate, which has no UTF-8 form.
std::optional<std::string> decode_json_string(std::string_view lit) {
    std::string out;
    out.reserve(lit.size() - 2);
    const std::size_t end = lit.size() - 1;
    const auto read4 = [&](std::size_t at) {
        std::uint32_t v = 0;
        for (std::size_t k = 0; k < 4; ++k) v = v << 4 | static_cast<std::uint32_t>(hex_value(lit[at + k]));
        return v;
    };
    for (std::size_t i = 1; i < end;) {
        if (lit[i] != '\\') {
            out += lit[i++];
            continue;
        }
        const char e = lit[i + 1];
        i += 2;
        switch (e) {
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
            std::uint32_t cp = read4(i);
            i += 4;
            if (cp >= 0xDC00 && cp <= 0xDFFF) return std::nullopt;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (i + 6 > end || lit[i] != '\\' || lit[i + 1] != 'u') return std::nullopt;
                const std::uint32_t low = read4(i + 2);
                if (low < 0xDC00 || low > 0xDFFF) return std::nullopt;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                i += 6;
            }
            append_utf8(out, cp);
            break;
        }
        default: out += e; break;  // '"', '\\', '/'
        }
    }
    return out;
}

// What a value of `data` is to a BROADCAST, by where it sits.
enum class Role : std::uint8_t {
    Root,        // data itself
    Packet,      // data.packet
    PacketType,  // data.packet.type
    PacketData,  // data.packet.data
    EventName,   // data.packet.data[0]
    Arg,         // data.packet.data[1..]
    InArg,       // anything inside an Arg
    Opts,        // data.opts
    Rooms,       // data.opts.rooms
    Except,      // data.opts.except
    RoomName,    // data.opts.rooms[k]
    ExceptName,  // data.opts.except[k]
    Flags,       // data.opts.flags
    Other,       // ignored, only validated
};

bool copied(Role r) { return r == Role::Arg || r == Role::InArg; }

enum class Kind : std::uint8_t { Object, Array, String, Number, Literal };

const char* kind_name(Kind k) {
    switch (k) {
    case Kind::Object: return "an object";
    case Kind::Array: return "an array";
    case Kind::String: return "a string";
    case Kind::Number: return "a number";
    case Kind::Literal: return "true, false or null";
    }
    return "?";
}

// One pass over `data`: syntax, limits and the shape of the fields walcast reads, in text
// order. What can only be judged at the end (a missing key, the packet type) is left in
// the public members for decode_entry.
class DataScanner {
public:
    DataScanner(std::string_view data, const StreamEntryLimits& limits, BroadcastEntry& out)
        : s_(data), limits_(limits), out_(out) {}

    std::optional<Error> run();

    bool packet_seen = false;
    bool packet_type_seen = false;
    std::string_view packet_type;  // the number's text
    bool packet_id = false;
    bool packet_data_seen = false;
    std::size_t packet_data_size = 0;
    bool request_id = false;
    bool opts_seen = false;
    bool rooms_seen = false;
    bool except_seen = false;

private:
    struct Frame {
        bool object;
        Role role;
        std::size_t count = 0;     // elements or members so far
        std::uint32_t seen = 0;    // keys read in this object (bits, for repeats)
    };

    Error fail(const std::string& what, std::size_t at) const {
        return make_error("data: " + what + " at byte " + std::to_string(at));
    }

    std::optional<Error> scan_string(std::size_t& i) const;
    std::optional<Error> scan_number(std::size_t& i) const;
    std::optional<Error> start_value(Role role, Kind kind, std::size_t at);
    std::optional<Error> take_scalar(Role role, Kind kind, std::size_t at, std::string_view text);
    std::optional<Error> key_role(Frame& object, std::string_view key_literal, std::size_t at, Role& role);
    std::optional<Error> take_name(Role role, std::size_t at, std::string_view literal);
    Role element_role(const Frame& array) const;

    std::string_view s_;
    const StreamEntryLimits& limits_;
    BroadcastEntry& out_;
    std::vector<Frame> stack_;
};

std::optional<Error> DataScanner::scan_string(std::size_t& i) const {
    const std::size_t start = i;
    const std::size_t n = s_.size();
    std::size_t j = i + 1;
    for (;;) {
        while (j < n && kPlain.plain[static_cast<unsigned char>(s_[j])]) ++j;
        if (j >= n) return fail("unterminated string", start);
        const auto c = static_cast<unsigned char>(s_[j]);
        if (c == '"') {
            i = j + 1;
            return std::nullopt;
        }
        if (c == '\\') {
            if (j + 1 >= n) return fail("unterminated string", start);
            const char e = s_[j + 1];
            if (e == 'u') {
                if (j + 6 > n) return fail("unterminated string", start);
                for (std::size_t k = 2; k < 6; ++k)
                    if (hex_value(s_[j + k]) < 0) return fail("invalid \\u escape", j);
                j += 6;
            } else if (e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' || e == 'n' || e == 'r' || e == 't') {
                j += 2;
            } else {
                return fail("invalid escape", j);
            }
        } else if (c < 0x20) {
            return fail("control character in a string", j);
        } else if (const std::size_t len = json_text_detail::utf8_sequence(s_, j)) {
            j += len;
        } else {
            return fail("invalid UTF-8 in a string", j);
        }
    }
}

std::optional<Error> DataScanner::scan_number(std::size_t& i) const {
    const std::size_t start = i, n = s_.size();
    std::size_t j = i;
    const auto digit = [&](std::size_t k) { return k < n && s_[k] >= '0' && s_[k] <= '9'; };
    if (j < n && s_[j] == '-') ++j;
    if (!digit(j)) return fail("invalid number", start);
    if (s_[j] == '0') ++j;
    else while (digit(j)) ++j;
    if (j < n && s_[j] == '.') {
        ++j;
        if (!digit(j)) return fail("invalid number", start);
        while (digit(j)) ++j;
    }
    if (j < n && (s_[j] == 'e' || s_[j] == 'E')) {
        ++j;
        if (j < n && (s_[j] == '+' || s_[j] == '-')) ++j;
        if (!digit(j)) return fail("invalid number", start);
        while (digit(j)) ++j;
    }
    i = j;
    return std::nullopt;
}

// Checks a value's kind against its place; notes the places that only need to exist.
std::optional<Error> DataScanner::start_value(Role role, Kind kind, std::size_t at) {
    const auto want = [&](Kind expected, const char* what) -> std::optional<Error> {
        if (kind == expected) return std::nullopt;
        return fail(std::string(what) + " is " + kind_name(kind) + ", not " + kind_name(expected), at);
    };
    switch (role) {
    case Role::Root: return want(Kind::Object, "data");
    case Role::Packet: return want(Kind::Object, "packet");
    case Role::PacketType: return want(Kind::Number, "packet.type");
    case Role::PacketData: return want(Kind::Array, "packet.data");
    case Role::EventName: return want(Kind::String, "packet.data[0], the event name,");
    case Role::Opts: return want(Kind::Object, "opts");
    case Role::Rooms: return want(Kind::Array, "opts.rooms");
    case Role::Except: return want(Kind::Array, "opts.except");
    case Role::RoomName: return want(Kind::String, "a room in opts.rooms");
    case Role::ExceptName: return want(Kind::String, "a room in opts.except");
    case Role::Flags: return want(Kind::Object, "opts.flags");
    case Role::Arg:
        if (out_.arg_count++ > 0) out_.args_json += ',';
        return std::nullopt;
    case Role::InArg:
    case Role::Other: return std::nullopt;
    }
    return std::nullopt;
}

std::optional<Error> DataScanner::take_name(Role role, std::size_t at, std::string_view literal) {
    const char* what = role == Role::EventName ? "the event name" : role == Role::RoomName ? "a room in opts.rooms"
                                                                                        : "a room in opts.except";
    if (role != Role::EventName) {
        std::vector<std::string>& list = role == Role::RoomName ? out_.rooms : out_.except;
        if (list.size() >= limits_.max_rooms)
            return fail(std::string(role == Role::RoomName ? "opts.rooms" : "opts.except") + " holds more than " +
                            std::to_string(limits_.max_rooms) + " rooms" + limit_text("max_rooms", limits_.max_rooms),
                        at);
    }
    // A decoded name is never longer than its literal: only long literals are decoded to
    // be measured.
    std::optional<std::string> name = decode_json_string(literal);
    if (!name) return fail(std::string(what) + " escapes a lone UTF-16 surrogate", at);
    if (name->size() > limits_.max_name_bytes)
        return fail(std::string(what) + " is longer than " + std::to_string(limits_.max_name_bytes) + " bytes" +
                        limit_text("max_name_bytes", limits_.max_name_bytes),
                    at);
    if (role == Role::EventName) {
        if (is_reserved_event(*name)) return fail("the event name \"" + *name + "\" is reserved by Socket.IO", at);
        out_.event = std::move(*name);
    } else {
        (role == Role::RoomName ? out_.rooms : out_.except).push_back(std::move(*name));
    }
    return std::nullopt;
}

std::optional<Error> DataScanner::take_scalar(Role role, Kind kind, std::size_t at, std::string_view text) {
    if (auto e = start_value(role, kind, at)) return e;
    switch (role) {
    case Role::PacketType: packet_type = text; break;
    case Role::EventName:
    case Role::RoomName:
    case Role::ExceptName: return take_name(role, at, text);
    case Role::Arg:
    case Role::InArg: out_.args_json += text; break;
    default: break;
    }
    return std::nullopt;
}

// The role of the value after `key_literal` in `object`; a repeated key among those that
// matter is refused (JSON.parse would keep the last one, silently).
std::optional<Error> DataScanner::key_role(Frame& object, std::string_view key_literal, std::size_t at, Role& role) {
    if (copied(object.role)) {
        role = Role::InArg;
        return std::nullopt;
    }
    role = Role::Other;
    if (object.role != Role::Root && object.role != Role::Packet && object.role != Role::Opts && object.role != Role::Flags)
        return std::nullopt;
    // Keys are compared decoded: "pa\u0063ket" is "packet" to JSON.parse too.
    const std::optional<std::string> decoded = key_literal.find('\\') == std::string_view::npos
                                                   ? std::optional<std::string>(key_literal.substr(1, key_literal.size() - 2))
                                                   : decode_json_string(key_literal);
    if (!decoded) return std::nullopt;
    const std::string& key = *decoded;
    int bit = -1;
    switch (object.role) {
    case Role::Root:
        if (key == "packet") { role = Role::Packet; bit = 0; packet_seen = true; }
        else if (key == "opts") { role = Role::Opts; bit = 1; opts_seen = true; }
        else if (key == "requestId") { bit = 2; request_id = true; }
        break;
    case Role::Packet:
        if (key == "type") { role = Role::PacketType; bit = 0; packet_type_seen = true; }
        else if (key == "data") { role = Role::PacketData; bit = 1; packet_data_seen = true; }
        else if (key == "id") { bit = 2; packet_id = true; }
        break;
    case Role::Opts:
        if (key == "rooms") { role = Role::Rooms; bit = 0; rooms_seen = true; }
        else if (key == "except") { role = Role::Except; bit = 1; except_seen = true; }
        else if (key == "flags") { role = Role::Flags; bit = 2; }
        break;
    case Role::Flags:
        if (key == "volatile") { bit = 0; out_.volatile_flag = true; }
        break;
    default: break;
    }
    if (bit >= 0) {
        if (object.seen & (1u << bit)) return fail("the key \"" + key + "\" appears twice in one object", at);
        object.seen |= 1u << bit;
    }
    return std::nullopt;
}

Role DataScanner::element_role(const Frame& array) const {
    switch (array.role) {
    case Role::PacketData: return array.count == 0 ? Role::EventName : Role::Arg;
    case Role::Rooms: return Role::RoomName;
    case Role::Except: return Role::ExceptName;
    case Role::Arg:
    case Role::InArg: return Role::InArg;
    default: return Role::Other;
    }
}

std::optional<Error> DataScanner::run() {
    enum class Want : std::uint8_t { Value, FirstValueOrEnd, FirstKeyOrEnd, Key, Next };
    const std::size_t n = s_.size();
    std::size_t i = 0;
    Want want = Want::Value;
    Role role = Role::Root;  // of the value to come
    for (;;) {
        while (i < n && is_json_space(s_[i])) ++i;
        if (want == Want::Next && stack_.empty()) {
            if (i != n) return fail("characters after the JSON object", i);
            return std::nullopt;
        }
        if (i >= n) return fail("the JSON text ends early", i);
        const char c = s_[i];
        const std::size_t at = i;

        if (want == Want::FirstKeyOrEnd || want == Want::FirstValueOrEnd || want == Want::Next) {
            Frame& top = stack_.back();
            const char close = top.object ? '}' : ']';
            if (c == close) {
                if (copied(top.role)) out_.args_json += close;
                if (top.role == Role::PacketData) packet_data_size = top.count + (want == Want::Next ? 1 : 0);
                stack_.pop_back();
                ++i;
                want = Want::Next;
                continue;
            }
            if (want == Want::Next) {
                if (c != ',') return fail(top.object ? "expected ',' or '}'" : "expected ',' or ']'", at);
                if (copied(top.role)) out_.args_json += ',';
                ++i;
                if (top.object) {
                    want = Want::Key;
                } else {
                    ++top.count;
                    role = element_role(top);
                    want = Want::Value;
                }
                continue;
            }
            want = top.object ? Want::Key : Want::Value;
        }

        if (want == Want::Key) {
            if (c != '"') return fail("expected a string key", at);
            if (auto e = scan_string(i)) return e;
            Frame& top = stack_.back();
            const std::string_view key = s_.substr(at, i - at);
            if (auto e = key_role(top, key, at, role)) return e;
            if (copied(top.role)) out_.args_json += key;
            while (i < n && is_json_space(s_[i])) ++i;
            if (i >= n) return fail("the JSON text ends early", i);
            if (s_[i] != ':') return fail("expected ':'", i);
            if (copied(top.role)) out_.args_json += ':';
            ++i;
            ++top.count;
            want = Want::Value;
            continue;
        }

        // A value.
        if (c == '{' || c == '[') {
            const Kind kind = c == '{' ? Kind::Object : Kind::Array;
            if (stack_.size() >= limits_.max_json_depth)
                return fail("nested deeper than " + std::to_string(limits_.max_json_depth) + " levels" +
                                limit_text("max_json_depth", limits_.max_json_depth),
                            at);
            if (auto e = start_value(role, kind, at)) return e;
            if (copied(role)) out_.args_json += c;
            stack_.push_back(Frame{kind == Kind::Object, role});
            ++i;
            if (kind == Kind::Object) {
                want = Want::FirstKeyOrEnd;
            } else {
                role = element_role(stack_.back());
                want = Want::FirstValueOrEnd;
            }
            continue;
        }
        Kind kind;
        if (c == '"') {
            kind = Kind::String;
            if (auto e = scan_string(i)) return e;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            kind = Kind::Number;
            if (auto e = scan_number(i)) return e;
        } else {
            kind = Kind::Literal;
            const std::string_view rest = s_.substr(i);
            std::size_t len = 0;
            if (rest.substr(0, 4) == "true" || rest.substr(0, 4) == "null") len = 4;
            else if (rest.substr(0, 5) == "false") len = 5;
            else return fail("unexpected character", at);
            i += len;
        }
        if (auto e = take_scalar(role, kind, at, s_.substr(at, i - at))) return e;
        want = Want::Next;
    }
}

// The MessageType in `type`: canonical decimal (no sign, no leading zero), below 10^9.
std::optional<int> parse_message_type(std::string_view s) {
    if (s.empty() || s.size() > 9 || (s.size() > 1 && s[0] == '0')) return std::nullopt;
    int v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return std::nullopt;
        v = v * 10 + (c - '0');
    }
    return v;
}

bool printable_ascii(std::string_view s) {
    for (char c : s)
        if (c < 0x21 || c > 0x7E) return false;
    return true;
}

bool valid_utf8_without_controls(std::string_view s) {
    for (std::size_t i = 0; i < s.size();) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c < 0x80) {
            if (c < 0x20 || c == 0x7F) return false;
            ++i;
        } else if (const std::size_t n = json_text_detail::utf8_sequence(s, i)) {
            i += n;
        } else {
            return false;
        }
    }
    return true;
}

bool is_event_type(std::string_view number) {
    if (number == "2") return true;
    // JSON.parse reads 2.0 and 2e0 as 2 too.
    double v = 0;
    const auto r = std::from_chars(number.data(), number.data() + number.size(), v);
    return r.ec == std::errc() && r.ptr == number.data() + number.size() && v == 2.0;
}

}  // namespace

Result<DecodedEntry> decode_entry(const std::vector<std::pair<std::string_view, std::string_view>>& fields,
                                  const StreamEntryLimits& limits) {
    if (fields.size() > limits.max_fields)
        return make_error("stream entry: " + std::to_string(fields.size()) + " fields" +
                          limit_text("max_fields", limits.max_fields));
    const std::string_view* uid = nullptr;
    const std::string_view* nsp = nullptr;
    const std::string_view* type = nullptr;
    const std::string_view* data = nullptr;
    const std::string_view* tag = nullptr;
    for (const auto& [name, value] : fields) {
        const std::string_view** slot = name == "uid"       ? &uid
                                        : name == "nsp"     ? &nsp
                                        : name == "type"    ? &type
                                        : name == "data"    ? &data
                                        : name == "walcast" ? &tag
                                                            : nullptr;
        if (!slot) continue;  // unknown fields are ignored, as Node ignores them
        if (*slot) return make_error("stream entry: the field " + std::string(name) + " appears twice");
        *slot = &value;
    }

    DecodedEntry decoded;
    BroadcastEntry& e = decoded.entry;
    if (!uid) return make_error("stream entry: no uid field");
    if (uid->empty() || uid->size() > limits.max_uid_bytes || !printable_ascii(*uid))
        return make_error("stream entry: uid is not 1 to " + std::to_string(limits.max_uid_bytes) +
                          " printable ASCII characters");
    e.uid.assign(*uid);
    if (!nsp) return make_error("stream entry: no nsp field");
    if (nsp->empty() || nsp->size() > limits.max_nsp_bytes || !valid_utf8_without_controls(*nsp))
        return make_error("stream entry: nsp is not 1 to " + std::to_string(limits.max_nsp_bytes) +
                          " bytes of UTF-8 without control characters");
    e.nsp.assign(*nsp);
    if (!type) return make_error("stream entry: no type field");
    const std::optional<int> message_type = parse_message_type(*type);
    if (!message_type) return make_error("stream entry: type is not a decimal number");
    e.type = *message_type;
    if (tag) {
        e.walcast = WalcastTag::parse(*tag);
        if (!e.walcast) return make_error("stream entry: the walcast field is not <lsn>:<index>:<xid>");
    }

    if (e.type != kBroadcastMessageType) {
        decoded.kind = EntryKind::NotBroadcast;
        return decoded;
    }
    if (!data) return make_error("stream entry: BROADCAST without a data field");
    const auto unrelayable = [&](std::string reason) {
        DecodedEntry u;
        u.kind = EntryKind::Unrelayable;
        u.reason = std::move(reason);
        u.entry.uid = std::move(e.uid);
        u.entry.nsp = std::move(e.nsp);
        u.entry.type = e.type;
        u.entry.walcast = e.walcast;
        return u;
    };
    // The adapter's rule: JSON when it starts with '{', base64 msgpack otherwise.
    if (data->empty() || (*data)[0] != '{') return unrelayable("binary payload, skipped");
    if (data->size() > limits.max_data_bytes)
        return make_error("stream entry: data of " + std::to_string(data->size()) + " bytes" +
                          limit_text("max_data_bytes", limits.max_data_bytes));

    DataScanner scan(*data, limits, e);
    if (auto error = scan.run()) return make_error("stream entry: " + error->message);

    if (scan.request_id) return unrelayable("acknowledgement requested (requestId), skipped");
    if (!scan.packet_seen) return make_error("stream entry: data has no packet");
    if (!scan.packet_type_seen) return make_error("stream entry: packet has no type");
    if (!is_event_type(scan.packet_type)) {
        const std::string name = scan.packet_type == "5" ? " (BINARY_EVENT)" : "";
        return unrelayable("packet type " + std::string(scan.packet_type) + name + " is not EVENT (2), skipped");
    }
    if (scan.packet_id) return unrelayable("acknowledgement requested (packet id), skipped");
    if (!scan.packet_data_seen) return make_error("stream entry: packet has no data");
    if (scan.packet_data_size == 0) return make_error("stream entry: packet.data is empty (no event name)");
    if (!scan.opts_seen) return make_error("stream entry: data has no opts");
    if (!scan.rooms_seen) return make_error("stream entry: opts has no rooms");
    if (!scan.except_seen) return make_error("stream entry: opts has no except");
    decoded.kind = EntryKind::Broadcast;
    return decoded;
}

}  // namespace walcast
