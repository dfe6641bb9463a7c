// writer: commits one Task insert per transaction at a fixed rate, for bench/e2e
// (README.md beside this file).
//
//   writer --dsn DSN --rate R --seconds S [--tag T] [--project p1] [--tenant acme] [--user u1]
//
// One libpq connection. Transaction i is due at start + i/R (a monotonic clock); each is one
// simple-query round trip:
//   BEGIN; SELECT walcast.set_context('u1','p1','acme'); INSERT INTO "Task"(...) VALUES (...); COMMIT
// A writer that falls behind commits the overdue transactions back to back until it has
// caught up or the S seconds are over (open loop: a slow database shows as fewer commits
// done, not as a slower schedule). Ids are "<tag>-<i>".
// stdout, once done: asked=N done=N seconds=S rate_done=R behind_max_ms=M errors=E
#include <libpq-fe.h>

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>

namespace {

std::int64_t now_ns() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

void sleep_until_ns(std::int64_t t) {
    timespec ts;
    ts.tv_sec = static_cast<time_t>(t / 1000000000);
    ts.tv_nsec = static_cast<long>(t % 1000000000);
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) != 0) {
    }
}

// SQL string literal; the values here are ours, but quote them properly anyway.
std::string lit(const std::string& s) {
    std::string out = "'";
    for (char c : s) {
        if (c == '\'') out += '\'';
        out += c;
    }
    return out + "'";
}

[[noreturn]] void usage() {
    std::fprintf(stderr,
                 "usage: writer --dsn DSN --rate COMMITS_PER_S --seconds S [--tag T]\n"
                 "              [--project p1] [--tenant acme] [--user u1]\n");
    std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
    std::string dsn, tag = "w", project = "p1", tenant = "acme", user = "u1";
    double rate = 0, seconds = 0;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto val = [&]() -> std::string {
            if (i + 1 >= argc) usage();
            return argv[++i];
        };
        if (a == "--dsn") dsn = val();
        else if (a == "--rate") rate = std::atof(val().c_str());
        else if (a == "--seconds") seconds = std::atof(val().c_str());
        else if (a == "--tag") tag = val();
        else if (a == "--project") project = val();
        else if (a == "--tenant") tenant = val();
        else if (a == "--user") user = val();
        else usage();
    }
    if (dsn.empty() || rate <= 0 || seconds <= 0) usage();

    PGconn* conn = PQconnectdb(dsn.c_str());
    if (PQstatus(conn) != CONNECTION_OK) {
        std::fprintf(stderr, "writer: cannot connect: %s", PQerrorMessage(conn));
        return 1;
    }
    const std::string prefix = "BEGIN;SELECT walcast.set_context(" + lit(user) + "," + lit(project) + "," +
                               lit(tenant) + ");INSERT INTO \"Task\"(id,\"projectId\",title,status,position,estimate) VALUES (";
    const std::string title_project = lit(project);

    const std::int64_t asked = static_cast<std::int64_t>(std::llround(rate * seconds));
    const double interval_ns = 1e9 / rate;
    const std::int64_t start = now_ns();
    const std::int64_t deadline = start + static_cast<std::int64_t>(seconds * 1e9);
    std::int64_t done = 0, errors = 0, behind_max_ns = 0;
    std::string sql;
    for (std::int64_t i = 0; i < asked; ++i) {
        const std::int64_t due = start + static_cast<std::int64_t>(static_cast<double>(i) * interval_ns);
        std::int64_t now = now_ns();
        if (now >= deadline) break;
        if (due > now) sleep_until_ns(due);
        else behind_max_ns = std::max(behind_max_ns, now - due);
        sql = prefix;
        sql += lit(tag + "-" + std::to_string(i));
        sql += ',';
        sql += title_project;
        sql += ",'bench task ";
        sql += std::to_string(i);
        sql += "','todo',";
        sql += std::to_string(i);
        sql += ",1.50);COMMIT";
        PGresult* r = PQexec(conn, sql.c_str());
        const ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
            ++done;
        } else {
            if (errors < 5) std::fprintf(stderr, "writer: transaction %" PRId64 " failed: %s", i, PQerrorMessage(conn));
            ++errors;
            PQclear(r);
            r = PQexec(conn, "ROLLBACK");
        }
        PQclear(r);
        if (PQstatus(conn) != CONNECTION_OK) {
            std::fprintf(stderr, "writer: connection lost: %s", PQerrorMessage(conn));
            break;
        }
    }
    // The rate done is over the whole scheduled time: commits that would not fit are not done.
    const double elapsed = static_cast<double>(now_ns() - start) / 1e9;
    std::printf("asked=%" PRId64 " done=%" PRId64 " seconds=%.3f rate_done=%.1f behind_max_ms=%.1f errors=%" PRId64 "\n",
                asked, done, elapsed, done / std::max(seconds, elapsed), behind_max_ns / 1e6, errors);
    PQfinish(conn);
    return errors > 0 ? 1 : 0;
}
