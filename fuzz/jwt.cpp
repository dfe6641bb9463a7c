// libFuzzer target: a token presented at CONNECT, verified against a fixed secret. Invariants:
// a refusal says why; nothing the fuzzer writes verifies unless it carries the right HMAC,
// which it cannot forge, so any accepted token must have been signed here; an accepted token
// expires after `now` and no later than year 9999; a policy (audience, issuer) only ever
// refuses more, never changes what is granted; the tenant-claim overload is the policy-free
// one. Also: base64url decoding inverts encoding for any bytes, and jwt_secret_problem
// refuses exactly the secrets under 32 bytes.
#include <cstdlib>

#include "wire/jwt.hpp"

namespace {

constexpr std::string_view kSecret = "fuzz-secret";
constexpr std::int64_t kNow = 1'800'000'000;

// The input's length picks which checks a policy adds, so every corpus entry is tried under
// one of the four.
walcast::JwtPolicy policy_for(std::size_t size) {
    walcast::JwtPolicy policy;
    if (size & 1) policy.audience = "walcast";
    if (size & 2) policy.issuer = "https://auth.example";
    return policy;
}

void check_granted(const walcast::Claims& claims) {
    if (claims.subject.empty() || claims.tenant.empty()) std::abort();
    if (claims.expires_at <= kNow || claims.expires_at > walcast::kMaxJwtTime) std::abort();
}

bool same_claims(const walcast::Claims& a, const walcast::Claims& b) {
    return a.subject == b.subject && a.tenant == b.tenant && a.expires_at == b.expires_at && a.projects == b.projects;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    const walcast::JwtPolicy policy = policy_for(size);

    auto claims = walcast::verify_jwt(input, kSecret, kNow, policy);
    if (!claims) {
        if (claims.error().message.empty()) std::abort();
    } else {
        // Accepted: the signature part must be the HMAC of the rest.
        const auto dot = input.rfind('.');
        if (dot == std::string_view::npos || input.substr(dot + 1) != walcast::hs256_signature(input.substr(0, dot), kSecret))
            std::abort();
        check_granted(*claims);
    }

    // The input as claims, signed with the secret: verifies exactly when the claims are valid,
    // and never crashes either way.
    const std::string token = walcast::sign_jwt_hs256(input, kSecret);
    auto plain = walcast::verify_jwt(token, kSecret, kNow, walcast::JwtPolicy{});
    auto old_overload = walcast::verify_jwt(token, kSecret, kNow, std::string("tenantId"));
    if (plain.ok() != old_overload.ok()) std::abort();
    if (plain.ok() ? !same_claims(*plain, *old_overload) : plain.error().message != old_overload.error().message)
        std::abort();
    auto narrowed = walcast::verify_jwt(token, kSecret, kNow, policy);
    if (!narrowed) {
        if (narrowed.error().message.empty()) std::abort();
    } else {
        if (!plain || !same_claims(*plain, *narrowed)) std::abort();
        check_granted(*narrowed);
    }
    if (plain) check_granted(*plain);

    const auto decoded = walcast::base64url_decode(walcast::base64url_encode(input));
    if (!decoded || *decoded != input) std::abort();

    if (walcast::jwt_secret_problem(input).has_value() != (size < walcast::kMinJwtSecretBytes)) std::abort();
    return 0;
}
