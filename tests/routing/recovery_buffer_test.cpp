// RecoveryBuffer: offsets, room filtering, and both bounds (age and bytes).
#include <doctest/doctest.h>

#include "routing/recovery_buffer.hpp"

using namespace walcast;

namespace {
BufferedEvent event(std::uint64_t lsn, std::uint32_t index, std::vector<std::string> rooms, std::size_t bytes = 100) {
    BufferedEvent e;
    e.offset = EventOffset{Lsn{lsn}, index};
    e.rooms = std::move(rooms);
    e.frame = std::make_shared<const std::string>(bytes, 'x');
    return e;
}
}  // namespace

TEST_SUITE("recovery_buffer") {
    TEST_CASE("offsets parse, print and order like eventIds") {
        auto o = EventOffset::parse("0/153C6A8:12");
        REQUIRE(o);
        CHECK(o->lsn.str() == "0/153C6A8");
        CHECK(o->index == 12);
        CHECK(o->str() == "0/153C6A8:12");
        CHECK(*EventOffset::parse("0/10:9") < *EventOffset::parse("0/10:10"));
        CHECK(*EventOffset::parse("0/10:99") < *EventOffset::parse("0/11:0"));
        for (const char* bad : {"", "0/10", "0/10:", "0/10:x", "x:1", "0/10:-1", "0/10:1:2", "0/10:99999999999"})
            CHECK_MESSAGE(!EventOffset::parse(bad), bad);
    }

    TEST_CASE("events after an offset, only for the session's rooms, in order") {
        RecoveryBuffer b(120000, 1 << 20);
        b.push(event(0x10, 0, {"project:p1"}), 0);
        b.push(event(0x10, 1, {"user:u2"}), 0);
        b.push(event(0x20, 0, {"project:p1", "user:u1"}), 0);
        b.push(event(0x30, 0, {"tenant:evil"}), 0);
        b.push(event(0x30, 1, {"user:u1"}), 0);
        auto got = b.after(EventOffset{Lsn{0x10}, 0}, {"project:p1", "user:u1", "tenant:acme"});
        REQUIRE(got.size() == 2);
        CHECK(got[0]->offset.str() == "0/20:0");
        CHECK(got[1]->offset.str() == "0/30:1");
        CHECK(b.after(EventOffset{Lsn{0x30}, 1}, {"project:p1", "user:u1"}).empty());
        CHECK(b.after(EventOffset{Lsn{0}, 0}, {"user:u2"}).size() == 1);
        CHECK(b.covers(EventOffset{Lsn{0}, 0}));
        CHECK(b.newest()->str() == "0/30:1");
    }

    TEST_CASE("the time window evicts old events, and an offset before them is not covered") {
        RecoveryBuffer b(1000, 1 << 20);
        b.push(event(0x10, 0, {"r"}), 0);
        b.push(event(0x20, 0, {"r"}), 500);
        b.push(event(0x30, 0, {"r"}), 1200);  // evicts 0/10:0 (1200 ms old)
        CHECK(b.size() == 2);
        CHECK(b.evicted() == 1);
        CHECK_FALSE(b.covers(EventOffset{Lsn{0x5}, 0}));  // missed 0/10:0, gone
        CHECK(b.covers(EventOffset{Lsn{0x10}, 0}));       // had everything up to the evicted one
        b.expire(1600);
        CHECK(b.size() == 1);
        CHECK_FALSE(b.covers(EventOffset{Lsn{0x10}, 0}));
        b.expire(5000);
        CHECK(b.size() == 0);
        CHECK(b.bytes() == 0);
    }

    TEST_CASE("the byte budget evicts the oldest first") {
        RecoveryBuffer b(120000, 350);
        for (std::uint64_t i = 1; i <= 5; ++i) b.push(event(i * 16, 0, {"r"}, 100), 0);
        CHECK(b.size() == 3);
        CHECK(b.bytes() == 300);
        CHECK(b.after(EventOffset{Lsn{0}, 0}, {"r"}).front()->offset.str() == "0/30:0");
        CHECK_FALSE(b.covers(EventOffset{Lsn{0x10}, 0}));
        CHECK(b.covers(EventOffset{Lsn{0x20}, 0}));
    }
}

TEST_CASE("a rebuilt buffer does not cover offsets at or before its floor") {
    RecoveryBuffer b(120000, 1 << 20);
    b.set_floor(EventOffset{Lsn{0x20}, 0xFFFFFFFFu});
    b.push(event(0x30, 0, {"r"}), 0);
    CHECK_FALSE(b.covers(EventOffset{Lsn{0x10}, 3}));
    CHECK_FALSE(b.covers(EventOffset{Lsn{0x20}, 7}));  // that transaction was not re-read
    CHECK(b.covers(EventOffset{Lsn{0x30}, 0}));
    CHECK(b.after(EventOffset{Lsn{0x20}, 0xFFFFFFFFu}, {"r"}).size() == 1);
}

TEST_CASE("cut forgets everything and no earlier offset is covered") {
    walcast::RecoveryBuffer b(60000, 1 << 20);
    for (std::uint32_t i = 0; i < 5; ++i) {
        walcast::BufferedEvent e;
        e.offset = walcast::EventOffset{walcast::Lsn{0x100}, i};
        e.rooms = {"project:p1"};
        e.frame = std::make_shared<const std::string>("42[]");
        b.push(std::move(e), 0);
    }
    CHECK(b.covers(walcast::EventOffset{walcast::Lsn{0x100}, 0}));
    b.cut(walcast::EventOffset{walcast::Lsn{0x200}, 0xFFFFFFFFu});
    CHECK(b.size() == 0);
    CHECK(b.bytes() == 0);
    CHECK_FALSE(b.covers(walcast::EventOffset{walcast::Lsn{0x100}, 4}));
    CHECK_FALSE(b.covers(walcast::EventOffset{walcast::Lsn{0x200}, 3}));
    CHECK(b.covers(walcast::EventOffset{walcast::Lsn{0x200}, 0xFFFFFFFFu}));
}

TEST_CASE("the xid horizon rises with what leaves the buffer") {
    walcast::RecoveryBuffer b(60000, 300);
    CHECK(b.xid_horizon() == 0);
    for (std::uint32_t i = 0; i < 4; ++i) {
        walcast::BufferedEvent e;
        e.offset = walcast::EventOffset{walcast::Lsn{0x100u + i}, 0};
        e.rooms = {"project:p1"};
        e.frame = std::make_shared<const std::string>("42[]");
        e.bytes = 100;
        e.xid = 1000 - i * 10;  // commit order is not xid order
        b.push(std::move(e), 0);
    }
    // 300 bytes hold three: the first (xid 1000) left.
    CHECK(b.xid_horizon() == 1001);
    b.raise_xid_horizon(900);
    CHECK(b.xid_horizon() == 1001);
    b.cut(walcast::EventOffset{walcast::Lsn{0x200}, 0});
    CHECK(b.xid_horizon() == 1001);
    b.raise_xid_horizon(5000);
    CHECK(b.xid_horizon() == 5000);
}

TEST_CASE("offsets are eventIds, or stream entry ids in cluster mode") {
    auto a = walcast::EventOffset::parse("0/153C6A8:3");
    REQUIRE(a);
    CHECK_FALSE(a->stream);
    CHECK(a->str() == "0/153C6A8:3");
    auto b = walcast::EventOffset::parse("1718000000000-7");
    REQUIRE(b);
    CHECK(b->stream);
    CHECK(b->lsn.value == 1718000000000ULL);
    CHECK(b->index == 7);
    CHECK(b->str() == "1718000000000-7");
    CHECK(*walcast::EventOffset::parse("1718000000000-6") < *b);
    for (const char* bad : {"", "-", "1-", "-1", "x-1", "1-x", "1-99999999999", "0/1:", "0/1:x"})
        CHECK_FALSE(walcast::EventOffset::parse(bad));
}
