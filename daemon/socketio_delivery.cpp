// Delivery: each event is serialized once, enters the recovery buffer, and is queued to the
// live members of its rooms; what is queued is written per client in one run, after the
// turn, a chunk of clients at a time. A client whose output passes max_send_buffer stops being fed live and catches
// up from the recovery buffer instead, one chunk each time its transport drains, so a slow
// reader costs a cursor, not a copy of what it has not read. One that falls out of the
// buffer, or any slow one when recovery is off, is closed with 4008.
#include <sched.h>

#include <boost/asio/post.hpp>

#include "daemon/socketio_session.hpp"

namespace walcast {

namespace {

// A catching-up client gets its next chunk once its transport holds less than this...
constexpr std::size_t kCatchUpLowWater = 64 << 10;
// ...and a chunk is at most this many bytes of packets, from at most this many events
// scanned, so one pull never holds the loop long whatever the client's rooms.
constexpr std::size_t kCatchUpChunk = 256 << 10;
constexpr std::size_t kCatchUpScan = 20000;

bool has_prefix(const std::string& s, std::string_view prefix) { return s.compare(0, prefix.size(), prefix) == 0; }

// Whether `s` is in `room` ("user:u1", "tenant:acme", "project:p1") by its own state, in
// constant time (the room index answers in time linear in the client's rooms).
bool member(const Session& s, const std::string& room) {
    if (has_prefix(room, "project:")) return s.projects.count(room.substr(8)) > 0;
    if (has_prefix(room, "user:")) return room.compare(5, std::string::npos, s.user) == 0;
    if (has_prefix(room, "tenant:")) return room.compare(7, std::string::npos, s.tenant) == 0;
    return false;
}

}  // namespace

// Queues one event for each recipient the room index yields; the packet joins the batch at
// the first recipient, so an event nobody listens to costs nothing there.
struct FanOut : RecipientSink {
    SocketIoServer::Impl& impl;
    const Packet& packet;
    const Event& event;
    EventOffset offset;
    std::uint64_t xid;
    std::uint32_t index = ~std::uint32_t{0};
    FanOut(SocketIoServer::Impl& i, const Packet& p, const Event& e, EventOffset o, std::uint64_t x)
        : impl(i), packet(p), event(e), offset(o), xid(x) {}
    void deliver(SessionId id) override {
        Session* s = impl.find(id);
        if (!s || s->closing || s->phase != Phase::Connected || s->catching_up) return;
        if (!s->filters.empty() && !impl.passes_filters(*s, event.rooms, xid)) return;
        if (index == ~std::uint32_t{0}) index = impl.batch.add(packet);
        impl.enqueue(*s, index, offset);
    }
};

void SocketIoServer::Impl::publish(const std::vector<Event>& events, bool deliver_now) {
    for (const Event& event : events) {
        const EventOffset offset{event.end_lsn, event.index};
        const std::uint64_t xid = full_xid(static_cast<std::uint32_t>(event.xid), xid_reference);
        if (xid > xid_reference) xid_reference = xid;
        // With recovery on, every event carries its offset as its last argument.
        auto text = std::make_shared<std::string>();
        text->reserve(event.name.size() + event.payload.size() + 32);
        append_event(*text, event.name, event.payload, recovery() ? offset.str() : std::string());
        publish_packet(event, offset, xid, std::move(text), recovery(), deliver_now);
    }
    if (recovery()) update_recovery_metrics();
}

// One event's packet: into the recovery buffer (when `buffered`), then to the live members
// of its rooms; an event to no room goes to every client.
void SocketIoServer::Impl::publish_packet(const Event& event, const EventOffset& offset, std::uint64_t xid,
                                          Packet packet, bool buffered, bool deliver_now) {
    if (newest < offset) newest = offset;
    if (buffered) {
        BufferedEvent b;
        b.offset = offset;
        b.rooms = event.rooms;
        b.frame = packet;
        b.xid = xid;
        b.bytes = packet->size() + 64;  // the packet plus what keeping it costs
        for (const auto& r : event.rooms) b.bytes += r.size();
        buffer.push(std::move(b), recovery() ? unix_now_ms() : 0);
    }
    if (!deliver_now || reading_ahead) return;
    FanOut fan_out(*this, packet, event, offset, xid);
    if (event.rooms.empty()) {
        std::vector<SessionId> everyone;
        engine.for_each([&](EngineSocket& s) { everyone.push_back(s.id); });
        for (SessionId id : everyone) fan_out.deliver(id);
    } else {
        rooms.for_each_recipient(event.rooms, fan_out);
    }
    if (batch.bytes() >= Batch::kMaxBytes) flush(true);
}

void SocketIoServer::Impl::enqueue(Session& s, std::uint32_t packet, const EventOffset& offset) {
    if (!s.in_batch) {
        s.in_batch = true;
        recipients.push_back(&s);
    }
    s.queued.push_back(packet);
    s.cursor = offset;
    post_flush();
}

void SocketIoServer::Impl::post_flush() {
    if (flush_posted) return;
    flush_posted = true;
    boost::asio::post(io, [this, guard = std::weak_ptr<char>(alive)] {
        if (guard.lock()) flush(false);
    });
}

// Writes what was queued, kFlushChunk sessions a turn unless `all`: between turns the loop
// reads the replication stream, so a transaction that arrives while a large fan-out is being
// written is routed at once and joins the same write for every client not written yet.
void SocketIoServer::Impl::flush(bool all) {
    flush_posted = false;
    std::size_t written = 0;
    while (flush_next < recipients.size()) {
        if (!all && written == kFlushChunk) {
            // After a long run of writes, let a thread woken meanwhile on this core (the
            // walsender with the next transaction) run now rather than at the end of this
            // one's time slice. Not sooner: a short fan-out is better finished first.
            if ((written_since_yield += written) >= kYieldAfter) {
                written_since_yield = 0;
                sched_yield();
            }
            return post_flush();
        }
        Session* s = recipients[flush_next++];
        if (!s) continue;
        s->in_batch = false;
        if (s->closing) {
            s->queued.clear();
        } else {
            send_queued(*s);
            ++written;
        }
    }
    recipients.clear();
    flush_next = 0;
    written_since_yield = 0;
    batch.clear();
}

// Hands the session what this turn queued for it, in one run.
void SocketIoServer::Impl::send_queued(Session& s) {
    if (s.queued.empty()) return;
    const EventRun& run = batch.run(s.queued);
    const std::size_t n = s.queued.size();
    s.queued.clear();
    engine.send_events(s, run);
    metrics.deliveries += n;
    check_backlog(s);
}

// Packets that are not events (CONNECT replies, acks) go out at once, after whatever this
// turn already queued for the session.
void SocketIoServer::Impl::send_packet(Session& s, std::string_view packet) {
    if (s.closing) return;
    send_queued(s);
    if (s.closing) return;
    engine.send(s, packet);
    check_backlog(s);
}

void SocketIoServer::Impl::check_backlog(Session& s) {
    const std::size_t queued = engine.buffered(s);
    if (queued <= options.max_send_buffer || s.catching_up || s.closing) return;
    if (recovery() && s.phase == Phase::Connected) {
        ++metrics.catch_ups;
        log(LogLevel::Info, s,
            "reads slower than events arrive (" + std::to_string(queued) + " bytes queued): catching up from the buffer");
        return start_catch_up(s, s.cursor);
    }
    ++metrics.slow_consumer_closes;
    log(LogLevel::Warning, s, "closed: slow consumer (4008), " + std::to_string(queued) + " bytes queued");
    close(s, close_code::kSlowConsumer, "slow consumer", CloseCause::SlowConsumer);
}

void SocketIoServer::Impl::start_catch_up(Session& s, const EventOffset& from) {
    s.catching_up = true;
    s.cursor = from;
    catching_up.insert(s.id);
    metrics.catching_up = catching_up.size();
    pull(s);
}

void SocketIoServer::Impl::schedule_pull(Session& s) {
    if (s.pull_posted) return;
    s.pull_posted = true;
    boost::asio::post(io, [this, guard = std::weak_ptr<char>(alive), id = s.id] {
        if (!guard.lock()) return;
        if (Session* s = find(id)) {
            s->pull_posted = false;
            pull(*s);
        }
    });
}

// Hands a catching-up client its next chunk from the buffer, if its transport has room.
void SocketIoServer::Impl::pull(Session& s) {
    if (!s.catching_up || s.closing || reading_ahead) return;
    if (!buffer.covers(s.cursor)) {
        // Events it has not read left the buffer: it cannot get them all. Its next resume
        // presents an offset the buffer no longer covers, so it starts afresh (recovered:
        // false) and refetches; nothing is skipped silently.
        ++metrics.slow_consumer_closes;
        log(LogLevel::Warning, s, "closed: slow consumer (4008), fell behind the recovery buffer at " + s.cursor.str());
        return close(s, close_code::kSlowConsumer, "slow consumer", CloseCause::SlowConsumer);
    }
    if (engine.buffered(s) >= kCatchUpLowWater) return;  // on_drain pulls again
    EventRun run;
    std::size_t i = buffer.index_after(s.cursor);
    for (std::size_t scanned = 0; i < buffer.size() && run.bytes() < kCatchUpChunk && scanned < kCatchUpScan;
         ++i, ++scanned) {
        const BufferedEvent& e = buffer.at(i);
        s.cursor = e.offset;
        if (!s.filters.empty() && !passes_filters(s, e.rooms, e.xid)) continue;
        if (e.rooms.empty()) run.append(e.frame);  // to every client
        for (const std::string& room : e.rooms)
            if (member(s, room)) {
                run.append(e.frame);
                break;
            }
    }
    const std::size_t n = run.packets().size();
    if (n) {
        engine.send_events(s, run);
        metrics.deliveries += n;
        metrics.recovery_replayed += n;
    }
    if (i == buffer.size()) {
        // Everything published so far is handed over: live from the next event on.
        s.catching_up = false;
        catching_up.erase(s.id);
        metrics.catching_up = catching_up.size();
        return;
    }
    if (engine.buffered(s) < kCatchUpLowWater) schedule_pull(s);  // the socket took it all: more next turn
}

void SocketIoServer::Impl::on_drain(EngineSocket& socket) {
    Session& s = static_cast<Session&>(socket);
    if (s.catching_up) pull(s);
}

// Every second: catching-up clients whose cursor left the buffer (also those that never
// drain) are closed, and any whose transport has room is pulled, so a drain notice that
// never came cannot leave a client waiting for events that are there.
void SocketIoServer::Impl::check_catching_up() {
    std::vector<SessionId> ids(catching_up.begin(), catching_up.end());
    for (SessionId id : ids) {
        Session* s = find(id);
        if (!s) catching_up.erase(id);
        else if (!buffer.covers(s->cursor) || engine.buffered(*s) < kCatchUpLowWater) pull(*s);
    }
    metrics.catching_up = catching_up.size();
}

// While the daemon reads a backlog, events only enter the buffer: writing each one to every
// client would take the CPU the walsender needs to send the rest (on a shared core, most of
// it). Clients connected by now have had every event up to `newest`; those that connect or
// resume meanwhile start from where they stand. When the backlog is read, each catches up
// from there at its own pace, or, if its events have left the buffer, is closed (4008) and
// resumes with recovered: false.
void SocketIoServer::Impl::set_reading_ahead(bool on) {
    if (!recovery() || on == reading_ahead) return;
    std::vector<SessionId> ids;
    engine.for_each([&](EngineSocket& s) { ids.push_back(s.id); });
    if (on) {
        flush(true);
        for (SessionId id : ids)
            if (Session* s = find(id); s && s->phase == Phase::Connected && !s->catching_up) s->cursor = newest;
        reading_ahead = true;
        return;
    }
    reading_ahead = false;
    for (SessionId id : ids) {
        Session* s = find(id);
        if (!s || s->closing || s->phase != Phase::Connected) continue;
        if (s->catching_up) pull(*s);
        else start_catch_up(*s, s->cursor);
    }
}

void SocketIoServer::set_reading_ahead(bool on) { impl_->set_reading_ahead(on); }

}  // namespace walcast
