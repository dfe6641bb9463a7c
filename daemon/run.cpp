// The daemon: replication stream -> decoder -> assembler -> router -> Socket.IO server, all on
// one io_context. LSN state is explicit: `dispatched` is the end of the last transaction
// whose events were handed to every subscriber; only it is confirmed to the slot.
#include "daemon/run.hpp"

#include <systemd/sd-daemon.h>

#include <pthread.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>

#include "daemon/log.hpp"
#include "daemon/project_access.hpp"
#include "daemon/replication_stream.hpp"
#include "daemon/socketio_server.hpp"
#include "decoder/transaction.hpp"
#include "decoder/wal2json.hpp"
#include "routing/config.hpp"
#include "routing/router.hpp"

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

class Daemon : public ReplicationStream::Handler, public EventSink {
public:
    Daemon(boost::asio::io_context& io, Config config, ServerOptions server_options, std::FILE* record)
        : io_(io),
          config_(std::move(config)),
          record_(record),
          access_(config_.project_access == "query"
                      ? std::make_unique<QueryProjectAccess>(io, config_.dsn, config_.project_access_sql)
                      : nullptr),
          server_(io, std::move(server_options), access_.get(), metrics_, [this] { return stream_.streaming(); }),
          stream_(io, config_.dsn, config_.slot, *this),
          router_(config_, *this),
          assembler_(config_.message_prefix, router_),
          retry_timer_(io),
          watchdog_timer_(io) {}

    int run() {
        if (auto ec = server_.listen()) {
            log_error("cannot listen on " + config_.listen + ": " + ec.message());
            return 1;
        }
        log_notice("listening on " + config_.listen + "; streaming slot \"" + config_.slot + "\"");
        start_watchdog();
        stream_.start();
        io_.run();
        return exit_code_;
    }

    void stop_on_signal(int signo) {
        log_notice(std::string("received ") + (signo == SIGTERM ? "SIGTERM" : "SIGINT") + ", stopping");
        sd_notify(0, "STOPPING=1");
        stopping_ = true;
        retry_timer_.cancel();
        watchdog_timer_.cancel();
        stream_.stop();
        metrics_.streaming = false;
        server_.shutdown();
        // Give clients a moment to answer the close handshake, then leave.
        retry_timer_.expires_after(std::chrono::milliseconds(300));
        retry_timer_.async_wait([this](const boost::system::error_code&) { io_.stop(); });
    }

    // ReplicationStream::Handler
    void on_streaming() override {
        metrics_.streaming = true;
        backoff_ = std::chrono::seconds(1);
        log_notice("streaming from slot \"" + config_.slot + "\" at " + stream_.confirmed().str());
        if (!ready_sent_) {
            sd_notify(0, "READY=1");
            ready_sent_ = true;
        }
        update_status();
    }

    void on_wal_line(std::string_view line) override {
        if (record_) {
            std::fwrite(line.data(), 1, line.size(), record_);
            std::fputc('\n', record_);
        }
        if (auto err = decode_wal2json_line(line, change_)) {
            ++metrics_.malformed_lines;
            log_warning("malformed wal2json line after " + stream_.received().str() + ": " + err->message);
            assembler_.damage("a malformed line after " + stream_.received().str());
            return;
        }
        if (change_.action == Action::Begin && change_.nextlsn && *change_.nextlsn <= dispatched_) {
            // Already dispatched by this process before a reconnect: skip it whole.
            skipping_ = true;
            return;
        }
        if (skipping_) {
            if (change_.action == Action::Commit) skipping_ = false;
            return;
        }
        if (auto err = assembler_.feed(change_)) log_warning("wal2json stream: " + err->message);
        if (change_.action == Action::Commit) {
            if (record_) std::fflush(record_);
            // The router has handed this transaction's events to every subscriber queue
            // (on_transaction below ran synchronously): now it may be confirmed. nextlsn,
            // not lsn: confirming the commit record's start would replay the transaction.
            if (change_.nextlsn && *change_.nextlsn > dispatched_) dispatched_ = *change_.nextlsn;
            stream_.confirm(dispatched_);
            sync_counters();
        }
    }

    void on_keepalive(Lsn wal_end) override {
        metrics_.server_wal_end = stream_.server_wal_end().value;
        // Nothing in flight: let an idle slot advance so it does not hold WAL.
        if (!assembler_.in_transaction() && !skipping_ && wal_end > dispatched_) {
            dispatched_ = wal_end;
            stream_.confirm(dispatched_);
        }
        sync_counters();
    }

    void on_stopped(const StopReason& reason) override {
        metrics_.streaming = false;
        skipping_ = false;
        assembler_.finish("the replication connection was lost before its commit");
        if (stopping_) return;
        if (reason.kind == StopKind::Fatal) {
            log_error("fatal: " + reason.message);
            exit_code_ = 1;
            server_.shutdown();
            io_.stop();
            return;
        }
        ++metrics_.replication_reconnects;
        log_warning(reason.message + "; retrying in " + std::to_string(backoff_.count()) + " s");
        retry_timer_.expires_after(backoff_);
        retry_timer_.async_wait([this](const boost::system::error_code& ec) {
            if (!ec && !stopping_) stream_.start();
        });
        backoff_ = std::min(backoff_ * 2, std::chrono::seconds(30));
    }

    // EventSink: a committed transaction's events.
    void on_transaction(const TransactionInfo&, std::vector<Event>& events) override { server_.publish(events); }

private:
    boost::asio::io_context& io_;
    Config config_;
    std::FILE* record_;
    Metrics metrics_;
    std::unique_ptr<QueryProjectAccess> access_;
    SocketIoServer server_;
    ReplicationStream stream_;
    Router router_;
    TransactionAssembler assembler_;
    boost::asio::steady_timer retry_timer_;
    boost::asio::steady_timer watchdog_timer_;
    Change change_;
    Lsn dispatched_;
    bool skipping_ = false;
    bool stopping_ = false;
    bool ready_sent_ = false;
    int exit_code_ = 0;
    std::chrono::seconds backoff_{1};

    void sync_counters() {
        const RouterCounters& c = router_.counters();
        metrics_.transactions = c.transactions;
        metrics_.events = c.events;
        metrics_.malformed_contexts = c.malformed_contexts;
        metrics_.dropped_no_context = c.dropped_no_context;
        metrics_.dropped_suppressed = c.dropped_suppressed;
        metrics_.dropped_not_routed = c.dropped_not_routed;
        metrics_.dropped_room_unresolved = c.dropped_room_unresolved;
        metrics_.dropped_truncate = c.dropped_truncate;
        metrics_.coalesced_transactions = c.coalesced_transactions;
        metrics_.received_lsn = stream_.received().value;
        metrics_.confirmed_lsn = stream_.confirmed().value;
        if (stream_.server_wal_end().value > metrics_.server_wal_end) metrics_.server_wal_end = stream_.server_wal_end().value;
    }

    void update_status() {
        const std::uint64_t lag = metrics_.server_wal_end > metrics_.confirmed_lsn ? metrics_.server_wal_end - metrics_.confirmed_lsn : 0;
        sd_notifyf(0, "STATUS=%s; confirmed %s; lag %llu bytes; %zu clients", metrics_.streaming ? "streaming" : "not streaming",
                   stream_.confirmed().str().c_str(), static_cast<unsigned long long>(lag), server_.clients());
    }

    // WATCHDOG=1 comes from the loop itself: a stuck loop stops sending it and systemd
    // restarts the service.
    void start_watchdog() {
        std::uint64_t usec = 0;
        const bool enabled = sd_watchdog_enabled(0, &usec) > 0 && usec > 0;
        const auto period = enabled ? std::chrono::microseconds(usec / 2) : std::chrono::microseconds(std::chrono::seconds(5));
        watchdog_timer_.expires_after(period);
        watchdog_timer_.async_wait([this, enabled](const boost::system::error_code& ec) {
            if (ec || stopping_) return;
            if (enabled) sd_notify(0, "WATCHDOG=1");
            sync_counters();
            update_status();
            start_watchdog();
        });
    }
};

}  // namespace

int serve(Config config, ServerOptions server, std::FILE* record, const sigset_t* restore_mask) {
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
    if (!split_listen(config.listen, server.host, server.port)) {
        log_error("listen address \"" + config.listen + "\" is not HOST:PORT");
        return 2;
    }
    std::string error;
    if (!load_secret(config, server.jwt_secret, error)) {
        log_error(error);
        return 2;
    }
    server.tenant_claim = config.tenant_claim;
    server.project_access = config.project_access;

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
