// `walcast check`: validates the config and the database it points at, and prints each
// problem with the exact SQL or config line that fixes it. Main thread.
#pragma once

#include <string>

namespace walcast {

struct CheckOptions {
    std::string config_path;
    std::string dsn;   // overrides [postgres] dsn
    std::string slot;  // overrides [postgres] slot
};

// 0 when nothing fatal was found, 1 otherwise, 2 when the config itself is invalid.
int run_check(const CheckOptions& options);

}  // namespace walcast
