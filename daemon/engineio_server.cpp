// EngineIoServer (see engineio_server.hpp). The flows, as the engine.io-protocol describes
// them: a handshake (a GET without sid, or a WebSocket without sid) creates a session and
// answers the open packet; polling GETs take queued packets and POSTs bring the client's;
// a WebSocket carrying the sid of a polling session probes (`2probe`/`3probe`), the pending
// poll is released with a noop, and `5` moves the session onto the WebSocket.
#include "daemon/engineio_server.hpp"

#include <boost/asio/post.hpp>

#include <algorithm>

#include "daemon/log.hpp"
#include "daemon/random_id.hpp"
#include "wire/engineio.hpp"
#include "wire/socketio_packet.hpp"

namespace walcast {

namespace {

std::int64_t steady_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

// The bodies of refusals outside the reference server's table.
constexpr const char* kNotFound = R"({"code":0,"message":"Not found"})";
constexpr const char* kTooManyConnections = R"({"code":0,"message":"too many connections"})";
constexpr const char* kShuttingDown = R"({"code":0,"message":"shutting down"})";

Refusal refusal(int status, EngineError error) { return Refusal{status, encode_engine_error(error)}; }

void respond_body(HttpExchange& exchange, int status, std::string body, const HttpHeaders& extra = {}) {
    HttpHeaders headers = extra;
    headers.emplace_back("Content-Type", std::string(kEngineErrorContentType));
    exchange.respond(status, headers, std::move(body));
}

void respond_error(HttpExchange& exchange, int status, EngineError error, const HttpHeaders& extra = {}) {
    respond_body(exchange, status, encode_engine_error(error), extra);
}

bool is_engine_path(const std::string& path) { return path == "/socket.io/" || path == "/socket.io"; }

// One POST carries at most this many packets (each still charged to the peer's budget).
constexpr std::size_t kMaxPacketsPerPost = 1000;

// While a session upgrades, a poll held on it is turned over this often (as the reference
// server does), so the client can pause polling; a client that keeps polling instead costs
// at most this many requests a second.
constexpr std::chrono::milliseconds kUpgradeNoopEvery{100};

}  // namespace

EngineIoServer::EngineIoServer(boost::asio::io_context& io, EngineOptions options, EngineHandler& handler,
                               Metrics& metrics)
    : io_(io), options_(std::move(options)), handler_(handler), metrics_(metrics) {}

EngineIoServer::~EngineIoServer() = default;

EngineSocket* EngineIoServer::find(SessionId id) {
    auto it = sessions_.find(id);
    return it == sessions_.end() ? nullptr : it->second.get();
}

void EngineIoServer::log_client(LogLevel lvl, const EngineSocket& socket, const std::string& line) {
    if (!log_enabled(lvl)) return;
    const auto now = std::chrono::steady_clock::now();
    if (now - log_window_ >= std::chrono::seconds(1)) {
        if (log_suppressed_ > 0)
            log_warning("(" + std::to_string(log_suppressed_) + " client log lines suppressed in the last second)");
        log_window_ = now;
        log_lines_ = 0;
        log_suppressed_ = 0;
    }
    if (++log_lines_ > 50) {
        ++log_suppressed_;
        return;
    }
    log_line(lvl, "client " + socket.sid + " (" + socket.remote + ") " + line);
}

// Counts a session refused for a limit; logs once per episode (until one is accepted again).
void EngineIoServer::note_refusal(const char* why) {
    ++metrics_.connections_refused;
    if (at_capacity_) return;
    at_capacity_ = true;
    log_warning(std::string("refusing connections: ") + why + " (" + std::to_string(sessions_.size()) + " sessions)");
}

std::string EngineIoServer::open_packet(const EngineSocket& s) const {
    std::vector<std::string> upgrades;
    if (s.transport_kind() == TransportKind::Polling && options_.websocket) upgrades.emplace_back("websocket");
    return encode_open(s.sid, upgrades, static_cast<std::uint64_t>(options_.ping_interval.count()),
                       static_cast<std::uint64_t>(options_.ping_timeout.count()), options_.max_payload);
}

EngineSocket* EngineIoServer::open_session(const std::string& remote) {
    std::unique_ptr<EngineSocket> owned = handler_.make_socket();
    EngineSocket& s = *owned;
    s.id = ++next_id_;
    s.sid = random_id();
    s.remote = remote;
    sessions_.emplace(s.id, std::move(owned));
    by_sid_.emplace(s.sid, s.id);
    ++metrics_.connections_total;
    at_capacity_ = false;
    return &s;
}

// ---- HTTP: long-polling and everything else ---------------------------------------------

HttpHeaders EngineIoServer::cors_headers(const HttpExchange& exchange, bool& allowed) const {
    allowed = true;
    const std::string origin = exchange.header("Origin");
    if (origin.empty()) return {};
    if (std::find(options_.cors_origins.begin(), options_.cors_origins.end(), origin) != options_.cors_origins.end())
        return {{"Access-Control-Allow-Origin", origin}, {"Access-Control-Allow-Credentials", "true"}, {"Vary", "Origin"}};
    // Same origin: the page was served by this host (browsers send Origin on POSTs too).
    const std::string host = exchange.header("Host");
    if (!host.empty() && (origin == "http://" + host || origin == "https://" + host)) return {};
    allowed = false;
    return {};
}

void EngineIoServer::on_http(const std::shared_ptr<HttpExchange>& exchange) {
    if (is_engine_path(exchange->path())) return handle_polling(exchange);
    handler_.on_http(exchange);
}

void EngineIoServer::handle_polling(const std::shared_ptr<HttpExchange>& exchange) {
    HttpExchange& x = *exchange;
    bool origin_ok = true;
    HttpHeaders cors = cors_headers(x, origin_ok);
    if (!origin_ok) {
        ++metrics_.protocol_errors;
        return respond_error(x, 403, EngineError::Forbidden);
    }
    if (x.method() == "OPTIONS") {
        // A preflight. The headers a page asks to send are allowed (they carry no authority
        // here: the token travels in the Socket.IO CONNECT), as the reference server's CORS
        // middleware does by default.
        cors.emplace_back("Access-Control-Allow-Methods", "GET, POST");
        const std::string requested = x.header("Access-Control-Request-Headers");
        if (requested.empty()) {
            cors.emplace_back("Access-Control-Allow-Headers", "content-type");
        } else {
            cors.emplace_back("Access-Control-Allow-Headers", requested);
            cors.emplace_back("Vary", "Access-Control-Request-Headers");
        }
        return x.respond(204, cors, {});
    }
    auto query = parse_engine_query(x.query());
    if (!query) {
        ++metrics_.protocol_errors;
        return respond_error(x, 400, EngineError::BadRequest, cors);
    }
    // The reference server's order: transport, then sid, then method, then EIO (at the
    // handshake only).
    const auto transport = query->transport ? engine_transport(*query->transport) : std::nullopt;
    const bool enabled = transport && (*transport == EngineTransport::Polling ? options_.polling : options_.websocket);
    if (!enabled) return respond_error(x, 400, EngineError::UnknownTransport, cors);
    const bool get = x.method() == "GET";
    if (*transport == EngineTransport::WebSocket) {
        // transport=websocket on a request that is not an upgrade.
        if (query->sid && !by_sid_.count(*query->sid)) return respond_error(x, 400, EngineError::UnknownSid, cors);
        if (!query->sid && !get) return respond_error(x, 400, EngineError::BadHandshakeMethod, cors);
        return respond_error(x, 400, EngineError::BadRequest, cors);
    }

    if (!query->sid) {
        // A handshake: a GET creates the session and answers its open packet.
        if (!get) return respond_error(x, 400, EngineError::BadHandshakeMethod, cors);
        if (query->eio != "4") return respond_error(x, 400, EngineError::UnsupportedProtocolVersion, cors);
        if (shutting_down_) return respond_body(x, 503, kShuttingDown, cors);
        if (options_.max_sessions && sessions_.size() >= options_.max_sessions) {
            note_refusal("handshakes answered 503, limits.max_connections reached");
            return respond_body(x, 503, kTooManyConnections, cors);
        }
        EngineSocket& s = *open_session(x.remote());
        s.polling_ = std::make_unique<PollingTransport>(io_);
        s.polling_->response_headers = cors;
        s.transport_ = s.polling_.get();
        s.budget_.charge(x.body().size(), steady_ms());
        s.polling_->send(open_packet(s));
        s.polling_->poll(exchange);
        s.polling_->on_drain = [this, id = s.id] {
            if (EngineSocket* socket = find(id); socket && !socket->closing) handler_.on_drain(*socket);
        };
        // As the reference server does ("poll connection closed prematurely"): the session
        // ends now, not at its ping timeout, and stays resumable.
        s.polling_->on_poll_gone = [this, id = s.id] {
            EngineSocket* socket = find(id);
            if (!socket || socket->closing) return;
            log_client(LogLevel::Info, *socket, "closed: the connection of its held poll closed");
            close(*socket, close_code::kGoingAway, "poll connection closed", CloseCause::None);
        };
        schedule_ping(s);
        handler_.on_open(s);
        return;
    }

    auto it = by_sid_.find(*query->sid);
    EngineSocket* s = it == by_sid_.end() ? nullptr : find(it->second);
    if (!s) return respond_error(x, 400, EngineError::UnknownSid, cors);
    if (s->upgraded_ || !s->polling_ || s->closing) return respond_error(x, 400, EngineError::BadRequest, cors);
    if (!get && x.method() != "POST") return x.respond(500, cors, {});  // as the reference server: the session stays
    if (get) {
        if (!charge(*s, 0)) return respond_error(x, 400, EngineError::BadRequest, cors);
        // While upgrading, a held poll is turned over with a noop every kUpgradeNoopEvery
        // (on_upgrade_timer), so a client pausing polling to send `5` is not kept waiting.
        if (!s->polling_->poll(exchange)) {
            // Two GETs at once: the reference server treats it as a protocol error and closes.
            // The waiting GET gets the close packet, this one an empty 400.
            ++metrics_.protocol_errors;
            log_client(LogLevel::Notice, *s, "closed: protocol error: a second GET while one is waiting");
            x.respond(400, cors, {});
            close(*s, close_code::kProtocol, "overlapping polls", CloseCause::ProtocolError);
        }
        return;
    }
    // A POST: one or more packets from the client. A body the Engine.IO layer cannot read is
    // refused before it is acknowledged.
    auto packets = read_polling_post(x.body(), kMaxPacketsPerPost);
    if (!packets) {
        ++metrics_.protocol_errors;
        log_client(LogLevel::Notice, *s, "closed: protocol error: " + packets.error().message);
        respond_error(x, 400, EngineError::BadRequest, cors);
        close(*s, close_code::kProtocol, "bad payload", CloseCause::ProtocolError);
        return;
    }
    HttpHeaders headers = cors;
    headers.emplace_back("Content-Type", std::string(kPollingPostAckContentType));
    x.respond(200, headers, std::string(kPollingPostAck));
    const SessionId id = s->id;
    for (std::string_view packet : *packets) {
        EngineSocket* live = find(id);
        if (!live || live->closing) break;
        handle_packet(*live, packet, false);
    }
}

// A POST over max_payload was answered 413 by the listener. The reference server closes the
// session too: what was refused is lost, and the client starts over (with recovery, without
// missing anything).
void EngineIoServer::on_http_too_large(const HttpExchange& request) {
    if (!is_engine_path(request.path()) || request.method() != "POST") return;
    auto query = parse_engine_query(request.query());
    if (!query || !query->sid) return;
    auto it = by_sid_.find(*query->sid);
    EngineSocket* s = it == by_sid_.end() ? nullptr : find(it->second);
    if (!s || s->closing || !s->polling_ || s->upgraded_) return;
    ++metrics_.oversized_frame_closes;
    log_client(LogLevel::Notice, *s,
               "closed: a POST over max_payload (" + std::to_string(options_.max_payload) + " bytes) answered 413");
    close(*s, close_code::kTooBig, "payload too large", CloseCause::ProtocolError);
}

// ---- packets from the peer ---------------------------------------------------------------

bool EngineIoServer::charge(EngineSocket& s, std::size_t bytes) {
    if (s.budget_.charge(bytes, steady_ms())) return true;
    flood(s, s.budget_.limits());
    return false;
}

bool EngineIoServer::charge_control(EngineSocket& s, std::size_t bytes) {
    if (s.control_budget_.charge(bytes, steady_ms()) && s.budget_.charge(bytes, steady_ms())) return true;
    flood(s, s.control_budget_.limits());
    return false;
}

// Closes a peer that sent more than its budget, and stops reading from it: what it keeps
// sending during the close is not worth parsing.
void EngineIoServer::flood(EngineSocket& s, const BudgetLimits& limits) {
    if (s.closing) return;
    ++metrics_.flood_closes;
    log_client(LogLevel::Notice, s,
               "closed: sent more than its budget (" + std::to_string(static_cast<int>(limits.frames_per_second)) +
                   " frames/s, " + std::to_string(static_cast<int>(limits.bytes_per_second)) + " bytes/s)");
    if (s.link_) s.link_->stop_reading();
    close(s, close_code::kFlood, "flood", CloseCause::Flood);
}

void EngineIoServer::handle_packet(EngineSocket& s, std::string_view packet, bool from_probe) {
    if (s.closing) return;
    if (!charge(s, packet.size())) return;
    auto protocol_error = [&](const std::string& what) {
        ++metrics_.protocol_errors;
        log_client(LogLevel::Notice, s, "closed: protocol error: " + what);
        close(s, close_code::kProtocol, "protocol error", CloseCause::ProtocolError);
    };
    if (packet.empty()) return protocol_error("empty packet");
    if (from_probe) {
        if (packet == "2probe") {
            s.link_->send("3probe");
            if (s.upgrading_) return;  // a repeated probe is answered again, as in the reference
            s.upgrading_ = true;
            // The client pauses polling before it sends `5`: its waiting poll must return.
            s.polling_->release_waiting();
            arm_upgrade_timer(s, kUpgradeNoopEvery);
            return;
        }
        // The client may send `5` right after `2probe`, before `3probe` reaches it.
        if (packet == "5") return finish_upgrade(s);
        // Anything else cancels the upgrade: the probe goes, the session stays on polling.
        ++metrics_.protocol_errors;
        log_client(LogLevel::Notice, s, "upgrade cancelled: unexpected packet on the probing WebSocket");
        drop_probe(s, close_code::kProtocol, "protocol error");
        return;
    }
    switch (packet[0]) {
    case '1': close(s, close_code::kNormal, "client closed", CloseCause::PeerClosed); return;
    case '3':
        if (!s.awaiting_pong_) return;  // unsolicited: harmless
        schedule_ping(s);
        return;
    case '4': handler_.on_message(s, packet); return;
    case '6': return;
    case '2': return protocol_error("Engine.IO ping from a client (v4 heartbeats are sent by the server)");
    case '5': return protocol_error("upgrade packet outside an upgrade");
    default: return protocol_error("unknown Engine.IO packet type");
    }
}

void EngineIoServer::finish_upgrade(EngineSocket& s) {
    s.upgrading_ = false;
    s.upgraded_ = true;
    ++s.upgrade_gen_;
    s.upgrade_timer_.reset();  // cancels its wait; no probe follows an upgrade
    // The WebSocket is the transport before anything else happens: releasing a held poll
    // below reports a drain, and whatever the Socket.IO layer sends then must not land in
    // the polling queue that is about to go away.
    PollingTransport& polling = *s.polling_;
    polling.on_drain = nullptr;
    polling.on_poll_gone = nullptr;
    s.transport_ = s.link_.get();
    if (s.connected_) s.link_->set_max_message_size(options_.max_payload);
    // What was queued for the polling transport goes first, on the WebSocket, in order.
    std::string queued = polling.take_payload();
    polling.release_waiting();
    if (!queued.empty()) {
        if (auto packets = split_polling_payload(queued, static_cast<std::size_t>(-1)))
            for (std::string_view p : *packets) s.link_->send(p);
    }
    s.polling_.reset();
    handler_.on_drain(s);
}

// Ends a probe that will not complete; the session goes on over polling. The link is let go
// at once, so nothing it still delivers (a late `5`) reaches the session.
void EngineIoServer::drop_probe(EngineSocket& s, std::uint16_t code, const std::string& reason) {
    ++s.upgrade_gen_;
    if (s.upgrade_timer_) s.upgrade_timer_->cancel();
    s.upgrading_ = false;
    std::shared_ptr<WebSocketLink> probe = std::move(s.link_);
    if (probe) probe->close(code, reason);
}

void EngineIoServer::arm_upgrade_timer(EngineSocket& s, std::chrono::milliseconds after) {
    const std::uint64_t gen = ++s.upgrade_gen_;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(s.probe_deadline_ - std::chrono::steady_clock::now());
    if (!s.upgrade_timer_) s.upgrade_timer_ = std::make_unique<boost::asio::steady_timer>(io_);
    s.upgrade_timer_->expires_after(std::max(std::chrono::milliseconds(0), std::min(after, left)));
    s.upgrade_timer_->async_wait([this, guard = std::weak_ptr<char>(alive_), id = s.id, gen](const boost::system::error_code& ec) {
        if (ec || !guard.lock()) return;
        on_upgrade_timer(id, gen);
    });
}

void EngineIoServer::on_upgrade_timer(SessionId id, std::uint64_t gen) {
    EngineSocket* s = find(id);
    if (!s || s->closing || s->upgrade_gen_ != gen || !s->link_ || s->upgraded_) return;
    if (std::chrono::steady_clock::now() >= s->probe_deadline_) {
        log_client(LogLevel::Info, *s,
                   "upgrade cancelled: no upgrade packet within " + std::to_string(options_.upgrade_timeout.count()) +
                       " ms of the WebSocket opening");
        return drop_probe(*s, close_code::kNormal, "upgrade timeout");
    }
    if (s->upgrading_) {
        s->polling_->release_waiting();
        return arm_upgrade_timer(*s, kUpgradeNoopEvery);
    }
    arm_upgrade_timer(*s, options_.upgrade_timeout);
}

// ---- WebSocket ---------------------------------------------------------------------------

std::unique_ptr<Refusal> EngineIoServer::on_upgrade(const HttpExchange& request) {
    auto refuse = [&](int status, EngineError error) {
        ++metrics_.protocol_errors;
        return std::make_unique<Refusal>(refusal(status, error));
    };
    if (!is_engine_path(request.path())) {
        ++metrics_.protocol_errors;
        return std::make_unique<Refusal>(Refusal{404, kNotFound});
    }
    auto query = parse_engine_query(request.query());
    if (!query) return refuse(400, EngineError::BadRequest);
    if (query->transport != "websocket" || !options_.websocket) return refuse(400, EngineError::UnknownTransport);
    if (shutting_down_) return std::make_unique<Refusal>(Refusal{503, kShuttingDown});
    if (!query->sid) {
        if (query->eio != "4") return refuse(400, EngineError::UnsupportedProtocolVersion);
        if (options_.max_sessions && sessions_.size() >= options_.max_sessions) {
            note_refusal("upgrades answered 503, limits.max_connections reached");
            return std::make_unique<Refusal>(Refusal{503, kTooManyConnections});
        }
        return nullptr;
    }
    auto it = by_sid_.find(*query->sid);
    EngineSocket* s = it == by_sid_.end() ? nullptr : find(it->second);
    if (!s) return refuse(400, EngineError::UnknownSid);
    // Only a polling session upgrades, once. A second WebSocket for the sid is accepted and
    // closed as soon as it opens (on_ws_open), as the reference server does: a client that
    // only listens for the WebSocket's close would take an HTTP refusal as an error.
    return nullptr;
}

void EngineIoServer::on_ws_open(const std::shared_ptr<WebSocketLink>& link) {
    auto query = parse_engine_query(link->query());
    if (query && query->sid) {
        auto it = by_sid_.find(*query->sid);
        EngineSocket* s = it == by_sid_.end() ? nullptr : find(it->second);
        if (!s || s->closing || !s->polling_ || s->upgraded_ || s->link_) {
            // Another WebSocket probes or has the session, or it ended or never was polling.
            link->close(close_code::kNormal, "session unavailable");
            return;
        }
        link->owner = s->id;
        s->link_ = link;
        s->probe_deadline_ = std::chrono::steady_clock::now() + options_.upgrade_timeout;
        arm_upgrade_timer(*s, options_.upgrade_timeout);
        return;
    }
    EngineSocket& s = *open_session(link->remote());
    link->owner = s.id;
    s.link_ = link;
    s.upgraded_ = true;
    s.transport_ = link.get();
    link->send(open_packet(s));
    schedule_ping(s);
    handler_.on_open(s);
}

void EngineIoServer::on_ws_message(WebSocketLink& link, std::string_view payload, bool binary) {
    EngineSocket* s = find(link.owner);
    if (!s || s->closing || s->link_.get() != &link) return;
    if (binary) {
        ++metrics_.protocol_errors;
        log_client(LogLevel::Notice, *s, "closed: binary frames are not supported");
        close(*s, close_code::kUnsupported, "binary frames are not supported", CloseCause::ProtocolError);
        return;
    }
    handle_packet(*s, payload, s->transport_ != &link);
}

bool EngineIoServer::on_ws_ping(WebSocketLink& link, std::size_t bytes) {
    EngineSocket* s = find(link.owner);
    return s && !s->closing && charge_control(*s, bytes + 2);
}

void EngineIoServer::on_ws_pong(WebSocketLink& link, std::size_t bytes) {
    if (EngineSocket* s = find(link.owner); s && !s->closing) charge_control(*s, bytes + 2);
}

void EngineIoServer::on_ws_drain(WebSocketLink& link) {
    EngineSocket* s = find(link.owner);
    if (s && !s->closing && s->transport_ == &link) handler_.on_drain(*s);
}

void EngineIoServer::on_ws_close(WebSocketLink& link, const LinkClosed& closed) {
    EngineSocket* s = find(link.owner);
    if (!s || s->link_.get() != &link) return;
    if (s->transport_ != &link) {
        // A probe that did not complete: the session stays on polling.
        ++s->upgrade_gen_;
        if (s->upgrade_timer_) s->upgrade_timer_->cancel();
        s->upgrading_ = false;
        s->link_.reset();
        return;
    }
    end(*s, closed);
}

// ---- heartbeat ---------------------------------------------------------------------------

// Engine.IO v4: the server sends `2` every ping_interval and expects `3` within
// ping_timeout; the next ping is ping_interval after the pong, as in the reference server.
void EngineIoServer::schedule_ping(EngineSocket& s) {
    s.awaiting_pong_ = false;
    const std::uint64_t gen = ++s.heartbeat_gen_;
    s.heartbeat_.expires_after(options_.ping_interval);
    s.heartbeat_.async_wait([this, guard = std::weak_ptr<char>(alive_), id = s.id, gen](const boost::system::error_code& ec) {
        if (ec || !guard.lock()) return;
        on_ping_due(id, gen);
    });
}

void EngineIoServer::on_ping_due(SessionId id, std::uint64_t gen) {
    EngineSocket* s = find(id);
    if (!s || s->closing || s->heartbeat_gen_ != gen) return;
    send(*s, "2");
    s->awaiting_pong_ = true;
    const std::uint64_t pong_gen = ++s->heartbeat_gen_;
    s->heartbeat_.expires_after(options_.ping_timeout);
    s->heartbeat_.async_wait([this, guard = std::weak_ptr<char>(alive_), id, pong_gen](const boost::system::error_code& ec) {
        if (ec || !guard.lock()) return;
        EngineSocket* s2 = find(id);
        if (!s2 || s2->closing || s2->heartbeat_gen_ != pong_gen || !s2->awaiting_pong_) return;
        ++metrics_.ping_timeouts;
        log_client(LogLevel::Info, *s2,
                   "closed: no pong within " + std::to_string(options_.ping_timeout.count()) + " ms");
        close(*s2, close_code::kNormal, "ping timeout", CloseCause::PingTimeout);
    });
}

// ---- sending and closing -----------------------------------------------------------------

void EngineIoServer::send(EngineSocket& s, std::string_view packet) {
    if (!s.closing && s.transport_) s.transport_->send(packet);
}

void EngineIoServer::send_events(EngineSocket& s, const EventRun& run) {
    if (!s.closing && s.transport_) s.transport_->send_events(run);
}

std::size_t EngineIoServer::buffered(const EngineSocket& s) const { return s.transport_ ? s.transport_->buffered() : 0; }

void EngineIoServer::set_connected(EngineSocket& s) {
    s.connected_ = true;
    s.budget_.set_limits(kBudgetConnected);
    // A probing WebSocket keeps the small cap until its upgrade completes (finish_upgrade).
    if (s.link_ && s.transport_ == s.link_.get()) s.link_->set_max_message_size(options_.max_payload);
}

void EngineIoServer::close(EngineSocket& s, std::uint16_t code, const std::string& reason, CloseCause cause) {
    if (s.closing) return;
    s.closing = true;
    s.cause = cause;
    ++s.heartbeat_gen_;
    s.heartbeat_.cancel();
    if (s.transport_ && s.transport_ == s.link_.get()) {
        s.link_->close(code, reason);  // on_ws_close ends the session
        return;
    }
    // Polling: the session ends now (a waiting GET gets what is queued and a close packet,
    // or a noop when the client itself closed); a probing WebSocket goes with it. Posted:
    // the caller may be deep in a handler.
    if (s.polling_ && (cause == CloseCause::ClientLeft || cause == CloseCause::PeerClosed)) s.polling_->release_waiting();
    if (s.polling_) s.polling_->close(code, reason);
    if (s.link_) s.link_->close(code, reason);
    boost::asio::post(io_, [this, guard = std::weak_ptr<char>(alive_), id = s.id, code, reason] {
        if (!guard.lock()) return;
        if (EngineSocket* socket = find(id)) end(*socket, LinkClosed{code, reason, 0});
    });
}

void EngineIoServer::end(EngineSocket& s, const LinkClosed& closed) {
    const SessionId id = s.id;
    s.closing = true;
    ++s.heartbeat_gen_;
    s.heartbeat_.cancel();
    handler_.on_close(s, closed);
    by_sid_.erase(s.sid);
    sessions_.erase(id);  // destroys the socket, its transports and their waiting requests
}

}  // namespace walcast
