// ProjectAccess implementations (see project_access.hpp).
#include "daemon/project_access.hpp"

#include <boost/asio/post.hpp>

#include "daemon/log.hpp"
#include "daemon/pg_text.hpp"

namespace walcast {

void TokenProjectAccess::check(AccessRequest request, std::function<void(Access)> done) {
    const bool allowed = request.token_projects && request.token_projects->count(request.project) > 0;
    boost::asio::post(io_, [done = std::move(done), allowed] { done(allowed ? Access::Allowed : Access::Denied); });
}

QueryProjectAccess::QueryProjectAccess(boost::asio::io_context& io, std::string dsn, std::string sql,
                                       std::size_t max_per_user, std::size_t connections, std::size_t max_total)
    : io_(io), dsn_(std::move(dsn)), sql_(std::move(sql)), max_per_user_(max_per_user), max_total_(max_total) {
    for (std::size_t i = 0; i < connections; ++i) pool_.push_back(std::make_unique<Connection>(io));
}

QueryProjectAccess::~QueryProjectAccess() {
    for (auto& c : pool_) {
        c->alive.reset();
        c->socket.detach();
        if (c->conn) PQfinish(c->conn);
    }
}

void QueryProjectAccess::check(AccessRequest request, std::function<void(Access)> done) {
    std::size_t& mine = per_user_[request.user];
    if (mine >= max_per_user_ || total_ >= max_total_) {
        if (mine == 0) per_user_.erase(request.user);
        boost::asio::post(io_, [done = std::move(done)] { done(Access::Busy); });
        return;
    }
    ++mine;
    ++total_;
    const std::string user = request.user;
    auto& queue = queues_[user];
    if (queue.empty()) ready_.push_back(user);
    queue.push_back(Request{std::move(request), std::move(done), 0});
    pump();
}

// The next request, round-robin over users.
bool QueryProjectAccess::next(Request& out) {
    while (!ready_.empty()) {
        std::string user = std::move(ready_.front());
        ready_.pop_front();
        auto it = queues_.find(user);
        if (it == queues_.end() || it->second.empty()) {
            if (it != queues_.end()) queues_.erase(it);
            continue;
        }
        out = std::move(it->second.front());
        it->second.pop_front();
        if (it->second.empty()) queues_.erase(it);
        else ready_.push_back(std::move(user));
        return true;
    }
    return false;
}

void QueryProjectAccess::requeue_front(Request request) {
    const std::string user = request.what.user;
    auto& queue = queues_[user];
    if (queue.empty()) ready_.push_front(user);
    queue.push_front(std::move(request));
}

void QueryProjectAccess::answer(Request& request, Access access) {
    auto it = per_user_.find(request.what.user);
    if (it != per_user_.end() && --it->second == 0) per_user_.erase(it);
    --total_;
    if (request.done) request.done(access);
}

void QueryProjectAccess::pump() {
    for (auto& c : pool_) {
        if (ready_.empty()) return;
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
    Request request;
    if (!next(request)) return;
    c.current = std::make_unique<Request>(std::move(request));
    c.state = Connection::State::Busy;
    // Typed parameters, so a query that uses only $1 and $2 still accepts all three.
    const Oid types[3] = {25, 25, 25};
    const AccessRequest& w = c.current->what;
    const char* params[3] = {w.project.c_str(), w.tenant.c_str(), w.user.c_str()};
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
        // A failing query says nothing about the user's rights: Busy, not Denied.
        finish(c, failed ? Access::Busy : allowed ? Access::Allowed : Access::Denied);
    });
}

void QueryProjectAccess::finish(Connection& c, Access access) {
    auto req = std::move(c.current);
    c.state = Connection::State::Ready;
    if (req) answer(*req, access);
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
    // connection, so each may fail once before a fresh one answers); after that it is
    // answered Busy. Queued requests wait for a new connection; if none can be made they
    // are answered Busy as well, once they have had their chances.
    const int chances = static_cast<int>(pool_.size()) + 1;
    if (auto req = std::move(c.current)) {
        if (++req->attempts < chances) requeue_front(std::move(*req));
        else answer(*req, Access::Busy);
    }
    bool any_alive = false;
    for (auto& other : pool_) any_alive = any_alive || other->state != Connection::State::Closed;
    if (!any_alive) {
        std::vector<Request> waiting;
        Request r;
        while (next(r)) waiting.push_back(std::move(r));
        for (Request& w : waiting) {
            if (++w.attempts < chances) {
                const std::string user = w.what.user;
                auto& queue = queues_[user];
                if (queue.empty()) ready_.push_back(user);
                queue.push_back(std::move(w));
            } else {
                answer(w, Access::Busy);
            }
        }
    }
    if (!ready_.empty()) boost::asio::post(io_, [this] { pump(); });
}

}  // namespace walcast
