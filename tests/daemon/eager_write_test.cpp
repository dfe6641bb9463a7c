// EagerWriteConnection: every write websocketpp started reports its end, also one that
// completed inside the send that started it. A client catching up from the recovery buffer
// is fed from those reports; one that was never made left it waiting for good.
// A real websocketpp server and a plain socket client on 127.0.0.1, one thread.
#include <doctest/doctest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <websocketpp/server.hpp>

#include <cerrno>
#include <cstring>
#include <string>

#include "daemon/eager_write.hpp"

namespace {

using TestConfig = walcast::listener_detail::EagerWriteConfig<websocketpp::connection_base>;

using Server = websocketpp::server<TestConfig>;
using ConnectionPtr = Server::connection_ptr;

// What the write-done reports did: the first one sends a small message at once, as a ping
// or an ack would while a catching-up client's next chunk waits in websocketpp's queue.
struct Probe {
    ConnectionPtr con;
    int reports = 0;
    static void report(void* context) {
        auto* probe = static_cast<Probe*>(context);
        if (++probe->reports != 1) return;
        probe->con->write_now = true;
        probe->con->send(std::string("c"), websocketpp::frame::opcode::text);
        probe->con->write_now = false;
    }
};

// Reads whatever the client socket holds; returns the bytes read.
std::size_t drain_client(int fd) {
    char buf[65536];
    std::size_t total = 0;
    for (;;) {
        const ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n <= 0) return total;
        total += static_cast<std::size_t>(n);
    }
}

}  // namespace

TEST_CASE("a write websocketpp started that completes at once still reports its end") {
    boost::asio::io_context io;
    Server server;
    server.init_asio(&io);
    ConnectionPtr con;
    server.set_open_handler([&](websocketpp::connection_hdl hdl) { con = server.get_con_from_hdl(hdl); });
    server.listen(boost::asio::ip::tcp::endpoint(boost::asio::ip::address_v4::loopback(), 0));
    server.start_accept();
    boost::system::error_code endpoint_error;
    const auto port = server.get_local_endpoint(endpoint_error).port();
    REQUIRE(!endpoint_error);

    // A client with a small receive buffer, so a large message cannot be written at once.
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    const int small = 4096;
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    const std::string upgrade =
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    REQUIRE(::send(fd, upgrade.data(), upgrade.size(), 0) == static_cast<ssize_t>(upgrade.size()));
    for (int i = 0; i < 2000 && !con; ++i) {
        io.poll();
        ::usleep(1000);
    }
    REQUIRE(con);
    for (int i = 0; i < 50; ++i) {  // the handshake's answer
        io.poll();
        drain_client(fd);
        ::usleep(1000);
    }
    con->get_raw_socket().set_option(boost::asio::socket_base::send_buffer_size(4096));

    Probe probe{con};
    con->write_done_context = &probe;
    con->on_write_done = &Probe::report;

    // 4 MiB: part goes out at once, the rest the async way. Then 1 KiB waits behind it.
    con->write_now = true;
    con->send(std::string(4 << 20, 'a'), websocketpp::frame::opcode::text);
    con->write_now = false;
    REQUIRE(con->writing());
    con->send(std::string(1024, 'b'), websocketpp::frame::opcode::text);
    REQUIRE(con->get_buffered_amount() > 0);

    // The client reads everything. The first write's end is reported; in that report "c"
    // is sent at once, which takes the waiting 1 KiB with it, completing inside the send.
    std::size_t received = 0;
    const std::size_t expected_payload = (4u << 20) + 1024 + 1;
    for (int i = 0; i < 20000 && (received < expected_payload || probe.reports < 2); ++i) {
        io.poll();
        received += drain_client(fd);
        if (received >= expected_payload) ::usleep(100);
    }
    CHECK(received >= expected_payload);  // payloads plus frame headers
    CHECK(con->get_buffered_amount() == 0);
    CHECK_FALSE(con->writing());
    // The write of "b" and "c" ended inside the send: it is reported too, later on the loop.
    CHECK(probe.reports == 2);

    con->on_write_done = nullptr;
    ::close(fd);
    websocketpp::lib::error_code ec;
    server.stop_listening(ec);
    io.poll();
}
