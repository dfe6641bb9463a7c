// MessagePack decoding, encoding, the JSON bridge and the adapter's session blob (see
// msgpack.hpp). The decoder keeps unfinished containers on an explicit stack and checks
// every declared length against the bytes left before allocating, so a 5-byte header cannot
// make it reserve gigabytes. Pure; any thread.
#include "wire/msgpack.hpp"

#include <rapidjson/encodedstream.h>
#include <rapidjson/error/en.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>

#include "decoder/json_text.hpp"
#include "wire/base64.hpp"

namespace walcast {

MsgValue MsgValue::nil() { return MsgValue{}; }

MsgValue MsgValue::of_bool(bool b) {
    MsgValue v;
    v.type = Type::Bool;
    v.boolean = b;
    return v;
}

MsgValue MsgValue::of_int(std::int64_t n) {
    MsgValue v;
    v.type = Type::Int;
    v.int_value = n;
    return v;
}

MsgValue MsgValue::of_uint(std::uint64_t n) {
    MsgValue v;
    v.type = Type::UInt;
    v.uint_value = n;
    return v;
}

MsgValue MsgValue::of_float(double d) {
    MsgValue v;
    v.type = Type::Float;
    v.float_value = d;
    return v;
}

MsgValue MsgValue::of_string(std::string s) {
    MsgValue v;
    v.type = Type::String;
    v.bytes = std::move(s);
    return v;
}

MsgValue MsgValue::of_binary(std::string b) {
    MsgValue v;
    v.type = Type::Binary;
    v.bytes = std::move(b);
    return v;
}

MsgValue MsgValue::of_ext(std::int8_t type, std::string payload) {
    MsgValue v;
    v.type = Type::Ext;
    v.ext_type = type;
    v.bytes = std::move(payload);
    return v;
}

MsgValue MsgValue::of_array(std::vector<MsgValue> elements) {
    MsgValue v;
    v.type = Type::Array;
    v.array = std::move(elements);
    return v;
}

MsgValue MsgValue::of_map(std::vector<MsgMember> members) {
    MsgValue v;
    v.type = Type::Map;
    v.map = std::move(members);
    return v;
}

MsgValue MsgValue::empty_map() { return of_map({}); }

const MsgValue* MsgValue::find(std::string_view key) const {
    if (type != Type::Map) return nullptr;
    for (const MsgMember& m : map)
        if (m.key.type == Type::String && m.key.bytes == key) return &m.value;
    return nullptr;
}

namespace {

bool is_integer(const MsgValue& v) { return v.type == MsgValue::Type::Int || v.type == MsgValue::Type::UInt; }

// An integer value as (negative, magnitude), for comparing Int and UInt by number.
std::pair<bool, std::uint64_t> integer_parts(const MsgValue& v) {
    if (v.type == MsgValue::Type::UInt) return {false, v.uint_value};
    if (v.int_value >= 0) return {false, static_cast<std::uint64_t>(v.int_value)};
    return {true, static_cast<std::uint64_t>(0) - static_cast<std::uint64_t>(v.int_value)};
}

}  // namespace

bool operator==(const MsgValue& a, const MsgValue& b) {
    if (is_integer(a) && is_integer(b)) return integer_parts(a) == integer_parts(b);
    if (a.type != b.type) return false;
    switch (a.type) {
    case MsgValue::Type::Nil: return true;
    case MsgValue::Type::Bool: return a.boolean == b.boolean;
    case MsgValue::Type::Int:
    case MsgValue::Type::UInt: return true;  // handled above
    case MsgValue::Type::Float: {
        std::uint64_t x, y;
        std::memcpy(&x, &a.float_value, sizeof x);
        std::memcpy(&y, &b.float_value, sizeof y);
        return x == y;
    }
    case MsgValue::Type::String:
    case MsgValue::Type::Binary: return a.bytes == b.bytes;
    case MsgValue::Type::Ext: return a.ext_type == b.ext_type && a.bytes == b.bytes;
    case MsgValue::Type::Array: return a.array == b.array;
    case MsgValue::Type::Map:
        if (a.map.size() != b.map.size()) return false;
        for (std::size_t i = 0; i < a.map.size(); ++i)
            if (a.map[i].key != b.map[i].key || a.map[i].value != b.map[i].value) return false;
        return true;
    }
    return false;
}

namespace {

// --- decoding ---------------------------------------------------------------------------

const char* type_name(MsgValue::Type t) {
    switch (t) {
    case MsgValue::Type::Nil: return "nil";
    case MsgValue::Type::Bool: return "boolean";
    case MsgValue::Type::Int:
    case MsgValue::Type::UInt: return "integer";
    case MsgValue::Type::Float: return "float";
    case MsgValue::Type::String: return "string";
    case MsgValue::Type::Binary: return "binary";
    case MsgValue::Type::Ext: return "ext";
    case MsgValue::Type::Array: return "array";
    case MsgValue::Type::Map: return "map";
    }
    return "?";
}

// The type a format byte starts (0xC1 is never used: Nil is returned and the decoder
// refuses it separately).
MsgValue::Type type_of(unsigned char b) {
    using T = MsgValue::Type;
    if (b <= 0x7F || b >= 0xE0) return b <= 0x7F ? T::UInt : T::Int;
    if (b <= 0x8F) return T::Map;
    if (b <= 0x9F) return T::Array;
    if (b <= 0xBF) return T::String;
    switch (b) {
    case 0xC2: case 0xC3: return T::Bool;
    case 0xC4: case 0xC5: case 0xC6: return T::Binary;
    case 0xC7: case 0xC8: case 0xC9: case 0xD4: case 0xD5: case 0xD6: case 0xD7: case 0xD8: return T::Ext;
    case 0xCA: case 0xCB: return T::Float;
    case 0xCC: case 0xCD: case 0xCE: case 0xCF: return T::UInt;
    case 0xD0: case 0xD1: case 0xD2: case 0xD3: return T::Int;
    case 0xD9: case 0xDA: case 0xDB: return T::String;
    case 0xDC: case 0xDD: return T::Array;
    case 0xDE: case 0xDF: return T::Map;
    default: return T::Nil;
    }
}

// "1 byte", "2 bytes".
std::string count_text(std::uint64_t n, const char* noun) {
    return std::to_string(n) + " " + noun + (n == 1 ? "" : "s");
}

std::string limit_text(const char* name, std::size_t value) {
    return std::string(" (limit ") + name + " = " + std::to_string(value) + ")";
}

class Decoder {
public:
    Decoder(std::string_view in, const MsgpackLimits& limits) : in_(in), limits_(limits) {}

    Result<MsgValue> run() {
        if (in_.size() > limits_.max_bytes)
            return fail("input of " + count_text(in_.size(), "byte") + limit_text("max_bytes", limits_.max_bytes), 0);
        std::size_t values = 0;
        for (;;) {
            const std::size_t at = pos_;
            if (pos_ >= in_.size()) return fail("truncated: a value is missing", at);
            if (++values > limits_.max_values)
                return fail("more than " + std::to_string(limits_.max_values) + " values" +
                                limit_text("max_values", limits_.max_values),
                            at);
            const auto b = static_cast<unsigned char>(in_[pos_++]);
            if (b == 0xC1) return fail("the never-used format byte 0xC1", at);
            const MsgValue::Type type = type_of(b);

            // @msgpack/msgpack reads map keys that are strings or numbers only.
            const bool is_key = !stack_.empty() && stack_.back().container.type == MsgValue::Type::Map &&
                                stack_.back().key_next;
            if (is_key && type != MsgValue::Type::String && type != MsgValue::Type::UInt &&
                type != MsgValue::Type::Int && type != MsgValue::Type::Float)
                return fail(std::string("map key of type ") + type_name(type) + " (keys must be strings or numbers)", at);

            MsgValue v;
            v.type = type;
            std::uint64_t n = 0;  // a length or a count
            switch (b) {
            case 0xC0: break;
            case 0xC2: v.boolean = false; break;
            case 0xC3: v.boolean = true; break;
            case 0xCA: {
                std::uint64_t u;
                if (!read_be(4, u)) return truncated("float32", at);
                const auto bits = static_cast<std::uint32_t>(u);
                float f;
                std::memcpy(&f, &bits, sizeof f);
                v.float_value = f;
                break;
            }
            case 0xCB: {
                std::uint64_t u;
                if (!read_be(8, u)) return truncated("float64", at);
                std::memcpy(&v.float_value, &u, sizeof u);
                break;
            }
            case 0xCC: case 0xCD: case 0xCE: case 0xCF:
                if (!read_be(std::size_t{1} << (b - 0xCC), v.uint_value)) return truncated("unsigned integer", at);
                break;
            case 0xD0: case 0xD1: case 0xD2: case 0xD3: {
                const std::size_t width = std::size_t{1} << (b - 0xD0);
                std::uint64_t u;
                if (!read_be(width, u)) return truncated("signed integer", at);
                const unsigned shift = static_cast<unsigned>(64 - 8 * width);
                // Sign-extend from `width` bytes.
                const std::int64_t s = static_cast<std::int64_t>(u << shift) >> shift;
                set_integer(v, s);
                break;
            }
            default:
                if (b <= 0x7F) {
                    v.uint_value = b;
                } else if (b >= 0xE0) {
                    v.int_value = static_cast<std::int8_t>(b);
                } else if (type == MsgValue::Type::String || type == MsgValue::Type::Binary || type == MsgValue::Type::Ext) {
                    if (auto refused = read_payload(b, at, v)) return *refused;
                    if (is_key && v.bytes == "__proto__")
                        return fail("map key \"__proto__\" (@msgpack/msgpack refuses it)", at);
                } else {
                    // A container.
                    const bool is_map = type == MsgValue::Type::Map;
                    if (b <= 0x9F) n = b & 0x0F;
                    else if (!read_be(b == 0xDC || b == 0xDE ? 2 : 4, n)) return truncated(is_map ? "map header" : "array header", at);
                    const std::string what = is_map ? "map of " + count_text(n, "member")
                                                    : "array of " + count_text(n, "element");
                    if (n > limits_.max_container_entries)
                        return fail(what + limit_text("max_container_entries", limits_.max_container_entries), at);
                    // Each item takes at least one byte: refuse before reserving anything.
                    const std::uint64_t items = is_map ? 2 * n : n;
                    if (items > in_.size() - pos_)
                        return fail("truncated: " + what + " with " + count_text(in_.size() - pos_, "byte") + " left", at);
                    if (stack_.size() >= limits_.max_depth)
                        return fail("containers nested deeper than " + std::to_string(limits_.max_depth) + " levels" +
                                        limit_text("max_depth", limits_.max_depth),
                                    at);
                    if (n > 0) {
                        Frame f;
                        f.container.type = type;
                        if (is_map) f.container.map.reserve(static_cast<std::size_t>(n));
                        else f.container.array.reserve(static_cast<std::size_t>(n));
                        f.remaining = static_cast<std::size_t>(items);
                        stack_.push_back(std::move(f));
                        continue;
                    }
                }
            }
            if (place(std::move(v))) break;
        }
        if (pos_ != in_.size())
            return fail(count_text(in_.size() - pos_, "byte") + " after the value", pos_);
        return std::move(root_);
    }

private:
    struct Frame {
        MsgValue container;
        std::size_t remaining = 0;  // items still to come; a member is two (key, value)
        bool key_next = true;       // maps: the next item is a key
        MsgValue key;
    };

    Error fail(std::string what, std::size_t at) {
        return make_error("msgpack: " + what + " at byte " + std::to_string(at));
    }
    Error truncated(const char* what, std::size_t at) { return fail(std::string("truncated ") + what, at); }

    // Reads `width` (1, 2, 4 or 8) big-endian bytes.
    bool read_be(std::size_t width, std::uint64_t& out) {
        if (in_.size() - pos_ < width) return false;
        out = 0;
        for (std::size_t i = 0; i < width; ++i) out = out << 8 | static_cast<unsigned char>(in_[pos_ + i]);
        pos_ += width;
        return true;
    }

    static void set_integer(MsgValue& v, std::int64_t s) {
        if (s >= 0) {
            v.type = MsgValue::Type::UInt;
            v.uint_value = static_cast<std::uint64_t>(s);
        } else {
            v.type = MsgValue::Type::Int;
            v.int_value = s;
        }
    }

    // str, bin and ext: the length, the ext type, then the bytes.
    std::optional<Error> read_payload(unsigned char b, std::size_t at, MsgValue& v) {
        std::uint64_t len = 0;
        const char* what = v.type == MsgValue::Type::String ? "string" : v.type == MsgValue::Type::Binary ? "binary" : "ext";
        if (b >= 0xA0 && b <= 0xBF) len = b & 0x1F;
        else if (b >= 0xD4 && b <= 0xD8) len = std::uint64_t{1} << (b - 0xD4);  // fixext 1..16
        else {
            std::size_t width = 1;
            if (b == 0xDA || b == 0xC5 || b == 0xC8) width = 2;
            if (b == 0xDB || b == 0xC6 || b == 0xC9) width = 4;
            if (!read_be(width, len)) return truncated((std::string(what) + " length").c_str(), at);
        }
        if (v.type == MsgValue::Type::Ext) {
            std::uint64_t t;
            if (!read_be(1, t)) return truncated("ext type", at);
            v.ext_type = static_cast<std::int8_t>(static_cast<std::uint8_t>(t));
        }
        if (len > limits_.max_string_bytes)
            return fail(std::string(what) + " of " + count_text(len, "byte") +
                            limit_text("max_string_bytes", limits_.max_string_bytes),
                        at);
        if (len > in_.size() - pos_)
            return fail(std::string("truncated: ") + what + " of " + count_text(len, "byte") + " with " +
                            count_text(in_.size() - pos_, "byte") + " left",
                        at);
        v.bytes.assign(in_.data() + pos_, static_cast<std::size_t>(len));
        pos_ += static_cast<std::size_t>(len);
        return std::nullopt;
    }

    // Puts a finished value where it belongs; true once the root value is finished.
    bool place(MsgValue v) {
        while (!stack_.empty()) {
            Frame& top = stack_.back();
            if (top.container.type == MsgValue::Type::Array) {
                top.container.array.push_back(std::move(v));
            } else if (top.key_next) {
                top.key = std::move(v);
                top.key_next = false;
            } else {
                top.container.map.push_back(MsgMember{std::move(top.key), std::move(v)});
                top.key_next = true;
            }
            if (--top.remaining > 0) return false;
            v = std::move(top.container);
            stack_.pop_back();
        }
        root_ = std::move(v);
        return true;
    }

    std::string_view in_;
    const MsgpackLimits& limits_;
    std::size_t pos_ = 0;
    std::vector<Frame> stack_;
    MsgValue root_;
};

// --- encoding ---------------------------------------------------------------------------

void put_be(std::string& out, std::uint64_t v, std::size_t width) {
    for (std::size_t i = width; i-- > 0;) out += static_cast<char>((v >> (8 * i)) & 0xFF);
}

void put_uint(std::string& out, std::uint64_t n) {
    if (n < 0x80) out += static_cast<char>(n);
    else if (n < 0x100) { out += '\xCC'; put_be(out, n, 1); }
    else if (n < 0x10000) { out += '\xCD'; put_be(out, n, 2); }
    else if (n < 0x100000000ULL) { out += '\xCE'; put_be(out, n, 4); }
    else { out += '\xCF'; put_be(out, n, 8); }
}

void put_int(std::string& out, std::int64_t n) {
    if (n >= 0) return put_uint(out, static_cast<std::uint64_t>(n));
    const auto u = static_cast<std::uint64_t>(n);
    if (n >= -32) out += static_cast<char>(u & 0xFF);
    else if (n >= -128) { out += '\xD0'; put_be(out, u, 1); }
    else if (n >= -32768) { out += '\xD1'; put_be(out, u, 2); }
    else if (n >= -2147483648LL) { out += '\xD2'; put_be(out, u, 4); }
    else { out += '\xD3'; put_be(out, u, 8); }
}

// A length-prefixed payload: `fix` (a fixed form's first byte, 0 for none, taking lengths
// under `fix_limit`) or the 8/16/32-bit form starting at `first` (0 for no 8-bit form).
// Lengths of 4 GiB and more have no MessagePack form; no bounded value reaches them.
void put_header(std::string& out, std::size_t len, unsigned char fix, std::size_t fix_limit, unsigned char first8,
                unsigned char first16) {
    if (fix && len < fix_limit) out += static_cast<char>(fix | len);
    else if (first8 && len < 0x100) { out += static_cast<char>(first8); put_be(out, len, 1); }
    else if (len < 0x10000) { out += static_cast<char>(first16); put_be(out, len, 2); }
    else { out += static_cast<char>(first16 + 1); put_be(out, len, 4); }
}

void put_value(std::string& out, const MsgValue& v) {
    switch (v.type) {
    case MsgValue::Type::Nil: out += '\xC0'; break;
    case MsgValue::Type::Bool: out += v.boolean ? '\xC3' : '\xC2'; break;
    case MsgValue::Type::Int: put_int(out, v.int_value); break;
    case MsgValue::Type::UInt: put_uint(out, v.uint_value); break;
    case MsgValue::Type::Float: {
        std::uint64_t u;
        std::memcpy(&u, &v.float_value, sizeof u);
        out += '\xCB';
        put_be(out, u, 8);
        break;
    }
    case MsgValue::Type::String:
        put_header(out, v.bytes.size(), 0xA0, 32, 0xD9, 0xDA);
        out += v.bytes;
        break;
    case MsgValue::Type::Binary:
        put_header(out, v.bytes.size(), 0, 0, 0xC4, 0xC5);
        out += v.bytes;
        break;
    case MsgValue::Type::Ext: {
        const std::size_t len = v.bytes.size();
        if (len == 1 || len == 2 || len == 4 || len == 8 || len == 16) {
            unsigned char code = 0xD4;
            for (std::size_t k = 1; k < len; k <<= 1) ++code;
            out += static_cast<char>(code);
        } else {
            put_header(out, len, 0, 0, 0xC7, 0xC8);
        }
        out += static_cast<char>(v.ext_type);
        out += v.bytes;
        break;
    }
    case MsgValue::Type::Array:
        put_header(out, v.array.size(), 0x90, 16, 0, 0xDC);
        for (const MsgValue& e : v.array) put_value(out, e);
        break;
    case MsgValue::Type::Map:
        put_header(out, v.map.size(), 0x80, 16, 0, 0xDE);
        for (const MsgMember& m : v.map) {
            put_value(out, m.key);
            put_value(out, m.value);
        }
        break;
    }
}

// --- JSON -------------------------------------------------------------------------------

void append_double(std::string& out, double d) {
    if (!std::isfinite(d)) {
        out += "null";  // what JSON.stringify writes for NaN and the infinities
        return;
    }
    char buf[32];
    const auto r = std::to_chars(buf, buf + sizeof buf, d);
    out.append(buf, static_cast<std::size_t>(r.ptr - buf));
}

const char* json_value(std::string& out, const MsgValue& v, BinaryInJson binary) {
    switch (v.type) {
    case MsgValue::Type::Nil: out += "null"; break;
    case MsgValue::Type::Bool: out += v.boolean ? "true" : "false"; break;
    case MsgValue::Type::Int: out += std::to_string(v.int_value); break;
    case MsgValue::Type::UInt: out += std::to_string(v.uint_value); break;
    case MsgValue::Type::Float: append_double(out, v.float_value); break;
    case MsgValue::Type::String: append_json_string(out, v.bytes); break;
    case MsgValue::Type::Binary:
        if (binary == BinaryInJson::Refuse) return "a binary value has no JSON form";
        out += '"';
        out += base64_encode(v.bytes);
        out += '"';
        break;
    case MsgValue::Type::Ext: return "an ext value has no JSON form";
    case MsgValue::Type::Array:
        out += '[';
        for (std::size_t i = 0; i < v.array.size(); ++i) {
            if (i) out += ',';
            if (const char* why = json_value(out, v.array[i], binary)) return why;
        }
        out += ']';
        break;
    case MsgValue::Type::Map:
        out += '{';
        for (std::size_t i = 0; i < v.map.size(); ++i) {
            if (i) out += ',';
            const MsgValue& key = v.map[i].key;
            switch (key.type) {
            case MsgValue::Type::String: append_json_string(out, key.bytes); break;
            case MsgValue::Type::Int: out += '"' + std::to_string(key.int_value) + '"'; break;
            case MsgValue::Type::UInt: out += '"' + std::to_string(key.uint_value) + '"'; break;
            default: return "a map key that is not a string or an integer has no JSON form";
            }
            out += ':';
            if (const char* why = json_value(out, v.map[i].value, binary)) return why;
        }
        out += '}';
        break;
    }
    return nullptr;
}

// What JSON.parse makes of a number too large or too small for a double: +-Infinity when
// its magnitude is at least 1, +-0 otherwise. `text` is valid JSON number syntax.
double out_of_range(std::string_view text) {
    const bool negative = text[0] == '-';
    std::size_t i = negative ? 1 : 0;
    const std::size_t int_start = i;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i;
    const std::size_t int_end = i;
    std::size_t frac_start = i, frac_end = i;
    if (i < text.size() && text[i] == '.') {
        frac_start = ++i;
        while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i;
        frac_end = i;
    }
    std::int64_t exponent = 0;
    if (i < text.size() && (text[i] == 'e' || text[i] == 'E')) {
        ++i;
        const bool minus = i < text.size() && text[i] == '-';
        if (i < text.size() && (text[i] == '-' || text[i] == '+')) ++i;
        for (; i < text.size(); ++i) exponent = std::min<std::int64_t>(exponent * 10 + (text[i] - '0'), 1'000'000'000);
        if (minus) exponent = -exponent;
    }
    // The value is 0.d... x 10^(magnitude + exponent), d the first non-zero digit.
    std::int64_t magnitude = 0;
    std::size_t k = int_start;
    while (k < int_end && text[k] == '0') ++k;
    if (k < int_end) {
        magnitude = static_cast<std::int64_t>(int_end - k);
    } else {
        k = frac_start;
        while (k < frac_end && text[k] == '0') ++k;
        magnitude = -static_cast<std::int64_t>(k - frac_start);
    }
    const double v = magnitude + exponent > 0 ? HUGE_VAL : 0.0;
    return negative ? -v : v;
}

// Builds a value from RapidJSON's SAX events, containers on an explicit stack.
class JsonBuilder {
public:
    explicit JsonBuilder(const MsgpackLimits& limits) : limits_(limits) {}

    bool Null() { return add(MsgValue::nil()); }
    bool Bool(bool b) { return add(MsgValue::of_bool(b)); }
    // Numbers come as text (kParseNumbersAsStringsFlag) and are converted here.
    bool Int(int) { return false; }
    bool Uint(unsigned) { return false; }
    bool Int64(std::int64_t) { return false; }
    bool Uint64(std::uint64_t) { return false; }
    bool Double(double) { return false; }
    bool RawNumber(const char* s, rapidjson::SizeType n, bool) {
        const char* end = s + n;
        if (std::string_view(s, n).find_first_of(".eE") == std::string_view::npos) {
            if (s[0] == '-') {
                std::int64_t i = 0;
                const auto r = std::from_chars(s, end, i);
                if (r.ec == std::errc() && r.ptr == end)
                    return add(i >= 0 ? MsgValue::of_uint(static_cast<std::uint64_t>(i)) : MsgValue::of_int(i));
            } else {
                std::uint64_t u = 0;
                const auto r = std::from_chars(s, end, u);
                if (r.ec == std::errc() && r.ptr == end) return add(MsgValue::of_uint(u));
            }
            // Past 64 bits: a float, as JSON.parse reads it.
        }
        double d = 0;
        const auto r = std::from_chars(s, end, d);
        if (r.ec == std::errc::result_out_of_range) d = out_of_range(std::string_view(s, n));
        else if (r.ec != std::errc() || r.ptr != end) return refuse("unreadable number " + std::string(s, n));
        return add(MsgValue::of_float(d));
    }
    bool String(const char* s, rapidjson::SizeType n, bool) {
        if (n > limits_.max_string_bytes)
            return refuse("string of " + std::to_string(n) + " bytes" + limit_text("max_string_bytes", limits_.max_string_bytes));
        return add(MsgValue::of_string(std::string(s, n)));
    }
    bool Key(const char* s, rapidjson::SizeType n, bool copy) {
        // Node could not read the value back: its decoder refuses this key.
        if (std::string_view(s, n) == "__proto__") return refuse("object key \"__proto__\" (@msgpack/msgpack refuses it)");
        return String(s, n, copy);
    }
    bool StartObject() { return open(MsgValue::Type::Map); }
    bool EndObject(rapidjson::SizeType) { return close(); }
    bool StartArray() { return open(MsgValue::Type::Array); }
    bool EndArray(rapidjson::SizeType) { return close(); }

    const std::string& why() const { return why_; }
    MsgValue take() { return std::move(root_); }

private:
    struct Frame {
        MsgValue container;
        bool has_key = false;
        MsgValue key;
    };

    bool refuse(std::string why) {
        why_ = std::move(why);
        return false;
    }

    bool count() {
        if (++values_ > limits_.max_values)
            return refuse("more than " + std::to_string(limits_.max_values) + " values" +
                          limit_text("max_values", limits_.max_values));
        return true;
    }

    bool add(MsgValue v) {
        if (!count()) return false;
        return put(std::move(v));
    }

    bool put(MsgValue v) {
        if (stack_.empty()) {
            root_ = std::move(v);
            return true;
        }
        Frame& top = stack_.back();
        if (top.container.type == MsgValue::Type::Array) {
            if (top.container.array.size() >= limits_.max_container_entries) return too_many("array");
            top.container.array.push_back(std::move(v));
        } else if (!top.has_key) {
            top.key = std::move(v);
            top.has_key = true;
        } else {
            if (top.container.map.size() >= limits_.max_container_entries) return too_many("object");
            top.container.map.push_back(MsgMember{std::move(top.key), std::move(v)});
            top.has_key = false;
        }
        return true;
    }

    bool too_many(const char* what) {
        return refuse(std::string(what) + " of more than " + std::to_string(limits_.max_container_entries) + " entries" +
                      limit_text("max_container_entries", limits_.max_container_entries));
    }

    bool open(MsgValue::Type type) {
        if (!count()) return false;
        if (stack_.size() >= limits_.max_depth)
            return refuse("nested deeper than " + std::to_string(limits_.max_depth) + " levels" +
                          limit_text("max_depth", limits_.max_depth));
        Frame f;
        f.container.type = type;
        stack_.push_back(std::move(f));
        return true;
    }

    bool close() {
        MsgValue v = std::move(stack_.back().container);
        stack_.pop_back();
        return put(std::move(v));
    }

    const MsgpackLimits& limits_;
    std::vector<Frame> stack_;
    MsgValue root_;
    std::size_t values_ = 0;
    std::string why_;
};

}  // namespace

Result<MsgValue> decode_msgpack(std::string_view bytes, const MsgpackLimits& limits) {
    return Decoder(bytes, limits).run();
}

void append_msgpack(std::string& out, const MsgValue& value) { put_value(out, value); }

std::string encode_msgpack(const MsgValue& value) {
    std::string out;
    put_value(out, value);
    return out;
}

Result<std::string> msgpack_value_to_json(const MsgValue& value, BinaryInJson binary) {
    std::string out;
    if (const char* why = json_value(out, value, binary)) return make_error(std::string("msgpack to JSON: ") + why);
    return out;
}

Result<std::string> msgpack_to_json(std::string_view bytes, const MsgpackLimits& limits, BinaryInJson binary) {
    auto value = decode_msgpack(bytes, limits);
    if (!value) return value.error();
    return msgpack_value_to_json(*value, binary);
}

Result<MsgValue> json_to_msgpack_value(std::string_view json, const MsgpackLimits& limits) {
    if (json.size() > limits.max_bytes)
        return make_error("JSON: text of " + std::to_string(json.size()) + " bytes" + limit_text("max_bytes", limits.max_bytes));
    JsonBuilder builder(limits);
    rapidjson::MemoryStream ms(json.data(), json.size());
    rapidjson::EncodedInputStream<rapidjson::UTF8<>, rapidjson::MemoryStream> is(ms);
    rapidjson::Reader reader;
    // Numbers as text, converted with std::from_chars: exact, and clear of the undefined
    // behaviour RapidJSON 1.1's own conversion has on exponents like 1e-1578196181.
    const auto r = reader.Parse<rapidjson::kParseIterativeFlag | rapidjson::kParseValidateEncodingFlag |
                                rapidjson::kParseNumbersAsStringsFlag>(is, builder);
    if (r.IsError()) {
        const std::string why = builder.why().empty() ? rapidjson::GetParseError_En(r.Code()) : builder.why();
        return make_error("JSON: " + why + " at byte " + std::to_string(r.Offset()));
    }
    return builder.take();
}

// --- the session blob -------------------------------------------------------------------

std::string encode_session(const AdapterSession& session) {
    std::string out;
    out += '\x84';
    put_value(out, MsgValue::of_string("sid"));
    put_value(out, MsgValue::of_string(session.sid));
    put_value(out, MsgValue::of_string("pid"));
    put_value(out, MsgValue::of_string(session.pid));
    put_value(out, MsgValue::of_string("rooms"));
    put_header(out, session.rooms.size(), 0x90, 16, 0, 0xDC);
    for (const std::string& room : session.rooms) {
        put_header(out, room.size(), 0xA0, 32, 0xD9, 0xDA);
        out += room;
    }
    put_value(out, MsgValue::of_string("data"));
    put_value(out, session.data);
    return out;
}

MsgValue walcast_session_data(const WalcastSessionFields& fields) {
    std::vector<MsgMember> inner;
    inner.push_back({MsgValue::of_string("user"), MsgValue::of_string(fields.user)});
    inner.push_back({MsgValue::of_string("tenant"), MsgValue::of_string(fields.tenant)});
    inner.push_back({MsgValue::of_string("base"), MsgValue::of_string(fields.base)});
    std::vector<MsgMember> outer;
    outer.push_back({MsgValue::of_string("walcast"), MsgValue::of_map(std::move(inner))});
    return MsgValue::of_map(std::move(outer));
}

Result<DecodedSession> decode_session(std::string_view bytes, const MsgpackLimits& limits) {
    auto decoded = decode_msgpack(bytes, limits);
    if (!decoded) return make_error("session: " + decoded.error().message);
    MsgValue& root = *decoded;
    if (root.type != MsgValue::Type::Map)
        return make_error(std::string("session: a ") + type_name(root.type) + ", not a map");

    DecodedSession out;
    AdapterSession& s = out.session;
    bool seen_sid = false, seen_pid = false, seen_rooms = false, seen_data = false;
    const auto once = [](bool& seen) {
        const bool first = !seen;
        seen = true;
        return first;
    };
    for (MsgMember& m : root.map) {
        if (m.key.type != MsgValue::Type::String) continue;
        const std::string& key = m.key.bytes;
        if (key == "sid" || key == "pid") {
            if (!once(key == "sid" ? seen_sid : seen_pid)) return make_error("session: " + key + " appears twice");
            if (m.value.type != MsgValue::Type::String || m.value.bytes.empty())
                return make_error("session: " + key + " is not a non-empty string");
            (key == "sid" ? s.sid : s.pid) = std::move(m.value.bytes);
        } else if (key == "rooms") {
            if (!once(seen_rooms)) return make_error("session: rooms appears twice");
            if (m.value.type != MsgValue::Type::Array) return make_error("session: rooms is not an array");
            s.rooms.reserve(m.value.array.size());
            for (std::size_t i = 0; i < m.value.array.size(); ++i) {
                MsgValue& room = m.value.array[i];
                if (room.type != MsgValue::Type::String)
                    return make_error("session: rooms[" + std::to_string(i) + "] is a " + type_name(room.type) +
                                      ", not a string");
                s.rooms.push_back(std::move(room.bytes));
            }
        } else if (key == "data") {
            if (!once(seen_data)) return make_error("session: data appears twice");
            s.data = std::move(m.value);
        }
    }
    if (!seen_sid) return make_error("session: no sid");
    if (!seen_pid) return make_error("session: no pid");
    if (!seen_rooms) return make_error("session: no rooms");
    if (!seen_data) s.data = MsgValue::nil();

    if (const MsgValue* w = s.data.find("walcast")) {
        const auto field = [&](const char* name) -> const std::string* {
            const MsgValue* f = w->find(name);
            return f && f->type == MsgValue::Type::String ? &f->bytes : nullptr;
        };
        const std::string* user = field("user");
        const std::string* tenant = field("tenant");
        const std::string* base = field("base");
        if (!user || !tenant || !base)
            return make_error("session: data.walcast is not a map holding the strings user, tenant and base");
        out.walcast = WalcastSessionFields{*user, *tenant, *base};
    }
    return out;
}

std::string encode_session_blob(const AdapterSession& session) { return base64_encode(encode_session(session)); }

Result<DecodedSession> decode_session_blob(std::string_view base64_text, const MsgpackLimits& limits) {
    const std::size_t max_text = (limits.max_bytes / 3 + (limits.max_bytes % 3 != 0)) * 4;
    if (base64_text.size() > max_text)
        return make_error("session: blob of " + std::to_string(base64_text.size()) + " characters" +
                          limit_text("max_bytes, as base64", max_text));
    auto bytes = base64_decode(base64_text);
    if (!bytes) return make_error("session: " + bytes.error().message);
    return decode_session(*bytes, limits);
}

}  // namespace walcast
