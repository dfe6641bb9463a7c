// Stream entries of the Redis streams adapter: the worked example field by field, walcast's
// entries encoded as Node's JSON.stringify writes them and decoded back, Node-written
// entries, entries walcast skips (other types, binary payloads, acks) and entries it refuses
// (malformed, oversized, too deep), and stream entry ids.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "routing/stream_entry.hpp"

using namespace walcast;

namespace {

using Fields = std::vector<std::pair<std::string_view, std::string_view>>;

// Node's XADD for io.to("project:p1").emit("task:created", {...}).
const std::string kExampleData =
    R"({"packet":{"type":2,"data":["task:created",{"id":"t1","projectId":"p1","title":"Write docs"}]},)"
    R"("opts":{"rooms":["project:p1"],"except":[],"flags":{}}})";

Fields view(const std::vector<std::string>& flat) {
    Fields out;
    for (std::size_t i = 0; i + 1 < flat.size(); i += 2) out.emplace_back(flat[i], flat[i + 1]);
    return out;
}

// An entry as Node writes it, with `data`.
Fields node_entry(std::string_view data) {
    return {{"uid", "0f3a9c27d1e4b856"}, {"nsp", "/"}, {"type", "3"}, {"data", data}};
}

BroadcastEntry broadcast(const Fields& fields, const StreamEntryLimits& limits = {}) {
    auto r = decode_entry(fields, limits);
    REQUIRE_MESSAGE(r.ok(), (r ? "" : r.error().message));
    REQUIRE_MESSAGE(r->kind == EntryKind::Broadcast, r->reason);
    return r->entry;
}

std::string refused(const Fields& fields, const StreamEntryLimits& limits = {}) {
    auto r = decode_entry(fields, limits);
    REQUIRE_MESSAGE(!r.ok(), "accepted");
    return r.error().message;
}

std::string refused_data(std::string_view data, const StreamEntryLimits& limits = {}) {
    return refused(node_entry(data), limits);
}

std::string skipped(const Fields& fields) {
    auto r = decode_entry(fields);
    REQUIRE_MESSAGE(r.ok(), (r ? "" : r.error().message));
    REQUIRE(r->kind == EntryKind::Unrelayable);
    CHECK(r->entry.uid == "0f3a9c27d1e4b856");
    return r->reason;
}

// data for packet.data = [<data_items>] and the given opts.
std::string data_of(std::string_view data_items, std::string_view opts = R"({"rooms":[],"except":[],"flags":{}})") {
    return R"({"packet":{"type":2,"data":[)" + std::string(data_items) + R"(]},"opts":)" + std::string(opts) + "}";
}

}  // namespace

TEST_SUITE("stream_entry") {

TEST_CASE("the worked example, field by field") {
    const BroadcastEntry e = broadcast(node_entry(kExampleData));
    CHECK(e.uid == "0f3a9c27d1e4b856");
    CHECK(e.nsp == "/");
    CHECK(e.type == 3);
    CHECK(e.event == "task:created");
    CHECK(e.args_json == R"({"id":"t1","projectId":"p1","title":"Write docs"})");
    CHECK(e.arg_count == 1);
    CHECK(e.rooms == std::vector<std::string>{"project:p1"});
    CHECK(e.except.empty());
    CHECK(!e.volatile_flag);
    CHECK(!e.walcast);
}

TEST_CASE("walcast's entry: Node's field order and JSON, plus the walcast field") {
    const auto fields = encode_broadcast_fields("0f3a9c27d1e4b856", "/", "task:created",
                                                R"({"id":"t1","projectId":"p1","title":"Write docs"})", {"project:p1"},
                                                "0/1A2B3C4:0:748");
    CHECK(fields == std::vector<std::string>{"uid", "0f3a9c27d1e4b856", "nsp", "/", "type", "3", "data", kExampleData,
                                             "walcast", "0/1A2B3C4:0:748"});
    const BroadcastEntry e = broadcast(view(fields));
    REQUIRE(e.walcast);
    CHECK(e.walcast->end_lsn.str() == "0/1A2B3C4");
    CHECK(e.walcast->index == 0);
    CHECK(e.walcast->xid == 748);
    CHECK(e.args_json == R"({"id":"t1","projectId":"p1","title":"Write docs"})");

    // No tag: no field.
    CHECK(encode_broadcast_fields("u", "/", "e", "1", {}, "").size() == 8);
}

TEST_CASE("names are escaped as JSON.stringify escapes them") {
    const std::string room = "a\"b\\c\n\x01\x7f\xc3\xa9\xf0\x9f\x98\x80\xe2\x80\xa8/";
    const auto fields = encode_broadcast_fields("u", "/", "t\xc3\xa9st\"\n", R"({"x":1})", {room}, "");
    // JSON.stringify in Node 20 of the same object, byte for byte.
    CHECK(fields[7] ==
          "{\"packet\":{\"type\":2,\"data\":[\"t\xc3\xa9st\\\"\\n\",{\"x\":1}]},\"opts\":{\"rooms\":[\"a\\\"b\\\\c\\n\\u0001"
          "\x7f\xc3\xa9\xf0\x9f\x98\x80\xe2\x80\xa8/\"],\"except\":[],\"flags\":{}}}");
    const BroadcastEntry e = broadcast(view(fields));
    CHECK(e.event == "t\xc3\xa9st\"\n");
    CHECK(e.rooms == std::vector<std::string>{room});
    // Bytes that are not UTF-8 become U+FFFD: the entry stays valid JSON.
    const BroadcastEntry bad = broadcast(view(encode_broadcast_fields("u", "/", "x\xff", "1", {"r\xc0"}, "")));
    CHECK(bad.event == "x\xef\xbf\xbd");
    CHECK(bad.rooms == std::vector<std::string>{"r\xef\xbf\xbd"});
}

TEST_CASE("round trips: payloads come back as they went") {
    for (const char* payload : {"{}", "[]", "null", "0", "-1.5e+300", R"("s")", R"({"a":[1,{"b":null}],"c":"\u00e9\ud83d\ude00"})",
                                R"([[[[]]]])", ""}) {
        const auto fields = encode_broadcast_fields("abc", "/admin", "ev", payload, {"r1", "r2"}, "1/0:4294967295:9223372036854775807");
        const BroadcastEntry e = broadcast(view(fields));
        CHECK(e.args_json == payload);
        CHECK(e.arg_count == (*payload ? 1u : 0u));
        CHECK(e.event == "ev");
        CHECK(e.nsp == "/admin");
        CHECK(e.rooms == std::vector<std::string>{"r1", "r2"});
        REQUIRE(e.walcast);
        CHECK(e.walcast->str() == "1/0:4294967295:9223372036854775807");
    }
}

TEST_CASE("a Node server's entry: extra fields, any order, no walcast tag, several arguments") {
    const std::string data = data_of(R"("chat",1,"two",null,[3,{"k":true}],{"a":-0.5e-3})",
                                     R"({"rooms":["room:a","room:b"],"except":["Xy_zSocketId"],"flags":{"compress":true}})");
    const Fields fields{{"extra", "1"}, {"data", data}, {"type", "3"}, {"nsp", "/"}, {"uid", "0f3a9c27d1e4b856"}, {"more", ""}};
    const BroadcastEntry e = broadcast(fields);
    CHECK(e.event == "chat");
    CHECK(e.args_json == R"(1,"two",null,[3,{"k":true}],{"a":-0.5e-3})");
    CHECK(e.arg_count == 5);
    CHECK(e.rooms == std::vector<std::string>{"room:a", "room:b"});
    CHECK(e.except == std::vector<std::string>{"Xy_zSocketId"});
    CHECK(!e.walcast);
    CHECK(!e.volatile_flag);
}

TEST_CASE("whitespace is dropped, strings and numbers are copied as written") {
    const std::string data =
        "{ \"packet\" : { \"type\" : 2 , \"data\" : [ \"e\" , { \"a\" : [ 1 , 2 ] } , \"s p\\u0041\\/\" , 1E5 ] } ,"
        "\n\t\"opts\" : { \"rooms\" : [ ] , \"except\" : [ ] , \"flags\" : { } } }\r\n";
    const BroadcastEntry e = broadcast(node_entry(data));
    CHECK(e.args_json == R"({"a":[1,2]},"s p\u0041\/",1E5)");
    CHECK(e.arg_count == 3);
}

TEST_CASE("escapes: keys compare decoded, lone surrogates stay escapes in arguments") {
    // "pa\u0063ket" is "packet" to JSON.parse.
    const BroadcastEntry e = broadcast(node_entry(
        R"({"pa\u0063ket":{"type":2,"data":["\u0065v","\ud800",{"\udc00":1}]},"opts":{"rooms":["\ud83d\ude00"],"except":[],"flags":{}}})"));
    CHECK(e.event == "ev");
    CHECK(e.args_json == R"("\ud800",{"\udc00":1})");
    CHECK(e.rooms == std::vector<std::string>{"\xf0\x9f\x98\x80"});
    CHECK(refused_data(data_of(R"("\ud800")")) ==
          "stream entry: data: the event name escapes a lone UTF-16 surrogate at byte 28");
    CHECK(refused_data(data_of(R"("e")", R"({"rooms":["\udc00x"],"except":[],"flags":{}})")) ==
          "stream entry: data: a room in opts.rooms escapes a lone UTF-16 surrogate at byte 51");
}

TEST_CASE("flags: volatile, whatever its value") {
    CHECK(broadcast(node_entry(data_of(R"("e")", R"({"rooms":[],"except":[],"flags":{"volatile":true}})"))).volatile_flag);
    CHECK(broadcast(node_entry(data_of(R"("e")", R"({"rooms":[],"except":[],"flags":{"volatile":null}})"))).volatile_flag);
    CHECK(!broadcast(node_entry(data_of(R"("e")", R"({"rooms":[],"except":[]})"))).volatile_flag);
    CHECK(refused_data(data_of(R"("e")", R"({"rooms":[],"except":[],"flags":[]})")) ==
          "stream entry: data: opts.flags is an array, not an object at byte 73");
}

TEST_CASE("other message types are skipped quietly") {
    for (const char* type : {"1", "2", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "0"}) {
        auto r = decode_entry({{"uid", "0f3a9c27d1e4b856"}, {"nsp", "/"}, {"type", type}});
        REQUIRE_MESSAGE(r.ok(), type);
        CHECK(r->kind == EntryKind::NotBroadcast);
        CHECK(r->entry.type == std::stoi(type));
        CHECK(r->entry.uid == "0f3a9c27d1e4b856");
    }
    // SOCKETS_JOIN with its data: not looked at.
    auto join = decode_entry({{"uid", "u"}, {"nsp", "/"}, {"type", "4"}, {"data", "not json at all"}});
    REQUIRE(join.ok());
    CHECK(join->kind == EntryKind::NotBroadcast);
}

TEST_CASE("broadcasts walcast cannot relay are skipped with a reason") {
    // The notes' binary example: base64 msgpack.
    CHECK(skipped(node_entry("gqZwYWNrZXSCpHR5cGUCpGRhdGGSpGZpbGXEAwECA6RvcHRzg6Vyb29tc5GqcHJvamVjdDpwMaZleGNlcHSQpWZsYWdzgA==")) ==
          "binary payload, skipped");
    CHECK(skipped(node_entry(" {\"packet\":{}}")) == "binary payload, skipped");
    CHECK(skipped(node_entry("")) == "binary payload, skipped");
    CHECK(skipped(node_entry(R"({"packet":{"type":2,"data":["e"],"id":7},"opts":{"rooms":[],"except":[],"flags":{}}})")) ==
          "acknowledgement requested (packet id), skipped");
    CHECK(skipped(node_entry(R"({"packet":{"type":2,"data":["e"]},"requestId":"r1","opts":{"rooms":[],"except":[],"flags":{}}})")) ==
          "acknowledgement requested (requestId), skipped");
    CHECK(skipped(node_entry(R"({"packet":{"type":5,"data":["e",{"_placeholder":true,"num":0}],"attachments":1},"opts":{"rooms":[],"except":[],"flags":{}}})")) ==
          "packet type 5 (BINARY_EVENT) is not EVENT (2), skipped");
    CHECK(skipped(node_entry(R"({"packet":{"type":3,"data":[]},"opts":{}})")) == "packet type 3 is not EVENT (2), skipped");
    // 2.0 is 2 to JSON.parse.
    CHECK(broadcast(node_entry(R"({"packet":{"type":2.0,"data":["e"]},"opts":{"rooms":[],"except":[],"flags":{}}})")).event == "e");
}

TEST_CASE("the header fields") {
    CHECK(refused({{"nsp", "/"}, {"type", "3"}}) == "stream entry: no uid field");
    CHECK(refused({{"uid", "u"}, {"type", "3"}}) == "stream entry: no nsp field");
    CHECK(refused({{"uid", "u"}, {"nsp", "/"}}) == "stream entry: no type field");
    CHECK(refused({{"uid", "u"}, {"nsp", "/"}, {"type", "3"}}) == "stream entry: BROADCAST without a data field");
    CHECK(refused({{"uid", "u"}, {"uid", "v"}, {"nsp", "/"}, {"type", "3"}}) == "stream entry: the field uid appears twice");
    CHECK(refused({{"uid", ""}, {"nsp", "/"}, {"type", "3"}}) == "stream entry: uid is not 1 to 64 printable ASCII characters");
    CHECK(refused({{"uid", "a b"}, {"nsp", "/"}, {"type", "3"}}) == "stream entry: uid is not 1 to 64 printable ASCII characters");
    const std::string long_uid(65, 'a');
    CHECK(refused({{"uid", long_uid}, {"nsp", "/"}, {"type", "3"}}) ==
          "stream entry: uid is not 1 to 64 printable ASCII characters");
    CHECK(refused({{"uid", "u"}, {"nsp", ""}, {"type", "3"}}) ==
          "stream entry: nsp is not 1 to 256 bytes of UTF-8 without control characters");
    CHECK(refused({{"uid", "u"}, {"nsp", "/a\nb"}, {"type", "3"}}) ==
          "stream entry: nsp is not 1 to 256 bytes of UTF-8 without control characters");
    CHECK(refused({{"uid", "u"}, {"nsp", "/\xff"}, {"type", "3"}}) ==
          "stream entry: nsp is not 1 to 256 bytes of UTF-8 without control characters");
    for (const char* type : {"", "03", "x", "-3", "3 ", "+3", "3.0", "1000000000"})
        CHECK(refused({{"uid", "u"}, {"nsp", "/"}, {"type", type}}) == "stream entry: type is not a decimal number");
    CHECK(refused({{"uid", "u"}, {"nsp", "/"}, {"type", "1"}, {"walcast", "0/1:2"}}) ==
          "stream entry: the walcast field is not <lsn>:<index>:<xid>");
    Fields many;
    for (int i = 0; i < 65; ++i) many.emplace_back("f", "v");
    CHECK(refused(many) == "stream entry: 65 fields (limit max_fields = 64)");
}

TEST_CASE("the shape of data") {
    CHECK(refused_data(R"({"opts":{"rooms":[],"except":[],"flags":{}}})") == "stream entry: data has no packet");
    CHECK(refused_data(R"({"packet":{"data":["e"]},"opts":{}})") == "stream entry: packet has no type");
    CHECK(refused_data(R"({"packet":{"type":2},"opts":{}})") == "stream entry: packet has no data");
    CHECK(refused_data(R"({"packet":{"type":2,"data":[]},"opts":{}})") == "stream entry: packet.data is empty (no event name)");
    CHECK(refused_data(R"({"packet":{"type":2,"data":["e"]}})") == "stream entry: data has no opts");
    CHECK(refused_data(R"({"packet":{"type":2,"data":["e"]},"opts":{"except":[]}})") == "stream entry: opts has no rooms");
    CHECK(refused_data(R"({"packet":{"type":2,"data":["e"]},"opts":{"rooms":[]}})") == "stream entry: opts has no except");
    CHECK(refused_data(R"({"packet":[],"opts":{}})") == "stream entry: data: packet is an array, not an object at byte 10");
    CHECK(refused_data(R"({"packet":{"type":"2","data":["e"]}})") ==
          "stream entry: data: packet.type is a string, not a number at byte 18");
    CHECK(refused_data(R"({"packet":{"type":2,"data":{"0":"e"}}})") ==
          "stream entry: data: packet.data is an object, not an array at byte 27");
    CHECK(refused_data(data_of("42")) ==
          "stream entry: data: packet.data[0], the event name, is a number, not a string at byte 28");
    CHECK(refused_data(data_of(R"(["e"])")) ==
          "stream entry: data: packet.data[0], the event name, is an array, not a string at byte 28");
    CHECK(refused_data(data_of(R"("disconnect",1)")) ==
          "stream entry: data: the event name \"disconnect\" is reserved by Socket.IO at byte 28");
    CHECK(refused_data(data_of(R"("e")", R"({"rooms":"r","except":[]})")) ==
          "stream entry: data: opts.rooms is a string, not an array at byte 50");
    CHECK(refused_data(data_of(R"("e")", R"({"rooms":["a",1],"except":[]})")) ==
          "stream entry: data: a room in opts.rooms is a number, not a string at byte 55");
    CHECK(refused_data(data_of(R"("e")", R"({"rooms":[],"except":[null]})")) ==
          "stream entry: data: a room in opts.except is true, false or null, not a string at byte 63");
    CHECK(refused_data(data_of(R"("e")", "[]")) == "stream entry: data: opts is an array, not an object at byte 41");
    CHECK(refused_data(R"({"packet":{"type":2,"type":2,"data":["e"]}})") ==
          "stream entry: data: the key \"type\" appears twice in one object at byte 20");
    CHECK(refused_data(data_of(R"("e")") + "x") == "stream entry: data: characters after the JSON object at byte 77");
    // Keys and values of no interest are only validated; repeats there are allowed.
    CHECK(broadcast(node_entry(R"({"x":{"x":1,"x":2},"packet":{"nsp":"/","type":2,"data":["e",{"a":1,"a":2}]},)"
                               R"("opts":{"rooms":[],"except":[],"flags":{"volatile":false,"v":[{}]}}})"))
              .args_json == R"({"a":1,"a":2})");
}

TEST_CASE("JSON syntax is strict") {
    const auto syntax = [](std::string_view arg) { return refused_data(data_of(std::string(R"("e",)") + std::string(arg))); };
    CHECK(syntax("01") == "stream entry: data: expected ',' or ']' at byte 33");
    CHECK(syntax("1.") == "stream entry: data: invalid number at byte 32");
    CHECK(syntax("-") == "stream entry: data: invalid number at byte 32");
    CHECK(syntax("1e") == "stream entry: data: invalid number at byte 32");
    CHECK(syntax("+1") == "stream entry: data: unexpected character at byte 32");
    CHECK(syntax("tru") == "stream entry: data: unexpected character at byte 32");
    CHECK(syntax("NaN") == "stream entry: data: unexpected character at byte 32");
    CHECK(syntax("[1,]") == "stream entry: data: unexpected character at byte 35");
    CHECK(syntax("{\"a\":1,}") == "stream entry: data: expected a string key at byte 39");
    CHECK(syntax("{\"a\" 1}") == "stream entry: data: expected ':' at byte 37");
    CHECK(syntax("{1:1}") == "stream entry: data: expected a string key at byte 33");
    CHECK(syntax("'s'") == "stream entry: data: unexpected character at byte 32");
    CHECK(syntax("\"a\tb\"") == "stream entry: data: control character in a string at byte 34");
    CHECK(syntax("\"a\\x\"") == "stream entry: data: invalid escape at byte 34");
    CHECK(syntax("\"a\\u12G4\"") == "stream entry: data: invalid \\u escape at byte 34");
    CHECK(syntax("\"a\xff\"") == "stream entry: data: invalid UTF-8 in a string at byte 34");
    CHECK(syntax("\"\xc0\xaf\"") == "stream entry: data: invalid UTF-8 in a string at byte 33");        // overlong '/'
    CHECK(syntax("\"\xed\xa0\x80\"") == "stream entry: data: invalid UTF-8 in a string at byte 33");    // a surrogate
    CHECK(syntax("\"\xf4\x90\x80\x80\"") == "stream entry: data: invalid UTF-8 in a string at byte 33");  // past U+10FFFF
    CHECK(syntax("\"\xe2\x82\"") == "stream entry: data: invalid UTF-8 in a string at byte 33");        // cut short
    CHECK(refused_data(R"({"packet":{"type":2,"data":["e")") == "stream entry: data: the JSON text ends early at byte 31");
    CHECK(refused_data(R"({"packet":{"type":2,"data":["e)") == "stream entry: data: unterminated string at byte 28");
    CHECK(refused_data("{\"packet\"\xc2\xa0:{}}") == "stream entry: data: expected ':' at byte 9");
}

TEST_CASE("sizes, counts and depth are bounded") {
    StreamEntryLimits small;
    small.max_data_bytes = kExampleData.size() - 1;
    CHECK(refused(node_entry(kExampleData), small) ==
          "stream entry: data of " + std::to_string(kExampleData.size()) + " bytes (limit max_data_bytes = " +
              std::to_string(kExampleData.size() - 1) + ")");
    // The default: 16 MiB.
    const std::string huge = data_of("\"e\",\"" + std::string(16u << 20, 'x') + "\"");
    CHECK(refused(node_entry(huge)) ==
          "stream entry: data of " + std::to_string(huge.size()) + " bytes (limit max_data_bytes = 16777216)");

    // 100,000 levels inside an argument: refused at the 65th level, without recursion.
    std::string deep = R"({"packet":{"type":2,"data":["e",)";
    deep += std::string(100000, '[');
    CHECK(refused_data(deep) == "stream entry: data: nested deeper than 64 levels (limit max_json_depth = 64) at byte 93");
    std::string ok = R"({"packet":{"type":2,"data":["e",)" + std::string(61, '[') + std::string(61, ']') +
                     R"(]},"opts":{"rooms":[],"except":[],"flags":{}}})";
    CHECK(broadcast(node_entry(ok)).args_json == std::string(61, '[') + std::string(61, ']'));

    std::string rooms = "[";
    for (int i = 0; i <= 10000; ++i) rooms += (i ? ",\"r" : "\"r") + std::to_string(i) + "\"";
    rooms += "]";
    const std::string too_many = data_of(R"("e")", R"({"rooms":)" + rooms + R"(,"except":[]})");
    CHECK(refused_data(too_many).rfind("stream entry: data: opts.rooms holds more than 10000 rooms (limit max_rooms = 10000) at byte ", 0) == 0);
    small = {};
    small.max_rooms = 10001;
    CHECK(broadcast(node_entry(too_many), small).rooms.size() == 10001);

    const std::string long_room = data_of(R"("e")", R"({"rooms":[")" + std::string(4097, 'r') + R"("],"except":[]})");
    CHECK(refused_data(long_room) ==
          "stream entry: data: a room in opts.rooms is longer than 4096 bytes (limit max_name_bytes = 4096) at byte 51");
    CHECK(refused_data(data_of("\"" + std::string(4097, 'e') + "\"")) ==
          "stream entry: data: the event name is longer than 4096 bytes (limit max_name_bytes = 4096) at byte 28");
    // Escapes count decoded: 4096 bytes written as 6-byte escapes still fit.
    std::string escaped = "\"";
    for (int i = 0; i < 4096; ++i) escaped += "\\u0065";
    escaped += "\"";
    CHECK(broadcast(node_entry(data_of(escaped))).event == std::string(4096, 'e'));
}

TEST_CASE("stream entry ids") {
    auto id = StreamId::parse("1718000000000-0");
    REQUIRE(id);
    CHECK(id->ms == 1718000000000ULL);
    CHECK(id->seq == 0);
    CHECK(id->str() == "1718000000000-0");
    auto max = StreamId::parse("18446744073709551615-18446744073709551615");
    REQUIRE(max);
    CHECK(max->str() == "18446744073709551615-18446744073709551615");
    CHECK(!max->next());
    for (const char* bad : {"", "-", "1718000000000", "1718000000000-", "-0", "1-2-3", "+1-0", "1-+0", " 1-0", "1-0 ",
                            "18446744073709551616-0", "0-18446744073709551616", "*", "$", "+", "a-b", "1-0x1", "1--1",
                            "1\xd9\xa0-0"})
        CHECK_MESSAGE(!StreamId::parse(bad), bad);
    CHECK(StreamId::parse("007-01")->str() == "7-1");

    CHECK(StreamId{5, 1}.next() == StreamId{5, 2});
    CHECK(StreamId{5, UINT64_MAX}.next() == StreamId{6, 0});
    CHECK(StreamId{1, 9} < StreamId{2, 0});
    CHECK(StreamId{2, 0} < StreamId{2, 1});
    CHECK(StreamId{2, 1} <= StreamId{2, 1});
    CHECK(StreamId{3, 0} > StreamId{2, 99});
    CHECK(StreamId{3, 0} != StreamId{3, 1});
}

TEST_CASE("walcast tags") {
    auto tag = WalcastTag::parse("0/1A2B3C4:0:748");
    REQUIRE(tag);
    CHECK(tag->end_lsn == *Lsn::parse("0/1A2B3C4"));
    CHECK(tag->index == 0);
    CHECK(tag->xid == 748);
    CHECK(tag->str() == "0/1A2B3C4:0:748");
    CHECK(WalcastTag::parse("FFFFFFFF/FFFFFFFF:4294967295:9223372036854775807")->str() ==
          "FFFFFFFF/FFFFFFFF:4294967295:9223372036854775807");
    for (const char* bad : {"", "0/1A2B3C4", "0/1A2B3C4:0", "0/1A2B3C4:0:", "0/1A2B3C4::748", "0/1A2B3C4:-1:748",
                            "0/1A2B3C4:4294967296:1", "0/1A2B3C4:0:9223372036854775808", "0/1A2B3C4:0:-1", "x:0:1",
                            "0/1A2B3C4:0:7:8", "0/1A2B3C4:0:+7", "0/1A2B3C4:0:7 "})
        CHECK_MESSAGE(!WalcastTag::parse(bad), bad);
}

}  // TEST_SUITE
