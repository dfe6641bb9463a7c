// ReplicationStream (see replication_stream.hpp). Follows pg_recvlogical's loop: consume
// input, drain every complete CopyData message, answer keepalives that ask for a reply at
// once, and send a status update at least every status_interval.
#include "daemon/replication_stream.hpp"

#include <sys/socket.h>

#include <boost/asio/post.hpp>
#include <cerrno>
#include <cstring>

#include "daemon/log.hpp"
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
// The socket is read in chunks this large (a backlog drains in few reads); the buffer grows
// only as far as one message needs.
constexpr std::size_t kReadChunk = 1 << 20;
// A message that is not CopyData (an error, a notice) is at most this long.
constexpr std::size_t kMaxControlMessage = 1 << 20;
// The XLogData header before a wal2json line: 'w', walStart, walEnd, sendTime.
constexpr std::size_t kXLogHeader = 1 + 8 + 8 + 8;

StopKind kind_of(const std::string& state) {
    // 55006: the slot became active for another process between lookup and start.
    return state == "55006" ? StopKind::SlotBusy : StopKind::Disconnected;
}

}  // namespace

ReplicationStream::ReplicationStream(boost::asio::io_context& io, std::string dsn, std::string slot,
                                     std::size_t max_line_bytes, Handler& handler)
    : io_(io),
      dsn_(std::move(dsn)),
      slot_(std::move(slot)),
      max_line_bytes_(max_line_bytes),
      handler_(handler),
      socket_(io),
      status_timer_(io) {}

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
        send_query("IDENTIFY_SYSTEM", &ReplicationStream::on_identified);
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

void ReplicationStream::on_identified(PGresult* r) {
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1 || PQnfields(r) < 3)
        return fail(StopKind::Disconnected, "IDENTIFY_SYSTEM failed: " + result_error(r));
    server_.system_id = PQgetvalue(r, 0, 0);
    server_.timeline = static_cast<std::uint32_t>(std::strtoul(PQgetvalue(r, 0, 1), nullptr, 10));
    if (auto lsn = Lsn::parse(PQgetvalue(r, 0, 2))) server_flush_ = *lsn;
    // PostgreSQL 17 failover slots are synchronized to standbys and survive a promotion.
    const bool has_failover = PQserverVersion(conn_) >= 170000;
    // One row whether or not the slot exists; the first column is the next xid (with its
    // epoch), the reference for the 32-bit xids of the WAL.
    send_query(std::string("SELECT pg_catalog.pg_snapshot_xmax(pg_catalog.pg_current_snapshot())::text, s.plugin, "
                           "s.active_pid, s.confirmed_flush_lsn, s.wal_status, ") +
                   (has_failover ? "s.failover" : "false") +
                   " FROM (SELECT 1) AS one LEFT JOIN pg_catalog.pg_replication_slots AS s ON s.slot_name = " +
                   quote_literal(slot_),
               &ReplicationStream::on_slot_lookup);
}

void ReplicationStream::on_slot_lookup(PGresult* r) {
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return fail(StopKind::Disconnected, "cannot look up slot " + slot_ + ": " + result_error(r));
    SlotInfo slot;
    if (PQntuples(r) != 1) return fail(StopKind::Disconnected, "slot lookup returned no row");
    next_xid_ = std::strtoull(PQgetvalue(r, 0, 0), nullptr, 10);
    if (!PQgetisnull(r, 0, 1)) {
        slot.exists = true;
        slot.plugin = PQgetvalue(r, 0, 1);
        if (!PQgetisnull(r, 0, 2))
            return fail(StopKind::SlotBusy, "replication slot \"" + slot_ + "\" is in use by PID " + PQgetvalue(r, 0, 2));
        if (!PQgetisnull(r, 0, 3))
            if (auto lsn = Lsn::parse(PQgetvalue(r, 0, 3))) slot.confirmed = *lsn;
        slot.wal_status = PQgetvalue(r, 0, 4);
        slot.failover = std::string(PQgetvalue(r, 0, 5)) == "t";
    }
    slot_confirmed_ = slot.confirmed;
    const SlotDecision decision = handler_.on_slot(server_, slot);
    switch (decision.step) {
    case SlotStep::Start: return start_replication();
    case SlotStep::Create: return create_slot();
    case SlotStep::Recreate:
        return send_query("DROP_REPLICATION_SLOT " + quote_ident(slot_), &ReplicationStream::on_slot_dropped);
    case SlotStep::Wait: return fail(StopKind::SlotWaiting, decision.detail);
    case SlotStep::Fatal: return fail(StopKind::Fatal, decision.detail);
    }
}

void ReplicationStream::on_slot_dropped(PGresult* r) {
    // 42704: already gone.
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK && sqlstate(r) != "42704")
        return fail(kind_of(sqlstate(r)), "cannot drop invalidated slot " + slot_ + ": " + result_error(r));
    create_slot();
}

void ReplicationStream::create_slot() {
    send_query("CREATE_REPLICATION_SLOT " + quote_ident(slot_) + " LOGICAL wal2json NOEXPORT_SNAPSHOT",
               &ReplicationStream::on_slot_created);
}

void ReplicationStream::on_slot_created(PGresult* r) {
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && PQnfields(r) >= 2) {
        if (auto lsn = Lsn::parse(PQgetvalue(r, 0, 1))) slot_confirmed_ = *lsn;  // the consistent point
    } else if (sqlstate(r) != "42710") {
        // 42710: created by someone else since the lookup; it is used as it is.
        return fail(StopKind::Disconnected, "cannot create slot " + slot_ + ": " + result_error(r));
    }
    start_replication();
}

void ReplicationStream::start_replication() {
    // After a reconnect, resume past what this process already dispatched even if the slot's
    // confirmed_flush_lsn had not caught up yet; the server takes the later of the two.
    const std::string sql = "START_REPLICATION SLOT " + quote_ident(slot_) + " LOGICAL " + confirmed_.str() +
                            " (\"format-version\" '2', \"include-xids\" '1', \"include-lsn\" '1', "
                            "\"include-timestamp\" '1')";
    // Without TLS or GSS encryption the copy stream is plain protocol on the socket: walcast
    // reads it itself from here on (libpq's input buffer is empty between results).
    raw_ = !PQsslInUse(conn_) && !PQgssEncInUse(conn_);
    if (!raw_) return send_query(sql, &ReplicationStream::on_start_replication);
    state_ = State::Starting;
    in_.assign(kReadChunk, 0);
    in_start_ = in_end_ = 0;
    skip_ = 0;
    out_.clear();
    write_raw(encode_query_message(sql));
    read_raw();
}

void ReplicationStream::on_start_replication(PGresult* r) {
    if (PQresultStatus(r) != PGRES_COPY_BOTH)
        return fail(kind_of(sqlstate(r)), "START_REPLICATION failed: " + result_error(r));
    begin_streaming();
    read_stream();
}

void ReplicationStream::begin_streaming() {
    state_ = State::Streaming;
    last_status_ = std::chrono::steady_clock::now();
    handler_.on_streaming();
    schedule_status();
}

// ---- the copy stream through libpq (TLS or GSS connections) ------------------------------

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
        const std::size_t size = static_cast<std::size_t>(n);
        if (size > kXLogHeader + max_line_bytes_ && buf[0] == 'w') {
            // libpq has buffered it whole already; at least it goes no further.
            auto header = parse_copy_message(std::string_view(buf, kXLogHeader));
            handler_.on_oversized_line(header ? std::get<XLogData>(*header).wal_start : Lsn{}, size - kXLogHeader);
        } else {
            handle_copy_data(buf, size);
        }
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

// ---- the copy stream read from the socket ------------------------------------------------

void ReplicationStream::read_raw() {
    std::weak_ptr<bool> alive = alive_;
    int handled = 0;
    const int fd = PQsocket(conn_);
    for (;;) {
        while (parse_raw_message()) {
            if (alive.expired() || (state_ != State::Streaming && state_ != State::Starting)) return;
            if (++handled >= kMessagesPerTurn) {
                boost::asio::post(io_, [this, alive] {
                    if (!alive.expired()) read_raw();
                });
                return;
            }
        }
        if (alive.expired()) return;
        // Room to read: move what is left of a message to the front.
        if (in_start_ > 0) {
            std::memmove(in_.data(), in_.data() + in_start_, in_end_ - in_start_);
            in_end_ -= in_start_;
            in_start_ = 0;
        }
        if (in_end_ == in_.size()) in_.resize(in_.size() * 2);  // parse_raw_message asked for a bigger message
        const ssize_t n = ::recv(fd, in_.data() + in_end_, in_.size() - in_end_, MSG_DONTWAIT);
        if (n > 0) {
            in_end_ += static_cast<std::size_t>(n);
            continue;
        }
        if (n == 0) return fail(StopKind::Disconnected, "the server closed the replication connection");
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return fail(StopKind::Disconnected, std::string("replication socket: ") + std::strerror(errno));
        socket_.wait_readable([this, alive](bool ok) {
            if (alive.expired()) return;
            if (!ok) return fail(StopKind::Disconnected, "replication socket wait failed");
            read_raw();
        });
        return;
    }
}

// Handles the next whole message in the buffer; false when more bytes are needed.
bool ReplicationStream::parse_raw_message() {
    const std::size_t avail = in_end_ - in_start_;
    const char* p = in_.data() + in_start_;
    if (skip_ > 0) {
        // The rest of an oversized line: discarded as it arrives, never held.
        const std::size_t take = std::min(skip_, avail);
        in_start_ += take;
        skip_ -= take;
        if (in_start_ == in_end_) in_start_ = in_end_ = 0;
        if (skip_ == 0 && in_.size() > kReadChunk && in_end_ - in_start_ < kReadChunk) {
            std::vector<char> smaller(kReadChunk);
            std::memcpy(smaller.data(), in_.data() + in_start_, in_end_ - in_start_);
            in_end_ -= in_start_;
            in_start_ = 0;
            in_.swap(smaller);
        }
        return take > 0;
    }
    if (avail < kMessageHeader) return false;
    const char type = p[0];
    auto size = message_payload_size(std::string_view(p, kMessageHeader));
    if (!size) {
        fail(StopKind::Disconnected, "bad message from server: " + size.error().message);
        return false;
    }
    const std::size_t payload = *size;
    if (type == 'd' && payload > kXLogHeader + max_line_bytes_) {
        // An oversized line: its header says where it starts, the rest is skipped.
        if (avail < kMessageHeader + kXLogHeader) return false;
        auto header = parse_copy_message(std::string_view(p + kMessageHeader, kXLogHeader));
        if (!header || !std::holds_alternative<XLogData>(*header)) {
            fail(StopKind::Disconnected, "bad oversized message from server");
            return false;
        }
        const XLogData& x = std::get<XLogData>(*header);
        if (x.wal_start > received_) received_ = x.wal_start;
        in_start_ += kMessageHeader + kXLogHeader;
        skip_ = payload - kXLogHeader;
        handler_.on_oversized_line(x.wal_start, skip_);
        return true;
    }
    if (type != 'd' && payload > kMaxControlMessage) {
        fail(StopKind::Disconnected, std::string("the server sent a '") + type + "' message of " + std::to_string(payload) +
                                         " bytes");
        return false;
    }
    if (avail < kMessageHeader + payload) {
        if (kMessageHeader + payload > in_.size()) in_.resize(kMessageHeader + payload);
        return false;
    }
    const char* body = p + kMessageHeader;
    in_start_ += kMessageHeader + payload;
    switch (type) {
    case 'd':
        if (state_ == State::Streaming) handle_copy_data(body, payload);
        break;
    case 'W':  // CopyBothResponse: the stream starts
        if (state_ == State::Starting) begin_streaming();
        break;
    case 'E': {
        auto notice = parse_server_notice(std::string_view(body, payload));
        const std::string why = notice ? notice->message : "unreadable error";
        const std::string state = notice ? notice->sqlstate : "";
        fail(kind_of(state), (state_ == State::Starting ? "START_REPLICATION failed: " : "the server ended the replication stream: ") +
                                 why);
        return false;
    }
    case 'N':
        if (auto notice = parse_server_notice(std::string_view(body, payload)))
            log_notice("server notice on the replication connection: " + notice->message);
        break;
    case 'c':
        fail(StopKind::Disconnected, "the server ended the replication stream");
        return false;
    case 'S': case 'A': case 'C': case 'Z': break;  // parameter status, notification, command complete, ready
    default:
        fail(StopKind::Disconnected, std::string("unexpected message type '") + type + "' on the replication connection");
        return false;
    }
    if (in_start_ == in_end_) in_start_ = in_end_ = 0;
    return true;
}

void ReplicationStream::write_raw(const std::string& message) {
    out_ += message;
    flush_raw();
}

void ReplicationStream::flush_raw() {
    while (!out_.empty()) {
        const ssize_t n = ::send(PQsocket(conn_), out_.data(), out_.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0) {
            out_.erase(0, static_cast<std::size_t>(n));
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (out_waiting_) return;
            out_waiting_ = true;
            std::weak_ptr<bool> alive = alive_;
            socket_.wait_writable([this, alive](bool ok) {
                if (alive.expired()) return;
                out_waiting_ = false;
                if (ok) flush_raw();
            });
            return;
        }
        return fail(StopKind::Disconnected, std::string("cannot write to server: ") + std::strerror(errno));
    }
}

// ---- both ---------------------------------------------------------------------------------

void ReplicationStream::handle_copy_data(const char* data, std::size_t size) {
    auto msg = parse_copy_message(std::string_view(data, size));
    if (!msg) return fail(StopKind::Disconnected, "bad message from server: " + msg.error().message);
    if (auto* w = std::get_if<XLogData>(&*msg)) {
        if (w->wal_end > server_wal_end_) server_wal_end_ = w->wal_end;
        if (w->wal_start > received_) received_ = w->wal_start;
        line_sent_at_ = w->send_time;
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
    reported_ = confirmed_;
    last_status_ = std::chrono::steady_clock::now();
    if (raw_) return write_raw(encode_copy_data(msg));
    if (PQputCopyData(conn_, msg.data(), static_cast<int>(msg.size())) != 1)
        return fail(StopKind::Disconnected, "cannot send status update: " + trimmed_error(conn_));
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
        if (raw_) {
            out_ += encode_copy_data(msg);
            out_ += encode_copy_done();
            ::send(PQsocket(conn_), out_.data(), out_.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
        } else if (PQputCopyData(conn_, msg.data(), static_cast<int>(msg.size())) == 1) {
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
    out_waiting_ = false;
    raw_ = false;
    in_.clear();
    in_.shrink_to_fit();
    in_start_ = in_end_ = skip_ = 0;
    out_.clear();
}

}  // namespace walcast
