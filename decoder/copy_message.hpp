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

// The frontend/backend protocol around the copy stream, for a client that reads it from the
// socket itself: each message is a type byte and a big-endian length that counts itself.
constexpr std::size_t kMessageHeader = 5;
// The length of the message starting at `header` (at least 5 bytes), payload only; an
// error when the length field is under 4.
Result<std::size_t> message_payload_size(std::string_view header);
// `Q`: a simple query.
std::string encode_query_message(std::string_view sql);
// `d`: CopyData around `payload`; `c`: CopyDone.
std::string encode_copy_data(std::string_view payload);
std::string encode_copy_done();

// The fields of an ErrorResponse or NoticeResponse body.
struct ServerNotice {
    std::string severity;  // ERROR, FATAL, ...
    std::string sqlstate;  // e.g. 55006
    std::string message;
    std::string detail;
};
Result<ServerNotice> parse_server_notice(std::string_view body);

// Converts Unix epoch microseconds to PostgreSQL epoch microseconds.
constexpr PgTimestamp pg_timestamp_from_unix_us(std::int64_t unix_us) {
    return unix_us - 946684800LL * 1000000LL;
}
constexpr std::int64_t unix_us_from_pg_timestamp(PgTimestamp pg) { return pg + 946684800LL * 1000000LL; }

}  // namespace walcast
