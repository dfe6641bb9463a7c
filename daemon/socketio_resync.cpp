// SocketIoServer::resync: what clients learn when the stream lost events.
#include "daemon/socketio_session.hpp"
#include "decoder/json_text.hpp"

namespace walcast {

void SocketIoServer::resync(const std::string& reason, Lsn lost_after, const std::string& detail) {
    Impl& m = *impl_;
    m.flush(true);  // what was dispatched before the gap goes out first
    const EventOffset floor{m.newest.lsn, 0xFFFFFFFFu, m.newest.stream};
    m.buffer.cut(floor);
    m.newest = floor;
    m.stream_position = Lsn{};  // the stream starts afresh (another server's LSNs may be lower)
    if (m.detached.expire(std::numeric_limits<std::int64_t>::max(), 0)) m.sessions_changed = true;
    m.update_recovery_metrics();

    std::string payload = "{\"reason\":";
    append_json_string(payload, reason);
    payload += ",\"lostAfter\":";
    append_json_string(payload, lost_after.str());
    payload += ",\"detail\":";
    append_json_string(payload, detail);
    payload += '}';
    // With recovery on every event carries an offset; this one's is the cut itself.
    const std::string packet = encode_event("walcast:resync", payload, m.recovery() ? floor.str() : std::string());
    std::vector<SessionId> ids;
    m.engine.for_each([&](EngineSocket& s) { ids.push_back(s.id); });
    std::size_t told = 0;
    for (SessionId id : ids) {
        Session* s = m.find(id);
        if (!s || s->closing || s->phase != Phase::Connected) continue;
        m.send_packet(*s, packet);
        // Not resumable: its reconnect must be a fresh session, whatever offset it presents.
        if (!s->pid.empty()) m.by_pid.erase(s->pid);
        if (m.store && !s->pid.empty()) m.store->forget(s->pid);
        s->pid.clear();
        m.close(*s, close_code::kResync, "resync", CloseCause::Resync);
        ++told;
    }
    m.metrics.resync_closes += told;
}

}  // namespace walcast
