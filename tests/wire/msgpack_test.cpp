// MessagePack: every format width encoded as @msgpack/msgpack 2.8 encodes it and decoded,
// the adapter's session blob byte for byte, blobs written by Node decoded and re-encoded
// unchanged, the JSON bridge, standard base64, and each malformed or oversized input
// refused with its reason and offset. The golden bytes were written by @msgpack/msgpack 2.8.0.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <string>

#include "wire/base64.hpp"
#include "wire/msgpack.hpp"

using namespace walcast;

namespace {

using T = MsgValue::Type;

std::string unhex(std::string_view hex) {
    std::string out;
    for (std::size_t i = 0; i + 1 < hex.size(); i += 2) out += static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16));
    return out;
}

std::string hex(std::string_view bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    for (unsigned char c : bytes) {
        out += digits[c >> 4];
        out += digits[c & 0xF];
    }
    return out;
}

MsgValue decoded(std::string_view bytes, const MsgpackLimits& limits = {}) {
    auto r = decode_msgpack(bytes, limits);
    REQUIRE_MESSAGE(r.ok(), hex(bytes.substr(0, 40)) << ": " << (r ? "" : r.error().message));
    return *r;
}

std::string refused(std::string_view bytes, const MsgpackLimits& limits = {}) {
    auto r = decode_msgpack(bytes, limits);
    REQUIRE_MESSAGE(!r.ok(), hex(bytes.substr(0, 40)) << " was accepted");
    return r.error().message;
}

// Encodes `v`, checks the bytes, and checks they decode back to `v`.
void check_form(const MsgValue& v, std::string_view expected_hex_prefix, std::size_t expected_size) {
    const std::string bytes = encode_msgpack(v);
    CHECK(hex(bytes).substr(0, expected_hex_prefix.size()) == expected_hex_prefix);
    CHECK(bytes.size() == expected_size);
    CHECK(decoded(bytes) == v);
}

const std::string kSid = "AAAAAAAAAAAAAAAAAAAA";
const std::string kPid = "BBBBBBBBBBBBBBBBBBBB";

// A session written by a Node server through @msgpack/msgpack 2.8.0: rooms [sid], and data
// {n:1, neg:-200, f:1.5, big:2**40, neg64:-(2**40), s:"é…😀", bin:Buffer[1,2,3], date:new Date(0),
// date2:new Date(1718000000123), nested:{a:[1,[2,[3]]]}, nul:null, t:true, u:undefined,
// arr16:Array(16).fill(0), str32:"y"*32, str256:"x"*256, map16:{k0:0..k15:15}}.
const std::string kNodeSessionBlob =
    "hKNzaWS0QUFBQUFBQUFBQUFBQUFBQUFBQUGjcGlktEJCQkJCQkJCQkJCQkJCQkJCQkJCpXJvb21zkbRBQUFBQUFBQUFBQUFBQUFBQUFBQaRkYXRh"
    "3gARoW4Bo25lZ9H/OKFmyz/4AAAAAAAAo2JpZ88AAAEAAAAAAKVuZWc2NNP///8AAAAAAKFzqcOp4oCm8J+YgKNiaW7EAwECA6RkYXRl1v8AAAAA"
    "pWRhdGUy1/8dU1MAZmaZgKZuZXN0ZWSBoWGSAZICkQOjbnVswKF0w6F1wKVhcnIxNtwAEAAAAAAAAAAAAAAAAAAAAAClc3RyMzLZIHl5eXl5eXl5"
    "eXl5eXl5eXl5eXl5eXl5eXl5eXl5eXl5pnN0cjI1NtoBAHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4"
    "eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4"
    "eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4"
    "eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHilbWFwMTbeABCiazAAomsxAaJrMgKiazMDoms0BKJrNQWiazYGoms3B6JrOAii"
    "azkJo2sxMAqjazExC6NrMTIMo2sxMw2jazE0DqNrMTUP";

}  // namespace

TEST_SUITE("msgpack") {

TEST_CASE("base64: RFC 4648 vectors, both alphabet ends, strict decoding") {
    const std::pair<const char*, const char*> vectors[] = {{"", ""},         {"f", "Zg=="},     {"fo", "Zm8="},
                                                           {"foo", "Zm9v"},  {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="},
                                                           {"foobar", "Zm9vYmFy"}};
    for (const auto& [plain, text] : vectors) {
        CHECK(base64_encode(plain) == text);
        auto back = base64_decode(text);
        REQUIRE(back.ok());
        CHECK(*back == plain);
    }
    CHECK(base64_encode("\xfb\xff\xbf") == "+/+/");
    CHECK(*base64_decode("+/+/") == "\xfb\xff\xbf");
    std::string all;
    for (int c = 0; c < 256; ++c) all += static_cast<char>(c);
    CHECK(*base64_decode(base64_encode(all)) == all);

    CHECK(base64_decode("Zg=").error().message == "base64: length 3 is not a multiple of 4");
    CHECK(base64_decode("Zh==").error().message == "base64: bits set after the last byte at offset 1");
    CHECK(base64_decode("Zm9=").error().message == "base64: bits set after the last byte at offset 2");
    CHECK(base64_decode("Z===").error().message == "base64: padding before the end at offset 1");
    CHECK(base64_decode("Zg==Zg==").error().message == "base64: padding before the end at offset 2");
    CHECK(base64_decode("Zm9v YmE").error().message == "base64: invalid character at offset 4");
    CHECK(base64_decode("-_-_").error().message == "base64: invalid character at offset 0");
}

TEST_CASE("scalars in the forms @msgpack/msgpack writes") {
    check_form(MsgValue::nil(), "c0", 1);
    check_form(MsgValue::of_bool(false), "c2", 1);
    check_form(MsgValue::of_bool(true), "c3", 1);
    // Unsigned, each width at its edges.
    check_form(MsgValue::of_uint(0), "00", 1);
    check_form(MsgValue::of_uint(127), "7f", 1);
    check_form(MsgValue::of_uint(128), "cc80", 2);
    check_form(MsgValue::of_uint(255), "ccff", 2);
    check_form(MsgValue::of_uint(256), "cd0100", 3);
    check_form(MsgValue::of_uint(65535), "cdffff", 3);
    check_form(MsgValue::of_uint(65536), "ce00010000", 5);
    check_form(MsgValue::of_uint(4294967296ULL), "cf0000000100000000", 9);
    check_form(MsgValue::of_uint(UINT64_MAX), "cfffffffffffffffff", 9);
    // Signed.
    check_form(MsgValue::of_int(-1), "ff", 1);
    check_form(MsgValue::of_int(-32), "e0", 1);
    check_form(MsgValue::of_int(-33), "d0df", 2);
    check_form(MsgValue::of_int(-128), "d080", 2);
    check_form(MsgValue::of_int(-129), "d1ff7f", 3);
    check_form(MsgValue::of_int(-32768), "d18000", 3);
    check_form(MsgValue::of_int(-32769), "d2ffff7fff", 5);
    check_form(MsgValue::of_int(-2147483648LL), "d280000000", 5);
    check_form(MsgValue::of_int(-2147483649LL), "d3ffffffff7fffffff", 9);
    check_form(MsgValue::of_int(INT64_MIN), "d38000000000000000", 9);
    check_form(MsgValue::of_int(300), "cd012c", 3);  // a non-negative Int takes the unsigned forms
    // Floats: always float64.
    check_form(MsgValue::of_float(1.5), "cb3ff8000000000000", 9);
    check_form(MsgValue::of_float(0.1), "cb3fb999999999999a", 9);
    check_form(MsgValue::of_float(std::numeric_limits<double>::quiet_NaN()), "cb7ff8", 9);
}

TEST_CASE("strings, binaries and ext payloads at every width") {
    check_form(MsgValue::of_string(""), "a0", 1);
    check_form(MsgValue::of_string(std::string(31, 'a')), "bf61", 32);
    check_form(MsgValue::of_string(std::string(32, 'a')), "d92061", 34);
    check_form(MsgValue::of_string(std::string(255, 'a')), "d9ff61", 257);
    check_form(MsgValue::of_string(std::string(256, 'a')), "da010061", 259);
    check_form(MsgValue::of_string(std::string(65535, 'a')), "daffff61", 65538);
    check_form(MsgValue::of_string(std::string(65536, 'a')), "db0001000061", 65541);
    check_form(MsgValue::of_binary(""), "c400", 2);
    check_form(MsgValue::of_binary(std::string(255, '\1')), "c4ff01", 257);
    check_form(MsgValue::of_binary(std::string(256, '\1')), "c5010001", 259);
    check_form(MsgValue::of_binary(std::string(65536, '\1')), "c60001000001", 65541);
    // A JS Date: ext -1, the 32-bit timestamp form for whole seconds.
    check_form(MsgValue::of_ext(-1, std::string(4, '\0')), "d6ff00000000", 6);
    check_form(MsgValue::of_ext(5, "a"), "d40561", 3);
    check_form(MsgValue::of_ext(5, std::string(16, 'a')), "d805", 18);
    check_form(MsgValue::of_ext(5, "abc"), "c7030561", 6);
    check_form(MsgValue::of_ext(5, std::string(256, 'a')), "c801000561", 260);
    check_form(MsgValue::of_ext(5, std::string(65536, 'a')), "c90001000005", 65542);
}

TEST_CASE("arrays and maps at every width") {
    check_form(MsgValue::of_array({}), "90", 1);
    check_form(MsgValue::of_array(std::vector<MsgValue>(15, MsgValue::nil())), "9fc0", 16);
    check_form(MsgValue::of_array(std::vector<MsgValue>(16, MsgValue::nil())), "dc0010c0", 19);
    check_form(MsgValue::of_array(std::vector<MsgValue>(65535, MsgValue::nil())), "dcffffc0", 65538);
    check_form(MsgValue::of_array(std::vector<MsgValue>(65536, MsgValue::nil())), "dd00010000c0", 65541);
    const auto map_of = [](std::size_t n) {
        std::vector<MsgMember> members;
        for (std::size_t i = 0; i < n; ++i) members.push_back({MsgValue::of_uint(i), MsgValue::nil()});
        return MsgValue::of_map(std::move(members));
    };
    check_form(map_of(0), "80", 1);
    check_form(map_of(15), "8f00c0", 31);
    check_form(map_of(16), "de001000c0", 35);
    MsgpackLimits wide;
    wide.max_container_entries = 70000;
    const std::string map65536 = encode_msgpack(map_of(65536));
    CHECK(hex(map65536.substr(0, 6)) == "df0001000000");
    CHECK(decode_msgpack(map65536, wide).ok());
}

TEST_CASE("wider forms than needed decode to the same value") {
    CHECK(decoded(unhex("d005")) == MsgValue::of_uint(5));
    CHECK(decoded(unhex("d005")).type == T::UInt);
    CHECK(decoded(unhex("cc05")) == MsgValue::of_int(5));
    CHECK(decoded(unhex("d3ffffffffffffffff")) == MsgValue::of_int(-1));
    CHECK(decoded(unhex("d3ffffffffffffffff")).type == T::Int);
    CHECK(decoded(unhex("d903616263")) == MsgValue::of_string("abc"));
    CHECK(decoded(unhex("dc0001c3")) == MsgValue::of_array({MsgValue::of_bool(true)}));
    CHECK(decoded(unhex("ca3fc00000")).float_value == 1.5);  // float32
    CHECK(decoded(unhex("df00000000")) == MsgValue::empty_map());
}

TEST_CASE("the session blob of the notes, byte for byte") {
    AdapterSession s;
    s.sid = kSid;
    s.pid = kPid;
    s.rooms = {kSid, "project:p1"};
    // 84 a3"sid" b4<20B> a3"pid" b4<20B> a5"rooms" 92 b4<sid> aa"project:p1" a4"data" 80
    const std::string expected = "\x84\xa3sid\xb4" + kSid + "\xa3pid\xb4" + kPid + "\xa5rooms\x92\xb4" + kSid +
                                 "\xaaproject:p1\xa4" "data\x80";
    CHECK(hex(encode_session(s)) == hex(expected));
    // As @msgpack/msgpack 2.8.0 encodes {sid, pid, rooms, data: {}}.
    CHECK(hex(encode_session(s)) ==
          "84a3736964b44141414141414141414141414141414141414141a3706964b44242424242424242424242424242424242424242a5726f6f6d"
          "7392b44141414141414141414141414141414141414141aa70726f6a6563743a7031a46461746180");

    auto back = decode_session(expected);
    REQUIRE(back.ok());
    CHECK(back->session.sid == kSid);
    CHECK(back->session.pid == kPid);
    CHECK(back->session.rooms == std::vector<std::string>{kSid, "project:p1"});
    CHECK(back->session.data == MsgValue::empty_map());
    CHECK(!back->walcast);
}

TEST_CASE("walcast's fields in data, as Node encodes the same object") {
    AdapterSession s;
    s.sid = kSid;
    s.pid = kPid;
    s.rooms = {kSid, "user:u1", "tenant:t1"};
    s.data = walcast_session_data({"u1", "t1", "1718000000000-0"});
    const std::string blob = encode_session_blob(s);
    // @msgpack/msgpack 2.8.0 on {sid, pid, rooms, data: {walcast: {user, tenant, base}}}.
    CHECK(blob ==
          "hKNzaWS0QUFBQUFBQUFBQUFBQUFBQUFBQUGjcGlktEJCQkJCQkJCQkJCQkJCQkJCQkJCpXJvb21zk7RBQUFBQUFBQUFBQUFBQUFBQUFBQad1c2Vy"
          "OnUxqXRlbmFudDp0MaRkYXRhgad3YWxjYXN0g6R1c2VyonUxpnRlbmFudKJ0MaRiYXNlrzE3MTgwMDAwMDAwMDAtMA==");
    auto back = decode_session_blob(blob);
    REQUIRE(back.ok());
    REQUIRE(back->walcast);
    CHECK(back->walcast->user == "u1");
    CHECK(back->walcast->tenant == "t1");
    CHECK(back->walcast->base == "1718000000000-0");
    CHECK(back->session.rooms.size() == 3);
    CHECK(back->session.data == s.data);
}

TEST_CASE("a session a Node server wrote: any data, kept and re-encoded unchanged") {
    auto back = decode_session_blob(kNodeSessionBlob);
    REQUIRE_MESSAGE(back.ok(), (back ? "" : back.error().message));
    CHECK(!back->walcast);
    CHECK(back->session.sid == kSid);
    CHECK(back->session.rooms == std::vector<std::string>{kSid});
    const MsgValue& data = back->session.data;
    REQUIRE(data.is_map());
    CHECK(data.map.size() == 17);
    CHECK(*data.find("n") == MsgValue::of_uint(1));
    CHECK(*data.find("neg") == MsgValue::of_int(-200));
    CHECK(*data.find("f") == MsgValue::of_float(1.5));
    CHECK(*data.find("big") == MsgValue::of_uint(1ULL << 40));
    CHECK(*data.find("neg64") == MsgValue::of_int(-(1LL << 40)));
    CHECK(*data.find("s") == MsgValue::of_string("\xc3\xa9\xe2\x80\xa6\xf0\x9f\x98\x80"));
    CHECK(*data.find("bin") == MsgValue::of_binary("\x01\x02\x03"));
    CHECK(*data.find("date") == MsgValue::of_ext(-1, std::string(4, '\0')));
    CHECK(data.find("date2")->type == T::Ext);
    CHECK(data.find("date2")->bytes.size() == 8);
    CHECK(data.find("nul")->type == T::Nil);
    CHECK(data.find("u")->type == T::Nil);  // undefined is written as nil
    CHECK(data.find("arr16")->array.size() == 16);
    CHECK(data.find("str256")->bytes == std::string(256, 'x'));
    CHECK(data.find("map16")->map.size() == 16);
    // Written back by walcast, it is the same blob.
    CHECK(encode_session_blob(back->session) == kNodeSessionBlob);
    // JSON: the binary and the Dates have no JSON form.
    CHECK(msgpack_value_to_json(data).error().message == "msgpack to JSON: a binary value has no JSON form");
    CHECK(msgpack_value_to_json(data, BinaryInJson::Base64).error().message ==
          "msgpack to JSON: an ext value has no JSON form");
}

TEST_CASE("session refusals") {
    const auto session_error = [](const MsgValue& v) {
        auto r = decode_session(encode_msgpack(v));
        REQUIRE(!r.ok());
        return r.error().message;
    };
    const auto s = [](const char* text) { return MsgValue::of_string(text); };
    const auto rooms = MsgValue::of_array({s("r")});
    CHECK(session_error(MsgValue::of_array({})) == "session: a array, not a map");
    CHECK(session_error(MsgValue::of_map({{s("pid"), s("p")}, {s("rooms"), rooms}})) == "session: no sid");
    CHECK(session_error(MsgValue::of_map({{s("sid"), s("x")}, {s("rooms"), rooms}})) == "session: no pid");
    CHECK(session_error(MsgValue::of_map({{s("sid"), s("x")}, {s("pid"), s("p")}})) == "session: no rooms");
    CHECK(session_error(MsgValue::of_map({{s("sid"), s("")}, {s("pid"), s("p")}, {s("rooms"), rooms}})) ==
          "session: sid is not a non-empty string");
    CHECK(session_error(MsgValue::of_map({{s("sid"), MsgValue::of_uint(1)}, {s("pid"), s("p")}, {s("rooms"), rooms}})) ==
          "session: sid is not a non-empty string");
    CHECK(session_error(MsgValue::of_map({{s("sid"), s("x")}, {s("sid"), s("y")}, {s("pid"), s("p")}, {s("rooms"), rooms}})) ==
          "session: sid appears twice");
    CHECK(session_error(MsgValue::of_map({{s("sid"), s("x")}, {s("pid"), s("p")}, {s("rooms"), s("r")}})) ==
          "session: rooms is not an array");
    CHECK(session_error(MsgValue::of_map(
              {{s("sid"), s("x")}, {s("pid"), s("p")}, {s("rooms"), MsgValue::of_array({s("a"), MsgValue::of_uint(2)})}})) ==
          "session: rooms[1] is a integer, not a string");
    const auto with_data = [&](MsgValue data) {
        return MsgValue::of_map({{s("sid"), s("x")}, {s("pid"), s("p")}, {s("rooms"), rooms}, {s("data"), std::move(data)}});
    };
    CHECK(session_error(with_data(MsgValue::of_map({{s("walcast"), s("u1")}}))) ==
          "session: data.walcast is not a map holding the strings user, tenant and base");
    CHECK(session_error(with_data(MsgValue::of_map({{s("walcast"), MsgValue::of_map({{s("user"), s("u")}, {s("tenant"), s("t")}})}}))) ==
          "session: data.walcast is not a map holding the strings user, tenant and base");
    CHECK(decode_session(unhex("c1")).error().message == "session: msgpack: the never-used format byte 0xC1 at byte 0");

    // Tolerated: no data (nil), unknown keys, data that is not a map, keys in any order.
    auto bare = decode_session(encode_msgpack(
        MsgValue::of_map({{s("extra"), MsgValue::of_uint(1)}, {s("rooms"), rooms}, {s("pid"), s("p")}, {s("sid"), s("x")}})));
    REQUIRE(bare.ok());
    CHECK(bare->session.data.type == T::Nil);
    CHECK(!bare->walcast);
    auto scalar = decode_session(encode_msgpack(with_data(MsgValue::of_uint(7))));
    REQUIRE(scalar.ok());
    CHECK(scalar->session.data == MsgValue::of_uint(7));

    CHECK(decode_session_blob("hKNz").error().message.rfind("session: msgpack: truncated", 0) == 0);
    CHECK(decode_session_blob("hKNz!!==").error().message == "session: base64: invalid character at offset 4");
    MsgpackLimits small;
    small.max_bytes = 10;
    CHECK(decode_session_blob(std::string(20, 'A'), small).error().message ==
          "session: blob of 20 characters (limit max_bytes, as base64 = 16)");
}

TEST_CASE("every truncation of a blob is refused") {
    auto full = base64_decode(kNodeSessionBlob);
    REQUIRE(full.ok());
    for (std::size_t n = 0; n < full->size(); ++n) {
        auto r = decode_msgpack(std::string_view(*full).substr(0, n));
        REQUIRE_MESSAGE(!r.ok(), n);
        CHECK(r.error().message.find("truncated") != std::string::npos);
    }
    CHECK(refused("") == "msgpack: truncated: a value is missing at byte 0");
    CHECK(refused(unhex("cd01")) == "msgpack: truncated unsigned integer at byte 0");
    CHECK(refused(unhex("d9")) == "msgpack: truncated string length at byte 0");
    CHECK(refused(unhex("a5616263")) == "msgpack: truncated: string of 5 bytes with 3 bytes left at byte 0");
    CHECK(refused(unhex("92c0")) == "msgpack: truncated: array of 2 elements with 1 byte left at byte 0");
    CHECK(refused(unhex("81a1")) == "msgpack: truncated: map of 1 member with 1 byte left at byte 0");
    CHECK(refused(unhex("d4")) == "msgpack: truncated ext type at byte 0");
}

TEST_CASE("limits, and headers far past them") {
    std::string bomb(100000, '\x91');
    bomb += '\xc0';
    CHECK(refused(bomb) == "msgpack: containers nested deeper than 32 levels (limit max_depth = 32) at byte 32");
    std::string deep(32, '\x91');
    deep += '\xc0';
    CHECK(decode_msgpack(deep).ok());
    std::string map_bomb;
    for (int i = 0; i < 1000; ++i) map_bomb += "\x81\xa1k";
    CHECK(refused(map_bomb) == "msgpack: containers nested deeper than 32 levels (limit max_depth = 32) at byte 96");

    CHECK(refused(unhex("dbffffffff")) == "msgpack: string of 4294967295 bytes (limit max_string_bytes = 1048576) at byte 0");
    CHECK(refused(unhex("c6ffffffff")) == "msgpack: binary of 4294967295 bytes (limit max_string_bytes = 1048576) at byte 0");
    CHECK(refused(unhex("c9ffffffff01")) == "msgpack: ext of 4294967295 bytes (limit max_string_bytes = 1048576) at byte 0");
    CHECK(refused(unhex("ddffffffff")) ==
          "msgpack: array of 4294967295 elements (limit max_container_entries = 100000) at byte 0");
    CHECK(refused(unhex("dfffffffff")) ==
          "msgpack: map of 4294967295 members (limit max_container_entries = 100000) at byte 0");
    // Under the count limit, over the bytes there are: refused before anything is reserved.
    CHECK(refused(unhex("dd000186a0")) == "msgpack: truncated: array of 100000 elements with 0 bytes left at byte 0");
    CHECK(refused(unhex("81a16b91dd0000ffff")) == "msgpack: truncated: array of 65535 elements with 0 bytes left at byte 4");

    MsgpackLimits small;
    small.max_values = 5;
    CHECK(decode_msgpack(unhex("94c0c0c0c0"), small).ok());
    CHECK(refused(unhex("95c0c0c0c0c0"), small) == "msgpack: more than 5 values (limit max_values = 5) at byte 5");
    small = {};
    small.max_bytes = 4;
    CHECK(refused(unhex("94c0c0c0c0"), small) == "msgpack: input of 5 bytes (limit max_bytes = 4) at byte 0");
    small = {};
    small.max_string_bytes = 3;
    CHECK(decode_msgpack(unhex("a3616263"), small).ok());
    CHECK(refused(unhex("a461626364"), small) == "msgpack: string of 4 bytes (limit max_string_bytes = 3) at byte 0");
}

TEST_CASE("malformed values") {
    CHECK(refused(unhex("c1")) == "msgpack: the never-used format byte 0xC1 at byte 0");
    CHECK(refused(unhex("91c1")) == "msgpack: the never-used format byte 0xC1 at byte 1");
    CHECK(refused(unhex("8080")) == "msgpack: 1 byte after the value at byte 1");
    CHECK(refused(unhex("81c000")) == "msgpack: map key of type nil (keys must be strings or numbers) at byte 1");
    CHECK(refused(unhex("81910000")) == "msgpack: map key of type array (keys must be strings or numbers) at byte 1");
    CHECK(refused(unhex("8180c0")) == "msgpack: map key of type map (keys must be strings or numbers) at byte 1");
    CHECK(refused(unhex("81c40100c0")) == "msgpack: map key of type binary (keys must be strings or numbers) at byte 1");
    CHECK(refused(unhex("81a95f5f70726f746f5f5f00")) == "msgpack: map key \"__proto__\" (@msgpack/msgpack refuses it) at byte 1");
    // Number keys are accepted, as Node accepts them.
    CHECK(decoded(unhex("8101a178")).map.at(0).key == MsgValue::of_uint(1));
    CHECK(decoded(unhex("81cb3ff8000000000000a178")).map.at(0).key == MsgValue::of_float(1.5));
}

TEST_CASE("the binary broadcast payload of the notes decodes and re-encodes byte for byte") {
    const char* text =
        "gqZwYWNrZXSCpHR5cGUCpGRhdGGSpGZpbGXEAwECA6RvcHRzg6Vyb29tc5GqcHJvamVjdDpwMaZleGNlcHSQpWZsYWdzgA==";
    auto bytes = base64_decode(text);
    REQUIRE(bytes.ok());
    const MsgValue v = decoded(*bytes);
    CHECK(v.find("packet")->find("data")->array.at(1) == MsgValue::of_binary("\x01\x02\x03"));
    CHECK(encode_msgpack(v) == *bytes);
    CHECK(msgpack_to_json(*bytes).error().message == "msgpack to JSON: a binary value has no JSON form");
    auto json = msgpack_to_json(*bytes, {}, BinaryInJson::Base64);
    REQUIRE(json.ok());
    CHECK(*json ==
          R"({"packet":{"type":2,"data":["file","AQID"]},"opts":{"rooms":["project:p1"],"except":[],"flags":{}}})");
}

TEST_CASE("JSON bridge") {
    CHECK(*msgpack_value_to_json(MsgValue::of_map({{MsgValue::of_uint(1), MsgValue::of_int(-2)},
                                                   {MsgValue::of_int(-3), MsgValue::of_float(0.5)},
                                                   {MsgValue::of_string("q\"\n"), MsgValue::of_array({MsgValue::nil(), MsgValue::of_bool(true)})}})) ==
          R"({"1":-2,"-3":0.5,"q\"\n":[null,true]})");
    CHECK(*msgpack_value_to_json(MsgValue::of_float(std::nan(""))) == "null");
    CHECK(*msgpack_value_to_json(MsgValue::of_float(-HUGE_VAL)) == "null");
    CHECK(*msgpack_value_to_json(MsgValue::of_float(1e300)) == "1e+300");
    CHECK(*msgpack_value_to_json(MsgValue::of_uint(UINT64_MAX)) == "18446744073709551615");
    CHECK(*msgpack_value_to_json(MsgValue::of_string("a\xff" "b")) == R"("a\ufffdb")");
    CHECK(msgpack_value_to_json(MsgValue::of_map({{MsgValue::of_float(1.5), MsgValue::nil()}})).error().message ==
          "msgpack to JSON: a map key that is not a string or an integer has no JSON form");

    auto v = json_to_msgpack_value(R"( {"a":[1,-2,1.5,"x\u00e9",null,true,18446744073709551615,-9223372036854775808],"b":{}} )");
    REQUIRE(v.ok());
    CHECK(hex(encode_msgpack(*v)) ==
          "82a16198" "01" "fe" "cb3ff8000000000000" "a378c3a9" "c0" "c3" "cfffffffffffffffff" "d38000000000000000" "a162" "80");
    CHECK(*msgpack_value_to_json(*v) == R"({"a":[1,-2,1.5,"xé",null,true,18446744073709551615,-9223372036854775808],"b":{}})");

    // Numbers past 64 bits or past the double range read as JSON.parse reads them.
    auto numbers = json_to_msgpack_value(
        "[18446744073709551616,-9223372036854775809,1.8e308,-1.8e308,1e-400,-0.0000e-999999999999,"
        "1000000000000000000000000000000000000000000000000e-10,0.00001e310,5e-324,0.1,-0]");
    REQUIRE(numbers.ok());
    const auto& n = numbers->array;
    REQUIRE(n.size() == 11);
    CHECK(n[0] == MsgValue::of_float(18446744073709551616.0));
    CHECK(n[1] == MsgValue::of_float(-9223372036854775808.0));
    CHECK(n[2] == MsgValue::of_float(HUGE_VAL));
    CHECK(n[3] == MsgValue::of_float(-HUGE_VAL));
    CHECK(n[4] == MsgValue::of_float(0.0));
    CHECK(n[5] == MsgValue::of_float(-0.0));
    CHECK(n[6] == MsgValue::of_float(1e38));
    CHECK(n[7] == MsgValue::of_float(1e305));
    CHECK(n[8] == MsgValue::of_float(5e-324));
    CHECK(n[9] == MsgValue::of_float(0.1));
    CHECK(n[10] == MsgValue::of_uint(0));
    CHECK(json_to_msgpack_value("1e-1578196181")->float_value == 0.0);
    // RapidJSON's own check refuses some, where JSON.parse would give Infinity.
    CHECK(json_to_msgpack_value("1e400").error().message == "JSON: Number too big to be stored in double. at byte 0");

    CHECK(json_to_msgpack_value("{\"a\":}").error().message == "JSON: Invalid value. at byte 5");
    CHECK(json_to_msgpack_value("\"\xff\"").error().message == "JSON: Invalid encoding in string. at byte 1");
    CHECK(json_to_msgpack_value("[1] x").error().message == "JSON: The document root must not be followed by other values. at byte 4");
    CHECK(json_to_msgpack_value(std::string(100000, '[')).error().message ==
          "JSON: nested deeper than 32 levels (limit max_depth = 32) at byte 32");
    CHECK(json_to_msgpack_value(R"({"a":{"__proto__":1}})").error().message ==
          "JSON: object key \"__proto__\" (@msgpack/msgpack refuses it) at byte 17");
    MsgpackLimits small;
    small.max_container_entries = 2;
    CHECK(json_to_msgpack_value("[1,2,3]", small).error().message ==
          "JSON: array of more than 2 entries (limit max_container_entries = 2) at byte 5");
    small.max_bytes = 3;
    CHECK(json_to_msgpack_value("[1,2]", small).error().message == "JSON: text of 5 bytes (limit max_bytes = 3)");
}

}  // TEST_SUITE
