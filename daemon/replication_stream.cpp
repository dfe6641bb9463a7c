// ReplicationStream (see replication_stream.hpp). Follows pg_recvlogical's loop: consume
// input, drain every complete CopyData message, answer keepalives that ask for a reply at
// once, and send a status update at least every status_interval.
#include "daemon/replication_stream.hpp"

#include <boost/asio/post.hpp>
#include <cstring>
#include <vector>

#include "daemon/pg_text.hpp"
#include "decoder/copy_message.hpp"

namespace walcast {

namespace {

std::string trimmed_error(PGconn* conn) { return conn ? one_line(PQerrorMessage(conn)) : "out of memory"; }

std::string result_error(PGresult* r) { return one_line(PQresultErrorMessage(r)); }

std::string sqlstate(PGresult* r) {
    const char* s = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    return s ? s : "";
}

std::int64_t now_pg() {
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                  std::chrono::system_clock::now().time_since_epoch())
                  .count();
    return pg_timestamp_from_unix_us(us);
}

// At most this many messages are handled per turn of the loop, so a backlog of WAL never
// starves the clients' sockets and timers.
constexpr int kMessagesPerTurn = 2000;

}  // namespace

ReplicationStream::ReplicationStream(boost::asio::io_context& io, std::string dsn, std::string slot, Handler& handler)
    : io_(io), dsn_(std::move(dsn)), slot_(std::move(slot)), handler_(handler), socket_(io), status_timer_(io) {}

ReplicationStream::~ReplicationStream() { close(); }

void ReplicationStream::start() {
    close();
    alive_ = std::make_shared<bool>(true);
    // Later keywords override what the DSN says: this is always a logical replication
    // connection, and wal2json's text output (timestamps) is in UTC.
    const char* keys[] = {"dbname", "replication", "application_name", "options", nullptr};
    const char* values[] = {dsn_.c_str(), "database", "walcast", "-c TimeZone=UTC -c DateStyle=ISO", nullptr};
    conn_ = PQconnectStartParams(keys, values, /*expand_dbname=*/1);
    if (!conn_ || PQstatus(conn_) == CONNECTION_BAD) return fail(StopKind::Disconnected, "cannot connect: " + trimmed_error(conn_));
    if (PQsetnonblocking(conn_, 1) != 0) return fail(StopKind::Disconnected, "cannot make the connection non-blocking");
    state_ = State::Connecting;
    poll_connect();
}

void ReplicationStream::poll_connect() {
    std::weak_ptr<bool> alive = alive_;
    switch (PQconnectPoll(conn_)) {
    case PGRES_POLLING_READING:
        socket_.attach(conn_);
        socket_.wait_readable([this, alive](bool ok) {
            if (alive.expired()) return;
            if (!ok) return fail(StopKind::Disconnected, "connection wait failed");
            poll_connect();
        });
        return;
    case PGRES_POLLING_WRITING:
        socket_.attach(conn_);
        socket_.wait_writable([this, alive](bool ok) {
            if (alive.expired()) return;
            if (!ok) return fail(StopKind::Disconnected, "connection wait failed");
            poll_connect();
        });
        return;
    case PGRES_POLLING_OK:
        socket_.attach(conn_);
        state_ = State::Querying;
        send_query("SELECT plugin, active_pid, confirmed_flush_lsn FROM pg_catalog.pg_replication_slots WHERE slot_name = " +
                       quote_literal(slot_),
                   &ReplicationStream::on_slot_lookup);
        return;
    default:
        return fail(StopKind::Disconnected, "cannot connect: " + trimmed_error(conn_));
    }
}

void ReplicationStream::send_query(const std::string& sql, void (ReplicationStream::*next)(PGresult*)) {
    if (!PQsendQuery(conn_, sql.c_str())) return fail(StopKind::Disconnected, "query failed: " + trimmed_error(conn_));
    flush_output();
    await_result(next);
}

// Waits until the whole result is in, then hands the first PGresult to `next` (and drains
// the rest, except for COPY BOTH, which has no end).
void ReplicationStream::await_result(void (ReplicationStream::*next)(PGresult*)) {
    std::weak_ptr<bool> alive = alive_;
    socket_.wait_readable([this, alive, next](bool ok) {
        if (alive.expired()) return;
        if (!ok) return fail(StopKind::Disconnected, "connection wait failed");
        if (!PQconsumeInput(conn_)) return fail(StopKind::Disconnected, "connection lost: " + trimmed_error(conn_));
        if (PQisBusy(conn_)) return await_result(next);
        PGresult* first = PQgetResult(conn_);
        if (first && PQresultStatus(first) != PGRES_COPY_BOTH) {
            while (PGresult* extra = PQgetResult(conn_)) PQclear(extra);
        }
        if (!first) return fail(StopKind::Disconnected, "no result from server");
        (this->*next)(first);
        PQclear(first);
    });
}

void ReplicationStream::on_slot_lookup(PGresult* r) {
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return fail(StopKind::Disconnected, "cannot look up slot " + slot_ + ": " + result_error(r));
    if (PQntuples(r) == 0) {
        send_query("CREATE_REPLICATION_SLOT " + quote_ident(slot_) + " LOGICAL wal2json NOEXPORT_SNAPSHOT",
                   &ReplicationStream::on_slot_created);
        return;
    }
    const std::string plugin = PQgetvalue(r, 0, 0);
    if (plugin != "wal2json")
        return fail(StopKind::Fatal, "replication slot \"" + slot_ + "\" uses plugin \"" + plugin +
                                         "\", not wal2json; drop it (SELECT pg_drop_replication_slot('" + slot_ +
                                         "');) or set [postgres] slot to another name");
    if (!PQgetisnull(r, 0, 1))
        return fail(StopKind::SlotBusy, "replication slot \"" + slot_ + "\" is in use by PID " + PQgetvalue(r, 0, 1));
    if (!PQgetisnull(r, 0, 2))
        if (auto lsn = Lsn::parse(PQgetvalue(r, 0, 2))) slot_confirmed_ = *lsn;
    on_slot_created(nullptr);
}

void ReplicationStream::on_slot_created(PGresult* r) {
    // 42710: created by someone else since the lookup; it is used as it is.
    if (r && PQresultStatus(r) != PGRES_TUPLES_OK && sqlstate(r) != "42710")
        return fail(StopKind::Disconnected, "cannot create slot " + slot_ + ": " + result_error(r));
    // After a reconnect, resume past what this process already dispatched even if the slot's
    // confirmed_flush_lsn had not caught up yet; the server takes the later of the two.
    send_query("START_REPLICATION SLOT " + quote_ident(slot_) + " LOGICAL " + confirmed_.str() +
                   " (\"format-version\" '2', \"include-xids\" '1', \"include-lsn\" '1', "
                   "\"include-timestamp\" '1')",
               &ReplicationStream::on_start_replication);
}

void ReplicationStream::on_start_replication(PGresult* r) {
    if (PQresultStatus(r) != PGRES_COPY_BOTH) {
        // 55006: the slot became active for another process between lookup and start.
        const StopKind kind = sqlstate(r) == "55006" ? StopKind::SlotBusy : StopKind::Disconnected;
        return fail(kind, "START_REPLICATION failed: " + result_error(r));
    }
    state_ = State::Streaming;
    last_status_ = std::chrono::steady_clock::now();
    handler_.on_streaming();
    schedule_status();
    read_stream();
}

void ReplicationStream::read_stream() {
    if (state_ != State::Streaming) return;
    std::weak_ptr<bool> alive = alive_;
    int handled = 0;
    if (!PQconsumeInput(conn_)) return fail(StopKind::Disconnected, "replication connection lost: " + trimmed_error(conn_));
    for (;;) {
        char* buf = nullptr;
        const int n = PQgetCopyData(conn_, &buf, /*async=*/1);
        if (n == 0) break;  // no complete message buffered
        if (n == -1) {
            PGresult* res = PQgetResult(conn_);
            std::string why = res ? result_error(res) : std::string();
            if (res) PQclear(res);
            return fail(StopKind::Disconnected, "the server ended the replication stream" + (why.empty() ? "" : ": " + why));
        }
        if (n < 0) return fail(StopKind::Disconnected, "replication stream error: " + trimmed_error(conn_));
        handle_copy_data(buf, n);
        PQfreemem(buf);
        if (alive.expired() || state_ != State::Streaming) return;  // a handler stopped us
        if (++handled == kMessagesPerTurn) {
            boost::asio::post(io_, [this, alive] {
                if (!alive.expired()) read_stream();
            });
            return;
        }
    }
    socket_.wait_readable([this, alive](bool ok) {
        if (alive.expired()) return;
        if (!ok) return fail(StopKind::Disconnected, "replication socket wait failed");
        read_stream();
    });
}

void ReplicationStream::handle_copy_data(const char* data, int size) {
    auto msg = parse_copy_message(std::string_view(data, static_cast<std::size_t>(size)));
    if (!msg) return fail(StopKind::Disconnected, "bad message from server: " + msg.error().message);
    if (auto* w = std::get_if<XLogData>(&*msg)) {
        if (w->wal_end > server_wal_end_) server_wal_end_ = w->wal_end;
        if (w->wal_start > received_) received_ = w->wal_start;
        handler_.on_wal_line(w->payload);
        return;
    }
    const auto& k = std::get<Keepalive>(*msg);
    if (k.wal_end > server_wal_end_) server_wal_end_ = k.wal_end;
    handler_.on_keepalive(k.wal_end, k.reply_requested);
    if (state_ == State::Streaming && k.reply_requested) send_status();
}

void ReplicationStream::confirm(Lsn flushed) {
    if (flushed <= confirmed_) return;  // never backwards
    confirmed_ = flushed;
    if (confirmed_ > received_) received_ = confirmed_;
}

void ReplicationStream::schedule_status() {
    std::weak_ptr<bool> alive = alive_;
    status_timer_.expires_after(std::chrono::seconds(1));
    status_timer_.async_wait([this, alive](const boost::system::error_code& ec) {
        if (ec || alive.expired() || state_ != State::Streaming) return;
        // Report a new flush position within a second; otherwise every status_interval.
        if (confirmed_ != reported_ || std::chrono::steady_clock::now() - last_status_ >= status_interval) send_status();
        schedule_status();
    });
}

void ReplicationStream::send_status(bool reply_requested) {
    if (!conn_ || state_ != State::Streaming) return;
    const std::string msg = encode_standby_status(received_, confirmed_, confirmed_, now_pg(), reply_requested);
    if (PQputCopyData(conn_, msg.data(), static_cast<int>(msg.size())) != 1)
        return fail(StopKind::Disconnected, "cannot send status update: " + trimmed_error(conn_));
    reported_ = confirmed_;
    last_status_ = std::chrono::steady_clock::now();
    flush_output();
}

void ReplicationStream::flush_output() {
    const int r = PQflush(conn_);
    if (r < 0) return fail(StopKind::Disconnected, "cannot write to server: " + trimmed_error(conn_));
    if (r == 0 || flush_pending_) return;
    flush_pending_ = true;
    std::weak_ptr<bool> alive = alive_;
    socket_.wait_writable([this, alive](bool ok) {
        if (alive.expired()) return;
        flush_pending_ = false;
        if (ok) flush_output();
    });
}

void ReplicationStream::fail(StopKind kind, std::string message) {
    close();
    handler_.on_stopped(StopReason{kind, std::move(message)});
}

void ReplicationStream::stop() {
    if (state_ == State::Streaming && conn_) {
        // Best effort: a last report of what was dispatched, flushed without waiting.
        const std::string msg = encode_standby_status(received_, confirmed_, confirmed_, now_pg(), false);
        if (PQputCopyData(conn_, msg.data(), static_cast<int>(msg.size())) == 1) {
            PQsetnonblocking(conn_, 0);
            PQflush(conn_);
            PQputCopyEnd(conn_, nullptr);
            PQflush(conn_);
        }
    }
    close();
}

void ReplicationStream::close() {
    alive_.reset();
    boost::system::error_code ignored;
    status_timer_.cancel();
    socket_.detach();
    if (conn_) {
        PQfinish(conn_);
        conn_ = nullptr;
    }
    state_ = State::Idle;
    flush_pending_ = false;
}

}  // namespace walcast
