// libFuzzer target: one text frame from a client, as Engine.IO v4 / Socket.IO v5. Invariants:
// a refusal says why; an accepted EVENT's name is not a reserved one (an empty name is
// allowed, as Socket.IO allows it); ack ids stay within JavaScript's safe integers.
#include <cstdlib>

#include "wire/socketio_packet.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    auto packet = walcast::parse_client_packet(std::string_view(reinterpret_cast<const char*>(data), size));
    if (!packet) {
        if (packet.error().message.empty()) std::abort();
        return 0;
    }
    if (packet->ack_id && *packet->ack_id > walcast::kMaxAckId) std::abort();
    if (packet->eio == walcast::EioType::Message && packet->type == walcast::SioType::Event &&
        walcast::is_reserved_event_name(packet->event))
        std::abort();
    return 0;
}
