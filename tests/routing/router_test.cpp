// The router: room templates, payloads, ids, coalescing, and every drop reason. Fake sinks
// record what would reach the sockets.
#include <doctest/doctest.h>

#include <rapidjson/document.h>

#include <string>
#include <vector>

#include "decoder/transaction.hpp"
#include "fixture.hpp"
#include "config/config.hpp"
#include "routing/router.hpp"

using namespace walcast;
using walcast::test::fixture_lines;

namespace {

struct Collector : EventSink, RouteObserver {
    std::vector<Event> events;
    std::vector<std::pair<std::string, ChangeOutcome>> outcomes;  // "Table" -> outcome
    std::vector<Verdict> verdicts;

    void on_transaction(const TransactionInfo&, std::vector<Event>& evs) override {
        for (Event& e : evs) events.push_back(std::move(e));
    }
    void on_begin(const TransactionInfo&) override {}
    void on_context(const Change&, const EmitContext*, const Error*) override {}
    void on_change(const Change& c, const ChangeOutcome& o) override { outcomes.emplace_back(c.table, o); }
    void on_commit(const TransactionInfo&, const Verdict& v, std::size_t) override { verdicts.push_back(v); }
    void on_abandon(const TransactionInfo&, const std::string&) override {}
};

Config config_from(const std::string& toml) {
    auto c = parse_config(toml, "test.toml");
    REQUIRE_MESSAGE(c, (c ? "" : c.error().message));
    return *c;
}

Config example_config() {
    auto c = load_config(std::string(WALCAST_SOURCE_DIR) + "/examples/walcast.toml");
    REQUIRE_MESSAGE(c, (c ? "" : c.error().message));
    return *c;
}

// Runs lines (wal2json text) through assembler and router.
struct Pipeline {
    Config config;
    Collector out;
    Router router;
    TransactionAssembler assembler;

    explicit Pipeline(Config c)
        : config(std::move(c)), router(config, out, &out), assembler(config.message_prefix, router) {}

    void feed(const std::vector<std::string>& lines) {
        Change change;
        for (const std::string& line : lines) {
            REQUIRE_FALSE_MESSAGE(decode_wal2json_line(line, change), line);
            REQUIRE_FALSE(assembler.feed(change));
        }
    }
};

rapidjson::Document parse(const std::string& json) {
    rapidjson::Document d;
    d.Parse(json.c_str());
    REQUIRE_MESSAGE(!d.HasParseError(), json);
    return d;
}

std::string B(int xid) {
    return R"({"action":"B","xid":)" + std::to_string(xid) +
           R"(,"timestamp":"2026-11-26 03:11:59.981011+00","lsn":"0/153C678","nextlsn":"0/153C6A8"})";
}
std::string C(int xid) {
    return R"({"action":"C","xid":)" + std::to_string(xid) +
           R"(,"timestamp":"2026-11-26 03:11:59.981011+00","lsn":"0/153C678","nextlsn":"0/153C6A8"})";
}
std::string M(const std::string& ctx) {
    std::string escaped;
    for (char ch : ctx) {
        if (ch == '"') escaped += '\\';
        escaped += ch;
    }
    return R"({"action":"M","xid":1,"lsn":"0/153C500","transactional":true,"prefix":"walcast","content":")" + escaped + "\"}";
}
std::string I(const std::string& table, const std::string& columns) {
    return R"({"action":"I","xid":1,"schema":"public","table":")" + table + R"(","columns":[)" + columns + "]}";
}
std::string col(const std::string& name, const std::string& json_value, const std::string& type = "text") {
    return R"({"name":")" + name + R"(","type":")" + type + R"(","value":)" + json_value + "}";
}

const char* kCtx = R"({"actorUserId":"u1","projectId":"p9","tenantId":"acme"})";

const char* kRoutes = R"(
[postgres]
dsn = "x"
[[model]]
table = "public.Task"
name = "task"
rooms = ["project:{projectId}"]
payload = ["id", "projectId", "title"]
[[model]]
table = "public.Comment"
name = "comment"
rooms = ["project:{projectId}", "task:{row.taskId}", "actor:{ctx.actorUserId}"]
[[model]]
table = "public.File"
name = "file"
rooms = ["project:{projectId} | user:{userId}"]
payload = ["id"]
[[model]]
table = "public.Strict"
name = "strict"
rooms = ["project:{row.projectId}"]
[[model]]
table = "public.Watch"
name = "watch"
key = ["taskId", "userId"]
rooms = ["task:{taskId}", "task:{taskId}"]
payload = ["taskId", "userId", "n"]
)";

}  // namespace

TEST_SUITE("router") {
    TEST_CASE("event payload: every field, in order") {
        Pipeline p(config_from(kRoutes));
        p.feed({B(735), M(kCtx),
                I("Task", col("id", "\"t1\"") + "," + col("projectId", "\"p1\"") + "," + col("title", "\"hello\"") + "," +
                              col("status", "\"todo\"")),
                C(735)});
        REQUIRE(p.out.events.size() == 1);
        const Event& e = p.out.events[0];
        CHECK(e.name == "task:created");
        CHECK(e.rooms == std::vector<std::string>{"project:p1"});
        CHECK(e.end_lsn.str() == "0/153C6A8");
        CHECK(e.payload ==
              R"({"model":"task","operation":"created","id":"t1","actorUserId":"u1","tenantId":"acme",)"
              R"("projectId":"p1","eventId":"0/153C6A8:0","lsn":"0/153C6A8","xid":735,)"
              R"("committedAt":"2026-11-26T03:11:59.981011Z","data":{"id":"t1","projectId":"p1","title":"hello"}})");
    }

    TEST_CASE("{col} takes the row's column, else the context; {row.col} and {ctx.field} do not fall back") {
        Pipeline p(config_from(kRoutes));
        p.feed({B(1), M(kCtx), I("Comment", col("id", "\"c1\"") + "," + col("taskId", "\"t1\"")), C(1)});
        REQUIRE(p.out.events.size() == 1);
        CHECK(p.out.events[0].rooms == std::vector<std::string>{"project:p9", "task:t1", "actor:u1"});
        // projectId of the event comes from the context too, since the row has none.
        CHECK(parse(p.out.events[0].payload)["projectId"] == "p9");
        CHECK(parse(p.out.events[0].payload)["data"] == parse(R"({"id":"c1"})"));  // default payload: the key

        Pipeline strict(config_from(kRoutes));
        strict.feed({B(1), M(kCtx), I("Strict", col("id", "\"s1\"")), C(1)});
        CHECK(strict.out.events.empty());
        REQUIRE(strict.out.outcomes.size() == 1);
        CHECK(strict.out.outcomes[0].second.fate == Fate::RoomUnresolved);
        CHECK(strict.out.outcomes[0].second.detail ==
              "{row.projectId} in \"project:{row.projectId}\" (the row has no column projectId)");
    }

    TEST_CASE("A | B: the first alternative whose placeholders resolve to non-null values") {
        Pipeline p(config_from(kRoutes));
        p.feed({B(1), M(kCtx),
                I("File", col("id", "\"f1\"") + "," + col("projectId", "\"p1\"") + "," + col("userId", "\"u7\"")),
                I("File", col("id", "\"f2\"") + "," + col("projectId", "null") + "," + col("userId", "\"u7\"")),
                I("File", col("id", "\"f3\"") + "," + col("projectId", "null") + "," + col("userId", "null")), C(1)});
        REQUIRE(p.out.events.size() == 2);
        CHECK(p.out.events[0].rooms == std::vector<std::string>{"project:p1"});
        // A null projectId column does not fall back to the context's p9: the file is personal.
        CHECK(p.out.events[1].rooms == std::vector<std::string>{"user:u7"});
        CHECK(parse(p.out.events[1].payload)["projectId"].IsNull());
        REQUIRE(p.out.outcomes.size() == 3);
        CHECK(p.out.outcomes[2].second.fate == Fate::RoomUnresolved);
        CHECK(p.out.outcomes[2].second.detail == "{userId} in \"project:{projectId} | user:{userId}\" (userId is null)");
        // Event indexes count emitted events only.
        CHECK(parse(p.out.events[1].payload)["eventId"] == "0/153C6A8:1");
    }

    TEST_CASE("composite keys give an object id; duplicate rooms are sent once") {
        Pipeline p(config_from(kRoutes));
        p.feed({B(1), M(kCtx),
                I("Watch", col("taskId", "\"t1\"") + "," + col("userId", "\"u2\"") + "," + col("n", "3", "integer")), C(1)});
        REQUIRE(p.out.events.size() == 1);
        CHECK(p.out.events[0].rooms == std::vector<std::string>{"task:t1"});
        auto d = parse(p.out.events[0].payload);
        CHECK(d["id"] == parse(R"({"taskId":"t1","userId":"u2"})"));
        CHECK(d["data"]["n"].GetInt() == 3);
    }

    TEST_CASE("composite keys from a real capture, delete identified by identity") {
        Config c = config_from(R"(
[[model]]
table = "public.TaskWatcher"
name = "taskWatcher"
key = ["taskId", "userId"]
rooms = ["project:{projectId}"]
)");
        Pipeline p(std::move(c));
        p.feed(fixture_lines("composite.jsonl"));
        REQUIRE(p.out.events.size() >= 3);
        const Event& last = p.out.events.back();
        CHECK(last.name == "taskWatcher:deleted");
        auto d = parse(last.payload);
        CHECK(d["id"] == parse(R"({"taskId":"t1","userId":"u1"})"));
        CHECK(d["data"] == parse(R"({"taskId":"t1","userId":"u1"})"));
    }

    TEST_CASE("bigint 9007199254740993 and numeric 12345678.90 reach the payload byte-exact") {
        Pipeline p(example_config());
        p.feed(fixture_lines("numbers.jsonl"));
        REQUIRE_FALSE(p.out.events.empty());
        const std::string& payload = p.out.events[0].payload;
        CHECK(payload.find("\"position\":9007199254740993,") != std::string::npos);
        CHECK(payload.find("\"estimate\":12345678.90") != std::string::npos);

        Config quoted = example_config();
        quoted.numbers_as_strings = true;
        Pipeline q(std::move(quoted));
        q.feed(fixture_lines("numbers.jsonl"));
        const std::string& qp = q.out.events[0].payload;
        CHECK(qp.find("\"position\":\"9007199254740993\",") != std::string::npos);
        CHECK(qp.find("\"estimate\":\"12345678.90\"") != std::string::npos);
        // integer stays a number: JSON.parse is exact for it
        for (const Event& e : q.out.events)
            if (e.name == "timeEntry:created") CHECK(e.payload.find("\"minutes\":-2147483648") != std::string::npos);
    }

    TEST_CASE("unicode, quotes, backslashes and newlines survive into the payload") {
        Pipeline p(example_config());
        p.feed(fixture_lines("text.jsonl"));
        REQUIRE_FALSE(p.out.events.empty());
        Change original = *decode_wal2json_line(fixture_lines("text.jsonl")[2]);
        REQUIRE(original.table == "Task");
        auto d = parse(p.out.events[0].payload);
        CHECK(std::string(d["data"]["title"].GetString(), d["data"]["title"].GetStringLength()) ==
              find_column(original.columns, "title")->value.text);
    }

    TEST_CASE("an UPDATE missing a TOASTed column") {
        Pipeline p(example_config());
        p.feed(fixture_lines("toast.jsonl"));
        const Event* note_update = nullptr;
        for (const Event& e : p.out.events)
            if (e.name == "note:updated") note_update = &e;
        REQUIRE(note_update);
        // FULL identity holds the unchanged value, so the configured column is still sent.
        auto d = parse(note_update->payload);
        CHECK(d["data"].HasMember("title"));
        CHECK(d["data"]["body"].GetStringLength() > 4000);

        Config keyed = config_from(R"(
[[model]]
table = "public.Attachment"
name = "attachment"
rooms = ["project:{ctx.projectId}"]
payload = ["id", "title", "body"]
)");
        Pipeline k(std::move(keyed));
        k.feed(fixture_lines("toast.jsonl"));
        const Event* update = nullptr;
        for (const Event& e : k.out.events)
            if (e.name == "attachment:updated") update = &e;
        REQUIRE(update);
        auto u = parse(update->payload);
        CHECK(u["data"].HasMember("title"));
        CHECK_FALSE(u["data"].HasMember("body"));  // absent, not null
    }

    TEST_CASE("payload carries only configured columns: no Invitation token") {
        Pipeline p(example_config());
        p.feed(fixture_lines("invitation.jsonl"));
        REQUIRE_FALSE(p.out.events.empty());
        for (const Event& e : p.out.events) {
            CHECK(e.payload.find("token") == std::string::npos);
            CHECK(e.payload.find("secret") == std::string::npos);
            CHECK(e.rooms == std::vector<std::string>{"tenant:acme"});
        }
    }

    TEST_CASE("drop reasons: not routed, no context, TRUNCATE, suppressed") {
        Pipeline p(config_from(kRoutes));
        p.feed({B(1), I("Task", col("id", "\"t1\"") + "," + col("projectId", "\"p1\"")), M(kCtx),
                I("Unrouted", col("id", "1", "bigint")),
                R"({"action":"T","xid":1,"schema":"public","table":"Task"})", C(1)});
        p.feed({B(2), M(kCtx), I("Task", col("id", "\"t2\"") + "," + col("projectId", "\"p1\"")),
                M(R"({"actorUserId":"u1","skipEmit":true})"), I("Task", col("id", "\"t3\"") + "," + col("projectId", "\"p1\"")),
                C(2)});
        CHECK(p.out.events.empty());
        REQUIRE(p.out.outcomes.size() == 5);
        CHECK(p.out.outcomes[0].second.fate == Fate::NoContext);
        CHECK(p.out.outcomes[1].second.fate == Fate::NotRouted);
        CHECK(p.out.outcomes[2].second.fate == Fate::Truncate);
        CHECK(p.out.outcomes[3].second.fate == Fate::Emitted);  // before the skip; dropped at commit
        CHECK(p.out.outcomes[4].second.fate == Fate::Suppressed);
        const RouterCounters& n = p.router.counters();
        CHECK(n.dropped_no_context == 1);
        CHECK(n.dropped_not_routed == 1);
        CHECK(n.dropped_truncate == 1);
        CHECK(n.dropped_suppressed == 2);
        CHECK(n.events == 0);
        CHECK(n.transactions == 2);
    }

    TEST_CASE("above max_events_per_transaction events coalesce into one bulk event per room and name") {
        Config c = config_from(kRoutes);
        c.max_events_per_transaction = 3;
        Pipeline p(std::move(c));
        std::vector<std::string> lines{B(7), M(kCtx)};
        for (int i = 0; i < 4; ++i)
            lines.push_back(I("Task", col("id", "\"a" + std::to_string(i) + "\"") + "," + col("projectId", "\"p1\"")));
        lines.push_back(I("Task", col("id", "\"b\"") + "," + col("projectId", "\"p2\"")));
        lines.push_back(M(R"({"actorUserId":"u2","projectId":"p9","tenantId":"acme"})"));
        lines.push_back(I("Task", col("id", "\"c\"") + "," + col("projectId", "\"p1\"")));
        lines.push_back(C(7));
        p.feed(lines);
        REQUIRE(p.out.events.size() == 2);
        CHECK(p.out.events[0].rooms == std::vector<std::string>{"project:p1"});
        CHECK(p.out.events[0].payload ==
              R"({"model":"task","operation":"created","bulk":true,"count":5,"actorUserId":null,"tenantId":"acme",)"
              R"("projectId":"p1","eventId":"0/153C6A8:0","lsn":"0/153C6A8","xid":7,"committedAt":"2026-11-26T03:11:59.981011Z"})");
        CHECK(p.out.events[1].rooms == std::vector<std::string>{"project:p2"});
        auto d = parse(p.out.events[1].payload);
        CHECK(d["count"].GetInt() == 1);
        CHECK(d["actorUserId"] == "u1");
        CHECK(d["eventId"] == "0/153C6A8:1");
        CHECK(p.router.counters().coalesced_transactions == 1);
    }

    TEST_CASE("a 1,000,000-change transaction holds at most max events") {
        struct Counting : EventSink {
            std::size_t events = 0;
            void on_transaction(const TransactionInfo&, std::vector<Event>& evs) override { events += evs.size(); }
        } sink;
        Config c = config_from(kRoutes);
        Router router(c, sink);
        TransactionAssembler a("walcast", router);
        Change change;
        for (const std::string& l : {B(1), M(kCtx)}) {
            decode_wal2json_line(l, change);
            a.feed(change);
        }
        REQUIRE_FALSE(decode_wal2json_line(I("Task", col("id", "\"t\"") + "," + col("projectId", "\"p1\"")), change));
        for (int i = 0; i < 1000000; ++i) a.feed(change);
        decode_wal2json_line(C(1), change);
        a.feed(change);
        CHECK(sink.events == 1);
    }
}
