// Unguessable ids for Engine.IO sids, Socket.IO sids and recovery pids: 15 random bytes,
// base64url (20 characters), as the reference server's look. Any thread.
#pragma once

#include <openssl/rand.h>

#include <random>
#include <string>
#include <string_view>

#include "wire/jwt.hpp"

namespace walcast {

inline std::string random_id() {
    unsigned char bytes[15];
    if (RAND_bytes(bytes, sizeof bytes) != 1) {
        // Not reachable on a working system; ids must still be unique and unguessable enough.
        static thread_local std::mt19937_64 fallback{std::random_device{}()};
        for (auto& b : bytes) b = static_cast<unsigned char>(fallback());
    }
    return base64url_encode(std::string_view(reinterpret_cast<const char*>(bytes), sizeof bytes));
}

}  // namespace walcast
