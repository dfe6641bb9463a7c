// libFuzzer target: one packet from a client, as Engine.IO v4 / Socket.IO v5, on both
// channels. Invariants: a refusal says why; an accepted EVENT's name is not a reserved one
// (an empty name is allowed, as Socket.IO allows it); ack ids stay within JavaScript's safe
// integers; a session's transport never yields open, ping or upgrade; an upgrading WebSocket
// yields nothing but the probe `2probe` (ping) and `5` (upgrade).
#include <cstdlib>

#include "wire/socketio_packet.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view frame(reinterpret_cast<const char*>(data), size);

    auto packet = walcast::parse_client_packet(frame);
    if (!packet) {
        if (packet.error().message.empty()) std::abort();
    } else {
        if (packet->eio == walcast::EioType::Open || packet->eio == walcast::EioType::Ping ||
            packet->eio == walcast::EioType::Upgrade)
            std::abort();
        if (packet->ack_id && *packet->ack_id > walcast::kMaxAckId) std::abort();
        if (packet->eio == walcast::EioType::Message && packet->type == walcast::SioType::Event &&
            walcast::is_reserved_event_name(packet->event))
            std::abort();
    }

    auto probe = walcast::parse_client_packet(frame, walcast::ClientChannel::UpgradeProbe);
    if (!probe) {
        if (probe.error().message.empty()) std::abort();
    } else if (!(frame == "2probe" && probe->eio == walcast::EioType::Ping) &&
               !(frame == "5" && probe->eio == walcast::EioType::Upgrade)) {
        std::abort();
    }
    return 0;
}
