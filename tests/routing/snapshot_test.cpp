// Tests for routing/snapshot: tokens from walcast.snapshot(), PostgreSQL's visibility rule,
// and 32-bit WAL xids made whole across an epoch.
#include "routing/snapshot.hpp"

#include <doctest/doctest.h>

#include <string>

using namespace walcast;

TEST_SUITE("snapshot tokens") {
    TEST_CASE("parse and visibility") {
        auto s = parse_snapshot("v1:746:752:749,747:0/1A2B3C4");
        REQUIRE(s);
        CHECK(s->xmin == 746);
        CHECK(s->xmax == 752);
        CHECK(s->xip == std::vector<std::uint64_t>{747, 749});
        CHECK(s->seen_until == Lsn{0x1A2B3C4});
        CHECK(s->sees(700));        // finished before the oldest in progress
        CHECK(s->sees(746));        // between, not in progress: committed before
        CHECK_FALSE(s->sees(747));  // in progress then
        CHECK(s->sees(748));
        CHECK_FALSE(s->sees(749));
        CHECK(s->sees(751));
        CHECK_FALSE(s->sees(752));  // started after
        CHECK_FALSE(s->sees(10000));
        auto empty = parse_snapshot("v1:5:5::0/10");
        REQUIRE(empty);
        CHECK(empty->sees(4));
        CHECK_FALSE(empty->sees(5));
    }

    TEST_CASE("bad tokens say what is wrong") {
        auto error = [](std::string_view t) {
            auto r = parse_snapshot(t);
            REQUIRE_FALSE(r);
            return r.error().message;
        };
        CHECK(error("746:752::0/1") == "not a walcast snapshot token (no \"v1:\")");
        CHECK(error("v1:746:752") == "snapshot token has too few parts");
        CHECK(error("v1:752:746::0/1") == "snapshot token's xmin and xmax are not xids in order");
        CHECK(error("v1:x:752::0/1") == "snapshot token's xmin and xmax are not xids in order");
        CHECK(error("v1:746:752:800:0/1") == "snapshot token has an in-progress xid outside xmin..xmax");
        CHECK(error("v1:746:752:747,:0/1") == "snapshot token has an empty xid");
        CHECK(error("v1:746:752::zz") == "snapshot token's WAL position is not an LSN");
        CHECK(error(std::string(kMaxSnapshotTokenBytes + 1, 'v')).find("over 65536") != std::string::npos);
        std::string many = "v1:1:100000:";
        for (int i = 2; i < 9000; ++i) many += std::to_string(i) + ",";
        many += "9000:0/1";
        CHECK(error(many) == "snapshot token lists more than 8192 xids");
    }

    TEST_CASE("32-bit xids from the WAL are made whole near a reference, across an epoch") {
        const std::uint64_t epoch2 = 2ULL << 32;
        CHECK(full_xid(1000, epoch2 + 900) == epoch2 + 1000);
        CHECK(full_xid(900, epoch2 + 1000) == epoch2 + 900);
        // Just after wraparound: a reference early in epoch 2, an xid late in epoch 1.
        CHECK(full_xid(0xFFFFFF00u, epoch2 + 10) == epoch2 - 0x100);
        // Just before: a reference late in epoch 1, an xid early in epoch 2.
        CHECK(full_xid(5, epoch2 - 100) == epoch2 + 5);
        CHECK(full_xid(5, 10) == 5);  // epoch 0
    }
}
