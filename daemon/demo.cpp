// walcast demo (see demo.hpp). PostgreSQL refuses to run as root, so when started as root
// the cluster belongs to the unprivileged user "postgres" and its commands run as that user.
// Main thread; the simulated team and /api/board's reader each have a thread of their own.
#include "daemon/demo.hpp"

#include <grp.h>
#include <libpq-fe.h>
#include <pwd.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "wire/jwt.hpp"
#include "daemon/listener.hpp"
#include "daemon/run.hpp"
#include "decoder/json_text.hpp"

namespace walcast {

namespace embedded {
extern const std::string_view app_schema;
extern const std::string_view walcast_sql;
extern const std::string_view example_config;
extern const std::string_view index_html;
extern const std::string_view app_js;
extern const std::string_view socket_events_js;
extern const std::string_view style_css;
extern const std::string_view socket_io_js;
}  // namespace embedded

namespace {

namespace fs = std::filesystem;

void say(const std::string& line) {
    std::printf("walcast demo: %s\n", line.c_str());
    std::fflush(stdout);
}

std::string find_pg_bindir() {
    if (const char* env = std::getenv("WALCAST_PG_BINDIR"); env && *env) return env;
    for (const char* v : {"15", "16", "17", "14"}) {
        std::string dir = std::string("/usr/lib/postgresql/") + v + "/bin";
        if (::access((dir + "/initdb").c_str(), X_OK) == 0) return dir;
    }
    return "";
}

// Runs a program (as `user` when given) and waits; stdout/stderr go to `log`.
bool run_as(const struct passwd* user, const std::vector<std::string>& argv, const std::string& log) {
    const pid_t pid = ::fork();
    if (pid < 0) return false;
    if (pid == 0) {
        // Drop privileges first, so the log (which the server appends to as well) is theirs.
        if (user && (::initgroups(user->pw_name, user->pw_gid) != 0 || ::setgid(user->pw_gid) != 0 ||
                     ::setuid(user->pw_uid) != 0))
            ::_exit(126);
        const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            ::dup2(fd, 1);
            ::dup2(fd, 2);
        }
        std::vector<char*> args;
        for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        ::execv(args[0], args.data());
        ::_exit(127);
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

bool exec_sql(PGconn* conn, std::string_view sql, std::string& error) {
    PGresult* r = PQexec(conn, std::string(sql).c_str());
    const bool ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
    if (!ok) error = PQresultErrorMessage(r);
    PQclear(r);
    return ok;
}

void write_file(const fs::path& path, std::string_view content) {
    std::ofstream out(path, std::ios::binary);
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
}

std::string random_hex(std::size_t bytes) {
    std::random_device rd;
    std::string out;
    static const char hex[] = "0123456789abcdef";
    for (std::size_t i = 0; i < bytes; ++i) {
        const unsigned v = rd() & 0xFF;
        out += hex[v >> 4];
        out += hex[v & 0xF];
    }
    return out;
}

struct Seed {
    const char* id;
    const char* title;
    const char* status;
    const char* assignee;
};

const Seed kTasks[] = {
    {"t1", "Draft the launch announcement", "todo", "u2"},
    {"t2", "Load-test the signup flow", "doing", "u3"},
    {"t3", "Fix flaky payment webhook", "doing", "u1"},
    {"t4", "Pick the pricing page photos", "todo", "u4"},
    {"t5", "Migrate billing emails", "done", "u2"},
    {"t6", "Write the onboarding checklist", "todo", "u1"},
};

const char* kUsers[][2] = {{"u1", "Ada"}, {"u2", "Grace"}, {"u3", "Linus"}, {"u4", "Margaret"}};

const char* const kProject = "p1";  // the board's project

std::string seed_sql() {
    std::string sql =
        "INSERT INTO \"Tenant\" VALUES ('acme', 'Acme');"
        "INSERT INTO \"Project\" VALUES ('p1', 'acme', 'Launch');";
    for (auto& u : kUsers)
        sql += std::string("INSERT INTO \"User\" VALUES ('") + u[0] + "', '" + u[1] + "@acme.test', NULL);"
               "INSERT INTO \"Membership\" VALUES ('m-" + u[0] + "', 'acme', '" + u[0] + "', 'member');";
    int position = 1;
    for (const Seed& t : kTasks)
        sql += std::string("INSERT INTO \"Task\" (id, \"projectId\", title, status, \"assigneeId\", position, estimate) VALUES ('") +
               t.id + "', 'p1', '" + t.title + "', '" + t.status + "', '" + t.assignee + "', " + std::to_string(position++) +
               ", 3.50);";
    return sql;
}

// window.WALCAST_DEMO: the page's token and identity. The board itself comes from
// /api/board, as the database has it when the page loads.
std::string demo_config_js(const std::string& token) {
    std::string js = "window.WALCAST_DEMO = {\"token\":";
    append_json_string(js, token);
    js += ",\"userId\":\"u1\",\"tenantId\":\"acme\",\"projectId\":";
    append_json_string(js, kProject);
    js += ",\"projectName\":\"Launch\",\"users\":{";
    bool first = true;
    for (auto& u : kUsers) {
        js += first ? "" : ",";
        first = false;
        append_json_string(js, u[0]);
        js += ':';
        append_json_string(js, u[1]);
    }
    js += "}};\n";
    return js;
}

// GET /api/board: the demo project's tasks (the columns the board shows, as JSON of the same
// types as an event's `data`) and walcast.snapshot(), read in one REPEATABLE READ transaction,
// as {"tasks":[...],"snapshot":"v1:..."}. The page joins the project with that token and gets
// exactly the events its read did not see.
//
// The read must not block the loop: the loop defers the request and queues it; one worker
// thread with its own connection takes the whole queue at once and answers every request in it
// with one read (a read that starts after a request arrived is as good for it as its own); the
// answer is posted back to the loop, the only thread that touches exchanges.
class BoardEndpoint {
public:
    static constexpr std::size_t kMaxQueued = 64;  // requests waiting for the worker; more: 503

    // Loop thread. The worker starts at once, connects at the first request.
    BoardEndpoint(boost::asio::io_context& loop, std::string dsn)
        : loop_(loop), dsn_(std::move(dsn)), worker_([this] { work(); }) {}

    // Loop thread, after the loop stopped (the server is being destroyed): waits for a read in
    // progress, then answers what is left 503.
    ~BoardEndpoint() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            stop_ = true;
        }
        wake_.notify_all();
        worker_.join();
        for (auto& [id, exchange] : waiting_) respond(*exchange, 503, R"({"error":"the demo is stopping"})");
    }

    BoardEndpoint(const BoardEndpoint&) = delete;
    BoardEndpoint& operator=(const BoardEndpoint&) = delete;

    // Loop thread: HttpEndpoints::extra.
    bool handle(const std::shared_ptr<HttpExchange>& exchange) {
        if (exchange->path() != "/api/board") return false;
        const std::uint64_t id = ++next_id_;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            if (queue_.size() >= kMaxQueued) {
                respond(*exchange, 503, R"({"error":"busy"})", {{"Retry-After", "1"}});
                return true;
            }
            queue_.push_back(id);
        }
        exchange->defer();
        waiting_.emplace(id, exchange);
        wake_.notify_one();
        return true;
    }

private:
    struct Answer {
        int status = 500;
        std::string body;
    };

    static void respond(HttpExchange& x, int status, std::string body, HttpHeaders headers = {}) {
        headers.emplace_back("Content-Type", "application/json");
        headers.emplace_back("Cache-Control", "no-store");
        x.respond(status, headers, std::move(body));
    }

    static Answer failure(int status, const std::string& what, PGconn* conn) {
        std::string message = what;
        if (conn) message += std::string(": ") + PQerrorMessage(conn);
        while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
        Answer a{status, "{\"error\":"};
        append_json_string(a.body, message);
        a.body += '}';
        return a;
    }

    // Worker thread. One read: BEGIN REPEATABLE READ, tasks and token in one statement (so
    // they share the transaction's snapshot whatever the isolation), COMMIT. A broken
    // connection is dropped and made again by the next read.
    Answer read_board(PGconn*& conn) {
        if (conn && PQstatus(conn) != CONNECTION_OK) {
            PQfinish(conn);
            conn = nullptr;
        }
        if (!conn) {
            conn = PQconnectdb(dsn_.c_str());
            std::string ignored;
            if (PQstatus(conn) != CONNECTION_OK || !exec_sql(conn, "SET statement_timeout = '10s'", ignored)) {
                Answer a = failure(503, "cannot connect to the demo database", conn);
                PQfinish(conn);
                conn = nullptr;
                return a;
            }
        }
        std::string error;
        if (!exec_sql(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", error)) return failure(500, error, nullptr);
        static const char* const kQuery =
            "SELECT json_build_object("
            "  'tasks', COALESCE(json_agg(json_build_object("
            "      'id', id, 'projectId', \"projectId\", 'title', title, 'status', status,"
            "      'assigneeId', \"assigneeId\", 'position', position, 'estimate', estimate,"
            "      'createdAt', \"createdAt\"::text)"  // as wal2json writes it: the type's text
            "    ORDER BY position NULLS LAST, \"createdAt\", id), '[]'::json),"
            "  'snapshot', walcast.snapshot())::text "
            "FROM \"Task\" WHERE \"projectId\" = $1";
        const char* params[] = {kProject};
        PGresult* r = PQexecParams(conn, kQuery, 1, nullptr, params, nullptr, nullptr, 0);
        Answer a;
        if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
            a = Answer{200, PQgetvalue(r, 0, 0)};
        else
            a = failure(500, PQresultErrorMessage(r), nullptr);
        PQclear(r);
        if (!exec_sql(conn, a.status == 200 ? "COMMIT" : "ROLLBACK", error) && a.status == 200) a = failure(500, error, nullptr);
        return a;
    }

    // Worker thread: whole batches from the queue, one read each, the answer posted to the loop.
    void work() {
        // Signals are the main thread's business (SIGINT stops the demo, SIGUSR1 pauses the team).
        sigset_t all;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, nullptr);
        PGconn* conn = nullptr;
        std::unique_lock<std::mutex> lock(mutex_);
        for (;;) {
            wake_.wait(lock, [&] { return stop_ || !queue_.empty(); });
            if (stop_) break;
            std::vector<std::uint64_t> batch(queue_.begin(), queue_.end());
            queue_.clear();
            lock.unlock();
            Answer answer = read_board(conn);
            if (answer.status != 200) say("/api/board: " + answer.body);
            boost::asio::post(loop_, [this, guard = std::weak_ptr<char>(alive_), batch = std::move(batch),
                                      answer = std::move(answer)] {
                if (guard.lock()) deliver(batch, answer);
            });
            lock.lock();
        }
        lock.unlock();
        if (conn) PQfinish(conn);
    }

    // Loop thread.
    void deliver(const std::vector<std::uint64_t>& batch, const Answer& answer) {
        for (std::uint64_t id : batch) {
            auto it = waiting_.find(id);
            if (it == waiting_.end()) continue;
            std::shared_ptr<HttpExchange> exchange = std::move(it->second);
            waiting_.erase(it);
            respond(*exchange, answer.status, answer.body);
        }
    }

    boost::asio::io_context& loop_;
    const std::string dsn_;
    // Loop thread only.
    std::uint64_t next_id_ = 0;
    std::unordered_map<std::uint64_t, std::shared_ptr<HttpExchange>> waiting_;
    // Posted answers may reach the loop after this is gone (never run, in practice: the loop
    // has stopped by then); they hold this weakly.
    std::shared_ptr<char> alive_ = std::make_shared<char>();
    // The queue between the loop and the worker.
    std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<std::uint64_t> queue_;
    bool stop_ = false;
    std::thread worker_;  // last: starts once everything above exists
};

// SIGUSR1 pauses the simulated team and SIGUSR2 lets it write again; the writer says so on
// stdout once it is between transactions (tests compare the board with the database while
// nothing writes). Set from a signal handler: lock-free.
std::atomic<bool> team_paused{false};
static_assert(std::atomic<bool>::is_always_lock_free);

void on_team_signal(int signo) { team_paused.store(signo == SIGUSR1); }

// The simulated team: one transaction every ~0.5-1.2 s, each with its emit context.
void simulate_team(const std::string& dsn, const std::atomic<bool>& stop) {
    PGconn* conn = PQconnectdb(dsn.c_str());
    if (PQstatus(conn) != CONNECTION_OK) {
        say(std::string("writer cannot connect: ") + PQerrorMessage(conn));
        PQfinish(conn);
        return;
    }
    std::mt19937 rng(std::random_device{}());
    auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
    static const char* statuses[] = {"todo", "doing", "done"};
    static const char* titles[] = {"Review the API docs", "Ship the dark mode", "Call the design agency",
                                   "Triage support tickets", "Update the changelog", "Tune the search index"};
    static const char* comments[] = {"On it!", "Blocked on review.", "Looks good to me.", "Moved to next sprint?",
                                     "Pairing on this after lunch."};
    int counter = 0;
    std::string error;
    while (!stop.load()) {
        for (int i = 0; i < 10 && !stop.load() && !team_paused.load(); ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds(50 + pick(70)));
        if (stop.load()) break;
        if (team_paused.load()) {
            say("the simulated team paused (SIGUSR2 resumes it)");
            while (team_paused.load() && !stop.load()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
            if (!stop.load()) say("the simulated team writes again");
            continue;
        }
        const int who = pick(4);
        const std::string actor = kUsers[who][0];
        const std::string n = std::to_string(++counter);
        std::string sql = "BEGIN; SELECT walcast.set_context('" + actor + "', 'p1', 'acme');";
        const int action = pick(100);
        if (action < 40) {
            // Only the seeded tasks and the team's own: rows someone adds with psql stay put.
            sql += std::string("UPDATE \"Task\" SET status = '") + statuses[pick(3)] +
                   "' WHERE id = (SELECT id FROM \"Task\" WHERE \"projectId\" = 'p1' AND (id LIKE 'demo-%' OR id ~ '^t[0-9]+$') "
                   "ORDER BY random() LIMIT 1);";
        } else if (action < 55) {
            sql += std::string("INSERT INTO \"Task\" (id, \"projectId\", title, \"assigneeId\", position, estimate) VALUES ('demo-") +
                   n + "', 'p1', '" + titles[pick(6)] + "', '" + kUsers[pick(4)][0] + "', " + std::to_string(100 + counter) +
                   ", " + std::to_string(1 + pick(8)) + ".25);";
        } else if (action < 70) {
            sql += "INSERT INTO \"Comment\" SELECT 'c-" + n + "', id, '" + actor + "', '" + comments[pick(5)] +
                   "' FROM \"Task\" WHERE \"projectId\" = 'p1' ORDER BY random() LIMIT 1;";
        } else if (action < 80) {
            sql += "INSERT INTO \"TimeEntry\" SELECT 'te-" + n + "', id, '" + actor + "', " + std::to_string(15 + pick(90)) +
                   " FROM \"Task\" WHERE \"projectId\" = 'p1' ORDER BY random() LIMIT 1;";
        } else if (action < 90) {
            sql += "INSERT INTO \"Notification\" VALUES ('n-" + n + "', 'acme', 'u1', 'mention', '" +
                   std::string(kUsers[who][1]) + " mentioned you in a comment', NULL);";
        } else if (action < 95) {
            sql += "INSERT INTO \"Note\" VALUES ('note-" + n + "', 'acme', NULL, 'u1', NULL, 'Personal note " + n +
                   "', 'Only Ada sees this one.');";
        } else {
            sql += "DELETE FROM \"Task\" WHERE id = (SELECT id FROM \"Task\" WHERE status = 'done' AND id LIKE 'demo-%' LIMIT 1);";
        }
        sql += "COMMIT;";
        if (!exec_sql(conn, sql, error)) {
            exec_sql(conn, "ROLLBACK", error);
            if (PQstatus(conn) != CONNECTION_OK) break;
        }
    }
    PQfinish(conn);
}

class Cluster {
public:
    ~Cluster() { stop(); }

    bool start(std::string& error) {
        bindir_ = find_pg_bindir();
        if (bindir_.empty()) {
            error = "PostgreSQL server binaries not found (apt-get install postgresql-15 postgresql-15-wal2json)";
            return false;
        }
        char tmpl[] = "/tmp/walcast-demo-XXXXXX";
        if (!::mkdtemp(tmpl)) {
            error = "cannot create a temporary directory";
            return false;
        }
        dir_ = tmpl;
        if (::geteuid() == 0) {
            user_ = ::getpwnam("postgres");
            if (!user_) {
                error = "PostgreSQL refuses to run as root and there is no user \"postgres\" to run it as "
                        "(useradd --system postgres)";
                return false;
            }
            if (::chown(dir_.c_str(), user_->pw_uid, user_->pw_gid) != 0) {
                error = "cannot hand " + dir_ + " to user postgres";
                return false;
            }
        }
        ::chmod(dir_.c_str(), 0700);
        log_ = dir_ + "/postgres.log";
        if (!run_as(user_, {bindir_ + "/initdb", "-D", dir_ + "/data", "-A", "trust", "-U", "postgres", "-E", "UTF8",
                            "--no-sync"},
                    log_)) {
            error = "initdb failed; see " + log_;
            return false;
        }
        const std::string opts = "-c wal_level=logical -c listen_addresses='' -c unix_socket_directories='" + dir_ +
                                 "' -c port=5432 -c timezone=UTC -c fsync=off -c max_wal_senders=8 -c max_replication_slots=8";
        if (!run_as(user_, {bindir_ + "/pg_ctl", "-D", dir_ + "/data", "-l", log_, "-w", "-o", opts, "start"}, log_)) {
            error = "PostgreSQL did not start; see " + log_;
            return false;
        }
        running_ = true;
        return true;
    }

    void stop() {
        if (running_) run_as(user_, {bindir_ + "/pg_ctl", "-D", dir_ + "/data", "-m", "fast", "-w", "stop"}, "/dev/null");
        running_ = false;
        if (!dir_.empty()) {
            std::error_code ec;
            fs::remove_all(dir_, ec);
            dir_.clear();
        }
    }

    void print_log() const {
        std::ifstream in(log_);
        for (std::string line; std::getline(in, line);) std::fprintf(stderr, "  %s\n", line.c_str());
    }

    std::string dsn(const std::string& db) const { return "host=" + dir_ + " port=5432 user=postgres dbname=" + db; }
    const std::string& dir() const { return dir_; }

private:
    std::string bindir_, dir_, log_;
    struct passwd* user_ = nullptr;
    bool running_ = false;
};

}  // namespace

int run_demo(const DemoOptions& options) {
    // Ctrl-C during set-up must still clean up: hold the signals until the daemon's own
    // handler takes them (serve() installs an Asio signal_set).
    sigset_t block, previous;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    ::pthread_sigmask(SIG_BLOCK, &block, &previous);
    // SIGUSR1/SIGUSR2 pause and resume the simulated team (their default would kill the demo
    // and leave its cluster behind).
    struct sigaction team{}, old_usr1{}, old_usr2{};
    team.sa_handler = on_team_signal;
    team.sa_flags = SA_RESTART;
    sigemptyset(&team.sa_mask);
    ::sigaction(SIGUSR1, &team, &old_usr1);
    ::sigaction(SIGUSR2, &team, &old_usr2);

    Cluster cluster;
    std::string error;
    if (!cluster.start(error)) {
        say("cannot start PostgreSQL: " + error);
        cluster.print_log();
        return 1;
    }
    say("data directory " + cluster.dir());

    {
        PGconn* admin = PQconnectdb(cluster.dsn("postgres").c_str());
        // Builds with output_plugin_libraries load only the plugins it lists; others have no
        // such setting, and this statement fails harmlessly there.
        std::string ignored;
        if (exec_sql(admin, "ALTER SYSTEM SET output_plugin_libraries = pgoutput, test_decoding, wal2json", ignored))
            exec_sql(admin, "SELECT pg_reload_conf()", ignored);
        const bool ok = PQstatus(admin) == CONNECTION_OK && exec_sql(admin, "CREATE DATABASE demo", error);
        PQfinish(admin);
        if (!ok) {
            say("cannot create the demo database: " + error);
            return 1;
        }
    }
    auto config = parse_config(embedded::example_config, "examples/walcast.toml");
    if (!config) {
        say(config.error().message);
        return 1;
    }
    {
        PGconn* db = PQconnectdb(cluster.dsn("demo").c_str());
        std::string track;
        for (const ModelConfig& m : config->models)
            track += "SELECT walcast.track('\"" + m.schema + "\".\"" + m.table + "\"');";
        const bool ok = PQstatus(db) == CONNECTION_OK && exec_sql(db, embedded::app_schema, error) &&
                        exec_sql(db, embedded::walcast_sql, error) && exec_sql(db, track, error) &&
                        exec_sql(db, seed_sql(), error);
        PQfinish(db);
        if (!ok) {
            say("cannot load the schema: " + error);
            return 1;
        }
    }

    const fs::path www = fs::path(cluster.dir()) / "www";
    fs::create_directories(www);
    const std::string secret = random_hex(32);
    const auto exp = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count() +
                     7 * 24 * 3600;
    const std::string token =
        sign_jwt_hs256("{\"sub\":\"u1\",\"tenantId\":\"acme\",\"exp\":" + std::to_string(exp) + "}", secret);
    write_file(www / "index.html", embedded::index_html);
    write_file(www / "app.js", embedded::app_js);
    fs::create_directories(www / "generated");
    write_file(www / "generated" / "socket-events.js", embedded::socket_events_js);
    write_file(www / "style.css", embedded::style_css);
    write_file(www / "socket.io.min.js", embedded::socket_io_js);
    write_file(www / "demo-config.js", demo_config_js(token));

    config->dsn = cluster.dsn("demo");
    config->listen = "127.0.0.1:" + std::to_string(options.port);
    ServerOptions server;
    if (!apply_config(*config, server, error)) {
        say(error);
        return 1;
    }
    server.jwt_secret = secret;
    server.static_dir = www.string();
    server.http_hook = [dsn = cluster.dsn("demo")](boost::asio::io_context& loop) {
        auto board = std::make_shared<BoardEndpoint>(loop, dsn);
        return [board](const std::shared_ptr<HttpExchange>& exchange) { return board->handle(exchange); };
    };

    say("open http://127.0.0.1:" + std::to_string(options.port) + "/");
    say("database: psql -h " + cluster.dir() + " -p 5432 -U postgres demo");
    say("press Ctrl-C to stop and remove everything");

    std::atomic<bool> stop_writer{false};
    std::thread writer;
    if (options.writer) writer = std::thread(simulate_team, cluster.dsn("demo"), std::cref(stop_writer));
    const int code = serve(std::move(*config), std::move(server), nullptr, &previous);
    stop_writer = true;
    if (writer.joinable()) writer.join();
    ::sigaction(SIGUSR1, &old_usr1, nullptr);
    ::sigaction(SIGUSR2, &old_usr2, nullptr);
    const std::string dir = cluster.dir();
    cluster.stop();
    say("stopped; removed " + dir);
    return code;
}

}  // namespace walcast
