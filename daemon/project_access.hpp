// QueryProjectAccess: answers join-project with project_access_sql on a small pool of
// ordinary (non-replication) libpq connections, asynchronously on the loop, so a slow query
// never blocks streaming or other clients. Fails closed: any error denies. Loop thread only.
#pragma once

#include <libpq-fe.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "daemon/pg_socket.hpp"
#include "daemon/socketio_server.hpp"

namespace walcast {

class QueryProjectAccess : public ProjectAccess {
public:
    QueryProjectAccess(boost::asio::io_context& io, std::string dsn, std::string sql, std::size_t connections = 2,
                       std::size_t max_queued = 4096);
    ~QueryProjectAccess() override;

    // $1 project, $2 tenant, $3 user (all text); a returned row means allowed.
    void check(const std::string& project_id, const std::string& tenant_id, const std::string& user_id,
               std::function<void(bool allowed)> done) override;

    std::chrono::milliseconds query_timeout{5000};

private:
    struct Request {
        std::string project, tenant, user;
        std::function<void(bool)> done;
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
    std::size_t max_queued_;
    std::deque<Request> queue_;
    std::vector<std::unique_ptr<Connection>> pool_;

    void pump();
    void connect(Connection& c);
    void poll_connect(Connection& c);
    void run(Connection& c);
    void await(Connection& c);
    void reset(Connection& c, const char* why);
    void finish(Connection& c, bool allowed);
};

}  // namespace walcast
