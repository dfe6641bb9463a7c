// Lsn parsing and printing in PostgreSQL's "X/Y" form (upper-case hex, no padding).
#include "decoder/lsn.hpp"

#include <cstdio>

namespace walcast {

namespace {

// Parses 1..8 hex digits; returns false on anything else.
bool parse_hex32(std::string_view s, std::uint64_t& out) {
    if (s.empty() || s.size() > 8) return false;
    std::uint64_t v = 0;
    for (char c : s) {
        int d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else return false;
        v = (v << 4) | static_cast<std::uint64_t>(d);
    }
    out = v;
    return true;
}

}  // namespace

std::optional<Lsn> Lsn::parse(std::string_view text) {
    auto slash = text.find('/');
    if (slash == std::string_view::npos) return std::nullopt;
    std::uint64_t hi, lo;
    if (!parse_hex32(text.substr(0, slash), hi) || !parse_hex32(text.substr(slash + 1), lo))
        return std::nullopt;
    return Lsn{(hi << 32) | lo};
}

std::string Lsn::str() const {
    char buf[20];
    int n = std::snprintf(buf, sizeof buf, "%X/%X", static_cast<unsigned>(value >> 32),
                          static_cast<unsigned>(value & 0xFFFFFFFFu));
    return std::string(buf, static_cast<std::size_t>(n));
}

}  // namespace walcast
