// SocketIoServer: the Engine.IO v4 (WebSocket transport only) / Socket.IO v5 server on
// websocketpp, plus GET /healthz and /metrics on the same listener (SPEC §6).
// Everything runs on the one io_context thread that owns it; no method may be called from
// another thread. Routing hands it whole transactions; it serializes each event once and
// queues the same bytes to every member of the event's rooms.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "daemon/metrics.hpp"
#include "routing/router.hpp"

namespace walcast {

struct ServerOptions {
    std::string host = "127.0.0.1";
    std::uint16_t port = 8787;                  // 0: pick a free port (tests)
    std::string jwt_secret;                     // HS256 key
    std::string tenant_claim = "tenantId";
    std::string project_access = "query";       // "query" or "token" (claim "projects")
    std::size_t max_send_buffer = 1 << 20;      // bytes queued to one client; over -> 4008
    std::size_t max_frame = 64 << 10;           // incoming frame; over -> 1009
    std::size_t max_rooms_per_client = 256;     // project rooms joined; over -> join refused
    std::size_t max_connections = 0;            // WebSocket connections at once; over -> 503; 0: no cap
    std::size_t max_sockets = 0;                // accepted sockets of any kind; over -> closed at once; 0: no cap
    std::chrono::milliseconds connect_timeout{10000};  // no Socket.IO CONNECT -> close
    std::chrono::milliseconds ping_interval{25000};
    std::chrono::milliseconds ping_timeout{20000};
    std::string static_dir;                     // files served at GET / (demo page); empty: none
    // Connection-state recovery (socket.io-client >= 4.6): a client that reconnects within
    // the window gets the events it missed. 0: off (no pid, no offsets).
    std::chrono::milliseconds recovery_window{120000};
    std::size_t recovery_max_bytes = std::size_t(64) << 20;
};

// What survives a restart of a client session: enough to resume it within the window.
struct SavedSession {
    std::string pid;  // private id the client presents to resume
    std::string sid;  // Socket.IO sid, kept on resume
    std::string user, tenant;
    std::vector<std::string> projects;  // project rooms joined (access is checked again)
    std::string base;                   // offset of the newest event when it (re)connected
    std::int64_t detached_at_ms = 0;    // wall clock; sessions connected at save time get now
};

// Decides join-project. Asynchronous: `done` is called later on the loop thread, once.
class ProjectAccess {
public:
    virtual ~ProjectAccess() = default;
    virtual void check(const std::string& project_id, const std::string& tenant_id, const std::string& user_id,
                       std::function<void(bool allowed)> done) = 0;
};

class SocketIoServer {
public:
    // `healthy` answers /healthz (true: 200); `metrics` is rendered for /metrics.
    SocketIoServer(boost::asio::io_context& io, ServerOptions options, ProjectAccess* query_access,
                   Metrics& metrics, std::function<bool()> healthy);
    ~SocketIoServer();

    // Binds and starts accepting. Errors (address in use, ...) are returned, not thrown.
    std::error_code listen();
    std::uint16_t port() const;  // the bound port

    // Publishes one committed transaction's events, in order. With deliver = false they
    // only enter the recovery buffer: a restarted daemon rebuilding it from the WAL must not
    // send connected clients what the previous process already sent.
    void publish(const std::vector<Event>& events, bool deliver = true);

    // Recovery state for the durable state file: connected and recently detached sessions.
    std::vector<SavedSession> saved_sessions() const;
    void restore_sessions(std::vector<SavedSession> sessions);
    // Changes since the last call (a session connected, left, joined or left a room).
    bool take_sessions_changed();
    // After a restart: offsets at or before `lsn` (the slot's confirmed position, where the
    // rebuilt buffer starts) cannot be resumed.
    void set_recovery_floor(Lsn lsn);
    // While true, resumes wait: the buffer is still being rebuilt from the WAL up to what the
    // previous process had dispatched, and a resume now would miss the rest.
    void set_replaying(bool replaying);

    // Stops accepting and closes every client with 1001 (going away).
    void shutdown();

    // Socket.IO sessions that completed CONNECT (the walcast_clients gauge); connections
    // still before or refused at CONNECT are not counted.
    std::size_t clients() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace walcast
