// load_client: N Socket.IO v5 / Engine.IO v4 clients in one process, one thread, epoll and
// non-blocking sockets, for bench/e2e, bench/drain, bench/idle and bench/fanout-floor
// (README.md beside this file).
//
// --transport websocket (the default): TCP connect to 127.0.0.1:PORT, WebSocket upgrade on
// /socket.io/?EIO=4&transport=websocket, then the packets below as text frames.
// --ports P1,P2,... (instead of --port) spreads the clients round-robin over several servers
// (client i goes to port i mod the number of ports: the walcast nodes of one cluster); the
// report then adds per-port lines (node<k>_...) beside the totals.
// --transport polling: Engine.IO long-polling, never upgrading. The handshake is
// `GET /socket.io/?EIO=4&transport=polling`, answered `0{"sid":...}`; after it the client keeps
// one GET `...&sid=SID` waiting at all times (a response may carry several packets separated by
// \x1e) and sends its packets by POST, one POST in flight at a time (packets queued meanwhile
// leave together in the next). walcast answers every HTTP request with `Connection: close`, so
// each GET and each POST is a new TCP connection on the same epoll loop.
//
// Either way: waits for the Engine.IO open packet `0{...}`, sends Socket.IO CONNECT
// `40{"token":"<HS256 JWT>"}`, waits for `40{...}`, emits `421["join-project","<project>"]`
// and waits for the ack `431[{"ok":true}]`. Then it counts `42["task:created",{...}]` events,
// reading only `eventId` (loss, duplicates, order per client) and `committedAt` (latency =
// receive time - committedAt, CLOCK_REALTIME on both sides; the receive time is taken once
// per recv). Engine.IO pings (`2`) are answered `3`; WebSocket pings get a pong.
//
// Control on stdin, one command a line (bench/e2e writes them through a FIFO):
//   start       the measured window begins: deliveries are counted and latencies sampled
//   stop        the measured window ends (latencies of later arrivals are still sampled:
//               a lagging server shows up there)
//   expect K    every client should end with K task:created events; wait until all have
//               them or --drain-ms pass without progress, then print the report and exit
//   report      print the report now and exit (also on EOF)
// stdout: `ready connected=N` once every client has joined (or `failed ...` and exit 1 when
// some cannot by --setup-ms), then the report as key=value lines. With --tx-times FILE the
// report also writes, per transaction received after `start`, "LSN FIRST_US LAST_US N
// FIRST_ARRIVED_US LAST_ARRIVED_US": its eventId's LSN (decimal), when its events were first
// and last read by a client (CLOCK_REALTIME, µs), how many deliveries there were, and when
// the first and the last of them had arrived in a client socket's receive queue: the
// kernel's receive timestamp (SO_TIMESTAMPNS, WebSocket only; on loopback the sender's write
// delivers at once, so this is when the server wrote it). The report then has arrive_p50_ms
// ... arrive_max_ms too (bench/latency-breakdown).
//
// Only what is counted is parsed: the frame header and two JSON string values found by
// searching for their keys. Client frames are masked (RFC 6455 5.3).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace {

// ---- time -----------------------------------------------------------------------------

std::int64_t realtime_us() {
    timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

std::int64_t monotonic_ms() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

bool digits(const char* p, int n, int& out) {
    int v = 0;
    for (int i = 0; i < n; ++i) {
        if (p[i] < '0' || p[i] > '9') return false;
        v = v * 10 + (p[i] - '0');
    }
    out = v;
    return true;
}

// "2026-11-26T03:11:59.981011Z" (fraction optional, 1-9 digits) -> µs since the epoch.
bool parse_iso_utc_us(const char* p, const char* end, std::int64_t& out) {
    if (end - p < 20) return false;
    int y, mo, d, h, mi, s;
    if (!digits(p, 4, y) || p[4] != '-' || !digits(p + 5, 2, mo) || p[7] != '-' || !digits(p + 8, 2, d) ||
        p[10] != 'T' || !digits(p + 11, 2, h) || p[13] != ':' || !digits(p + 14, 2, mi) || p[16] != ':' ||
        !digits(p + 17, 2, s))
        return false;
    const char* q = p + 19;
    std::int64_t frac_us = 0;
    if (q < end && *q == '.') {
        ++q;
        int n = 0;
        while (q < end && *q >= '0' && *q <= '9') {
            if (n < 6) frac_us = frac_us * 10 + (*q - '0');
            ++n;
            ++q;
        }
        if (n == 0) return false;
        for (; n < 6; ++n) frac_us *= 10;
    }
    if (q >= end || *q != 'Z') return false;
    const std::int64_t days = days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d));
    out = ((days * 86400 + h * 3600 + mi * 60 + s) * 1000000) + frac_us;
    return true;
}

// ---- encoding helpers -----------------------------------------------------------------

std::string base64(const unsigned char* data, std::size_t n, bool url) {
    static const char* std_chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    static const char* url_chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const char* t = url ? url_chars : std_chars;
    std::string out;
    std::size_t i = 0;
    for (; i + 2 < n; i += 3) {
        unsigned v = (data[i] << 16) | (data[i + 1] << 8) | data[i + 2];
        out += t[v >> 18];
        out += t[(v >> 12) & 63];
        out += t[(v >> 6) & 63];
        out += t[v & 63];
    }
    if (i + 1 == n) {
        unsigned v = data[i] << 16;
        out += t[v >> 18];
        out += t[(v >> 12) & 63];
        if (!url) out += "==";
    } else if (i + 2 == n) {
        unsigned v = (data[i] << 16) | (data[i + 1] << 8);
        out += t[v >> 18];
        out += t[(v >> 12) & 63];
        out += t[(v >> 6) & 63];
        if (!url) out += '=';
    }
    return out;
}

std::string b64url(std::string_view s) {
    return base64(reinterpret_cast<const unsigned char*>(s.data()), s.size(), true);
}

std::string json_escape(std::string_view s) {
    std::string out;
    for (char c : s) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (static_cast<unsigned char>(c) < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            out += buf;
        } else {
            out += c;
        }
    }
    return out;
}

// HS256 JWT: header {"alg":"HS256","typ":"JWT"}, claims sub, tenant claim, exp, projects.
std::string mint_jwt(const std::string& secret, const std::string& sub, const std::string& tenant_claim,
                     const std::string& tenant, const std::string& project, std::int64_t exp) {
    const std::string header = b64url(R"({"alg":"HS256","typ":"JWT"})");
    const std::string claims = b64url("{\"sub\":\"" + json_escape(sub) + "\",\"" + json_escape(tenant_claim) +
                                      "\":\"" + json_escape(tenant) + "\",\"exp\":" + std::to_string(exp) +
                                      ",\"projects\":[\"" + json_escape(project) + "\"]}");
    const std::string input = header + "." + claims;
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
         reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &mac_len);
    return input + "." + base64(mac, mac_len, true);
}

std::uint64_t rng_state = 0x9E3779B97F4A7C15ull;
std::uint64_t next_random() {  // xorshift64*: masks and keys need no cryptographic strength
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

// ---- latency histogram: 10 µs buckets up to 10 s, then 1 ms buckets up to 10 min; exact max --

struct Histogram {
    static constexpr std::int64_t kFineUs = 10;
    static constexpr std::size_t kFine = 1000000;     // 10 s of 10 µs buckets
    static constexpr std::int64_t kCoarseUs = 1000;
    static constexpr std::size_t kCoarse = 600000;    // 600 s of 1 ms buckets
    std::vector<std::uint32_t> fine = std::vector<std::uint32_t>(kFine, 0);
    std::vector<std::uint32_t> coarse = std::vector<std::uint32_t>(kCoarse, 0);
    std::uint64_t n = 0, over = 0, negative = 0;
    std::int64_t max_us = 0;
    long double sum_us = 0;

    void add(std::int64_t us) {
        if (us < 0) {
            ++negative;
            us = 0;
        }
        ++n;
        sum_us += us;
        if (us > max_us) max_us = us;
        const std::size_t b = static_cast<std::size_t>(us / kFineUs);
        if (b < kFine) {
            ++fine[b];
            return;
        }
        const std::size_t c = static_cast<std::size_t>(us / kCoarseUs);
        if (c < kCoarse) ++coarse[c];
        else ++over;
    }
    // Upper edge of the bucket holding the q-quantile, in ms (never above the max).
    double quantile_ms(double q) const {
        if (n == 0) return 0;
        std::uint64_t rank = static_cast<std::uint64_t>(q * static_cast<double>(n));
        if (rank >= n) rank = n - 1;
        std::uint64_t seen = 0;
        for (std::size_t b = 0; b < kFine; ++b) {
            seen += fine[b];
            if (seen > rank) return std::min<double>((b + 1) * kFineUs, max_us) / 1000.0;
        }
        for (std::size_t c = 0; c < kCoarse; ++c) {
            seen += coarse[c];
            if (seen > rank) return std::min<double>((c + 1) * kCoarseUs, max_us) / 1000.0;
        }
        return max_us / 1000.0;
    }
};

// ---- connections ------------------------------------------------------------------------

enum class State { Connecting, Upgrading, WaitOpen, WaitConnect, WaitAck, Joined, Closed };

// One HTTP request of a polling client, on its own TCP connection.
struct HttpLeg {
    int fd = -1;
    std::uint32_t gen = 0;                   // tells this connection's epoll events from an earlier one's
    std::string out;                         // request bytes not yet written
    std::string in;                          // response bytes so far
    std::size_t body_at = 0;                 // where the body starts, once the head is in (0: not yet)
    std::size_t length = std::string::npos;  // Content-Length, when the head gave one
    int status = 0;
};
enum Leg : int { kGet = 0, kPost = 1 };  // a WebSocket client uses leg 0 for its one socket

struct Conn {
    int fd = -1;
    int index = 0;
    State state = State::Connecting;
    std::string token;
    // polling
    HttpLeg legs[2];
    std::string sid;
    std::string post_queue;  // packets for the next POST, joined by \x1e
    std::vector<char> in;  // received bytes not yet parsed: [in_start, in_end)
    std::size_t in_start = 0, in_end = 0;
    std::string out;       // bytes not yet written
    std::string message;   // a fragmented message being reassembled
    bool fragmented = false;
    int frag_opcode = 0;
    // counters
    std::uint64_t events = 0;       // task:created events, unique and in order
    std::uint64_t duplicates = 0;   // eventId equal to or below one already seen
    std::uint64_t stale = 0;        // committed before this client started (an earlier run's)
    std::uint64_t last_lsn = 0;
    std::uint64_t last_idx = 0;
    bool seen_any = false;
    int close_code = 0;
    std::string close_reason;
    int node = 0;  // index into opt.ports: the server this client talks to
};

struct Options {
    std::string host = "127.0.0.1";
    std::vector<int> ports;  // --port P or --ports P1,P2,...: client i uses ports[i % size]
    int clients = 100;
    bool polling = false;
    std::size_t recv_buffer = 16 * 1024;  // a WebSocket client's first receive buffer
    std::string tx_times;                 // --tx-times FILE: per transaction, first and last receive
    std::string secret;
    std::string project = "p1";
    std::string tenant = "acme";
    std::string tenant_claim = "tenantId";
    std::string user_prefix = "bench-u";
    int setup_ms = 60000;       // time for all clients to connect and join
    int drain_ms = 5000;        // after `expect`: give up after this long without progress
    int max_ms = 600000;        // hard limit on the whole run
    int concurrent_setup = 200; // handshakes in flight at once
};

struct Stats {
    std::uint64_t events = 0, window_events = 0, other_events = 0, other_packets = 0;
    std::uint64_t pings = 0, ws_pings = 0, parse_errors = 0, stale = 0;
    std::uint64_t bytes = 0;
    std::uint64_t gets = 0, posts = 0, empty_gets = 0;  // polling: HTTP requests answered
    std::uint64_t window_reads = 0;  // recv calls that returned data, in the window: about the server's writes
    std::int64_t window_start_us = 0, window_end_us = 0;
    bool in_window = false, sampling = false;
    Histogram latency;
};

Options opt;
Stats stats;
// Per server (--ports), when there are several: what its clients received.
struct NodeStats {
    std::uint64_t events = 0, window_events = 0;
    Histogram latency;
};
std::vector<NodeStats> node_stats;
// --tx-times: per transaction (the eventId's LSN), when its events first and last reached a
// client, and how many did, for events received after `start`.
struct TxTimes {
    std::int64_t first_us = 0, last_us = 0;
    std::int64_t first_arrived_us = 0, last_arrived_us = 0;
    std::uint64_t deliveries = 0;
};
std::unordered_map<std::uint64_t, TxTimes> tx_times;
// With --tx-times: the kernel's receive timestamp of the bytes being parsed (CLOCK_REALTIME
// µs; for TCP, that of the last segment the read took), 0 when there is none (polling).
std::int64_t arrived_us = 0;
Histogram arrival;  // per delivery: arrived_us - committedAt
std::vector<Conn> conns;
int epfd = -1;
std::int64_t start_us = 0;  // when this program started (CLOCK_REALTIME)
int joined = 0, closed = 0, connecting_now = 0, next_to_start = 0;
std::string key_accept_expected;  // we send one fixed key; its expected accept value
std::int64_t expect = -1;         // task:created events each client should get (`expect K`)

void fail(const char* what) {
    std::fprintf(stderr, "load_client: %s: %s\n", what, std::strerror(errno));
    std::exit(2);
}

// epoll's word for a socket: client index, leg, and the leg's generation (a polling leg's
// socket changes with every request; an event queued for the previous one must not reach it).
std::uint64_t epoll_id(int index, int leg, std::uint32_t gen) {
    return (static_cast<std::uint64_t>(index) << 32) | (static_cast<std::uint64_t>(leg) << 31) | (gen & 0x7fffffffu);
}
constexpr std::uint64_t kStdin = ~0ull;
// A finished polling request's socket, waiting for the server to close it: the tag bit and the fd.
constexpr std::uint64_t kLingering = 1ull << 62;

void update_epoll(Conn& c) {
    epoll_event ev{};
    ev.events = EPOLLIN | (c.out.empty() ? 0u : static_cast<unsigned>(EPOLLOUT));
    ev.data.u64 = epoll_id(c.index, 0, 0);
    epoll_ctl(epfd, EPOLL_CTL_MOD, c.fd, &ev);
}

void close_leg(HttpLeg& l) {
    if (l.fd >= 0) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, l.fd, nullptr);
        ::close(l.fd);
    }
    const std::uint32_t gen = l.gen;
    l = HttpLeg{};
    l.gen = gen;
}

// A polling request's answer is complete: its socket stays open until walcast closes it
// (Connection: close), so the server side closes first and holds the TIME_WAIT. Closed here
// first, every request would leave a TIME_WAIT on a local port, and at ~20,000 requests/s
// the ports (reusable on loopback only a second or more later) would run out.
void linger(HttpLeg& l) {
    if (l.fd >= 0) {
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLRDHUP;
        ev.data.u64 = kLingering | static_cast<std::uint32_t>(l.fd);
        epoll_ctl(epfd, EPOLL_CTL_MOD, l.fd, &ev);
        l.fd = -1;
    }
    close_leg(l);
}

void on_lingering(int fd) {
    char buf[4096];
    for (;;) {
        const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n > 0) continue;  // nothing is expected after the answer; ignored
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        epoll_ctl(epfd, EPOLL_CTL_DEL, fd, nullptr);
        ::close(fd);
        return;
    }
}

void close_conn(Conn& c, const char* why) {
    if (c.state == State::Closed) return;
    if (c.state == State::Joined) --joined;
    else --connecting_now;  // started, not yet joined
    if (c.close_reason.empty()) c.close_reason = why;
    c.state = State::Closed;
    if (c.fd >= 0) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, c.fd, nullptr);
        ::close(c.fd);
        c.fd = -1;
    }
    close_leg(c.legs[kGet]);
    close_leg(c.legs[kPost]);
    ++closed;
}

void flush_out(Conn& c) {
    while (!c.out.empty()) {
        ssize_t n = ::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
        if (n > 0) {
            c.out.erase(0, static_cast<std::size_t>(n));
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        } else {
            close_conn(c, "send failed");
            return;
        }
    }
    update_epoll(c);
}

// Queues one masked client frame (FIN set).
void send_frame(Conn& c, int opcode, std::string_view payload) {
    std::string& o = c.out;
    const bool was_empty = o.empty();
    o.push_back(static_cast<char>(0x80 | opcode));
    const std::size_t n = payload.size();
    if (n < 126) {
        o.push_back(static_cast<char>(0x80 | n));
    } else if (n < 65536) {
        o.push_back(static_cast<char>(0x80 | 126));
        o.push_back(static_cast<char>(n >> 8));
        o.push_back(static_cast<char>(n & 0xff));
    } else {
        o.push_back(static_cast<char>(0x80 | 127));
        for (int i = 7; i >= 0; --i) o.push_back(static_cast<char>((static_cast<std::uint64_t>(n) >> (8 * i)) & 0xff));
    }
    std::uint32_t mask = static_cast<std::uint32_t>(next_random());
    unsigned char m[4] = {static_cast<unsigned char>(mask), static_cast<unsigned char>(mask >> 8),
                          static_cast<unsigned char>(mask >> 16), static_cast<unsigned char>(mask >> 24)};
    o.append(reinterpret_cast<char*>(m), 4);
    for (std::size_t i = 0; i < n; ++i) o.push_back(static_cast<char>(payload[i] ^ m[i & 3]));
    if (was_empty) flush_out(c);
}

void post_queued(Conn& c);

// One Engine.IO packet to the server: a text frame, or a place in the next POST.
void send_packet(Conn& c, std::string_view packet) {
    if (!opt.polling) return send_frame(c, 0x1, packet);
    if (!c.post_queue.empty()) c.post_queue.push_back('\x1e');
    c.post_queue.append(packet.data(), packet.size());
    post_queued(c);
}

// Finds `"key":"` in [p, end) and returns the string value's bounds (no unescaping needed for
// the values looked up here).
bool find_string_value(const char* p, const char* end, std::string_view key, const char*& vb, const char*& ve) {
    std::string_view hay(p, static_cast<std::size_t>(end - p));
    std::size_t at = hay.find(key);
    if (at == std::string_view::npos) return false;
    const char* q = p + at + key.size();
    const char* close = static_cast<const char*>(std::memchr(q, '"', static_cast<std::size_t>(end - q)));
    if (!close) return false;
    vb = q;
    ve = close;
    return true;
}

// "X/Y:idx" -> (lsn, idx)
bool parse_event_id(const char* p, const char* end, std::uint64_t& lsn, std::uint64_t& idx) {
    std::uint64_t hi = 0, lo = 0, ix = 0;
    const char* q = p;
    int n = 0;
    auto hex = [](char ch) -> int {
        if (ch >= '0' && ch <= '9') return ch - '0';
        if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
        if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
        return -1;
    };
    for (; q < end && hex(*q) >= 0; ++q, ++n) hi = hi * 16 + static_cast<unsigned>(hex(*q));
    if (n == 0 || q >= end || *q != '/') return false;
    ++q;
    n = 0;
    for (; q < end && hex(*q) >= 0; ++q, ++n) lo = lo * 16 + static_cast<unsigned>(hex(*q));
    if (n == 0 || q >= end || *q != ':') return false;
    ++q;
    n = 0;
    for (; q < end && *q >= '0' && *q <= '9'; ++q, ++n) ix = ix * 10 + static_cast<unsigned>(*q - '0');
    if (n == 0 || q != end) return false;
    lsn = (hi << 32) | lo;
    idx = ix;
    return true;
}

const char kEventPrefix[] = "42[\"task:created\",";

void on_event(Conn& c, const char* p, const char* end, std::int64_t now_us) {
    const char* vb;
    const char* ve;
    std::uint64_t lsn = 0, idx = 0;
    std::int64_t committed = 0;
    if (!find_string_value(p, end, "\"eventId\":\"", vb, ve) || !parse_event_id(vb, ve, lsn, idx) ||
        !find_string_value(p, end, "\"committedAt\":\"", vb, ve) || !parse_iso_utc_us(vb, ve, committed)) {
        ++stats.parse_errors;
        return;
    }
    if (committed < start_us) {  // left over from before this run (a resumed slot)
        ++c.stale;
        ++stats.stale;
        return;
    }
    if (c.seen_any && (lsn < c.last_lsn || (lsn == c.last_lsn && idx <= c.last_idx))) {
        ++c.duplicates;
        return;
    }
    c.seen_any = true;
    c.last_lsn = lsn;
    c.last_idx = idx;
    ++c.events;
    ++stats.events;
    if (stats.in_window) ++stats.window_events;
    NodeStats* ns = node_stats.empty() ? nullptr : &node_stats[static_cast<std::size_t>(c.node)];
    if (ns) {
        ++ns->events;
        if (stats.in_window) ++ns->window_events;
    }
    if (stats.sampling) {
        stats.latency.add(now_us - committed);
        if (ns) ns->latency.add(now_us - committed);
        if (!opt.tx_times.empty()) {
            TxTimes& t = tx_times[lsn];
            if (t.deliveries++ == 0 || now_us < t.first_us) t.first_us = now_us;
            if (now_us > t.last_us) t.last_us = now_us;
            const std::int64_t at = arrived_us ? arrived_us : now_us;
            arrival.add(at - committed);
            if (t.deliveries == 1 || at < t.first_arrived_us) t.first_arrived_us = at;
            if (at > t.last_arrived_us) t.last_arrived_us = at;
        }
    }
}

void on_text(Conn& c, const char* p, std::size_t n, std::int64_t now_us) {
    const char* end = p + n;
    if (n == 1 && p[0] == '2') {  // Engine.IO ping
        ++stats.pings;
        send_packet(c, "3");
        return;
    }
    switch (c.state) {
    case State::WaitOpen:
        if (n > 0 && p[0] == '0') {
            if (opt.polling) {
                const char* vb;
                const char* ve;
                if (!find_string_value(p, end, "\"sid\":\"", vb, ve)) {
                    close_conn(c, "open packet without a sid");
                    return;
                }
                c.sid.assign(vb, ve);
            }
            c.state = State::WaitConnect;
            send_packet(c, "40{\"token\":\"" + c.token + "\"}");
        } else {
            ++stats.other_packets;
        }
        return;
    case State::WaitConnect:
        if (n >= 2 && p[0] == '4' && p[1] == '0') {
            c.state = State::WaitAck;
            send_packet(c, "421[\"join-project\",\"" + json_escape(opt.project) + "\"]");
        } else if (n >= 2 && p[0] == '4' && p[1] == '4') {
            c.close_reason = "connect refused: " + std::string(p, std::min<std::size_t>(n, 200));
            close_conn(c, "connect refused");
        } else {
            ++stats.other_packets;
        }
        return;
    case State::WaitAck:
        if (n >= 3 && std::memcmp(p, "431", 3) == 0) {
            if (std::string_view(p, n).find("\"ok\":true") != std::string_view::npos) {
                c.state = State::Joined;
                ++joined;
                --connecting_now;
            } else {
                c.close_reason = "join refused: " + std::string(p, std::min<std::size_t>(n, 200));
                close_conn(c, "join refused");
            }
            return;
        }
        break;  // an event may arrive before the ack (room join races): count it below
    default:
        break;
    }
    if (n >= sizeof kEventPrefix - 1 && std::memcmp(p, kEventPrefix, sizeof kEventPrefix - 1) == 0) {
        on_event(c, p, end, now_us);
    } else if (n >= 2 && p[0] == '4' && p[1] == '2') {
        ++stats.other_events;
    } else if (n >= 1 && p[0] == '1') {
        close_conn(c, "engine.io close");
    } else if (n >= 2 && p[0] == '4' && p[1] == '1') {
        close_conn(c, "socket.io disconnect");
    } else {
        ++stats.other_packets;
    }
}

// Parses complete frames from c.in. Returns false when the connection was closed.
bool parse_frames(Conn& c, std::int64_t now_us) {
    char* buf = c.in.data();
    while (c.in_end - c.in_start >= 2) {
        unsigned char* h = reinterpret_cast<unsigned char*>(buf + c.in_start);
        const std::size_t avail = c.in_end - c.in_start;
        const bool fin = h[0] & 0x80;
        const int opcode = h[0] & 0x0f;
        const bool masked = h[1] & 0x80;
        std::uint64_t len = h[1] & 0x7f;
        std::size_t hdr = 2;
        if (len == 126) {
            if (avail < 4) break;
            len = (static_cast<std::uint64_t>(h[2]) << 8) | h[3];
            hdr = 4;
        } else if (len == 127) {
            if (avail < 10) break;
            len = 0;
            for (int i = 0; i < 8; ++i) len = (len << 8) | h[2 + i];
            hdr = 10;
        }
        if (masked) hdr += 4;
        if (len > (64u << 20)) {
            close_conn(c, "frame over 64 MiB");
            return false;
        }
        if (avail < hdr + len) {
            // Make room for the whole frame.
            if (hdr + len > c.in.size()) {
                std::memmove(buf, buf + c.in_start, avail);
                c.in_end = avail;
                c.in_start = 0;
                c.in.resize(hdr + len);
            }
            break;
        }
        char* payload = buf + c.in_start + hdr;
        if (masked) {
            const unsigned char* m = h + hdr - 4;
            for (std::uint64_t i = 0; i < len; ++i) payload[i] = static_cast<char>(payload[i] ^ m[i & 3]);
        }
        c.in_start += hdr + static_cast<std::size_t>(len);
        stats.bytes += hdr + len;
        switch (opcode) {
        case 0x0:  // continuation
            if (!c.fragmented) {
                close_conn(c, "continuation without a first fragment");
                return false;
            }
            c.message.append(payload, static_cast<std::size_t>(len));
            if (fin) {
                c.fragmented = false;
                if (c.frag_opcode == 0x1) on_text(c, c.message.data(), c.message.size(), now_us);
                c.message.clear();
            }
            break;
        case 0x1:
        case 0x2:
            if (!fin) {
                c.fragmented = true;
                c.frag_opcode = opcode;
                c.message.assign(payload, static_cast<std::size_t>(len));
            } else if (opcode == 0x1) {
                on_text(c, payload, static_cast<std::size_t>(len), now_us);
            } else {
                ++stats.other_packets;
            }
            break;
        case 0x8: {  // close
            c.close_code = len >= 2 ? ((static_cast<unsigned char>(payload[0]) << 8) | static_cast<unsigned char>(payload[1])) : 1005;
            if (len > 2) c.close_reason = std::string(payload + 2, static_cast<std::size_t>(len - 2));
            send_frame(c, 0x8, std::string_view(payload, std::min<std::uint64_t>(len, 2)));
            close_conn(c, "server closed");
            return false;
        }
        case 0x9:  // ping
            ++stats.ws_pings;
            send_frame(c, 0xA, std::string_view(payload, static_cast<std::size_t>(len)));
            break;
        case 0xA:  // pong
            break;
        default:
            close_conn(c, "unknown opcode");
            return false;
        }
        if (c.state == State::Closed) return false;
    }
    if (c.in_start == c.in_end) c.in_start = c.in_end = 0;
    return true;
}

bool handle_upgrade_response(Conn& c) {
    std::string_view data(c.in.data() + c.in_start, c.in_end - c.in_start);
    std::size_t end = data.find("\r\n\r\n");
    if (end == std::string_view::npos) {
        if (data.size() > 16384) close_conn(c, "oversized HTTP response");
        return false;
    }
    std::string head(data.substr(0, end));
    if (head.compare(0, 12, "HTTP/1.1 101") != 0) {
        c.close_reason = "upgrade refused: " + head.substr(0, head.find("\r\n"));
        close_conn(c, "upgrade refused");
        return false;
    }
    std::string lower = head;
    for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    std::size_t at = lower.find("\r\nsec-websocket-accept:");
    bool ok = false;
    if (at != std::string::npos) {
        std::size_t vb = head.find_first_not_of(' ', at + 23);
        std::size_t ve = head.find("\r\n", vb);
        if (vb != std::string::npos) ok = head.substr(vb, ve == std::string::npos ? std::string::npos : ve - vb) == key_accept_expected;
    }
    if (!ok) {
        close_conn(c, "bad Sec-WebSocket-Accept");
        return false;
    }
    c.in_start += end + 4;
    c.state = State::WaitOpen;
    return true;
}

// Per port of opt.ports: its address, Host header ("127.0.0.1:PORT") and WebSocket upgrade.
std::vector<sockaddr_in> server_addrs;
std::vector<std::string> host_headers;
std::vector<std::string> upgrade_requests;
std::uint64_t connect_errors = 0;

bool open_leg(Conn& c, int which, std::string request);

void start_connect(Conn& c) {
    ++connecting_now;
    if (opt.polling) {
        c.state = State::WaitOpen;
        open_leg(c, kGet, "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: " + host_headers[c.node] +
                              "\r\n\r\n");
        return;
    }
    c.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c.fd < 0) fail("socket");
    int one = 1;
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (!opt.tx_times.empty()) setsockopt(c.fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
    c.in.resize(opt.recv_buffer);  // grows when a frame or a burst needs more
    const sockaddr_in& addr = server_addrs[c.node];
    int r = ::connect(c.fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
    if (r < 0 && errno != EINPROGRESS) {
        ++connect_errors;
        c.close_reason = std::string("connect failed: ") + std::strerror(errno);
        ::close(c.fd);
        c.fd = -1;
        close_conn(c, "connect failed");
        return;
    }
    c.state = State::Upgrading;
    c.out = upgrade_requests[c.node];
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT;
    ev.data.u64 = epoll_id(c.index, 0, 0);
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, c.fd, &ev) < 0) fail("epoll_ctl");
}

// recv that also takes the kernel's receive timestamp into arrived_us (0 if none came).
ssize_t recv_stamped(int fd, char* buf, std::size_t len) {
    iovec iov{buf, len};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(timespec))];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    const ssize_t n = ::recvmsg(fd, &msg, 0);
    arrived_us = 0;
    for (cmsghdr* cm = CMSG_FIRSTHDR(&msg); n > 0 && cm; cm = CMSG_NXTHDR(&msg, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_TIMESTAMPNS) continue;
        timespec ts;
        std::memcpy(&ts, CMSG_DATA(cm), sizeof ts);
        arrived_us = static_cast<std::int64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
    }
    return n;
}

void on_readable(Conn& c) {
    for (;;) {
        if (c.in_end == c.in.size()) {
            if (c.in_start > 0) {
                std::memmove(c.in.data(), c.in.data() + c.in_start, c.in_end - c.in_start);
                c.in_end -= c.in_start;
                c.in_start = 0;
            } else {
                c.in.resize(c.in.size() * 2);
            }
        }
        const std::size_t room = c.in.size() - c.in_end;
        ssize_t n = opt.tx_times.empty() ? ::recv(c.fd, c.in.data() + c.in_end, room, 0)
                                         : recv_stamped(c.fd, c.in.data() + c.in_end, room);
        if (n == 0) {
            close_conn(c, "eof");
            return;
        }
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return;
            close_conn(c, "recv failed");
            return;
        }
        c.in_end += static_cast<std::size_t>(n);
        if (stats.in_window) ++stats.window_reads;
        const std::int64_t now = realtime_us();
        if (c.state == State::Upgrading && !handle_upgrade_response(c)) {
            if (c.state == State::Closed) return;
            continue;
        }
        if (!parse_frames(c, now)) return;
        if (static_cast<std::size_t>(n) < room) return;  // drained
    }
}

// ---- long-polling ------------------------------------------------------------------------

// Starts one HTTP request on a new connection. False (and the client closed) when the
// connection cannot even be started: no local port left shows here as EADDRNOTAVAIL.
bool open_leg(Conn& c, int which, std::string request) {
    HttpLeg& l = c.legs[which];
    close_leg(l);
    ++l.gen;
    l.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (l.fd < 0) fail("socket");
    int one = 1;
    setsockopt(l.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    const sockaddr_in& addr = server_addrs[c.node];
    if (::connect(l.fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) < 0 &&
        errno != EINPROGRESS) {
        ++connect_errors;
        c.close_reason = std::string(which == kGet ? "GET" : "POST") + " connect failed: " + std::strerror(errno);
        ::close(l.fd);
        l.fd = -1;
        close_conn(c, "connect failed");
        return false;
    }
    l.out = std::move(request);
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT;
    ev.data.u64 = epoll_id(c.index, which, l.gen);
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, l.fd, &ev) < 0) fail("epoll_ctl");
    return true;
}

void flush_leg(Conn& c, int which) {
    HttpLeg& l = c.legs[which];
    while (!l.out.empty()) {
        ssize_t n = ::send(l.fd, l.out.data(), l.out.size(), MSG_NOSIGNAL);
        if (n > 0) {
            l.out.erase(0, static_cast<std::size_t>(n));
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return;  // still EPOLLOUT
        } else {
            c.close_reason = std::string(which == kGet ? "GET" : "POST") + " send failed: " + std::strerror(errno);
            close_conn(c, "send failed");
            return;
        }
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = epoll_id(c.index, which, l.gen);
    epoll_ctl(epfd, EPOLL_CTL_MOD, l.fd, &ev);
}

std::string poll_url(const Conn& c) { return "/socket.io/?EIO=4&transport=polling&sid=" + c.sid; }

// The next GET; there is always one waiting while the client lives.
void poll_next(Conn& c) {
    open_leg(c, kGet, "GET " + poll_url(c) + " HTTP/1.1\r\nHost: " + host_headers[c.node] + "\r\n\r\n");
}

// Sends what is queued, unless a POST is in flight (its answer sends the rest).
void post_queued(Conn& c) {
    if (c.state == State::Closed || c.legs[kPost].fd >= 0 || c.post_queue.empty()) return;
    std::string body = std::exchange(c.post_queue, {});
    open_leg(c, kPost,
             "POST " + poll_url(c) + " HTTP/1.1\r\nHost: " + host_headers[c.node] +
                 "\r\nContent-Type: text/plain;charset=UTF-8\r\nContent-Length: " + std::to_string(body.size()) +
                 "\r\n\r\n" + body);
}

// Parses the head once it is in: status and Content-Length.
bool parse_head(HttpLeg& l) {
    const std::size_t end = l.in.find("\r\n\r\n");
    if (end == std::string::npos) return false;
    l.body_at = end + 4;
    l.status = l.in.compare(0, 9, "HTTP/1.1 ") == 0 || l.in.compare(0, 9, "HTTP/1.0 ") == 0
                   ? std::atoi(l.in.c_str() + 9)
                   : -1;
    std::string head = l.in.substr(0, end);
    for (char& ch : head) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    const std::size_t at = head.find("\r\ncontent-length:");
    if (at != std::string::npos) l.length = std::strtoull(head.c_str() + at + 17, nullptr, 10);
    return true;
}

// A whole answer came (or the connection closed after its head, without a Content-Length).
void on_answer(Conn& c, int which, std::int64_t now_us) {
    HttpLeg& l = c.legs[which];
    const int status = l.status;
    std::string body = l.in.substr(l.body_at, l.length == std::string::npos ? std::string::npos : l.length);
    linger(l);
    stats.bytes += body.size();
    if (status != 200) {
        for (char& ch : body)
            if (ch == '\n' || ch == '\r') ch = ' ';
        c.close_reason = std::string(which == kGet ? "GET" : "POST") + " answered " + std::to_string(status) + ": " +
                         body.substr(0, 200);
        close_conn(c, "HTTP error");
        return;
    }
    if (which == kPost) {
        ++stats.posts;
        post_queued(c);
        return;
    }
    ++stats.gets;
    if (body.empty()) ++stats.empty_gets;
    std::size_t at = 0;
    while (at <= body.size() && c.state != State::Closed) {
        std::size_t sep = body.find('\x1e', at);
        if (sep == std::string::npos) sep = body.size();
        if (sep > at) on_text(c, body.data() + at, sep - at, now_us);
        at = sep + 1;
    }
    if (c.state != State::Closed) poll_next(c);
}

void on_leg_readable(Conn& c, int which) {
    static char buf[64 * 1024];
    HttpLeg& l = c.legs[which];
    for (;;) {
        ssize_t n = ::recv(l.fd, buf, sizeof buf, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return;
            c.close_reason = std::string(which == kGet ? "GET" : "POST") + " recv failed: " + std::strerror(errno);
            close_conn(c, "recv failed");
            return;
        }
        const std::int64_t now = realtime_us();
        if (n == 0) {
            if (l.body_at > 0 && l.length == std::string::npos) return on_answer(c, which, now);
            c.close_reason = std::string(which == kGet ? "GET" : "POST") + ": connection closed before a whole answer (" +
                             std::to_string(l.in.size()) + " bytes)";
            close_conn(c, "eof");
            return;
        }
        l.in.append(buf, static_cast<std::size_t>(n));
        if (stats.in_window) ++stats.window_reads;
        if (l.body_at == 0 && !parse_head(l)) {
            if (l.in.size() > 16384) close_conn(c, "oversized HTTP head");
            if (c.state == State::Closed) return;
            continue;
        }
        if (l.length != std::string::npos && l.in.size() >= l.body_at + l.length) return on_answer(c, which, now);
    }
}

void write_tx_times() {
    if (opt.tx_times.empty()) return;
    std::FILE* f = std::fopen(opt.tx_times.c_str(), "w");
    if (!f) {
        std::fprintf(stderr, "load_client: cannot write %s: %s\n", opt.tx_times.c_str(), std::strerror(errno));
        return;
    }
    for (const auto& [lsn, t] : tx_times)
        std::fprintf(f, "%" PRIu64 " %" PRId64 " %" PRId64 " %" PRIu64 " %" PRId64 " %" PRId64 "\n", lsn, t.first_us,
                     t.last_us, t.deliveries, t.first_arrived_us, t.last_arrived_us);
    std::fclose(f);
}

void print_report() {
    write_tx_times();
    std::uint64_t dups = 0, min_ev = UINT64_MAX, max_ev = 0, lost = 0, extra = 0;
    int open_clients = 0;
    for (const Conn& c : conns) {
        dups += c.duplicates;
        if (expect >= 0) {
            const std::uint64_t k = static_cast<std::uint64_t>(expect);
            if (c.events < k) lost += k - c.events;
            else extra += c.events - k;
        }
        min_ev = std::min(min_ev, c.events);
        max_ev = std::max(max_ev, c.events);
        if (c.state == State::Joined) ++open_clients;
    }
    if (conns.empty()) min_ev = 0;
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    const double window_s = stats.window_end_us > stats.window_start_us
                                ? (stats.window_end_us - stats.window_start_us) / 1e6
                                : 0;
    std::printf("clients=%d\n", opt.clients);
    std::printf("open_at_end=%d\n", open_clients);
    std::printf("closed=%d\n", closed);
    std::printf("events=%" PRIu64 "\n", stats.events);
    std::printf("window_events=%" PRIu64 "\n", stats.window_events);
    std::printf("window_s=%.3f\n", window_s);
    std::printf("deliveries_per_s=%.0f\n", window_s > 0 ? stats.window_events / window_s : 0.0);
    std::printf("window_reads=%" PRIu64 "\n", stats.window_reads);
    std::printf("min_per_client=%" PRIu64 "\n", min_ev);
    std::printf("max_per_client=%" PRIu64 "\n", max_ev);
    if (expect >= 0) {
        std::printf("expected=%" PRIu64 "\n", static_cast<std::uint64_t>(expect) * conns.size());
        std::printf("lost=%" PRIu64 "\n", lost);
        std::printf("extra=%" PRIu64 "\n", extra);
    }
    std::printf("duplicates=%" PRIu64 "\n", dups);
    std::printf("stale=%" PRIu64 "\n", stats.stale);
    std::printf("other_events=%" PRIu64 "\n", stats.other_events);
    std::printf("parse_errors=%" PRIu64 "\n", stats.parse_errors);
    std::printf("pings=%" PRIu64 "\n", stats.pings);
    std::printf("transport=%s\n", opt.polling ? "polling" : "websocket");
    std::printf("connect_errors=%" PRIu64 "\n", connect_errors);
    if (opt.polling) {
        std::printf("http_gets=%" PRIu64 "\n", stats.gets);
        std::printf("http_gets_empty=%" PRIu64 "\n", stats.empty_gets);
        std::printf("http_posts=%" PRIu64 "\n", stats.posts);
    }
    std::printf("bytes=%" PRIu64 "\n", stats.bytes);
    std::printf("lat_n=%" PRIu64 "\n", stats.latency.n);
    std::printf("lat_negative=%" PRIu64 "\n", stats.latency.negative);
    std::printf("p50_ms=%.2f\n", stats.latency.quantile_ms(0.50));
    std::printf("p90_ms=%.2f\n", stats.latency.quantile_ms(0.90));
    std::printf("p99_ms=%.2f\n", stats.latency.quantile_ms(0.99));
    std::printf("p999_ms=%.2f\n", stats.latency.quantile_ms(0.999));
    std::printf("max_ms=%.2f\n", stats.latency.max_us / 1000.0);
    std::printf("mean_ms=%.2f\n", stats.latency.n ? static_cast<double>(stats.latency.sum_us / stats.latency.n) / 1000.0 : 0.0);
    if (!opt.tx_times.empty()) {
        std::printf("arrive_p50_ms=%.2f\n", arrival.quantile_ms(0.50));
        std::printf("arrive_p99_ms=%.2f\n", arrival.quantile_ms(0.99));
        std::printf("arrive_max_ms=%.2f\n", arrival.max_us / 1000.0);
    }
    std::printf("cpu_user_s=%.3f\n", ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6);
    std::printf("cpu_sys_s=%.3f\n", ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6);
    // Per server, with --ports: its clients, what they received, lost (against `expect`) and
    // latency, so a node that fell behind or got no clients shows on its own.
    for (std::size_t k = 0; k < node_stats.size(); ++k) {
        const NodeStats& ns = node_stats[k];
        int n_clients = 0, n_closed = 0;
        std::uint64_t n_lost = 0, n_dups = 0;
        for (const Conn& c : conns) {
            if (static_cast<std::size_t>(c.node) != k) continue;
            ++n_clients;
            if (c.state == State::Closed) ++n_closed;
            n_dups += c.duplicates;
            if (expect >= 0 && c.events < static_cast<std::uint64_t>(expect))
                n_lost += static_cast<std::uint64_t>(expect) - c.events;
        }
        std::printf("node%zu_port=%d\n", k, opt.ports[k]);
        std::printf("node%zu_clients=%d\n", k, n_clients);
        std::printf("node%zu_closed=%d\n", k, n_closed);
        std::printf("node%zu_events=%" PRIu64 "\n", k, ns.events);
        std::printf("node%zu_window_events=%" PRIu64 "\n", k, ns.window_events);
        std::printf("node%zu_deliveries_per_s=%.0f\n", k, window_s > 0 ? ns.window_events / window_s : 0.0);
        if (expect >= 0) std::printf("node%zu_lost=%" PRIu64 "\n", k, n_lost);
        std::printf("node%zu_duplicates=%" PRIu64 "\n", k, n_dups);
        std::printf("node%zu_lat_n=%" PRIu64 "\n", k, ns.latency.n);
        std::printf("node%zu_p50_ms=%.2f\n", k, ns.latency.quantile_ms(0.50));
        std::printf("node%zu_p99_ms=%.2f\n", k, ns.latency.quantile_ms(0.99));
        std::printf("node%zu_max_ms=%.2f\n", k, ns.latency.max_us / 1000.0);
    }
    // The first few closed clients and why: a slow-consumer close (4008) shows here.
    int shown = 0;
    for (const Conn& c : conns) {
        if (c.state != State::Closed || shown >= 5) continue;
        std::string why = c.close_reason;
        for (char& ch : why)
            if (ch == '\n' || ch == '\r') ch = ' ';
        if (opt.ports.size() > 1)
            std::printf("closed_client_%d=port %d, code %d: %s\n", c.index, opt.ports[c.node], c.close_code, why.c_str());
        else
            std::printf("closed_client_%d=code %d: %s\n", c.index, c.close_code, why.c_str());
        ++shown;
    }
    std::fflush(stdout);
}

void usage() {
    std::fprintf(stderr,
                 "usage: load_client --port PORT | --ports P1,P2,... --secret SECRET [--host 127.0.0.1] [--clients N]\n"
                 "                   [--transport websocket|polling] [--project p1] [--tenant acme]\n"
                 "                   [--tenant-claim tenantId] [--setup-ms 60000] [--drain-ms 5000]\n"
                 "                   [--max-ms 600000] [--concurrent-setup 200] [--recv-buffer 16384]\n"
                 "                   [--tx-times FILE]\n"
                 "commands on stdin: start | stop | expect K | report\n");
    std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto val = [&]() -> std::string {
            if (i + 1 >= argc) usage();
            return argv[++i];
        };
        if (a == "--host") opt.host = val();
        else if (a == "--port" || a == "--ports") {
            // "P" or "P1,P2,...": clients go round-robin over the ports.
            opt.ports.clear();
            const std::string list = val();
            std::size_t at = 0;
            for (;;) {
                const std::size_t comma = list.find(',', at);
                const std::string one = list.substr(at, comma == std::string::npos ? std::string::npos : comma - at);
                const int p = std::atoi(one.c_str());
                if (p <= 0 || p > 65535 || one.find_first_not_of("0123456789") != std::string::npos) usage();
                opt.ports.push_back(p);
                if (comma == std::string::npos) break;
                at = comma + 1;
            }
        }
        else if (a == "--clients") opt.clients = std::atoi(val().c_str());
        else if (a == "--secret") opt.secret = val();
        else if (a == "--project") opt.project = val();
        else if (a == "--tenant") opt.tenant = val();
        else if (a == "--tenant-claim") opt.tenant_claim = val();
        else if (a == "--setup-ms") opt.setup_ms = std::atoi(val().c_str());
        else if (a == "--drain-ms") opt.drain_ms = std::atoi(val().c_str());
        else if (a == "--max-ms") opt.max_ms = std::atoi(val().c_str());
        else if (a == "--concurrent-setup") opt.concurrent_setup = std::atoi(val().c_str());
        else if (a == "--tx-times") opt.tx_times = val();
        else if (a == "--recv-buffer") opt.recv_buffer = static_cast<std::size_t>(std::atol(val().c_str()));
        else if (a == "--transport") {
            const std::string t = val();
            if (t == "polling") opt.polling = true;
            else if (t != "websocket") usage();
        } else usage();
    }
    if (opt.ports.empty() || opt.clients <= 0 || opt.secret.empty() || opt.concurrent_setup <= 0 ||
        opt.recv_buffer < 256)
        usage();

    // A WebSocket client holds one socket, a polling client up to two (its GET and a POST).
    const rlim_t need = static_cast<rlim_t>(opt.clients) * (opt.polling ? 2 : 1) + 64;
    rlimit rl{};
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < need) {
        rl.rlim_cur = std::min<rlim_t>(rl.rlim_max, need);
        setrlimit(RLIMIT_NOFILE, &rl);
        if (rl.rlim_cur < need)
            std::fprintf(stderr, "load_client: the open-file limit (hard %llu) is below the %llu descriptors %d clients need\n",
                         static_cast<unsigned long long>(rl.rlim_max), static_cast<unsigned long long>(need), opt.clients);
    }

    start_us = realtime_us();
    rng_state ^= static_cast<std::uint64_t>(start_us) * 0x100000001B3ull ^ static_cast<std::uint64_t>(getpid());

    // One Sec-WebSocket-Key for every connection; its expected accept value.
    unsigned char key_raw[16];
    for (int i = 0; i < 16; i += 8) {
        std::uint64_t r = next_random();
        std::memcpy(key_raw + i, &r, 8);
    }
    const std::string key = base64(key_raw, 16, false);
    {
        std::string k = key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
        unsigned char sha[SHA_DIGEST_LENGTH];
        SHA1(reinterpret_cast<const unsigned char*>(k.data()), k.size(), sha);
        key_accept_expected = base64(sha, SHA_DIGEST_LENGTH, false);
    }
    for (const int port : opt.ports) {
        const std::string host = opt.host + ":" + std::to_string(port);
        host_headers.push_back(host);
        upgrade_requests.push_back("GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: " + host +
                                   "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key +
                                   "\r\nSec-WebSocket-Version: 13\r\n\r\n");
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(static_cast<std::uint16_t>(port));
        if (inet_pton(AF_INET, opt.host.c_str(), &addr.sin_addr) != 1) {
            std::fprintf(stderr, "load_client: --host must be an IPv4 address\n");
            return 2;
        }
        server_addrs.push_back(addr);
    }
    if (opt.ports.size() > 1) node_stats.resize(opt.ports.size());

    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) fail("epoll_create1");
    const std::int64_t exp = start_us / 1000000 + 3600;
    conns.resize(static_cast<std::size_t>(opt.clients));
    for (int i = 0; i < opt.clients; ++i) {
        conns[i].index = i;
        conns[i].node = static_cast<int>(static_cast<std::size_t>(i) % opt.ports.size());
        conns[i].token = mint_jwt(opt.secret, opt.user_prefix + std::to_string(i), opt.tenant_claim, opt.tenant,
                                  opt.project, exp);
    }

    // stdin: control commands.
    fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
    {
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = kStdin;
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, 0, &ev) < 0) {
            std::fprintf(stderr, "load_client: stdin must be a pipe or FIFO (commands)\n");
            return 2;
        }
    }
    std::string cmd_buf;
    bool stdin_open = true;

    const std::int64_t t0 = monotonic_ms();
    bool ready = false;
    std::int64_t last_progress_ms = 0;
    std::uint64_t last_progress_events = 0;
    std::vector<epoll_event> evs(1024);

    for (;;) {
        // Keep up to concurrent_setup handshakes in flight until everyone has started.
        while (!ready && next_to_start < opt.clients && connecting_now < opt.concurrent_setup) {
            start_connect(conns[next_to_start]);
            ++next_to_start;
        }
        const std::int64_t now_ms = monotonic_ms();
        if (!ready) {
            if (joined == opt.clients) {
                ready = true;
                std::printf("ready connected=%d setup_ms=%" PRId64 "\n", joined, now_ms - t0);
                std::fflush(stdout);
            } else if (closed > 0 || now_ms - t0 > opt.setup_ms) {
                std::printf("failed joined=%d of %d closed=%d after %" PRId64 " ms\n", joined, opt.clients, closed,
                            now_ms - t0);
                print_report();
                return 1;
            }
        }
        if (expect >= 0) {
            bool all = true;
            for (const Conn& c : conns)
                if (static_cast<std::int64_t>(c.events) < expect && c.state != State::Closed) {
                    all = false;
                    break;
                }
            if (stats.events != last_progress_events) {
                last_progress_events = stats.events;
                last_progress_ms = now_ms;
            }
            if (all || now_ms - last_progress_ms > opt.drain_ms) {
                std::printf("drain=%s\n", all ? "complete" : "timeout");
                print_report();
                return 0;
            }
        }
        if (now_ms - t0 > opt.max_ms) {
            std::printf("drain=max-time\n");
            print_report();
            return 0;
        }

        int n = epoll_wait(epfd, evs.data(), static_cast<int>(evs.size()), 50);
        if (n < 0) {
            if (errno == EINTR) continue;
            fail("epoll_wait");
        }
        for (int i = 0; i < n; ++i) {
            const std::uint64_t id = evs[i].data.u64;
            if (id != kStdin && (id & kLingering)) {
                on_lingering(static_cast<int>(id & 0xffffffffu));
                continue;
            }
            if (id == kStdin) {
                char buf[4096];
                for (;;) {
                    ssize_t r = ::read(0, buf, sizeof buf);
                    if (r > 0) {
                        cmd_buf.append(buf, static_cast<std::size_t>(r));
                        continue;
                    }
                    if (r == 0) {
                        stdin_open = false;
                        epoll_ctl(epfd, EPOLL_CTL_DEL, 0, nullptr);
                    }
                    break;
                }
                std::size_t nl;
                while ((nl = cmd_buf.find('\n')) != std::string::npos) {
                    std::string line = cmd_buf.substr(0, nl);
                    cmd_buf.erase(0, nl + 1);
                    if (line == "start") {
                        stats.window_start_us = realtime_us();
                        stats.in_window = true;
                        stats.sampling = true;
                    } else if (line == "stop") {
                        stats.window_end_us = realtime_us();
                        stats.in_window = false;
                    } else if (line.compare(0, 7, "expect ") == 0) {
                        expect = std::atoll(line.c_str() + 7);
                        last_progress_ms = monotonic_ms();
                        last_progress_events = stats.events;
                    } else if (line == "report") {
                        print_report();
                        return 0;
                    } else if (!line.empty()) {
                        std::fprintf(stderr, "load_client: unknown command '%s'\n", line.c_str());
                    }
                }
                if (!stdin_open && expect < 0) {
                    print_report();
                    return 0;
                }
                continue;
            }
            Conn& c = conns[id >> 32];
            if (c.state == State::Closed) continue;
            if (opt.polling) {
                const int which = static_cast<int>((id >> 31) & 1);
                HttpLeg& l = c.legs[which];
                if (l.fd < 0 || (l.gen & 0x7fffffffu) != (id & 0x7fffffffu)) continue;  // an earlier request's
                if (evs[i].events & (EPOLLERR | EPOLLHUP) && !(evs[i].events & EPOLLIN)) {
                    int err = 0;
                    socklen_t len = sizeof err;
                    getsockopt(l.fd, SOL_SOCKET, SO_ERROR, &err, &len);
                    c.close_reason = std::string(which == kGet ? "GET" : "POST") + " socket error: " + std::strerror(err);
                    close_conn(c, "socket error");
                    continue;
                }
                if (evs[i].events & EPOLLOUT) flush_leg(c, which);
                if (c.state != State::Closed && l.fd >= 0 && (evs[i].events & EPOLLIN)) on_leg_readable(c, which);
                continue;
            }
            if (evs[i].events & (EPOLLERR | EPOLLHUP) && !(evs[i].events & EPOLLIN)) {
                int err = 0;
                socklen_t len = sizeof err;
                getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
                c.close_reason = std::string("socket error: ") + std::strerror(err);
                close_conn(c, "socket error");
                continue;
            }
            if (evs[i].events & EPOLLOUT) flush_out(c);
            if (c.state == State::Closed) continue;
            if (evs[i].events & EPOLLIN) on_readable(c);
        }
    }
}
