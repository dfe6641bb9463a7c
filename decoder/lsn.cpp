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
    // %X/%X without printf: this runs for every event.
    static constexpr char kHex[] = "0123456789ABCDEF";
    char buf[17];
    std::size_t n = 0;
    auto put = [&](std::uint32_t half) {
        int shift = 28;
        while (shift > 0 && (half >> shift) == 0) shift -= 4;
        for (; shift >= 0; shift -= 4) buf[n++] = kHex[(half >> shift) & 0xF];
    };
    put(static_cast<std::uint32_t>(value >> 32));
    buf[n++] = '/';
    put(static_cast<std::uint32_t>(value));
    return std::string(buf, n);
}

}  // namespace walcast
