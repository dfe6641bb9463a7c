// Tests for wire/inbound_budget: frames and bytes per second with bursts, tighter before
// CONNECT; a flood far past the budget is refused and refills only with time.
#include "wire/inbound_budget.hpp"

#include <doctest/doctest.h>

using namespace walcast;

TEST_SUITE("inbound budget") {
    TEST_CASE("before CONNECT: a burst of 16 frames, then 4 a second") {
        InboundBudget b;
        int accepted = 0;
        for (int i = 0; i < 1000000; ++i) accepted += b.charge(0, 0) ? 1 : 0;  // a flood of empty frames
        CHECK(accepted == 16);
        CHECK_FALSE(b.charge(0, 100));
        // A million refused frames left the bucket deeply negative: it refills from there.
        InboundBudget fresh;
        for (int i = 0; i < 16; ++i) CHECK(fresh.charge(0, 0));
        CHECK_FALSE(fresh.charge(0, 0));
        CHECK(fresh.charge(0, 2000));  // after 2 s: 8 frames back (one was already spent)
    }

    TEST_CASE("bytes: 64 KiB before CONNECT") {
        InboundBudget b;
        CHECK(b.charge(60 * 1024, 0));
        CHECK_FALSE(b.charge(8 * 1024, 0));
    }

    TEST_CASE("after CONNECT a page's burst of joins passes; a flood does not") {
        InboundBudget b;
        b.set_limits(kBudgetConnected);
        for (int i = 0; i < 300; ++i) CHECK(b.charge(40, 0));  // 300 joins at once
        int accepted = 0;
        for (int i = 0; i < 10000; ++i) accepted += b.charge(40, 1) ? 1 : 0;
        CHECK(accepted < 1000);
        CHECK(accepted > 600);
    }

    TEST_CASE("time going backwards refills nothing") {
        InboundBudget b;
        for (int i = 0; i < 16; ++i) b.charge(0, 10000);
        CHECK_FALSE(b.charge(0, 5000));
        CHECK_FALSE(b.charge(0, 10000));
    }
}
