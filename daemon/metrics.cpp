// Prometheus text rendering of Metrics (text exposition format 0.0.4).
#include "daemon/metrics.hpp"

#include "decoder/continuity.hpp"

namespace walcast {

namespace {

void metric(std::string& out, const char* name, const char* type, const char* help, std::uint64_t value,
            const char* labels = "") {
    out += "# HELP ";
    out += name;
    out += ' ';
    out += help;
    out += "\n# TYPE ";
    out += name;
    out += ' ';
    out += type;
    out += '\n';
    out += name;
    out += labels;
    out += ' ';
    out += std::to_string(value);
    out += '\n';
}

}  // namespace

std::string Metrics::render() const {
    std::string out;
    out.reserve(4096);
    metric(out, "walcast_transactions_total", "counter", "Committed transactions routed.", transactions);
    metric(out, "walcast_events_total", "counter", "Events published (a bulk event counts once).", events);
    metric(out, "walcast_deliveries_total", "counter", "Event frames queued to clients.", deliveries);
    metric(out, "walcast_malformed_lines_total", "counter", "wal2json lines that failed to decode.", malformed_lines);
    metric(out, "walcast_malformed_contexts_total", "counter", "Context messages that failed to parse.", malformed_contexts);
    out += "# HELP walcast_dropped_changes_total Row changes that emitted no event, by reason.\n"
           "# TYPE walcast_dropped_changes_total counter\n";
    auto drop = [&](const char* reason, std::uint64_t v) {
        out += "walcast_dropped_changes_total{reason=\"";
        out += reason;
        out += "\"} ";
        out += std::to_string(v);
        out += '\n';
    };
    drop("no_context", dropped_no_context);
    drop("suppressed", dropped_suppressed);
    drop("not_routed", dropped_not_routed);
    drop("room_unresolved", dropped_room_unresolved);
    drop("truncate", dropped_truncate);
    metric(out, "walcast_coalesced_transactions_total", "counter", "Transactions sent as bulk events.", coalesced_transactions);
    metric(out, "walcast_replication_reconnects_total", "counter", "Reconnections to PostgreSQL.", replication_reconnects);
    metric(out, "walcast_streaming", "gauge", "1 while streaming from the slot.", streaming ? 1 : 0);
    metric(out, "walcast_received_lsn", "gauge", "Last WAL position received.", received_lsn);
    metric(out, "walcast_confirmed_lsn", "gauge", "Last flush position confirmed to the slot.", confirmed_lsn);
    metric(out, "walcast_lag_bytes", "gauge", "Server WAL end minus confirmed position.",
           server_wal_end > confirmed_lsn ? server_wal_end - confirmed_lsn : 0);
    metric(out, "walcast_stream_lag_milliseconds", "gauge",
           "How long after it committed the server sent the last transaction read (the server's clock).",
           stream_lag_ms);
    metric(out, "walcast_reading_ahead", "gauge", "1 while a backlog is read ahead of delivering it.",
           reading_ahead ? 1 : 0);
    metric(out, "walcast_read_aheads_total", "counter", "Backlogs read ahead of delivering them.", read_aheads);
    metric(out, "walcast_clients", "gauge", "Connected Socket.IO clients.", clients);
    metric(out, "walcast_connections_total", "counter", "WebSocket connections accepted.", connections_total);
    metric(out, "walcast_auth_failures_total", "counter", "CONNECTs refused as unauthorized.", auth_failures);
    metric(out, "walcast_slow_consumer_closes_total", "counter", "Clients closed with 4008 (send buffer full).",
           slow_consumer_closes);
    metric(out, "walcast_oversized_frame_closes_total", "counter", "Clients closed with 1009 (frame too big).",
           oversized_frame_closes);
    metric(out, "walcast_protocol_errors_total", "counter", "Malformed Engine.IO/Socket.IO input.", protocol_errors);
    metric(out, "walcast_connect_timeouts_total", "counter", "Clients closed for not sending CONNECT in time.",
           connect_timeouts);
    metric(out, "walcast_connections_refused_total", "counter",
           "Connections refused: upgrades answered 503 at max_connections, sockets closed at the open-file budget.",
           connections_refused);
    metric(out, "walcast_token_expiry_closes_total", "counter",
           "Clients closed with 4001 because their token expired while connected.", token_expiry_closes);
    metric(out, "walcast_ping_timeouts_total", "counter", "Clients closed for not answering a ping.", ping_timeouts);
    metric(out, "walcast_flood_closes_total", "counter", "Clients closed with 1008 for sending more than their budget.",
           flood_closes);
    metric(out, "walcast_user_connection_refusals_total", "counter",
           "CONNECTs refused at limits.max_connections_per_user.", user_connection_refusals);
    metric(out, "walcast_project_joins_total", "counter", "join-project requests allowed.", join_allowed);
    metric(out, "walcast_project_joins_denied_total", "counter", "join-project requests refused.", join_denied);
    metric(out, "walcast_project_joins_busy_total", "counter", "join-project requests answered busy.", join_busy);
    metric(out, "walcast_recovery_buffer_events", "gauge", "Events held for connection-state recovery.",
           recovery_buffer_events);
    metric(out, "walcast_recovery_buffer_bytes", "gauge", "Bytes held for connection-state recovery.", recovery_buffer_bytes);
    metric(out, "walcast_recovery_buffer_evicted_total", "counter", "Events evicted from the recovery buffer (age or bytes).",
           recovery_buffer_evicted);
    metric(out, "walcast_detached_sessions", "gauge", "Disconnected sessions that may still resume.", detached_sessions);
    metric(out, "walcast_detached_evicted_total", "counter",
           "Resumable sessions forgotten for limits.max_detached_sessions or max_detached_per_user.", detached_evicted);
    metric(out, "walcast_catch_ups_total", "counter",
           "Clients that read slower than events arrived and caught up from the recovery buffer.", catch_ups);
    metric(out, "walcast_catching_up_clients", "gauge", "Clients reading from the recovery buffer now.", catching_up);
    metric(out, "walcast_snapshot_joins_total", "counter",
           "Joins with a snapshot token that got every event the snapshot did not see.", snapshot_joins);
    metric(out, "walcast_snapshot_misses_total", "counter",
           "Joins with a snapshot token older than the recovery buffer (the client reloads).", snapshot_misses);
    metric(out, "walcast_snapshot_replayed_total", "counter", "Events sent from the buffer to snapshot joins.",
           snapshot_replayed);
    metric(out, "walcast_snapshot_filtered_total", "counter",
           "Live events not sent to a client because the snapshot it joined with already saw them.", snapshot_filtered);
    metric(out, "walcast_recoveries_total", "counter", "Reconnects resumed with every missed event.", recoveries);
    metric(out, "walcast_recovery_misses_total", "counter", "Reconnects with a pid that got a fresh session.",
           recovery_misses);
    metric(out, "walcast_recovery_replayed_total", "counter", "Events re-sent to recovering clients.", recovery_replayed);
    metric(out, "walcast_wal_retained_bytes", "gauge",
           "WAL the slot keeps for recovery across restarts (dispatched minus confirmed).", wal_retained_bytes);
    metric(out, "walcast_oversized_lines_total", "counter",
           "wal2json lines over limits.max_line_bytes, skipped unread (their transaction fails closed).", oversized_lines);
    metric(out, "walcast_failed_transactions_total", "counter",
           "Transactions that emitted nothing because a line of theirs was malformed or oversized.", failed_transactions);
    metric(out, "walcast_resync_closes_total", "counter", "Clients closed with 4000 to refetch after a discontinuity.",
           resync_closes);
    out += "# HELP walcast_discontinuities_total Times the stream lost events (slot dropped, invalidated, advanced, "
           "another server, a promotion), by reason.\n# TYPE walcast_discontinuities_total counter\n";
    for (int r = 1; r < 6; ++r) {
        out += "walcast_discontinuities_total{reason=\"";
        out += discontinuity_name(static_cast<Discontinuity>(r));
        out += "\"} ";
        out += std::to_string(discontinuities[r]);
        out += '\n';
    }
    if (cluster) {
        metric(out, "walcast_redis_up", "gauge", "1 while both Redis connections are up.", redis_up ? 1 : 0);
        metric(out, "walcast_cluster_leader", "gauge", "1 while this node holds the slot and appends to the stream.",
               leader ? 1 : 0);
        metric(out, "walcast_stream_appended_total", "counter", "Events this node appended to the Redis stream.",
               stream_appended);
        metric(out, "walcast_stream_read_total", "counter", "Entries this node read from the Redis stream.", stream_read);
        metric(out, "walcast_stream_gaps_total", "counter",
               "Times the stream no longer held entries this node had not read (its clients resynced).", stream_gaps);
        metric(out, "walcast_stream_skipped_total", "counter",
               "Stream entries not relayed to clients: malformed, over a limit, binary or acknowledged broadcasts.",
               stream_skipped);
        metric(out, "walcast_redis_unacked_bytes", "gauge", "Bytes appended to Redis and not yet acknowledged.",
               redis_unacked_bytes);
    }
    return out;
}

}  // namespace walcast
