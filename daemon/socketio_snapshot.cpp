// Joining a room with a snapshot token: the client gets, from the recovery buffer, exactly
// the room's events of the transactions its snapshot did not see, then live events without
// those the snapshot saw. The page that read the database and joined in between misses
// nothing and sees nothing twice.
#include "daemon/socketio_session.hpp"

namespace walcast {

namespace {

bool in(const std::vector<std::string>& rooms, const std::string& room) {
    return std::find(rooms.begin(), rooms.end(), room) != rooms.end();
}

}  // namespace

bool SocketIoServer::Impl::join_with_snapshot(Session& s, const std::string& room, const Snapshot& snapshot) {
    // Live events of transactions the snapshot saw may still be on their way (walcast reads
    // behind the database): filtered until the stream passes what the snapshot saw.
    if (stream_position < snapshot.seen_until) s.filters.push_back(Session::SnapshotFilter{room, snapshot});
    // Every transaction the buffer no longer holds had an xid below its horizon; when the
    // snapshot's xmin is at least that, the snapshot saw them all.
    if (!recovery() || buffer.xid_horizon() > snapshot.xmin) {
        ++metrics.snapshot_misses;
        log(LogLevel::Info, s, "joined " + room + " with a snapshot older than the recovery buffer: the client reloads");
        return false;
    }
    // The backlog: the room's buffered events the snapshot did not see, in commit order. A
    // transaction below xmin was seen, which skips most of the buffer at an integer compare.
    // A client reading from the buffer (catching up, or about to once a backlog is read) gets
    // what lies past its cursor from there, this room included: only what is behind it here.
    const bool from_buffer = s.catching_up || reading_ahead;
    EventRun run;
    for (std::size_t i = 0; i < buffer.size(); ++i) {
        const BufferedEvent& e = buffer.at(i);
        if (from_buffer && s.cursor < e.offset) break;
        if (e.xid < snapshot.xmin || snapshot.sees(e.xid) || !in(e.rooms, room)) continue;
        run.append(e.frame);
        if (run.bytes() > options.max_send_buffer) {
            ++metrics.snapshot_misses;
            log(LogLevel::Info, s, "joined " + room + " with a snapshot whose backlog passes max_send_buffer_bytes: the client reloads");
            return false;
        }
    }
    if (!run.packets().empty()) {
        send_queued(s);
        engine.send_events(s, run);
        metrics.deliveries += run.packets().size();
        metrics.snapshot_replayed += run.packets().size();
    }
    ++metrics.snapshot_joins;
    return true;
}

bool SocketIoServer::Impl::passes_filters(Session& s, const std::vector<std::string>& rooms, std::uint64_t xid) {
    bool pass = true;
    for (std::size_t i = 0; i < s.filters.size();) {
        const Session::SnapshotFilter& f = s.filters[i];
        if (stream_position >= f.snapshot.seen_until) {
            // Every transaction the snapshot saw has been published: nothing more to filter.
            s.filters[i] = std::move(s.filters.back());
            s.filters.pop_back();
            continue;
        }
        if (in(rooms, f.room) && f.snapshot.sees(xid)) pass = false;
        ++i;
    }
    if (!pass) ++metrics.snapshot_filtered;
    return pass;
}

void SocketIoServer::set_stream_position(Lsn position) {
    if (position > impl_->stream_position) impl_->stream_position = position;
}

void SocketIoServer::set_xid_reference(std::uint64_t next_xid) {
    if (next_xid > impl_->xid_reference) impl_->xid_reference = next_xid;
}

}  // namespace walcast
