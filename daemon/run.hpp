// `walcast run`: the daemon (SPEC §7). Main thread; owns the one event loop.
#pragma once

#include <string>

namespace walcast {

struct RunOptions {
    std::string config_path;
    std::string dsn;     // overrides [postgres] dsn
    std::string slot;    // overrides [postgres] slot
    std::string listen;  // overrides [server] listen
    std::string record;  // append every raw wal2json line here
};

// 0 after SIGTERM/SIGINT; 1 on a fatal error (reason logged); 2 on bad configuration.
int run_daemon(const RunOptions& options);

}  // namespace walcast
