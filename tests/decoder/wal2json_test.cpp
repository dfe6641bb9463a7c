// wal2json v2 decoding: golden lines recorded from PostgreSQL 15 + wal2json, exact digits,
// text escapes, TOAST absence, and every kind of malformed line with the message users see.
#include <doctest/doctest.h>

#include "decoder/wal2json.hpp"
#include "fixture.hpp"

using namespace walcast;
using walcast::test::fixture_lines;

namespace {

// The first line of a fixture with this action (and table, when given).
Change first(const std::string& fixture, Action action, const std::string& table = "") {
    for (const std::string& line : fixture_lines(fixture)) {
        auto c = decode_wal2json_line(line);
        REQUIRE_MESSAGE(c, line);
        if (c->action == action && (table.empty() || c->table == table)) return *c;
    }
    FAIL("no such line in " << fixture);
    return {};
}

std::string error_of(std::string_view line) {
    auto c = decode_wal2json_line(line);
    REQUIRE_MESSAGE(!c, line);
    return c.error().message;
}

}  // namespace

TEST_SUITE("wal2json") {
    TEST_CASE("every golden line decodes") {
        for (const char* name : {"basic.jsonl", "composite.jsonl", "invitation.jsonl", "messages.jsonl", "numbers.jsonl",
                                 "savepoint.jsonl", "text.jsonl", "toast.jsonl", "truncate.jsonl", "untracked.jsonl"})
            for (const std::string& line : fixture_lines(name)) CHECK_MESSAGE(decode_wal2json_line(line), name << ": " << line);
    }

    TEST_CASE("begin and commit carry xid, timestamp and both LSNs") {
        Change b = first("basic.jsonl", Action::Begin);
        Change c = first("basic.jsonl", Action::Commit);
        REQUIRE(b.xid);
        CHECK(b.xid == c.xid);
        CHECK(b.lsn == c.lsn);
        CHECK(b.nextlsn == c.nextlsn);  // both are the end of the commit record
        CHECK(*b.lsn < *b.nextlsn);
        CHECK(b.timestamp.size() >= 22);
        CHECK(b.timestamp.back() != 'Z');
    }

    TEST_CASE("insert, update and delete rows") {
        Change i = first("basic.jsonl", Action::Insert, "Task");
        CHECK(i.schema == "public");
        CHECK(i.table == "Task");
        REQUIRE(find_column(i.columns, "id"));
        CHECK(find_column(i.columns, "id")->value.text == "t1");
        CHECK(find_column(i.columns, "id")->type == "text");
        CHECK(find_column(i.columns, "assigneeId")->value.is_null());
        CHECK(i.identity.empty());

        Change u = first("basic.jsonl", Action::Update, "Task");
        CHECK_FALSE(u.columns.empty());
        CHECK_FALSE(u.identity.empty());  // REPLICA IDENTITY FULL: the old row

        Change d = first("basic.jsonl", Action::Delete, "Task");
        CHECK(d.columns.empty());
        CHECK(find_column(d.identity, "id")->value.text == "t1");
    }

    TEST_CASE("int8 and numeric keep every digit") {
        Change i = first("numbers.jsonl", Action::Insert, "Task");
        const Column* position = find_column(i.columns, "position");
        const Column* estimate = find_column(i.columns, "estimate");
        REQUIRE(position);
        REQUIRE(estimate);
        CHECK(position->value.kind == Value::Kind::Number);
        CHECK(position->value.text == "9007199254740993");
        CHECK(position->type == "bigint");
        CHECK(estimate->value.kind == Value::Kind::Number);
        CHECK(estimate->value.text == "12345678.90");
        CHECK(estimate->type == "numeric(12,2)");
    }

    TEST_CASE("unicode, quotes, backslashes and control characters are unescaped exactly") {
        Change i = first("text.jsonl", Action::Insert, "Task");
        const std::string& title = find_column(i.columns, "title")->value.text;
        CHECK(title.find("héllo — 日本語 🎉") != std::string::npos);
        CHECK(title.find("\"quoted\"") != std::string::npos);
        CHECK(title.find("back\\slash\\\\") != std::string::npos);
        CHECK(title.find("new\nline\ttab\rcr") != std::string::npos);
        CHECK(title.find('\x01') != std::string::npos);
    }

    TEST_CASE("an unchanged TOASTed column is absent from an UPDATE, not null") {
        Change full = first("toast.jsonl", Action::Update, "Note");
        CHECK(find_column(full.columns, "body") == nullptr);
        REQUIRE(find_column(full.columns, "title"));
        REQUIRE(find_column(full.identity, "body"));  // FULL identity still has the old value
        CHECK(find_column(full.identity, "body")->value.text.size() > 4000);

        Change keyed = first("toast.jsonl", Action::Update, "Attachment");
        CHECK(find_column(keyed.columns, "body") == nullptr);
        CHECK(find_column(keyed.identity, "body") == nullptr);  // DEFAULT identity: only the key
    }

    TEST_CASE("composite keys") {
        Change d = first("composite.jsonl", Action::Delete, "TaskWatcher");
        CHECK(d.identity.size() == 2);
        CHECK(find_column(d.identity, "taskId")->value.text == "t1");
        CHECK(find_column(d.identity, "userId")->value.text == "u1");
    }

    TEST_CASE("messages: transactional, non-transactional, content unescaped") {
        bool saw_nontx = false, saw_tx = false;
        for (const std::string& line : fixture_lines("messages.jsonl")) {
            Change c = *decode_wal2json_line(line);
            if (c.action != Action::Message) continue;
            if (!c.transactional) {
                saw_nontx = true;
                CHECK_FALSE(c.xid);
                CHECK(c.timestamp.empty());
            } else if (c.prefix == "walcast") {
                saw_tx = true;
                CHECK(c.xid);
                CHECK(c.content.rfind("{\"actorUserId\":", 0) == 0);
            }
        }
        CHECK(saw_nontx);
        CHECK(saw_tx);
    }

    TEST_CASE("truncate") {
        Change t = first("truncate.jsonl", Action::Truncate);
        CHECK(t.schema == "public");
        CHECK(t.columns.empty());
    }

    TEST_CASE("pk array, unknown fields and nested unknown values are accepted") {
        auto c = decode_wal2json_line(
            R"({"action":"I","xid":1,"origin":"x","extra":{"a":[1,{"b":2}]},"schema":"s","table":"t",)"
            R"("columns":[{"name":"a","type":"int","value":1,"typeoid":23,"more":[1]}],"pk":[{"name":"a","type":"int"}]})");
        REQUIRE(c);
        CHECK(c->pk == std::vector<std::string>{"a"});
        CHECK(c->columns.size() == 1);
    }

    TEST_CASE("reusing a Change clears what the previous line set") {
        Change c;
        REQUIRE_FALSE(decode_wal2json_line(R"({"action":"I","xid":1,"schema":"s","table":"t","columns":[{"name":"a","type":"int","value":1},{"name":"b","type":"text","value":"x"},{"name":"c","type":"bool","value":true}]})", c));
        CHECK(c.columns.size() == 3);
        REQUIRE_FALSE(decode_wal2json_line(R"({"action":"D","xid":2,"schema":"s","table":"t","identity":[{"name":"a","type":"int","value":2}]})", c));
        CHECK(c.columns.empty());
        CHECK(c.identity.size() == 1);
        CHECK(c.identity[0].value.text == "2");
        REQUIRE_FALSE(decode_wal2json_line(R"({"action":"B","xid":3,"lsn":"0/10","nextlsn":"0/20"})", c));
        CHECK(c.identity.empty());
        CHECK(c.table.empty());
        CHECK(c.nextlsn->str() == "0/20");
    }

    TEST_CASE("malformed lines: each error says what and where") {
        CHECK(error_of("") == "invalid JSON at byte 0: The document is empty.");
        CHECK(error_of(R"({"action":"I","xid":1,"schema":"public","table":"Ta)") ==
              "invalid JSON at byte 51: Missing a closing quotation mark in string.");
        CHECK(error_of(R"({"action":"B"} trailing)") ==
              "invalid JSON at byte 15: The document root must not be followed by other values.");
        CHECK(error_of(R"(["action","B"])") == "a wal2json line must be a JSON object (byte 1)");
        CHECK(error_of(R"({"action":"X"})") == "unknown action \"X\" (byte 13)");
        CHECK(error_of(R"({"action":"BC"})") == "unknown action \"BC\" (byte 14)");
        CHECK(error_of(R"({"action":1})") == "field \"action\" has the wrong type (not a string) (byte 10)");
        CHECK(error_of(R"({"xid":1})") == "missing field \"action\"");
        CHECK(error_of(R"({"action":"B","xid":"735"})") == "field \"xid\" must be a non-negative integer or null (byte 25)");
        CHECK(error_of(R"({"action":"B","xid":1.5})") == "field \"xid\" must be a non-negative integer or null (byte 20)");
        CHECK(error_of(R"({"action":"B","lsn":"nope"})") == "field \"lsn\" is not an LSN: \"nope\" (byte 26)");
        CHECK(error_of(R"({"action":"B","nextlsn":5})") == "field \"nextlsn\" has the wrong type (not a string) (byte 24)");
        CHECK(error_of(R"({"action":"I","schema":"s","table":"t"})") == "action I: missing \"columns\"");
        CHECK(error_of(R"({"action":"D","schema":"s","table":"t","columns":[]})") == "action D: missing \"identity\"");
        CHECK(error_of(R"({"action":"U","columns":[]})") == "action U: missing \"schema\" or \"table\"");
        CHECK(error_of(R"({"action":"I","schema":"s","table":"t","columns":{}})") ==
              "field \"columns\" has the wrong type (an object) (byte 50)");
        CHECK(error_of(R"({"action":"I","schema":"s","table":"t","columns":null})") ==
              "field \"columns\" has the wrong type (null) (byte 53)");
        CHECK(error_of(R"({"action":"I","schema":"s","table":"t","columns":[1]})") ==
              "columns: elements must be objects (byte 50)");
        CHECK(error_of(R"({"action":"I","schema":"s","table":"t","columns":[{"type":"int","value":1}]})") ==
              "columns: column without a name (byte 74)");
        CHECK(error_of(R"({"action":"I","schema":"s","table":"t","columns":[{"name":"a","value":{"x":1}}]})") ==
              "column \"a\": value must be a scalar (byte 71)");
        CHECK(error_of(R"({"action":"I","schema":"s","table":"t","columns":[{"name":"a","value":[1]}]})") ==
              "column \"a\": value must be a scalar (byte 71)");
        CHECK(error_of(R"({"action":"I","schema":7,"table":"t","columns":[]})") ==
              "field \"schema\" has the wrong type (not a string) (byte 23)");
        CHECK(error_of(R"({"action":"M","transactional":"yes","prefix":"p","content":"c"})") ==
              "field \"transactional\" has the wrong type (not a boolean) (byte 35)");
        CHECK(error_of(R"({"action":"M","transactional":true,"prefix":"p"})") ==
              "action M: missing \"transactional\", \"prefix\" or \"content\"");
    }

    TEST_CASE("a 10 MiB line: a real row decodes, a broken one fails cleanly") {
        const std::string big(10 << 20, 'x');
        std::string line = R"({"action":"I","xid":9,"schema":"public","table":"Note","columns":[{"name":"id","type":"text","value":"n1"},{"name":"body","type":"text","value":")" + big + "\"}]}";
        auto ok = decode_wal2json_line(line);
        REQUIRE(ok);
        CHECK(find_column(ok->columns, "body")->value.text.size() == big.size());

        line.resize(line.size() - 3);  // cut inside the string
        CHECK(error_of(line).rfind("invalid JSON at byte", 0) == 0);
        CHECK(error_of(std::string(10 << 20, '{')).rfind("invalid JSON at byte 1: ", 0) == 0);
    }

    TEST_CASE("nesting past kMaxWal2jsonDepth is refused, however deep the line goes") {
        // A million levels would overflow the stack of a parser that recursed into them.
        const std::string bomb(1000000, '[');
        const std::string insert = R"({"action":"I","schema":"s","table":"t",)";

        // Under an unknown key, whose value is otherwise skipped: the line's object is level 1,
        // so the 64th '[' (byte 47 + 63) would open level 65. The offset is just past it.
        const std::string unknown = insert + R"("extra":)";
        REQUIRE(unknown.size() == 47);
        CHECK(error_of(unknown + bomb) == "objects and arrays nested deeper than 64 levels (byte 111)");
        std::string objects = unknown;
        for (int i = 0; i < 100000; ++i) objects += R"({"a":)";
        CHECK(error_of(objects) == "objects and arrays nested deeper than 64 levels (byte " +
                                   std::to_string(unknown.size() + 63 * 5 + 1) + ")");

        // Inside columns, under a column field the decoder does not know: columns and the
        // column object are levels 2 and 3, so the 62nd '[' opens level 65.
        const std::string column = insert + R"("columns":[{"name":"a","type":"int","value":1,"typmod":)";
        CHECK(error_of(column + bomb) == "objects and arrays nested deeper than 64 levels (byte " +
                                         std::to_string(column.size() + 62) + ")");

        // The deepest line allowed still decodes.
        auto deepest = decode_wal2json_line(unknown + std::string(63, '[') + std::string(63, ']') +
                                            R"(,"columns":[{"name":"a","type":"int","value":1}]})");
        REQUIRE(deepest);
        CHECK(deepest->columns.size() == 1);
        CHECK(error_of(unknown + std::string(64, '[') + std::string(64, ']') + "}") ==
              "objects and arrays nested deeper than 64 levels (byte 111)");
    }
}

#include "decoder/json_text.hpp"

TEST_SUITE("json_text") {
    std::string quoted(std::string_view s) {
        std::string out;
        append_json_string(out, s);
        return out;
    }

    TEST_CASE("escapes what JSON requires and copies valid UTF-8") {
        CHECK(quoted("plain") == "\"plain\"");
        CHECK(quoted("a\"b\\c\nd\te\r\b\f") == R"("a\"b\\c\nd\te\r\b\f")");
        CHECK(quoted(std::string("\x01\x1f", 2)) == R"("\u0001\u001f")");
        CHECK(quoted("héllo — 日本語 🎉") == "\"héllo — 日本語 🎉\"");
        CHECK(quoted("/") == "\"/\"");
    }

    TEST_CASE("bytes that are not well-formed UTF-8 become U+FFFD, one per byte") {
        CHECK(quoted("a\xff" "b") == R"("a\ufffdb")");
        CHECK(quoted("\xc3") == R"("\ufffd")");                 // truncated 2-byte sequence
        CHECK(quoted("\xc0\xaf") == R"("\ufffd\ufffd")");       // overlong
        CHECK(quoted("\xed\xa0\x80") == R"("\ufffd\ufffd\ufffd")");  // surrogate
        CHECK(quoted("\xf4\x90\x80\x80") == R"("\ufffd\ufffd\ufffd\ufffd")");  // above U+10FFFF
        CHECK(quoted("ok\xe2\x82") == R"("ok\ufffd\ufffd")");
    }

    // The byte-at-a-time rule the 8-byte skipping must agree with.
    std::string quoted_slowly(std::string_view s) {
        std::string out = "\"";
        for (std::size_t i = 0; i < s.size();) {
            const unsigned char c = static_cast<unsigned char>(s[i]);
            if (c >= 0x80) {
                if (std::size_t n = json_text_detail::utf8_sequence(s, i)) {
                    out.append(s.substr(i, n));
                    i += n;
                } else {
                    out += "\\ufffd";
                    ++i;
                }
                continue;
            }
            switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            case '\b': out += "\\b"; break;
            case '\f': out += "\\f"; break;
            default:
                if (c < 0x20) {
                    static constexpr char hex[] = "0123456789abcdef";
                    out += "\\u00";
                    out.push_back(hex[c >> 4]);
                    out.push_back(hex[c & 0xF]);
                } else {
                    out.push_back(static_cast<char>(c));
                }
            }
            ++i;
        }
        out.push_back('"');
        return out;
    }

    TEST_CASE("special bytes and UTF-8 sequences at every position of the 8-byte blocks") {
        const std::string pieces[] = {"\"", "\\", "\n", std::string(1, '\0'), "\x1f", "\x7f", " ", "~",
                                      "\xc3\xa9", "\xe2\x80\x94", "\xf0\x9f\x8e\x89", "\xff", "\xc3", "\xe2\x82"};
        for (const std::string& piece : pieces)
            for (std::size_t before = 0; before <= 17; ++before)
                for (std::size_t after : {0, 1, 7, 8, 9}) {
                    const std::string s = std::string(before, 'a') + piece + std::string(after, 'b');
                    CAPTURE(s);
                    CHECK(quoted(s) == quoted_slowly(s));
                }
        // Pseudo-random mixes of plain text and every kind of byte.
        std::uint32_t state = 12345;
        for (int round = 0; round < 2000; ++round) {
            std::string s;
            const std::size_t len = (state = state * 1103515245u + 12345u) >> 16 & 63;
            for (std::size_t k = 0; k < len; ++k) {
                state = state * 1103515245u + 12345u;
                const unsigned r = state >> 16;
                s.push_back(r % 4 == 0 ? static_cast<char>(r >> 8) : static_cast<char>('a' + r % 26));
            }
            CAPTURE(s);
            CHECK(quoted(s) == quoted_slowly(s));
        }
    }

    TEST_CASE("a wal2json line with invalid UTF-8 decodes; the writer repairs it") {
        auto c = decode_wal2json_line("{\"action\":\"I\",\"schema\":\"s\",\"table\":\"t\",\"columns\":[{\"name\":\"a\",\"type\":\"text\",\"value\":\"x\xffy\"}]}");
        REQUIRE(c);
        std::string out;
        append_json_value(out, c->columns[0].value);
        CHECK(out == R"("x\ufffdy")");
    }
}
