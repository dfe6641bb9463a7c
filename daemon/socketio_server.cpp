// SocketIoServer on websocketpp 0.8.2 (asio, no TLS): Engine.IO v4 over WebSocket only,
// Socket.IO v5 on "/", JWT auth, project rooms, serialize-once fan-out with bounded per-client
// send buffers, and GET /healthz, /metrics and static files on the same listener.
// The only translation unit that includes websocketpp. Every handler runs on the loop thread.
#include "daemon/socketio_server.hpp"

#include <openssl/rand.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <websocketpp/concurrency/none.hpp>
#include <websocketpp/config/asio_no_tls.hpp>
#include <websocketpp/server.hpp>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "wire/jwt.hpp"
#include "daemon/log.hpp"
#include "wire/socketio_packet.hpp"
#include "routing/recovery_buffer.hpp"
#include "routing/room_index.hpp"

namespace walcast {

namespace {

// Carried by every websocketpp connection (config::connection_base): the session it belongs
// to, so handlers find it without a map from connection handles. Also counts connections.
struct ConnectionSlot {
    // websocketpp connections alive: accepted sockets of every kind (upgraded, plain HTTP,
    // handshake not read yet) plus the one waiting in accept. Only the loop thread makes them.
    static inline std::size_t alive = 0;

    ConnectionSlot() { ++alive; }
    ~ConnectionSlot() { --alive; }
    ConnectionSlot(const ConnectionSlot&) = delete;
    ConnectionSlot& operator=(const ConnectionSlot&) = delete;

    SessionId session_id = 0;
};

// websocketpp's Asio transport turns every write into an Asio async operation, even when
// the socket takes it at once, which is nearly always: the reactor op, its posted
// completion and the handler chain cost more than the sendmsg itself at 1M frames/s.
// This transport connection writes at once when the server asks (`write_now`, set around
// its own send() calls; websocketpp starts a write only when none is in flight) and
// completes inline; whatever the socket does not take, or any error, goes the async way as
// before, so websocketpp still sees one write at a time, in order. It also knows when
// websocketpp has a write in flight, so event frames can skip websocketpp altogether.
template <typename config>
class EagerWriteConnection : public websocketpp::transport::asio::connection<config> {
    using base = websocketpp::transport::asio::connection<config>;
    using buffer = websocketpp::transport::buffer;
    using write_handler = websocketpp::transport::write_handler;

public:
    typedef EagerWriteConnection<config> type;
    typedef websocketpp::lib::shared_ptr<type> ptr;
    using base::base;

    bool write_now = false;

    // websocketpp's send() posts the write it starts; while write_now it runs at once.
    websocketpp::lib::error_code dispatch(websocketpp::transport::dispatch_handler handler) {
        if (!write_now) return base::dispatch(std::move(handler));
        handler();
        return websocketpp::lib::error_code();
    }

    // HTTP responses and the handshake.
    void async_write(const char* buf, std::size_t len, write_handler handler) {
        writing_ = true;
        base::async_write(buf, len, tracked(std::move(handler)));
    }

    void async_write(const std::vector<buffer>& bufs, write_handler handler) {
        writing_ = true;
        if (!write_now || bufs.empty()) return base::async_write(bufs, tracked(std::move(handler)));
        const ssize_t sent = sendmsg_at_once(bufs.data(), bufs.size());
        std::size_t total = 0;
        for (const auto& b : bufs) total += b.len;
        if (sent == static_cast<ssize_t>(total)) {
            writing_ = false;
            return handler(websocketpp::lib::error_code());
        }
        // The rest (or all of it, on EAGAIN or an error Asio will report) the async way.
        std::size_t skip = sent > 0 ? static_cast<std::size_t>(sent) : 0;
        std::vector<buffer> rest;
        rest.reserve(bufs.size());
        for (const auto& b : bufs) {
            if (skip >= b.len) {
                skip -= b.len;
                continue;
            }
            rest.emplace_back(b.buf + skip, b.len - skip);
            skip = 0;
        }
        base::async_write(rest, tracked(std::move(handler)));
    }

    // Writes whole frames straight to the socket, bypassing websocketpp's queue, when it has
    // no write in flight; the caller checks that nothing is queued either
    // (get_buffered_amount() == 0), so websocketpp's frames and these cannot interleave.
    // Returns the bytes written (what is left must go through websocketpp next), or -1 when
    // websocketpp is writing. A failed socket returns 0: websocketpp's write reports it.
    ssize_t write_directly(const std::string& head, const std::string& body) {
        if (writing_) return -1;
        const buffer parts[2] = {buffer(head.data(), head.size()), buffer(body.data(), body.size())};
        return std::max<ssize_t>(0, sendmsg_at_once(parts, 2));
    }

private:
    ssize_t sendmsg_at_once(const buffer* bufs, std::size_t count) {
        iovec iov[64];
        count = std::min(count, std::size(iov));
        for (std::size_t i = 0; i < count; ++i) {
            iov[i].iov_base = const_cast<char*>(bufs[i].buf);
            iov[i].iov_len = bufs[i].len;
        }
        msghdr msg{};
        msg.msg_iov = iov;
        msg.msg_iovlen = count;
        return ::sendmsg(this->get_socket().native_handle(), &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    }

    // websocketpp's write handler, noting first that its write is done. The base binds a
    // shared_ptr to this connection into the operation, so `this` outlives it.
    write_handler tracked(write_handler handler) {
        return [this, handler = std::move(handler)](const websocketpp::lib::error_code& ec) {
            writing_ = false;
            handler(ec);
        };
    }

    bool writing_ = false;  // websocketpp has a write on the socket
};

template <typename config>
struct EagerWriteEndpoint : websocketpp::transport::asio::endpoint<config> {
    typedef EagerWriteConnection<config> transport_con_type;
    typedef typename transport_con_type::ptr transport_con_ptr;
};

struct WsConfig : websocketpp::config::asio {
    typedef WsConfig type;
    typedef websocketpp::config::asio base;
    typedef ConnectionSlot connection_base;

    // One thread runs the loop: no locks, no strands (websocketpp's defaults assume several).
    typedef websocketpp::concurrency::none concurrency_type;
    typedef websocketpp::log::basic<concurrency_type, websocketpp::log::elevel> elog_type;
    typedef websocketpp::log::basic<concurrency_type, websocketpp::log::alevel> alog_type;
    static const bool enable_multithreading = false;
    struct transport_config : public base::transport_config {
        typedef type::concurrency_type concurrency_type;
        typedef type::alog_type alog_type;
        typedef type::elog_type elog_type;
        static const bool enable_multithreading = false;
    };
    typedef EagerWriteEndpoint<transport_config> transport_type;

    // websocketpp's own logging is compiled out; the server logs what matters itself.
    static const websocketpp::log::level elog_level = websocketpp::log::elevel::none;
    static const websocketpp::log::level alog_level = websocketpp::log::alevel::none;

    // Bounds a peer that never finishes its HTTP request or never answers our close frame
    // (a slow consumer closed with 4008 is dropped after this even if it reads nothing).
    static const long timeout_open_handshake = 5000;
    static const long timeout_close_handshake = 3000;
    // Only GET requests are served: no body worth reading.
    static const size_t max_http_body_size = 1024;
};

using WsServer = websocketpp::server<WsConfig>;
using ConnectionPtr = WsServer::connection_ptr;
using MessagePtr = WsServer::message_ptr;
using websocketpp::connection_hdl;

// join-project checks in flight per client (project_access = "query"). Past it the request
// is refused with "busy" at once: a flood costs the database at most this many queries per
// client at a time and never delays anyone else.
constexpr std::size_t kMaxChecksInFlight = 16;
constexpr std::size_t kMaxProjectIdBytes = 256;
// After `44 unauthorized` the client closes by itself; this closes a client that does not.
constexpr std::chrono::milliseconds kRefusedGrace{1000};
constexpr std::size_t kMaxStaticFileBytes = 8 << 20;
constexpr std::uint32_t kNoFrame = ~std::uint32_t{0};
// A turn's batch is written early once its frames reach this many bytes: what batching saves
// is per-write overhead, which frames this large have amortized already, and a turn of big
// rows must not hold them all (and their concatenations) at once.
constexpr std::size_t kMaxBatchBytes = 256 << 10;

// Close codes (RFC 6455 §7.4; 4000-4999 are the application's).
constexpr std::uint16_t kCloseNormal = 1000;
constexpr std::uint16_t kCloseGoingAway = 1001;
constexpr std::uint16_t kCloseProtocol = 1002;
constexpr std::uint16_t kCloseUnsupported = 1003;
constexpr std::uint16_t kClosePolicy = 1008;
constexpr std::uint16_t kCloseTooBig = 1009;
constexpr std::uint16_t kCloseSlowConsumer = 4008;
constexpr std::uint16_t kCloseTokenExpired = 4001;

enum class Phase : std::uint8_t {
    AwaitingConnect,  // Engine.IO open sent; waiting for Socket.IO CONNECT
    Connected,        // CONNECT accepted: in rooms, receives events
    Refused,          // CONNECT refused: `44` sent, closing after a grace period
};

enum class CloseCause : std::uint8_t {
    None,            // the client or websocketpp closed it
    ClientLeft,      // Engine.IO close or Socket.IO DISCONNECT
    ProtocolError,
    SlowConsumer,
    PingTimeout,
    ConnectTimeout,
    TokenExpired,
    Unauthorized,
    Shutdown,
};

std::string random_id() {
    unsigned char bytes[15];
    if (RAND_bytes(bytes, sizeof bytes) != 1) {
        // Not reachable on a working system; ids must still be unique and unguessable enough.
        static std::mt19937_64 fallback{std::random_device{}()};
        for (auto& b : bytes) b = static_cast<unsigned char>(fallback());
    }
    return base64url_encode(std::string_view(reinterpret_cast<const char*>(bytes), sizeof bytes));
}

// Close reasons travel in a close frame: at most 123 bytes, printable ASCII here.
std::string close_reason(std::string_view text) {
    std::string out;
    for (char c : text.substr(0, 120)) out.push_back(c >= 0x20 && c < 0x7F ? c : '?');
    return out;
}

const char* content_type(const std::string& path) {
    const auto dot = path.rfind('.');
    const std::string ext = dot == std::string::npos ? "" : path.substr(dot + 1);
    if (ext == "html" || ext == "htm") return "text/html; charset=utf-8";
    if (ext == "js" || ext == "mjs") return "text/javascript; charset=utf-8";
    if (ext == "css") return "text/css; charset=utf-8";
    if (ext == "json") return "application/json";
    if (ext == "svg") return "image/svg+xml";
    if (ext == "png") return "image/png";
    if (ext == "ico") return "image/x-icon";
    if (ext == "txt") return "text/plain; charset=utf-8";
    return "application/octet-stream";
}

// A request path that may be mapped under static_dir: only [A-Za-z0-9._-/], no empty,
// "." or ".." segment, no segment starting with '.' (dotfiles stay private).
bool safe_static_path(const std::string& path) {
    if (path.empty() || path[0] != '/') return false;
    std::size_t start = 1;
    while (start <= path.size()) {
        std::size_t end = path.find('/', start);
        if (end == std::string::npos) end = path.size();
        const std::string_view seg(path.data() + start, end - start);
        if (seg.empty() && end != path.size()) return false;  // "//"
        if (!seg.empty() && seg[0] == '.') return false;
        for (char c : seg)
            if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-')) return false;
        start = end + 1;
    }
    return true;
}

// Runs one handler's body; an exception (bad_alloc, a websocketpp state error) is logged
// and dropped, because one escaping a handler would unwind io_context::run and stop the daemon.
template <class F>
void shielded(const char* where, F&& body) noexcept {
    try {
        body();
    } catch (const std::exception& e) {
        log_error(std::string("internal error in ") + where + " handler: " + e.what());
    } catch (...) {
        log_error(std::string("internal error in ") + where + " handler");
    }
}

}  // namespace

struct SocketIoServer::Impl {
    struct Session {
        explicit Session(boost::asio::io_context& io) : heartbeat(io), deadline(io) {}

        SessionId id = 0;
        ConnectionPtr con;
        std::string engine_sid;  // Engine.IO sid; names the client in logs
        std::string socket_sid;  // Socket.IO sid, sent in the CONNECT reply
        std::string remote;
        Phase phase = Phase::AwaitingConnect;
        bool closing = false;    // no more frames are sent; the close is posted or under way
        std::vector<std::uint32_t> queued;  // frames of this turn's batch not yet sent to it
        bool in_batch = false;              // listed in batch.recipients
        CloseCause cause = CloseCause::None;

        std::string user, tenant;
        std::int64_t token_expires_ms = 0;  // the token's `exp`, Unix milliseconds
        std::string pid;             // recovery: private id of this session (empty when off)
        EventOffset base;            // recovery: newest event offset when it (re)connected
        bool recovering = false;     // a resume is waiting for its project checks
        EventOffset resumed_at;      // recovery: the client's offset; nothing at or before it is sent
        std::optional<std::unordered_set<std::string>> token_projects;
        std::unordered_set<std::string> projects;                // project rooms joined
        std::unordered_map<std::string, std::uint64_t> pending;  // project -> ticket of its latest join check
        std::size_t checks_in_flight = 0;
        std::uint64_t next_ticket = 0;

        boost::asio::steady_timer heartbeat;  // next ping, then the pong deadline
        std::uint64_t heartbeat_gen = 0;      // ignores a wait that completed after being replaced
        bool awaiting_pong = false;
        boost::asio::steady_timer deadline;   // CONNECT timeout, the close after a refusal, or token expiry
        std::uint64_t deadline_gen = 0;
    };

    // Queues one event for each recipient the room index yields. The frame is built and
    // prepared at the first recipient, so an event nobody listens to costs nothing.
    struct FanOut : RecipientSink {
        Impl& impl;
        const Event* event = nullptr;
        const std::string* text = nullptr;
        EventOffset offset;
        std::uint32_t frame = kNoFrame;  // index in impl.batch.frames
        bool failed = false;
        explicit FanOut(Impl& i) : impl(i) {}
        void deliver(SessionId id) override {
            if (frame == kNoFrame && !failed) {
                MessagePtr message = impl.frame_event(*event, *text);
                failed = !message;
                if (message) frame = impl.batch.add_frame(std::move(message));
            }
            // One client's failure must not cut the fan-out short for the rest.
            if (frame != kNoFrame) shielded("publish", [&] { impl.enqueue(id, frame, offset); });
        }
    };

    // Events published in one turn of the loop, written at its end: each recipient gets all
    // of its frames in one write instead of one write per frame, and recipients that get the
    // same frames (everyone in one room, the common case) share one concatenated message.
    // Under load a turn carries more commits, so the cost per delivery falls as load rises.
    struct Batch {
        std::vector<MessagePtr> frames;         // prepared frames, in publish order
        std::vector<Session*> recipients;       // sessions with queued frames (null: closed since)
        // One message per distinct frame sequence, built at its first recipient.
        std::unordered_map<std::string, MessagePtr> runs;
        std::size_t bytes = 0;  // of `frames`
        bool flush_posted = false;

        std::uint32_t add_frame(MessagePtr m) {
            bytes += m->get_header().size() + m->get_payload().size();
            frames.push_back(std::move(m));
            return static_cast<std::uint32_t>(frames.size() - 1);
        }
        void clear() {
            frames.clear();
            recipients.clear();
            runs.clear();
            bytes = 0;
        }
    };

    boost::asio::io_context& io;
    ServerOptions options;
    ProjectAccess* query_access;
    Metrics& metrics;
    std::function<bool()> healthy;

    WsServer ws;
    // Prepares each event frame once (server side: unmasked); the result is sent as is.
    WsConfig::rng_type rng;
    WsConfig::con_msg_manager_type::ptr msg_manager = std::make_shared<WsConfig::con_msg_manager_type>();
    websocketpp::processor::hybi13<WsConfig> framer{false, true, msg_manager, rng};

    RoomIndex rooms;
    std::unordered_map<SessionId, std::unique_ptr<Session>> sessions;
    Batch batch;
    bool at_capacity = false;  // the last connection was refused for a limit

    // Connection-state recovery. A session that drops (not one that said goodbye) is kept
    // here by pid for the window; a reconnect presenting the pid and the same identity gets
    // the buffered events of its rooms after its offset, then its old sid.
    struct Detached {
        std::string sid, user, tenant;
        std::vector<std::string> projects;
        EventOffset base;
        std::int64_t detached_at_ms = 0;
        SessionId claimed_by = 0;  // a resume in progress (its project checks are running)
    };
    RecoveryBuffer buffer;
    std::unordered_map<std::string, Detached> detached;  // by pid
    std::unordered_map<std::string, SessionId> by_pid;   // connected sessions
    EventOffset newest;                                  // offset of the last event published
    boost::asio::steady_timer sweep_timer;
    bool sessions_changed = false;
    bool replaying = false;
    struct DeferredResume {
        SessionId id;
        std::string pid;
        EventOffset offset;
        std::vector<std::string> projects;
    };
    std::vector<DeferredResume> deferred;  // resumes waiting for the rebuild to catch up
    SessionId next_session = 0;
    std::size_t connected = 0;  // sessions in Phase::Connected
    std::uint16_t bound_port = 0;
    bool initialized = false;
    bool listening = false;
    bool shutting_down = false;
    bool warned_no_access = false;

    // Callbacks from ProjectAccess and timers may outlive the server; they hold this weakly.
    std::shared_ptr<char> alive = std::make_shared<char>();

    // Log rate limit: a flood of bad clients must not flood stderr.
    std::chrono::steady_clock::time_point log_window{};
    unsigned log_lines = 0;
    unsigned log_suppressed = 0;

    Impl(boost::asio::io_context& io_, ServerOptions options_, ProjectAccess* access, Metrics& m,
         std::function<bool()> healthy_)
        : io(io_),
          options(std::move(options_)),
          query_access(access),
          metrics(m),
          healthy(std::move(healthy_)),
          buffer(options.recovery_window.count(), options.recovery_max_bytes),
          sweep_timer(io_) {}

    bool recovery() const { return options.recovery_window.count() > 0; }

    static std::int64_t now_ms() {
        return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count();
    }

    // Once a second: drop what fell out of the window, and refresh the gauges.
    void schedule_sweep() {
        if (!recovery()) return;
        sweep_timer.expires_after(std::chrono::seconds(1));
        sweep_timer.async_wait([this, guard = std::weak_ptr<char>(alive)](const boost::system::error_code& ec) {
            if (ec || !guard.lock()) return;
            const std::int64_t now = now_ms();
            buffer.expire(now);
            for (auto it = detached.begin(); it != detached.end();) {
                if (it->second.claimed_by == 0 && now - it->second.detached_at_ms > options.recovery_window.count()) {
                    it = detached.erase(it);
                    sessions_changed = true;
                } else {
                    ++it;
                }
            }
            update_recovery_metrics();
            schedule_sweep();
        });
    }

    void update_recovery_metrics() {
        metrics.recovery_buffer_events = buffer.size();
        metrics.recovery_buffer_bytes = buffer.bytes();
        metrics.recovery_buffer_evicted = buffer.evicted();
        metrics.detached_sessions = detached.size();
    }

    // ---- logging -------------------------------------------------------------------------

    // One line about one client, at most 50 a second.
    void log(LogLevel level, const std::string& line) {
        if (!log_enabled(level)) return;
        const auto now = std::chrono::steady_clock::now();
        if (now - log_window >= std::chrono::seconds(1)) {
            if (log_suppressed > 0)
                log_warning("(" + std::to_string(log_suppressed) + " client log lines suppressed in the last second)");
            log_window = now;
            log_lines = 0;
            log_suppressed = 0;
        }
        if (++log_lines > 50) {
            ++log_suppressed;
            return;
        }
        log_line(level, line);
    }

    static std::string who(const Session& s) { return "client " + s.engine_sid + " (" + s.remote + ")"; }

    // ---- setup ---------------------------------------------------------------------------

    std::error_code init() {
        if (initialized) return {};
        websocketpp::lib::error_code ec;
        ws.init_asio(&io, ec);
        if (ec) return ec;
        ws.clear_access_channels(websocketpp::log::alevel::all);
        ws.clear_error_channels(websocketpp::log::elevel::all);
        ws.set_user_agent("walcast");
        ws.set_reuse_addr(true);
        ws.set_max_message_size(options.max_frame);
        ws.set_max_http_body_size(WsConfig::max_http_body_size);
        ws.set_listen_backlog(1024);

        std::weak_ptr<char> guard = alive;
        // Runs once a socket is accepted, before its handshake is read. (The socket-init hook
        // runs earlier, on the socket before accept() opens it: options set there are lost.)
        ws.set_tcp_pre_init_handler([this, guard](connection_hdl h) {
            if (guard.lock()) shielded("accept", [&] { on_accepted(h); });
        });
        ws.set_validate_handler([this, guard](connection_hdl h) {
            bool accept = false;
            if (guard.lock()) shielded("upgrade", [&] { accept = on_validate(h); });
            return accept;
        });
        ws.set_open_handler([this, guard](connection_hdl h) {
            if (guard.lock()) shielded("open", [&] { on_open(h); });
        });
        ws.set_message_handler([this, guard](connection_hdl h, MessagePtr m) {
            if (guard.lock()) shielded("message", [&] { on_message(h, m); });
        });
        ws.set_close_handler([this, guard](connection_hdl h) {
            if (guard.lock()) shielded("close", [&] { on_close(h); });
        });
        ws.set_http_handler([this, guard](connection_hdl h) {
            if (guard.lock()) shielded("http", [&] { on_http(h); });
        });
        initialized = true;
        return {};
    }

    std::error_code listen() {
        if (listening) return std::make_error_code(std::errc::already_connected);
        boost::system::error_code bec;
        boost::asio::ip::tcp::resolver resolver(io);
        auto results = resolver.resolve(options.host, std::to_string(options.port),
                                        boost::asio::ip::tcp::resolver::passive, bec);
        if (bec) return bec;
        if (results.empty()) return std::make_error_code(std::errc::address_not_available);
        const boost::asio::ip::tcp::endpoint endpoint = results.begin()->endpoint();

        websocketpp::lib::error_code ec;
        ws.listen(endpoint, ec);
        if (ec) {
            // websocketpp reports every bind failure as "pass through"; redo the bind on a
            // scratch acceptor to say what it was (address in use, permission denied ...).
            boost::asio::ip::tcp::acceptor probe(io);
            boost::system::error_code pec;
            probe.open(endpoint.protocol(), pec);
            if (!pec) probe.set_option(boost::asio::socket_base::reuse_address(true), pec);
            if (!pec) probe.bind(endpoint, pec);
            return pec ? std::error_code(pec) : ec;
        }
        ws.start_accept(ec);
        if (ec) return ec;
        boost::system::error_code lec;
        bound_port = ws.get_local_endpoint(lec).port();
        listening = true;
        schedule_sweep();
        return {};
    }

    // ---- handshake -----------------------------------------------------------------------

    void on_accepted(connection_hdl h) {
        websocketpp::lib::error_code ec;
        ConnectionPtr con = ws.get_con_from_hdl(h, ec);
        if (ec) return;
        boost::system::error_code ignored;
        auto& socket = con->get_raw_socket();
        if (options.max_sockets && ConnectionSlot::alive > options.max_sockets) {
            // Closed before its handshake is read: websocketpp's read fails and it cleans up.
            note_refusal("sockets at the open-file budget");
            socket.close(ignored);
            return;
        }
        socket.set_option(boost::asio::ip::tcp::no_delay(true), ignored);  // events are small and latency matters
    }

    // Counts a connection refused for a limit; logs once per episode (until one is accepted
    // again), so a flood does not flood the journal too.
    void note_refusal(const char* why) {
        ++metrics.connections_refused;
        if (at_capacity) return;
        at_capacity = true;
        log(LogLevel::Warning, std::string("refusing connections: ") + why + " (" + std::to_string(sessions.size()) +
            " WebSocket sessions, " + std::to_string(ConnectionSlot::alive) + " connections)");
    }

    // Refuses an upgrade anywhere but /socket.io/?EIO=4&transport=websocket with 400 and an
    // Engine.IO-style JSON body, as the reference server does.
    bool on_validate(connection_hdl h) {
        websocketpp::lib::error_code ec;
        ConnectionPtr con = ws.get_con_from_hdl(h, ec);
        if (ec) return false;
        if (shutting_down) {
            con->set_status(websocketpp::http::status_code::service_unavailable);
            return false;
        }
        // An Engine.IO-style JSON refusal, as the reference server answers.
        auto refuse = [&](websocketpp::http::status_code::value status, int code, const char* message) {
            con->set_status(status);
            con->replace_header("Content-Type", "application/json");
            con->replace_header("Connection", "close");
            con->set_body(std::string("{\"code\":") + std::to_string(code) + ",\"message\":\"" + message + "\"}");
            return false;
        };
        if (options.max_connections && sessions.size() >= options.max_connections) {
            note_refusal("upgrades answered 503, limits.max_connections reached");
            return refuse(websocketpp::http::status_code::service_unavailable, 0, "too many connections");
        }
        at_capacity = false;
        const std::string& resource = con->get_resource();
        const auto q = resource.find('?');
        const std::string path = resource.substr(0, q);
        const std::string_view query = q == std::string::npos ? std::string_view() : std::string_view(resource).substr(q + 1);
        auto bad_request = [&](websocketpp::http::status_code::value status, int code, const char* message) {
            ++metrics.protocol_errors;
            return refuse(status, code, message);
        };
        if (path != "/socket.io/" && path != "/socket.io")
            return bad_request(websocketpp::http::status_code::not_found, 0, "Not found");

        std::optional<std::string_view> eio, transport, sid;
        for (std::size_t pos = 0; pos <= query.size();) {
            std::size_t amp = query.find('&', pos);
            if (amp == std::string_view::npos) amp = query.size();
            const std::string_view pair = query.substr(pos, amp - pos);
            const std::size_t eq = pair.find('=');
            const std::string_view key = pair.substr(0, eq);
            const std::string_view value = eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
            if (key == "EIO") eio = value;
            else if (key == "transport") transport = value;
            else if (key == "sid") sid = value;
            pos = amp + 1;
        }
        if (!eio || *eio != "4") return bad_request(websocketpp::http::status_code::bad_request, 5, "Unsupported protocol version");
        if (!transport || *transport != "websocket")
            return bad_request(websocketpp::http::status_code::bad_request, 0, "Transport unknown");
        // An upgrade of a polling session: walcast never creates one.
        if (sid) return bad_request(websocketpp::http::status_code::bad_request, 1, "Session ID unknown");
        return true;
    }

    void on_open(connection_hdl h) {
        websocketpp::lib::error_code ec;
        ConnectionPtr con = ws.get_con_from_hdl(h, ec);
        if (ec) return;
        ++metrics.connections_total;
        auto owned = std::make_unique<Session>(io);
        Session& s = *owned;
        s.id = ++next_session;
        s.con = con;
        s.engine_sid = random_id();
        s.remote = con->get_remote_endpoint();
        con->session_id = s.id;
        sessions.emplace(s.id, std::move(owned));

        if (shutting_down) {
            request_close(s, kCloseGoingAway, "going away", CloseCause::Shutdown);
            return;
        }
        send_text(s, encode_open(s.engine_sid, static_cast<std::uint64_t>(options.ping_interval.count()),
                                 static_cast<std::uint64_t>(options.ping_timeout.count()), options.max_frame));
        arm_deadline(s, options.connect_timeout);
        schedule_ping(s);
    }

    Session* session_of(connection_hdl h) {
        websocketpp::lib::error_code ec;
        ConnectionPtr con = ws.get_con_from_hdl(h, ec);
        if (ec) return nullptr;
        return find(con->session_id);
    }

    Session* find(SessionId id) {
        auto it = sessions.find(id);
        return it == sessions.end() ? nullptr : it->second.get();
    }

    // ---- timers --------------------------------------------------------------------------

    // Engine.IO v4 heartbeat: `2` every ping_interval, `3` due within ping_timeout; the
    // next ping is ping_interval after the pong, as in the reference server.
    void schedule_ping(Session& s) {
        s.awaiting_pong = false;
        const std::uint64_t gen = ++s.heartbeat_gen;
        s.heartbeat.expires_after(options.ping_interval);
        s.heartbeat.async_wait([this, guard = std::weak_ptr<char>(alive), id = s.id, gen](const boost::system::error_code& ec) {
            if (ec || !guard.lock()) return;
            shielded("ping timer", [&] { on_ping_due(id, gen); });
        });
    }

    void on_ping_due(SessionId id, std::uint64_t gen) {
        Session* s = find(id);
        if (!s || s->closing || s->heartbeat_gen != gen) return;
        send_text(*s, encode_ping());
        s->awaiting_pong = true;
        const std::uint64_t pong_gen = ++s->heartbeat_gen;
        s->heartbeat.expires_after(options.ping_timeout);
        s->heartbeat.async_wait([this, guard = std::weak_ptr<char>(alive), id, pong_gen](const boost::system::error_code& ec) {
            if (ec || !guard.lock()) return;
            shielded("pong timer", [&] {
                Session* s2 = find(id);
                if (!s2 || s2->closing || s2->heartbeat_gen != pong_gen || !s2->awaiting_pong) return;
                ++metrics.ping_timeouts;
                log(LogLevel::Info, who(*s2) + " closed: no pong within " + std::to_string(options.ping_timeout.count()) + " ms");
                request_close(*s2, kCloseNormal, "ping timeout", CloseCause::PingTimeout);
            });
        });
    }

    void on_pong(Session& s) {
        if (!s.awaiting_pong) return;  // unsolicited: harmless
        schedule_ping(s);
    }

    // One deadline per session: the CONNECT timeout, later replaced by the post-refusal close.
    void arm_deadline(Session& s, std::chrono::milliseconds after) {
        const std::uint64_t gen = ++s.deadline_gen;
        s.deadline.expires_after(after);
        s.deadline.async_wait([this, guard = std::weak_ptr<char>(alive), id = s.id, gen](const boost::system::error_code& ec) {
            if (ec || !guard.lock()) return;
            shielded("deadline timer", [&] {
                Session* s = find(id);
                if (!s || s->closing || s->deadline_gen != gen) return;
                if (s->phase == Phase::AwaitingConnect) {
                    ++metrics.connect_timeouts;
                    log(LogLevel::Info, who(*s) + " closed: no CONNECT within " + std::to_string(options.connect_timeout.count()) +
                        " ms");
                    request_close(*s, kClosePolicy, "connect timeout", CloseCause::ConnectTimeout);
                } else if (s->phase == Phase::Refused) {
                    request_close(*s, kClosePolicy, "unauthorized", CloseCause::Unauthorized);
                } else if (s->phase == Phase::Connected) {
                    ++metrics.token_expiry_closes;
                    log(LogLevel::Info, who(*s) + " closed: token expired (4001)");
                    request_close(*s, kCloseTokenExpired, "token expired", CloseCause::TokenExpired);
                }
            });
        });
    }

    void cancel_deadline(Session& s) {
        ++s.deadline_gen;
        s.deadline.cancel();
    }

    // ---- sending and closing -------------------------------------------------------------

    // Closes a client that lets more than max_send_buffer bytes pile up. Called after each
    // frame queued to it; never blocks and never lets a queue grow past one frame over.
    void check_backlog(Session& s) {
        const std::size_t queued = s.con->get_buffered_amount();
        if (queued <= options.max_send_buffer) return;
        ++metrics.slow_consumer_closes;
        log(LogLevel::Warning, who(s) + " closed: slow consumer (4008), " + std::to_string(queued) + " bytes queued");
        request_close(s, kCloseSlowConsumer, "slow consumer", CloseCause::SlowConsumer);
    }

    // websocketpp's send(), with the transport allowed to write at once (EagerWriteConnection).
    template <typename... Args>
    static websocketpp::lib::error_code send_now(Session& s, Args&&... args) {
        s.con->write_now = true;
        const websocketpp::lib::error_code ec = s.con->send(std::forward<Args>(args)...);
        s.con->write_now = false;
        return ec;
    }

    // Frames that are not events (handshake, CONNECT replies, acks, pings, replayed events)
    // go out at once, after whatever this turn already queued for the session.
    void send_text(Session& s, const std::string& frame) {
        if (s.closing) return;
        send_queued(s);
        if (s.closing) return;
        const websocketpp::lib::error_code ec = send_now(s, frame, websocketpp::frame::opcode::text);
        if (ec) return;  // already closing on websocketpp's side; its close handler follows
        check_backlog(s);
    }

    void enqueue(SessionId id, std::uint32_t frame, const EventOffset& offset) {
        Session* s = find(id);
        if (!s || s->closing || s->phase != Phase::Connected) return;
        // A session resumed after a restart already has what its client acknowledged by its
        // offset, though this process may still be re-sending it.
        if (offset <= s->resumed_at) return;
        if (!s->in_batch) {
            s->in_batch = true;
            batch.recipients.push_back(s);
        }
        s->queued.push_back(frame);
        if (!batch.flush_posted) {
            batch.flush_posted = true;
            boost::asio::post(io, [this, guard = std::weak_ptr<char>(alive)] {
                if (guard.lock()) shielded("flush", [&] { flush(); });
            });
        }
    }

    // The message carrying a session's queued frames: the frame itself when there is one,
    // else the frames' bytes back to back (a run of complete WebSocket frames is a valid
    // payload for one write; websocketpp sends a prepared message's bytes as they are).
    MessagePtr run_of(const std::vector<std::uint32_t>& frames) {
        if (frames.size() == 1) return batch.frames[frames[0]];
        std::string key(reinterpret_cast<const char*>(frames.data()), frames.size() * sizeof frames[0]);
        MessagePtr& run = batch.runs[key];
        if (run) return run;
        std::size_t bytes = 0;
        for (std::uint32_t f : frames) bytes += batch.frames[f]->get_header().size() + batch.frames[f]->get_payload().size();
        run = msg_manager->get_message(websocketpp::frame::opcode::text, bytes);
        std::string& out = run->get_raw_payload();
        for (std::uint32_t f : frames) {
            out += batch.frames[f]->get_header();
            out += batch.frames[f]->get_payload();
        }
        run->set_prepared(true);
        return run;
    }

    // Hands the session what this turn queued for it, in one message.
    void send_queued(Session& s) {
        if (s.queued.empty()) return;
        const MessagePtr run = run_of(s.queued);
        const std::size_t frames = s.queued.size();
        s.queued.clear();
        if (!write_run(s, run)) return;  // already closing on websocketpp's side
        metrics.deliveries += frames;
        check_backlog(s);
    }

    // Writes a prepared message: straight to the socket when websocketpp has nothing queued
    // or in flight (nearly always), whatever the socket does not take through websocketpp,
    // which writes it next. False when the connection is closing on websocketpp's side.
    bool write_run(Session& s, const MessagePtr& run) {
        ConnectionPtr& con = s.con;
        if (con->get_state() == websocketpp::session::state::open && con->get_buffered_amount() == 0) {
            const std::string& head = run->get_header();
            const std::string& body = run->get_payload();
            const ssize_t sent = con->write_directly(head, body);
            if (sent == static_cast<ssize_t>(head.size() + body.size())) return true;
            if (sent > 0) {
                MessagePtr rest = msg_manager->get_message(websocketpp::frame::opcode::text, 0);
                rest->get_raw_payload() = (head + body).substr(static_cast<std::size_t>(sent));
                rest->set_prepared(true);
                return !send_now(s, rest);
            }
        }
        return !send_now(s, run);
    }

    void flush() {
        batch.flush_posted = false;
        for (Session* s : batch.recipients) {
            if (!s) continue;
            s->in_batch = false;
            if (s->closing) s->queued.clear();
            else shielded("flush", [&] { send_queued(*s); });
        }
        batch.clear();
    }

    // Marks the session closing (nothing more is sent to it) and posts the close, so it is
    // safe from inside a fan-out or any handler. The session itself is erased only by the
    // close handler.
    void request_close(Session& s, std::uint16_t code, const std::string& reason, CloseCause cause) {
        if (s.closing) return;
        // Events already dispatched (their LSN may be confirmed) go out before the close,
        // except to a slow consumer, which is closed for what it has not read.
        if (cause == CloseCause::SlowConsumer) s.queued.clear();
        else send_queued(s);
        if (s.closing) return;
        s.closing = true;
        s.cause = cause;
        ++s.heartbeat_gen;
        ++s.deadline_gen;
        s.heartbeat.cancel();
        s.deadline.cancel();
        boost::asio::post(io, [this, guard = std::weak_ptr<char>(alive), con = s.con, code, reason] {
            if (!guard.lock()) return;
            websocketpp::lib::error_code ec;
            shielded("close", [&] { con->close(code, reason, ec); });
            // Not open any more (the peer's close crossed ours): websocketpp finishes it.
        });
    }

    void protocol_error(Session& s, const std::string& what, std::uint16_t code = kCloseProtocol) {
        ++metrics.protocol_errors;
        log(LogLevel::Notice, who(s) + " closed: protocol error: " + what);
        request_close(s, code, close_reason("protocol error: " + what), CloseCause::ProtocolError);
    }

    // ---- incoming frames -----------------------------------------------------------------

    void on_message(connection_hdl h, MessagePtr msg) {
        Session* s = session_of(h);
        if (!s || s->closing) return;
        if (msg->get_opcode() != websocketpp::frame::opcode::text) {
            protocol_error(*s, "binary frames are not supported", kCloseUnsupported);
            return;
        }
        auto packet = parse_client_packet(msg->get_payload());
        if (!packet) {
            protocol_error(*s, packet.error().message);
            return;
        }
        switch (packet->eio) {
        case EioType::Pong: on_pong(*s); break;
        case EioType::Noop: break;
        case EioType::Close: request_close(*s, kCloseNormal, "client closed", CloseCause::ClientLeft); break;
        case EioType::Message: on_socketio(*s, *packet); break;
        default: protocol_error(*s, "unexpected Engine.IO packet"); break;  // parse_client_packet refuses the rest
        }
    }

    void on_socketio(Session& s, ClientPacket& p) {
        switch (p.type) {
        case SioType::Connect: on_connect(s, p); break;
        case SioType::Disconnect:
            if (p.nsp != "/") return;  // never connected there: nothing to leave
            rooms.leave_all(s.id);
            request_close(s, kCloseNormal, "client disconnected", CloseCause::ClientLeft);
            break;
        case SioType::Event:
            if (s.phase != Phase::Connected) return protocol_error(s, "EVENT before CONNECT");
            if (p.nsp != "/") return protocol_error(s, "EVENT on namespace " + close_reason(p.nsp) + ", not connected");
            on_event(s, p);
            break;
        case SioType::Ack:
            // walcast never asks clients for acks.
            if (s.phase != Phase::Connected) return protocol_error(s, "ACK before CONNECT");
            break;
        default: protocol_error(s, "unexpected Socket.IO packet"); break;
        }
    }

    void on_connect(Session& s, const ClientPacket& p) {
        if (p.nsp != "/") {
            // Only "/" exists; the client gets connect_error for that namespace and "/" is unaffected.
            send_text(s, encode_connect_error(p.nsp, "Invalid namespace"));
            return;
        }
        if (s.phase == Phase::Connected) return protocol_error(s, "second CONNECT on \"/\"");
        if (s.phase == Phase::Refused) return;  // closing after the grace period anyway

        std::string why;
        std::optional<Claims> claims;
        if (!p.auth_token) {
            why = p.has_auth ? "auth.token is missing or not a string" : "CONNECT carries no auth object";
        } else {
            const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                                 std::chrono::system_clock::now().time_since_epoch())
                                 .count();
            auto verified = verify_jwt(*p.auth_token, options.jwt_secret, now, options.tenant_claim);
            if (verified) claims = std::move(*verified);
            else why = verified.error().message;
        }
        if (!claims) {
            // The client learns "unauthorized" and nothing else; the log keeps the reason.
            ++metrics.auth_failures;
            log(LogLevel::Notice, who(s) + " unauthorized: " + why);
            send_text(s, encode_connect_error("/", "unauthorized"));
            s.phase = Phase::Refused;
            arm_deadline(s, kRefusedGrace);
            return;
        }

        cancel_deadline(s);
        s.token_expires_ms = claims->expires_at * 1000;
        s.user = std::move(claims->subject);
        s.tenant = std::move(claims->tenant);
        if (claims->projects) s.token_projects.emplace(claims->projects->begin(), claims->projects->end());
        if (recovery() && p.auth_pid && try_resume(s, *p.auth_pid, p.auth_offset)) return;

        s.socket_sid = random_id();
        if (recovery()) {
            s.pid = random_id();
            s.base = newest;
            by_pid[s.pid] = s.id;
            sessions_changed = true;
        }
        enter_connected(s);
        send_text(s, encode_connect(s.socket_sid, s.pid));
    }

    void enter_connected(Session& s) {
        s.phase = Phase::Connected;
        ++connected;
        metrics.clients = connected;
        rooms.join(s.id, "user:" + s.user);
        rooms.join(s.id, "tenant:" + s.tenant);
        // The token's authority ends at its `exp`; so does the connection. The close is not a
        // goodbye, so the session stays resumable: a client whose `auth` callback hands out a
        // fresh token reconnects by itself and, with recovery on, misses nothing.
        const auto unix_now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count();
        arm_deadline(s, std::chrono::milliseconds(std::max<std::int64_t>(0, s.token_expires_ms - unix_now_ms)));
    }

    // A reconnect presenting a pid. Resumes when the pid is known, belongs to the same user
    // and tenant (a forged or foreign pid gets a fresh session and nothing of anyone else),
    // and nothing after its offset has left the buffer. Project rooms come back only after
    // their access check passes again. False: the caller starts a fresh session.
    bool try_resume(Session& s, const std::string& pid, const std::optional<std::string>& offset_text) {
        auto live = by_pid.find(pid);
        if (live != by_pid.end()) {
            // The old connection is not closed yet (the client saw the cut first): retire it.
            if (Session* old = find(live->second); old && old->user == s.user && old->tenant == s.tenant) {
                detach(*old);
                request_close(*old, kCloseGoingAway, "replaced by a resumed connection", CloseCause::ClientLeft);
            }
        }
        auto it = detached.find(pid);
        std::string why;
        std::optional<EventOffset> offset;
        if (it == detached.end()) why = "unknown or expired pid";
        else if (it->second.user != s.user || it->second.tenant != s.tenant) why = "pid of another identity";
        else if (it->second.claimed_by != 0 && find(it->second.claimed_by)) why = "pid already resuming";
        else {
            offset = offset_text ? EventOffset::parse(*offset_text) : std::optional<EventOffset>(it->second.base);
            if (!offset) why = "malformed offset";
            else if (!buffer.covers(*offset)) why = "events after offset " + offset->str() + " left the buffer";
        }
        if (!why.empty()) {
            ++metrics.recovery_misses;
            log(LogLevel::Info, who(s) + " fresh session instead of resume: " + why);
            return false;
        }
        Detached& d = it->second;
        d.claimed_by = s.id;
        s.recovering = true;
        s.pid = pid;
        s.socket_sid = d.sid;
        auto pending = std::make_shared<std::size_t>(d.projects.size());
        auto allowed = std::make_shared<std::vector<std::string>>();
        auto finish = [this, guard = std::weak_ptr<char>(alive), id = s.id, pid, off = *offset, pending, allowed] {
            if (!guard.lock() || --*pending != 0) return;
            shielded("resume", [&] { complete_resume(id, pid, off, *allowed); });
        };
        if (d.projects.empty()) {
            ++*pending;
            finish();
            return true;
        }
        for (const std::string& project : d.projects) {
            if (options.project_access == "token") {
                if (s.token_projects && s.token_projects->count(project)) allowed->push_back(project);
                boost::asio::post(io, finish);
            } else if (query_access) {
                query_access->check(project, s.tenant, s.user, [finish, allowed, project](bool ok) {
                    if (ok) allowed->push_back(project);
                    finish();
                });
            } else {
                boost::asio::post(io, finish);
            }
        }
        return true;
    }

    void complete_resume(SessionId id, const std::string& pid, const EventOffset& offset,
                         const std::vector<std::string>& projects) {
        if (replaying) {
            deferred.push_back(DeferredResume{id, pid, offset, projects});
            return;
        }
        Session* s = find(id);
        auto it = detached.find(pid);
        if (!s || s->closing) {
            if (it != detached.end()) it->second.claimed_by = 0;  // another reconnect may try
            return;
        }
        if (it == detached.end() || !buffer.covers(offset)) {
            // The window passed while access was being checked: a fresh session after all.
            ++metrics.recovery_misses;
            s->recovering = false;
            s->socket_sid = random_id();
            s->pid = random_id();
            s->base = newest;
            by_pid[s->pid] = s->id;
            sessions_changed = true;
            enter_connected(*s);
            send_text(*s, encode_connect(s->socket_sid, s->pid));
            return;
        }
        detached.erase(it);
        s->recovering = false;
        s->resumed_at = offset;
        by_pid[pid] = s->id;
        std::vector<std::string> room_list{"user:" + s->user, "tenant:" + s->tenant};
        for (const std::string& project : projects) {
            s->projects.insert(project);
            rooms.join(s->id, "project:" + project);
            room_list.push_back("project:" + project);
        }
        // Missed events first, then the CONNECT reply with the same sid and pid: the client
        // buffers events until it is connected, so none is lost or reordered, and rooms are
        // joined in this same turn of the loop, so nothing published now is missed either.
        const auto missed = buffer.after(offset, room_list);
        for (const BufferedEvent* e : missed) send_text(*s, *e->frame);
        metrics.recovery_replayed += missed.size();
        ++metrics.recoveries;
        s->base = newest;
        enter_connected(*s);
        sessions_changed = true;
        send_text(*s, encode_connect(s->socket_sid, s->pid));
        log(LogLevel::Info, who(*s) + " resumed session " + s->socket_sid + " from " + offset.str() + ": " +
            std::to_string(missed.size()) + " missed events, " + std::to_string(projects.size()) + " project rooms");
    }

    // Keeps a dropped session resumable for the window.
    void detach(Session& s) {
        if (!recovery() || s.pid.empty() || s.phase != Phase::Connected) return;
        by_pid.erase(s.pid);
        Detached d;
        d.sid = s.socket_sid;
        d.user = s.user;
        d.tenant = s.tenant;
        d.projects.assign(s.projects.begin(), s.projects.end());
        d.base = s.base;
        d.detached_at_ms = now_ms();
        detached[s.pid] = std::move(d);
        s.pid.clear();
        sessions_changed = true;
    }

    void reply(Session& s, const std::optional<std::uint64_t>& ack_id, const char* json) {
        if (ack_id) send_text(s, encode_ack(*ack_id, json));
    }

    static constexpr const char* kOk = R"({"ok":true})";
    static constexpr const char* kForbidden = R"({"ok":false,"error":"forbidden"})";
    static constexpr const char* kTooManyRooms = R"({"ok":false,"error":"too many rooms"})";
    static constexpr const char* kBusy = R"({"ok":false,"error":"busy"})";
    static constexpr const char* kInvalidProject = R"({"ok":false,"error":"invalid project id"})";
    static constexpr const char* kUnknownEvent = R"({"ok":false,"error":"unknown event"})";

    // The project id argument of join-project / leave-project, or nullopt when malformed.
    static std::optional<std::string> project_arg(const ClientPacket& p) {
        if (p.args.empty() || !p.args[0].is_string) return std::nullopt;
        const std::string& id = p.args[0].text;
        if (id.empty() || id.size() > kMaxProjectIdBytes) return std::nullopt;
        return id;
    }

    void on_event(Session& s, const ClientPacket& p) {
        if (p.event == "join-project") return on_join(s, p);
        if (p.event == "leave-project") return on_leave(s, p);
        reply(s, p.ack_id, kUnknownEvent);  // without an ack id: ignored
    }

    void deny(Session& s, const std::optional<std::uint64_t>& ack_id, const char* json) {
        ++metrics.join_denied;
        reply(s, ack_id, json);
    }

    void on_join(Session& s, const ClientPacket& p) {
        const auto project = project_arg(p);
        if (!project) return deny(s, p.ack_id, kInvalidProject);
        if (s.projects.count(*project)) {
            // Already a member: access was checked when it joined.
            ++metrics.join_allowed;
            return reply(s, p.ack_id, kOk);
        }
        // Joins still being checked count against the limit, so a burst cannot overshoot it.
        if (s.projects.size() + s.pending.size() >= options.max_rooms_per_client)
            return deny(s, p.ack_id, kTooManyRooms);

        if (options.project_access == "token") {
            const bool allowed = s.token_projects && s.token_projects->count(*project) > 0;
            return finish_join(s, *project, allowed, p.ack_id);
        }
        if (!query_access) {
            if (!warned_no_access) {
                warned_no_access = true;
                log_error("project_access is \"" + options.project_access +
                          "\" but no project access checker is set; every join-project is refused");
            }
            return deny(s, p.ack_id, kForbidden);
        }
        if (s.checks_in_flight >= kMaxChecksInFlight) return deny(s, p.ack_id, kBusy);

        const std::uint64_t ticket = ++s.next_ticket;
        s.pending[*project] = ticket;
        ++s.checks_in_flight;
        // `done` may run much later (or at once): it finds the session again by id, and does
        // nothing if the session or the server is gone.
        query_access->check(*project, s.tenant, s.user,
                            [this, guard = std::weak_ptr<char>(alive), id = s.id, project = *project, ticket,
                             ack = p.ack_id](bool allowed) {
                                if (!guard.lock()) return;
                                shielded("project access", [&] { on_check_done(id, project, ticket, ack, allowed); });
                            });
    }

    void on_check_done(SessionId id, const std::string& project, std::uint64_t ticket,
                       const std::optional<std::uint64_t>& ack, bool allowed) {
        Session* s = find(id);
        if (!s) return;
        if (s->checks_in_flight > 0) --s->checks_in_flight;
        auto pending = s->pending.find(project);
        const bool current = pending != s->pending.end() && pending->second == ticket;
        if (current) s->pending.erase(pending);
        if (s->closing) return;
        if (!current) {
            // A later leave-project (or a later join, which decides) superseded this join:
            // answer it, but do not join.
            if (allowed) ++metrics.join_allowed;
            else ++metrics.join_denied;
            return reply(*s, ack, allowed ? kOk : kForbidden);
        }
        finish_join(*s, project, allowed, ack);
    }

    void finish_join(Session& s, const std::string& project, bool allowed, const std::optional<std::uint64_t>& ack) {
        if (!allowed) return deny(s, ack, kForbidden);
        if (!s.projects.count(project)) {
            if (s.projects.size() >= options.max_rooms_per_client) return deny(s, ack, kTooManyRooms);
            s.projects.insert(project);
            rooms.join(s.id, "project:" + project);
            sessions_changed = true;
        }
        ++metrics.join_allowed;
        reply(s, ack, kOk);
    }

    void on_leave(Session& s, const ClientPacket& p) {
        const auto project = project_arg(p);
        if (!project) return reply(s, p.ack_id, kInvalidProject);
        s.pending.erase(*project);  // a join still being checked will not take effect
        if (s.projects.erase(*project)) {
            rooms.leave(s.id, "project:" + *project);
            sessions_changed = true;
        }
        reply(s, p.ack_id, kOk);
    }

    // ---- close ---------------------------------------------------------------------------

    void on_close(connection_hdl h) {
        websocketpp::lib::error_code ec;
        ConnectionPtr con = ws.get_con_from_hdl(h, ec);
        if (ec) return;
        auto it = sessions.find(con->session_id);
        if (it == sessions.end()) return;
        Session& s = *it->second;
        if (s.cause == CloseCause::None) {
            // Closed by the client, or by websocketpp on bad framing: tell which by its code.
            const auto code = con->get_local_close_code();
            if (code == kCloseTooBig) {
                ++metrics.oversized_frame_closes;
                log(LogLevel::Notice, who(s) + " closed: frame over " + std::to_string(options.max_frame) + " bytes (1009)");
            } else if (code == websocketpp::close::status::protocol_error ||
                       code == websocketpp::close::status::invalid_payload) {
                ++metrics.protocol_errors;
                log(LogLevel::Notice, who(s) + " closed: bad WebSocket frame (" + std::to_string(code) + " " +
                    close_reason(con->get_local_close_reason()) + ")");
            }
        }
        if (s.phase == Phase::Connected) {
            // A client that said goodbye does not come back for its events; any other drop
            // (network, slow consumer, restart) keeps the session resumable.
            if (s.cause == CloseCause::ClientLeft) {
                if (!s.pid.empty()) by_pid.erase(s.pid);
                sessions_changed = true;
            } else {
                detach(s);
            }
            --connected;
            metrics.clients = connected;
        }
        s.heartbeat.cancel();
        s.deadline.cancel();
        rooms.leave_all(s.id);
        if (s.in_batch) std::replace(batch.recipients.begin(), batch.recipients.end(), &s, static_cast<Session*>(nullptr));
        sessions.erase(it);  // pending access checks find no session and do nothing
    }

    // ---- plain HTTP ----------------------------------------------------------------------

    void on_http(connection_hdl h) {
        websocketpp::lib::error_code ec;
        ConnectionPtr con = ws.get_con_from_hdl(h, ec);
        if (ec) return;
        using status = websocketpp::http::status_code::value;
        auto respond = [&](status code, const char* type, std::string body) {
            con->set_status(code);
            con->replace_header("Content-Type", type);
            con->replace_header("Cache-Control", "no-store");
            // websocketpp serves one request per connection: say so, or keep-alive clients
            // reuse a socket that is being closed and see "socket hang up".
            con->replace_header("Connection", "close");
            con->set_body(std::move(body));
        };
        const std::string& resource = con->get_resource();
        const std::string path = resource.substr(0, resource.find('?'));
        if (con->get_request().get_method() != "GET") {
            con->replace_header("Allow", "GET");
            return respond(websocketpp::http::status_code::method_not_allowed, "text/plain; charset=utf-8",
                           "method not allowed\n");
        }
        if (path == "/healthz") {
            const bool ok = !healthy || healthy();
            return respond(ok ? websocketpp::http::status_code::ok : websocketpp::http::status_code::service_unavailable,
                           "text/plain; charset=utf-8", ok ? "ok\n" : "not streaming\n");
        }
        if (path == "/metrics")
            return respond(websocketpp::http::status_code::ok, "text/plain; version=0.0.4; charset=utf-8",
                           metrics.render());
        if (path == "/socket.io/" || path == "/socket.io")
            // HTTP long-polling is not offered: clients must use transports: ["websocket"].
            return respond(websocketpp::http::status_code::bad_request, "application/json",
                           R"({"code":0,"message":"Transport unknown"})");
        if (!options.static_dir.empty() && safe_static_path(path)) {
            std::string file = options.static_dir + path;
            if (file.back() == '/') file += "index.html";
            std::error_code fec;
            const auto size = std::filesystem::file_size(file, fec);
            if (!fec && std::filesystem::is_regular_file(file, fec) && size <= kMaxStaticFileBytes) {
                std::ifstream in(file, std::ios::binary);
                std::ostringstream body;
                body << in.rdbuf();
                if (in) return respond(websocketpp::http::status_code::ok, content_type(file), body.str());
            }
        }
        respond(websocketpp::http::status_code::not_found, "text/plain; charset=utf-8", "not found\n");
    }

    // ---- publish and shutdown ------------------------------------------------------------

    // Serialize once, frame once: the returned message is handed to every recipient as it is
    // (websocketpp's send() queues a prepared message without copying or re-framing it).
    // Frames one event once; the prepared message goes to every recipient as is.
    MessagePtr frame_event(const Event& event, const std::string& text) {
        auto raw = msg_manager->get_message(websocketpp::frame::opcode::text, 0);
        raw->get_raw_payload() = text;
        MessagePtr prepared = msg_manager->get_message();
        const websocketpp::lib::error_code ec = framer.prepare_data_frame(raw, prepared);
        if (ec) {
            // Only invalid UTF-8 gets here, which the router's JSON writer never produces.
            log_error("event " + event.name + " " + event.end_lsn.str() + ":" + std::to_string(event.index) +
                      " not sent: " + ec.message());
            return nullptr;
        }
        return prepared;
    }

    void publish(const std::vector<Event>& events, bool deliver_now) {
        const std::int64_t now = recovery() ? now_ms() : 0;
        for (const Event& event : events) {
            const EventOffset offset{event.end_lsn, event.index};
            if (newest < offset) newest = offset;
            // With recovery on, every event carries its offset as its last argument.
            auto text = std::make_shared<std::string>();
            text->reserve(event.name.size() + event.payload.size() + 32);
            append_event(*text, event.name, event.payload, recovery() ? offset.str() : std::string());
            if (recovery()) {
                BufferedEvent b;
                b.offset = offset;
                b.rooms = event.rooms;
                b.frame = text;
                b.bytes = text->size() + 64;  // the frame plus what keeping it costs
                for (const auto& r : event.rooms) b.bytes += r.size();
                buffer.push(std::move(b), now);
            }
            if (!deliver_now) continue;
            FanOut fan_out(*this);
            fan_out.event = &event;
            fan_out.text = text.get();
            fan_out.offset = offset;
            rooms.for_each_recipient(event.rooms, fan_out);
            if (batch.bytes >= kMaxBatchBytes) flush();
        }
        if (recovery()) update_recovery_metrics();
    }

    void shutdown() {
        if (shutting_down) return;
        shutting_down = true;
        sweep_timer.cancel();
        if (listening) {
            websocketpp::lib::error_code ec;
            ws.stop_listening(ec);
            listening = false;
        }
        for (auto& [id, s] : sessions) request_close(*s, kCloseGoingAway, "going away", CloseCause::Shutdown);
    }
};

SocketIoServer::SocketIoServer(boost::asio::io_context& io, ServerOptions options, ProjectAccess* query_access,
                               Metrics& metrics, std::function<bool()> healthy)
    : impl_(std::make_unique<Impl>(io, std::move(options), query_access, metrics, std::move(healthy))) {}

SocketIoServer::~SocketIoServer() = default;

std::error_code SocketIoServer::listen() {
    if (auto ec = impl_->init()) return ec;
    return impl_->listen();
}

std::uint16_t SocketIoServer::port() const { return impl_->bound_port; }

void SocketIoServer::publish(const std::vector<Event>& events, bool deliver) { impl_->publish(events, deliver); }

std::vector<SavedSession> SocketIoServer::saved_sessions() const {
    std::vector<SavedSession> out;
    const std::int64_t now = Impl::now_ms();
    for (const auto& [pid, d] : impl_->detached)
        out.push_back(SavedSession{pid, d.sid, d.user, d.tenant, d.projects, d.base.str(), d.detached_at_ms});
    for (const auto& [pid, id] : impl_->by_pid) {
        auto it = impl_->sessions.find(id);
        if (it == impl_->sessions.end()) continue;
        const auto& s = *it->second;
        out.push_back(SavedSession{pid, s.socket_sid, s.user, s.tenant,
                                   std::vector<std::string>(s.projects.begin(), s.projects.end()), s.base.str(), now});
    }
    return out;
}

void SocketIoServer::restore_sessions(std::vector<SavedSession> saved) {
    for (SavedSession& s : saved) {
        auto base = EventOffset::parse(s.base);
        if (!base || s.pid.empty()) continue;
        Impl::Detached d;
        d.sid = std::move(s.sid);
        d.user = std::move(s.user);
        d.tenant = std::move(s.tenant);
        d.projects = std::move(s.projects);
        d.base = *base;
        d.detached_at_ms = s.detached_at_ms;
        impl_->detached[s.pid] = std::move(d);
    }
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
    auto waiting = std::move(impl_->deferred);
    impl_->deferred.clear();
    for (auto& r : waiting) impl_->complete_resume(r.id, r.pid, r.offset, r.projects);
}

bool SocketIoServer::take_sessions_changed() {
    const bool changed = impl_->sessions_changed;
    impl_->sessions_changed = false;
    return changed;
}

void SocketIoServer::shutdown() { impl_->shutdown(); }

std::size_t SocketIoServer::clients() const { return impl_->connected; }

}  // namespace walcast
