// Connection-state recovery: a session that drops is kept (bounded) by its private id; a
// reconnect presenting that pid, for the same user and tenant, within the window, whose
// project rooms all pass their access check again, gets its old sid back, the CONNECT
// reply first and then every missed event of its rooms, paced by its transport. Anything
// short of that is a fresh session (recovered: false): the client refetches.
#include <boost/asio/post.hpp>

#include <algorithm>
#include <deque>

#include "daemon/random_id.hpp"
#include "daemon/socketio_session.hpp"

namespace walcast {

namespace {

// A resume re-checks at most this many rooms at a time. A Busy answer (the user's check
// queue is full) narrows that to what the queue took, and the room is asked again: a session
// in more rooms than limits.max_access_checks_per_user still resumes.
constexpr std::size_t kRecheckWindow = 8;
// With none of its checks in flight and still Busy, it asks again after this, doubling.
constexpr std::chrono::milliseconds kRecheckRetryFirst{25};
constexpr std::chrono::milliseconds kRecheckRetryMax{400};

}  // namespace

// The access re-check of one resuming session's project rooms; lives as long as a check or
// the retry timer holds it.
struct RoomRecheck {
    explicit RoomRecheck(boost::asio::io_context& io) : retry(io) {}
    SessionId id = 0;
    EventOffset from;
    AccessRequest request;  // its project is set per check
    std::deque<std::string> todo;
    std::vector<std::string> allowed;
    std::size_t in_flight = 0;
    std::size_t window = kRecheckWindow;
    bool denied = false;
    std::chrono::milliseconds backoff = kRecheckRetryFirst;
    std::chrono::steady_clock::time_point give_up_at;  // Busy until then: a fresh session
    boost::asio::steady_timer retry;
};

SessionSnapshot SocketIoServer::Impl::snapshot(const Session& s, std::int64_t at_ms) const {
    SessionSnapshot snap;
    snap.pid = s.pid;
    snap.sid = s.socket_sid;
    snap.user = s.user;
    snap.tenant = s.tenant;
    if (s.phase == Phase::Resuming) snap.projects = s.resume_projects;
    else snap.projects.assign(s.projects.begin(), s.projects.end());
    snap.base = s.base;
    snap.detached_at_ms = at_ms;
    return snap;
}

// Keeps a dropped session resumable for the window.
void SocketIoServer::Impl::detach(Session& s) {
    if (!recovery() || s.pid.empty() || (s.phase != Phase::Connected && s.phase != Phase::Resuming)) return;
    by_pid.erase(s.pid);
    if (store) {
        store->save(snapshot(s, unix_now_ms()), options.recovery_window.count());
        s.pid.clear();
        return;
    }
    const std::size_t evicted = detached.add(snapshot(s, unix_now_ms()));
    if (evicted) {
        metrics.detached_evicted += evicted;
        log(LogLevel::Info, s, "detached; " + std::to_string(evicted) +
                                   " older resumable session(s) forgotten (limits.max_detached_sessions / "
                                   "max_detached_per_user)");
    }
    s.pid.clear();
    sessions_changed = true;
}

Session* SocketIoServer::Impl::replaced_by_resume(const Session& s, const std::string& pid, const std::string& user,
                                                  const std::string& tenant) {
    auto live = by_pid.find(pid);
    if (live == by_pid.end()) return nullptr;
    Session* old = find(live->second);
    if (!old || old == &s || old->user != user || old->tenant != tenant || old->phase != Phase::Connected) return nullptr;
    return old;
}

bool SocketIoServer::Impl::try_resume(Session& s, const std::string& pid, const std::optional<std::string>& offset_text) {
    if (Session* old = replaced_by_resume(s, pid, s.user, s.tenant)) {
        // The old connection is not closed yet (the client saw the cut first): retire it.
        detach(*old);
        close(*old, close_code::kGoingAway, "replaced by a resumed connection", CloseCause::Replaced);
    }
    const SessionSnapshot* snap = detached.find(pid);
    std::string why;
    std::optional<EventOffset> offset;
    if (!snap) why = "unknown or expired pid";
    else if (snap->user != s.user || snap->tenant != s.tenant) why = "pid of another identity";
    else {
        offset = offset_text ? EventOffset::parse(*offset_text) : std::optional<EventOffset>(snap->base);
        if (!offset) why = "malformed offset";
        else if (!buffer.covers(*offset)) why = "events after offset " + offset->str() + " left the buffer";
    }
    if (!why.empty()) {
        ++metrics.recovery_misses;
        log(LogLevel::Info, s, "fresh session instead of resume: " + why);
        return false;
    }
    SessionSnapshot taken = *detached.take(pid);
    s.phase = Phase::Resuming;
    s.pid = pid;
    s.socket_sid = taken.sid;
    s.base = taken.base;
    s.resume_projects = std::move(taken.projects);
    by_pid[pid] = s.id;

    // Every project room is checked again; the resume completes when the last answer is in.
    const EventOffset from = *offset;
    if (s.resume_projects.empty()) {
        boost::asio::post(io, [this, guard = std::weak_ptr<char>(alive), id = s.id, from] {
            if (guard.lock()) complete_resume(id, from, {}, Recheck::Allowed);
        });
        return true;
    }
    auto r = std::make_shared<RoomRecheck>(io);
    r->id = s.id;
    r->from = from;
    r->request = access_request(s, std::string());
    r->todo.assign(s.resume_projects.begin(), s.resume_projects.end());
    r->give_up_at = std::chrono::steady_clock::now() + options.connect_timeout;
    recheck_rooms(r);
    return true;
}

// Sends the next re-checks, up to the window.
void SocketIoServer::Impl::recheck_rooms(const std::shared_ptr<RoomRecheck>& r) {
    Session* s = find(r->id);
    if (!s || s->closing || s->phase != Phase::Resuming) return;  // on_close kept it resumable
    while (!r->denied && r->in_flight < r->window && !r->todo.empty()) {
        AccessRequest request = r->request;
        request.project = std::move(r->todo.front());
        r->todo.pop_front();
        ++r->in_flight;
        std::string project = request.project;
        access.check(std::move(request), [this, guard = std::weak_ptr<char>(alive), r, project](Access answer) {
            if (guard.lock()) on_recheck(r, project, answer);
        });
    }
}

void SocketIoServer::Impl::on_recheck(const std::shared_ptr<RoomRecheck>& r, const std::string& project,
                                      Access answer) {
    --r->in_flight;
    Session* s = find(r->id);
    if (!s || s->closing || s->phase != Phase::Resuming) return;
    switch (answer) {
    case Access::Allowed:
        r->allowed.push_back(project);
        r->backoff = kRecheckRetryFirst;
        break;
    case Access::Denied: r->denied = true; break;
    case Access::Busy:
        // The user's check queue is full (its other connections, other resumes): ask again,
        // with no more in flight than it took.
        r->todo.push_front(project);
        r->window = std::max<std::size_t>(1, r->in_flight);
        break;
    }
    if (r->in_flight > 0) {
        if (answer != Access::Busy) recheck_rooms(r);
        return;
    }
    if (r->denied) return complete_resume(r->id, r->from, {}, Recheck::Denied);
    if (r->todo.empty()) return complete_resume(r->id, r->from, std::move(r->allowed), Recheck::Allowed);
    if (answer != Access::Busy) return recheck_rooms(r);
    // Nothing of ours in flight and still busy: the queue is someone else's; wait a little.
    if (std::chrono::steady_clock::now() + r->backoff >= r->give_up_at)
        return complete_resume(r->id, r->from, {}, Recheck::Busy);
    r->retry.expires_after(r->backoff);
    r->backoff = std::min(r->backoff * 2, kRecheckRetryMax);
    r->retry.async_wait([this, guard = std::weak_ptr<char>(alive), r](const boost::system::error_code& ec) {
        if (!ec && guard.lock()) recheck_rooms(r);
    });
}

void SocketIoServer::Impl::complete_resume(SessionId id, const EventOffset& offset, std::vector<std::string> allowed,
                                           Recheck recheck) {
    Session* s = find(id);
    if (!s || s->closing || s->phase != Phase::Resuming) return;  // on_close kept it resumable
    if (replaying) {
        // The buffer is still being rebuilt up to what the previous process sent: later.
        deferred_resumes.push_back(DeferredResume{id, offset, std::move(allowed), recheck});
        return;
    }
    if (recheck != Recheck::Allowed || !buffer.covers(offset)) {
        // A room did not pass its check again (or could not be checked in time), or the
        // window passed meanwhile: a fresh session, so the client rejoins (and learns about
        // the room) and refetches.
        ++metrics.recovery_misses;
        const std::string why = recheck == Recheck::Denied ? "a project room did not pass its access check again"
                                : recheck == Recheck::Busy
                                    ? "its project rooms could not be checked again in time (access checks busy)"
                                    : "events after offset " + offset.str() + " left the buffer";
        log(LogLevel::Info, *s, "fresh session instead of resume: " + why);
        by_pid.erase(s->pid);
        s->pid.clear();
        s->resume_projects.clear();
        return start_session(*s);
    }
    for (const std::string& project : allowed) {
        s->projects.insert(project);
        rooms.join(s->id, "project:" + project);
    }
    s->resume_projects.clear();
    ++metrics.recoveries;
    enter_connected(*s);
    changed(*s);
    // The CONNECT reply first, then the missed events, paced by the transport: a cut in the
    // middle leaves the client's offset at the last event it emitted, so nothing is skipped.
    send_packet(*s, encode_connect(s->socket_sid, s->pid));
    log(LogLevel::Info, *s, "resumed session " + s->socket_sid + " from " + offset.str() + " with " +
                                std::to_string(s->projects.size()) + " project rooms");
    start_catch_up(*s, offset);
}

// Once a second: drop what fell out of the window, close catching-up clients that fell out
// of the buffer, refresh the gauges.
void SocketIoServer::Impl::schedule_sweep() {
    if (!recovery()) return;
    sweep_timer.expires_after(std::chrono::seconds(1));
    sweep_timer.async_wait([this, guard = std::weak_ptr<char>(alive)](const boost::system::error_code& ec) {
        if (ec || !guard.lock()) return;
        const std::int64_t now = unix_now_ms();
        buffer.expire(now);
        if (detached.expire(now, options.recovery_window.count())) sessions_changed = true;
        refresh_store();
        check_catching_up();
        update_recovery_metrics();
        schedule_sweep();
    });
}

void SocketIoServer::Impl::update_recovery_metrics() {
    metrics.recovery_buffer_events = buffer.size();
    metrics.recovery_buffer_bytes = buffer.bytes();
    metrics.recovery_buffer_evicted = buffer.evicted();
    metrics.detached_sessions = detached.size();
}

// ---- the public interface ------------------------------------------------------------------

std::vector<SessionSnapshot> SocketIoServer::snapshot_sessions() const {
    std::vector<SessionSnapshot> out = impl_->detached.all();
    const std::int64_t now = unix_now_ms();
    for (const auto& [pid, id] : impl_->by_pid)
        if (const Session* s = impl_->find(id)) out.push_back(impl_->snapshot(*s, now));
    return out;
}

void SocketIoServer::restore_sessions(std::vector<SessionSnapshot> saved) {
    for (SessionSnapshot& s : saved)
        if (!s.pid.empty()) impl_->detached.add(std::move(s));
    impl_->update_recovery_metrics();
}

void SocketIoServer::set_recovery_floor(Lsn lsn, std::uint64_t next_xid) {
    const EventOffset floor{lsn, 0xFFFFFFFFu};
    impl_->buffer.set_floor(floor);
    // Nothing committed before the floor is here; it all had xids below the next xid now.
    impl_->buffer.raise_xid_horizon(next_xid ? next_xid : std::numeric_limits<std::uint64_t>::max());
    // Sessions that start now have seen nothing before the floor.
    if (impl_->newest < floor) impl_->newest = floor;
}

void SocketIoServer::set_replaying(bool replaying) {
    impl_->replaying = replaying;
    if (replaying) return;
    auto waiting = std::move(impl_->deferred_resumes);
    impl_->deferred_resumes.clear();
    for (auto& r : waiting) impl_->complete_resume(r.id, r.offset, std::move(r.allowed), r.recheck);
}

bool SocketIoServer::take_sessions_changed() { return std::exchange(impl_->sessions_changed, false); }

}  // namespace walcast
