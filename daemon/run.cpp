// The daemon: replication stream -> decoder -> assembler -> router -> Socket.IO server, all on
// one io_context. LSN state is explicit: `dispatched` is the end of the last transaction
// whose events were handed to every subscriber; only it is confirmed to the slot.
#include "daemon/run.hpp"

#include <systemd/sd-daemon.h>

#include <pthread.h>
#include <sys/resource.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <rapidjson/document.h>

#include <algorithm>
#include <cerrno>
#include <deque>
#include <optional>
#include <filesystem>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>

#include "daemon/log.hpp"
#include "daemon/recovery_state.hpp"
#include "wire/jwt.hpp"
#include "daemon/project_access.hpp"
#include "daemon/replication_stream.hpp"
#include "daemon/socketio_server.hpp"
#include "decoder/json_text.hpp"
#include "decoder/transaction.hpp"
#include "decoder/wal2json.hpp"
#include "config/config.hpp"
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

std::int64_t wall_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

class Daemon : public ReplicationStream::Handler, public EventSink {
public:
    Daemon(boost::asio::io_context& io, Config config, ServerOptions server_options, std::FILE* record)
        : io_(io),
          config_(std::move(config)),
          record_(record),
          access_(make_access(io, config_)),
          server_(io, std::move(server_options), *access_, metrics_, [this] { return stream_.streaming(); }),
          stream_(io, config_.dsn, config_.slot, *this),
          router_(config_, *this),
          assembler_(config_.message_prefix, router_),
          retry_timer_(io),
          watchdog_timer_(io),
          tick_timer_(io),
          window_(std::chrono::seconds(config_.recovery_window_seconds)) {
        std::string dir = config_.state_dir;
        if (dir.empty())
            if (const char* env = std::getenv("STATE_DIRECTORY"); env && *env) {
                dir = env;
                dir = dir.substr(0, dir.find(':'));  // systemd may list several
            }
        if (!dir.empty() && window_.count() > 0) {
            state_path_ = dir + "/recovery.json";
            state_writer_ = std::make_unique<StateFileWriter>(state_path_);
        }
    }

    static std::unique_ptr<ProjectAccess> make_access(boost::asio::io_context& io, const Config& config) {
        if (config.project_access == "token") return std::make_unique<TokenProjectAccess>(io);
        return std::make_unique<QueryProjectAccess>(io, config.dsn, config.project_access_sql,
                                                    config.max_access_checks_per_user);
    }

    int run() {
        if (auto ec = server_.listen()) {
            log_error("cannot listen on " + config_.listen + ": " + ec.message());
            return 1;
        }
        log_notice("listening on " + config_.listen +
                   (config_.admin_listen.empty() ? std::string() : "; /healthz and /metrics on " + config_.admin_listen) +
                   "; streaming slot \"" + config_.slot + "\"");
        load_state();
        start_watchdog();
        tick();
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
        tick_timer_.cancel();
        save_state();
        if (state_writer_) state_writer_->flush();
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
        if (first_stream_) {
            first_stream_ = false;
            // The rebuilt buffer starts after the slot's confirmed position: offsets at or
            // before it (sessions of the previous process) cannot be resumed from it.
            server_.set_recovery_floor(stream_.slot_confirmed());
            if (delivered_upto_ <= stream_.slot_confirmed()) finish_replay();
        }
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
        // What the previous process already sent (its state file says how far) only
        // rebuilds the recovery buffer; connected clients do not get it twice.
        if (change_.action == Action::Begin && change_.nextlsn) deliver_ = *change_.nextlsn > delivered_upto_;
        if (auto err = assembler_.feed(change_)) log_warning("wal2json stream: " + err->message);
        if (change_.action == Action::Commit) {
            if (record_) std::fflush(record_);
            // The router has handed this transaction's events to every subscriber queue
            // (on_transaction below ran synchronously): now it may be confirmed. nextlsn,
            // not lsn: confirming the commit record's start would replay the transaction.
            if (change_.nextlsn && *change_.nextlsn > dispatched_) dispatched_ = *change_.nextlsn;
            hold_back(dispatched_);
            if (replaying_ && dispatched_ >= delivered_upto_) finish_replay();
            sync_counters();
        }
    }

    void on_keepalive(Lsn wal_end, bool reply_requested) override {
        metrics_.server_wal_end = stream_.server_wal_end().value;
        // Nothing in flight: let an idle slot advance so it does not hold WAL.
        if (!assembler_.in_transaction() && !skipping_ && wal_end > dispatched_) {
            dispatched_ = wal_end;
            hold_back(dispatched_);
            if (replaying_ && dispatched_ >= delivered_upto_) finish_replay();
        }
        // The walsender asks when it has not heard from us for half of wal_sender_timeout,
        // which our status updates prevent, or when PostgreSQL shuts down: then it waits for
        // everything it sent to be confirmed, so the held-back confirmations are released.
        // (A database restart thus shortens what a restart of walcast can rebuild.)
        if (reply_requested && !assembler_.in_transaction()) release_all();
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
    void on_transaction(const TransactionInfo&, std::vector<Event>& events) override { server_.publish(events, deliver_); }

private:
    boost::asio::io_context& io_;
    Config config_;
    std::FILE* record_;
    Metrics metrics_;
    std::unique_ptr<ProjectAccess> access_;
    std::unique_ptr<StateFileWriter> state_writer_;
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
    boost::asio::steady_timer tick_timer_;
    // Recovery across restarts: the slot's confirmation trails dispatch by the window, so a
    // restarted daemon re-reads the window's WAL into its buffer.
    std::chrono::milliseconds window_;
    std::string state_path_;
    std::deque<std::pair<std::int64_t, Lsn>> held_;  // (dispatched at, wall ms; position)
    Lsn delivered_upto_;  // what the previous process sent (state file)
    Lsn saved_dispatched_;
    bool deliver_ = true;
    bool replaying_ = false;
    bool first_stream_ = true;

    // Confirms `lsn` now, or once it is older than the recovery window. Only with a state
    // directory: without one a restarted daemon cannot tell what it already sent, and
    // re-reading the window would send it all again.
    void hold_back(Lsn lsn) {
        if (window_.count() == 0 || state_path_.empty()) return stream_.confirm(lsn);
        if (held_.empty() || held_.back().second < lsn) held_.emplace_back(wall_ms(), lsn);
        release_confirmations();
    }

    void release_confirmations() {
        const std::int64_t cutoff = wall_ms() - window_.count();
        while (!held_.empty() && held_.front().first <= cutoff) {
            stream_.confirm(held_.front().second);
            held_.pop_front();
        }
        const Lsn top = std::max(dispatched_, delivered_upto_);
        metrics_.wal_retained_bytes = top > stream_.confirmed() && stream_.confirmed().valid() ? top.value - stream_.confirmed().value : 0;
    }

    void release_all() {
        held_.clear();
        stream_.confirm(dispatched_);
        release_confirmations();
    }

    void finish_replay() {
        if (!replaying_) return;
        replaying_ = false;
        server_.set_replaying(false);
        log_notice("recovery buffer rebuilt up to " + delivered_upto_.str() + "; resumes proceed");
    }

    void load_state() {
        if (state_path_.empty()) return;
        std::ifstream in(state_path_, std::ios::binary);
        if (!in) return;  // first start
        std::stringstream ss;
        ss << in.rdbuf();
        auto st = decode_recovery_state(ss.str());
        if (!st) {
            log_warning("ignoring recovery state " + state_path_ + ": " + st.error().message);
            return;
        }
        delivered_upto_ = st->dispatched;
        saved_dispatched_ = st->dispatched;
        const std::size_t n = st->sessions.size();
        server_.restore_sessions(std::move(st->sessions));
        if (delivered_upto_.valid()) {
            replaying_ = true;
            server_.set_replaying(true);
        }
        log_notice("recovery state: dispatched up to " + delivered_upto_.str() + ", " + std::to_string(n) +
                   " resumable sessions");
    }

    // Hands the newest state to the writer thread (it fsyncs and renames it into place).
    void save_state() {
        if (!state_writer_) return;
        RecoveryState st;
        st.dispatched = std::max(dispatched_, delivered_upto_);
        st.sessions = server_.snapshot_sessions();
        state_writer_->write(encode_recovery_state(st), st.dispatched);
        saved_dispatched_ = st.dispatched;
        const std::string error = state_writer_->take_error();
        if (!error.empty()) log_warning("recovery state not saved: " + error);
    }

    // Once a second: release held confirmations, persist changed recovery state.
    void tick() {
        tick_timer_.expires_after(std::chrono::seconds(1));
        tick_timer_.async_wait([this](const boost::system::error_code& ec) {
            if (ec || stopping_) return;
            release_confirmations();
            const bool sessions = server_.take_sessions_changed();
            if (sessions || std::max(dispatched_, delivered_upto_) != saved_dispatched_) save_state();
            tick();
        });
    }

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
