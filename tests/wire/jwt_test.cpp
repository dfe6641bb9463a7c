// HS256 JWT verification: the accepted token, and every refusal with its precise reason.
#include <doctest/doctest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "wire/jwt.hpp"

using namespace walcast;

namespace {

constexpr const char* kSecret = "s3cret-key-for-tests";
constexpr std::int64_t kNow = 1800000000;

std::string b64(std::string_view s) { return base64url_encode(s); }

// A token with an arbitrary header, signed with HMAC-SHA256 whatever the header says.
std::string signed_with_header(std::string_view header, std::string_view claims) {
    std::string signing_input = b64(header) + "." + b64(claims);
    return signing_input + "." + hs256_signature(signing_input, kSecret);
}

Result<Claims> verify(const std::string& token, std::int64_t now = kNow) {
    return verify_jwt(token, kSecret, now, "tenantId");
}

std::string error_of(const Result<Claims>& r) {
    REQUIRE_FALSE(r.ok());
    return r.error().message;
}

const std::string kClaims = R"({"sub":"u1","tenantId":"acme","exp":1800000600})";

}  // namespace

TEST_SUITE("jwt") {

TEST_CASE("base64url round trip and strictness") {
    for (const std::string& s : std::vector<std::string>{"", "f", "fo", "foo", "foob", "fooba", "foobar",
                                                          std::string("\xff\xfe\x00\x01", 4)})
        CHECK(base64url_decode(base64url_encode(s)) == s);
    CHECK(base64url_encode("\xfb\xff") == "-_8");
    CHECK_FALSE(base64url_decode("Zm9v=").has_value());   // padding
    CHECK_FALSE(base64url_decode("Zm9v+").has_value());   // base64, not base64url
    CHECK_FALSE(base64url_decode("Z").has_value());       // 6 bits
    CHECK_FALSE(base64url_decode("Zh").has_value());      // non-zero leftover bits
    CHECK(base64url_decode("Zg") == std::string("f"));
}

TEST_CASE("a valid token yields its claims") {
    auto r = verify(sign_jwt_hs256(kClaims, kSecret));
    REQUIRE_MESSAGE(r.ok(), (r ? "" : r.error().message));
    CHECK(r->subject == "u1");
    CHECK(r->tenant == "acme");
    CHECK(r->expires_at == 1800000600);
    CHECK_FALSE(r->projects.has_value());
}

TEST_CASE("the tenant claim name is configurable") {
    auto token = sign_jwt_hs256(R"({"sub":"u1","org":"acme","exp":1800000600})", kSecret);
    auto r = verify_jwt(token, kSecret, kNow, "org");
    REQUIRE(r.ok());
    CHECK(r->tenant == "acme");
    CHECK(error_of(verify(token)) == "token has no tenantId claim");
}

TEST_CASE("projects claim is parsed") {
    auto r = verify(sign_jwt_hs256(R"({"sub":"u1","tenantId":"acme","exp":1800000600,"projects":["p1","p2"]})", kSecret));
    REQUIRE(r.ok());
    REQUIRE(r->projects.has_value());
    CHECK(*r->projects == std::vector<std::string>{"p1", "p2"});

    auto empty = verify(sign_jwt_hs256(R"({"sub":"u1","tenantId":"acme","exp":1800000600,"projects":[]})", kSecret));
    REQUIRE(empty.ok());
    CHECK(empty->projects->empty());

    CHECK(error_of(verify(sign_jwt_hs256(R"({"sub":"u1","tenantId":"acme","exp":1800000600,"projects":"p1"})",
                                         kSecret))) == "token claim projects is not an array");
    CHECK(error_of(verify(sign_jwt_hs256(R"({"sub":"u1","tenantId":"acme","exp":1800000600,"projects":["p1",2]})",
                                         kSecret))) == "token claim projects holds a value that is not a string");
}

TEST_CASE("missing parts") {
    CHECK(error_of(verify("")) == "token is empty");
    CHECK(error_of(verify("abc")) == "token is not three dot-separated parts");
    CHECK(error_of(verify("abc.def")) == "token is not three dot-separated parts");
    CHECK(error_of(verify(sign_jwt_hs256(kClaims, kSecret) + ".x")) == "token is not three dot-separated parts");
}

TEST_CASE("bad base64") {
    const std::string good = sign_jwt_hs256(kClaims, kSecret);
    const auto dot1 = good.find('.'), dot2 = good.rfind('.');
    CHECK(error_of(verify("e$J." + good.substr(dot1 + 1))) == "token header is not base64url");
    CHECK(error_of(verify(good.substr(0, dot2) + ".a+b/")) == "token signature is not base64url");
    // The payload is only decoded once the signature over its text has matched.
    const std::string input = b64(R"({"alg":"HS256"})") + ".pay*load";
    CHECK(error_of(verify(input + "." + hs256_signature(input, kSecret))) == "token payload is not base64url");
}

TEST_CASE("header and payload must be JSON objects") {
    CHECK(error_of(verify(b64("not json") + "." + b64(kClaims) + ".AAAA")).rfind("token header is not valid JSON", 0) == 0);
    CHECK(error_of(verify(b64("[1]") + "." + b64(kClaims) + ".AAAA")) == "token header is not a JSON object");
    CHECK(error_of(verify(signed_with_header(R"({"alg":"HS256"})", "[]"))) == "token payload is not a JSON object");
    CHECK(error_of(verify(signed_with_header(R"({"alg":"HS256"})", "{\"sub\":"))).rfind("token payload is not valid JSON",
                                                                                          0) == 0);
}

TEST_CASE("wrong signature") {
    CHECK(error_of(verify(sign_jwt_hs256(kClaims, "another-secret"))) == "token signature does not match");
    std::string token = sign_jwt_hs256(kClaims, kSecret);
    // Same signature, claims changed.
    const auto dot1 = token.find('.'), dot2 = token.rfind('.');
    std::string forged = token.substr(0, dot1 + 1) + b64(R"({"sub":"admin","tenantId":"acme","exp":1800000600})") +
                         token.substr(dot2);
    CHECK(error_of(verify(forged)) == "token signature does not match");
    // Truncated signature.
    CHECK(error_of(verify(token.substr(0, token.size() - 4))) == "token signature does not match");
    CHECK(error_of(verify(token.substr(0, dot2 + 1))) == "token signature does not match");
}

TEST_CASE("alg none is refused") {
    std::string token = b64(R"({"alg":"none","typ":"JWT"})") + "." + b64(kClaims) + ".";
    CHECK(error_of(verify(token)) == "token alg \"none\" is not HS256");
    // Even when "signed" with the secret.
    CHECK(error_of(verify(signed_with_header(R"({"alg":"none"})", kClaims))) == "token alg \"none\" is not HS256");
}

TEST_CASE("other algorithms are refused") {
    CHECK(error_of(verify(signed_with_header(R"({"alg":"RS256","typ":"JWT"})", kClaims))) ==
          "token alg \"RS256\" is not HS256");
    CHECK(error_of(verify(signed_with_header(R"({"alg":"HS512"})", kClaims))) == "token alg \"HS512\" is not HS256");
    CHECK(error_of(verify(signed_with_header(R"({"alg":"hs256"})", kClaims))) == "token alg \"hs256\" is not HS256");
    CHECK(error_of(verify(signed_with_header(R"({"typ":"JWT"})", kClaims))) == "token header has no alg");
    CHECK(error_of(verify(signed_with_header(R"({"alg":256})", kClaims))) == "token header alg is not a string");
    CHECK(error_of(verify(signed_with_header(R"({"alg":"HS256","crit":["b64"]})", kClaims))) ==
          "token header has crit extensions, none are supported");
}

TEST_CASE("expiry") {
    auto token = sign_jwt_hs256(kClaims, kSecret);
    CHECK(verify(token, 1800000599).ok());
    CHECK(error_of(verify(token, 1800000600)) == "token expired at 1800000600 (now 1800000600)");
    CHECK(error_of(verify(token, 1900000000)) == "token expired at 1800000600 (now 1900000000)");
    CHECK(error_of(verify(sign_jwt_hs256(R"({"sub":"u1","tenantId":"acme"})", kSecret))) == "token has no exp claim");
    CHECK(error_of(verify(sign_jwt_hs256(R"({"sub":"u1","tenantId":"acme","exp":"1800000600"})", kSecret))) ==
          "token claim exp is not a number");
    // Fractional NumericDate.
    CHECK(verify(sign_jwt_hs256(R"({"sub":"u1","tenantId":"acme","exp":1800000000.5})", kSecret)).ok());
}

TEST_CASE("not before") {
    auto future = sign_jwt_hs256(R"({"sub":"u1","tenantId":"acme","exp":1800000600,"nbf":1800000060})", kSecret);
    CHECK(error_of(verify(future)) == "token not valid before 1800000060 (now 1800000000)");
    CHECK(verify(future, 1800000060).ok());
    CHECK(error_of(verify(sign_jwt_hs256(R"({"sub":"u1","tenantId":"acme","exp":1800000600,"nbf":null})", kSecret))) ==
          "token claim nbf is not a number");
}

TEST_CASE("subject and tenant are required strings") {
    CHECK(error_of(verify(sign_jwt_hs256(R"({"tenantId":"acme","exp":1800000600})", kSecret))) ==
          "token has no sub claim");
    CHECK(error_of(verify(sign_jwt_hs256(R"({"sub":42,"tenantId":"acme","exp":1800000600})", kSecret))) ==
          "token claim sub is not a string");
    CHECK(error_of(verify(sign_jwt_hs256(R"({"sub":"","tenantId":"acme","exp":1800000600})", kSecret))) ==
          "token claim sub is empty");
    CHECK(error_of(verify(sign_jwt_hs256(R"({"sub":"u1","exp":1800000600})", kSecret))) ==
          "token has no tenantId claim");
    CHECK(error_of(verify(sign_jwt_hs256(R"({"sub":"u1","tenantId":["acme"],"exp":1800000600})", kSecret))) ==
          "token claim tenantId is not a string");
}

TEST_CASE("exp far in the future is kept exactly") {
    // 3000-01-01T00:00:00Z and 9999-12-31T23:59:59Z.
    for (std::int64_t exp : {std::int64_t{32503680000}, kMaxJwtTime}) {
        auto r = verify(sign_jwt_hs256(R"({"sub":"u1","tenantId":"acme","exp":)" + std::to_string(exp) + "}", kSecret));
        REQUIRE_MESSAGE(r.ok(), (r ? "" : r.error().message));
        CHECK(r->expires_at == exp);
    }
    // Written as a float or with an exponent, still exact.
    auto as_float = verify(sign_jwt_hs256(R"({"sub":"u1","tenantId":"acme","exp":253402300799.0})", kSecret));
    REQUIRE(as_float.ok());
    CHECK(as_float->expires_at == kMaxJwtTime);
    auto as_exponent = verify(sign_jwt_hs256(R"({"sub":"u1","tenantId":"acme","exp":3.2503680000e10})", kSecret));
    REQUIRE(as_exponent.ok());
    CHECK(as_exponent->expires_at == 32503680000);
    // Valid up to the last second before exp.
    CHECK(verify(sign_jwt_hs256(R"({"sub":"u1","tenantId":"acme","exp":253402300799})", kSecret), kMaxJwtTime - 1).ok());
    CHECK(error_of(verify(sign_jwt_hs256(R"({"sub":"u1","tenantId":"acme","exp":253402300799})", kSecret),
                          kMaxJwtTime)) == "token expired at 253402300799 (now 253402300799)");
}

TEST_CASE("a fractional exp rounds up: unexpired exactly while now < expires_at") {
    auto token = sign_jwt_hs256(R"({"sub":"u1","tenantId":"acme","exp":1800000000.25})", kSecret);
    auto r = verify(token, 1800000000);
    REQUIRE(r.ok());
    CHECK(r->expires_at == 1800000001);
    CHECK(error_of(verify(token, 1800000001)) == "token expired at 1800000001 (now 1800000001)");
    auto nbf = sign_jwt_hs256(R"({"sub":"u1","tenantId":"acme","exp":1900000000,"nbf":1800000000.5})", kSecret);
    CHECK(error_of(verify(nbf, 1800000000)) == "token not valid before 1800000001 (now 1800000000)");
    CHECK(verify(nbf, 1800000001).ok());
}

TEST_CASE("exp and nbf outside 1970..9999 are refused, not clamped") {
    auto with_exp = [](const std::string& exp) {
        return error_of(verify(sign_jwt_hs256(R"({"sub":"u1","tenantId":"acme","exp":)" + exp + "}", kSecret)));
    };
    CHECK(with_exp("253402300800") == "token claim exp 253402300800 is outside 0..253402300799 (1970 to the end of year 9999)");
    CHECK(with_exp("253402300799.5") ==
          "token claim exp 253402300799.5 is outside 0..253402300799 (1970 to the end of year 9999)");
    CHECK(with_exp("9223372036854775807") ==
          "token claim exp 9223372036854775807 is outside 0..253402300799 (1970 to the end of year 9999)");
    CHECK(with_exp("18446744073709551615") ==
          "token claim exp 18446744073709551615 is outside 0..253402300799 (1970 to the end of year 9999)");
    CHECK(with_exp("1e300") == "token claim exp 1.0000000000000001e+300 is outside 0..253402300799 (1970 to the end of year 9999)");
    CHECK(with_exp("-1") == "token claim exp -1 is outside 0..253402300799 (1970 to the end of year 9999)");
    CHECK(with_exp("-9223372036854775808") ==
          "token claim exp -9223372036854775808 is outside 0..253402300799 (1970 to the end of year 9999)");
    CHECK(with_exp("-1e300") ==
          "token claim exp -1.0000000000000001e+300 is outside 0..253402300799 (1970 to the end of year 9999)");
    CHECK(with_exp("-0.5") == "token claim exp -0.5 is outside 0..253402300799 (1970 to the end of year 9999)");
    // JSON has no NaN or Infinity, and a literal too big for a double is not valid JSON.
    CHECK(with_exp("NaN").rfind("token payload is not valid JSON", 0) == 0);
    CHECK(with_exp("1e400").rfind("token payload is not valid JSON", 0) == 0);
    CHECK(error_of(verify(sign_jwt_hs256(R"({"sub":"u1","tenantId":"acme","exp":1900000000,"nbf":1e19})", kSecret))) ==
          "token claim nbf 1e+19 is outside 0..253402300799 (1970 to the end of year 9999)");
    // Any `now` compares without overflow.
    auto token = sign_jwt_hs256(kClaims, kSecret);
    CHECK(verify(token, std::numeric_limits<std::int64_t>::min()).ok());
    CHECK(error_of(verify(token, std::numeric_limits<std::int64_t>::max())) ==
          "token expired at 1800000600 (now 9223372036854775807)");
}

TEST_CASE("audience") {
    JwtPolicy policy;
    policy.audience = "walcast";
    auto with_aud = [&](const std::string& aud) {
        return verify_jwt(sign_jwt_hs256(R"({"sub":"u1","tenantId":"acme","exp":1800000600)" + aud + "}", kSecret),
                          kSecret, kNow, policy);
    };
    CHECK(with_aud(R"(,"aud":"walcast")").ok());
    CHECK(with_aud(R"(,"aud":["other","walcast"])").ok());
    CHECK(error_of(with_aud(R"(,"aud":"other")")) == "token aud \"other\" is not \"walcast\"");
    CHECK(error_of(with_aud(R"(,"aud":"Walcast")")) == "token aud \"Walcast\" is not \"walcast\"");
    CHECK(error_of(with_aud(R"(,"aud":["a","b"])")) == "token aud (2 values) does not include \"walcast\"");
    CHECK(error_of(with_aud(R"(,"aud":[])")) == "token aud (0 values) does not include \"walcast\"");
    CHECK(error_of(with_aud("")) == "token has no aud claim (audience \"walcast\" is required)");
    CHECK(error_of(with_aud(R"(,"aud":["walcast",1])")) == "token claim aud holds a value that is not a string");
    CHECK(error_of(with_aud(R"(,"aud":{"walcast":true})")) == "token claim aud is not a string or an array of strings");
    CHECK(error_of(with_aud(R"(,"aud":null)")) == "token claim aud is not a string or an array of strings");

    // No audience configured: aud is not looked at.
    for (const char* aud : {R"(,"aud":"other")", R"(,"aud":42)", ""})
        CHECK(verify(sign_jwt_hs256(R"({"sub":"u1","tenantId":"acme","exp":1800000600)" + std::string(aud) + "}",
                                    kSecret))
                  .ok());
}

TEST_CASE("issuer") {
    JwtPolicy policy;
    policy.issuer = "https://auth.example";
    auto with_iss = [&](const std::string& iss) {
        return verify_jwt(sign_jwt_hs256(R"({"sub":"u1","tenantId":"acme","exp":1800000600)" + iss + "}", kSecret),
                          kSecret, kNow, policy);
    };
    CHECK(with_iss(R"(,"iss":"https://auth.example")").ok());
    CHECK(error_of(with_iss(R"(,"iss":"https://evil.example")")) ==
          "token iss \"https://evil.example\" is not \"https://auth.example\"");
    CHECK(error_of(with_iss(R"(,"iss":"https://auth.example/")")) ==
          "token iss \"https://auth.example/\" is not \"https://auth.example\"");
    CHECK(error_of(with_iss("")) == "token has no iss claim (issuer \"https://auth.example\" is required)");
    CHECK(error_of(with_iss(R"(,"iss":["https://auth.example"])")) == "token claim iss is not a string");

    // Both at once, and a custom tenant claim through the policy.
    policy.audience = "walcast";
    policy.tenant_claim = "org";
    auto r = verify_jwt(
        sign_jwt_hs256(R"({"sub":"u1","org":"acme","exp":1800000600,"aud":"walcast","iss":"https://auth.example"})",
                       kSecret),
        kSecret, kNow, policy);
    REQUIRE_MESSAGE(r.ok(), (r ? "" : r.error().message));
    CHECK(r->tenant == "acme");
}

TEST_CASE("the tenant-claim overload is the policy without audience and issuer") {
    const std::string token =
        sign_jwt_hs256(R"({"sub":"u1","org":"acme","exp":1800000600,"aud":"x","iss":"y"})", kSecret);
    auto old_style = verify_jwt(token, kSecret, kNow, std::string("org"));
    JwtPolicy policy;
    policy.tenant_claim = "org";
    auto new_style = verify_jwt(token, kSecret, kNow, policy);
    REQUIRE(old_style.ok());
    REQUIRE(new_style.ok());
    CHECK(old_style->subject == new_style->subject);
    CHECK(old_style->tenant == new_style->tenant);
    CHECK(old_style->expires_at == new_style->expires_at);
    CHECK(error_of(verify_jwt(token, kSecret, kNow, "tenantId")) == "token has no tenantId claim");
}

TEST_CASE("secret strength") {
    CHECK(jwt_secret_problem("") == std::string("the JWT secret is empty; generate one with: head -c 32 /dev/urandom | base64"));
    CHECK(jwt_secret_problem("abc") ==
          std::string("the JWT secret has 3 bytes; HS256 secrets under 32 bytes can be brute-forced offline from a "
                      "single token (RFC 7518 requires at least 32); generate one with: head -c 32 /dev/urandom | base64"));
    CHECK(jwt_secret_problem("x")->rfind("the JWT secret has 1 byte;", 0) == 0);
    CHECK(jwt_secret_problem(std::string(31, 'k'))->rfind("the JWT secret has 31 bytes;", 0) == 0);
    CHECK_FALSE(jwt_secret_problem(std::string(kMinJwtSecretBytes, 'k')).has_value());
    CHECK_FALSE(jwt_secret_problem(std::string(64, 'k')).has_value());
    // Bytes, not characters: 11 three-byte characters are 33 bytes.
    std::string euros;
    for (int i = 0; i < 11; ++i) euros += "\xe2\x82\xac";
    CHECK_FALSE(jwt_secret_problem(euros).has_value());
}

TEST_CASE("an empty secret refuses everything") {
    auto token = sign_jwt_hs256(kClaims, "");
    auto r = verify_jwt(token, "", kNow, "tenantId");
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message == "no JWT secret is configured");
}

}  // TEST_SUITE
