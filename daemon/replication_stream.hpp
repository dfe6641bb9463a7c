// ReplicationStream: one logical replication connection driven by the Asio loop. It
// identifies the server, looks the slot up and lets its Handler decide what to do with it
// (stream, create, recreate, wait), starts streaming with the four wal2json options, hands
// every wal2json line to the Handler, answers keepalives and reports the flush position.
// Without TLS or GSS encryption it reads the copy stream from the socket itself, in large
// reads, so a line longer than max_line_bytes is skipped as it arrives instead of being
// held whole (libpq would buffer and copy it). It never reconnects by itself: it stops with
// a typed reason and the owner decides (backoff lives in run.cpp). Loop thread only.
#pragma once

#include <libpq-fe.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/pg_socket.hpp"
#include "decoder/copy_message.hpp"
#include "decoder/continuity.hpp"
#include "decoder/lsn.hpp"

namespace walcast {

enum class StopKind {
    Disconnected,  // connection failed or was lost; retry with backoff
    SlotBusy,      // another consumer holds the slot; retry (a standby waits its turn)
    SlotWaiting,   // the slot is missing or unusable and the policy says not to create it; retry
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
        // The server and the slot as found; the answer says what to do with the slot.
        virtual SlotDecision on_slot(const ServerIdentity& server, const SlotInfo& slot) = 0;
        virtual void on_streaming() = 0;                       // START_REPLICATION accepted
        virtual void on_wal_line(std::string_view line) = 0;   // one wal2json line, in order
        // A line over max_line_bytes, skipped unread: `bytes` long, from `wal_start`.
        virtual void on_oversized_line(Lsn wal_start, std::size_t bytes) = 0;
        // The server is idle up to wal_end. `reply_requested`: it waits for our flush
        // position (a shutting-down walsender waits until we confirm all it sent).
        virtual void on_keepalive(Lsn wal_end, bool reply_requested) = 0;
        virtual void on_stopped(const StopReason& reason) = 0; // the connection is closed
    };

    ReplicationStream(boost::asio::io_context& io, std::string dsn, std::string slot, std::size_t max_line_bytes,
                      Handler& handler);
    ~ReplicationStream();

    // Connects and starts streaming from the slot's confirmed position.
    void start();

    // Advances the flush position reported to the server (never backwards). Called once a
    // transaction's events were handed to every subscriber; a status update follows within
    // a second.
    void confirm(Lsn flushed);

    // Forgets the positions of the stream so far (after a discontinuity the slot starts
    // afresh, and another server's LSNs may be lower). Call before streaming starts.
    void forget_position() { received_ = confirmed_ = reported_ = Lsn{}; }

    // Sends a last status update with the confirmed position and closes. No on_stopped.
    void stop();

    Lsn received() const { return received_; }
    Lsn confirmed() const { return confirmed_; }
    Lsn server_wal_end() const { return server_wal_end_; }
    // When the walsender sent the line being handled (its clock; 0 before the first line).
    PgTimestamp line_sent_at() const { return line_sent_at_; }
    // Where this connection's stream starts: the slot's confirmed_flush_lsn when it was found,
    // or the consistent point of a slot created now.
    Lsn slot_confirmed() const { return slot_confirmed_; }
    // The server's flush position when this connection identified it: everything committed
    // before it was committed before this connection.
    Lsn server_flush_at_connect() const { return server_flush_; }
    const ServerIdentity& server() const { return server_; }
    // The server's next xid (with its epoch) when this connection looked the slot up.
    std::uint64_t next_xid_at_connect() const { return next_xid_; }
    bool streaming() const { return state_ == State::Streaming; }
    bool reads_socket() const { return raw_; }  // the copy stream is read without libpq

    std::chrono::milliseconds status_interval{10000};  // wal_sender_timeout is 60 s by default

private:
    enum class State { Idle, Connecting, Querying, Starting, Streaming };

    boost::asio::io_context& io_;
    std::string dsn_;
    std::string slot_;
    std::size_t max_line_bytes_;
    Handler& handler_;
    PGconn* conn_ = nullptr;
    PgSocket socket_;
    boost::asio::steady_timer status_timer_;
    State state_ = State::Idle;
    bool flush_pending_ = false;  // a status update is queued in libpq's output buffer
    Lsn received_, confirmed_, reported_, server_wal_end_, slot_confirmed_, server_flush_;
    PgTimestamp line_sent_at_ = 0;
    ServerIdentity server_;
    std::uint64_t next_xid_ = 0;
    std::chrono::steady_clock::time_point last_status_{};
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // guards callbacks after close

    // Reading the copy stream from the socket (raw_): a buffer of whole messages, the
    // remainder of an oversized message being discarded, and status bytes not yet sent.
    bool raw_ = false;
    std::vector<char> in_;
    std::size_t in_start_ = 0, in_end_ = 0;
    std::size_t skip_ = 0;
    std::string out_;
    bool out_waiting_ = false;

    void poll_connect();
    void send_query(const std::string& sql, void (ReplicationStream::*next)(PGresult*));
    void await_result(void (ReplicationStream::*next)(PGresult*));
    void on_identified(PGresult* result);
    void on_slot_lookup(PGresult* result);
    void on_slot_dropped(PGresult* result);
    void create_slot();
    void on_slot_created(PGresult* result);
    void start_replication();
    void on_start_replication(PGresult* result);
    void begin_streaming();
    void read_stream();
    void read_raw();
    bool parse_raw_message();
    void handle_copy_data(const char* data, std::size_t size);
    void send_status(bool reply_requested = false);
    void write_raw(const std::string& message);
    void flush_raw();
    void flush_output();
    void schedule_status();
    void fail(StopKind kind, std::string message);
    void close();
};

}  // namespace walcast
