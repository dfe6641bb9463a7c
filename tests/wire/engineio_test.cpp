// Engine.IO long-polling: payload splitting and joining, the error table, and the query
// string, each refusal with its reason.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "wire/engineio.hpp"
#include "wire/socketio_packet.hpp"

using namespace walcast;

namespace {

std::vector<std::string> split(std::string_view body, std::size_t max_packets = 100) {
    auto r = split_polling_payload(body, max_packets);
    REQUIRE_MESSAGE(r.ok(), (r ? "" : r.error().message));
    return std::vector<std::string>(r->begin(), r->end());
}

std::string split_error(std::string_view body, std::size_t max_packets = 100) {
    auto r = split_polling_payload(body, max_packets);
    REQUIRE_MESSAGE(!r.ok(), std::string(body) << " was accepted");
    return r.error().message;
}

EngineQuery query(std::string_view text) {
    auto r = parse_engine_query(text);
    REQUIRE_MESSAGE(r.ok(), std::string(text) << ": " << (r ? "" : r.error().message));
    return *r;
}

std::string query_error(std::string_view text) {
    auto r = parse_engine_query(text);
    REQUIRE_MESSAGE(!r.ok(), std::string(text) << " was accepted");
    return r.error().message;
}

}  // namespace

TEST_SUITE("engineio") {

TEST_CASE("a polling payload splits into its packets") {
    CHECK(split("4hello") == std::vector<std::string>{"4hello"});
    CHECK(split("4test1\x1e" "4test2\x1e" "4test3") == std::vector<std::string>{"4test1", "4test2", "4test3"});
    CHECK(split("3") == std::vector<std::string>{"3"});
    CHECK(split("1") == std::vector<std::string>{"1"});
    CHECK(split("40{\"token\":\"a.b.c\"}\x1e" "421[\"join-project\",\"p1\"]") ==
          std::vector<std::string>{"40{\"token\":\"a.b.c\"}", "421[\"join-project\",\"p1\"]"});
    // Not checked here: the packet parser refuses these.
    CHECK(split("abc") == std::vector<std::string>{"abc"});
    CHECK(split("4\xff") == std::vector<std::string>{"4\xff"});

    // Views into the body, not copies.
    const std::string body = "3\x1e" "40";
    auto r = split_polling_payload(body, 2);
    REQUIRE(r.ok());
    CHECK(r->at(1).data() == body.data() + 2);
}

TEST_CASE("every packet of a payload goes through the packet parser") {
    for (std::string_view packet : split("3\x1e" "40{\"token\":\"t\"}\x1e" "421[\"join-project\",\"p1\"]\x1e" "1"))
        CHECK(parse_client_packet(packet).ok());
}

TEST_CASE("malformed polling payloads") {
    CHECK(split_error("") == "empty polling payload");
    CHECK(split_error("\x1e") == "polling packet 1 is empty (the payload starts with a separator)");
    CHECK(split_error("\x1e" "4a") == "polling packet 1 is empty (the payload starts with a separator)");
    CHECK(split_error("4a\x1e") == "polling packet 2 is empty (the payload ends with a separator, at byte 2)");
    CHECK(split_error("4a\x1e\x1e" "4b") == "polling packet 2 is empty (separators at bytes 2 and 3)");
    CHECK(split_error("4a\x1e" "4b\x1e\x1e") == "polling packet 3 is empty (separators at bytes 5 and 6)");
    CHECK(split_error("bAQIDBA==") ==
          "polling packet 1 (byte 0) is binary (b<base64>): walcast neither sends nor takes binary data");
    CHECK(split_error("4hello\x1e" "bAQIDBA==") ==
          "polling packet 2 (byte 7) is binary (b<base64>): walcast neither sends nor takes binary data");
}

TEST_CASE("a POST body: UTF-8 and Engine.IO packet types, checked before it is acknowledged") {
    auto read = [](std::string_view body) { return read_polling_post(body, 100); };
    auto read_error = [](std::string_view body) {
        auto r = read_polling_post(body, 100);
        REQUIRE_MESSAGE(!r.ok(), std::string(body) << " was accepted");
        return r.error().message;
    };
    REQUIRE(read("3\x1e" "42[\"x\",\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"]\x1e" "6").ok());
    CHECK(read("3\x1e" "1")->size() == 2);
    // Socket.IO-level errors are the packet parser's: the body itself is fine.
    CHECK(read("4abc").ok());
    CHECK(read("0").ok());

    CHECK(read_error("abc") == "polling packet 1 (byte 0) has no Engine.IO packet type");
    CHECK(read_error("3\x1e" "7x") == "polling packet 2 (byte 2) has no Engine.IO packet type");
    CHECK(read_error("42\xff\xfe[]") == "polling payload is not UTF-8 (byte 2)");
    CHECK(read_error("4\xc3") == "polling payload is not UTF-8 (byte 1)");           // truncated sequence
    CHECK(read_error("4\xc0\xaf") == "polling payload is not UTF-8 (byte 1)");       // overlong
    CHECK(read_error("4\xed\xa0\x80") == "polling payload is not UTF-8 (byte 1)");  // a UTF-16 surrogate
    // split_polling_payload's refusals come first.
    CHECK(read_error("") == "empty polling payload");
    CHECK(read_error("bAQID") ==
          "polling packet 1 (byte 0) is binary (b<base64>): walcast neither sends nor takes binary data");
}

TEST_CASE("the packet count is bounded") {
    CHECK(split("3\x1e" "3\x1e" "3", 3).size() == 3);
    CHECK(split_error("3\x1e" "3\x1e" "3\x1e" "3", 3) == "polling payload holds more than 3 packets (packet 4 starts at byte 6)");
    CHECK(split_error("3", 0) == "polling payload holds more than 0 packets (packet 1 starts at byte 0)");

    // A body of a million one-byte packets stops at the bound, not at the end.
    std::string huge;
    for (int i = 0; i < 1000000; ++i) append_polling_packet(huge, "6");
    CHECK(huge.size() == 1999999);
    CHECK(split_error(huge, 1000) == "polling payload holds more than 1000 packets (packet 1001 starts at byte 2000)");
    CHECK(split(huge, 1000000).size() == 1000000);
}

TEST_CASE("joining packets for a GET response") {
    std::string payload;
    append_polling_packet(payload, "2");
    CHECK(payload == "2");
    append_polling_packet(payload, encode_event("task:created", "{}"));
    append_polling_packet(payload, "6");
    CHECK(payload == "2\x1e" "42[\"task:created\",{}]\x1e" "6");
    CHECK(split(payload) == std::vector<std::string>{"2", "42[\"task:created\",{}]", "6"});

    // An event whose payload holds U+001E carries it escaped, never as the raw separator.
    std::string escaped;
    append_polling_packet(escaped, encode_event("x", "\"a\\u001eb\""));
    CHECK(split(escaped).size() == 1);
}

TEST_CASE("error bodies and statuses, as the reference server answers") {
    struct Row {
        EngineError error;
        int status;
        const char* body;
    };
    for (const Row& row : {
             Row{EngineError::UnknownTransport, 400, R"({"code":0,"message":"Transport unknown"})"},
             Row{EngineError::UnknownSid, 400, R"({"code":1,"message":"Session ID unknown"})"},
             Row{EngineError::BadHandshakeMethod, 400, R"({"code":2,"message":"Bad handshake method"})"},
             Row{EngineError::BadRequest, 400, R"({"code":3,"message":"Bad request"})"},
             Row{EngineError::Forbidden, 403, R"({"code":4,"message":"Forbidden"})"},
             Row{EngineError::UnsupportedProtocolVersion, 400, R"({"code":5,"message":"Unsupported protocol version"})"},
         }) {
        CHECK(engine_error_http_status(row.error) == row.status);
        CHECK(encode_engine_error(row.error) == row.body);
    }
    CHECK(engine_error_message(EngineError::UnknownSid) == "Session ID unknown");
    CHECK(encode_engine_error(EngineError::Forbidden, "too \"many\" connections") ==
          R"({"code":4,"message":"too \"many\" connections"})");
    CHECK(kPollingPostAck == "ok");
}

TEST_CASE("the query string of a polling request") {
    auto handshake = query("EIO=4&transport=polling&t=OxYz1a");
    CHECK(handshake.eio == std::string("4"));
    CHECK(handshake.transport == std::string("polling"));
    CHECK_FALSE(handshake.sid.has_value());
    CHECK_FALSE(handshake.jsonp);

    auto later = query("EIO=4&transport=polling&t=OxYz2b&sid=lv_VI97HAXpY6yYWAAAC");
    CHECK(later.sid == std::string("lv_VI97HAXpY6yYWAAAC"));

    // Order does not matter; unknown keys, empty pairs and keys without '=' are skipped.
    auto loose = query("&&sid=abc&&foo&b64=1&EIO=4&custom=%zz&transport=websocket&");
    CHECK(loose.sid == std::string("abc"));
    CHECK(loose.eio == std::string("4"));
    CHECK(loose.transport == std::string("websocket"));

    // Percent-decoding and '+' as the reference server's query parser does.
    CHECK(query("sid=ab%2Dcd%5f").sid == std::string("ab-cd_"));
    CHECK(query("transport=web+socket").transport == std::string("web socket"));
    CHECK(query("%45IO=4").eio == std::string("4"));

    // Present but empty; an empty sid is a handshake.
    CHECK(query("EIO=&transport").eio == std::string(""));
    CHECK(query("EIO=&transport").transport == std::string(""));
    CHECK_FALSE(query("EIO=4&sid=").sid.has_value());
    CHECK_FALSE(query("").eio.has_value());

    CHECK(query("EIO=4&transport=polling&j=0").jsonp);
}

TEST_CASE("malformed or oversized query strings") {
    CHECK(query_error("EIO=4&EIO=3") == "query string gives EIO twice (again at byte 6)");
    CHECK(query_error("sid=a&transport=polling&sid=b") == "query string gives sid twice (again at byte 24)");
    CHECK(query_error("sid=&sid=b") == "query string gives sid twice (again at byte 5)");
    CHECK(query_error("EIO=4&sid=ab%zz") == "query value of sid has a bad percent escape at byte 12");
    CHECK(query_error("sid=ab%2") == "query value of sid has a bad percent escape at byte 6");
    CHECK(query_error("transport=%") == "query value of transport has a bad percent escape at byte 10");
    CHECK(query_error("sid=a%0Ab") == "query value of sid holds a byte that is not printable ASCII (decoded byte 1)");
    CHECK(query_error("sid=%00") == "query value of sid holds a byte that is not printable ASCII (decoded byte 0)");
    CHECK(query_error("EIO=%C3%A9") == "query value of EIO holds a byte that is not printable ASCII (decoded byte 0)");
    CHECK(query_error("sid=\x7f") == "query value of sid holds a byte that is not printable ASCII (decoded byte 0)");

    std::string long_query = "EIO=4&t=" + std::string(kMaxEngineQueryBytes, 'x');
    CHECK(query_error(long_query) == "query string of 4104 bytes, over the 4096-byte limit");
    CHECK(query(std::string("t=") + std::string(kMaxEngineQueryBytes - 2, 'x')).eio == std::nullopt);

    std::string many;
    for (std::size_t i = 0; i < kMaxEngineQueryPairs; ++i) many += "k=v&";
    CHECK_FALSE(query(many).eio.has_value());
    many += "EIO=4";
    CHECK(query_error(many) == "query string holds more than 64 pairs (pair 65 starts at byte 256)");
    // Empty pairs are free, within the byte limit.
    CHECK(query(std::string(4000, '&') + "EIO=4").eio == std::string("4"));
}

TEST_CASE("transport names") {
    CHECK(engine_transport("polling") == EngineTransport::Polling);
    CHECK(engine_transport("websocket") == EngineTransport::WebSocket);
    CHECK_FALSE(engine_transport("webtransport").has_value());
    CHECK_FALSE(engine_transport("Polling").has_value());
    CHECK_FALSE(engine_transport("").has_value());
}

}  // TEST_SUITE
