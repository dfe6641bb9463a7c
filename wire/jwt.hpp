// HS256 JSON Web Token verification for the Socket.IO CONNECT `auth.token` (SPEC §6).
// Pure: no clock (the caller passes `now`), no logging, no I/O; any thread. The error
// messages are precise for the log; clients are only ever told "unauthorized".
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "decoder/result.hpp"

namespace walcast {

// What a verified token grants.
struct Claims {
    std::string subject;                  // `sub`: the user id
    std::string tenant;                   // the configured tenant claim
    std::int64_t expires_at = 0;          // `exp`, Unix seconds (fractions truncated)
    // `projects`: project ids the token grants (project_access = "token"). Absent claim:
    // nullopt, which grants none.
    std::optional<std::vector<std::string>> projects;
};

// Verifies a compact JWS `header.payload.signature` signed with HMAC-SHA256 under `secret`.
// Refused: anything but three base64url parts; a header whose `alg` is not exactly "HS256"
// (none, RS256, HS512 ... are never tried); a `crit` header; a signature that does not match
// (compared in constant time); `exp` missing or at/before `now`; `nbf` after `now`; `sub`
// or the tenant claim missing, empty or not a string; `projects` present but not an array of
// strings. An empty secret refuses every token. Times are Unix seconds.
Result<Claims> verify_jwt(std::string_view token, std::string_view secret, std::int64_t now_unix_seconds,
                          const std::string& tenant_claim);

// Mints an HS256 token whose payload is `claims_json` (used verbatim). For tests and for
// `walcast demo`, which hands its page a token.
std::string sign_jwt_hs256(std::string_view claims_json, std::string_view secret);

// The base64url HMAC-SHA256 of `signing_input` ("<header>.<payload>") under `secret`: the
// third part of an HS256 token.
std::string hs256_signature(std::string_view signing_input, std::string_view secret);

// Base64url (RFC 4648 §5) without padding, as JWS uses it.
std::string base64url_encode(std::string_view bytes);
// Strict decode: no padding, no whitespace, no bits left over in the last character.
std::optional<std::string> base64url_decode(std::string_view text);

}  // namespace walcast
