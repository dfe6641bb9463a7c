// Lsn: parse/print round trip, ordering, rejection of malformed text.
#include <doctest/doctest.h>

#include "decoder/lsn.hpp"

using walcast::Lsn;

TEST_SUITE("lsn") {
    TEST_CASE("parses and prints X/Y") {
        auto lsn = Lsn::parse("0/153C6A8");
        REQUIRE(lsn);
        CHECK(lsn->value == 0x153C6A8u);
        CHECK(lsn->str() == "0/153C6A8");
        auto high = Lsn::parse("1A/FFFFFFFF");
        REQUIRE(high);
        CHECK(high->value == ((0x1Aull << 32) | 0xFFFFFFFFull));
        CHECK(high->str() == "1A/FFFFFFFF");
        CHECK(Lsn::parse("16/b374d848")->str() == "16/B374D848");
    }

    TEST_CASE("orders by position, not by text") {
        CHECK(*Lsn::parse("0/FFFFFFFF") < *Lsn::parse("1/0"));
        CHECK(*Lsn::parse("0/9") < *Lsn::parse("0/10"));
        CHECK(*Lsn::parse("2/0") > *Lsn::parse("1/FFFFFFFF"));
        CHECK(*Lsn::parse("0/10") == Lsn{16});
    }

    TEST_CASE("rejects malformed text") {
        for (const char* bad : {"", "/", "0/", "/1", "01234", "0/123456789", "G/1", "0/1/2", "0 /1", "-1/0"})
            CHECK_MESSAGE(!Lsn::parse(bad), bad);
    }
}
