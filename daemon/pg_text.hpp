// Text helpers for talking to PostgreSQL: quoting identifiers and literals for the simple
// query protocol (replication connections allow no parameters), and libpq messages folded
// into one log line. Header-only; any thread.
#pragma once

#include <string>

namespace walcast {

// "name" with embedded quotes doubled: safe as an SQL identifier.
inline std::string quote_ident(const std::string& s) {
    std::string out = "\"";
    for (char c : s) {
        if (c == '"') out += '"';
        out += c;
    }
    return out + '"';
}

// 'text' with embedded quotes doubled: safe as an SQL literal (standard_conforming_strings).
inline std::string quote_literal(const std::string& s) {
    std::string out = "'";
    for (char c : s) {
        if (c == '\'') out += '\'';
        out += c;
    }
    return out + '\'';
}

// A libpq message (which ends in a newline and may span lines) as one line.
inline std::string one_line(std::string text) {
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
    for (char& c : text)
        if (c == '\n') c = ' ';
    return text;
}

}  // namespace walcast
