// The plain HTTP side of a listener: GET /healthz, GET /metrics and, for the demo, an extra
// handler and static files. On the public listener when [server] admin_listen is unset;
// otherwise only on the admin listener, and the public one answers 404 for them. Loop thread
// only.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "daemon/listener.hpp"
#include "daemon/metrics.hpp"

namespace walcast {

struct HttpEndpoints {
    std::function<bool()> healthy;              // /healthz: 200 while true, else 503
    std::function<std::string()> health_detail; // a line or two after "ok"/"not streaming"
    const Metrics* metrics = nullptr;
    bool operator_endpoints = true;  // /healthz and /metrics
    std::string static_dir;          // files served at GET / (demo page); empty: none
    // Tried for GET requests after /healthz and /metrics, before static files (the demo's
    // /api/board). True: it took the request, answering it now or deferring it and answering
    // later on the loop. Empty: none.
    std::function<bool(const std::shared_ptr<HttpExchange>&)> extra;

    void handle(const std::shared_ptr<HttpExchange>& exchange) const;
};

// A listener that serves HttpEndpoints alone and refuses WebSocket upgrades (the admin
// listener).
class EndpointsOnly : public ListenerHandler {
public:
    explicit EndpointsOnly(HttpEndpoints endpoints) : endpoints_(std::move(endpoints)) {}
    void on_http(const std::shared_ptr<HttpExchange>& exchange) override { endpoints_.handle(exchange); }
    std::unique_ptr<Refusal> on_upgrade(const HttpExchange&) override {
        return std::make_unique<Refusal>(Refusal{404, "not found\n", "text/plain; charset=utf-8"});
    }
    void on_ws_open(const std::shared_ptr<WebSocketLink>& link) override { link->close(1008, "no WebSocket here"); }
    void on_ws_message(WebSocketLink&, std::string_view, bool) override {}
    bool on_ws_ping(WebSocketLink&, std::size_t) override { return false; }
    void on_ws_pong(WebSocketLink&, std::size_t) override {}
    void on_ws_drain(WebSocketLink&) override {}
    void on_ws_close(WebSocketLink&, const LinkClosed&) override {}

private:
    HttpEndpoints endpoints_;
};

// A request path that may be mapped under a static directory: only [A-Za-z0-9._-/], no
// empty, "." or ".." segment, no segment starting with '.' (dotfiles stay private).
bool safe_static_path(const std::string& path);

}  // namespace walcast
