// The Socket.IO layer's inside, shared by its three files: socketio_server.cpp (CONNECT,
// auth, joins, close), socketio_delivery.cpp (publish, fan-out, the per-client feed and its
// catch-up from the recovery buffer) and socketio_resume.cpp (detached sessions, resume).
// Loop thread only.
#pragma once

#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <optional>
#include <set>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "daemon/engineio_server.hpp"
#include "routing/fan_out.hpp"
#include "daemon/http_endpoints.hpp"
#include "daemon/listener.hpp"
#include "daemon/socketio_server.hpp"
#include "routing/recovery_buffer.hpp"
#include "routing/room_index.hpp"
#include "routing/snapshot.hpp"
#include "wire/socketio_packet.hpp"

namespace walcast {

enum class Phase : std::uint8_t {
    AwaitingConnect,  // Engine.IO open sent; waiting for Socket.IO CONNECT
    Resuming,         // CONNECT with a pid accepted; its project rooms are being checked again
    Connected,        // in rooms, receives events
    Refused,          // CONNECT refused: `44` sent, closing after a grace period
};

// How the access re-check of a resuming session's project rooms ended.
enum class Recheck : std::uint8_t {
    Allowed,  // every room passed
    Denied,   // a room did not pass: the client must rejoin and learn which
    Busy,     // the checks could not all run in time (the user's check queue stayed full)
};

struct RoomRecheck;  // socketio_resume.cpp

// The project rooms a session joined (at most max_rooms_per_client, usually a handful), as a
// sorted list: a hash set took about 200 bytes a session even with one element. The part of
// std::unordered_set's interface the server uses; lookups are binary searches.
class ProjectSet {
public:
    using const_iterator = std::vector<std::string>::const_iterator;

    std::size_t count(std::string_view project) const {
        const auto it = lower_bound(project);
        return it != items_.end() && *it == project;
    }
    void insert(const std::string& project) {
        const auto it = lower_bound(project);
        if (it == items_.end() || *it != project) items_.insert(it, project);
    }
    std::size_t erase(std::string_view project) {
        const auto it = lower_bound(project);
        if (it == items_.end() || *it != project) return 0;
        items_.erase(it);
        return 1;
    }
    std::size_t size() const { return items_.size(); }
    bool empty() const { return items_.empty(); }
    const_iterator begin() const { return items_.begin(); }
    const_iterator end() const { return items_.end(); }

private:
    std::vector<std::string> items_;

    const_iterator lower_bound(std::string_view project) const {
        return std::lower_bound(items_.begin(), items_.end(), project,
                                [](const std::string& item, std::string_view p) { return item < p; });
    }
};

// One client: its Engine.IO session plus everything Socket.IO keeps for it.
struct Session : EngineSocket {
    explicit Session(boost::asio::io_context& io) : EngineSocket(io), deadline(io) {}

    Phase phase = Phase::AwaitingConnect;
    bool counted = false;    // in the per-user connection count
    std::string socket_sid;  // Socket.IO sid, sent in the CONNECT reply
    std::string user, tenant;
    std::int64_t token_expires_ms = 0;  // the token's `exp`, Unix milliseconds
    std::shared_ptr<const std::unordered_set<std::string>> token_projects;
    ProjectSet projects;                                     // project rooms joined
    std::unordered_map<std::string, std::uint64_t> pending;  // project -> ticket of its latest join check
    std::size_t checks_in_flight = 0;
    std::uint64_t next_ticket = 0;

    // Recovery.
    std::string pid;   // private id of this session (empty when recovery is off)
    EventOffset base;  // newest event offset when it (re)connected
    std::vector<std::string> resume_projects;  // Resuming: the rooms being checked again

    // Delivery. Live: this turn's events are queued here and written at its end. Catching
    // up: the client reads from the recovery buffer at its own pace, from `cursor`.
    std::vector<std::uint32_t> queued;  // batch packets of this turn not yet sent to it
    bool in_batch = false;              // listed in the batch's recipients
    bool catching_up = false;
    bool pull_posted = false;
    EventOffset cursor;                 // the last event handed to it (live) or scanned (catching up)

    // Rooms joined with a snapshot: until the stream passes what the snapshot saw, live
    // events of transactions it saw are not sent (the page's read has them).
    struct SnapshotFilter {
        std::string room;
        Snapshot snapshot;
    };
    std::vector<SnapshotFilter> filters;

    SessionTimer deadline;  // CONNECT timeout, the close after a refusal, or token expiry
    std::uint64_t deadline_gen = 0;
};

struct SocketIoServer::Impl : EngineHandler {
    Impl(boost::asio::io_context& io, ServerOptions options, ProjectAccess& access, Metrics& metrics,
         std::function<bool()> healthy, std::function<std::string()> health_detail);
    ~Impl() override;

    boost::asio::io_context& io;
    ServerOptions options;
    ProjectAccess& access;
    Metrics& metrics;
    HttpEndpoints endpoints;
    EngineIoServer engine;
    Listener listener;
    std::unique_ptr<EndpointsOnly> admin_handler;
    std::unique_ptr<Listener> admin;

    RoomIndex rooms;
    std::unordered_map<std::string, std::size_t> user_connections;
    std::size_t connected = 0;  // sessions in Phase::Connected
    bool shutting_down = false;

    // Delivery.
    Batch batch;
    std::vector<Session*> recipients;  // sessions with queued packets (null: closed since)
    // Recipients before this one are written. The list is cleared when a flush reaches its
    // end, and at the latest when the batch passes Batch::kMaxBytes (written whole then), so
    // what written entries it keeps is bounded by kFlushChunk per turn until then.
    std::size_t flush_next = 0;
    static constexpr std::size_t kFlushChunk = 64;
    std::size_t written_since_yield = 0;   // sessions written since the loop last yielded
    static constexpr std::size_t kYieldAfter = 256;
    bool flush_posted = false;
    std::set<SessionId> catching_up;   // sessions reading from the buffer
    bool reading_ahead = false;        // a backlog is being read: fan-out waits (recovery on)

    // Connection-state recovery. A session that drops (not one that said goodbye) is kept by
    // pid for the window; a reconnect presenting the pid and the same identity gets the
    // buffered events of its rooms after its offset, under its old sid.
    RecoveryBuffer buffer;
    DetachedSessions detached;
    std::unordered_map<std::string, SessionId> by_pid;  // connected and resuming sessions
    EventOffset newest;                                  // offset of the last event published
    std::uint64_t xid_reference = 0;  // a recent full xid: makes the WAL's 32-bit xids whole
    Lsn stream_position;              // every transaction before this was published
    boost::asio::steady_timer sweep_timer;
    bool sessions_changed = false;
    bool replaying = false;
    struct DeferredResume {
        SessionId id;
        EventOffset offset;
        std::vector<std::string> allowed;
        Recheck recheck;
    };
    std::vector<DeferredResume> deferred_resumes;  // resumes waiting for the rebuild
    SessionStore* store = nullptr;  // cluster mode: sessions live there, not in `detached`
    std::chrono::steady_clock::time_point store_refreshed{};

    // Callbacks from ProjectAccess and timers may outlive the server; they hold this weakly.
    std::shared_ptr<char> alive = std::make_shared<char>();

    bool recovery() const { return options.recovery_window.count() > 0; }
    Session* find(SessionId id) { return static_cast<Session*>(engine.find(id)); }
    void log(LogLevel level, const Session& s, const std::string& line) { engine.log_client(level, s, line); }
    void close(Session& s, std::uint16_t code, const std::string& reason, CloseCause cause);
    void protocol_error(Session& s, const std::string& what, std::uint16_t code = close_code::kProtocol);

    // EngineHandler (socketio_server.cpp).
    std::unique_ptr<EngineSocket> make_socket() override;
    void on_open(EngineSocket& socket) override;
    void on_message(EngineSocket& socket, std::string_view data) override;
    void on_drain(EngineSocket& socket) override;
    void on_close(EngineSocket& socket, const LinkClosed& closed) override;
    void on_http(const std::shared_ptr<HttpExchange>& exchange) override { endpoints.handle(exchange); }

    // CONNECT, events, joins (socketio_server.cpp).
    void on_connect(Session& s, const ClientPacket& p);
    void refuse(Session& s, const std::string& why, const char* message);
    void start_session(Session& s);
    void enter_connected(Session& s);
    void arm_deadline(Session& s, std::chrono::milliseconds after);
    void on_deadline(SessionId id, std::uint64_t gen);
    void on_event(Session& s, const ClientPacket& p);
    void on_join(Session& s, const ClientPacket& p);
    void on_check_done(SessionId id, const std::string& project, std::uint64_t ticket,
                       const std::optional<std::uint64_t>& ack, Access answer, const std::optional<Snapshot>& snapshot);
    void finish_join(Session& s, const std::string& project, Access answer, const std::optional<std::uint64_t>& ack,
                     const std::optional<Snapshot>& snapshot = std::nullopt);
    void on_leave(Session& s, const ClientPacket& p);

    // Snapshot joins (socketio_snapshot.cpp).
    // Sends `room`'s buffered events of the transactions `snapshot` did not see and keeps
    // the room filtered until the stream passes it. False when the buffer no longer reaches
    // back to the snapshot, or its backlog is too big to send at once: the client reloads.
    bool join_with_snapshot(Session& s, const std::string& room, const Snapshot& snapshot);
    // Whether `s` gets an event of `xid` in `rooms` (its snapshot filters may say no).
    bool passes_filters(Session& s, const std::vector<std::string>& rooms, std::uint64_t xid);
    void reply(Session& s, const std::optional<std::uint64_t>& ack_id, const char* json);
    AccessRequest access_request(const Session& s, const std::string& project) const;

    // Delivery (socketio_delivery.cpp).
    void publish(const std::vector<Event>& events, bool deliver);
    void publish_packet(const Event& event, const EventOffset& offset, std::uint64_t xid, Packet packet, bool buffered,
                        bool deliver_now);
    void enqueue(Session& s, std::uint32_t packet, const EventOffset& offset);
    void flush(bool all);
    void post_flush();
    void send_packet(Session& s, std::string_view packet);  // after what this turn queued for it
    void send_queued(Session& s);
    void check_backlog(Session& s);
    void start_catch_up(Session& s, const EventOffset& from);
    void pull(Session& s);
    void schedule_pull(Session& s);
    void check_catching_up();
    void set_reading_ahead(bool on);

    // Cluster mode (socketio_cluster.cpp).
    // A resume whose pid is not here: the store is asked; true while it answers.
    bool resume_from_store(Session& s, const std::string& pid, const std::optional<std::string>& offset_text,
                           const std::optional<std::string>& auth_snapshot);
    void refresh_store();
    // A CONNECT that does not resume: a fresh session, from `auth_snapshot` when given.
    void connect_fresh(Session& s, const std::optional<std::string>& auth_snapshot);

    // Recovery (socketio_resume.cpp).
    // The live connection a resume by `s` with `pid` takes over (the client saw the cut before
    // the daemon did), or nullptr.
    Session* replaced_by_resume(const Session& s, const std::string& pid, const std::string& user,
                                const std::string& tenant);
    bool try_resume(Session& s, const std::string& pid, const std::optional<std::string>& offset_text);
    void recheck_rooms(const std::shared_ptr<RoomRecheck>& r);
    void on_recheck(const std::shared_ptr<RoomRecheck>& r, const std::string& project, Access answer);
    void complete_resume(SessionId id, const EventOffset& offset, std::vector<std::string> allowed, Recheck recheck);
    void detach(Session& s);
    void changed(Session& s);  // its rooms or identity changed: saved again
    void schedule_sweep();
    void update_recovery_metrics();
    SessionSnapshot snapshot(const Session& s, std::int64_t at_ms) const;
};

// Wall-clock milliseconds (recovery windows survive restarts, so they are not steady).
std::int64_t unix_now_ms();

// Close reasons travel in a close frame: at most 123 bytes, printable ASCII here.
std::string close_reason(std::string_view text);

}  // namespace walcast
