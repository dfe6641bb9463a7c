// Lsn: parse/print round trip, ordering, rejection of malformed text.
#include <doctest/doctest.h>

#include <cstdint>
#include <cstdio>

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

    TEST_CASE("prints what %X/%X prints, for every digit count of each half") {
        std::uint64_t seed = 0x9E3779B97F4A7C15ull;
        for (int i = 0; i < 20000; ++i) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            // Shift each half right by 0..32 bits so short and zero halves come up too.
            const std::uint32_t hi = static_cast<std::uint32_t>(seed >> 32) >> (i % 33 == 32 ? 31 : i % 33);
            const std::uint32_t lo = static_cast<std::uint32_t>(seed) >> ((i / 33) % 33 == 32 ? 31 : (i / 33) % 33);
            char want[20];
            std::snprintf(want, sizeof want, "%X/%X", hi, lo);
            const Lsn lsn{(static_cast<std::uint64_t>(hi) << 32) | lo};
            REQUIRE(lsn.str() == want);
        }
        CHECK(Lsn{0}.str() == "0/0");
        CHECK(Lsn{~0ull}.str() == "FFFFFFFF/FFFFFFFF");
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
