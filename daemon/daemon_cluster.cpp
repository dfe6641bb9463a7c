// Daemon in cluster mode: the slot's holder appends to the Redis stream and confirms what
// Redis acknowledged; every node serves its clients from the stream. While Redis is down or
// behind, the slot is not streamed (and not confirmed): /healthz answers 503 and the WAL
// waits in PostgreSQL, so nothing is lost.
#include <boost/asio/post.hpp>

#include <rapidjson/document.h>

#include "daemon/daemon.hpp"
#include "daemon/log.hpp"
#include "decoder/json_text.hpp"

namespace walcast {

void Daemon::on_entry(const StreamId& id, const BroadcastEntry& entry, bool live) {
    ++metrics_.stream_read;
    if (entry.walcast) backfill_xid_ = std::max<std::uint64_t>(backfill_xid_, entry.walcast->xid);
    if (entry.event != "walcast:resync") return server_.publish_stream(id, entry, live);
    // A node lost events (a discontinuity): every node's clients resync. One read at start
    // only cuts the buffer, so nothing from before it can be resumed.
    rapidjson::Document doc;
    doc.Parse<rapidjson::kParseIterativeFlag>(entry.args_json.data(), entry.args_json.size());
    auto text = [&](const char* key) -> std::string {
        if (!doc.IsObject()) return {};
        auto it = doc.FindMember(key);
        return it != doc.MemberEnd() && it->value.IsString() ? std::string(it->value.GetString(), it->value.GetStringLength())
                                                             : std::string();
    };
    const std::string reason = text("reason");
    server_.resync(reason.empty() ? "resync" : reason, Lsn::parse(text("lostAfter")).value_or(Lsn{}), text("detail"));
}

void Daemon::on_backfilled() {
    // Transactions older than what the stream still held are not in the buffer; a snapshot
    // join from before them is told to reload.
    if (backfill_xid_) server_.raise_xid_horizon(backfill_xid_ + 1);
}

void Daemon::on_stream_gap(const std::string& why) {
    ++metrics_.stream_gaps;
    log_error("stream gap: " + why + "; this node's clients are told to resync");
    health_detail_ = "last stream gap at " + std::to_string(std::time(nullptr)) + ": " + why + "\n";
    server_.resync("stream_gap", Lsn{}, why);
}

void Daemon::on_appended(Lsn end) {
    metrics_.redis_unacked_bytes = cluster_->unacked_bytes();
    if (end > dispatched_) dispatched_ = end;
    stream_.confirm(dispatched_);
    if (paused_for_redis_ && cluster_->unacked_bytes() <= kMaxUnackedBytes / 4) resume_stream();
}

void Daemon::on_redis(bool up, const std::string& why) {
    metrics_.redis_up = up;
    metrics_.redis_unacked_bytes = 0;
    if (up) return resume_stream();
    pause_stream("Redis is unavailable (" + why + ")");
}

void Daemon::tell_resync(const char* reason, Lsn lost_after, const std::string& detail) {
    if (!cluster_ || !cluster_->redis_up()) return server_.resync(reason, lost_after, detail);
    std::string payload = "{\"reason\":";
    append_json_string(payload, reason);
    payload += ",\"lostAfter\":";
    append_json_string(payload, lost_after.str());
    payload += ",\"detail\":";
    append_json_string(payload, detail);
    payload += '}';
    cluster_->append_resync(payload);  // every node, this one included, reads it
}

// Stops streaming the slot; what was received and not acknowledged is read again later
// (the slot was not confirmed past it).
void Daemon::pause_stream(const std::string& why) {
    if (paused_for_redis_) return;
    paused_for_redis_ = true;
    boost::asio::post(io_, [this, why] {
        if (stopping_ || !paused_for_redis_) return;
        if (metrics_.leader || stream_.streaming()) log_warning("not streaming the slot: " + why);
        retry_timer_.cancel();
        stream_.stop();
        metrics_.streaming = false;
        metrics_.leader = false;
        skipping_ = false;
        assembler_.finish("paused: " + why);
        committed_end_ = dispatched_;
    });
}

void Daemon::resume_stream() {
    if (!paused_for_redis_ || stopping_ || !cluster_->redis_up()) return;
    paused_for_redis_ = false;
    backoff_ = std::chrono::seconds(1);
    boost::asio::post(io_, [this] {
        if (!paused_for_redis_ && !stopping_ && !stream_.streaming()) stream_.start();
    });
}

}  // namespace walcast
