// PgSocket: waits for a libpq connection's socket to become readable or writable on the
// Asio loop, without owning the descriptor (libpq does). Loop thread only.
#pragma once

#include <libpq-fe.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <functional>

namespace walcast {

class PgSocket {
public:
    explicit PgSocket(boost::asio::io_context& io) : descriptor_(io) {}
    ~PgSocket() { detach(); }

    // Follows PQsocket(conn), which may change while a connection is being established.
    void attach(PGconn* conn) {
        const int fd = PQsocket(conn);
        if (descriptor_.is_open() && descriptor_.native_handle() == fd) return;
        detach();
        if (fd >= 0) descriptor_.assign(fd);
    }

    // Cancels pending waits and lets go of the descriptor; call before PQfinish.
    void detach() {
        if (!descriptor_.is_open()) return;
        boost::system::error_code ignored;
        descriptor_.cancel(ignored);
        descriptor_.release();
    }

    bool attached() { return descriptor_.is_open(); }

    // `handler(ok)`: false when the wait was cancelled or failed.
    void wait_readable(std::function<void(bool)> handler) { wait(boost::asio::posix::stream_descriptor::wait_read, std::move(handler)); }
    void wait_writable(std::function<void(bool)> handler) { wait(boost::asio::posix::stream_descriptor::wait_write, std::move(handler)); }

private:
    boost::asio::posix::stream_descriptor descriptor_;

    void wait(boost::asio::posix::stream_descriptor::wait_type type, std::function<void(bool)> handler) {
        if (!descriptor_.is_open()) {
            boost::asio::post(descriptor_.get_executor(), [h = std::move(handler)] { h(false); });
            return;
        }
        descriptor_.async_wait(type, [h = std::move(handler)](const boost::system::error_code& ec) { h(!ec); });
    }
};

}  // namespace walcast
