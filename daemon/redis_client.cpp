// RedisClient (see redis_client.hpp).
#include "daemon/redis_client.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

namespace walcast {

RedisClient::RedisClient(boost::asio::io_context& io, RedisAddress address, std::string password, std::string name)
    : io_(io), address_(std::move(address)), password_(std::move(password)), name_(std::move(name)), socket_(io),
      timer_(io), in_(64 << 10) {}

RedisClient::~RedisClient() { close("client destroyed"); }

void RedisClient::connect(std::function<void(const std::string& error)> done) {
    close("reconnecting");
    state_ = State::Connecting;
    parser_ = RespParser();
    std::weak_ptr<char> guard = alive_;
    timer_.expires_after(connect_timeout);
    timer_.async_wait([this, guard](const boost::system::error_code& ec) {
        if (ec || !guard.lock() || state_ != State::Connecting) return;
        boost::system::error_code ignored;
        socket_.close(ignored);  // the pending connect or handshake fails with "aborted"
    });
    auto after_connect = [this, guard, done](const boost::system::error_code& ec) {
        if (!guard.lock()) return;
        if (ec) {
            fail("cannot connect to Redis: " + ec.message(), false);
            return done("cannot connect to Redis: " + ec.message());
        }
        read_more();
        handshake(done);
    };
    if (!address_.path.empty()) {
        const boost::asio::local::stream_protocol::endpoint ep(address_.path);
        socket_.async_connect(boost::asio::generic::stream_protocol::endpoint(ep), after_connect);
        return;
    }
    auto resolver = std::make_shared<boost::asio::ip::tcp::resolver>(io_);
    resolver->async_resolve(
        address_.host, std::to_string(address_.port),
        [this, guard, done, after_connect, resolver](const boost::system::error_code& ec,
                                                    boost::asio::ip::tcp::resolver::results_type results) {
            if (!guard.lock()) return;
            if (ec || results.empty()) {
                fail("cannot resolve Redis host " + address_.host, false);
                return done("cannot resolve Redis host " + address_.host + ": " + ec.message());
            }
            socket_.async_connect(boost::asio::generic::stream_protocol::endpoint(results.begin()->endpoint()),
                                  after_connect);
        });
}

// AUTH (when a password is set), SELECT, CLIENT SETNAME; the first failure fails the connect.
void RedisClient::handshake(std::function<void(const std::string&)> done) {
    std::vector<std::vector<std::string>> steps;
    if (!password_.empty()) steps.push_back({"AUTH", password_});
    if (address_.db != 0) steps.push_back({"SELECT", std::to_string(address_.db)});
    steps.push_back({"CLIENT", "SETNAME", name_});
    auto remaining = std::make_shared<std::size_t>(steps.size());
    auto failed = std::make_shared<bool>(false);
    for (std::size_t i = 0; i < steps.size(); ++i) {
        const std::string what = steps[i][0];
        send(steps[i], [this, remaining, failed, done, what](const RespValue* reply, const std::string& error) {
            if (*failed) return;
            if (!reply || reply->type == RespValue::Type::Error) {
                *failed = true;
                const std::string why = "Redis " + what + " failed: " + (reply ? reply->text : error);
                fail(why, false);
                return done(why);
            }
            if (--*remaining == 0) {
                state_ = State::Ready;
                timer_.cancel();
                done("");
            }
        });
    }
}

void RedisClient::command(const std::vector<std::string>& args, Callback callback) {
    if (state_ != State::Ready) {
        boost::asio::post(io_, [callback = std::move(callback)] { callback(nullptr, "not connected to Redis"); });
        return;
    }
    send(args, std::move(callback));
}

void RedisClient::send(const std::vector<std::string>& args, Callback callback) {
    out_ += encode_command(args);
    callbacks_.push_back(std::move(callback));
    write_more();
}

void RedisClient::write_more() {
    if (write_busy_ || out_.empty()) return;
    write_busy_ = true;
    writing_.swap(out_);
    out_.clear();
    std::weak_ptr<char> guard = alive_;
    boost::asio::async_write(socket_, boost::asio::buffer(writing_),
                             [this, guard](const boost::system::error_code& ec, std::size_t) {
                                 if (!guard.lock()) return;
                                 write_busy_ = false;
                                 writing_.clear();
                                 if (ec) return fail("Redis write failed: " + ec.message(), true);
                                 write_more();
                             });
}

void RedisClient::read_more() {
    std::weak_ptr<char> guard = alive_;
    socket_.async_read_some(boost::asio::buffer(in_), [this, guard](const boost::system::error_code& ec, std::size_t n) {
        if (!guard.lock()) return;
        if (ec) return fail(ec == boost::asio::error::eof ? "Redis closed the connection" : "Redis read failed: " + ec.message(),
                            true);
        auto fed = parser_.feed(std::string_view(in_.data(), n));
        if (!fed) return fail("bad reply from Redis: " + fed.error().message, true);
        RespValue reply;
        while (parser_.next(reply)) {
            if (callbacks_.empty()) return fail("a Redis reply nobody asked for", true);
            Callback cb = std::move(callbacks_.front());
            callbacks_.pop_front();
            cb(&reply, "");
            if (!guard.lock() || socket_.is_open() == false) return;  // a callback closed us
        }
        read_more();
    });
}

void RedisClient::fail(const std::string& why, bool notify) {
    if (state_ == State::Idle && callbacks_.empty()) return;
    const bool was_ready = state_ == State::Ready;
    close(why);
    if (notify && was_ready && on_down) on_down(why);
}

void RedisClient::close(const std::string& why) {
    boost::system::error_code ignored;
    timer_.cancel();
    if (socket_.is_open()) socket_.close(ignored);
    state_ = State::Idle;
    out_.clear();
    write_busy_ = false;
    // New callbacks from these go to a fresh queue; the old ones all learn why.
    std::deque<Callback> waiting;
    waiting.swap(callbacks_);
    alive_ = std::make_shared<char>();  // completions of the old socket find nothing
    for (Callback& cb : waiting) cb(nullptr, why);
}

}  // namespace walcast
