// Daemon (see daemon.hpp).
#include "daemon/daemon.hpp"

#include <systemd/sd-daemon.h>

#include <sched.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>

#include "daemon/log.hpp"

namespace walcast {

namespace {

std::int64_t wall_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::string utc_now() {
    const std::time_t t = std::time(nullptr);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
    return buf;
}

std::unique_ptr<ProjectAccess> make_access(boost::asio::io_context& io, const Config& config) {
    if (config.project_access == "token") return std::make_unique<TokenProjectAccess>(io);
    return std::make_unique<QueryProjectAccess>(io, config.dsn, config.project_access_sql,
                                                config.max_access_checks_per_user);
}

}  // namespace

Daemon::Daemon(boost::asio::io_context& io, Config config, ServerOptions server_options, std::FILE* record)
    : io_(io),
      config_(std::move(config)),
      record_(record),
      access_(make_access(io, config_)),
      state_(StateDir::resolve(config_.state_dir), config_.slot),
      server_(io, std::move(server_options), *access_, metrics_,
              [this] { return cluster_ ? cluster_->redis_up() && !paused_for_redis_ : stream_.streaming(); },
              [this] { return health_detail_; }),
      stream_(io, config_.dsn, config_.slot, config_.max_line_bytes, *this),
      router_(config_, *this, this),
      assembler_(config_.message_prefix, router_),
      retry_timer_(io),
      watchdog_timer_(io),
      tick_timer_(io),
      window_(std::chrono::seconds(config_.recovery_window_seconds)),
      read_ahead_timer_(io) {
    if (config_.redis.empty()) return;
    cluster_ = std::make_unique<Cluster>(io, config_, static_cast<std::int64_t>(window_.count()),
                                         config_.recovery_max_bytes, *this, metrics_);
    if (window_.count() > 0) server_.set_session_store(cluster_.get());
    metrics_.cluster = true;
    paused_for_redis_ = true;  // until Redis is reachable
}

Daemon::~Daemon() = default;

int Daemon::run() {
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
    if (cluster_) cluster_->start();  // the slot is streamed once Redis is reachable
    else stream_.start();
    io_.run();
    return exit_code_;
}

void Daemon::stop_on_signal(int signo) {
    log_notice(std::string("received ") + (signo == SIGTERM ? "SIGTERM" : "SIGINT") + ", stopping");
    sd_notify(0, "STOPPING=1");
    stopping_ = true;
    retry_timer_.cancel();
    watchdog_timer_.cancel();
    tick_timer_.cancel();
    read_ahead_timer_.cancel();
    save_state();
    state_.flush();
    stream_.stop();
    if (cluster_) cluster_->stop();
    metrics_.streaming = false;
    server_.shutdown();
    // Give clients a moment to answer the close handshake, then leave.
    retry_timer_.expires_after(std::chrono::milliseconds(300));
    retry_timer_.async_wait([this](const boost::system::error_code&) { io_.stop(); });
}

// ---- the slot and the stream's continuity ---------------------------------------------------

SlotDecision Daemon::on_slot(const ServerIdentity& server, const SlotInfo& slot) {
    Lsn top = std::max(dispatched_, delivered_upto_);
    // In a cluster the other nodes advance the slot too: what they confirmed is in the
    // stream, so a slot ahead of this node's own confirmations lost nothing.
    if (cluster_ && slot.exists && slot.confirmed > top) top = slot.confirmed;
    if (top.valid()) history_.dispatched = top;
    const SlotDecision decision = decide_slot(config_.create_slot, config_.slot, history_, server, slot);
    if (decision.discontinuity != Discontinuity::None) note_discontinuity(decision);
    if (decision.step == SlotStep::Wait) waited_ = true;
    if (decision.step == SlotStep::Create || decision.step == SlotStep::Recreate) log_notice(decision.detail);
    if (decision.discontinuity != Discontinuity::None || decision.step == SlotStep::Create ||
        decision.step == SlotStep::Recreate) {
        // The stream starts afresh wherever the slot now stands: positions of the old stream
        // mean nothing there (another server's LSNs may even be lower).
        held_.clear();
        dispatched_ = Lsn{};
        committed_end_ = Lsn{};
        delivered_upto_ = Lsn{};
        if (cluster_) cluster_->restart_positions();
        skipping_ = false;
        stream_.forget_position();
        if (replaying_) finish_replay();
    }
    return decision;
}

void Daemon::note_discontinuity(const SlotDecision& d) {
    if (episode_ != Discontinuity::None) return;  // once per episode: a wait retries
    episode_ = d.discontinuity;
    const char* reason = discontinuity_name(d.discontinuity);
    const Lsn lost_after = history_.dispatched.value_or(Lsn{});
    ++metrics_.discontinuities[static_cast<int>(d.discontinuity)];
    log_error(std::string("discontinuity (") + reason + "): " + d.detail + "; events committed after " +
              lost_after.str() + " were not delivered and cannot be; connected clients are told to resync");
    health_detail_ = std::string("last discontinuity: ") + reason + " at " + utc_now() + ": events after " +
                     lost_after.str() + " lost; " + d.detail + "\n";
    tell_resync(reason, lost_after, d.detail);
}

void Daemon::on_streaming() {
    metrics_.streaming = true;
    backoff_ = std::chrono::seconds(1);
    stopped_logged_ = false;
    server_.set_xid_reference(stream_.next_xid_at_connect());
    metrics_.leader = cluster_ != nullptr;
    if (!cluster_ && (first_stream_ || episode_ != Discontinuity::None)) {
        // The rebuilt buffer starts after the slot's confirmed position: offsets at or before
        // it (sessions of a previous process, or from before a discontinuity) cannot be resumed.
        server_.set_recovery_floor(stream_.slot_confirmed(), stream_.next_xid_at_connect());
    }
    if (first_stream_) {
        first_stream_ = false;
        if (lost_state_) {
            // What was sent before this process started is unknown: everything committed
            // before it rebuilds the buffer and is not sent again as new.
            delivered_upto_ = stream_.server_flush_at_connect();
            replaying_ = true;
            server_.set_replaying(true);
            log_warning("nothing committed before " + delivered_upto_.str() +
                        " is sent to clients: the state directory lost what the previous run sent");
        }
        if (replaying_ && delivered_upto_ <= stream_.slot_confirmed()) finish_replay();
    }
    if (episode_ != Discontinuity::None) {
        const char* reason = discontinuity_name(episode_);
        // While walcast waited for the slot, events kept being lost: clients are told again.
        if (waited_) tell_resync(reason, Lsn{}, "streaming again after waiting for the slot");
        log_notice(std::string("streaming again after the discontinuity (") + reason + ") from " +
                   stream_.slot_confirmed().str());
        health_detail_ += "streaming again since " + utc_now() + " from " + stream_.slot_confirmed().str() + "\n";
        episode_ = Discontinuity::None;
    }
    waited_ = false;
    if (!history_.streamed || history_.server.system_id != stream_.server().system_id ||
        history_.server.timeline != stream_.server().timeline) {
        history_.streamed = true;
        history_.server = stream_.server();
        const std::string error = state_.save_identity(history_.server);
        if (!error.empty()) log_warning("identity not saved in the state directory: " + error);
    }
    log_notice("streaming from slot \"" + config_.slot + "\" at " + stream_.confirmed().str() + " (server " +
               stream_.server().system_id + ", timeline " + std::to_string(stream_.server().timeline) + (
               stream_.reads_socket() ? ")" : "; TLS: read through libpq)"));
    if (!ready_sent_) {
        sd_notify(0, "READY=1");
        ready_sent_ = true;
    }
    update_status();
}

// ---- the wal2json stream --------------------------------------------------------------------

// At most 10 lines a second about bad input from the database: a hostile role must not
// flood the journal either.
void Daemon::log_input(const std::string& line) {
    const auto now = std::chrono::steady_clock::now();
    if (now - log_window_ >= std::chrono::seconds(1)) {
        if (log_suppressed_ > 0)
            log_warning("(" + std::to_string(log_suppressed_) + " lines about bad input suppressed in the last second)");
        log_window_ = now;
        log_lines_ = 0;
        log_suppressed_ = 0;
    }
    if (++log_lines_ > 10) {
        ++log_suppressed_;
        return;
    }
    log_warning(line);
}

void Daemon::on_wal_line(std::string_view line) {
    if (record_) {
        std::fwrite(line.data(), 1, line.size(), record_);
        std::fputc('\n', record_);
    }
    if (auto err = decode_wal2json_line(line, change_)) {
        ++metrics_.malformed_lines;
        const std::string where = "after " + stream_.received().str();
        log_input("malformed wal2json line " + where + ": " + err->message);
        assembler_.damage("a malformed line " + where + " (" + err->message + ")");
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
    // What an earlier process already sent only rebuilds the recovery buffer; connected
    // clients do not get it twice.
    if (change_.action == Action::Begin && change_.nextlsn) deliver_ = *change_.nextlsn > delivered_upto_;
    if (auto err = assembler_.feed(change_)) log_input("wal2json stream: " + err->message);
    if (change_.action == Action::Commit) {
        if (record_) std::fflush(record_);
        // The router has handed this transaction's events to every subscriber queue
        // (on_transaction ran synchronously): now it may be confirmed. nextlsn, not lsn:
        // confirming the commit record's start would replay the transaction.
        if (change_.nextlsn) commit_position(*change_.nextlsn);
        sync_counters();
        if (auto committed = pg_timestamp_unix_us(change_.timestamp); committed && stream_.line_sent_at() != 0)
            note_lag(unix_us_from_pg_timestamp(stream_.line_sent_at()) - *committed);
    }
}

// ---- reading a backlog ------------------------------------------------------------------------

// `lag_us`: how long after the transaction committed the walsender sent its commit line, both
// by the server's clock. Live it is a few milliseconds; reading a backlog it is its age.
void Daemon::note_lag(std::int64_t lag_us) {
    metrics_.stream_lag_ms = static_cast<std::uint64_t>(std::max<std::int64_t>(lag_us / 1000, 0));
    if (lag_us < std::chrono::duration_cast<std::chrono::microseconds>(kBehind).count()) return;
    last_behind_ = std::chrono::steady_clock::now();
    if (reading_ahead_) return;
    read_ahead_since_ = last_behind_;
    ++metrics_.read_aheads;
    log_info("reading a backlog (the last transaction committed " + std::to_string(lag_us / 1000) +
             " ms before the server sent it)" + (cluster_ || window_.count() == 0 ? std::string()
                                                   : ": clients catch up from the buffer once it is read"));
    set_reading_ahead(true);
    await_backlog_end();
}

void Daemon::await_backlog_end() {
    read_ahead_timer_.expires_at(last_behind_ + kQuiet);
    read_ahead_timer_.async_wait([this](const boost::system::error_code& ec) {
        if (ec || !reading_ahead_) return;
        if (std::chrono::steady_clock::now() < last_behind_ + kQuiet) return await_backlog_end();
        const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(last_behind_ - read_ahead_since_);
        log_info("backlog read in " + std::to_string(took.count()) + " ms: live again at " +
                 stream_.received().str());
        set_reading_ahead(false);
    });
}

// SCHED_BATCH while reading a backlog: a woken batch thread does not preempt the running one,
// so the walsender (on the same core or not) sends on, and this thread reads many messages
// per wake-up instead of one (2.4 -> 1.6 CPU-s for 200,000 transactions in bench/drain).
// Live, a normal thread again: events go out the moment they arrive.
void Daemon::set_reading_ahead(bool on) {
    reading_ahead_ = on;
    metrics_.reading_ahead = on;
    sched_param param{};
    if (sched_setscheduler(0, on ? SCHED_BATCH : SCHED_OTHER, &param) != 0)
        log_debug(std::string("sched_setscheduler: ") + std::strerror(errno));
    if (!cluster_) server_.set_reading_ahead(on);
}

void Daemon::on_oversized_line(Lsn wal_start, std::size_t bytes) {
    ++metrics_.oversized_lines;
    const std::string what = "a wal2json line of " + std::to_string(bytes) + " bytes at " + wal_start.str() +
                             ", over limits.max_line_bytes (" + std::to_string(config_.max_line_bytes) + ")";
    log_input(what + ": skipped unread" +
              (assembler_.in_transaction() ? "; transaction xid " + std::to_string(assembler_.current().xid) +
                                                 " fails closed"
                                           : std::string()));
    assembler_.damage(what);
}

void Daemon::on_context(const Change& message, const EmitContext*, const Error* error) {
    if (!error) return;
    log_input("malformed emit context at " + message.lsn.value_or(Lsn{}).str() + " in transaction xid " +
              std::to_string(assembler_.current().xid) + ": " + error->message);
}

void Daemon::on_commit(const TransactionInfo& txn, const Verdict& verdict, std::size_t) {
    if (verdict.suppression != Suppression::Damaged && verdict.suppression != Suppression::MalformedContext) return;
    ++metrics_.failed_transactions;
    log_input("transaction xid " + std::to_string(txn.xid) + " (commit " + txn.commit_lsn.str() + ", end " +
              txn.end_lsn.str() + ") emitted nothing: " + verdict.detail);
}

void Daemon::on_keepalive(Lsn wal_end, bool reply_requested) {
    metrics_.server_wal_end = stream_.server_wal_end().value;
    // Nothing in flight: let an idle slot advance so it does not hold WAL.
    if (!assembler_.in_transaction() && !skipping_) commit_position(wal_end);
    // The walsender asks when it has not heard from us for half of wal_sender_timeout,
    // which our status updates prevent, or when PostgreSQL shuts down: then it waits for
    // everything it sent to be confirmed, so the held-back confirmations are released.
    // (A database restart thus shortens what a restart of walcast can rebuild.)
    if (reply_requested && !assembler_.in_transaction()) release_all();
    sync_counters();
}

void Daemon::on_stopped(const StopReason& reason) {
    metrics_.streaming = false;
    metrics_.leader = false;
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
    // A standby waiting for the slot, or walcast waiting for an operator, retries quietly
    // after saying so once.
    const bool quiet = (reason.kind == StopKind::SlotBusy || reason.kind == StopKind::SlotWaiting) && stopped_logged_;
    if (!quiet) {
        const std::string line = reason.message + "; retrying in " + std::to_string(backoff_.count()) + " s";
        if (reason.kind == StopKind::SlotWaiting) log_error(line);
        else log_warning(line);
        stopped_logged_ = true;
    }
    if (reason.kind == StopKind::SlotWaiting) health_detail_ = "waiting: " + reason.message + "\n";
    if (cluster_ && paused_for_redis_) return;  // resume_stream() starts it again
    // A cluster node waiting for the slot asks often: it takes over within a second.
    if (cluster_ && reason.kind == StopKind::SlotBusy) backoff_ = std::chrono::seconds(1);
    retry_timer_.expires_after(backoff_);
    retry_timer_.async_wait([this](const boost::system::error_code& ec) {
        if (!ec && !stopping_) stream_.start();
    });
    backoff_ = std::min(backoff_ * 2, std::chrono::seconds(30));
}

// ---- confirmations and the state directory ----------------------------------------------------

void Daemon::on_transaction(const TransactionInfo&, std::vector<Event>& events) {
    if (!cluster_) return server_.publish(events, deliver_);
    // The leader's events reach clients, its own included, through the stream. Events an
    // earlier leader appended already are skipped there, so replayed WAL costs nothing.
    cluster_->append(events);
    metrics_.stream_appended += events.size();
    metrics_.redis_unacked_bytes = cluster_->unacked_bytes();
    if (cluster_->unacked_bytes() > kMaxUnackedBytes) pause_stream("Redis is behind");
}

void Daemon::commit_position(Lsn end) {
    if (cluster_) {
        if (end <= committed_end_) return;
        committed_end_ = end;
        cluster_->commit(end);  // confirmed in on_appended, once Redis has it
        return;
    }
    if (end <= dispatched_) return;
    dispatched_ = end;
    hold_back(dispatched_);
    server_.set_stream_position(dispatched_);
    if (replaying_ && dispatched_ >= delivered_upto_) finish_replay();
}

// Confirms `lsn` now, or once it is older than the recovery window. Only with a state
// directory: without one a restarted daemon cannot tell what it already sent, and re-reading
// the window would rebuild nothing anyone can resume.
void Daemon::hold_back(Lsn lsn) {
    if (window_.count() == 0 || !state_.enabled()) return stream_.confirm(lsn);
    if (held_.empty() || held_.back().second < lsn) held_.emplace_back(wall_ms(), lsn);
    release_confirmations();
}

void Daemon::release_confirmations() {
    const std::int64_t cutoff = wall_ms() - window_.count();
    while (!held_.empty() && held_.front().first <= cutoff) {
        stream_.confirm(held_.front().second);
        held_.pop_front();
    }
    const Lsn top = std::max(dispatched_, delivered_upto_);
    metrics_.wal_retained_bytes =
        top > stream_.confirmed() && stream_.confirmed().valid() ? top.value - stream_.confirmed().value : 0;
}

void Daemon::release_all() {
    held_.clear();
    stream_.confirm(dispatched_);
    release_confirmations();
}

void Daemon::finish_replay() {
    if (!replaying_) return;
    replaying_ = false;
    server_.set_replaying(false);
    log_notice("recovery buffer rebuilt up to " + delivered_upto_.str() + "; resumes proceed");
}

void Daemon::load_state() {
    if (!state_.enabled()) return;
    StateDir::Loaded st = state_.load();
    history_ = st.record;
    // A cluster's recovery state is the stream in Redis: only the continuity record counts.
    if (cluster_) return;
    switch (st.found) {
    case StateDir::Found::FirstStart:
        log_notice("state directory " + state_.dir() + ": first start" + (st.problem.empty() ? "" : " (" + st.problem + ")"));
        return;
    case StateDir::Found::Lost:
        lost_state_ = true;
        log_warning("state directory " + state_.dir() + ": " + st.problem +
                    "; no session resumes, and what was committed before this start is not sent again");
        return;
    case StateDir::Found::Resumable: break;
    }
    delivered_upto_ = *st.record.dispatched;
    saved_dispatched_ = delivered_upto_;
    const std::size_t n = st.sessions.size();
    if (window_.count() > 0) server_.restore_sessions(std::move(st.sessions));
    if (delivered_upto_.valid()) {
        replaying_ = true;
        server_.set_replaying(true);
    }
    log_notice("recovery state: dispatched up to " + delivered_upto_.str() + ", " + std::to_string(n) +
               " resumable sessions");
}

// Hands the newest state to the writer thread (it fsyncs and renames it into place).
void Daemon::save_state() {
    if (!state_.enabled() || !history_.streamed) return;
    RecoveryState st;
    st.dispatched = std::max(dispatched_, delivered_upto_);
    if (window_.count() > 0) st.sessions = server_.snapshot_sessions();
    state_.save_recovery(st);
    saved_dispatched_ = st.dispatched;
    const std::string error = state_.take_error();
    if (!error.empty()) log_warning("recovery state not saved: " + error);
}

// Once a second: release held confirmations, persist changed recovery state.
void Daemon::tick() {
    tick_timer_.expires_after(std::chrono::seconds(1));
    tick_timer_.async_wait([this](const boost::system::error_code& ec) {
        if (ec || stopping_) return;
        release_confirmations();
        const bool sessions = server_.take_sessions_changed();
        if (sessions || std::max(dispatched_, delivered_upto_) != saved_dispatched_) save_state();
        tick();
    });
}

void Daemon::sync_counters() {
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

void Daemon::update_status() {
    const std::uint64_t lag =
        metrics_.server_wal_end > metrics_.confirmed_lsn ? metrics_.server_wal_end - metrics_.confirmed_lsn : 0;
    sd_notifyf(0, "STATUS=%s; confirmed %s; lag %llu bytes; %zu clients", metrics_.streaming ? "streaming" : "not streaming",
               stream_.confirmed().str().c_str(), static_cast<unsigned long long>(lag), server_.clients());
}

// WATCHDOG=1 comes from the loop itself: a stuck loop stops sending it and systemd
// restarts the service.
void Daemon::start_watchdog() {
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

}  // namespace walcast
