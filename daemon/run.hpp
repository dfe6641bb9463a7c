// `walcast run`: the daemon. Main thread; owns the one event loop.
#pragma once

#include <csignal>
#include <cstdio>
#include <string>

#include "daemon/socketio_server.hpp"
#include "config/config.hpp"

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

// The JWT secret from WALCAST_JWT_SECRET, else systemd's credential jwt.key, else
// [auth] jwt_secret_file; false with the reason when there is none or it cannot be read.
bool load_secret(const Config& config, std::string& secret, std::string& error);

// [cluster] password_file into config.redis_password (trailing newlines trimmed); true when
// there is none; false with the reason when it cannot be read.
bool load_redis_password(Config& config, std::string& error);

// Fills `server` from the config's [server], [auth], [limits] and [recovery] keys (not the
// secret). False, with the reason, when an address does not parse.
bool apply_config(const Config& config, ServerOptions& server, std::string& error);

// Runs the daemon on a validated config until SIGTERM/SIGINT (0) or a fatal error (1).
// `record`, when not null, receives every wal2json line. `restore_mask`, when not null, is
// the signal mask to restore once SIGINT/SIGTERM are handled (a caller that blocked them
// during its own set-up). Used by run and demo.
int serve(Config config, ServerOptions server, std::FILE* record, const sigset_t* restore_mask = nullptr);

}  // namespace walcast
