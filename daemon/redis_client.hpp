// RedisClient: one connection to Redis (TCP or a Unix socket) on the Asio loop. On connect
// it authenticates and selects the database; then commands are pipelined and each reply
// goes to its command's callback, in order. Any failure drops the connection: every
// waiting callback gets the error and on_down runs once; the owner reconnects when it
// sees fit. Replies are parsed with bounds (wire/resp). Loop thread only.
#pragma once

#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "wire/resp.hpp"

namespace walcast {

class RedisClient {
public:
    // `reply` is null when the command failed (the connection went down); `error` says why.
    // A Redis error reply (-ERR ...) arrives as a reply of type Error.
    using Callback = std::function<void(const RespValue* reply, const std::string& error)>;

    RedisClient(boost::asio::io_context& io, RedisAddress address, std::string password, std::string name);
    ~RedisClient();
    RedisClient(const RedisClient&) = delete;
    RedisClient& operator=(const RedisClient&) = delete;

    // Connects, authenticates and selects the database; `done` gets "" or the error.
    void connect(std::function<void(const std::string& error)> done);
    bool connected() const { return state_ == State::Ready; }
    // Sends a command (only while connected; otherwise the callback gets an error at once,
    // on the next turn of the loop).
    void command(const std::vector<std::string>& args, Callback callback);
    std::size_t pending() const { return callbacks_.size(); }
    // Drops the connection; waiting callbacks get `why`. on_down does not run.
    void close(const std::string& why = "closed");

    std::function<void(const std::string& why)> on_down;
    std::chrono::milliseconds connect_timeout{5000};

private:
    enum class State { Idle, Connecting, Ready };

    boost::asio::io_context& io_;
    RedisAddress address_;
    std::string password_;
    std::string name_;  // CLIENT SETNAME, for `CLIENT LIST`
    boost::asio::generic::stream_protocol::socket socket_;
    boost::asio::steady_timer timer_;
    State state_ = State::Idle;
    RespParser parser_;
    std::deque<Callback> callbacks_;
    std::string out_, writing_;
    bool write_busy_ = false;
    std::vector<char> in_;
    std::shared_ptr<char> alive_ = std::make_shared<char>();

    void send(const std::vector<std::string>& args, Callback callback);
    void write_more();
    void read_more();
    void fail(const std::string& why, bool notify);
    void handshake(std::function<void(const std::string&)> done);
};

}  // namespace walcast
