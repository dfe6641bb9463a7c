// The transaction assembler: the emit-context rules, stream structure errors, ISO timestamps.
// A recording sink stands in for the router.
#include <doctest/doctest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "decoder/transaction.hpp"

using namespace walcast;

namespace {

struct Recorded {
    std::string table;
    bool had_context = false;
    std::string actor;
    std::string project;
    bool suppressed_so_far = false;
};

struct RecordingSink : TransactionSink {
    std::vector<std::string> log;
    std::vector<Recorded> changes;
    std::vector<Verdict> verdicts;
    std::vector<TransactionInfo> commits;

    void on_begin(const TransactionInfo& t) override { log.push_back("begin " + std::to_string(t.xid)); }
    void on_context(const Change&, const EmitContext* ctx, const Error* err) override {
        log.push_back(ctx ? "context " + ctx->actor_user_id.value_or("-") : "bad context: " + err->message);
    }
    void on_change(const Change& c, const EmitContext* ctx, const Verdict& so_far) override {
        changes.push_back({c.table, ctx != nullptr, ctx ? ctx->actor_user_id.value_or("") : "",
                           ctx ? ctx->project_id.value_or("") : "", so_far.suppressed()});
        log.push_back("change " + c.table);
    }
    void on_commit(const TransactionInfo& t, const Verdict& v) override {
        verdicts.push_back(v);
        commits.push_back(t);
        log.push_back("commit " + std::to_string(t.xid));
    }
    void on_abandon(const TransactionInfo& t, const std::string& reason) override {
        log.push_back("abandon " + std::to_string(t.xid) + ": " + reason);
    }
};

Change begin(std::int64_t xid, std::uint64_t end = 0x200) {
    Change c;
    c.action = Action::Begin;
    c.xid = xid;
    c.lsn = Lsn{end - 0x30};
    c.nextlsn = Lsn{end};
    c.timestamp = "2026-11-26 03:11:59.981011+00";
    return c;
}

Change commit(std::int64_t xid, std::uint64_t end = 0x200) {
    Change c = begin(xid, end);
    c.action = Action::Commit;
    return c;
}

Change message(const std::string& content, bool transactional = true, const std::string& prefix = "walcast") {
    Change c;
    c.action = Action::Message;
    c.xid = 1;
    c.lsn = Lsn{0x100};
    c.transactional = transactional;
    c.prefix = prefix;
    c.content = content;
    return c;
}

Change row(const std::string& table, Action action = Action::Insert) {
    Change c;
    c.action = action;
    c.xid = 1;
    c.schema = "public";
    c.table = table;
    return c;
}

const char* kU1 = R"({"actorUserId":"u1","projectId":"p1"})";
const char* kU2 = R"({"actorUserId":"u2","projectId":"p2"})";

}  // namespace

TEST_SUITE("transaction") {
    TEST_CASE("no context message, changes come without context") {
        RecordingSink sink;
        TransactionAssembler a("walcast", sink);
        for (const Change& c : {begin(1), row("Task"), commit(1)}) CHECK_FALSE(a.feed(c));
        REQUIRE(sink.changes.size() == 1);
        CHECK_FALSE(sink.changes[0].had_context);
        CHECK_FALSE(sink.verdicts[0].suppressed());
        CHECK(sink.commits[0].end_lsn == Lsn{0x200});
        CHECK(sink.commits[0].committed_at == "2026-11-26T03:11:59.981011Z");
    }

    TEST_CASE("a context applies to later changes; a later one takes over") {
        RecordingSink sink;
        TransactionAssembler a("walcast", sink);
        for (const Change& c : {begin(1), row("Before"), message(kU1), row("A"), message(kU2), row("B"), commit(1)})
            CHECK_FALSE(a.feed(c));
        REQUIRE(sink.changes.size() == 3);
        CHECK_FALSE(sink.changes[0].had_context);
        CHECK(sink.changes[1].actor == "u1");
        CHECK(sink.changes[1].project == "p1");
        CHECK(sink.changes[2].actor == "u2");
        CHECK(sink.changes[2].project == "p2");
    }

    TEST_CASE("context does not leak into the next transaction") {
        RecordingSink sink;
        TransactionAssembler a("walcast", sink);
        for (const Change& c : {begin(1), message(kU1), row("A"), commit(1), begin(2), row("B"), commit(2)})
            CHECK_FALSE(a.feed(c));
        REQUIRE(sink.changes.size() == 2);
        CHECK(sink.changes[0].had_context);
        CHECK_FALSE(sink.changes[1].had_context);
    }

    TEST_CASE("skipEmit anywhere suppresses the whole transaction, earlier changes too") {
        RecordingSink sink;
        TransactionAssembler a("walcast", sink);
        for (const Change& c : {begin(1), message(kU1), row("A"),
                                message(R"({"actorUserId":"u1","skipEmit":true})"), row("B"),
                                message(kU2), row("C"), commit(1)})
            CHECK_FALSE(a.feed(c));
        REQUIRE(sink.verdicts.size() == 1);
        CHECK(sink.verdicts[0].suppression == Suppression::Skipped);
        CHECK(sink.verdicts[0].at == Lsn{0x100});
        CHECK_FALSE(sink.changes[0].suppressed_so_far);  // the router learns at commit
        CHECK(sink.changes[1].suppressed_so_far);
        CHECK(sink.changes[2].suppressed_so_far);  // a later context does not lift the skip
    }

    TEST_CASE("a non-transactional message never sets context; other prefixes are ignored") {
        RecordingSink sink;
        TransactionAssembler a("walcast", sink);
        CHECK_FALSE(a.feed(message(kU1, false)));  // outside any transaction: fine, ignored
        for (const Change& c : {begin(1), message(kU1, false), message(kU1, true, "other"), row("A"), commit(1)})
            CHECK_FALSE(a.feed(c));
        REQUIRE(sink.changes.size() == 1);
        CHECK_FALSE(sink.changes[0].had_context);
    }

    TEST_CASE("the prefix is configurable") {
        RecordingSink sink;
        TransactionAssembler a("myapp", sink);
        for (const Change& c : {begin(1), message(kU1), message(kU2, true, "myapp"), row("A"), commit(1)})
            CHECK_FALSE(a.feed(c));
        CHECK(sink.changes[0].actor == "u2");
    }

    TEST_CASE("a malformed context fails the transaction closed") {
        for (const char* bad : {R"({"projectId":"p1"})", "not json", R"({"actorUserId":1})", "[]"}) {
            RecordingSink sink;
            TransactionAssembler a("walcast", sink);
            for (const Change& c : {begin(1), message(kU1), row("A"), message(bad), row("B"), commit(1)})
                CHECK_FALSE(a.feed(c));
            REQUIRE(sink.verdicts.size() == 1);
            CHECK_MESSAGE(sink.verdicts[0].suppression == Suppression::MalformedContext, bad);
            CHECK_FALSE(sink.verdicts[0].detail.empty());
            CHECK_FALSE(sink.changes[1].had_context);  // the good context no longer applies
            CHECK(sink.changes[1].suppressed_so_far);
            CHECK(sink.log[3].rfind("bad context: ", 0) == 0);
        }
    }

    TEST_CASE("a damaged line fails its transaction closed and only that one") {
        RecordingSink sink;
        TransactionAssembler a("walcast", sink);
        a.damage("line 3 is malformed: invalid JSON at byte 0");  // outside a transaction: nothing to suppress
        for (const Change& c : {begin(1), message(kU1), row("A")}) CHECK_FALSE(a.feed(c));
        a.damage("line 7 is oversized: 100000 bytes, over the 4096-byte limit");
        a.damage("line 8 is malformed: invalid JSON at byte 1");  // the first reason stands
        for (const Change& c : {row("B"), commit(1), begin(2, 0x300), message(kU1), row("C"), commit(2, 0x300)})
            CHECK_FALSE(a.feed(c));
        REQUIRE(sink.verdicts.size() == 2);
        CHECK(sink.verdicts[0].suppression == Suppression::Damaged);
        CHECK(sink.verdicts[0].detail == "line 7 is oversized: 100000 bytes, over the 4096-byte limit");
        CHECK(sink.changes[1].suppressed_so_far);
        CHECK_FALSE(sink.verdicts[1].suppressed());
    }

    TEST_CASE("a hostile context fails its transaction closed; the next one is untouched") {
        for (const std::string& bomb : {std::string(200000, '['), std::string(kMaxContextBytes, '[')}) {
            RecordingSink sink;
            TransactionAssembler a("walcast", sink);
            for (const Change& c : {begin(1), message(bomb), row("A"), commit(1), begin(2, 0x300), message(kU1), row("B"),
                                    commit(2, 0x300)})
                CHECK_FALSE(a.feed(c));
            REQUIRE(sink.verdicts.size() == 2);
            CHECK(sink.verdicts[0].suppression == Suppression::MalformedContext);
            CHECK(sink.verdicts[0].at == Lsn{0x100});
            CHECK(sink.verdicts[0].detail == (bomb.size() > kMaxContextBytes
                                                  ? "context is 200000 bytes, over the 4096-byte limit"
                                                  : "context is nested deeper than 16 levels (byte 16)"));
            CHECK_FALSE(sink.verdicts[1].suppressed());
            CHECK(sink.changes[1].actor == "u1");
        }
    }

    TEST_CASE("structure errors are reported and lose nothing else") {
        RecordingSink sink;
        TransactionAssembler a("walcast", sink);
        CHECK(a.feed(row("A"))->message == "change (I) outside a transaction");
        CHECK(a.feed(commit(1))->message == "commit line without a begin line");
        CHECK(a.feed(message(kU1))->message == "transactional message outside a transaction");
        CHECK_FALSE(a.feed(begin(1)));
        auto err = a.feed(begin(2, 0x300));
        REQUIRE(err);
        CHECK(err->message == "transaction xid 1 has no commit line before the next begin; it emits nothing");
        CHECK(sink.log[1] == "abandon 1: transaction xid 1 has no commit line before the next begin; it emits nothing");
        CHECK_FALSE(a.feed(row("B")));
        CHECK(a.feed(commit(3, 0x300))->message == "commit line (xid 3) does not match the open transaction xid 2");
        CHECK_FALSE(a.in_transaction());
        CHECK(sink.commits.empty());

        Change no_lsn = begin(4);
        no_lsn.nextlsn.reset();
        CHECK(a.feed(no_lsn)->message == "begin line without xid, lsn or nextlsn");

        CHECK_FALSE(a.feed(begin(5)));
        a.finish("the input ended before its commit line");
        CHECK(sink.log.back() == "abandon 5: the input ended before its commit line");
    }

    TEST_CASE("memory does not depend on transaction size") {
        // The assembler keeps no rows: a million changes leave it as it was after one.
        struct CountingSink : TransactionSink {
            std::size_t n = 0;
            void on_begin(const TransactionInfo&) override {}
            void on_change(const Change&, const EmitContext*, const Verdict&) override { ++n; }
            void on_commit(const TransactionInfo&, const Verdict&) override {}
            void on_abandon(const TransactionInfo&, const std::string&) override {}
        } sink;
        TransactionAssembler a("walcast", sink);
        a.feed(begin(1));
        a.feed(message(kU1));
        Change c = row("Task");
        for (int i = 0; i < 1000000; ++i) a.feed(c);
        a.feed(commit(1));
        CHECK(sink.n == 1000000);
        CHECK(sizeof(a) < 512);
    }

    TEST_CASE("timestamps become ISO 8601 UTC") {
        CHECK(*iso8601_utc("2026-11-26 03:11:59.981011+00") == "2026-11-26T03:11:59.981011Z");
        CHECK(*iso8601_utc("2026-11-26 03:11:59+00") == "2026-11-26T03:11:59Z");
        CHECK(*iso8601_utc("2026-11-26 01:11:59.5+02") == "2026-11-25T23:11:59.5Z");
        CHECK(*iso8601_utc("2026-12-31 20:00:00-05:30") == "2027-01-01T01:30:00Z");
        CHECK(*iso8601_utc("2024-02-29 23:59:59.000001-01") == "2024-03-01T00:59:59.000001Z");
        for (const char* bad : {"", "2026-11-26", "2026-11-26 03:11:59", "2026-13-26 03:11:59+00", "2026-11-26 03:11:59.+00",
                                "2026-11-26 03:11:59+0", "x026-11-26 03:11:59+00"})
            CHECK_MESSAGE(!iso8601_utc(bad), bad);
    }

    TEST_CASE("timestamps as Unix microseconds: the commit time the stream's lag is measured from") {
        CHECK(*pg_timestamp_unix_us("1970-01-01 00:00:00+00") == 0);
        CHECK(*pg_timestamp_unix_us("1970-01-01 01:00:00.5+01") == 500000);
        CHECK(*pg_timestamp_unix_us("2026-11-26 03:11:59.981011+00") == 1795662719981011LL);
        CHECK(*pg_timestamp_unix_us("2026-11-26 03:11:59.9810119+00") == 1795662719981011LL);  // past µs: cut
        CHECK(*pg_timestamp_unix_us("1969-12-31 23:59:59.25+00") == -750000);
        for (const char* bad : {"", "2026-11-26 03:11:59", "2026-11-26 03:11:59.+00", "now"})
            CHECK_MESSAGE(!pg_timestamp_unix_us(bad), bad);
    }

    TEST_CASE("timestamps at the ends of the four-digit years, and every hour of a day") {
        CHECK(*iso8601_utc("0001-01-01 00:30:00+01") == "0000-12-31T23:30:00Z");
        CHECK(*iso8601_utc("9999-12-31 23:00:00-02") == "10000-01-01T01:00:00Z");
        CHECK(*iso8601_utc("1970-01-01 00:00:00+00") == "1970-01-01T00:00:00Z");
        for (int h = 0; h < 24; ++h) {
            char in[40], want[40];
            std::snprintf(in, sizeof in, "2026-07-04 %02d:%02d:%02d.25+00", h, (h * 7) % 60, (h * 13) % 60);
            std::snprintf(want, sizeof want, "2026-07-04T%02d:%02d:%02d.25Z", h, (h * 7) % 60, (h * 13) % 60);
            CHECK(*iso8601_utc(in) == want);
        }
    }
}
