// SocketIoServer: set-up, the Socket.IO packets a client sends (CONNECT with its token,
// join-project and leave-project, DISCONNECT), and what happens when a session ends.
// Delivery and recovery live in socketio_delivery.cpp and socketio_resume.cpp.
#include "daemon/socketio_server.hpp"

#include <boost/asio/post.hpp>

#include <rapidjson/document.h>

#include <algorithm>

#include "daemon/log.hpp"
#include "daemon/random_id.hpp"
#include "daemon/socketio_session.hpp"
#include "decoder/json_text.hpp"

namespace walcast {

namespace {

// join-project checks in flight per client. Past it the request is answered "busy" at once:
// a flood costs the database at most this many queries per client at a time.
constexpr std::size_t kMaxChecksInFlight = 16;
constexpr std::size_t kMaxProjectIdBytes = 256;
// After `44` the client closes by itself; this closes a client that does not.
constexpr std::chrono::milliseconds kRefusedGrace{1000};
// Long deadlines are armed in steps: a token valid until the year 9999 is still closed on
// time, and no duration overflows the steady clock's nanoseconds.
constexpr std::chrono::milliseconds kLongestWait = std::chrono::hours(24);

constexpr const char* kOk = R"({"ok":true})";
constexpr const char* kForbidden = R"({"ok":false,"error":"forbidden"})";
constexpr const char* kTooManyRooms = R"({"ok":false,"error":"too many rooms"})";
constexpr const char* kBusy = R"({"ok":false,"error":"busy"})";
constexpr const char* kInvalidProject = R"({"ok":false,"error":"invalid project id"})";
constexpr const char* kUnknownEvent = R"({"ok":false,"error":"unknown event"})";
constexpr const char* kInvalidSnapshot = R"({"ok":false,"error":"invalid snapshot"})";
constexpr const char* kRecovered = R"({"ok":true,"recovered":true})";
constexpr const char* kNotRecovered = R"({"ok":true,"recovered":false})";

// join-project's optional second argument {snapshot: "<walcast.snapshot() token>"}:
// nullopt without one; an error when it is there but not a valid token.
Result<std::optional<Snapshot>> snapshot_arg(const ClientPacket& p) {
    if (p.args.size() < 2 || p.args[1].is_string) return std::optional<Snapshot>();
    rapidjson::Document doc;
    doc.Parse<rapidjson::kParseIterativeFlag>(p.args[1].text.data(), p.args[1].text.size());
    if (doc.HasParseError() || !doc.IsObject()) return std::optional<Snapshot>();
    auto it = doc.FindMember("snapshot");
    if (it == doc.MemberEnd() || it->value.IsNull()) return std::optional<Snapshot>();
    if (!it->value.IsString()) return make_error("snapshot is not a string");
    auto snapshot = parse_snapshot(std::string_view(it->value.GetString(), it->value.GetStringLength()));
    if (!snapshot) return snapshot.error();
    return std::optional<Snapshot>(std::move(*snapshot));
}

// The project id argument of join-project / leave-project, or nullopt when malformed.
std::optional<std::string> project_arg(const ClientPacket& p) {
    if (p.args.empty() || !p.args[0].is_string) return std::nullopt;
    const std::string& id = p.args[0].text;
    if (id.empty() || id.size() > kMaxProjectIdBytes) return std::nullopt;
    return id;
}

EngineOptions engine_options(const ServerOptions& o) {
    EngineOptions e;
    e.ping_interval = o.ping_interval;
    e.ping_timeout = o.ping_timeout;
    e.max_payload = o.max_payload;
    e.polling = o.polling;
    e.websocket = o.websocket;
    e.cors_origins = o.cors_origins;
    e.max_sessions = o.max_connections;
    return e;
}

ListenerOptions listener_options(const ServerOptions& o) {
    ListenerOptions l;
    l.max_sockets = o.max_sockets;
    l.max_message_size = std::min<std::size_t>(64 << 10, o.max_payload);  // until CONNECT
    l.max_http_body = o.max_payload;
    return l;
}

}  // namespace

std::int64_t unix_now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::string close_reason(std::string_view text) {
    std::string out;
    for (char c : text.substr(0, 120)) out.push_back(c >= 0x20 && c < 0x7F ? c : '?');
    return out;
}

SocketIoServer::Impl::Impl(boost::asio::io_context& io_, ServerOptions options_, ProjectAccess& access_,
                           Metrics& metrics_, std::function<bool()> healthy, std::function<std::string()> detail)
    : io(io_),
      options(std::move(options_)),
      access(access_),
      metrics(metrics_),
      endpoints{std::move(healthy), std::move(detail), &metrics_, options.admin_host.empty(), options.static_dir, {}},
      engine(io_, engine_options(options), *this, metrics_),
      listener(io_, engine, listener_options(options)),
      buffer(options.recovery_window.count(), options.recovery_max_bytes),
      detached(options.max_detached_sessions, options.max_detached_per_user),
      sweep_timer(io_) {
    listener.on_refused_socket = [this] { ++metrics.connections_refused; };
    if (!options.admin_host.empty()) {
        HttpEndpoints admin_endpoints = endpoints;
        admin_endpoints.operator_endpoints = true;
        admin_endpoints.static_dir.clear();
        endpoints.operator_endpoints = false;
        admin_handler = std::make_unique<EndpointsOnly>(std::move(admin_endpoints));
        ListenerOptions admin_options;
        admin_options.websocket = false;
        admin = std::make_unique<Listener>(io_, *admin_handler, admin_options);
    }
    if (options.http_hook) endpoints.extra = options.http_hook(io_);  // public listener only
}

SocketIoServer::Impl::~Impl() = default;

void SocketIoServer::Impl::close(Session& s, std::uint16_t code, const std::string& reason, CloseCause cause) {
    if (s.closing) return;
    // Events already dispatched (their LSN may be confirmed) go out before the close,
    // except to a slow consumer, which is closed for what it has not read.
    if (cause == CloseCause::SlowConsumer) s.queued.clear();
    else send_queued(s);
    ++s.deadline_gen;
    s.deadline.cancel();
    engine.close(s, code, close_reason(reason), cause);
}

void SocketIoServer::Impl::protocol_error(Session& s, const std::string& what, std::uint16_t code) {
    ++metrics.protocol_errors;
    log(LogLevel::Notice, s, "closed: protocol error: " + what);
    close(s, code, "protocol error: " + what, CloseCause::ProtocolError);
}

// ---- sessions ------------------------------------------------------------------------------

std::unique_ptr<EngineSocket> SocketIoServer::Impl::make_socket() { return std::make_unique<Session>(io); }

void SocketIoServer::Impl::on_open(EngineSocket& socket) {
    Session& s = static_cast<Session&>(socket);
    if (shutting_down) return close(s, close_code::kGoingAway, "going away", CloseCause::Shutdown);
    arm_deadline(s, options.connect_timeout);
}

void SocketIoServer::Impl::on_message(EngineSocket& socket, std::string_view data) {
    Session& s = static_cast<Session&>(socket);
    auto packet = parse_client_packet(data);
    if (!packet) return protocol_error(s, packet.error().message);
    ClientPacket& p = *packet;
    switch (p.type) {
    case SioType::Connect: return on_connect(s, p);
    case SioType::Disconnect:
        if (p.nsp != "/") return;  // never connected there: nothing to leave
        rooms.leave_all(s.id);
        return close(s, close_code::kNormal, "client disconnected", CloseCause::ClientLeft);
    case SioType::Event:
        if (s.phase != Phase::Connected) return protocol_error(s, "EVENT before CONNECT");
        if (p.nsp != "/") return protocol_error(s, "EVENT on namespace " + close_reason(p.nsp) + ", not connected");
        return on_event(s, p);
    case SioType::Ack:
        // walcast never asks clients for acks.
        if (s.phase != Phase::Connected) return protocol_error(s, "ACK before CONNECT");
        return;
    default: return protocol_error(s, "unexpected Socket.IO packet");
    }
}

void SocketIoServer::Impl::on_close(EngineSocket& socket, const LinkClosed& closed) {
    Session& s = static_cast<Session&>(socket);
    if (s.cause == CloseCause::None) {
        // Closed by the client, or by websocketpp on bad framing: tell which by its code.
        if (closed.local_code == close_code::kTooBig) {
            ++metrics.oversized_frame_closes;
            log(LogLevel::Notice, s, "closed: message over the size limit (1009)");
        } else if (closed.local_code == close_code::kProtocol || closed.local_code == 1007) {
            ++metrics.protocol_errors;
            log(LogLevel::Notice, s,
                "closed: bad WebSocket frame (" + std::to_string(closed.local_code) + " " +
                    close_reason(closed.local_reason) + ")");
        }
    }
    if (s.phase == Phase::Connected) {
        // A client that said goodbye does not come back for its events; any other drop
        // (network, slow consumer, restart) keeps the session resumable.
        if (s.cause == CloseCause::ClientLeft) {
            if (!s.pid.empty()) by_pid.erase(s.pid);
            if (store && !s.pid.empty()) store->forget(s.pid);
            sessions_changed = true;
        } else {
            detach(s);
        }
        --connected;
        metrics.clients = connected;
    } else if (s.phase == Phase::Resuming) {
        // Its resume did not finish: the session stays resumable by another reconnect.
        detach(s);
    }
    if (s.counted) {
        auto it = user_connections.find(s.user);
        if (it != user_connections.end() && --it->second == 0) user_connections.erase(it);
    }
    ++s.deadline_gen;
    s.deadline.cancel();
    rooms.leave_all(s.id);
    catching_up.erase(s.id);
    metrics.catching_up = catching_up.size();
    if (s.in_batch) std::replace(recipients.begin(), recipients.end(), &s, static_cast<Session*>(nullptr));
}

// ---- CONNECT -------------------------------------------------------------------------------

void SocketIoServer::Impl::refuse(Session& s, const std::string& why, const char* message) {
    log(LogLevel::Notice, s, "CONNECT refused (" + std::string(message) + "): " + why);
    send_packet(s, encode_connect_error("/", message));
    s.phase = Phase::Refused;
    arm_deadline(s, kRefusedGrace);
}

void SocketIoServer::Impl::on_connect(Session& s, const ClientPacket& p) {
    if (p.nsp != "/") {
        // Only "/" exists; the client gets connect_error for that namespace and "/" is unaffected.
        return send_packet(s, encode_connect_error(p.nsp, "Invalid namespace"));
    }
    if (s.phase == Phase::Refused) return;  // closing after the grace period anyway
    if (s.phase != Phase::AwaitingConnect) return protocol_error(s, "second CONNECT on \"/\"");

    std::string why;
    std::optional<Claims> claims;
    if (!p.auth_token) {
        why = p.has_auth ? "auth.token is missing or not a string" : "CONNECT carries no auth object";
    } else {
        const auto now = unix_now_ms() / 1000;
        auto verified = verify_jwt(*p.auth_token, options.jwt_secret, now, options.jwt);
        if (verified) claims = std::move(*verified);
        else why = verified.error().message;
    }
    if (!claims) {
        // The client learns "unauthorized" and nothing else; the log keeps the reason.
        ++metrics.auth_failures;
        return refuse(s, why, "unauthorized");
    }
    // A resume that takes over the user's live connection for its pid (closed once the
    // resume starts) does not add one: at the cap, it is what lets that client back.
    std::size_t theirs = user_connections[claims->subject];
    if (recovery() && p.auth_pid && theirs > 0 && replaced_by_resume(s, *p.auth_pid, claims->subject, claims->tenant))
        --theirs;
    if (theirs >= options.max_connections_per_user) {
        ++metrics.user_connection_refusals;
        return refuse(s, "user " + claims->subject + " has " + std::to_string(options.max_connections_per_user) +
                             " connections (limits.max_connections_per_user)",
                      "too many connections");
    }
    ++s.deadline_gen;
    s.deadline.cancel();
    s.token_expires_ms = claims->expires_at * 1000;
    s.user = std::move(claims->subject);
    s.tenant = std::move(claims->tenant);
    if (claims->projects)
        s.token_projects = std::make_shared<const std::unordered_set<std::string>>(claims->projects->begin(),
                                                                                  claims->projects->end());
    ++user_connections[s.user];
    s.counted = true;
    engine.set_connected(s);
    if (recovery() && p.auth_pid &&
        (store ? resume_from_store(s, *p.auth_pid, p.auth_offset, p.auth_snapshot)
               : try_resume(s, *p.auth_pid, p.auth_offset)))
        return;
    connect_fresh(s, p.auth_snapshot);
}

void SocketIoServer::Impl::connect_fresh(Session& s, const std::optional<std::string>& auth_snapshot) {
    std::optional<Snapshot> snapshot;
    if (auth_snapshot) {
        auto parsed = parse_snapshot(*auth_snapshot);
        if (!parsed) return refuse(s, "auth.snapshot: " + parsed.error().message, "invalid snapshot");
        snapshot = std::move(*parsed);
    }
    start_session(s);
    if (!snapshot) return;
    // The user and tenant rooms from the page's snapshot on; when the buffer no longer
    // reaches back to it, the app is told to reload.
    const bool user_ok = join_with_snapshot(s, "user:" + s.user, *snapshot);
    const bool tenant_ok = join_with_snapshot(s, "tenant:" + s.tenant, *snapshot);
    if (!user_ok || !tenant_ok) {
        std::string payload = R"({"reason":"snapshot_too_old","lostAfter":"","detail":)";
        append_json_string(payload, "the recovery buffer no longer reaches back to the CONNECT snapshot: reload");
        payload += '}';
        send_packet(s, encode_event("walcast:resync", payload, recovery() ? newest.str() : std::string()));
    }
}

// A fresh session: new sid and pid, nothing missed.
void SocketIoServer::Impl::start_session(Session& s) {
    s.socket_sid = random_id();
    s.base = newest;
    s.cursor = newest;
    if (recovery()) {
        s.pid = random_id();
        by_pid[s.pid] = s.id;
    }
    enter_connected(s);
    if (recovery()) changed(s);
    send_packet(s, encode_connect(s.socket_sid, s.pid));
}

void SocketIoServer::Impl::enter_connected(Session& s) {
    s.phase = Phase::Connected;
    ++connected;
    metrics.clients = connected;
    rooms.join(s.id, "user:" + s.user);
    rooms.join(s.id, "tenant:" + s.tenant);
    // The token's authority ends at its `exp`; so does the connection. The close is not a
    // goodbye, so the session stays resumable: a client whose `auth` callback hands out a
    // fresh token reconnects by itself and, with recovery on, misses nothing.
    arm_deadline(s, std::chrono::milliseconds(std::max<std::int64_t>(0, s.token_expires_ms - unix_now_ms())));
}

// One deadline per session: the CONNECT timeout, later the post-refusal close or the token's
// expiry.
void SocketIoServer::Impl::arm_deadline(Session& s, std::chrono::milliseconds after) {
    const std::uint64_t gen = ++s.deadline_gen;
    s.deadline.expires_after(std::min(after, std::chrono::duration_cast<std::chrono::milliseconds>(kLongestWait)));
    s.deadline.async_wait([this, guard = std::weak_ptr<char>(alive), id = s.id, gen](const boost::system::error_code& ec) {
        if (!ec && guard.lock()) on_deadline(id, gen);
    });
}

void SocketIoServer::Impl::on_deadline(SessionId id, std::uint64_t gen) {
    Session* s = find(id);
    if (!s || s->closing || s->deadline_gen != gen) return;
    switch (s->phase) {
    case Phase::AwaitingConnect:
        ++metrics.connect_timeouts;
        log(LogLevel::Info, *s, "closed: no CONNECT within " + std::to_string(options.connect_timeout.count()) + " ms");
        return close(*s, close_code::kPolicy, "connect timeout", CloseCause::ConnectTimeout);
    case Phase::Refused: return close(*s, close_code::kPolicy, "unauthorized", CloseCause::Unauthorized);
    case Phase::Resuming: return;
    case Phase::Connected: {
        const std::int64_t left = s->token_expires_ms - unix_now_ms();
        if (left > 0) return arm_deadline(*s, std::chrono::milliseconds(left));  // a long wait, in steps
        ++metrics.token_expiry_closes;
        log(LogLevel::Info, *s, "closed: token expired (4001)");
        return close(*s, close_code::kTokenExpired, "token expired", CloseCause::TokenExpired);
    }
    }
}

// ---- events and project rooms --------------------------------------------------------------

void SocketIoServer::Impl::reply(Session& s, const std::optional<std::uint64_t>& ack_id, const char* json) {
    if (ack_id) send_packet(s, encode_ack(*ack_id, json));
}

void SocketIoServer::Impl::on_event(Session& s, const ClientPacket& p) {
    if (p.event == "join-project") return on_join(s, p);
    if (p.event == "leave-project") return on_leave(s, p);
    reply(s, p.ack_id, kUnknownEvent);  // without an ack id: ignored
}

AccessRequest SocketIoServer::Impl::access_request(const Session& s, const std::string& project) const {
    return AccessRequest{project, s.tenant, s.user, s.token_projects};
}

void SocketIoServer::Impl::on_join(Session& s, const ClientPacket& p) {
    const auto project = project_arg(p);
    if (!project) {
        ++metrics.join_denied;
        return reply(s, p.ack_id, kInvalidProject);
    }
    auto snapshot = snapshot_arg(p);
    if (!snapshot) {
        log(LogLevel::Info, s, "join-project refused: " + snapshot.error().message);
        ++metrics.join_denied;
        return reply(s, p.ack_id, kInvalidSnapshot);
    }
    if (s.projects.count(*project)) {
        // Already a member: access was checked when it joined, and it has had every event
        // since, the snapshot's included.
        ++metrics.join_allowed;
        return reply(s, p.ack_id, *snapshot ? kRecovered : kOk);
    }
    // Joins still being checked count against the limit, so a burst cannot overshoot it.
    if (s.projects.size() + s.pending.size() >= options.max_rooms_per_client) {
        ++metrics.join_denied;
        return reply(s, p.ack_id, kTooManyRooms);
    }
    if (s.checks_in_flight >= kMaxChecksInFlight) {
        ++metrics.join_busy;
        return reply(s, p.ack_id, kBusy);
    }
    const std::uint64_t ticket = ++s.next_ticket;
    s.pending[*project] = ticket;
    ++s.checks_in_flight;
    // `done` may run much later: it finds the session again by id, and does nothing if the
    // session or the server is gone.
    access.check(access_request(s, *project),
                 [this, guard = std::weak_ptr<char>(alive), id = s.id, project = *project, ticket, ack = p.ack_id,
                  snap = std::move(*snapshot)](Access answer) {
                     if (guard.lock()) on_check_done(id, project, ticket, ack, answer, snap);
                 });
}

void SocketIoServer::Impl::on_check_done(SessionId id, const std::string& project, std::uint64_t ticket,
                                         const std::optional<std::uint64_t>& ack, Access answer,
                                         const std::optional<Snapshot>& snapshot) {
    Session* s = find(id);
    if (!s) return;
    if (s->checks_in_flight > 0) --s->checks_in_flight;
    auto pending = s->pending.find(project);
    const bool current = pending != s->pending.end() && pending->second == ticket;
    if (current) s->pending.erase(pending);
    if (s->closing || s->phase != Phase::Connected) return;
    if (!current) {
        // A later leave-project (or a later join, which decides) superseded this join:
        // answer it, but do not join.
        const char* json = answer == Access::Allowed ? kOk : answer == Access::Busy ? kBusy : kForbidden;
        return reply(*s, ack, json);
    }
    finish_join(*s, project, answer, ack, snapshot);
}

void SocketIoServer::Impl::finish_join(Session& s, const std::string& project, Access answer,
                                       const std::optional<std::uint64_t>& ack, const std::optional<Snapshot>& snapshot) {
    if (answer == Access::Busy) {
        ++metrics.join_busy;
        return reply(s, ack, kBusy);
    }
    if (answer == Access::Denied) {
        ++metrics.join_denied;
        return reply(s, ack, kForbidden);
    }
    if (!s.projects.count(project)) {
        if (s.projects.size() >= options.max_rooms_per_client) {
            ++metrics.join_denied;
            return reply(s, ack, kTooManyRooms);
        }
        s.projects.insert(project);
        rooms.join(s.id, "project:" + project);
        changed(s);
        if (snapshot) {
            ++metrics.join_allowed;
            const bool recovered = join_with_snapshot(s, "project:" + project, *snapshot);
            return reply(s, ack, recovered ? kRecovered : kNotRecovered);
        }
    }
    ++metrics.join_allowed;
    reply(s, ack, snapshot ? kRecovered : kOk);
}

void SocketIoServer::Impl::on_leave(Session& s, const ClientPacket& p) {
    const auto project = project_arg(p);
    if (!project) return reply(s, p.ack_id, kInvalidProject);
    s.pending.erase(*project);  // a join still being checked will not take effect
    if (s.projects.erase(*project)) {
        rooms.leave(s.id, "project:" + *project);
        changed(s);
    }
    reply(s, p.ack_id, kOk);
}

// ---- the public interface ------------------------------------------------------------------

SocketIoServer::SocketIoServer(boost::asio::io_context& io, ServerOptions options, ProjectAccess& access,
                               Metrics& metrics, std::function<bool()> healthy, std::function<std::string()> detail)
    : impl_(std::make_unique<Impl>(io, std::move(options), access, metrics, std::move(healthy), std::move(detail))) {}

SocketIoServer::~SocketIoServer() = default;

std::error_code SocketIoServer::listen() {
    if (auto ec = impl_->listener.listen(impl_->options.host, impl_->options.port)) return ec;
    if (impl_->admin)
        if (auto ec = impl_->admin->listen(impl_->options.admin_host, impl_->options.admin_port)) return ec;
    impl_->schedule_sweep();
    return {};
}

std::uint16_t SocketIoServer::port() const { return impl_->listener.port(); }

std::uint16_t SocketIoServer::admin_port() const { return impl_->admin ? impl_->admin->port() : 0; }

void SocketIoServer::publish(const std::vector<Event>& events, bool deliver) { impl_->publish(events, deliver); }

void SocketIoServer::shutdown() {
    Impl& impl = *impl_;
    if (impl.shutting_down) return;
    impl.shutting_down = true;
    impl.sweep_timer.cancel();
    impl.listener.stop();
    if (impl.admin) impl.admin->stop();
    impl.engine.set_shutting_down();
    std::vector<SessionId> ids;
    impl.engine.for_each([&](EngineSocket& s) { ids.push_back(s.id); });
    for (SessionId id : ids)
        if (Session* s = impl.find(id)) impl.close(*s, close_code::kGoingAway, "going away", CloseCause::Shutdown);
}

std::size_t SocketIoServer::clients() const { return impl_->connected; }

}  // namespace walcast
