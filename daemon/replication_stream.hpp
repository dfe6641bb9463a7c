// ReplicationStream: one logical replication connection (libpq, non-blocking) driven by the
// Asio loop: ensures the slot exists with wal2json, starts streaming with the four wal2json
// options, hands every wal2json line to a Handler, answers keepalives and reports the flush
// position. It never reconnects by itself: it stops with a typed reason and the owner
// decides (backoff lives in run.cpp). Loop thread only.
#pragma once

#include <libpq-fe.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "daemon/pg_socket.hpp"
#include "decoder/lsn.hpp"

namespace walcast {

enum class StopKind {
    Disconnected,  // connection failed or was lost; retry with backoff
    SlotBusy,      // another consumer holds the slot; retry (a standby waits its turn)
    Fatal,         // retrying cannot help (slot has another plugin, bad config)
};

struct StopReason {
    StopKind kind = StopKind::Disconnected;
    std::string message;
};

class ReplicationStream {
public:
    class Handler {
    public:
        virtual ~Handler() = default;
        virtual void on_streaming() = 0;                       // START_REPLICATION accepted
        virtual void on_wal_line(std::string_view line) = 0;   // one wal2json line, in order
        // The server is idle up to wal_end. `reply_requested`: it waits for our flush
        // position (a shutting-down walsender waits until we confirm all it sent).
        virtual void on_keepalive(Lsn wal_end, bool reply_requested) = 0;
        virtual void on_stopped(const StopReason& reason) = 0; // the connection is closed
    };

    ReplicationStream(boost::asio::io_context& io, std::string dsn, std::string slot, Handler& handler);
    ~ReplicationStream();

    // Connects and starts streaming from the slot's confirmed position.
    void start();

    // Advances the flush position reported to the server (never backwards). Called once a
    // transaction's events were handed to every subscriber; a status update follows within
    // a second.
    void confirm(Lsn flushed);

    // Sends a last status update with the confirmed position and closes. No on_stopped.
    void stop();

    Lsn received() const { return received_; }
    Lsn confirmed() const { return confirmed_; }
    Lsn server_wal_end() const { return server_wal_end_; }
    // The slot's confirmed_flush_lsn when this connection found it: where streaming resumes.
    Lsn slot_confirmed() const { return slot_confirmed_; }
    bool streaming() const { return state_ == State::Streaming; }

    std::chrono::milliseconds status_interval{10000};  // wal_sender_timeout is 60 s by default

private:
    enum class State { Idle, Connecting, Querying, Streaming };

    boost::asio::io_context& io_;
    std::string dsn_;
    std::string slot_;
    Handler& handler_;
    PGconn* conn_ = nullptr;
    PgSocket socket_;
    boost::asio::steady_timer status_timer_;
    State state_ = State::Idle;
    bool flush_pending_ = false;  // a status update is queued in libpq's output buffer
    Lsn received_, confirmed_, reported_, server_wal_end_, slot_confirmed_;
    std::chrono::steady_clock::time_point last_status_{};
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // guards callbacks after close

    void poll_connect();
    void send_query(const std::string& sql, void (ReplicationStream::*next)(PGresult*));
    void await_result(void (ReplicationStream::*next)(PGresult*));
    void on_slot_lookup(PGresult* result);
    void on_slot_created(PGresult* result);
    void on_start_replication(PGresult* result);
    void read_stream();
    void handle_copy_data(const char* data, int size);
    void send_status(bool reply_requested = false);
    void flush_output();
    void schedule_status();
    void fail(StopKind kind, std::string message);
    void close();
};

}  // namespace walcast
