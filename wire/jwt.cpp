// HS256 JWT verification (see jwt.hpp). OpenSSL computes the HMAC; RapidJSON parses the
// header and claims. Pure; any thread.
#include "wire/jwt.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <rapidjson/document.h>
#include <rapidjson/error/en.h>

#include <cmath>
#include <cstdio>

namespace walcast {

namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

// 0-63 for base64url characters, -1 for anything else.
struct DecodeTable {
    signed char value[256];
    constexpr DecodeTable() : value() {
        for (int i = 0; i < 256; ++i) value[i] = -1;
        for (int i = 0; i < 64; ++i) value[static_cast<unsigned char>(kAlphabet[i])] = static_cast<signed char>(i);
    }
};
constexpr DecodeTable kDecode{};

constexpr std::size_t kSha256Bytes = 32;

bool hmac_sha256(std::string_view key, std::string_view data, unsigned char (&out)[kSha256Bytes]) {
    unsigned int len = 0;
    // A non-null key pointer even for an empty key: OpenSSL treats NULL as "reuse the key".
    static const unsigned char empty = 0;
    const void* k = key.empty() ? static_cast<const void*>(&empty) : key.data();
    const unsigned char* r = HMAC(EVP_sha256(), k, static_cast<int>(key.size()),
                                  reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &len);
    return r != nullptr && len == kSha256Bytes;
}

// A short printable rendering of an attacker-supplied string, for error messages.
std::string excerpt(std::string_view s) {
    std::string out = "\"";
    for (std::size_t i = 0; i < s.size() && i < 24; ++i) {
        const unsigned char c = static_cast<unsigned char>(s[i]);
        out.push_back(c >= 0x20 && c < 0x7F && c != '"' ? static_cast<char>(c) : '?');
    }
    if (s.size() > 24) out += "...";
    out.push_back('"');
    return out;
}

Result<rapidjson::Document> parse_part(std::string_view text, const char* what) {
    rapidjson::Document doc;
    // Not kParseFullPrecisionFlag: RapidJSON 1.1.0's full-precision path has undefined
    // behaviour on numbers such as -0e300. The default path is exact for the NumericDates
    // that matter (integers, and decimals up to 15 significant digits).
    doc.Parse<rapidjson::kParseValidateEncodingFlag | rapidjson::kParseIterativeFlag>(text.data(), text.size());
    if (doc.HasParseError())
        return make_error(std::string("token ") + what + " is not valid JSON (byte " +
                          std::to_string(doc.GetErrorOffset()) + ": " + rapidjson::GetParseError_En(doc.GetParseError()) +
                          ")");
    if (!doc.IsObject()) return make_error(std::string("token ") + what + " is not a JSON object");
    return Result<rapidjson::Document>(std::move(doc));
}

// A JSON number for an error message: integers exactly, anything else as %.17g.
std::string number_text(const rapidjson::Value& v) {
    if (v.IsInt64()) return std::to_string(v.GetInt64());
    if (v.IsUint64()) return std::to_string(v.GetUint64());
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.17g", v.GetDouble());
    return buf;
}

// Reads a NumericDate claim (integer or fractional seconds) as whole Unix seconds, a fraction
// rounded up. nullopt: absent; an error when present but not a number or outside
// 0..kMaxJwtTime. The range is checked before any conversion, so no value overflows.
Result<std::optional<std::int64_t>> numeric_date(const rapidjson::Value& claims, const char* name) {
    auto it = claims.FindMember(name);
    if (it == claims.MemberEnd()) return std::optional<std::int64_t>();
    const rapidjson::Value& v = it->value;
    if (!v.IsNumber()) return make_error(std::string("token claim ") + name + " is not a number");
    auto out_of_range = [&] {
        return make_error(std::string("token claim ") + name + " " + number_text(v) + " is outside 0.." +
                          std::to_string(kMaxJwtTime) + " (1970 to the end of year 9999)");
    };
    if (v.IsInt64()) {
        const std::int64_t t = v.GetInt64();
        if (t < 0 || t > kMaxJwtTime) return out_of_range();
        return std::optional<std::int64_t>(t);
    }
    if (v.IsUint64()) return out_of_range();  // above INT64_MAX
    const double d = v.GetDouble();
    // Written so that NaN fails too; kMaxJwtTime is exact as a double.
    if (!(d >= 0.0 && d <= static_cast<double>(kMaxJwtTime))) return out_of_range();
    return std::optional<std::int64_t>(static_cast<std::int64_t>(std::ceil(d)));
}

Result<std::string> required_string(const rapidjson::Value& claims, const std::string& name) {
    auto it = claims.FindMember(rapidjson::StringRef(name.data(), name.size()));
    if (it == claims.MemberEnd()) return make_error("token has no " + name + " claim");
    if (!it->value.IsString()) return make_error("token claim " + name + " is not a string");
    if (it->value.GetStringLength() == 0) return make_error("token claim " + name + " is empty");
    return std::string(it->value.GetString(), it->value.GetStringLength());
}

std::string_view string_of(const rapidjson::Value& v) { return {v.GetString(), v.GetStringLength()}; }

// `aud` must name `audience`: as a string, or as one element of an array of strings.
std::optional<Error> audience_problem(const rapidjson::Value& claims, const std::string& audience) {
    auto it = claims.FindMember("aud");
    if (it == claims.MemberEnd()) return make_error("token has no aud claim (audience \"" + audience + "\" is required)");
    const rapidjson::Value& aud = it->value;
    if (aud.IsString()) {
        if (string_of(aud) == audience) return std::nullopt;
        return make_error("token aud " + excerpt(string_of(aud)) + " is not \"" + audience + "\"");
    }
    if (!aud.IsArray()) return make_error("token claim aud is not a string or an array of strings");
    bool found = false;
    for (const auto& a : aud.GetArray()) {
        if (!a.IsString()) return make_error("token claim aud holds a value that is not a string");
        found = found || string_of(a) == audience;
    }
    if (found) return std::nullopt;
    return make_error("token aud (" + std::to_string(aud.Size()) + (aud.Size() == 1 ? " value" : " values") +
                      ") does not include \"" + audience + "\"");
}

std::optional<Error> issuer_problem(const rapidjson::Value& claims, const std::string& issuer) {
    auto it = claims.FindMember("iss");
    if (it == claims.MemberEnd()) return make_error("token has no iss claim (issuer \"" + issuer + "\" is required)");
    if (!it->value.IsString()) return make_error("token claim iss is not a string");
    if (string_of(it->value) != issuer)
        return make_error("token iss " + excerpt(string_of(it->value)) + " is not \"" + issuer + "\"");
    return std::nullopt;
}

}  // namespace

std::optional<std::string> jwt_secret_problem(std::string_view secret) {
    static const std::string kHowTo = "generate one with: head -c 32 /dev/urandom | base64";
    if (secret.empty()) return "the JWT secret is empty; " + kHowTo;
    if (secret.size() >= kMinJwtSecretBytes) return std::nullopt;
    return "the JWT secret has " + std::to_string(secret.size()) + (secret.size() == 1 ? " byte" : " bytes") +
           "; HS256 secrets under " + std::to_string(kMinJwtSecretBytes) +
           " bytes can be brute-forced offline from a single token (RFC 7518 requires at least 32); " + kHowTo;
}

std::string base64url_encode(std::string_view bytes) {
    std::string out;
    out.reserve((bytes.size() * 4 + 2) / 3);
    std::size_t i = 0;
    auto byte = [&](std::size_t k) { return static_cast<unsigned char>(bytes[k]); };
    for (; i + 3 <= bytes.size(); i += 3) {
        const std::uint32_t v = (byte(i) << 16) | (byte(i + 1) << 8) | byte(i + 2);
        out.push_back(kAlphabet[(v >> 18) & 63]);
        out.push_back(kAlphabet[(v >> 12) & 63]);
        out.push_back(kAlphabet[(v >> 6) & 63]);
        out.push_back(kAlphabet[v & 63]);
    }
    if (bytes.size() - i == 1) {
        const std::uint32_t v = byte(i) << 16;
        out.push_back(kAlphabet[(v >> 18) & 63]);
        out.push_back(kAlphabet[(v >> 12) & 63]);
    } else if (bytes.size() - i == 2) {
        const std::uint32_t v = (byte(i) << 16) | (byte(i + 1) << 8);
        out.push_back(kAlphabet[(v >> 18) & 63]);
        out.push_back(kAlphabet[(v >> 12) & 63]);
        out.push_back(kAlphabet[(v >> 6) & 63]);
    }
    return out;
}

std::optional<std::string> base64url_decode(std::string_view text) {
    // A lone character in the last group carries only 6 bits: not a whole byte.
    if (text.size() % 4 == 1) return std::nullopt;
    std::string out;
    out.reserve(text.size() * 3 / 4);
    std::uint32_t acc = 0;
    int bits = 0;
    for (char ch : text) {
        const int v = kDecode.value[static_cast<unsigned char>(ch)];
        if (v < 0) return std::nullopt;
        acc = (acc << 6) | static_cast<std::uint32_t>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out.push_back(static_cast<char>((acc >> bits) & 0xFF));
        }
    }
    // Canonical form only: the bits below the last whole byte must be zero.
    if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) return std::nullopt;
    return out;
}

std::string hs256_signature(std::string_view signing_input, std::string_view secret) {
    unsigned char mac[kSha256Bytes];
    if (!hmac_sha256(secret, signing_input, mac)) return std::string();
    return base64url_encode(std::string_view(reinterpret_cast<const char*>(mac), sizeof mac));
}

std::string sign_jwt_hs256(std::string_view claims_json, std::string_view secret) {
    std::string token = base64url_encode(R"({"alg":"HS256","typ":"JWT"})");
    token.push_back('.');
    token += base64url_encode(claims_json);
    const std::string signature = hs256_signature(token, secret);
    token.push_back('.');
    token += signature;
    return token;
}

Result<Claims> verify_jwt(std::string_view token, std::string_view secret, std::int64_t now,
                          const std::string& tenant_claim) {
    JwtPolicy policy;
    policy.tenant_claim = tenant_claim;
    return verify_jwt(token, secret, now, policy);
}

Result<Claims> verify_jwt(std::string_view token, std::string_view secret, std::int64_t now, const JwtPolicy& policy) {
    if (secret.empty()) return make_error("no JWT secret is configured");
    if (token.empty()) return make_error("token is empty");

    const std::size_t dot1 = token.find('.');
    const std::size_t dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
    if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos)
        return make_error("token is not three dot-separated parts");
    const std::string_view header_b64 = token.substr(0, dot1);
    const std::string_view payload_b64 = token.substr(dot1 + 1, dot2 - dot1 - 1);
    const std::string_view signature_b64 = token.substr(dot2 + 1);

    // The header decides nothing but must say HS256: the algorithm is fixed by configuration,
    // so a token cannot talk the server into "none" or into using the secret as an RSA key.
    const std::optional<std::string> header_text = base64url_decode(header_b64);
    if (!header_text) return make_error("token header is not base64url");
    auto header = parse_part(*header_text, "header");
    if (!header) return header.error();
    auto alg = header->FindMember("alg");
    if (alg == header->MemberEnd()) return make_error("token header has no alg");
    if (!alg->value.IsString()) return make_error("token header alg is not a string");
    const std::string_view alg_name(alg->value.GetString(), alg->value.GetStringLength());
    if (alg_name != "HS256") return make_error("token alg " + excerpt(alg_name) + " is not HS256");
    // RFC 7515 §4.1.11: extensions marked critical that we do not understand must be refused.
    if (header->HasMember("crit")) return make_error("token header has crit extensions, none are supported");

    const std::optional<std::string> signature = base64url_decode(signature_b64);
    if (!signature) return make_error("token signature is not base64url");
    unsigned char expected[kSha256Bytes];
    if (!hmac_sha256(secret, token.substr(0, dot2), expected)) return make_error("HMAC-SHA256 failed");
    if (signature->size() != kSha256Bytes || CRYPTO_memcmp(signature->data(), expected, kSha256Bytes) != 0)
        return make_error("token signature does not match");

    // Only a correctly signed payload is parsed.
    const std::optional<std::string> payload_text = base64url_decode(payload_b64);
    if (!payload_text) return make_error("token payload is not base64url");
    auto claims = parse_part(*payload_text, "payload");
    if (!claims) return claims.error();

    auto exp = numeric_date(*claims, "exp");
    if (!exp) return exp.error();
    if (!*exp) return make_error("token has no exp claim");
    if (now >= **exp)
        return make_error("token expired at " + std::to_string(**exp) + " (now " + std::to_string(now) + ")");
    auto nbf = numeric_date(*claims, "nbf");
    if (!nbf) return nbf.error();
    if (*nbf && **nbf > now)
        return make_error("token not valid before " + std::to_string(**nbf) + " (now " + std::to_string(now) + ")");

    Claims out;
    out.expires_at = **exp;
    auto sub = required_string(*claims, "sub");
    if (!sub) return sub.error();
    out.subject = std::move(*sub);
    auto tenant = required_string(*claims, policy.tenant_claim);
    if (!tenant) return tenant.error();
    out.tenant = std::move(*tenant);
    if (!policy.audience.empty())
        if (auto problem = audience_problem(*claims, policy.audience)) return *problem;
    if (!policy.issuer.empty())
        if (auto problem = issuer_problem(*claims, policy.issuer)) return *problem;

    auto projects = claims->FindMember("projects");
    if (projects != claims->MemberEnd()) {
        if (!projects->value.IsArray()) return make_error("token claim projects is not an array");
        std::vector<std::string> ids;
        ids.reserve(projects->value.Size());
        for (const auto& p : projects->value.GetArray()) {
            if (!p.IsString()) return make_error("token claim projects holds a value that is not a string");
            ids.emplace_back(p.GetString(), p.GetStringLength());
        }
        out.projects = std::move(ids);
    }
    return out;
}

}  // namespace walcast
