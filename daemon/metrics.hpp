// Metrics: plain counters and gauges owned by the event loop thread, rendered as Prometheus
// text for GET /metrics. Every component increments its own fields; nothing here locks.
#pragma once

#include <cstdint>
#include <string>

namespace walcast {

struct Metrics {
    // Replication.
    std::uint64_t transactions = 0;          // committed transactions routed
    std::uint64_t events = 0;                // events published (a bulk event counts once)
    std::uint64_t deliveries = 0;            // event frames queued to clients
    std::uint64_t malformed_lines = 0;       // wal2json lines that failed to decode
    std::uint64_t malformed_contexts = 0;
    std::uint64_t dropped_no_context = 0;
    std::uint64_t dropped_suppressed = 0;
    std::uint64_t dropped_not_routed = 0;
    std::uint64_t dropped_room_unresolved = 0;
    std::uint64_t dropped_truncate = 0;
    std::uint64_t coalesced_transactions = 0;
    std::uint64_t replication_reconnects = 0;
    bool streaming = false;
    std::uint64_t received_lsn = 0;          // last wal_end seen
    std::uint64_t confirmed_lsn = 0;         // last flush position sent
    std::uint64_t server_wal_end = 0;        // latest server WAL end from keepalives/XLogData
    std::uint64_t stream_lag_ms = 0;         // the last transaction: its commit to the walsender sending it
    bool reading_ahead = false;              // a backlog is being read ahead of delivery
    std::uint64_t read_aheads = 0;           // backlogs read ahead of delivery

    // Clients.
    std::uint64_t clients = 0;               // connected Socket.IO sessions (gauge)
    std::uint64_t connections_total = 0;
    std::uint64_t auth_failures = 0;
    std::uint64_t slow_consumer_closes = 0;  // close 4008
    std::uint64_t oversized_frame_closes = 0;  // close 1009
    std::uint64_t protocol_errors = 0;       // bad Engine.IO/Socket.IO input, closed or refused
    std::uint64_t connect_timeouts = 0;      // no CONNECT within the limit
    std::uint64_t connections_refused = 0;   // 503 at max_connections, or closed at the socket budget
    std::uint64_t token_expiry_closes = 0;   // close 4001: the token's exp passed while connected
    std::uint64_t ping_timeouts = 0;
    std::uint64_t flood_closes = 0;          // close 1008: sent more than its budget
    std::uint64_t user_connection_refusals = 0;  // CONNECT refused at limits.max_connections_per_user
    std::uint64_t join_allowed = 0;
    std::uint64_t join_denied = 0;
    std::uint64_t join_busy = 0;             // join-project answered "busy" (checks queue full)

    // Connection-state recovery.
    std::uint64_t recovery_buffer_events = 0;  // gauge
    std::uint64_t recovery_buffer_bytes = 0;   // gauge
    std::uint64_t recovery_buffer_evicted = 0;
    std::uint64_t detached_sessions = 0;       // gauge: resumable sessions
    std::uint64_t detached_evicted = 0;        // resumable sessions forgotten for the caps
    std::uint64_t catch_ups = 0;               // clients that fell behind and read from the buffer
    std::uint64_t catching_up = 0;             // gauge: clients reading from the buffer now
    std::uint64_t snapshot_joins = 0;          // joins with a snapshot that got every event it did not see
    std::uint64_t snapshot_misses = 0;         // joins with a snapshot the buffer no longer reached: reload
    std::uint64_t snapshot_replayed = 0;       // events sent from the buffer to snapshot joins
    std::uint64_t snapshot_filtered = 0;       // live events kept from a client: its snapshot saw them
    std::uint64_t recoveries = 0;              // reconnects resumed with their missed events
    std::uint64_t recovery_misses = 0;         // reconnects with a pid that got a fresh session
    std::uint64_t recovery_replayed = 0;       // events re-sent to recovering clients
    std::uint64_t wal_retained_bytes = 0;      // gauge: dispatched minus confirmed (the window's WAL)

    // Continuity of the stream.
    std::uint64_t oversized_lines = 0;         // wal2json lines over max_line_bytes, skipped
    std::uint64_t failed_transactions = 0;     // transactions failed closed (malformed or oversized input)
    std::uint64_t resync_closes = 0;           // clients closed with 4000 after a discontinuity
    // walcast_discontinuities_total{reason}, by Discontinuity.
    std::uint64_t discontinuities[6] = {};

    // Cluster mode (rendered only there).
    bool cluster = false;
    bool redis_up = false;
    bool leader = false;                       // holds the slot and appends to the stream
    std::uint64_t stream_appended = 0;         // events appended to the stream (leader)
    std::uint64_t stream_read = 0;             // entries read from the stream
    std::uint64_t stream_gaps = 0;             // the stream lost entries this node had not read
    std::uint64_t stream_skipped = 0;          // entries not relayed: malformed, binary, acknowledged
    std::uint64_t redis_unacked_bytes = 0;     // gauge: appends not yet acknowledged

    std::string render() const;
};

}  // namespace walcast
