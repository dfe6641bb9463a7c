// libFuzzer target: a walcast.toml. Invariant: a refusal says why and where (it starts with
// the origin given, "fuzz.toml").
#include <cstdlib>

#include "config/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    auto config = walcast::parse_config(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.toml");
    if (!config && config.error().message.rfind("fuzz.toml", 0) != 0) std::abort();
    return 0;
}
