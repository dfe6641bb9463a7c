// The transport connection under walcast's websocketpp listener: it writes at once when it
// can instead of through an Asio operation per write. Included by listener.cpp, the one
// translation unit of the daemon that includes websocketpp, and by its test.
#pragma once

#include <sys/socket.h>
#include <sys/uio.h>

#include <boost/asio/post.hpp>
#include <websocketpp/concurrency/none.hpp>
#include <websocketpp/config/asio_no_tls.hpp>
#include <websocketpp/transport/asio/endpoint.hpp>

#include <algorithm>
#include <iterator>
#include <vector>

namespace walcast::listener_detail {

// websocketpp's Asio transport turns every write into an Asio async operation, even when
// the socket takes it at once, which is nearly always: the reactor op, its posted
// completion and the handler chain cost more than the sendmsg itself at 1M frames/s.
// This transport connection writes at once when the server asks (`write_now`, set around
// its own send() calls; websocketpp starts a write only when none is in flight) and
// completes inline; whatever the socket does not take, or any error, goes the async way as
// before, so websocketpp still sees one write at a time, in order. It also knows when
// websocketpp has a write in flight, so event frames can skip websocketpp altogether.
template <typename config>
class EagerWriteConnection : public websocketpp::transport::asio::connection<config> {
    using base = websocketpp::transport::asio::connection<config>;
    using buffer = websocketpp::transport::buffer;
    using write_handler = websocketpp::transport::write_handler;

public:
    typedef EagerWriteConnection<config> type;
    typedef websocketpp::lib::shared_ptr<type> ptr;
    using base::base;

    bool write_now = false;
    // After each write websocketpp started completes: on_write_done(write_done_context); for
    // one that completed inside the send that started it, on the loop right after.
    // A plain pointer pair: a std::function holding a capture took a heap block per connection.
    void (*on_write_done)(void* context) = nullptr;
    void* write_done_context = nullptr;

    // websocketpp's send() posts the write it starts; while write_now it runs at once.
    websocketpp::lib::error_code dispatch(websocketpp::transport::dispatch_handler handler) {
        if (!write_now) return base::dispatch(std::move(handler));
        handler();
        return websocketpp::lib::error_code();
    }

    // HTTP responses and the handshake.
    void async_write(const char* buf, std::size_t len, write_handler handler) {
        writing_ = true;
        base::async_write(buf, len, tracked(std::move(handler)));
    }

    void async_write(const std::vector<buffer>& bufs, write_handler handler) {
        writing_ = true;
        if (!write_now || bufs.empty()) return base::async_write(bufs, tracked(std::move(handler)));
        const ssize_t sent = sendmsg_at_once(bufs.data(), bufs.size());
        std::size_t total = 0;
        for (const auto& b : bufs) total += b.len;
        if (sent == static_cast<ssize_t>(total)) {
            writing_ = false;
            handler(websocketpp::lib::error_code());
            // A write websocketpp started is done here too, and may have taken frames another
            // sender queued (a ping while a catching-up client's chunk waited): that sender
            // must hear of the room. Posted, so no handler re-enters the send in progress.
            if (on_write_done) {
                boost::asio::post(this->get_raw_socket().get_executor(),
                                  [self = this->get_shared()] {
                                      auto* con = static_cast<type*>(self.get());
                                      if (con->on_write_done) con->on_write_done(con->write_done_context);
                                  });
            }
            return;
        }
        // The rest (or all of it, on EAGAIN or an error Asio will report) the async way.
        std::size_t skip = sent > 0 ? static_cast<std::size_t>(sent) : 0;
        std::vector<buffer> rest;
        rest.reserve(bufs.size());
        for (const auto& b : bufs) {
            if (skip >= b.len) {
                skip -= b.len;
                continue;
            }
            rest.emplace_back(b.buf + skip, b.len - skip);
            skip = 0;
        }
        base::async_write(rest, tracked(std::move(handler)));
    }

    // Writes bytes straight to the socket, bypassing websocketpp's queue, when it has no
    // write in flight; the caller checks that nothing is queued either
    // (get_buffered_amount() == 0), so websocketpp's frames and these cannot interleave.
    // Returns the bytes written (what is left must go through websocketpp next), or -1 when
    // websocketpp is writing. A failed socket returns 0: websocketpp's write reports it.
    ssize_t write_directly(const std::string& bytes) {
        if (writing_) return -1;
        const buffer part(bytes.data(), bytes.size());
        return std::max<ssize_t>(0, sendmsg_at_once(&part, 1));
    }

    bool writing() const { return writing_; }

private:
    ssize_t sendmsg_at_once(const buffer* bufs, std::size_t count) {
        iovec iov[64];
        count = std::min(count, std::size(iov));
        for (std::size_t i = 0; i < count; ++i) {
            iov[i].iov_base = const_cast<char*>(bufs[i].buf);
            iov[i].iov_len = bufs[i].len;
        }
        msghdr msg{};
        msg.msg_iov = iov;
        msg.msg_iovlen = count;
        return ::sendmsg(this->get_socket().native_handle(), &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    }

    // websocketpp's write handler, noting first that its write is done. The base binds a
    // shared_ptr to this connection into the operation, so `this` outlives it.
    write_handler tracked(write_handler handler) {
        return [this, handler = std::move(handler)](const websocketpp::lib::error_code& ec) {
            writing_ = false;
            handler(ec);
            if (on_write_done) on_write_done(write_done_context);
        };
    }

    bool writing_ = false;  // websocketpp has a write on the socket
};

template <typename config>
struct EagerWriteEndpoint : websocketpp::transport::asio::endpoint<config> {
    typedef EagerWriteConnection<config> transport_con_type;
    typedef typename transport_con_type::ptr transport_con_ptr;
};

// A websocketpp config over EagerWriteEndpoint for one thread running the loop: no locks, no
// strands (websocketpp's defaults assume several), and websocketpp's own logging compiled
// out (walcast logs what matters itself). Every connection carries a `ConnectionBase`.
template <typename ConnectionBase>
struct EagerWriteConfig : websocketpp::config::asio {
    typedef EagerWriteConfig type;
    typedef websocketpp::config::asio base;
    typedef ConnectionBase connection_base;

    typedef websocketpp::concurrency::none concurrency_type;
    typedef websocketpp::log::basic<concurrency_type, websocketpp::log::elevel> elog_type;
    typedef websocketpp::log::basic<concurrency_type, websocketpp::log::alevel> alog_type;
    static const bool enable_multithreading = false;
    struct transport_config : public base::transport_config {
        typedef typename type::concurrency_type concurrency_type;
        typedef typename type::alog_type alog_type;
        typedef typename type::elog_type elog_type;
        static const bool enable_multithreading = false;
    };
    typedef EagerWriteEndpoint<transport_config> transport_type;

    static const websocketpp::log::level elog_level = websocketpp::log::elevel::none;
    static const websocketpp::log::level alog_level = websocketpp::log::alevel::none;
};

}  // namespace walcast::listener_detail
