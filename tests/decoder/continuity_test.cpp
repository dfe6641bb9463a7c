// Tests for decoder/continuity: every way a slot can stop continuing what walcast streamed,
// and what each create_slot policy does about it.
#include "decoder/continuity.hpp"

#include <doctest/doctest.h>

using namespace walcast;

namespace {

const ServerIdentity kServer{"7300000000000000001", 1};

StreamRecord streamed(Lsn dispatched = Lsn{0x5000}) {
    StreamRecord r;
    r.streamed = true;
    r.server = kServer;
    r.dispatched = dispatched;
    return r;
}

SlotInfo slot(Lsn confirmed = Lsn{0x4000}, std::string wal_status = "reserved") {
    SlotInfo s;
    s.exists = true;
    s.plugin = "wal2json";
    s.confirmed = confirmed;
    s.wal_status = std::move(wal_status);
    return s;
}

SlotDecision decide(CreateSlot policy, const StreamRecord& record, const ServerIdentity& server, const SlotInfo& s) {
    return decide_slot(policy, "walcast", record, server, s);
}

}  // namespace

TEST_SUITE("continuity") {
    TEST_CASE("the slot continues: start, nothing to report") {
        for (auto policy : {CreateSlot::Always, CreateSlot::FirstStart, CreateSlot::Never}) {
            auto d = decide(policy, streamed(), kServer, slot());
            CHECK(d.step == SlotStep::Start);
            CHECK(d.discontinuity == Discontinuity::None);
        }
        // Confirmed exactly at what was dispatched is continuous too.
        CHECK(decide(CreateSlot::FirstStart, streamed(), kServer, slot(Lsn{0x5000})).discontinuity == Discontinuity::None);
    }

    TEST_CASE("first start: a missing slot is created by always and first-start, waited for by never") {
        StreamRecord fresh;
        SlotInfo none;
        CHECK(decide(CreateSlot::Always, fresh, kServer, none).step == SlotStep::Create);
        auto d = decide(CreateSlot::FirstStart, fresh, kServer, none);
        CHECK(d.step == SlotStep::Create);
        CHECK(d.discontinuity == Discontinuity::None);
        CHECK(d.detail.find("first start") != std::string::npos);
        auto n = decide(CreateSlot::Never, fresh, kServer, none);
        CHECK(n.step == SlotStep::Wait);
        CHECK(n.detail.find("pg_create_logical_replication_slot('walcast', 'wal2json')") != std::string::npos);
    }

    TEST_CASE("dropped after streaming: a discontinuity; always recreates, first-start and never wait") {
        SlotInfo none;
        auto a = decide(CreateSlot::Always, streamed(), kServer, none);
        CHECK(a.step == SlotStep::Create);
        CHECK(a.discontinuity == Discontinuity::SlotMissing);
        auto f = decide(CreateSlot::FirstStart, streamed(), kServer, none);
        CHECK(f.step == SlotStep::Wait);
        CHECK(f.discontinuity == Discontinuity::SlotMissing);
        CHECK(f.detail.find("this walcast streamed before") != std::string::npos);
        CHECK(decide(CreateSlot::Never, streamed(), kServer, none).step == SlotStep::Wait);
    }

    TEST_CASE("invalidated: a discontinuity; always drops and recreates it") {
        auto a = decide(CreateSlot::Always, streamed(), kServer, slot(Lsn{0x4000}, "lost"));
        CHECK(a.step == SlotStep::Recreate);
        CHECK(a.discontinuity == Discontinuity::SlotInvalidated);
        auto w = decide(CreateSlot::FirstStart, streamed(), kServer, slot(Lsn{0x4000}, "lost"));
        CHECK(w.step == SlotStep::Wait);
        CHECK(w.detail.find("pg_drop_replication_slot('walcast')") != std::string::npos);
        // Invalidated before this walcast ever streamed it: recreated, nothing of ours lost.
        auto first = decide(CreateSlot::FirstStart, StreamRecord{}, kServer, slot(Lsn{0x4000}, "lost"));
        CHECK(first.step == SlotStep::Recreate);
        CHECK(first.discontinuity == Discontinuity::None);
    }

    TEST_CASE("advanced or recreated by someone else: the slot confirms past what was dispatched") {
        auto d = decide(CreateSlot::FirstStart, streamed(Lsn{0x5000}), kServer, slot(Lsn{0x9000}));
        CHECK(d.step == SlotStep::Start);
        CHECK(d.discontinuity == Discontinuity::SlotAhead);
        CHECK(d.detail.find("0/9000") != std::string::npos);
        // Without a known dispatched position there is nothing to compare.
        StreamRecord unknown = streamed();
        unknown.dispatched.reset();
        CHECK(decide(CreateSlot::FirstStart, unknown, kServer, slot(Lsn{0x9000})).discontinuity == Discontinuity::None);
        // A slot behind what was dispatched (a server crash re-sends) loses nothing.
        CHECK(decide(CreateSlot::FirstStart, streamed(Lsn{0x5000}), kServer, slot(Lsn{0x100})).discontinuity ==
              Discontinuity::None);
    }

    TEST_CASE("a promotion: new timeline, slot gone; a PostgreSQL 17 failover slot makes it continuous") {
        const ServerIdentity promoted{kServer.system_id, 2};
        auto d = decide(CreateSlot::Always, streamed(), promoted, SlotInfo{});
        CHECK(d.discontinuity == Discontinuity::Promotion);
        CHECK(d.step == SlotStep::Create);
        CHECK(d.detail.find("timeline 2, not 1") != std::string::npos);
        SlotInfo synced = slot();
        synced.failover = true;
        auto f = decide(CreateSlot::FirstStart, streamed(), promoted, synced);
        CHECK(f.discontinuity == Discontinuity::None);
        CHECK(f.step == SlotStep::Start);
        // A plain slot that somehow exists on the new timeline is still a discontinuity.
        CHECK(decide(CreateSlot::FirstStart, streamed(), promoted, slot()).discontinuity == Discontinuity::Promotion);
    }

    TEST_CASE("another cluster answers") {
        auto d = decide(CreateSlot::Always, streamed(), ServerIdentity{"7399999999999999999", 1}, slot());
        CHECK(d.discontinuity == Discontinuity::ServerChanged);
        CHECK(std::string(discontinuity_name(d.discontinuity)) == "server_changed");
    }

    TEST_CASE("a slot of another plugin is fatal") {
        SlotInfo s = slot();
        s.plugin = "pgoutput";
        auto d = decide(CreateSlot::Always, StreamRecord{}, kServer, s);
        CHECK(d.step == SlotStep::Fatal);
        CHECK(d.detail.find("pgoutput") != std::string::npos);
    }
}
