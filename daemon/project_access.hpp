// ProjectAccess: who may join project:<id>. Two implementations: the token's own
// `projects` claim, or project_access_sql on a small pool of ordinary (non-replication)
// libpq connections, asynchronous on the loop so a slow query never blocks streaming or
// other clients. Queries are queued per user and served round-robin, so one user's flood
// of joins delays only that user; a full queue answers Busy, never Denied.
// Loop thread only.
#pragma once

#include <libpq-fe.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "daemon/pg_socket.hpp"

namespace walcast {

enum class Access : std::uint8_t {
    Allowed,
    Denied,  // the check ran and said no
    Busy,    // the check could not run now (queue full, database unreachable, timeout)
};

struct AccessRequest {
    std::string project, tenant, user;
    // project_access = "token": the token's `projects` claim (null: the token has none).
    std::shared_ptr<const std::unordered_set<std::string>> token_projects;
};

class ProjectAccess {
public:
    virtual ~ProjectAccess() = default;
    // `done` runs later on the loop thread, exactly once.
    virtual void check(AccessRequest request, std::function<void(Access)> done) = 0;
};

// Reads the token's `projects` claim; answers on the next turn of the loop.
class TokenProjectAccess : public ProjectAccess {
public:
    explicit TokenProjectAccess(boost::asio::io_context& io) : io_(io) {}
    void check(AccessRequest request, std::function<void(Access)> done) override;

private:
    boost::asio::io_context& io_;
};

class QueryProjectAccess : public ProjectAccess {
public:
    // `max_per_user`: checks queued or running for one user; more answer Busy at once.
    // `max_total`: all users together.
    QueryProjectAccess(boost::asio::io_context& io, std::string dsn, std::string sql, std::size_t max_per_user,
                       std::size_t connections = 2, std::size_t max_total = 65536);
    ~QueryProjectAccess() override;

    // $1 project, $2 tenant, $3 user (all text); a returned row means allowed.
    void check(AccessRequest request, std::function<void(Access)> done) override;

    std::chrono::milliseconds query_timeout{5000};
    std::size_t queued() const { return total_; }

private:
    struct Request {
        AccessRequest what;
        std::function<void(Access)> done;
        int attempts = 0;  // connections lost under this request; it is retried a few times
    };
    struct Connection {
        explicit Connection(boost::asio::io_context& io) : socket(io), timer(io) {}
        PGconn* conn = nullptr;
        PgSocket socket;
        boost::asio::steady_timer timer;
        enum class State { Closed, Connecting, Ready, Busy } state = State::Closed;
        std::unique_ptr<Request> current;
        std::shared_ptr<bool> alive;
    };

    boost::asio::io_context& io_;
    std::string dsn_;
    std::string sql_;
    std::size_t max_per_user_, max_total_;
    // Per-user queues, served round-robin: `ready_` lists users with queued checks.
    std::unordered_map<std::string, std::deque<Request>> queues_;
    std::deque<std::string> ready_;
    std::unordered_map<std::string, std::size_t> per_user_;  // queued + running
    std::size_t total_ = 0;
    std::vector<std::unique_ptr<Connection>> pool_;

    bool next(Request& out);
    void requeue_front(Request request);
    void answer(Request& request, Access access);
    void pump();
    void connect(Connection& c);
    void poll_connect(Connection& c);
    void run(Connection& c);
    void await(Connection& c);
    void reset(Connection& c, const char* why);
    void finish(Connection& c, Access access);
};

}  // namespace walcast
