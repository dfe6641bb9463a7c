// Daemon: replication stream -> decoder -> assembler -> router -> Socket.IO server, all on
// one io_context. LSN state is explicit: `dispatched` is the end of the last transaction
// whose events were handed to every subscriber; only it is confirmed to the slot (held
// back by the recovery window when a state directory lets a restart rebuild the buffer).
// It also keeps the stream's continuity: a slot that does not continue what was streamed
// is a discontinuity, logged, counted and told to every client. Loop thread only.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdio>
#include <deque>
#include <memory>
#include <string>

#include "config/config.hpp"
#include "daemon/cluster.hpp"
#include "daemon/metrics.hpp"
#include "daemon/project_access.hpp"
#include "daemon/replication_stream.hpp"
#include "daemon/socketio_server.hpp"
#include "daemon/state_dir.hpp"
#include "decoder/transaction.hpp"
#include "decoder/wal2json.hpp"
#include "routing/router.hpp"

namespace walcast {

class Daemon : public ReplicationStream::Handler, public EventSink, public RouteObserver, public Cluster::Handler {
public:
    Daemon(boost::asio::io_context& io, Config config, ServerOptions server_options, std::FILE* record);
    ~Daemon() override;

    // Listens, loads the state directory, streams; returns the exit code once the loop ends.
    int run();
    void stop_on_signal(int signo);

    // ReplicationStream::Handler
    SlotDecision on_slot(const ServerIdentity& server, const SlotInfo& slot) override;
    void on_streaming() override;
    void on_wal_line(std::string_view line) override;
    void on_oversized_line(Lsn wal_start, std::size_t bytes) override;
    void on_keepalive(Lsn wal_end, bool reply_requested) override;
    void on_stopped(const StopReason& reason) override;

    // EventSink: a committed transaction's events.
    void on_transaction(const TransactionInfo&, std::vector<Event>& events) override;

    // RouteObserver: transactions that fail closed are logged and counted.
    void on_begin(const TransactionInfo&) override {}
    void on_context(const Change& message, const EmitContext* context, const Error* error) override;
    void on_change(const Change&, const ChangeOutcome&) override {}
    void on_commit(const TransactionInfo& txn, const Verdict& verdict, std::size_t events) override;
    void on_abandon(const TransactionInfo&, const std::string&) override {}

    // Cluster::Handler (daemon_cluster.cpp).
    void on_entry(const StreamId& id, const BroadcastEntry& entry, bool live) override;
    void on_backfilled() override;
    void on_stream_gap(const std::string& why) override;
    void on_appended(Lsn end) override;
    void on_redis(bool up, const std::string& why) override;

private:
    boost::asio::io_context& io_;
    Config config_;
    std::FILE* record_;
    Metrics metrics_;
    std::unique_ptr<ProjectAccess> access_;
    StateDir state_;
    SocketIoServer server_;
    ReplicationStream stream_;
    // Cluster mode: the stream in Redis is where events go (leader) and come from (all).
    std::unique_ptr<Cluster> cluster_;
    Lsn committed_end_;          // the last end handed to the cluster
    bool paused_for_redis_ = false;  // the slot is not streamed while Redis is behind or down
    // Appends not yet acknowledged past this pause the slot until Redis catches up to a
    // quarter of it: the leader's memory is bounded whatever Redis does.
    static constexpr std::size_t kMaxUnackedBytes = std::size_t(64) << 20;
    std::uint64_t backfill_xid_ = 0;
    Router router_;
    TransactionAssembler assembler_;
    boost::asio::steady_timer retry_timer_;
    boost::asio::steady_timer watchdog_timer_;
    boost::asio::steady_timer tick_timer_;
    Change change_;
    Lsn dispatched_;
    bool skipping_ = false;
    bool stopping_ = false;
    bool ready_sent_ = false;
    int exit_code_ = 0;
    std::chrono::seconds backoff_{1};

    // Recovery across restarts: the slot's confirmation trails dispatch by the window, so a
    // restarted daemon re-reads the window's WAL into its buffer.
    std::chrono::milliseconds window_;
    std::deque<std::pair<std::int64_t, Lsn>> held_;  // (dispatched at, wall ms; position)
    Lsn delivered_upto_;  // what an earlier process sent: re-read into the buffer, not sent again
    Lsn saved_dispatched_;
    bool deliver_ = true;
    bool replaying_ = false;
    bool first_stream_ = true;
    bool lost_state_ = false;  // the state directory lost what was sent: nothing from before start is sent

    // Reading a backlog: a transaction whose commit line the walsender sent kBehind or more
    // after it committed starts it; kQuiet without another such transaction ends it. While
    // it lasts the loop thread reads in batches, and (single node, recovery on) clients wait
    // for the backlog to be read and then catch up from the buffer.
    static constexpr std::chrono::milliseconds kBehind{500};
    static constexpr std::chrono::milliseconds kQuiet{100};
    bool reading_ahead_ = false;
    std::chrono::steady_clock::time_point last_behind_{}, read_ahead_since_{};
    boost::asio::steady_timer read_ahead_timer_;

    // Continuity.
    StreamRecord history_;                // what this walcast streamed (memory + state directory)
    Discontinuity episode_ = Discontinuity::None;  // a discontinuity not yet followed by streaming
    bool waited_ = false;                 // the episode waited for an operator (events kept being lost)
    bool stopped_logged_ = false;         // the current retry episode was logged
    std::string health_detail_;           // extra /healthz lines
    std::chrono::steady_clock::time_point log_window_{};
    unsigned log_lines_ = 0, log_suppressed_ = 0;

    void hold_back(Lsn lsn);
    void release_confirmations();
    void release_all();
    void finish_replay();
    void load_state();
    void save_state();
    void tick();
    void sync_counters();
    void update_status();
    void start_watchdog();
    void note_discontinuity(const SlotDecision& decision);
    void tell_resync(const char* reason, Lsn lost_after, const std::string& detail);
    void commit_position(Lsn end);  // every transaction before `end` was handed on
    void pause_stream(const std::string& why);
    void resume_stream();
    void log_input(const std::string& line);
    void note_lag(std::int64_t lag_us);
    void await_backlog_end();
    void set_reading_ahead(bool on);
};

}  // namespace walcast
