// QueryProjectAccess (see project_access.hpp).
#include "daemon/project_access.hpp"

#include <boost/asio/post.hpp>
#include "daemon/log.hpp"
#include "daemon/pg_text.hpp"

namespace walcast {

QueryProjectAccess::QueryProjectAccess(boost::asio::io_context& io, std::string dsn, std::string sql,
                                       std::size_t connections, std::size_t max_queued)
    : io_(io), dsn_(std::move(dsn)), sql_(std::move(sql)), max_queued_(max_queued) {
    for (std::size_t i = 0; i < connections; ++i) pool_.push_back(std::make_unique<Connection>(io));
}

QueryProjectAccess::~QueryProjectAccess() {
    for (auto& c : pool_) {
        c->alive.reset();
        c->socket.detach();
        if (c->conn) PQfinish(c->conn);
    }
}

void QueryProjectAccess::check(const std::string& project_id, const std::string& tenant_id, const std::string& user_id,
                               std::function<void(bool)> done) {
    if (queue_.size() >= max_queued_) {
        boost::asio::post(io_, [done = std::move(done)] { done(false); });
        return;
    }
    queue_.push_back(Request{project_id, tenant_id, user_id, std::move(done)});
    pump();
}

void QueryProjectAccess::pump() {
    for (auto& c : pool_) {
        if (queue_.empty()) return;
        if (c->state == Connection::State::Closed) connect(*c);
        else if (c->state == Connection::State::Ready) run(*c);
    }
}

void QueryProjectAccess::connect(Connection& c) {
    const char* keys[] = {"dbname", "application_name", nullptr};
    const char* values[] = {dsn_.c_str(), "walcast-access", nullptr};
    c.alive = std::make_shared<bool>(true);
    c.conn = PQconnectStartParams(keys, values, 1);
    if (!c.conn || PQstatus(c.conn) == CONNECTION_BAD || PQsetnonblocking(c.conn, 1) != 0)
        return reset(c, "cannot connect");
    c.state = Connection::State::Connecting;
    poll_connect(c);
}

void QueryProjectAccess::poll_connect(Connection& c) {
    std::weak_ptr<bool> alive = c.alive;
    auto again = [this, &c, alive](bool ok) {
        if (alive.expired()) return;
        if (!ok) return reset(c, "connection wait failed");
        poll_connect(c);
    };
    switch (PQconnectPoll(c.conn)) {
    case PGRES_POLLING_READING: c.socket.attach(c.conn); c.socket.wait_readable(again); return;
    case PGRES_POLLING_WRITING: c.socket.attach(c.conn); c.socket.wait_writable(again); return;
    case PGRES_POLLING_OK:
        c.socket.attach(c.conn);
        c.state = Connection::State::Ready;
        return pump();
    default: return reset(c, "cannot connect");
    }
}

void QueryProjectAccess::run(Connection& c) {
    c.current = std::make_unique<Request>(std::move(queue_.front()));
    queue_.pop_front();
    c.state = Connection::State::Busy;
    // Typed parameters, so a query that uses only $1 and $2 still accepts all three.
    const Oid types[3] = {25, 25, 25};
    const char* params[3] = {c.current->project.c_str(), c.current->tenant.c_str(), c.current->user.c_str()};
    if (!PQsendQueryParams(c.conn, sql_.c_str(), 3, types, params, nullptr, nullptr, 0))
        return reset(c, "cannot send the project access query");
    if (PQflush(c.conn) < 0) return reset(c, "cannot send the project access query");
    std::weak_ptr<bool> alive = c.alive;
    c.timer.expires_after(query_timeout);
    c.timer.async_wait([this, &c, alive](const boost::system::error_code& ec) {
        if (!ec && !alive.expired()) reset(c, "project access query timed out");
    });
    await(c);
}

void QueryProjectAccess::await(Connection& c) {
    std::weak_ptr<bool> alive = c.alive;
    if (PQflush(c.conn) == 1) {
        c.socket.wait_writable([this, &c, alive](bool ok) {
            if (alive.expired()) return;
            if (!ok) return reset(c, "connection wait failed");
            await(c);
        });
        return;
    }
    c.socket.wait_readable([this, &c, alive](bool ok) {
        if (alive.expired()) return;
        if (!ok || !PQconsumeInput(c.conn)) return reset(c, "connection lost");
        if (PQisBusy(c.conn)) return await(c);
        bool allowed = false;
        bool failed = false;
        if (PQstatus(c.conn) != CONNECTION_OK) return reset(c, "connection lost during the query");
        while (PGresult* r = PQgetResult(c.conn)) {
            const ExecStatusType st = PQresultStatus(r);
            if (st == PGRES_TUPLES_OK) allowed = allowed || PQntuples(r) > 0;
            else if (st != PGRES_COMMAND_OK) {
                failed = true;
                log_warning("project access query failed: " + one_line(PQresultErrorMessage(r)));
            }
            PQclear(r);
        }
        c.timer.cancel();
        // The server went away while answering (a restart): try the request again on a new
        // connection rather than refusing a legitimate join.
        if (PQstatus(c.conn) != CONNECTION_OK) return reset(c, "connection lost during the query");
        finish(c, allowed && !failed);
    });
}

void QueryProjectAccess::finish(Connection& c, bool allowed) {
    auto req = std::move(c.current);
    c.state = Connection::State::Ready;
    if (req) req->done(allowed);
    pump();
}

void QueryProjectAccess::reset(Connection& c, const char* why) {
    log_warning(std::string("project access connection: ") + why + (c.conn ? ": " + one_line(PQerrorMessage(c.conn)) : ""));
    c.alive.reset();
    c.timer.cancel();
    c.socket.detach();
    if (c.conn) PQfinish(c.conn);
    c.conn = nullptr;
    c.state = Connection::State::Closed;
    // The request in flight is tried again (a restarted server drops every pooled
    // connection, so each may fail once before a fresh one answers); after that it fails
    // closed. Queued requests wait for a new connection; if none can be made they are
    // refused as well, once they have had their chances.
    const int chances = static_cast<int>(pool_.size()) + 1;
    if (auto req = std::move(c.current)) {
        if (++req->attempts < chances) queue_.push_front(std::move(*req));
        else req->done(false);
    }
    bool any_alive = false;
    for (auto& other : pool_) any_alive = any_alive || other->state != Connection::State::Closed;
    if (!any_alive) {
        std::deque<Request> waiting;
        waiting.swap(queue_);
        for (Request& r : waiting) {
            if (++r.attempts < chances) queue_.push_back(std::move(r));
            else r.done(false);
        }
    }
    if (!queue_.empty()) boost::asio::post(io_, [this] { pump(); });
}

}  // namespace walcast
