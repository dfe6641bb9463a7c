// libFuzzer target: one CopyData message of the replication protocol ('w' XLogData, 'k'
// keepalive). Invariants: a refusal says why; an XLogData payload is the input's tail, never
// a byte outside it.
#include <cstdlib>
#include <variant>

#include "decoder/copy_message.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view bytes(reinterpret_cast<const char*>(data), size);
    auto msg = walcast::parse_copy_message(bytes);
    if (!msg) {
        if (msg.error().message.empty()) std::abort();
        return 0;
    }
    if (const auto* w = std::get_if<walcast::XLogData>(&*msg)) {
        if (w->payload.data() < bytes.data() || w->payload.data() + w->payload.size() != bytes.data() + bytes.size())
            std::abort();
    }
    return 0;
}
