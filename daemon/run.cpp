// `walcast run`: the config turned into server options, the JWT secret, the connection
// budget from the open-file limit, and the Daemon on its loop until a signal.
#include "daemon/run.hpp"

#include <pthread.h>
#include <sys/resource.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>

#include "config/config.hpp"
#include "daemon/daemon.hpp"
#include "daemon/log.hpp"
#include "wire/jwt.hpp"

namespace walcast {

namespace {

bool split_listen(const std::string& listen, std::string& host, std::uint16_t& port) {
    auto colon = listen.rfind(':');
    if (colon == std::string::npos) return false;
    host = listen.substr(0, colon);
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    try {
        unsigned long p = std::stoul(listen.substr(colon + 1));
        if (p > 65535) return false;
        port = static_cast<std::uint16_t>(p);
    } catch (...) {
        return false;
    }
    return !host.empty();
}

}  // namespace

// The secret from WALCAST_JWT_SECRET, else systemd's credential jwt.key (LoadCredential=),
// else [auth] jwt_secret_file; trailing newlines trimmed. Never from the command line,
// where every user of the machine could read it.
bool load_secret(const Config& config, std::string& secret, std::string& error) {
    if (const char* env = std::getenv("WALCAST_JWT_SECRET"); env && *env) {
        secret = env;
        return true;
    }
    std::string path = config.jwt_secret_file;
    if (const char* creds = std::getenv("CREDENTIALS_DIRECTORY"); creds && *creds) {
        const std::string credential = std::string(creds) + "/jwt.key";
        if (std::ifstream(credential)) path = credential;
    }
    if (path.empty()) {
        error = "no JWT secret: set [auth] jwt_secret_file or the environment variable WALCAST_JWT_SECRET";
        return false;
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        error = "cannot read JWT secret file " + path + ": " + std::strerror(errno);
        return false;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    secret = ss.str();
    while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) secret.pop_back();
    if (secret.empty()) {
        error = "JWT secret file " + path + " is empty";
        return false;
    }
    return true;
}

namespace {

// Descriptors kept back from clients: PostgreSQL connections, the state file, --record,
// static files, /healthz and /metrics requests, and sockets between accept and handshake.
constexpr std::size_t kReservedDescriptors = 64;

// How many sockets (WebSocket clients, HTTP requests, handshakes in progress) the open-file
// limit allows. Raises the soft limit to the hard
// one first (Debian's shells start at 1024; the systemd unit sets both). Keeping clients
// below the limit matters beyond their own refusal: an accept() that fails with EMFILE is
// retried by websocketpp at once, in a loop that takes the whole core.
std::size_t connection_budget() {
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return 1024 - kReservedDescriptors;
    if (limit.rlim_cur < limit.rlim_max) {
        rlimit raised = limit;
        raised.rlim_cur = limit.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
    }
    const auto open_files = static_cast<std::size_t>(std::min<rlim_t>(limit.rlim_cur, 1u << 30));
    return open_files > 2 * kReservedDescriptors ? open_files - kReservedDescriptors : open_files / 2;
}

}  // namespace

bool load_redis_password(Config& config, std::string& error) {
    if (config.password_file.empty()) return true;
    std::ifstream in(config.password_file, std::ios::binary);
    std::stringstream ss;
    if (!in || !(ss << in.rdbuf())) {
        error = "cannot read [cluster] password_file " + config.password_file + ": " + std::strerror(errno);
        return false;
    }
    config.redis_password = ss.str();
    while (!config.redis_password.empty() &&
           (config.redis_password.back() == '\n' || config.redis_password.back() == '\r'))
        config.redis_password.pop_back();
    return true;
}

bool apply_config(const Config& config, ServerOptions& server, std::string& error) {
    if (!split_listen(config.listen, server.host, server.port)) {
        error = "listen address \"" + config.listen + "\" is not HOST:PORT";
        return false;
    }
    if (!config.admin_listen.empty() && !split_listen(config.admin_listen, server.admin_host, server.admin_port)) {
        error = "admin_listen address \"" + config.admin_listen + "\" is not HOST:PORT";
        return false;
    }
    server.jwt.tenant_claim = config.tenant_claim;
    server.jwt.audience = config.audience;
    server.jwt.issuer = config.issuer;
    server.ping_interval = std::chrono::milliseconds(config.ping_interval_ms);
    server.ping_timeout = std::chrono::milliseconds(config.ping_timeout_ms);
    server.max_payload = config.max_payload;
    server.connect_timeout = std::chrono::milliseconds(config.connect_timeout_ms);
    server.polling = std::find(config.transports.begin(), config.transports.end(), "polling") != config.transports.end();
    server.websocket =
        std::find(config.transports.begin(), config.transports.end(), "websocket") != config.transports.end();
    server.cors_origins = config.cors_origins;
    server.max_send_buffer = config.max_send_buffer_bytes;
    server.max_rooms_per_client = config.max_rooms_per_client;
    server.max_connections_per_user = config.max_connections_per_user;
    server.max_detached_sessions = config.max_detached_sessions;
    server.max_detached_per_user = config.max_detached_per_user;
    server.recovery_window = std::chrono::seconds(config.recovery_window_seconds);
    server.recovery_max_bytes = config.recovery_max_bytes;
    return true;
}

int serve(Config config, ServerOptions server, std::FILE* record, const sigset_t* restore_mask) {
    const std::size_t budget = connection_budget();
    server.max_sockets = budget;
    server.max_connections = config.max_connections ? std::min(config.max_connections, budget) : budget;
    if (config.max_connections > budget) {
        log_warning("limits.max_connections = " + std::to_string(config.max_connections) +
            " is more than the open-file limit allows; serving at most " + std::to_string(budget) +
            " clients (raise LimitNOFILE)");
    }
    boost::asio::io_context io(1);
    auto daemon = std::make_unique<Daemon>(io, std::move(config), std::move(server), record);
    boost::asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](const boost::system::error_code& ec, int signo) {
        if (!ec) daemon->stop_on_signal(signo);
    });
    if (restore_mask) pthread_sigmask(SIG_SETMASK, restore_mask, nullptr);
    std::signal(SIGPIPE, SIG_IGN);
    const int code = daemon->run();
    daemon.reset();
    return code;
}

int run_daemon(const RunOptions& options) {
    auto loaded = load_config(options.config_path);
    if (!loaded) {
        log_error(loaded.error().message);
        return 2;
    }
    Config config = std::move(*loaded);
    if (!options.dsn.empty()) config.dsn = options.dsn;
    if (!options.slot.empty()) config.slot = options.slot;
    if (!options.listen.empty()) config.listen = options.listen;
    if (config.dsn.empty()) {
        log_error("no database: set [postgres] dsn or --dsn");
        return 2;
    }

    ServerOptions server;
    std::string error;
    if (!load_secret(config, server.jwt_secret, error)) {
        log_error(error);
        return 2;
    }
    if (auto problem = jwt_secret_problem(server.jwt_secret)) {
        log_error("JWT secret refused: " + *problem);
        return 2;
    }
    if (!apply_config(config, server, error)) {
        log_error(error);
        return 2;
    }
    if (!load_redis_password(config, error)) {
        log_error(error);
        return 2;
    }

    std::FILE* record = nullptr;
    if (!options.record.empty()) {
        record = std::fopen(options.record.c_str(), "ab");
        if (!record) {
            log_error("cannot open " + options.record + ": " + std::strerror(errno));
            return 2;
        }
    }
    const int code = serve(std::move(config), std::move(server), record);
    if (record) std::fclose(record);
    return code;
}

}  // namespace walcast
