// CopyData messages of the streaming replication protocol: parsing what the walsender sends
// ('w' XLogData, 'k' primary keepalive) and encoding the standby status update ('r').
// Pure functions; any thread. All integers on the wire are big-endian.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include "decoder/lsn.hpp"
#include "decoder/result.hpp"

namespace walcast {

// Microseconds since 2000-01-01 00:00:00 UTC (PostgreSQL's epoch).
using PgTimestamp = std::int64_t;

struct XLogData {
    Lsn wal_start;
    Lsn wal_end;
    PgTimestamp send_time = 0;
    std::string_view payload;  // one wal2json line, no newline; points into the input
};

struct Keepalive {
    Lsn wal_end;
    PgTimestamp send_time = 0;
    bool reply_requested = false;
};

using CopyMessage = std::variant<XLogData, Keepalive>;

Result<CopyMessage> parse_copy_message(std::string_view bytes);

// The 34-byte 'r' message: write, flush and apply positions and the client's clock.
std::string encode_standby_status(Lsn write, Lsn flush, Lsn apply, PgTimestamp now,
                                  bool reply_requested = false);

// Converts Unix epoch microseconds to PostgreSQL epoch microseconds.
constexpr PgTimestamp pg_timestamp_from_unix_us(std::int64_t unix_us) {
    return unix_us - 946684800LL * 1000000LL;
}

}  // namespace walcast
