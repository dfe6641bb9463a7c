// fanout_floor: the least a broadcaster must do, for bench/fanout-floor (README.md beside this
// file). One thread, epoll, non-blocking sockets on 127.0.0.1:PORT. It accepts load_client's
// WebSocket upgrade and plays just enough Engine.IO/Socket.IO for it to join: the open packet,
// `40{"sid":...}` for its CONNECT, `431[{"ok":true}]` for its join. Then every --tick-ms it
// builds the frames of the events due at --rate (one `42["task:created",{...}]` frame per
// event, shaped like walcast's, committedAt = the event's scheduled time) and writes that
// tick's frames to every joined socket with one send each; what a socket does not take waits
// for EPOLLOUT (over 16 MiB waiting: closed). stdin: `go` starts --seconds of events; `sent=N`
// goes to stdout when they are all written once; EOF ends the program.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <string_view>
#include <vector>

namespace {

struct Client {
    int fd = -1;
    bool upgraded = false, joined = false, want_out = false;
    std::string in, out;  // bytes received not yet parsed; bytes the socket has not taken yet
};
std::vector<Client> clients(1);  // by fd; index 0 unused
int epfd = -1;
std::uint64_t closed = 0;

double mono_s() { timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }

void frame(std::string& o, std::string_view text) {  // an unmasked text frame
    o.push_back('\x81');
    if (text.size() < 126) {
        o.push_back(static_cast<char>(text.size()));
    } else {
        o.push_back(126);  // every frame here is below 64 KiB
        o.push_back(static_cast<char>(text.size() >> 8));
        o.push_back(static_cast<char>(text.size() & 0xff));
    }
    o.append(text);
}

void close_client(Client& c) {
    epoll_ctl(epfd, EPOLL_CTL_DEL, c.fd, nullptr);
    ::close(c.fd);
    c = Client{};
    ++closed;
}

// One send: straight from the shared buffer when nothing waits (nearly always), else after
// what waits. The rest waits for EPOLLOUT.
void write_out(Client& c, std::string_view more) {
    ssize_t n = 0;
    if (c.out.empty()) {
        if (!more.empty()) n = ::send(c.fd, more.data(), more.size(), MSG_NOSIGNAL);
        if (n > 0) more.remove_prefix(static_cast<std::size_t>(n));
        c.out.assign(more);
    } else {
        c.out.append(more);
        n = ::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
        if (n > 0) c.out.erase(0, static_cast<std::size_t>(n));
    }
    if ((n < 0 && errno != EAGAIN) || c.out.size() > (16u << 20)) return close_client(c);
    if (c.want_out == !c.out.empty()) return;
    c.want_out = !c.out.empty();
    epoll_event ev{EPOLLIN | (c.want_out ? EPOLLOUT : 0u), {}};
    ev.data.fd = c.fd;
    epoll_ctl(epfd, EPOLL_CTL_MOD, c.fd, &ev);
}

void on_packet(Client& c, std::string_view p) {  // a client's text message
    std::string o;
    if (p.substr(0, 2) == "40") frame(o, "40{\"sid\":\"floor" + std::to_string(c.fd) + "\"}");
    else if (p.substr(0, 4) == "421[") { frame(o, "431[{\"ok\":true}]"); c.joined = true; }
    if (!o.empty()) write_out(c, o);
}

void on_readable(Client& c) {
    char buf[4096];
    ssize_t n;
    while ((n = ::recv(c.fd, buf, sizeof buf, 0)) > 0) c.in.append(buf, static_cast<std::size_t>(n));
    if (n == 0 || (n < 0 && errno != EAGAIN)) return close_client(c);
    if (!c.upgraded) {
        const std::size_t end = c.in.find("\r\n\r\n"), at = c.in.find("Sec-WebSocket-Key: ");
        if (end == std::string::npos) return;
        if (at == std::string::npos || at > end) return close_client(c);
        std::string key = c.in.substr(at + 19, c.in.find("\r\n", at) - at - 19) + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
        unsigned char sha[SHA_DIGEST_LENGTH], b64[64];
        SHA1(reinterpret_cast<const unsigned char*>(key.data()), key.size(), sha);
        EVP_EncodeBlock(b64, sha, SHA_DIGEST_LENGTH);
        std::string o = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        "Sec-WebSocket-Accept: " + std::string(reinterpret_cast<char*>(b64)) + "\r\n\r\n";
        frame(o, "0{\"sid\":\"floor" + std::to_string(c.fd) +
                     "\",\"upgrades\":[],\"pingInterval\":25000,\"pingTimeout\":20000,\"maxPayload\":1000000}");
        c.in.erase(0, end + 4);
        c.upgraded = true;
        write_out(c, o);
        if (c.fd < 0) return;
    }
    while (c.in.size() >= 6) {  // client frames: masked, small, unfragmented
        auto* h = reinterpret_cast<unsigned char*>(c.in.data());
        std::size_t len = h[1] & 0x7f, hdr = 6;
        if (len == 126) { len = (std::size_t(h[2]) << 8) | h[3]; hdr = 8; }
        if (len == 127 || c.in.size() < hdr + len) return;
        for (std::size_t i = 0; i < len; ++i) c.in[hdr + i] = static_cast<char>(c.in[hdr + i] ^ h[hdr - 4 + (i & 3)]);
        if ((h[0] & 0x0f) == 0x8) return close_client(c);
        if ((h[0] & 0x0f) == 0x1) on_packet(c, std::string_view(c.in).substr(hdr, len));
        if (c.fd < 0) return;
        c.in.erase(0, hdr + len);
    }
}

// The frame of event i: committed (scheduled) at `at_us` since the epoch.
std::string event_frame(std::uint64_t i, std::int64_t at_us) {
    char lsn[32], when[40];
    std::snprintf(lsn, sizeof lsn, "0/%" PRIX64, 0x1000000 + i * 0x200);
    const time_t s = at_us / 1000000;
    tm t{};
    gmtime_r(&s, &t);
    const std::size_t w = std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &t);
    std::snprintf(when + w, sizeof when - w, ".%06dZ", static_cast<int>(at_us % 1000000));
    const std::string id = "floor-" + std::to_string(i), eid = std::string(lsn) + ":0";
    std::string o;
    frame(o, "42[\"task:created\",{\"model\":\"task\",\"operation\":\"created\",\"id\":\"" + id +
                 "\",\"actorUserId\":\"u1\",\"tenantId\":\"acme\",\"projectId\":\"p1\",\"eventId\":\"" + eid +
                 "\",\"lsn\":\"" + lsn + "\",\"xid\":" + std::to_string(1000 + i) + ",\"committedAt\":\"" + when +
                 "\",\"data\":{\"id\":\"" + id + "\",\"projectId\":\"p1\",\"title\":\"bench task " + std::to_string(i) +
                 "\",\"status\":\"todo\",\"assigneeId\":null,\"position\":" + std::to_string(i) +
                 ",\"estimate\":1.50,\"createdAt\":\"" + when + "\"}},\"" + eid + "\"]");
    return o;
}

}  // namespace

int main(int argc, char** argv) {
    int port = 0;
    double rate = 1000, seconds = 20, tick_ms = 10;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string a = argv[i];
        if (a == "--port") port = std::atoi(argv[i + 1]);
        else if (a == "--rate") rate = std::atof(argv[i + 1]);
        else if (a == "--seconds") seconds = std::atof(argv[i + 1]);
        else if (a == "--tick-ms") tick_ms = std::atof(argv[i + 1]);
    }
    if (port <= 0 || rate <= 0 || seconds <= 0 || tick_ms <= 0) {
        std::fprintf(stderr, "usage: fanout_floor --port P [--rate 1000] [--seconds 20] [--tick-ms 10]\n");
        return 2;
    }
    const int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0 || listen(lfd, 4096) < 0) {
        std::perror("fanout_floor: bind/listen");
        return 1;
    }
    epfd = epoll_create1(0);
    epoll_event ev{EPOLLIN, {}};
    ev.data.fd = lfd;
    epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev);
    ev.data.fd = 0;
    epoll_ctl(epfd, EPOLL_CTL_ADD, 0, &ev);
    const std::uint64_t total = static_cast<std::uint64_t>(rate * seconds);
    std::uint64_t sent = 0;
    double go = -1, next_tick = 0;
    std::int64_t go_us = 0;
    epoll_event evs[256];
    for (;;) {
        const int wait_ms = go < 0 || sent == total ? 1000 : std::max(0, static_cast<int>((next_tick - mono_s()) * 1000));
        const int n = epoll_wait(epfd, evs, 256, wait_ms);
        for (int i = 0; i < n; ++i) {
            const int fd = evs[i].data.fd;
            if (fd == lfd) {
                int c;
                while ((c = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK)) >= 0) {
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    if (static_cast<std::size_t>(c) >= clients.size()) clients.resize(c + 1024);
                    clients[c].fd = c;
                    epoll_event e{EPOLLIN, {}};
                    e.data.fd = c;
                    epoll_ctl(epfd, EPOLL_CTL_ADD, c, &e);
                }
            } else if (fd == 0) {
                char buf[256];
                const ssize_t r = ::read(0, buf, sizeof buf);
                if (r <= 0) return 0;
                if (go < 0 && std::string(buf, r).find("go") != std::string::npos) {
                    go = next_tick = mono_s();
                    timespec t;
                    clock_gettime(CLOCK_REALTIME, &t);
                    go_us = t.tv_sec * 1000000LL + t.tv_nsec / 1000;
                }
            } else if (clients[fd].fd >= 0) {
                if (evs[i].events & EPOLLOUT) write_out(clients[fd], {});
                if (clients[fd].fd >= 0 && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) on_readable(clients[fd]);
            }
        }
        if (go < 0 || sent == total || mono_s() < next_tick) continue;
        // One tick: the frames of the events due by now, concatenated, one send per socket.
        const std::uint64_t due = std::min<std::uint64_t>(total, static_cast<std::uint64_t>((mono_s() - go) * rate) + 1);
        std::string batch;
        for (; sent < due; ++sent) batch += event_frame(sent, go_us + static_cast<std::int64_t>(sent * 1e6 / rate));
        for (Client& c : clients)
            if (c.fd >= 0 && c.joined) write_out(c, batch);
        next_tick += tick_ms / 1000;
        if (sent == total) {
            std::printf("sent=%" PRIu64 " closed=%" PRIu64 "\n", sent, closed);
            std::fflush(stdout);
        }
    }
}
