// PollingTransport (see polling_transport.hpp).
#include "daemon/polling_transport.hpp"

#include <boost/asio/post.hpp>

#include "wire/engineio.hpp"

namespace walcast {

PollingTransport::PollingTransport(boost::asio::io_context& io) : io_(io) {}

PollingTransport::~PollingTransport() {
    // A held GET must not outlive its session: answer it so the client polls again and learns.
    on_drain = nullptr;
    on_poll_gone = nullptr;
    if (waiting_) release_waiting();
}

void PollingTransport::append(std::string_view packet) { append_polling_packet(payload_, packet); }

void PollingTransport::send(std::string_view packet) {
    if (closed_) return;
    append(packet);
    schedule_flush();
}

void PollingTransport::send_events(const EventRun& run) {
    if (closed_) return;
    for (const Packet& p : run.packets()) append(*p);
    schedule_flush();
}

// Packets sent in one turn of the loop leave in one response.
void PollingTransport::schedule_flush() {
    if (!waiting_ || flush_posted_) return;
    flush_posted_ = true;
    boost::asio::post(io_, [this, guard = std::weak_ptr<char>(alive_)] {
        if (!guard.lock()) return;
        flush_posted_ = false;
        if (waiting_ && !payload_.empty()) answer(std::exchange(payload_, {}));
    });
}

void PollingTransport::answer(std::string body) {
    std::shared_ptr<HttpExchange> get = std::move(waiting_);
    waiting_.reset();
    HttpHeaders headers = response_headers;
    headers.emplace_back("Content-Type", "text/plain; charset=UTF-8");
    headers.emplace_back("Cache-Control", "no-store");
    get->respond(200, headers, std::move(body));
    if (on_drain) on_drain();
}

bool PollingTransport::poll(const std::shared_ptr<HttpExchange>& get) {
    if (waiting_) return false;
    if (!payload_.empty()) {
        waiting_ = get;
        answer(std::exchange(payload_, {}));
        return true;
    }
    waiting_ = get;
    get->defer();
    get->watch_gone([this, guard = std::weak_ptr<char>(alive_), raw = get.get()] {
        if (!guard.lock() || waiting_.get() != raw || !on_poll_gone) return;
        on_poll_gone();
    });
    return true;
}

void PollingTransport::release_waiting() {
    if (waiting_) answer("6");
}

std::string PollingTransport::take_payload() { return std::exchange(payload_, {}); }

void PollingTransport::close(std::uint16_t, const std::string&) {
    if (closed_) return;
    closed_ = true;
    if (!waiting_) return;
    append("1");
    answer(std::exchange(payload_, {}));
}

}  // namespace walcast
