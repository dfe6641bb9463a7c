// Listener on websocketpp 0.8.2 (Asio, no TLS, one thread): accepts sockets within the
// open-file budget, turns upgrades into WebSocketLinks and other requests into
// HttpExchanges (deferrable, for long polling), and writes event frames straight to the
// socket when nothing else is queued. The only translation unit that includes websocketpp.
#include "daemon/listener.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <websocketpp/concurrency/none.hpp>
#include <websocketpp/config/asio_no_tls.hpp>
#include <websocketpp/server.hpp>

#include <algorithm>
#include <cerrno>

#include "daemon/eager_write.hpp"
#include "daemon/log.hpp"

namespace walcast {

namespace {

class LinkImpl;

// websocketpp copies each handler of the endpoint into every connection. A handler that
// captures a listener's address and serial (16 trivially copyable bytes) lives inside its
// std::function; one that captured a weak_ptr cost a heap allocation per handler and per
// connection. The serial tells the listener the handler was made for from a later one at
// the same address. Loop thread only.
struct ListenerRef {
    const void* impl = nullptr;
    std::uint64_t serial = 0;

    static inline std::vector<ListenerRef> live;  // listeners alive now
    static inline std::uint64_t next_serial = 0;

    bool alive() const {
        return std::any_of(live.begin(), live.end(),
                           [&](const ListenerRef& l) { return l.impl == impl && l.serial == serial; });
    }
};

// Carried by every websocketpp connection (config::connection_base): the link it carries,
// once upgraded. Also counts sockets, across listeners: they share one open-file budget.
struct ConnectionSlot {
    static inline std::size_t alive = 0;

    ConnectionSlot() { ++alive; }
    ~ConnectionSlot() { --alive; }
    ConnectionSlot(const ConnectionSlot&) = delete;
    ConnectionSlot& operator=(const ConnectionSlot&) = delete;

    LinkImpl* link = nullptr;  // cleared by the link when it goes
};

// The listener's connections carry a ConnectionSlot, and these bounds.
struct WsConfig : listener_detail::EagerWriteConfig<ConnectionSlot> {
    typedef WsConfig type;

    // Bounds a peer that never finishes its HTTP request or never answers our close frame
    // (a slow consumer closed with 4008 is dropped after this even if it reads nothing).
    static const long timeout_open_handshake = 5000;
    static const long timeout_close_handshake = 3000;
    // Clients send little (a handshake, CONNECT, joins, pongs); the buffer is part of every
    // connection object, so its size is most of what an idle connection costs. A longer
    // request or message is read in several reads.
    static const size_t connection_read_buffer_size = 128;
};

using WsServer = websocketpp::server<WsConfig>;
using ConnectionPtr = WsServer::connection_ptr;
using MessagePtr = WsServer::message_ptr;
using MessageManager = WsConfig::con_msg_manager_type;
using websocketpp::connection_hdl;

// websocketpp's send(), with the transport allowed to write at once (EagerWriteConnection).
template <typename... Args>
websocketpp::lib::error_code send_now(const ConnectionPtr& con, Args&&... args) {
    con->write_now = true;
    const websocketpp::lib::error_code ec = con->send(std::forward<Args>(args)...);
    con->write_now = false;
    return ec;
}

void split_resource(const std::string& resource, std::string& path, std::string& query) {
    const auto q = resource.find('?');
    path = resource.substr(0, q);
    query = q == std::string::npos ? std::string() : resource.substr(q + 1);
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

class ExchangeImpl : public HttpExchange {
public:
    explicit ExchangeImpl(ConnectionPtr con) : ExchangeImpl(con, con->get_resource()) {}
    // `resource`: the request target, for a request websocketpp refused before it set the
    // connection's URI (get_resource() must not be called then).
    ExchangeImpl(ConnectionPtr con, const std::string& resource) : con_(std::move(con)) {
        split_resource(resource, path_, query_);
        remote_ = con_->get_remote_endpoint();
    }
    ~ExchangeImpl() override {
        // A deferred request nobody answered would hold its socket forever.
        if (deferred_ && con_) respond(503, {{"Content-Type", "text/plain; charset=utf-8"}}, "unavailable\n");
    }

    // websocketpp reads nothing more from an HTTP connection once the request is in, so it
    // cannot see the peer leave while the answer is deferred; this waits for the socket to
    // turn readable. EOF or an error means the peer is gone. Data would be a pipelined
    // request (no engine.io client sends one): the watch ends there, the answer still goes.
    void watch_gone(std::function<void()> gone) override {
        if (!con_ || !deferred_ || view_only) return;
        gone_ = std::move(gone);
        watch();
    }

    const std::string& method() const override { return con_->get_request().get_method(); }
    const std::string& path() const override { return path_; }
    const std::string& query() const override { return query_; }
    const std::string& remote() const override { return remote_; }
    std::string header(const std::string& name) const override { return con_->get_request_header(name); }
    const std::string& body() const override { return con_->get_request_body(); }
    bool answered() const override { return !con_; }
    // Lets go of the connection without answering (a view of an upgrade request).
    void release() { con_.reset(); }
    bool alive() const override { return con_ && con_->get_state() != websocketpp::session::state::closed; }

    // A request websocketpp answered itself: readable, but defer() and respond() do nothing.
    bool view_only = false;

    void defer() override {
        if (con_ && !view_only && !deferred_ && !con_->defer_http_response()) deferred_ = true;
    }

    void respond(int status, const HttpHeaders& headers, std::string body) override {
        if (!con_ || view_only) return;
        ConnectionPtr con = std::move(con_);
        con->set_status(static_cast<websocketpp::http::status_code::value>(status));
        for (const auto& [name, value] : headers) con->replace_header(name, value);
        // websocketpp serves one request per connection: say so, or keep-alive clients
        // reuse a socket that is being closed and see "socket hang up".
        con->replace_header("Connection", "close");
        con->set_body(std::move(body));
        if (deferred_) {
            websocketpp::lib::error_code ec;
            con->send_http_response(ec);
        }
    }

private:
    ConnectionPtr con_;  // null once answered
    std::string path_, query_, remote_;
    bool deferred_ = false;
    std::function<void()> gone_;
    // The watch's handler may outlive the exchange; it holds this weakly.
    std::shared_ptr<char> alive_ = std::make_shared<char>();

    void watch() {
        auto& socket = con_->get_raw_socket();
        // The handler holds the connection: websocketpp closing the socket after the answer
        // completes the wait (aborted, or readable with the exchange answered).
        socket.async_wait(boost::asio::socket_base::wait_read,
                          [this, guard = std::weak_ptr<char>(alive_), con = con_](const boost::system::error_code& ec) {
                              if (ec || !guard.lock() || con_ != con || !gone_) return;
                              shielded("poll watch", [&] { on_readable(); });
                          });
    }

    void on_readable() {
        char byte;
        const ssize_t n = ::recv(con_->get_raw_socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n > 0) return;  // a pipelined request: not ours to read
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return watch();
        std::function<void()> gone = std::move(gone_);
        gone_ = nullptr;
        gone();
    }
};

class LinkImpl : public WebSocketLink {
public:
    LinkImpl(ConnectionPtr con, std::shared_ptr<MessageManager> messages, ListenerRef listener,
             ListenerHandler& handler)
        : con_(std::move(con)), messages_(std::move(messages)), listener_(listener), handler_(handler) {
        split_resource(con_->get_resource(), path_, query_);
        remote_ = con_->get_remote_endpoint();
        con_->link = this;
        // Cleared by detach(), which runs before the link goes: the pointer stays valid.
        con_->write_done_context = this;
        con_->on_write_done = [](void* link) { static_cast<LinkImpl*>(link)->drained(); };
    }
    ~LinkImpl() override { detach(); }

    // The connection closed: nothing more can be sent; the connection may go.
    void detach() {
        if (!con_) return;
        con_->link = nullptr;
        con_->on_write_done = nullptr;
        con_->write_done_context = nullptr;
        con_.reset();
    }

    // A write websocketpp started has completed: the link may have room again.
    void drained() {
        if (listener_.alive()) shielded("drain", [&] { handler_.on_ws_drain(*this); });
    }

    const std::string& remote() const override { return remote_; }
    const std::string& path() const override { return path_; }
    const std::string& query() const override { return query_; }

    bool open() const { return con_ && con_->get_state() == websocketpp::session::state::open; }

    void stop_reading() override {
        if (con_) con_->pause_reading();
    }

    void set_max_message_size(std::size_t bytes) override {
        if (con_) con_->set_max_message_size(bytes);
    }

    std::size_t buffered() const override { return con_ ? con_->get_buffered_amount() : 0; }

    bool idle() const { return con_ && !con_->writing() && con_->get_buffered_amount() == 0; }

    void send(std::string_view packet) override {
        if (!open()) return;
        std::string frame;
        frame.reserve(packet.size() + 10);
        append_websocket_text_header(frame, packet.size());
        frame.append(packet.data(), packet.size());
        write(frame, nullptr);
    }

    void send_events(const EventRun& run) override {
        if (!open() || run.packets().empty()) return;
        write(run.websocket_frames(), &run.transport_cache);
    }

    void close(std::uint16_t code, const std::string& reason) override {
        if (!con_ || closing_) return;
        closing_ = true;
        // Posted, so a close decided inside a handler or a fan-out never re-enters websocketpp.
        boost::asio::post(con_->get_raw_socket().get_executor(), [con = con_, code, reason] {
            websocketpp::lib::error_code ec;
            con->close(code, reason, ec);  // not open any more (the peer's close crossed ours): fine
        });
    }

private:
    ConnectionPtr con_;
    std::shared_ptr<MessageManager> messages_;
    ListenerRef listener_;
    ListenerHandler& handler_;
    std::string path_, query_, remote_;
    bool closing_ = false;

    MessagePtr prepared(const std::string& bytes) {
        MessagePtr m = messages_->get_message(websocketpp::frame::opcode::text, 0);
        m->get_raw_payload() = bytes;
        m->set_prepared(true);
        return m;
    }

    // Writes ready frames: straight to the socket when websocketpp has nothing queued or in
    // flight (nearly always); whatever the socket does not take goes through websocketpp,
    // which writes it next. `cache` shares one prepared message among the recipients of a
    // run that all have to queue it.
    void write(const std::string& bytes, std::shared_ptr<void>* cache) {
        if (con_->get_buffered_amount() == 0) {
            const ssize_t sent = con_->write_directly(bytes);
            if (sent == static_cast<ssize_t>(bytes.size())) return;
            if (sent > 0) {
                send_now(con_, prepared(bytes.substr(static_cast<std::size_t>(sent))));
                return;
            }
        }
        if (!cache) {
            send_now(con_, prepared(bytes));
            return;
        }
        if (!*cache) *cache = std::make_shared<MessagePtr>(prepared(bytes));
        send_now(con_, *std::static_pointer_cast<MessagePtr>(*cache));
    }
};

}  // namespace

struct Listener::Impl {
    boost::asio::io_context& io;
    ListenerHandler& handler;
    ListenerOptions options;
    Listener& owner;
    WsServer ws;
    std::shared_ptr<MessageManager> messages = std::make_shared<MessageManager>();
    std::uint16_t bound_port = 0;
    bool listening = false;
    // Callbacks from websocketpp may run after the listener is gone; they hold this and
    // check that it is still alive.
    const ListenerRef self{this, ++ListenerRef::next_serial};

    Impl(boost::asio::io_context& io_, ListenerHandler& h, ListenerOptions o, Listener& l)
        : io(io_), handler(h), options(std::move(o)), owner(l) {
        ListenerRef::live.push_back(self);
    }
    // Static: it may be asked about an Impl that is gone.
    static bool alive(const Impl* impl, std::uint64_t serial) { return ListenerRef{impl, serial}.alive(); }

    ~Impl() {
        auto& live = ListenerRef::live;
        live.erase(std::remove_if(live.begin(), live.end(), [&](const ListenerRef& r) { return r.impl == this; }),
                   live.end());
    }

    ConnectionPtr con_of(connection_hdl h) {
        websocketpp::lib::error_code ec;
        ConnectionPtr con = ws.get_con_from_hdl(h, ec);
        return ec ? nullptr : con;
    }

    std::error_code init() {
        websocketpp::lib::error_code ec;
        ws.init_asio(&io, ec);
        if (ec) return ec;
        ws.clear_access_channels(websocketpp::log::alevel::all);
        ws.clear_error_channels(websocketpp::log::elevel::all);
        ws.set_user_agent("walcast");
        ws.set_reuse_addr(true);
        ws.set_max_message_size(options.max_message_size);
        ws.set_max_http_body_size(options.max_http_body);
        ws.set_listen_backlog(1024);

        // Each handler holds `this` and the serial: 16 bytes, kept inside its std::function.
        const std::uint64_t serial = self.serial;
        // Runs once a socket is accepted, before its handshake is read. (The socket-init hook
        // runs earlier, on the socket before accept() opens it: options set there are lost.)
        ws.set_tcp_pre_init_handler([this, serial](connection_hdl h) {
            if (alive(this, serial)) shielded("accept", [&] { on_accepted(h); });
        });
        ws.set_validate_handler([this, serial](connection_hdl h) {
            bool accept = false;
            if (alive(this, serial)) shielded("upgrade", [&] { accept = on_validate(h); });
            return accept;
        });
        ws.set_open_handler([this, serial](connection_hdl h) {
            if (alive(this, serial)) shielded("open", [&] { on_open(h); });
        });
        ws.set_message_handler([this, serial](connection_hdl h, MessagePtr m) {
            if (!alive(this, serial)) return;
            shielded("message", [&] {
                if (LinkImpl* link = link_of(h))
                    handler.on_ws_message(*link, m->get_payload(), m->get_opcode() != websocketpp::frame::opcode::text);
            });
        });
        ws.set_ping_handler([this, serial](connection_hdl h, std::string payload) {
            bool answer = false;
            if (!alive(this, serial)) return answer;
            shielded("ping", [&] {
                LinkImpl* link = link_of(h);
                // At most one pong waits at a time: a peer that pings and never reads cannot
                // make pongs pile up (a pong may answer only the latest ping).
                answer = link && handler.on_ws_ping(*link, payload.size()) && link->idle();
            });
            return answer;
        });
        ws.set_pong_handler([this, serial](connection_hdl h, std::string payload) {
            if (!alive(this, serial)) return;
            shielded("pong", [&] {
                if (LinkImpl* link = link_of(h)) handler.on_ws_pong(*link, payload.size());
            });
        });
        ws.set_close_handler([this, serial](connection_hdl h) {
            if (alive(this, serial)) shielded("close", [&] { on_close(h); });
        });
        ws.set_fail_handler([this, serial](connection_hdl h) {
            if (alive(this, serial)) shielded("fail", [&] { on_fail(h); });
        });
        ws.set_http_handler([this, serial](connection_hdl h) {
            if (!alive(this, serial)) return;
            shielded("http", [&] {
                if (ConnectionPtr con = con_of(h)) handler.on_http(std::make_shared<ExchangeImpl>(con));
            });
        });
        return {};
    }

    LinkImpl* link_of(connection_hdl h) {
        ConnectionPtr con = con_of(h);
        return con ? con->link : nullptr;
    }

    void on_accepted(connection_hdl h) {
        ConnectionPtr con = con_of(h);
        if (!con) return;
        boost::system::error_code ignored;
        auto& socket = con->get_raw_socket();
        if (options.max_sockets && ConnectionSlot::alive > options.max_sockets) {
            // Closed before its handshake is read: websocketpp's read fails and it cleans up.
            if (owner.on_refused_socket) owner.on_refused_socket();
            socket.close(ignored);
            return;
        }
        socket.set_option(boost::asio::ip::tcp::no_delay(true), ignored);  // events are small and latency matters
        // At most this much unsent data waits in the kernel per socket: a slow reader's
        // backlog stays in walcast's own account (and its catch-up), and a ping is never
        // queued behind megabytes the peer has not read.
        const int lowat = 128 * 1024;
        ::setsockopt(socket.native_handle(), IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof lowat);
    }

    bool on_validate(connection_hdl h) {
        ConnectionPtr con = con_of(h);
        if (!con) return false;
        std::unique_ptr<Refusal> refusal;
        if (!options.websocket) {
            refusal = std::make_unique<Refusal>(Refusal{400, R"({"code":3,"message":"Bad request"})"});
        } else {
            ExchangeImpl request(con);
            refusal = handler.on_upgrade(request);
            request.release();
        }
        if (!refusal) return true;
        con->set_status(static_cast<websocketpp::http::status_code::value>(refusal->status));
        con->replace_header("Content-Type", refusal->content_type);
        con->replace_header("Connection", "close");
        con->set_body(refusal->body);
        return false;
    }

    // websocketpp keeps the handshake's request and response for the connection's life;
    // nothing reads their headers after the upgrade (the link copied what it needs).
    static void forget_handshake_headers(const ConnectionPtr& con) {
        const auto clear = [](websocketpp::http::parser::parser& message) {
            std::vector<std::string> names;
            names.reserve(message.get_headers().size());
            for (const auto& header : message.get_headers()) names.push_back(header.first);
            for (const std::string& name : names) message.remove_header(name);
        };
        // The connection owns both messages; only its accessors are const.
        clear(const_cast<WsServer::connection_type::request_type&>(con->get_request()));
        clear(const_cast<WsServer::connection_type::response_type&>(con->get_response()));
        // The parsed request URI too: only websocketpp's own logging (compiled out, and
        // null-safe) and get_resource() callers read it; the link copied path and query.
        con->set_uri(nullptr);
    }

    void on_open(connection_hdl h) {
        ConnectionPtr con = con_of(h);
        if (!con) return;
        auto link = std::make_shared<LinkImpl>(con, messages, self, handler);
        forget_handshake_headers(con);
        handler.on_ws_open(link);
    }

    // A connection that ended before or instead of becoming a WebSocket. websocketpp answers
    // a request body over max_http_body with 413 itself, before any handler sees the request;
    // the handler still learns of it (a polling session must end, as the client will not
    // resend what it was refused).
    void on_fail(connection_hdl h) {
        ConnectionPtr con = con_of(h);
        if (!con) return;
        if (con->link) return on_close(h);
        if (con->get_response_code() != websocketpp::http::status_code::request_entity_too_large) return;
        ExchangeImpl request(con, con->get_request().get_uri());
        request.view_only = true;  // answered already
        handler.on_http_too_large(request);
        request.release();
    }

    void on_close(connection_hdl h) {
        ConnectionPtr con = con_of(h);
        if (!con || !con->link) return;
        LinkImpl* link = con->link;
        LinkClosed closed;
        closed.local_code = con->get_local_close_code();
        closed.local_reason = con->get_local_close_reason();
        closed.remote_code = con->get_remote_close_code();
        link->detach();
        handler.on_ws_close(*link, closed);
    }
};

Listener::Listener(boost::asio::io_context& io, ListenerHandler& handler, ListenerOptions options)
    : impl_(std::make_unique<Impl>(io, handler, std::move(options), *this)) {}

Listener::~Listener() { stop(); }

std::error_code Listener::listen(const std::string& host, std::uint16_t port) {
    if (impl_->listening) return std::make_error_code(std::errc::already_connected);
    if (auto ec = impl_->init()) return ec;
    boost::system::error_code bec;
    boost::asio::ip::tcp::resolver resolver(impl_->io);
    auto results = resolver.resolve(host, std::to_string(port), boost::asio::ip::tcp::resolver::passive, bec);
    if (bec) return bec;
    if (results.empty()) return std::make_error_code(std::errc::address_not_available);
    const boost::asio::ip::tcp::endpoint endpoint = results.begin()->endpoint();

    websocketpp::lib::error_code ec;
    impl_->ws.listen(endpoint, ec);
    if (ec) {
        // websocketpp reports every bind failure as "pass through"; redo the bind on a
        // scratch acceptor to say what it was (address in use, permission denied ...).
        boost::asio::ip::tcp::acceptor probe(impl_->io);
        boost::system::error_code pec;
        probe.open(endpoint.protocol(), pec);
        if (!pec) probe.set_option(boost::asio::socket_base::reuse_address(true), pec);
        if (!pec) probe.bind(endpoint, pec);
        return pec ? std::error_code(pec) : ec;
    }
    impl_->ws.start_accept(ec);
    if (ec) return ec;
    boost::system::error_code lec;
    impl_->bound_port = impl_->ws.get_local_endpoint(lec).port();
    impl_->listening = true;
    return {};
}

std::uint16_t Listener::port() const { return impl_->bound_port; }

void Listener::stop() {
    if (!impl_->listening) return;
    websocketpp::lib::error_code ec;
    impl_->ws.stop_listening(ec);
    impl_->listening = false;
}

std::size_t Listener::sockets() const { return ConnectionSlot::alive; }

}  // namespace walcast
