// libFuzzer target: the content of a `walcast` logical message (the emit context JSON).
// Invariants: a refusal says why; a content over kMaxContextBytes is always refused.
#include <cstdlib>

#include "decoder/emit_context.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    auto context = walcast::parse_emit_context(std::string_view(reinterpret_cast<const char*>(data), size));
    if (!context && context.error().message.empty()) std::abort();
    if (context && size > walcast::kMaxContextBytes) std::abort();
    return 0;
}
