// RESP2: commands encoded byte for byte, every reply type parsed, replies split at every
// byte and pipelined, and each limit and malformation refused with its reason and offset.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "wire/resp.hpp"

using namespace walcast;

namespace {

using Type = RespValue::Type;

// Every reply in `bytes`, fed in one call; the input must be accepted.
std::vector<RespValue> parse_all(std::string_view bytes, RespLimits limits = {}) {
    RespParser p(limits);
    auto r = p.feed(bytes);
    REQUIRE_MESSAGE(r.ok(), (r ? "" : r.error().message));
    std::vector<RespValue> out;
    RespValue v;
    while (p.next(v)) out.push_back(std::move(v));
    CHECK(p.buffered() == 0);
    return out;
}

RespValue parse_one(std::string_view bytes) {
    auto all = parse_all(bytes);
    REQUIRE(all.size() == 1);
    return all[0];
}

// The refusal of `bytes` fed in one call, checked to be the same fed byte by byte.
std::string refused(std::string_view bytes, RespLimits limits = {}) {
    RespParser whole(limits);
    auto r = whole.feed(bytes);
    REQUIRE_MESSAGE(!r.ok(), std::string(bytes.substr(0, 80)) << " was accepted");
    RespParser split(limits);
    Result<std::size_t> last = std::size_t{0};
    for (char c : bytes) {
        last = split.feed(std::string_view(&c, 1));
        if (!last) break;
    }
    REQUIRE(!last.ok());
    CHECK(last.error().message == r.error().message);
    return r.error().message;
}

// A reply to XREAD STREAMS socket.io $ with one entry: arrays four deep.
const std::string kXreadReply =
    "*1\r\n"
    "*2\r\n$9\r\nsocket.io\r\n"
    "*1\r\n"
    "*2\r\n$15\r\n1718000000000-0\r\n"
    "*8\r\n$3\r\nuid\r\n$16\r\n0f3a9c27d1e4b856\r\n$3\r\nnsp\r\n$1\r\n/\r\n$4\r\ntype\r\n$1\r\n3\r\n"
    "$4\r\ndata\r\n$13\r\n{\"packet\":{}}\r\n";

}  // namespace

TEST_SUITE("resp") {

TEST_CASE("commands are arrays of bulk strings") {
    CHECK(encode_command({"GET", "sio:session:abc"}) == "*2\r\n$3\r\nGET\r\n$15\r\nsio:session:abc\r\n");
    CHECK(encode_command({"PING"}) == "*1\r\n$4\r\nPING\r\n");
    CHECK(encode_command(std::vector<std::string>{"XADD", "socket.io", "*", ""}) ==
          "*4\r\n$4\r\nXADD\r\n$9\r\nsocket.io\r\n$1\r\n*\r\n$0\r\n\r\n");
    // Binary-safe: CR, LF and NUL travel inside an argument.
    const std::string odd("a\r\nb\0c", 6);
    CHECK(encode_command({"SET", odd}) == std::string("*2\r\n$3\r\nSET\r\n$6\r\na\r\nb\0c\r\n", 25));
    std::string out = "x";
    append_command(out, {"A"});
    append_command(out, std::vector<std::string>{"B", "C"});
    CHECK(out == "x*1\r\n$1\r\nA\r\n*2\r\n$1\r\nB\r\n$1\r\nC\r\n");
}

TEST_CASE("every reply type") {
    auto ok = parse_one("+OK\r\n");
    CHECK(ok.type == Type::SimpleString);
    CHECK(ok.as_string() == "OK");
    CHECK(!ok.is_error());

    auto err = parse_one("-ERR unknown command 'FOO'\r\n");
    CHECK(err.is_error());
    CHECK(err.text == "ERR unknown command 'FOO'");
    CHECK(!err.as_string());

    CHECK(parse_one(":0\r\n").as_integer() == 0);
    CHECK(parse_one(":1000\r\n").as_integer() == 1000);
    CHECK(parse_one(":-42\r\n").as_integer() == -42);
    CHECK(parse_one(":9223372036854775807\r\n").as_integer() == INT64_MAX);
    CHECK(parse_one(":-9223372036854775808\r\n").as_integer() == INT64_MIN);
    CHECK(!parse_one(":1\r\n").as_string());

    auto id = parse_one("$15\r\n1718000000000-0\r\n");
    CHECK(id.type == Type::BulkString);
    CHECK(id.as_string() == "1718000000000-0");
    CHECK(parse_one("$0\r\n\r\n").as_string() == "");
    // A bulk string carries any bytes, CRLF included.
    CHECK(parse_one(std::string("$5\r\na\r\n\0b\r\n", 11)).text == std::string("a\r\n\0b", 5));

    CHECK(parse_one("$-1\r\n").is_null());
    CHECK(parse_one("*-1\r\n").is_null());
    auto empty = parse_one("*0\r\n");
    CHECK(empty.is_array());
    CHECK(empty.elements.empty());
    CHECK(parse_one("+\r\n").as_string() == "");

    auto mixed = parse_one("*5\r\n:1\r\n$-1\r\n+x\r\n-E\r\n*1\r\n$1\r\ny\r\n");
    REQUIRE(mixed.elements.size() == 5);
    CHECK(mixed == RespValue::array({RespValue::number(1), RespValue::null(), RespValue::simple("x"),
                                     RespValue::error("E"), RespValue::array({RespValue::bulk("y")})}));
}

TEST_CASE("an XREAD reply, nested four arrays deep") {
    auto v = parse_one(kXreadReply);
    REQUIRE(v.is_array());
    const RespValue& stream = v.elements.at(0);
    CHECK(stream.elements.at(0).as_string() == "socket.io");
    const RespValue& entry = stream.elements.at(1).elements.at(0);
    CHECK(entry.elements.at(0).as_string() == "1718000000000-0");
    const RespValue& fields = entry.elements.at(1);
    REQUIRE(fields.elements.size() == 8);
    CHECK(fields.elements[1].as_string() == "0f3a9c27d1e4b856");
    CHECK(fields.elements[7].as_string() == "{\"packet\":{}}");
}

TEST_CASE("a reply split at every byte boundary") {
    const std::string stream = kXreadReply + "$15\r\n1718000000000-1\r\n:7\r\n*-1\r\n-ERR x\r\n+OK\r\n";
    const auto whole = parse_all(stream);
    REQUIRE(whole.size() == 6);

    // One byte per feed.
    RespParser p;
    std::vector<RespValue> got;
    for (std::size_t i = 0; i < stream.size(); ++i) {
        auto r = p.feed(stream.substr(i, 1));
        REQUIRE(r.ok());
        RespValue v;
        while (p.next(v)) got.push_back(std::move(v));
    }
    CHECK(got == whole);
    CHECK(p.buffered() == 0);

    // Every single split point.
    for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
        RespParser q;
        REQUIRE(q.feed(stream.substr(0, cut)).ok());
        auto r = q.feed(stream.substr(cut));
        REQUIRE(r.ok());
        CHECK(*r == 6);
        std::vector<RespValue> two;
        RespValue v;
        while (q.next(v)) two.push_back(std::move(v));
        CHECK(two == whole);
    }
}

TEST_CASE("pipelined replies in one feed, counted") {
    std::string stream;
    for (int i = 0; i < 1000; ++i) stream += "$15\r\n17180000000" + std::to_string(10 + i % 90) + "-0\r\n";
    RespParser p;
    auto r = p.feed(stream);
    REQUIRE(r.ok());
    CHECK(*r == 1000);
    CHECK(p.ready() == 1000);
    RespValue v;
    REQUIRE(p.next(v));
    CHECK(v.as_string() == "1718000000010-0");
    CHECK(p.ready() == 999);
    // A feed that completes nothing still reports what is queued.
    r = p.feed("$15\r\n1718");
    REQUIRE(r.ok());
    CHECK(*r == 999);
    CHECK(p.buffered() == 9);
}

TEST_CASE("buffered counts the reply in progress, arrays included") {
    RespParser p;
    REQUIRE(p.feed("*2\r\n$3\r\nabc\r\n$10\r\n01234").ok());
    CHECK(p.buffered() == 23);
    CHECK(p.ready() == 0);
    REQUIRE(p.feed("56789\r\n+next").ok());
    CHECK(p.ready() == 1);
    CHECK(p.buffered() == 5);
}

TEST_CASE("a large bulk string arrives in chunks") {
    const std::string payload(3 << 20, 'x');
    const std::string stream = "$" + std::to_string(payload.size()) + "\r\n" + payload + "\r\n";
    RespParser p;
    for (std::size_t i = 0; i < stream.size(); i += 4096) REQUIRE(p.feed(stream.substr(i, 4096)).ok());
    RespValue v;
    REQUIRE(p.next(v));
    CHECK(v.text.size() == payload.size());
    CHECK(p.buffered() == 0);
}

TEST_CASE("encode_reply is the inverse of the parser") {
    const auto value = parse_one(kXreadReply);
    CHECK(encode_reply(value) == kXreadReply);
    CHECK(encode_reply(RespValue::null()) == "$-1\r\n");
    CHECK(encode_reply(RespValue::number(INT64_MIN)) == ":-9223372036854775808\r\n");
}

TEST_CASE("lengths and counts far past the limits are refused from the header") {
    CHECK(refused("*1000000000\r\n") ==
          "RESP: array length 1000000000 (limit max_array_elements = 1000000) at byte 0");
    CHECK(refused("$9999999999\r\n") == "RESP: bulk string length 9999999999 (limit max_bulk_bytes = 67108864) at byte 0");
    CHECK(refused("+OK\r\n$99999999999999999999\r\n") ==
          "RESP: bulk string length: integer out of the 64-bit signed range at byte 6");
    CHECK(refused(":9223372036854775808\r\n") == "RESP: integer out of the 64-bit signed range at byte 1");
    CHECK(refused(":-9223372036854775809\r\n") == "RESP: integer out of the 64-bit signed range at byte 1");
    // Within max_bulk_bytes, but more than a reply may hold.
    RespLimits small;
    small.max_reply_bytes = 100;
    CHECK(refused("*2\r\n$10\r\n0123456789\r\n$80\r\n", small) ==
          "RESP: reply starting at byte 0 is larger than 100 bytes (limit max_reply_bytes = 100) at byte 0");
    // The next reply has its own budget.
    const std::string fits = "$94\r\n" + std::string(94, 'a') + "\r\n";
    REQUIRE(fits.size() == 101);
    CHECK(refused(fits, small) ==
          "RESP: reply starting at byte 0 is larger than 100 bytes (limit max_reply_bytes = 100) at byte 0");
    const std::string exactly = "$93\r\n" + std::string(93, 'a') + "\r\n";
    REQUIRE(exactly.size() == 100);
    CHECK(parse_all(exactly + exactly + exactly, small).size() == 3);
    // An array whose elements go past the reply's limit, one small element at a time.
    std::string many = "*100\r\n";
    for (int i = 0; i < 100; ++i) many += ":1\r\n";
    CHECK(refused(many, small) ==
          "RESP: reply starting at byte 0 is larger than 100 bytes (limit max_reply_bytes = 100) at byte 0");
}

TEST_CASE("nesting is bounded without recursion") {
    std::string bomb;
    for (int i = 0; i < 100000; ++i) bomb += "*1\r\n";
    CHECK(refused(bomb) == "RESP: array nested deeper than 8 levels (limit max_depth = 8) at byte 32");
    // Eight levels are fine.
    std::string eight;
    for (int i = 0; i < 8; ++i) eight += "*1\r\n";
    eight += ":5\r\n";
    auto v = parse_one(eight);
    for (int i = 0; i < 8; ++i) {
        REQUIRE(v.is_array());
        RespValue inner = v.elements.at(0);
        v = inner;
    }
    CHECK(v.as_integer() == 5);
}

TEST_CASE("values in one reply are bounded") {
    RespLimits limits;
    limits.max_reply_values = 10;
    std::string nine = "*8\r\n";
    for (int i = 0; i < 8; ++i) nine += "+\r\n";
    CHECK(parse_all(nine + nine, limits).size() == 2);
    // An array and nine elements are ten values; a tenth element is one too many.
    std::string eleven = "*10\r\n";
    for (int i = 0; i < 10; ++i) eleven += "+\r\n";
    CHECK(refused(eleven, limits) ==
          "RESP: reply starting at byte 0 holds more than 10 values (limit max_reply_values = 10) at byte 32");
}

TEST_CASE("lines are bounded") {
    RespLimits limits;
    limits.max_line_bytes = 8;
    CHECK(parse_all("+12345678\r\n", limits).size() == 1);
    CHECK(refused("+123456789\r\n", limits) == "RESP: line longer than 8 bytes (limit max_line_bytes = 8) at byte 0");
    CHECK(refused("-1234567890", limits) == "RESP: line longer than 8 bytes (limit max_line_bytes = 8) at byte 0");
    CHECK(refused("$000000000001\r\n", limits) == "RESP: header longer than 8 bytes (limit max_line_bytes = 8) at byte 0");
    // The default: 64 KiB.
    CHECK(refused("+" + std::string(70000, 'a')) ==
          "RESP: line longer than 65536 bytes (limit max_line_bytes = 65536) at byte 0");
}

TEST_CASE("malformed replies") {
    CHECK(refused("$-2\r\n") == "RESP: bulk string length -2 is negative (only -1, null, is) at byte 0");
    CHECK(refused("*-5\r\n") == "RESP: array length -5 is negative (only -1, null, is) at byte 0");
    CHECK(refused("$3\r\nabcXY") == "RESP: bulk string of 3 bytes not followed by CRLF at byte 7");
    CHECK(refused("$3\r\nabc\rX") == "RESP: bulk string of 3 bytes not followed by CRLF at byte 7");
    CHECK(refused("+OK\n") == "RESP: line ends in LF without CR at byte 3");
    CHECK(refused("+O\rK\r\n") == "RESP: CR inside a line at byte 2");
    CHECK(refused(":\r\n") == "RESP: empty integer at byte 1");
    CHECK(refused(":-\r\n") == "RESP: empty integer at byte 1");
    CHECK(refused(":+5\r\n") == "RESP: integer holds a byte that is not a decimal digit at byte 1");
    CHECK(refused(":1 \r\n") == "RESP: integer holds a byte that is not a decimal digit at byte 1");
    CHECK(refused("$abc\r\n") == "RESP: bulk string length: integer holds a byte that is not a decimal digit at byte 1");
    CHECK(refused("*\r\n") == "RESP: array length: empty integer at byte 1");
    CHECK(refused("A") == "RESP: unknown type byte 0x41 'A' at byte 0");
    CHECK(refused("+OK\r\n\r\n") == "RESP: unknown type byte 0x0D at byte 5");
    CHECK(refused(std::string(1, '\0')) == "RESP: unknown type byte 0x00 at byte 0");
    CHECK(refused("%1\r\n+a\r\n+b\r\n") ==
          "RESP: RESP3 type byte 0x25 '%' (this parser speaks RESP2; the connection must not send HELLO 3) at byte 0");
    CHECK(refused("*2\r\n_\r\n") ==
          "RESP: RESP3 type byte 0x5F '_' (this parser speaks RESP2; the connection must not send HELLO 3) at byte 4");
}

TEST_CASE("after a refusal the parser stays failed; replies before it stay queued") {
    RespParser p;
    auto r = p.feed("+OK\r\n:1\r\n?");
    REQUIRE(!r.ok());
    CHECK(r.error().message == "RESP: unknown type byte 0x3F '?' at byte 9");
    CHECK(p.failed());
    CHECK(p.buffered() == 0);
    auto again = p.feed("+OK\r\n");
    REQUIRE(!again.ok());
    CHECK(again.error().message == r.error().message);
    RespValue v;
    REQUIRE(p.next(v));
    CHECK(v.as_string() == "OK");
    REQUIRE(p.next(v));
    CHECK(v.as_integer() == 1);
    CHECK(!p.next(v));
}

TEST_CASE("byte offsets count from the first byte ever fed") {
    RespParser p;
    REQUIRE(p.feed("+OK\r\n").ok());
    RespValue v;
    REQUIRE(p.next(v));
    REQUIRE(p.feed(std::string(5000, ' ').replace(0, 1, "+").replace(4998, 2, "\r\n")).ok());
    auto r = p.feed("$-7\r\n");
    REQUIRE(!r.ok());
    CHECK(r.error().message == "RESP: bulk string length -7 is negative (only -1, null, is) at byte 5005");
}

}  // TEST_SUITE
