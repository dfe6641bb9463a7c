// Engine.IO / Socket.IO packets: every kind a client sends parsed, every kind the server
// sends encoded, and each malformed input refused with its reason.
#include <doctest/doctest.h>

#include <chrono>
#include <string>

#include "wire/socketio_packet.hpp"

using namespace walcast;

namespace {

ClientPacket parsed(std::string_view frame) {
    auto r = parse_client_packet(frame);
    REQUIRE_MESSAGE(r.ok(), std::string(frame) << ": " << (r ? "" : r.error().message));
    return *r;
}

std::string refused(std::string_view frame) {
    auto r = parse_client_packet(frame);
    REQUIRE_MESSAGE(!r.ok(), std::string(frame) << " was accepted");
    return r.error().message;
}

}  // namespace

TEST_SUITE("socketio_packet") {

TEST_CASE("Engine.IO packets a client sends") {
    CHECK(parsed("3").eio == EioType::Pong);
    CHECK(parsed("3probe").eio == EioType::Pong);
    CHECK(parsed("1").eio == EioType::Close);
    CHECK(parsed("6").eio == EioType::Noop);
}

TEST_CASE("Engine.IO packets a client may not send") {
    CHECK(refused("") == "empty frame");
    CHECK(refused("0{}") == "Engine.IO open from a client (only the server opens)");
    CHECK(refused("2") == "Engine.IO ping from a client (v4 heartbeats are sent by the server)");
    CHECK(refused("2x") == "Engine.IO ping from a client (v4 heartbeats are sent by the server)");
    CHECK(refused("2probe") == "Engine.IO probe 2probe outside a transport upgrade");
    CHECK(refused("5") ==
          "Engine.IO upgrade outside a transport upgrade (only a WebSocket probing a polling session sends it)");
    CHECK(refused("7") == "unknown Engine.IO packet type");
    CHECK(refused("hello") == "unknown Engine.IO packet type");
    CHECK(refused("b4AAA") == "unknown Engine.IO packet type");
    CHECK(refused("4") == "empty Socket.IO packet");
    CHECK(refused("49") == "unknown Socket.IO packet type");
    CHECK(refused("4x") == "unknown Socket.IO packet type");
}

TEST_CASE("an upgrading WebSocket takes the probe and the upgrade only") {
    auto probe = parse_client_packet("2probe", ClientChannel::UpgradeProbe);
    REQUIRE(probe.ok());
    CHECK(probe->eio == EioType::Ping);
    auto upgrade = parse_client_packet("5", ClientChannel::UpgradeProbe);
    REQUIRE(upgrade.ok());
    CHECK(upgrade->eio == EioType::Upgrade);

    auto refused_on_probe = [](std::string_view frame) {
        auto r = parse_client_packet(frame, ClientChannel::UpgradeProbe);
        REQUIRE_MESSAGE(!r.ok(), std::string(frame) << " was accepted");
        return r.error().message;
    };
    CHECK(refused_on_probe("") == "empty frame");
    CHECK(refused_on_probe("2") == "Engine.IO ping on an upgrading WebSocket that is not the probe 2probe");
    CHECK(refused_on_probe("2probe2") == "Engine.IO ping on an upgrading WebSocket that is not the probe 2probe");
    CHECK(refused_on_probe("2Probe") == "Engine.IO ping on an upgrading WebSocket that is not the probe 2probe");
    CHECK(refused_on_probe("5x") == "Engine.IO upgrade carries data (a client sends exactly 5)");
    CHECK(refused_on_probe("3probe") ==
          "Engine.IO packet type 3 on an upgrading WebSocket (only 2probe and 5 are valid before the upgrade completes)");
    CHECK(refused_on_probe("40") ==
          "Engine.IO packet type 4 on an upgrading WebSocket (only 2probe and 5 are valid before the upgrade completes)");
    CHECK(refused_on_probe("1") ==
          "Engine.IO packet type 1 on an upgrading WebSocket (only 2probe and 5 are valid before the upgrade completes)");
    CHECK(refused_on_probe("6") ==
          "Engine.IO packet type 6 on an upgrading WebSocket (only 2probe and 5 are valid before the upgrade completes)");
    CHECK(refused_on_probe("x") == "unknown Engine.IO packet type");

    // Session is the default channel.
    CHECK(parse_client_packet("40").ok());
    CHECK(parse_client_packet("40", ClientChannel::Session).ok());
}

TEST_CASE("CONNECT") {
    auto bare = parsed("40");
    CHECK(bare.eio == EioType::Message);
    CHECK(bare.type == SioType::Connect);
    CHECK(bare.nsp == "/");
    CHECK_FALSE(bare.has_auth);
    CHECK_FALSE(bare.auth_token.has_value());

    auto with_token = parsed(R"(40{"token":"eyJ.a.b"})");
    CHECK(with_token.has_auth);
    CHECK(with_token.auth_token == std::string("eyJ.a.b"));

    auto not_string = parsed(R"(40{"token":42})");
    CHECK(not_string.has_auth);
    CHECK_FALSE(not_string.auth_token.has_value());

    auto other_nsp = parsed(R"(40/admin,{"token":"t"})");
    CHECK(other_nsp.nsp == "/admin");
    CHECK(other_nsp.auth_token == std::string("t"));
    CHECK(parsed("40/admin,").nsp == "/admin");
    CHECK(parsed("40/admin").nsp == "/admin");

    CHECK(refused(R"(40"token")") == "CONNECT payload is not an object");
    CHECK(refused(R"(40["token"])") == "CONNECT payload is not an object");
    CHECK(refused("401") == "ack id on a CONNECT packet");
    CHECK(refused(R"(40{"token":)").rfind("payload is not valid JSON (byte ", 0) == 0);
}

TEST_CASE("DISCONNECT") {
    auto p = parsed("41");
    CHECK(p.type == SioType::Disconnect);
    CHECK(p.nsp == "/");
    CHECK(parsed("41/admin,").nsp == "/admin");
    CHECK(refused("41{}") == "DISCONNECT carries a payload");
    CHECK(refused("417") == "ack id on a DISCONNECT packet");
}

TEST_CASE("EVENT") {
    auto p = parsed(R"(42["join-project","p1"])");
    CHECK(p.type == SioType::Event);
    CHECK(p.event == "join-project");
    CHECK_FALSE(p.ack_id.has_value());
    REQUIRE(p.args.size() == 1);
    CHECK(p.args[0].is_string);
    CHECK(p.args[0].text == "p1");

    auto acked = parsed(R"(4217["join-project","p1"])");
    CHECK(acked.ack_id == std::uint64_t{17});
    CHECK(acked.event == "join-project");

    auto no_args = parsed(R"(42["ping-me"])");
    CHECK(no_args.args.empty());

    auto mixed = parsed(R"(42["x",{"a": [1, 2]},null,true,"s\u00e9"])");
    REQUIRE(mixed.args.size() == 4);
    CHECK_FALSE(mixed.args[0].is_string);
    CHECK(mixed.args[0].text == R"({"a":[1,2]})");
    CHECK(mixed.args[1].text == "null");
    CHECK(mixed.args[2].text == "true");
    CHECK(mixed.args[3].is_string);
    CHECK(mixed.args[3].text == "s\xc3\xa9");

    auto nsp = parsed(R"(42/admin,3["x"])");
    CHECK(nsp.nsp == "/admin");
    CHECK(nsp.ack_id == std::uint64_t{3});
}

TEST_CASE("malformed EVENT") {
    CHECK(refused("42") == "EVENT has no payload");
    CHECK(refused("42[]") == "EVENT payload is an empty array");
    CHECK(refused(R"(42{"name":"x"})") == "EVENT payload is not an array");
    CHECK(refused(R"(42"x")") == "EVENT payload is not an array");
    CHECK(refused("42[1,2]") == "EVENT name is not a string");
    CHECK(refused("42[null]") == "EVENT name is not a string");
    for (const char* name : {"connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"})
        CHECK(refused(std::string("42[\"") + name + "\"]") == std::string("EVENT uses the reserved name \"") + name + "\"");
    CHECK(refused(R"(42["x",)").rfind("payload is not valid JSON (byte ", 0) == 0);
    CHECK(refused(R"(42["x"] trailing)").rfind("payload is not valid JSON", 0) == 0);
    CHECK(refused("42garbage").rfind("payload is not valid JSON", 0) == 0);
    CHECK(refused("42[\"\xff\"]").rfind("payload is not valid JSON", 0) == 0);  // invalid UTF-8
    // Escapes that decode to a lone UTF-16 surrogate, anywhere: an argument, a nested value, a
    // key, the event name, a CONNECT field. A pair is one character and stays.
    const std::string lone = "payload has a string that is not well-formed UTF-8 (a lone surrogate escape?)";
    CHECK(refused(R"(42["join-project","\udc00"])") == lone);
    CHECK(refused(R"(42["x",{"a":["ok","\udfff"]}])") == lone);
    CHECK(refused(R"(42["x",{"\udc00":1}])") == lone);
    CHECK(refused(R"(42["\udc00"])") == lone);
    CHECK(refused(R"(40{"token":"\udc00"})") == lone);
    CHECK(parsed(R"(42["x","\ud83d\ude00"])").args[0].text == "\xf0\x9f\x98\x80");
    CHECK(refused("42" + std::string(40, '[') + "\"x\"" + std::string(40, ']')) ==
          "payload nested deeper than 32 levels");
    // Brackets inside strings do not count as nesting.
    CHECK(parsed("42[\"x\",\"" + std::string(100, '[') + "\"]").args[0].text == std::string(100, '['));
}

TEST_CASE("bad ack ids") {
    CHECK(refused(R"(4299999999999999999999["x"])") == "ack id out of range");
    CHECK(refused(R"(429007199254740992["x"])") == "ack id out of range");
    CHECK(parsed(R"(429007199254740991["x"])").ack_id == std::uint64_t{9007199254740991ULL});
    CHECK(refused(R"(42-1["x"])").rfind("payload is not valid JSON", 0) == 0);
    CHECK(refused(R"(421a["x"])").rfind("payload is not valid JSON", 0) == 0);
}

TEST_CASE("ACK from a client") {
    auto p = parsed(R"(435[{"ok":true}])");
    CHECK(p.type == SioType::Ack);
    CHECK(p.ack_id == std::uint64_t{5});
    REQUIRE(p.args.size() == 1);
    CHECK(p.args[0].text == R"({"ok":true})");
    CHECK(parsed("435[]").args.empty());
    CHECK(refused("43[1]") == "ACK has no id");
    CHECK(refused("435") == "ACK payload is not an array");
    CHECK(refused("435{}") == "ACK payload is not an array");
}

TEST_CASE("hostile sizes far past the bounds") {
    // A million nested arrays: refused by the depth pre-check after 33 brackets, at once.
    const std::string deep = "42" + std::string(1000000, '[');
    const auto start = std::chrono::steady_clock::now();
    CHECK(refused(deep) == "payload nested deeper than 32 levels");
    CHECK(refused("42[\"x\"," + std::string(1000000, '{')) == "payload nested deeper than 32 levels");
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(1));

    // Closers first let the bracket count dip below zero and pass the pre-check; the parser
    // stops at the first stray closer.
    CHECK(refused("42[" + std::string(1000000, ']') + std::string(1000000, '[')).rfind("payload is not valid JSON", 0) == 0);
    CHECK(refused("42" + std::string(1000000, ']') + std::string(1000000, '[')).rfind("payload is not valid JSON", 0) ==
          0);

    // A million elements, all at depth 2: parsed, no recursion involved.
    std::string wide = "42[\"x\"";
    for (int i = 0; i < 1000000; ++i) wide += ",[]";
    wide += ']';
    CHECK(parsed(wide).args.size() == 1000000);

    for (int i = 0; i < 100000; ++i) {
        auto r = parse_client_packet("");
        REQUIRE_FALSE(r.ok());
        REQUIRE(r.error().message == "empty frame");
    }
    for (int i = 0; i < 100000; ++i) REQUIRE_FALSE(parse_client_packet("", ClientChannel::UpgradeProbe).ok());

    CHECK(refused("42" + std::string(30, '9') + "[\"x\"]") == "ack id out of range");
    CHECK(refused("43" + std::string(30, '1') + "[]") == "ack id out of range");
    CHECK(refused("40" + std::string(30, '1')) == "ack id out of range");
    // Leading zeros do not count toward the range: 30 digits, value 7.
    CHECK(parsed("42" + std::string(29, '0') + "7[\"x\"]").ack_id == std::uint64_t{7});
}

TEST_CASE("binary and server-only packets") {
    CHECK(refused(R"(451-["x",{"_placeholder":true,"num":0}])") == "binary Socket.IO packets are not supported");
    CHECK(refused("461-0[]") == "binary Socket.IO packets are not supported");
    CHECK(refused(R"(44{"message":"x"})") == "CONNECT_ERROR is sent by servers only");
}

TEST_CASE("bad namespaces") {
    CHECK(refused("40/" + std::string(200, 'a') + ",{}") == "namespace longer than 128 bytes");
    CHECK(refused("40/a\x01" "b,{}") == "namespace has a control character");
    CHECK(refused("42/a\tb,[\"x\"]") == "namespace has a control character");
}

TEST_CASE("server frames") {
    CHECK(encode_open("abc", {"websocket"}, 25000, 20000, 1000000) ==
          R"(0{"sid":"abc","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000})");
    CHECK(encode_open("abc", {}, 25000, 20000, 65536) ==
          R"(0{"sid":"abc","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":65536})");
    CHECK(encode_open("a\"b", {"websocket", "webtransport"}, 1, 2, 3) ==
          R"(0{"sid":"a\"b","upgrades":["websocket","webtransport"],"pingInterval":1,"pingTimeout":2,"maxPayload":3})");
    // The WebSocket-only form the server calls today.
    CHECK(encode_open("abc", 25000, 20000, 65536) ==
          R"(0{"sid":"abc","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":65536})");
    CHECK(encode_ping() == "2");
    CHECK(encode_probe_pong() == "3probe");
    CHECK(encode_noop() == "6");
    CHECK(encode_connect("wZX3oN0bSVIhsaknAAAI") == R"(40{"sid":"wZX3oN0bSVIhsaknAAAI"})");
    CHECK(encode_connect_error("/", "unauthorized") == R"(44{"message":"unauthorized"})");
    CHECK(encode_connect_error("/admin", "Invalid namespace") == R"(44/admin,{"message":"Invalid namespace"})");
    CHECK(encode_disconnect() == "41");
    CHECK(encode_event("task:created", R"({"id":"t1"})") == R"(42["task:created",{"id":"t1"}])");
    CHECK(encode_event("we\"ird", "1") == R"(42["we\"ird",1])");
    CHECK(encode_ack(1, R"({"ok":true})") == R"(431[{"ok":true}])");
    CHECK(encode_ack(42, R"({"ok":false,"error":"forbidden"})") == R"(4342[{"ok":false,"error":"forbidden"}])");

    std::string out = "x";
    append_event(out, "a", "[]");
    CHECK(out == R"(x42["a",[]])");
}

TEST_CASE("server frames parse back where a client could send them") {
    auto ev = parsed(encode_event("task:created", R"({"id":"t1"})"));
    CHECK(ev.event == "task:created");
    CHECK(ev.args.at(0).text == R"({"id":"t1"})");
    auto ack = parsed(encode_ack(9, "1"));
    CHECK(ack.ack_id == std::uint64_t{9});
}

}  // TEST_SUITE

TEST_SUITE("socketio_packet recovery") {
    TEST_CASE("CONNECT carries pid and offset for connection-state recovery") {
        auto p = walcast::parse_client_packet(R"(40{"token":"t","pid":"p-1","offset":"0/153C6A8:2"})");
        REQUIRE(p);
        CHECK(*p->auth_token == "t");
        CHECK(*p->auth_pid == "p-1");
        CHECK(*p->auth_offset == "0/153C6A8:2");
        auto q = walcast::parse_client_packet(R"(40{"token":"t","pid":7})");
        REQUIRE(q);
        CHECK_FALSE(q->auth_pid);
        CHECK_FALSE(q->auth_offset);
    }

    TEST_CASE("server frames with pid and offsets") {
        CHECK(walcast::encode_connect("s1", "p1") == R"(40{"sid":"s1","pid":"p1"})");
        CHECK(walcast::encode_connect("s1") == R"(40{"sid":"s1"})");
        CHECK(walcast::encode_event("task:created", R"({"id":"t1"})", "0/10:0") == R"(42["task:created",{"id":"t1"},"0/10:0"])");
        CHECK(walcast::encode_event("task:created", R"({"id":"t1"})") == R"(42["task:created",{"id":"t1"}])");
    }
}
