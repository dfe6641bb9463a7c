// Listener: one listening address that serves WebSocket upgrades and plain HTTP requests,
// on websocketpp and Boost.Asio. listener.cpp is the only translation unit that includes
// websocketpp; everything above it sees HttpExchange and WebSocketLink. Handlers run on the
// loop thread that runs the io_context; no method may be called from another thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "daemon/transport.hpp"

namespace walcast {

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

// One HTTP request and its one answer, given at once or later (defer() keeps the request
// open; the answer may come from any later handler on the loop, e.g. a long poll).
class HttpExchange {
public:
    virtual ~HttpExchange() = default;
    virtual const std::string& method() const = 0;
    virtual const std::string& path() const = 0;    // without the query
    virtual const std::string& query() const = 0;   // after '?', empty when none
    virtual const std::string& remote() const = 0;  // "1.2.3.4:5678"
    virtual std::string header(const std::string& name) const = 0;  // "" when absent
    virtual const std::string& body() const = 0;
    // Answers the request (once; later calls do nothing). "Connection: close" is added:
    // every request has its own connection.
    virtual void respond(int status, const HttpHeaders& headers, std::string body) = 0;
    virtual void defer() = 0;
    virtual bool answered() const = 0;
    // False once the request's connection is known to be gone.
    virtual bool alive() const = 0;
    // For a deferred request: `gone` runs once, on the loop, if the peer closes the
    // connection before the answer (a long poll whose client went away). Not after respond().
    virtual void watch_gone(std::function<void()> gone) { (void)gone; }
};

// One WebSocket connection, as a transport. Operations on a closed link do nothing.
class WebSocketLink : public Transport {
public:
    TransportKind kind() const override { return TransportKind::WebSocket; }
    virtual const std::string& remote() const = 0;
    virtual const std::string& path() const = 0;
    virtual const std::string& query() const = 0;  // of the upgrade request
    // Largest message accepted from the peer; a larger one closes the link with 1009.
    virtual void set_max_message_size(std::size_t bytes) = 0;
    // Reads nothing more from the peer (a flooder being closed): what it already sent stays
    // unread in the kernel instead of being parsed, frame by frame, until the close ends.
    virtual void stop_reading() = 0;
    std::uint64_t owner = 0;  // the session it belongs to (0: none yet)
};

// Why a WebSocket link closed, as far as the link knows.
struct LinkClosed {
    std::uint16_t local_code = 0;   // the code walcast sent or websocketpp chose (1009, 1002 ...)
    std::string local_reason;
    std::uint16_t remote_code = 0;  // the peer's close code, 0 if it sent none
};

// An upgrade refused: the HTTP status and body to answer with.
struct Refusal {
    int status = 400;
    std::string body;
    std::string content_type = "application/json";
};

class ListenerHandler {
public:
    virtual ~ListenerHandler() = default;
    // A request that is not a WebSocket upgrade.
    virtual void on_http(const std::shared_ptr<HttpExchange>& exchange) = 0;
    // A WebSocket upgrade request: nullptr accepts it, a Refusal answers it over HTTP.
    virtual std::unique_ptr<Refusal> on_upgrade(const HttpExchange& request) = 0;
    virtual void on_ws_open(const std::shared_ptr<WebSocketLink>& link) = 0;
    virtual void on_ws_message(WebSocketLink& link, std::string_view payload, bool binary) = 0;
    // A ping control frame; true answers it with a pong.
    virtual bool on_ws_ping(WebSocketLink& link, std::size_t bytes) = 0;
    virtual void on_ws_pong(WebSocketLink& link, std::size_t bytes) = 0;
    // A write finished; the link may have room again.
    virtual void on_ws_drain(WebSocketLink& link) = 0;
    virtual void on_ws_close(WebSocketLink& link, const LinkClosed& closed) = 0;
    // A request whose body was over max_http_body: it was answered 413 by the listener and
    // never reached on_http. `request` shows its method, path, query and headers (no body;
    // respond() does nothing).
    virtual void on_http_too_large(const HttpExchange& request) { (void)request; }
};

struct ListenerOptions {
    std::size_t max_sockets = 0;           // accepted sockets at once; more are closed at accept; 0: no cap
    std::size_t max_message_size = 64 << 10;  // initial per-link cap (raised per link after CONNECT)
    std::size_t max_http_body = 1 << 20;   // larger request bodies are answered 413
    bool websocket = true;                 // false: upgrades are answered 400
};

class Listener {
public:
    Listener(boost::asio::io_context& io, ListenerHandler& handler, ListenerOptions options);
    ~Listener();
    Listener(const Listener&) = delete;
    Listener& operator=(const Listener&) = delete;

    // Binds and starts accepting; errors are returned, not thrown.
    std::error_code listen(const std::string& host, std::uint16_t port);
    std::uint16_t port() const;
    void stop();  // stops accepting; open connections stay
    // Sockets of this listener alive now (upgraded, plain HTTP, handshake not read yet).
    std::size_t sockets() const;
    // Called when a socket is closed at accept for the max_sockets budget.
    std::function<void()> on_refused_socket;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace walcast
