// Cluster mode for the Socket.IO layer: events come from the shared stream with its entry ids
// as offsets, and resumable sessions live in a store every node reaches (Redis), saved when
// they change and refreshed while they are connected, so a client whose node died resumes on
// another one.
#include <boost/asio/post.hpp>

#include "daemon/socketio_session.hpp"
#include "decoder/json_text.hpp"
#include "routing/stream_entry.hpp"

namespace walcast {

namespace {

// A connected session is kept in the store this long past its last save, and saved again
// well before that: its node may die without a word, and its client then resumes elsewhere.
std::int64_t connected_ttl_ms(std::chrono::milliseconds window) { return window.count() * 2; }
std::chrono::milliseconds refresh_period(std::chrono::milliseconds window) {
    return std::max(std::chrono::milliseconds(1000), window / 2);
}

}  // namespace

void SocketIoServer::publish_stream(const StreamId& id, const BroadcastEntry& entry, bool deliver) {
    Impl& m = *impl_;
    // Like the adapter: a volatile broadcast carries no offset and cannot be recovered.
    const bool offsets = m.recovery() && !entry.volatile_flag;
    const EventOffset offset{Lsn{id.ms}, static_cast<std::uint32_t>(id.seq), true};
    // Entries of other Socket.IO servers carry no xid: no snapshot saw them.
    std::uint64_t xid = std::numeric_limits<std::uint64_t>::max();
    if (entry.walcast) {
        xid = full_xid(static_cast<std::uint32_t>(entry.walcast->xid), m.xid_reference);
        m.xid_reference = std::max(m.xid_reference, xid);
    }
    auto text = std::make_shared<std::string>();
    text->reserve(entry.event.size() + entry.args_json.size() + 40);
    *text += "42[";
    append_json_string(*text, entry.event);
    if (!entry.args_json.empty()) {
        *text += ',';
        *text += entry.args_json;
    }
    if (offsets) {
        *text += ',';
        append_json_string(*text, offset.str());
    }
    *text += ']';
    Event event;
    event.name = entry.event;
    event.rooms = entry.rooms;
    if (entry.walcast) m.stream_position = std::max(m.stream_position, entry.walcast->end_lsn);
    if (!deliver || entry.except.empty()) {
        m.publish_packet(event, offset, xid, std::move(text), offsets, deliver);
    } else {
        // `except` names rooms whose members do not get it (the sender's own socket, for
        // `socket.to(room).emit` on a Node server): walcast's sessions are in their user,
        // tenant and project rooms only.
        m.publish_packet(event, offset, xid, text, offsets, false);
        std::vector<SessionId> skip;
        struct Collect : RecipientSink {
            std::vector<SessionId>& out;
            explicit Collect(std::vector<SessionId>& o) : out(o) {}
            void deliver(SessionId id) override { out.push_back(id); }
        } collect(skip);
        m.rooms.for_each_recipient(entry.except, collect);
        std::sort(skip.begin(), skip.end());
        struct Except : RecipientSink {
            Impl& m;
            const std::vector<SessionId>& skip;
            const Packet& packet;
            const EventOffset& offset;
            Except(Impl& i, const std::vector<SessionId>& s, const Packet& p, const EventOffset& o)
                : m(i), skip(s), packet(p), offset(o) {}
            void deliver(SessionId id) override {
                if (std::binary_search(skip.begin(), skip.end(), id)) return;
                Session* s = m.find(id);
                if (!s || s->closing || s->phase != Phase::Connected || s->catching_up) return;
                m.enqueue(*s, m.batch.add(packet), offset);
            }
        } except(m, skip, text, offset);
        if (entry.rooms.empty()) {
            std::vector<SessionId> everyone;
            m.engine.for_each([&](EngineSocket& s) { everyone.push_back(s.id); });
            for (SessionId id : everyone) except.deliver(id);
        } else {
            m.rooms.for_each_recipient(entry.rooms, except);
        }
    }
    if (m.recovery()) m.update_recovery_metrics();
}

void SocketIoServer::set_session_store(SessionStore* store) { impl_->store = store; }

void SocketIoServer::raise_xid_horizon(std::uint64_t xid) { impl_->buffer.raise_xid_horizon(xid); }

void SocketIoServer::Impl::changed(Session& s) {
    sessions_changed = true;
    if (store && !s.pid.empty() && s.phase == Phase::Connected)
        store->save(snapshot(s, unix_now_ms()), connected_ttl_ms(options.recovery_window));
}

// Every connected session is saved again before its key expires.
void SocketIoServer::Impl::refresh_store() {
    if (!store) return;
    const auto now = std::chrono::steady_clock::now();
    if (now - store_refreshed < refresh_period(options.recovery_window)) return;
    store_refreshed = now;
    const std::int64_t at = unix_now_ms();
    for (const auto& [pid, id] : by_pid)
        if (Session* s = find(id); s && s->phase == Phase::Connected)
            store->save(snapshot(*s, at), connected_ttl_ms(options.recovery_window));
}

bool SocketIoServer::Impl::resume_from_store(Session& s, const std::string& pid,
                                             const std::optional<std::string>& offset_text,
                                             const std::optional<std::string>& auth_snapshot) {
    // The session may be live here still (the client saw the cut first): it is saved as it
    // stands, so the take below finds it.
    if (Session* old = replaced_by_resume(s, pid, s.user, s.tenant)) {
        detach(*old);
        close(*old, close_code::kGoingAway, "replaced by a resumed connection", CloseCause::Replaced);
    }
    s.phase = Phase::Resuming;  // a second CONNECT meanwhile is a protocol error
    store->take(pid, [this, guard = std::weak_ptr<char>(alive), id = s.id, pid, offset_text,
                      auth_snapshot](std::optional<SessionSnapshot> found) {
        if (!guard.lock()) return;
        Session* s = find(id);
        if (!s || s->closing || s->phase != Phase::Resuming) {
            // The client left while the store answered: its session stays resumable.
            if (found) store->save(*found, options.recovery_window.count());
            return;
        }
        if (found) detached.add(std::move(*found));
        if (!try_resume(*s, pid, offset_text)) {
            detached.take(pid);
            connect_fresh(*s, auth_snapshot);
        }
    });
    return true;
}

}  // namespace walcast
