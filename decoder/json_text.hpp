// Appending JSON text to a std::string: string escaping and wal2json values.
// Header-only and allocation-free beyond the output string; any thread.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include "decoder/wal2json.hpp"

namespace walcast {

namespace json_text_detail {

// 1 for bytes that cannot be copied as they are: control characters, '"', '\\', and every
// byte >= 0x80 (checked as UTF-8 before it is copied).
struct EscapeTable {
    bool special[256];
    constexpr EscapeTable() : special() {
        for (int c = 0; c < 256; ++c) special[c] = c < 0x20 || c == '"' || c == '\\' || c >= 0x80;
    }
};
inline constexpr EscapeTable kEscape{};

// Length of the well-formed UTF-8 sequence at s[i] (RFC 3629), or 0 when it is not one.
inline std::size_t utf8_sequence(std::string_view s, std::size_t i) {
    const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
    const unsigned char c = byte(i);
    std::size_t n;
    unsigned char lo = 0x80, hi = 0xBF;  // bounds of the second byte
    if (c >= 0xC2 && c <= 0xDF) n = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;  // no UTF-16 surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        return 0;
    }
    if (i + n > s.size() || byte(i + 1) < lo || byte(i + 1) > hi) return 0;
    for (std::size_t k = 2; k < n; ++k)
        if ((byte(i + k) & 0xC0) != 0x80) return 0;
    return n;
}

// Whether any of the 8 bytes of `w` is special (kEscape): the usual bit tricks for "a byte
// below n" and "a zero byte" (exact about whether one exists, which is all that is asked).
inline bool has_special(std::uint64_t w) {
    constexpr std::uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
    const auto has_zero = [&](std::uint64_t x) { return (x - ones) & ~x & high; };
    const std::uint64_t control = (w - ones * 0x20) & ~w & high;
    return (control | has_zero(w ^ (ones * '"')) | has_zero(w ^ (ones * '\\')) | (w & high)) != 0;
}

}  // namespace json_text_detail

// Offset of the first byte of `s` that is not part of well-formed UTF-8 (RFC 3629: no
// overlong forms, no UTF-16 surrogates), or npos when there is none.
inline std::size_t first_invalid_utf8(std::string_view s) {
    for (std::size_t i = 0; i < s.size();) {
        if (static_cast<unsigned char>(s[i]) < 0x80) {
            ++i;
            continue;
        }
        const std::size_t n = json_text_detail::utf8_sequence(s, i);
        if (n == 0) return i;
        i += n;
    }
    return std::string_view::npos;
}

// Appends `s` as a JSON string literal. Control characters are escaped; a byte that is not
// part of well-formed UTF-8 becomes U+FFFD, because one invalid byte in a WebSocket text
// frame makes the browser drop the whole connection.
inline void append_json_string(std::string& out, std::string_view s) {
    static constexpr char hex[] = "0123456789abcdef";
    out.push_back('"');
    std::size_t run = 0;  // start of the pending run of bytes that are copied as they are
    std::size_t i = 0;
    const std::size_t size = s.size();
    while (i < size) {
        // Plain text, the common case, is skipped 8 bytes at a time; a block with a special
        // byte in it is handled byte by byte.
        if (i + 8 <= size) {
            std::uint64_t block;
            std::memcpy(&block, s.data() + i, 8);
            if (!json_text_detail::has_special(block)) {
                i += 8;
                continue;
            }
        }
        for (const std::size_t stop = std::min(size, i + 8); i < stop;) {
            const unsigned char c = static_cast<unsigned char>(s[i]);
            if (!json_text_detail::kEscape.special[c]) {
                ++i;
                continue;
            }
            if (c >= 0x80) {
                if (std::size_t n = json_text_detail::utf8_sequence(s, i)) {
                    i += n;
                    continue;
                }
            }
            out.append(s.data() + run, i - run);
            switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            case '\b': out += "\\b"; break;
            case '\f': out += "\\f"; break;
            default:
                if (c >= 0x80) {
                    out += "\\ufffd";
                } else {
                    out += "\\u00";
                    out.push_back(hex[c >> 4]);
                    out.push_back(hex[c & 0xF]);
                }
            }
            run = ++i;
        }
    }
    out.append(s.data() + run, s.size() - run);
    out.push_back('"');
}

inline void append_json_optional(std::string& out, const std::optional<std::string>& s) {
    if (s) append_json_string(out, *s);
    else out += "null";
}

// Appends a wal2json value. Numbers are copied digit for digit; `numbers_as_strings`
// quotes them instead, for clients whose JSON.parse would round an int8 or numeric.
inline void append_json_value(std::string& out, const Value& v, bool numbers_as_strings = false) {
    switch (v.kind) {
    case Value::Kind::Null: out += "null"; break;
    case Value::Kind::Bool: out += v.text; break;
    case Value::Kind::Number:
        if (numbers_as_strings) {
            out.push_back('"');
            out += v.text;
            out.push_back('"');
        } else {
            out += v.text;
        }
        break;
    case Value::Kind::String: append_json_string(out, v.text); break;
    }
}

}  // namespace walcast
