// libFuzzer target: a token presented at CONNECT, verified against a fixed secret. Invariants:
// a refusal says why; nothing the fuzzer writes verifies unless it carries the right HMAC,
// which it cannot forge, so any accepted token must have been signed here. Also: base64url
// decoding inverts encoding for any bytes.
#include <cstdlib>

#include "wire/jwt.hpp"

namespace {
constexpr std::string_view kSecret = "fuzz-secret";
constexpr std::int64_t kNow = 1'800'000'000;
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);

    auto claims = walcast::verify_jwt(input, kSecret, kNow, "tenantId");
    if (!claims) {
        if (claims.error().message.empty()) std::abort();
    } else {
        // Accepted: the signature part must be the HMAC of the rest.
        const auto dot = input.rfind('.');
        if (dot == std::string_view::npos || input.substr(dot + 1) != walcast::hs256_signature(input.substr(0, dot), kSecret))
            std::abort();
        if (claims->subject.empty() || claims->tenant.empty() || claims->expires_at <= kNow) std::abort();
    }

    // The input as claims, signed with the secret: verifies exactly when the claims are valid,
    // and never crashes either way.
    (void)walcast::verify_jwt(walcast::sign_jwt_hs256(input, kSecret), kSecret, kNow, "tenantId");

    const auto decoded = walcast::base64url_decode(walcast::base64url_encode(input));
    if (!decoded || *decoded != input) std::abort();
    return 0;
}
