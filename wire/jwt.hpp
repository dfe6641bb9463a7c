// HS256 JSON Web Token verification for the Socket.IO CONNECT `auth.token`, and the check
// of the secret's strength at start-up. Pure: no clock (the caller passes `now`), no logging,
// no I/O; any thread. Error messages are precise for the log; clients only see "unauthorized".
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "decoder/result.hpp"

namespace walcast {

// The latest NumericDate accepted in `exp` and `nbf`: 9999-12-31T23:59:59Z, in Unix seconds.
constexpr std::int64_t kMaxJwtTime = 253402300799;

// HS256 keys shorter than the hash output (32 bytes) are forbidden by RFC 7518 §3.2: an
// attacker holding one token can search short or low-entropy secrets offline.
constexpr std::size_t kMinJwtSecretBytes = 32;

// Why `secret` must not be used to verify tokens (empty, or under kMinJwtSecretBytes bytes),
// as a sentence for the operator; nullopt when it is long enough. Length is all it can
// check: a 32-byte secret typed by hand can still be guessable.
std::optional<std::string> jwt_secret_problem(std::string_view secret);

// What a verified token grants.
struct Claims {
    std::string subject;  // `sub`: the user id
    std::string tenant;   // the configured tenant claim
    // `exp` in Unix seconds, exact for integers; a fractional `exp` is rounded up, so for an
    // integer `now` the token is unexpired exactly while now < expires_at. Range a caller can
    // rely on: now_unix_seconds < expires_at <= kMaxJwtTime (year 9999). In milliseconds it
    // fits an int64 (at most 2.54e14), in nanoseconds it does not: std::chrono::system_clock
    // time_points in nanoseconds end in 2262, so compute a timer as (expires_at - now) seconds
    // and cap it rather than converting expires_at to a time_point.
    std::int64_t expires_at = 0;
    // `projects`: project ids the token grants (project_access = "token"). Absent claim:
    // nullopt, which grants none.
    std::optional<std::vector<std::string>> projects;
};

// What a token must carry besides a valid signature, `sub` and an unexpired `exp`.
struct JwtPolicy {
    std::string tenant_claim = "tenantId";  // required non-empty string claim: the tenant id
    // When set, `aud` must be this string or an array of strings holding it (RFC 7519
    // §4.1.3). When empty, `aud` is not looked at, whatever it holds.
    std::string audience;
    // When set, `iss` must be a string equal to it (byte for byte). When empty, not looked at.
    std::string issuer;
};

// Verifies a compact JWS `header.payload.signature` signed with HMAC-SHA256 under `secret`.
// Refused: anything but three base64url parts; a header whose `alg` is not exactly "HS256"
// (none, RS256, HS512 ... are never tried); a `crit` header; a signature that does not match
// (compared in constant time); `exp` missing or at/before `now`; `nbf` after `now`; `exp` or
// `nbf` that is not a number, or outside 0..kMaxJwtTime (1970 to the end of year 9999: a
// refusal, never clamped, so expires_at is always the token's own value; a negative `exp`
// is refused as out of range, not as expired); `sub` or the tenant claim missing, empty or
// not a string; `projects` present but not an array of strings; `aud`/`iss` not matching a
// policy that sets them. An empty secret refuses every token; a short one is only refused by
// jwt_secret_problem, which start-up must call. Times are Unix seconds.
Result<Claims> verify_jwt(std::string_view token, std::string_view secret, std::int64_t now_unix_seconds,
                          const JwtPolicy& policy);

// The same with no audience or issuer check: JwtPolicy{tenant_claim}.
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
