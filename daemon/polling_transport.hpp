// PollingTransport: Engine.IO v4 HTTP long-polling for one session. Packets queue in one
// payload (separated by \x1e); a GET takes the whole payload at once, or waits until there
// is something to take (the heartbeat's ping comes at the latest after pingInterval).
// One GET may wait at a time. Loop thread only.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>

#include "daemon/listener.hpp"
#include "daemon/transport.hpp"

namespace walcast {

class PollingTransport : public Transport {
public:
    explicit PollingTransport(boost::asio::io_context& io);
    ~PollingTransport() override;

    TransportKind kind() const override { return TransportKind::Polling; }
    void send(std::string_view packet) override;
    void send_events(const EventRun& run) override;
    std::size_t buffered() const override { return payload_.size(); }
    // Ends polling: a waiting GET gets what is queued (and a close packet when `code` is not
    // an upgrade), later GETs are refused by the engine.
    void close(std::uint16_t code, const std::string& reason) override;

    // A GET: answered now when packets are queued, else held. False when a GET is already
    // waiting: the caller treats the second one as a protocol error.
    bool poll(const std::shared_ptr<HttpExchange>& get);
    bool waiting() const { return static_cast<bool>(waiting_); }
    // Answers a waiting GET with a noop packet, so the client's poll loop turns over (during
    // an upgrade, and when the transport is handed over to a WebSocket).
    void release_waiting();
    // The queued packets, removed: what a WebSocket sends after an upgrade completes.
    std::string take_payload();

    // Headers every answer carries (CORS for this session's origin).
    HttpHeaders response_headers;
    // A GET took queued packets: there is room again.
    std::function<void()> on_drain;
    // The connection of the waiting GET closed before its answer: the client went away.
    std::function<void()> on_poll_gone;

private:
    boost::asio::io_context& io_;
    std::shared_ptr<HttpExchange> waiting_;
    std::string payload_;  // packets not yet taken, joined by \x1e
    bool flush_posted_ = false;
    bool closed_ = false;
    std::shared_ptr<char> alive_ = std::make_shared<char>();

    void append(std::string_view packet);
    void schedule_flush();
    void answer(std::string body);
};

}  // namespace walcast
