// EngineIoServer: the Engine.IO v4 layer. It owns sessions (sid), the open handshake, the
// heartbeat, both transports (HTTP long-polling and WebSocket) and the upgrade from one to
// the other, CORS for polling, and each peer's budget on what it may send. The Socket.IO
// layer above sees one EngineSocket per session: packets in, packets out, drain, close.
// Loop thread only.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "daemon/listener.hpp"
#include "daemon/log.hpp"
#include "daemon/metrics.hpp"
#include "daemon/polling_transport.hpp"
#include "daemon/session_timer.hpp"
#include "wire/inbound_budget.hpp"

namespace walcast {

using SessionId = std::uint64_t;

// Why a session ends; the Socket.IO layer adds its own causes.
enum class CloseCause : std::uint8_t {
    None,            // the peer closed its transport, or the network did
    // The peer sent an Engine.IO close packet. Not a goodbye: socket.io-client sends one when
    // its polling transport fails, and then reconnects (the reference server counts it among
    // the disconnects connection-state recovery resumes).
    PeerClosed,
    ClientLeft,      // Socket.IO DISCONNECT: the client is not coming back
    ProtocolError,
    Flood,           // sent more than its budget
    SlowConsumer,
    PingTimeout,
    ConnectTimeout,
    TokenExpired,
    Unauthorized,
    Replaced,        // a resumed connection took the session over
    Resync,          // the stream lost events: the client must reconnect and refetch
    Shutdown,
};

struct EngineOptions {
    std::chrono::milliseconds ping_interval{25000};
    std::chrono::milliseconds ping_timeout{20000};
    std::size_t max_payload = 1000000;   // a POST body or a WebSocket message, after CONNECT
    bool polling = true;
    bool websocket = true;
    std::vector<std::string> cors_origins;  // cross-origin polling allowed from these
    std::size_t max_sessions = 0;           // 0: no cap
    // A probing WebSocket that has not sent `5` by then is closed; the session stays on polling.
    std::chrono::milliseconds upgrade_timeout{10000};
};

// One Engine.IO session. The Socket.IO layer derives its session from it.
class EngineSocket {
public:
    explicit EngineSocket(boost::asio::io_context& io) : heartbeat_(io) {}
    virtual ~EngineSocket() = default;

    SessionId id = 0;
    std::string sid;
    std::string remote;
    bool closing = false;                // nothing more is sent; the close is under way
    CloseCause cause = CloseCause::None;

    TransportKind transport_kind() const { return transport_ ? transport_->kind() : TransportKind::Polling; }
    Transport* transport() const { return transport_; }

private:
    friend class EngineIoServer;
    Transport* transport_ = nullptr;              // the one packets go to: polling_ or link_
    std::unique_ptr<PollingTransport> polling_;
    std::shared_ptr<WebSocketLink> link_;         // the WebSocket, once open (probing or current)
    bool upgrading_ = false;                      // link_ answered the probe; waiting for `5`
    bool upgraded_ = false;                       // link_ is the transport; polling is over
    bool connected_ = false;                      // set_connected: max_payload per message
    bool awaiting_pong_ = false;
    InboundBudget budget_;
    InboundBudget control_budget_{kBudgetControlFrames};  // WebSocket pings and pongs
    SessionTimer heartbeat_;               // next ping, then the pong deadline
    std::uint64_t heartbeat_gen_ = 0;      // ignores a wait that completed after being replaced
    // While probing: the deadline for `5`, and (once upgrading) the turn-over of a held poll.
    // Made at the first probe (most sessions never probe: they open on WebSocket).
    std::unique_ptr<boost::asio::steady_timer> upgrade_timer_;
    std::uint64_t upgrade_gen_ = 0;
    std::chrono::steady_clock::time_point probe_deadline_{};
};

class EngineHandler {
public:
    virtual ~EngineHandler() = default;
    virtual std::unique_ptr<EngineSocket> make_socket() = 0;
    // The open packet was sent: the session exists.
    virtual void on_open(EngineSocket& socket) = 0;
    // The data of one Engine.IO message packet (a Socket.IO packet, e.g. `0{...}`).
    virtual void on_message(EngineSocket& socket, std::string_view data) = 0;
    // The transport took what was queued; there may be room to send more.
    virtual void on_drain(EngineSocket& socket) = 0;
    // The session ended (socket.cause says why); it is destroyed after this call.
    virtual void on_close(EngineSocket& socket, const LinkClosed& closed) = 0;
    // Any HTTP request outside /socket.io/.
    virtual void on_http(const std::shared_ptr<HttpExchange>& exchange) = 0;
};

class EngineIoServer : public ListenerHandler {
public:
    EngineIoServer(boost::asio::io_context& io, EngineOptions options, EngineHandler& handler, Metrics& metrics);
    ~EngineIoServer() override;

    // Queues a whole Engine.IO packet ("2", "40{...}") on the session's transport.
    void send(EngineSocket& socket, std::string_view packet);
    void send_events(EngineSocket& socket, const EventRun& run);
    std::size_t buffered(const EngineSocket& socket) const;
    // Ends the session after what is queued (a WebSocket gets `code`); on_close follows.
    void close(EngineSocket& socket, std::uint16_t code, const std::string& reason, CloseCause cause);
    // CONNECT accepted: the peer gets the connected budget and max_payload per message.
    void set_connected(EngineSocket& socket);
    // Stops accepting new sessions (upgrades and handshakes answer 503).
    void set_shutting_down() { shutting_down_ = true; }

    EngineSocket* find(SessionId id);
    std::size_t sessions() const { return sessions_.size(); }
    template <class F>
    void for_each(F&& f) {
        for (auto& [id, s] : sessions_) f(*s);
    }

    // ListenerHandler.
    void on_http(const std::shared_ptr<HttpExchange>& exchange) override;
    std::unique_ptr<Refusal> on_upgrade(const HttpExchange& request) override;
    void on_ws_open(const std::shared_ptr<WebSocketLink>& link) override;
    void on_ws_message(WebSocketLink& link, std::string_view payload, bool binary) override;
    bool on_ws_ping(WebSocketLink& link, std::size_t bytes) override;
    void on_ws_pong(WebSocketLink& link, std::size_t bytes) override;
    void on_ws_drain(WebSocketLink& link) override;
    void on_ws_close(WebSocketLink& link, const LinkClosed& closed) override;
    void on_http_too_large(const HttpExchange& request) override;

    // Logs a line about one client, at most 50 a second (a flood of bad clients must not
    // flood the journal).
    void log_client(LogLevel level, const EngineSocket& socket, const std::string& line);

private:
    boost::asio::io_context& io_;
    EngineOptions options_;
    EngineHandler& handler_;
    Metrics& metrics_;
    std::unordered_map<SessionId, std::unique_ptr<EngineSocket>> sessions_;
    // Keys view each session's own sid, which is set once, before the session is listed, and
    // outlives its entry (a copy of the key cost a heap block per session).
    std::unordered_map<std::string_view, SessionId> by_sid_;
    SessionId next_id_ = 0;
    bool shutting_down_ = false;
    bool at_capacity_ = false;
    std::shared_ptr<char> alive_ = std::make_shared<char>();
    std::chrono::steady_clock::time_point log_window_{};
    unsigned log_lines_ = 0, log_suppressed_ = 0;

    EngineSocket* open_session(const std::string& remote);
    void handle_polling(const std::shared_ptr<HttpExchange>& exchange);
    void handle_packet(EngineSocket& socket, std::string_view packet, bool from_probe);
    bool charge(EngineSocket& socket, std::size_t bytes);
    bool charge_control(EngineSocket& socket, std::size_t bytes);
    void flood(EngineSocket& socket, const BudgetLimits& limits);
    void finish_upgrade(EngineSocket& socket);
    void drop_probe(EngineSocket& socket, std::uint16_t code, const std::string& reason);
    void arm_upgrade_timer(EngineSocket& socket, std::chrono::milliseconds after);
    void on_upgrade_timer(SessionId id, std::uint64_t gen);
    void schedule_ping(EngineSocket& socket);
    void on_ping_due(SessionId id, std::uint64_t gen);
    void end(EngineSocket& socket, const LinkClosed& closed);
    std::string open_packet(const EngineSocket& socket) const;
    HttpHeaders cors_headers(const HttpExchange& exchange, bool& allowed) const;
    void note_refusal(const char* why);
};

}  // namespace walcast
