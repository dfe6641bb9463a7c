// HS256 JWT verification: the accepted token, and every refusal with its precise reason.
#include <doctest/doctest.h>

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

TEST_CASE("an empty secret refuses everything") {
    auto token = sign_jwt_hs256(kClaims, "");
    auto r = verify_jwt(token, "", kNow, "tenantId");
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message == "no JWT secret is configured");
}

}  // TEST_SUITE
