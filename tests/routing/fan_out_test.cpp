// Tests for routing/fan_out: WebSocket framing of event runs and the per-turn batch that
// shares one run among recipients of the same sequence.
#include "routing/fan_out.hpp"

#include <doctest/doctest.h>

#include <string>

using namespace walcast;

namespace {

Packet packet(std::size_t n, char c = 'x') { return std::make_shared<const std::string>(n, c); }

// Splits server (unmasked) text frames back into their payloads; fails on anything else.
std::vector<std::string> unframe(const std::string& bytes) {
    std::vector<std::string> out;
    std::size_t i = 0;
    while (i < bytes.size()) {
        REQUIRE(static_cast<unsigned char>(bytes[i]) == 0x81);
        std::uint64_t len = static_cast<unsigned char>(bytes[i + 1]);
        REQUIRE((len & 0x80) == 0);  // never masked
        i += 2;
        if (len == 126) {
            len = (std::uint64_t(static_cast<unsigned char>(bytes[i])) << 8) | static_cast<unsigned char>(bytes[i + 1]);
            i += 2;
        } else if (len == 127) {
            len = 0;
            for (int k = 0; k < 8; ++k) len = (len << 8) | static_cast<unsigned char>(bytes[i + k]);
            i += 8;
        }
        REQUIRE(i + len <= bytes.size());
        out.push_back(bytes.substr(i, len));
        i += len;
    }
    return out;
}

}  // namespace

TEST_SUITE("fan-out") {
    TEST_CASE("frames carry each payload length in the shortest form") {
        for (std::size_t n : {std::size_t(0), std::size_t(1), std::size_t(125), std::size_t(126), std::size_t(65535),
                              std::size_t(65536), std::size_t(300000)}) {
            std::string header;
            append_websocket_text_header(header, n);
            CHECK(header.size() == (n < 126 ? 2u : n <= 65535 ? 4u : 10u));
            EventRun run({packet(n, 'a')});
            auto back = unframe(run.websocket_frames());
            REQUIRE(back.size() == 1);
            CHECK(back[0].size() == n);
        }
    }

    TEST_CASE("a run frames its packets back to back, in order") {
        EventRun run({packet(3, 'a'), packet(200, 'b'), packet(70000, 'c')});
        CHECK(run.bytes() == 70203);
        auto back = unframe(run.websocket_frames());
        REQUIRE(back.size() == 3);
        CHECK(back[0] == "aaa");
        CHECK(back[1] == std::string(200, 'b'));
        CHECK(back[2].size() == 70000);
        run.append(packet(1, 'd'));
        CHECK(unframe(run.websocket_frames()).back() == "d");
    }

    TEST_CASE("recipients of the same sequence share one run; another sequence gets its own") {
        Batch batch;
        const auto a = batch.add(packet(10, 'a'));
        const auto b = batch.add(packet(20, 'b'));
        CHECK(batch.bytes() == 30);
        const EventRun& r1 = batch.run({a, b});
        const EventRun& r2 = batch.run({a, b});
        const EventRun& r3 = batch.run({b});
        CHECK(&r1 == &r2);
        CHECK(&r1 != &r3);
        CHECK(r3.packets().size() == 1);
        CHECK(r3.packets()[0]->front() == 'b');
        batch.clear();
        CHECK(batch.empty());
        CHECK(batch.bytes() == 0);
    }
}
