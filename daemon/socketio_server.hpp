// SocketIoServer: Socket.IO v5 on "/" over the Engine.IO layer (HTTP long-polling and
// WebSocket): JWT auth, automatic user and tenant rooms, authorized project joins,
// serialize-once fan-out with bounded per-client output, connection-state recovery paced
// by each client's transport, and /healthz and /metrics (on the admin listener when set).
// Everything runs on the one io_context thread that owns it; no method may be called from
// another thread. Routing hands it whole transactions.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "daemon/metrics.hpp"
#include "daemon/project_access.hpp"
#include "routing/detached_sessions.hpp"
#include "routing/router.hpp"
#include "wire/jwt.hpp"

namespace walcast {

struct StreamId;
struct BroadcastEntry;

// Cluster mode: resumable sessions live where every node can take them.
class SessionStore {
public:
    virtual ~SessionStore() = default;
    // Keeps `session` resumable for `ttl_ms` (replacing what its pid had).
    virtual void save(const SessionSnapshot& session, std::int64_t ttl_ms) = 0;
    // The client said goodbye: its session is not resumable anywhere.
    virtual void forget(const std::string& pid) = 0;
    // Takes the session out (one taker wins); nullopt when there is none. `done` runs later
    // on the loop, never inside take().
    virtual void take(const std::string& pid, std::function<void(std::optional<SessionSnapshot>)> done) = 0;
};

class HttpExchange;

struct ServerOptions {
    std::string host = "127.0.0.1";
    std::uint16_t port = 8787;                  // 0: pick a free port (tests)
    std::string admin_host;                     // non-empty: /healthz and /metrics only there
    std::uint16_t admin_port = 0;
    std::string jwt_secret;                     // HS256 key
    JwtPolicy jwt;                              // tenant claim, optional audience and issuer
    // Engine.IO.
    std::chrono::milliseconds ping_interval{25000};
    std::chrono::milliseconds ping_timeout{20000};
    std::size_t max_payload = 1000000;          // a message or POST body after CONNECT; over -> 1009 / 413
    bool polling = true;
    bool websocket = true;
    std::vector<std::string> cors_origins;
    std::chrono::milliseconds connect_timeout{10000};  // no Socket.IO CONNECT -> close
    // Bounds.
    std::size_t max_send_buffer = 1 << 20;      // bytes queued to one client; over -> catch up, or 4008
    std::size_t max_rooms_per_client = 256;     // project rooms joined; over -> join refused
    std::size_t max_connections = 0;            // sessions at once; over -> 503; 0: no cap
    std::size_t max_sockets = 0;                // accepted sockets of any kind; over -> closed at once; 0: no cap
    std::size_t max_connections_per_user = 64;  // over -> CONNECT refused
    std::size_t max_detached_sessions = 10000;
    std::size_t max_detached_per_user = 16;
    std::string static_dir;                     // files served at GET / (demo page); empty: none
    // Makes the public listener's extra GET handler, tried before static files (see
    // HttpEndpoints::extra), from the loop it runs on: the demo's /api/board reads on a
    // worker thread and posts its answer to that loop. Called once, by the constructor; what
    // it returns lives as long as the server. Empty: none.
    std::function<std::function<bool(const std::shared_ptr<HttpExchange>&)>(boost::asio::io_context&)> http_hook;
    // Connection-state recovery (socket.io-client >= 4.6): a client that reconnects within
    // the window gets the events it missed. 0: off (no pid, no offsets).
    std::chrono::milliseconds recovery_window{120000};
    std::size_t recovery_max_bytes = std::size_t(64) << 20;
};

class SocketIoServer {
public:
    // `healthy` answers /healthz (true: 200); `health_detail` adds lines to its body.
    SocketIoServer(boost::asio::io_context& io, ServerOptions options, ProjectAccess& access, Metrics& metrics,
                   std::function<bool()> healthy, std::function<std::string()> health_detail = {});
    ~SocketIoServer();

    // Binds the listener(s) and starts accepting. Errors are returned, not thrown.
    std::error_code listen();
    std::uint16_t port() const;        // the bound port
    std::uint16_t admin_port() const;  // 0 without an admin listener

    // Publishes one committed transaction's events, in order. With deliver = false they
    // only enter the recovery buffer: a restarted daemon rebuilding it from the WAL must not
    // send connected clients what the previous process already sent.
    void publish(const std::vector<Event>& events, bool deliver = true);

    // Cluster mode: one entry of the shared stream, in stream order; its id is its offset.
    // Entries to no room go to every client. With deliver = false it only enters the
    // recovery buffer (the stream's recent past, read at start).
    void publish_stream(const StreamId& id, const BroadcastEntry& entry, bool deliver = true);
    // Cluster mode: sessions are kept in `store` (not in this process) from now on.
    void set_session_store(SessionStore* store);
    // Transactions missing from the buffer had xids below `xid` (snapshot joins check it).
    void raise_xid_horizon(std::uint64_t xid);

    // Recovery state for the durable state file: connected and recently detached sessions.
    std::vector<SessionSnapshot> snapshot_sessions() const;
    void restore_sessions(std::vector<SessionSnapshot> sessions);
    // Changes since the last call (a session connected, left, joined or left a room).
    bool take_sessions_changed();
    // After a restart: offsets at or before `lsn` (the slot's confirmed position, where the
    // rebuilt buffer starts) cannot be resumed; transactions the buffer does not hold had
    // xids below `next_xid` (the server's next xid then; 0: unknown).
    void set_recovery_floor(Lsn lsn, std::uint64_t next_xid = 0);
    // Every transaction before `position` was published (commits and idle keepalives):
    // snapshot joins stop filtering once the stream passes what their snapshot saw.
    void set_stream_position(Lsn position);
    // A recent full xid (the server's next xid when the stream started): the WAL's 32-bit
    // xids are made whole near it.
    void set_xid_reference(std::uint64_t next_xid);
    // While true, resumes wait: the buffer is still being rebuilt from the WAL up to what the
    // previous process had dispatched, and a resume now would miss the rest.
    void set_replaying(bool replaying);
    // While true (the daemon reads a backlog) and recovery is on, events only enter the
    // buffer; when it turns false every client catches up from where it stood.
    void set_reading_ahead(bool on);

    // The stream lost events (a discontinuity): nothing buffered can be resumed any more,
    // and every connected client gets `walcast:resync` {reason, lostAfter, detail} and is
    // closed with 4000, so socket.io-client reconnects with recovered === false and the
    // application refetches.
    void resync(const std::string& reason, Lsn lost_after, const std::string& detail);

    // Stops accepting and closes every client with 1001 (going away).
    void shutdown();

    // Socket.IO sessions that completed CONNECT (the walcast_clients gauge).
    std::size_t clients() const;

    struct Impl;  // daemon/socketio_session.hpp

private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace walcast
