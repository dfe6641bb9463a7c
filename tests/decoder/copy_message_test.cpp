// CopyData parsing ('w', 'k') and standby status update encoding ('r').
#include <doctest/doctest.h>

#include "decoder/copy_message.hpp"

using namespace walcast;

namespace {
std::string be64(std::uint64_t v) {
    std::string s;
    for (int shift = 56; shift >= 0; shift -= 8) s.push_back(static_cast<char>((v >> shift) & 0xFF));
    return s;
}
}  // namespace

TEST_SUITE("copy_message") {
    TEST_CASE("XLogData carries positions, send time and the wal2json line") {
        std::string msg = "w" + be64(0x153C678) + be64(0x153C6A8) + be64(1234567) + R"({"action":"B"})";
        auto parsed = parse_copy_message(msg);
        REQUIRE(parsed);
        auto* w = std::get_if<XLogData>(&*parsed);
        REQUIRE(w);
        CHECK(w->wal_start.str() == "0/153C678");
        CHECK(w->wal_end.str() == "0/153C6A8");
        CHECK(w->send_time == 1234567);
        CHECK(w->payload == R"({"action":"B"})");
    }

    TEST_CASE("keepalive with and without a reply request") {
        for (char flag : {'\0', '\1'}) {
            std::string msg = "k" + be64((5ull << 32) | 7) + be64(99) + std::string(1, flag);
            auto parsed = parse_copy_message(msg);
            REQUIRE(parsed);
            auto* k = std::get_if<Keepalive>(&*parsed);
            REQUIRE(k);
            CHECK(k->wal_end.str() == "5/7");
            CHECK(k->send_time == 99);
            CHECK(k->reply_requested == (flag == 1));
        }
    }

    TEST_CASE("truncated and unknown messages are errors, not crashes") {
        CHECK(parse_copy_message("").error().message == "empty CopyData message");
        CHECK(parse_copy_message("w" + be64(1)).error().message ==
              "XLogData message too short: 9 bytes, header needs 25");
        CHECK(parse_copy_message("k" + be64(1) + be64(2)).error().message ==
              "keepalive message has 17 bytes, expected 18");
        CHECK(parse_copy_message("k" + be64(1) + be64(2) + "\1\1").error().message ==
              "keepalive message has 19 bytes, expected 18");
        CHECK(parse_copy_message("Z123").error().message == "unknown CopyData message type byte 0x5a");
    }

    TEST_CASE("standby status update is 34 big-endian bytes") {
        std::string r = encode_standby_status(Lsn{0x0102030405060708ull}, Lsn{0x153C6A8}, Lsn{0x10}, 0x1122334455667788ll, true);
        REQUIRE(r.size() == 34);
        CHECK(r[0] == 'r');
        CHECK(r.substr(1, 8) == be64(0x0102030405060708ull));
        CHECK(r.substr(9, 8) == be64(0x153C6A8));
        CHECK(r.substr(17, 8) == be64(0x10));
        CHECK(r.substr(25, 8) == be64(0x1122334455667788ull));
        CHECK(r[33] == 1);
        CHECK(encode_standby_status(Lsn{}, Lsn{}, Lsn{}, 0)[33] == 0);
    }

    TEST_CASE("PostgreSQL epoch is 2000-01-01") {
        CHECK(pg_timestamp_from_unix_us(946684800LL * 1000000LL) == 0);
        CHECK(pg_timestamp_from_unix_us(946684801LL * 1000000LL) == 1000000);
    }
}

TEST_SUITE("backend protocol framing") {
    TEST_CASE("message length counts itself; under 4 is an error") {
        const std::string q = walcast::encode_query_message("SELECT 1");
        CHECK(q[0] == 'Q');
        auto n = walcast::message_payload_size(q);
        REQUIRE(n);
        CHECK(*n == 9);  // "SELECT 1" and its terminator
        CHECK(q.size() == 5 + 9);
        CHECK_FALSE(walcast::message_payload_size(std::string("d\0\0\0\3", 5)));
        CHECK_FALSE(walcast::message_payload_size("d\0\0"));
        CHECK(*walcast::message_payload_size(std::string("d\x7f\xff\xff\xff", 5)) == 0x7fffffffu - 4);
        CHECK(walcast::encode_copy_done() == std::string("c\0\0\0\4", 5));
        CHECK(walcast::encode_copy_data("ab").substr(5) == "ab");
    }

    TEST_CASE("ErrorResponse fields") {
        static const char raw[] = "SERROR\0C55006\0Mreplication slot \"s\" is active for PID 7\0Dx\0";  // + the array's own final \0
        const std::string body(raw, sizeof raw);
        auto n = walcast::parse_server_notice(body);
        REQUIRE(n);
        CHECK(n->severity == "ERROR");
        CHECK(n->sqlstate == "55006");
        CHECK(n->message == "replication slot \"s\" is active for PID 7");
        CHECK(n->detail == "x");
        CHECK_FALSE(walcast::parse_server_notice(std::string("SERROR\0CX", 9)));
        CHECK_FALSE(walcast::parse_server_notice(std::string("SERROR\0", 7)));
        CHECK(walcast::parse_server_notice(std::string("\0", 1)));
    }
}
