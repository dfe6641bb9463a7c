// Standard base64 (RFC 4648 §4: `+/`, `=` padding), the form Node's Buffer.toString("base64")
// writes: the adapter's session blobs and binary stream payloads are stored in it. JWTs use
// base64url instead (wire/jwt.hpp). Header-only and pure; any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "decoder/result.hpp"

namespace walcast {

inline std::string base64_encode(std::string_view bytes) {
    static constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    std::size_t i = 0;
    const auto at = [&](std::size_t k) { return static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[k])); };
    for (; i + 3 <= bytes.size(); i += 3) {
        const std::uint32_t n = at(i) << 16 | at(i + 1) << 8 | at(i + 2);
        out += alphabet[n >> 18];
        out += alphabet[(n >> 12) & 63];
        out += alphabet[(n >> 6) & 63];
        out += alphabet[n & 63];
    }
    if (bytes.size() - i == 1) {
        const std::uint32_t n = at(i) << 16;
        out += alphabet[n >> 18];
        out += alphabet[(n >> 12) & 63];
        out += "==";
    } else if (bytes.size() - i == 2) {
        const std::uint32_t n = at(i) << 16 | at(i + 1) << 8;
        out += alphabet[n >> 18];
        out += alphabet[(n >> 12) & 63];
        out += alphabet[(n >> 6) & 63];
        out += '=';
    }
    return out;
}

// Strict decode of what base64_encode writes: a multiple of 4 characters, `=` only as the
// last one or two, no whitespace, and no bits set past the data in the last character
// (so each byte string has exactly one accepted text). Refusals give the character offset.
inline Result<std::string> base64_decode(std::string_view text) {
    const auto value = [](char c) -> int {
        if (c >= 'A' && c <= 'Z') return c - 'A';
        if (c >= 'a' && c <= 'z') return c - 'a' + 26;
        if (c >= '0' && c <= '9') return c - '0' + 52;
        if (c == '+') return 62;
        if (c == '/') return 63;
        return -1;
    };
    if (text.size() % 4 != 0)
        return make_error("base64: length " + std::to_string(text.size()) + " is not a multiple of 4");
    std::size_t padding = 0;
    if (!text.empty() && text.back() == '=') padding = text[text.size() - 2] == '=' ? 2 : 1;
    const std::size_t data_chars = text.size() - padding;
    std::string out;
    out.reserve(text.size() / 4 * 3);
    std::uint32_t acc = 0;
    int bits = 0;
    for (std::size_t i = 0; i < data_chars; ++i) {
        const int v = value(text[i]);
        if (v < 0) {
            return make_error(std::string("base64: ") + (text[i] == '=' ? "padding before the end" : "invalid character") +
                              " at offset " + std::to_string(i));
        }
        acc = (acc << 6) | static_cast<std::uint32_t>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out += static_cast<char>((acc >> bits) & 0xFF);
        }
    }
    if ((acc & ((1u << bits) - 1)) != 0)
        return make_error("base64: bits set after the last byte at offset " + std::to_string(data_chars - 1));
    return out;
}

}  // namespace walcast
