// Writes a synthetic wal2json format-version 2 capture of "public"."Task" inserts, shaped
// like `pg_recvlogical -o format-version=2 -o include-xids=1 -o include-lsn=1
// -o include-timestamp=1` output: per transaction B, one walcast context M, N I lines, C.
// Single-threaded command-line tool used by bench/replay; deterministic for a given seed.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace {

// splitmix64: a well-mixed hash of a counter, so every row is a pure function of
// (seed, row sequence number) and can be sized before it is written.
std::uint64_t mix(std::uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

class Rng {
public:
    explicit Rng(std::uint64_t state) : state_(state) {}
    std::uint64_t next() { return mix(state_++); }
    std::uint64_t below(std::uint64_t n) { return next() % n; }

private:
    std::uint64_t state_;
};

// Buffered writer: formatting by hand, not printf, so generation stays well above the
// speed of what it feeds.
class Out {
public:
    explicit Out(std::FILE* f) : f_(f) { buf_.reserve(kFlushAt + 4096); }
    ~Out() { flush(); }

    void lit(std::string_view s) { buf_.append(s.data(), s.size()); maybe_flush(); }
    void ch(char c) { buf_.push_back(c); }

    void u64(std::uint64_t v) {
        char tmp[20];
        int n = 0;
        do { tmp[n++] = char('0' + v % 10); v /= 10; } while (v != 0);
        while (n > 0) buf_.push_back(tmp[--n]);
    }

    void digits(std::uint64_t v, int width) {  // zero-padded
        char tmp[20];
        for (int i = width - 1; i >= 0; --i) { tmp[i] = char('0' + v % 10); v /= 10; }
        buf_.append(tmp, std::size_t(width));
    }

    void hex(std::uint32_t v) {  // uppercase, no padding, as PostgreSQL prints LSNs
        static const char kHex[] = "0123456789ABCDEF";
        char tmp[8];
        int n = 0;
        do { tmp[n++] = kHex[v & 0xF]; v >>= 4; } while (v != 0);
        while (n > 0) buf_.push_back(tmp[--n]);
    }

    void lsn(std::uint64_t v) {
        hex(std::uint32_t(v >> 32));
        ch('/');
        hex(std::uint32_t(v));
    }

    std::uint64_t bytes() const { return written_ + buf_.size(); }

    void flush() {
        if (buf_.empty()) return;
        if (std::fwrite(buf_.data(), 1, buf_.size(), f_) != buf_.size()) {
            std::perror("gen_capture: write");
            std::exit(1);
        }
        written_ += buf_.size();
        buf_.clear();
    }

private:
    static constexpr std::size_t kFlushAt = 1 << 20;
    void maybe_flush() { if (buf_.size() >= kFlushAt) flush(); }

    std::FILE* f_;
    std::string buf_;
    std::uint64_t written_ = 0;
};

// Days since 1970-01-01 for a proleptic Gregorian date (H. Hinnant's algorithm).
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = unsigned(y - era * 400);
    const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + std::int64_t(doe) - 719468;
}

// A timestamptz as PostgreSQL prints it with TimeZone=UTC: trailing zeros of the
// fraction are dropped, and a whole second has no fraction at all.
void timestamptz(Out& out, std::int64_t micros) {
    std::int64_t secs = micros / 1000000;
    std::int64_t frac = micros % 1000000;
    std::int64_t days = secs / 86400;
    std::int64_t sod = secs % 86400;
    // civil_from_days
    days += 719468;
    const std::int64_t era = days / 146097;
    const unsigned doe = unsigned(days - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    const unsigned d = doy - (153 * mp + 2) / 5 + 1;
    const unsigned m = mp < 10 ? mp + 3 : mp - 9;
    const std::int64_t y = std::int64_t(yoe) + era * 400 + (m <= 2);

    out.digits(std::uint64_t(y), 4);
    out.ch('-');
    out.digits(m, 2);
    out.ch('-');
    out.digits(d, 2);
    out.ch(' ');
    out.digits(std::uint64_t(sod / 3600), 2);
    out.ch(':');
    out.digits(std::uint64_t(sod / 60 % 60), 2);
    out.ch(':');
    out.digits(std::uint64_t(sod % 60), 2);
    if (frac != 0) {
        int width = 6;
        while (frac % 10 == 0) { frac /= 10; --width; }
        out.ch('.');
        out.digits(std::uint64_t(frac), width);
    }
    out.lit("+00");
}

// A Prisma-style cuid: "c" + 24 lowercase base-36 characters. The first 10 encode `seq`
// so ids never collide; the rest come from the hash.
std::string cuid(std::uint64_t seq, std::uint64_t salt) {
    static const char kB36[] = "0123456789abcdefghijklmnopqrstuvwxyz";
    std::string id(25, '0');
    id[0] = 'c';
    std::uint64_t v = seq;
    for (int i = 10; i >= 1; --i) { id[std::size_t(i)] = kB36[v % 36]; v /= 36; }
    std::uint64_t r = mix(seq ^ salt);
    for (int i = 11; i < 25; ++i) {
        if (i == 18) r = mix(r);
        id[std::size_t(i)] = kB36[r % 36];
        r /= 36;
    }
    return id;
}

const char* const kWords[] = {
    "migrate", "billing", "service", "to", "the", "new", "invoice", "pipeline", "and",
    "update", "dashboard", "widgets", "for", "quarterly", "review", "fix", "flaky",
    "integration", "tests", "on", "staging", "cluster", "after", "schema", "change",
    "write", "onboarding", "docs", "customer", "import", "tool", "handle", "timezone",
    "edge", "cases", "in", "calendar", "sync", "reduce", "p99", "latency", "of", "search",
    "endpoint", "audit", "permissions", "project", "members", "archive", "old", "attachments",
    "design", "mobile", "layout", "settings", "page", "add", "retry", "webhook", "delivery",
    "clean", "up", "feature", "flags",
};
constexpr std::size_t kWordCount = sizeof kWords / sizeof kWords[0];
const char* const kStatuses[] = {"todo", "in_progress", "review", "done"};

// Rows of one capture draw projects, users and tenants from fixed pools, as a real
// workload would.
struct Pools {
    std::vector<std::string> projects;
    std::vector<std::string> users;
    std::vector<std::string> tenants;
};

Pools make_pools(std::uint64_t seed) {
    Pools p;
    for (std::uint64_t i = 0; i < 200; ++i) p.projects.push_back(cuid(1'000'000'000'000ULL + i, seed ^ 0x51));
    for (std::uint64_t i = 0; i < 500; ++i) p.users.push_back(cuid(2'000'000'000'000ULL + i, seed ^ 0x52));
    for (int i = 0; i < 20; ++i) {
        char name[16];
        std::snprintf(name, sizeof name, "tenant-%02d", i);
        p.tenants.push_back(name);
    }
    return p;
}

// Length the row's title aims at; its WAL record size follows from it, so a transaction's
// commit LSN (which its B line carries) is known before its rows are written.
std::size_t title_target(std::uint64_t seed, std::uint64_t row) {
    return 120 + mix(seed ^ (row * 0x2545F4914F6CDD1DULL)) % 121;  // 120..240 bytes
}

std::uint64_t row_wal_bytes(std::uint64_t seed, std::uint64_t row) {
    return (200 + title_target(seed, row) + 7) & ~std::uint64_t(7);  // heap insert + tuple, 8-aligned
}

// The title as wal2json escapes it: some rows carry a quote (escaped) or non-ASCII UTF-8
// (written raw, as wal2json does).
void title(Out& out, Rng& rng, std::size_t target, std::uint64_t row) {
    std::size_t len = 0;
    bool first = true;
    if (row % 41 == 7) { out.lit("\\\"Urgent\\\" "); len += 9; }
    if (row % 59 == 3) { out.lit("Café menü — "); len += 16; }
    while (true) {
        const char* w = kWords[rng.below(kWordCount)];
        std::size_t wl = std::strlen(w);
        if (len + wl + 1 > target && !first) break;
        if (!first) { out.ch(' '); ++len; }
        if (first && len == 0) {
            out.ch(char(w[0] - 'a' + 'A'));  // every word starts with a lowercase letter
            out.lit(std::string_view(w + 1, wl - 1));
        } else {
            out.lit(w);
        }
        len += wl;
        first = false;
    }
}

struct Options {
    std::uint64_t rows = 1'000'000;
    std::uint64_t rows_per_tx = 1000;
    std::uint64_t seed = 1;
    const char* out = "-";
};

[[noreturn]] void usage(const char* why) {
    if (why != nullptr) std::fprintf(stderr, "gen_capture: %s\n", why);
    std::fprintf(stderr,
                 "usage: gen_capture [--rows N] [--rows-per-tx N] [--seed N] [--out FILE|-]\n"
                 "Writes N Task inserts as wal2json format-version 2 lines, N/rows-per-tx\n"
                 "transactions (B, walcast context M, inserts, C). Defaults: 1000000 rows,\n"
                 "1000 per transaction, seed 1, stdout.\n");
    std::exit(2);
}

std::uint64_t parse_count(const char* flag, const char* text) {
    char* end = nullptr;
    unsigned long long v = std::strtoull(text, &end, 10);
    if (end == text || *end != '\0') {
        std::string why = std::string("bad number for ") + flag + ": " + text;
        usage(why.c_str());
    }
    return v;
}

Options parse_options(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        std::string_view a = argv[i];
        if (a == "-h" || a == "--help") usage(nullptr);
        if (i + 1 >= argc) usage(("missing value for " + std::string(a)).c_str());
        const char* v = argv[++i];
        if (a == "--rows") o.rows = parse_count("--rows", v);
        else if (a == "--rows-per-tx") o.rows_per_tx = parse_count("--rows-per-tx", v);
        else if (a == "--seed") o.seed = parse_count("--seed", v);
        else if (a == "--out") o.out = v;
        else usage(("unknown option " + std::string(a)).c_str());
    }
    if (o.rows_per_tx == 0) usage("--rows-per-tx must be at least 1");
    return o;
}

}  // namespace

int main(int argc, char** argv) {
    const Options opt = parse_options(argc, argv);
    std::FILE* f = std::strcmp(opt.out, "-") == 0 ? stdout : std::fopen(opt.out, "wb");
    if (f == nullptr) {
        std::perror(opt.out);
        return 1;
    }
    const Pools pools = make_pools(opt.seed);

    // Where the sample this mimics was taken: 2026-11-26 04:29:53.566347 UTC, xid 746.
    const std::int64_t base_us =
        (days_from_civil(2026, 11, 26) * 86400 + 4 * 3600 + 29 * 60 + 53) * 1000000LL + 566347;
    std::uint64_t lsn = 0x1566740;
    std::uint64_t xid = 746;
    std::uint64_t lines = 0;

    Out out(f);
    std::uint64_t row = 0;
    for (std::uint64_t tx = 0; row < opt.rows; ++tx, ++xid) {
        const std::uint64_t n = std::min(opt.rows_per_tx, opt.rows - row);
        Rng tx_rng(mix(opt.seed ^ (tx << 20) ^ 0x7478));
        const std::string& project = pools.projects[tx_rng.below(pools.projects.size())];
        const std::string& actor = pools.users[tx_rng.below(pools.users.size())];
        const std::string& tenant = pools.tenants[tx_rng.below(pools.tenants.size())];
        // Commit times ~10 ms apart; every line of a transaction carries its commit time.
        const std::int64_t commit_us = base_us + std::int64_t(tx) * 9871 + std::int64_t(tx_rng.below(500));

        // First pass: the LSNs. The message, then each row, then the commit record,
        // whose start and end the B and C lines both carry.
        const std::uint64_t msg_lsn = lsn;
        std::uint64_t cursor = msg_lsn + 0x90;
        for (std::uint64_t i = 0; i < n; ++i) cursor += row_wal_bytes(opt.seed, row + i);
        const std::uint64_t commit_lsn = cursor;
        const std::uint64_t next_lsn = commit_lsn + 0x30;

        auto header = [&](char action) {
            out.lit("{\"action\":\"");
            out.ch(action);
            out.lit("\",\"xid\":");
            out.u64(xid);
            out.lit(",\"timestamp\":\"");
            timestamptz(out, commit_us);
            out.lit("\",\"lsn\":\"");
        };
        auto begin_or_commit = [&](char action) {
            header(action);
            out.lsn(commit_lsn);
            out.lit("\",\"nextlsn\":\"");
            out.lsn(next_lsn);
            out.lit("\"}\n");
            ++lines;
        };

        begin_or_commit('B');

        header('M');
        out.lsn(msg_lsn);
        out.lit("\",\"transactional\":true,\"prefix\":\"walcast\",\"content\":\"{\\\"actorUserId\\\":\\\"");
        out.lit(actor);
        out.lit("\\\",\\\"projectId\\\":\\\"");
        out.lit(project);
        out.lit("\\\",\\\"tenantId\\\":\\\"");
        out.lit(tenant);
        out.lit("\\\",\\\"skipEmit\\\":false}\"}\n");
        ++lines;

        std::uint64_t row_lsn = msg_lsn + 0x90;
        for (std::uint64_t i = 0; i < n; ++i, ++row) {
            Rng rng(mix(opt.seed ^ (row * 0x9E3779B97F4A7C15ULL) ^ 0x726f77));
            header('I');
            out.lsn(row_lsn);
            row_lsn += row_wal_bytes(opt.seed, row);

            out.lit("\",\"schema\":\"public\",\"table\":\"Task\",\"columns\":[");
            out.lit("{\"name\":\"id\",\"type\":\"text\",\"value\":\"");
            out.lit(cuid(row, opt.seed));
            // Most rows belong to the transaction's project; some to another one.
            out.lit("\"},{\"name\":\"projectId\",\"type\":\"text\",\"value\":\"");
            out.lit(rng.below(10) == 0 ? pools.projects[rng.below(pools.projects.size())] : project);
            out.lit("\"},{\"name\":\"title\",\"type\":\"text\",\"value\":\"");
            title(out, rng, title_target(opt.seed, row), row);
            out.lit("\"},{\"name\":\"status\",\"type\":\"text\",\"value\":\"");
            out.lit(kStatuses[rng.below(4)]);
            out.lit("\"},{\"name\":\"assigneeId\",\"type\":\"text\",\"value\":");
            if (rng.below(4) == 0) {
                out.lit("null");
            } else {
                out.ch('"');
                out.lit(pools.users[rng.below(pools.users.size())]);
                out.ch('"');
            }
            // Positions: mostly small, some beyond 2^53 so exact digits matter.
            out.lit("},{\"name\":\"position\",\"type\":\"bigint\",\"value\":");
            if (rng.below(10) < 3) out.u64(9007199254740993ULL + row * 2);
            else out.u64((row % 5000) * 1024);
            out.lit("},{\"name\":\"estimate\",\"type\":\"numeric(12,2)\",\"value\":");
            if (rng.below(10) == 0) {
                out.lit("null");
            } else {
                std::uint64_t cents = rng.below(rng.below(3) == 0 ? 9'999'999'999ULL : 100'000ULL);
                out.u64(cents / 100);
                out.ch('.');
                out.digits(cents % 100, 2);
            }
            out.lit("},{\"name\":\"createdAt\",\"type\":\"timestamp with time zone\",\"value\":\"");
            timestamptz(out, commit_us - std::int64_t(n - i) * 3 - 2400);
            out.lit("\"}]}\n");
            ++lines;
        }

        begin_or_commit('C');
        lsn = next_lsn;
    }
    out.flush();
    if (f != stdout && std::fclose(f) != 0) {
        std::perror(opt.out);
        return 1;
    }
    std::fprintf(stderr, "gen_capture: %llu rows, %llu lines, %llu bytes\n",
                 static_cast<unsigned long long>(row), static_cast<unsigned long long>(lines),
                 static_cast<unsigned long long>(out.bytes()));
    return 0;
}
