// Appending JSON text to a std::string: string escaping and wal2json values.
// Header-only and allocation-free beyond the output string; any thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "decoder/wal2json.hpp"

namespace walcast {

// Appends `s` as a JSON string literal. `s` is valid UTF-8 (the decoder validated it);
// control characters are escaped, everything else is copied as is.
inline void append_json_string(std::string& out, std::string_view s) {
    static constexpr char hex[] = "0123456789abcdef";
    out.push_back('"');
    std::size_t run = 0;  // start of the pending run of bytes that need no escape
    for (std::size_t i = 0; i < s.size(); ++i) {
        unsigned char c = static_cast<unsigned char>(s[i]);
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        out.append(s.data() + run, i - run);
        run = i + 1;
        switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        case '\b': out += "\\b"; break;
        case '\f': out += "\\f"; break;
        default:
            out += "\\u00";
            out.push_back(hex[c >> 4]);
            out.push_back(hex[c & 0xF]);
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
