// Engine.IO transports behind one small interface: a WebSocket connection or HTTP
// long-polling requests both carry text packets to one peer, report what is still queued,
// and close. Loop thread only.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "routing/fan_out.hpp"

namespace walcast {

enum class TransportKind : std::uint8_t { Polling, WebSocket };

inline const char* transport_name(TransportKind k) { return k == TransportKind::Polling ? "polling" : "websocket"; }

// WebSocket close codes (4000-4999 are the application's). Polling sessions end without a
// code on the wire; the code still names the cause in logs and metrics.
namespace close_code {
constexpr std::uint16_t kNormal = 1000;
constexpr std::uint16_t kGoingAway = 1001;
constexpr std::uint16_t kProtocol = 1002;
constexpr std::uint16_t kUnsupported = 1003;
constexpr std::uint16_t kPolicy = 1008;
constexpr std::uint16_t kTooBig = 1009;
constexpr std::uint16_t kResync = 4000;  // events were lost: reconnect (recovered: false) and refetch
constexpr std::uint16_t kTokenExpired = 4001;
constexpr std::uint16_t kSlowConsumer = 4008;
// Sent more than its budget. Not 1008: websocketpp drops the TCP connection right after a
// 1008 frame, and a peer that is still sending then gets a reset instead of the frame.
constexpr std::uint16_t kFlood = 4029;
}  // namespace close_code

class Transport {
public:
    virtual ~Transport() = default;
    virtual TransportKind kind() const = 0;
    // Queues one Engine.IO packet ("2", "40{...}", "42[...]"), after everything queued before.
    virtual void send(std::string_view packet) = 0;
    // Queues a run of Socket.IO event packets (each becomes an Engine.IO message).
    virtual void send_events(const EventRun& run) = 0;
    // Bytes queued in walcast for this peer and not yet handed to the kernel.
    virtual std::size_t buffered() const = 0;
    // Ends the transport after what is queued; nothing more is sent.
    virtual void close(std::uint16_t code, const std::string& reason) = 0;
};

}  // namespace walcast
