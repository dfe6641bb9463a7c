// Connection-state recovery: a session that drops is kept (bounded) by its private id; a
// reconnect presenting that pid, for the same user and tenant, within the window, whose
// project rooms all pass their access check again, gets its old sid back, the CONNECT
// reply first and then every missed event of its rooms, paced by its transport. Anything
// short of that is a fresh session (recovered: false): the client refetches.
#include <boost/asio/post.hpp>

#include "daemon/random_id.hpp"
#include "daemon/socketio_session.hpp"

namespace walcast {

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

bool SocketIoServer::Impl::try_resume(Session& s, const std::string& pid, const std::optional<std::string>& offset_text) {
    if (auto live = by_pid.find(pid); live != by_pid.end()) {
        // The old connection is not closed yet (the client saw the cut first): retire it.
        Session* old = find(live->second);
        if (old && old != &s && old->user == s.user && old->tenant == s.tenant && old->phase == Phase::Connected) {
            detach(*old);
            close(*old, close_code::kGoingAway, "replaced by a resumed connection", CloseCause::Replaced);
        }
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
    struct Checks {
        std::size_t pending = 0;
        std::vector<std::string> allowed;
        bool all_allowed = true;
    };
    auto checks = std::make_shared<Checks>();
    checks->pending = s.resume_projects.size();
    const EventOffset from = *offset;
    if (checks->pending == 0) {
        boost::asio::post(io, [this, guard = std::weak_ptr<char>(alive), id = s.id, from] {
            if (guard.lock()) complete_resume(id, from, {}, true);
        });
        return true;
    }
    for (const std::string& project : s.resume_projects) {
        access.check(access_request(s, project), [this, guard = std::weak_ptr<char>(alive), id = s.id, from, checks,
                                                  project](Access answer) {
            if (!guard.lock()) return;
            if (answer == Access::Allowed) checks->allowed.push_back(project);
            else checks->all_allowed = false;
            if (--checks->pending == 0) complete_resume(id, from, std::move(checks->allowed), checks->all_allowed);
        });
    }
    return true;
}

void SocketIoServer::Impl::complete_resume(SessionId id, const EventOffset& offset, std::vector<std::string> allowed,
                                           bool all_allowed) {
    Session* s = find(id);
    if (!s || s->closing || s->phase != Phase::Resuming) return;  // on_close kept it resumable
    if (replaying) {
        // The buffer is still being rebuilt up to what the previous process sent: later.
        deferred_resumes.push_back(DeferredResume{id, offset, std::move(allowed), all_allowed});
        return;
    }
    if (!all_allowed || !buffer.covers(offset)) {
        // A room did not pass its check again, or the window passed meanwhile: a fresh
        // session, so the client rejoins (and learns about the room) and refetches.
        ++metrics.recovery_misses;
        log(LogLevel::Info, *s,
            std::string("fresh session instead of resume: ") +
                (all_allowed ? "events after offset " + offset.str() + " left the buffer"
                             : "a project room did not pass its access check again"));
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
    sessions_changed = true;
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

void SocketIoServer::set_recovery_floor(Lsn lsn) {
    const EventOffset floor{lsn, 0xFFFFFFFFu};
    impl_->buffer.set_floor(floor);
    // Sessions that start now have seen nothing before the floor.
    if (impl_->newest < floor) impl_->newest = floor;
}

void SocketIoServer::set_replaying(bool replaying) {
    impl_->replaying = replaying;
    if (replaying) return;
    auto waiting = std::move(impl_->deferred_resumes);
    impl_->deferred_resumes.clear();
    for (auto& r : waiting) impl_->complete_resume(r.id, r.offset, std::move(r.allowed), r.all_allowed);
}

bool SocketIoServer::take_sessions_changed() { return std::exchange(impl_->sessions_changed, false); }

}  // namespace walcast
