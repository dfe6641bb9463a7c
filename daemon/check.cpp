// walcast check: blocking libpq queries, one finding per line.
#include "daemon/check.hpp"

#include <libpq-fe.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "config/config.hpp"
#include "daemon/pg_text.hpp"
#include "daemon/redis_client.hpp"
#include "daemon/run.hpp"
#include "wire/jwt.hpp"

namespace walcast {

namespace {

class Report {
public:
    void ok(const std::string& what) { std::printf("ok     %s\n", what.c_str()); }
    void warn(const std::string& what, const std::string& fix) { print("WARN ", what, fix); }
    void fatal(const std::string& what, const std::string& fix) {
        ++fatal_;
        print("FATAL", what, fix);
    }
    int fatal_count() const { return fatal_; }

private:
    int fatal_ = 0;
    static void print(const char* level, const std::string& what, const std::string& fix) {
        std::printf("%s  %s\n", level, what.c_str());
        if (!fix.empty()) std::printf("       fix: %s\n", fix.c_str());
    }
};

class Db {
public:
    explicit Db(PGconn* c) : conn(c) {}
    ~Db() { PQfinish(conn); }
    PGconn* conn;

    // Runs a query; rows as strings ("" for NULL, with `nulls` telling which).
    struct Rows {
        bool ok = false;
        std::string error;
        std::string sqlstate;
        std::vector<std::vector<std::string>> rows;
        std::vector<std::vector<bool>> nulls;
    };
    Rows query(const std::string& sql, const std::vector<std::string>& params = {}) {
        std::vector<const char*> values;
        for (const auto& p : params) values.push_back(p.c_str());
        PGresult* r = PQexecParams(conn, sql.c_str(), static_cast<int>(values.size()), nullptr, values.data(), nullptr,
                                   nullptr, 0);
        Rows out;
        const ExecStatusType st = PQresultStatus(r);
        out.ok = st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK;
        if (!out.ok) {
            out.error = one_line(PQresultErrorMessage(r));
            const char* s = PQresultErrorField(r, PG_DIAG_SQLSTATE);
            out.sqlstate = s ? s : "";
        }
        for (int i = 0; i < PQntuples(r); ++i) {
            out.rows.emplace_back();
            out.nulls.emplace_back();
            for (int j = 0; j < PQnfields(r); ++j) {
                out.rows.back().push_back(PQgetvalue(r, i, j));
                out.nulls.back().push_back(PQgetisnull(r, i, j));
            }
        }
        PQclear(r);
        return out;
    }
};

std::string qualified(const ModelConfig& m) { return quote_ident(m.schema) + "." + quote_ident(m.table); }

// Columns a DELETE carries under the table's replica identity; "*" for FULL.
std::set<std::string> identity_columns(Db& db, const std::string& regclass, char ident) {
    std::set<std::string> cols;
    if (ident == 'f') return {"*"};
    if (ident == 'n') return cols;
    const char* which = ident == 'i' ? "i.indisreplident" : "i.indisprimary";
    auto r = db.query(std::string("SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
                                  "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = $1::regclass AND ") + which,
                      {regclass});
    for (auto& row : r.rows) cols.insert(row[0]);
    return cols;
}

void check_models(Db& db, const Config& config, Report& report) {
    auto schema = db.query("SELECT 1 FROM pg_namespace WHERE nspname = 'walcast'");
    const bool have_sql = schema.ok && !schema.rows.empty();
    if (!have_sql)
        report.fatal("schema walcast is missing: the emit context cannot be recorded",
                     "psql -d DB -f sql/walcast.sql   (as a superuser; safe to run again)");
    else
        report.ok("schema walcast is installed");

    for (const ModelConfig& m : config.models) {
        const std::string name = m.schema + "." + m.table;
        const std::string regclass = qualified(m);
        auto rel = db.query("SELECT c.relreplident, c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                            "WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r','p')",
                            {m.schema, m.table});
        if (!rel.ok || rel.rows.empty()) {
            report.fatal("table " + name + " (model " + m.name + ") does not exist",
                         "create it, or remove its [[model]] from " + std::string("the config"));
            continue;
        }
        const char ident = rel.rows[0][0].empty() ? 'd' : rel.rows[0][0][0];
        if (have_sql) {
            auto trig = db.query("SELECT 1 FROM pg_trigger WHERE tgrelid = $1::regclass AND tgname = 'walcast_context' "
                                 "AND tgenabled <> 'D'",
                                 {regclass});
            if (trig.ok && !trig.rows.empty()) report.ok(name + " is tracked");
            else
                report.fatal(name + " is not tracked: its writes carry no context and emit nothing",
                             "SELECT walcast.track('" + regclass + "');");
        }

        const std::set<std::string> ident_cols = identity_columns(db, regclass, ident);
        if (ident == 'n' || ident_cols.empty()) {
            report.fatal(name + " has no replica identity: wal2json emits no UPDATE or DELETE for it",
                         "ALTER TABLE " + regclass + " REPLICA IDENTITY FULL;");
            continue;
        }
        if (ident_cols.count("*")) continue;
        // A DELETE carries only the identity columns: a room placeholder that needs another
        // column of the table cannot resolve from the old row.
        auto cols = db.query("SELECT attname FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped",
                             {regclass});
        std::set<std::string> table_cols;
        for (auto& row : cols.rows) table_cols.insert(row[0]);
        for (const RoomTemplate& t : m.rooms) {
            for (const RoomAlternative& alt : t.alternatives)
                for (const TemplateSegment& seg : alt.segments) {
                    if (!seg.placeholder || seg.placeholder->source == Placeholder::Source::Context) continue;
                    const std::string& col = seg.placeholder->name;
                    if (table_cols.count(col) && !ident_cols.count(col)) {
                        report.fatal(name + ": DELETE events cannot be routed by \"" + t.source + "\": a DELETE carries only " +
                                         "the replica identity, which lacks column " + col,
                                     "ALTER TABLE " + regclass + " REPLICA IDENTITY FULL;");
                        goto next_template;
                    }
                }
        next_template:;
        }
        std::vector<std::string> missing;
        for (const std::string& p : m.payload)
            if (table_cols.count(p) && !ident_cols.count(p)) missing.push_back(p);
        if (!missing.empty()) {
            std::string list;
            for (auto& c : missing) list += (list.empty() ? "" : ", ") + c;
            report.warn(name + ": DELETE payloads will lack " + list + " (not in the replica identity)",
                        "ALTER TABLE " + regclass + " REPLICA IDENTITY FULL;");
        }
    }
}


// [cluster]: Redis answers with the password, and keeps what it acknowledged (the leader
// confirms the slot once Redis has an entry: an entry Redis loses is an event lost).
void check_redis(Config& config, Report& report) {
    std::string error;
    if (!load_redis_password(config, error)) {
        report.fatal(error, "write the password to that file, readable by walcast's user");
        return;
    }
    auto address = parse_redis_url(config.redis);
    if (!address) {
        report.fatal(address.error().message, "fix [cluster] redis");
        return;
    }
    boost::asio::io_context io;
    RedisClient redis(io, *address, config.redis_password, "walcast-check");
    // Runs the loop until `done` (each step here is bounded by the client's timeouts).
    auto wait = [&](const bool& done) {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (!done && std::chrono::steady_clock::now() < deadline) io.run_one_for(std::chrono::milliseconds(100));
    };
    bool connected = false;
    std::optional<std::string> connect_error;
    redis.connect([&](const std::string& e) {
        connect_error = e;
        connected = true;
    });
    wait(connected);
    if (!connected || !connect_error || !connect_error->empty()) {
        report.fatal("cannot reach Redis at " + config.redis + ": " + (connect_error ? *connect_error : "no answer in 10 s"),
                     "start Redis, or fix [cluster] redis and password_file");
        return;
    }
    report.ok("Redis at " + config.redis + " answers");
    // One command's reply, or nullopt (with `error`) when there is none.
    auto call = [&](std::vector<std::string> args) -> std::optional<RespValue> {
        bool done = false;
        std::optional<RespValue> out;
        redis.command(args, [&](const RespValue* reply, const std::string& e) {
            if (reply) out = *reply;
            else error = e;
            done = true;
        });
        wait(done);
        return out;
    };
    auto setting = [&](const std::string& name) -> std::optional<std::string> {
        auto reply = call({"CONFIG", "GET", name});
        if (!reply || !reply->is_array() || reply->elements.size() != 2) return std::nullopt;
        auto value = reply->elements[1].as_string();
        return value ? std::optional<std::string>(std::string(*value)) : std::nullopt;
    };
    const auto appendonly = setting("appendonly");
    const auto fsync = setting("appendfsync");
    const auto policy = setting("maxmemory-policy");
    if (!appendonly || !fsync || !policy) {
        report.warn("cannot read Redis's CONFIG (renamed or refused?): durability and eviction not checked",
                    "make sure appendonly yes, appendfsync always and maxmemory-policy noeviction");
    } else {
        if (*appendonly == "yes" && *fsync == "always") report.ok("Redis: appendonly yes, appendfsync always");
        else
            report.warn("Redis: appendonly " + *appendonly + ", appendfsync " + *fsync +
                            ": a Redis crash can lose entries it acknowledged, and walcast has confirmed the slot past them",
                        "CONFIG SET appendonly yes; CONFIG SET appendfsync always; CONFIG REWRITE");
        if (*policy == "noeviction") report.ok("Redis: maxmemory-policy noeviction");
        else
            report.warn("Redis: maxmemory-policy " + *policy + ": Redis may evict the stream, and its events with it",
                        "CONFIG SET maxmemory-policy noeviction; CONFIG REWRITE");
    }
    auto length = call({"XLEN", config.stream});
    if (length && length->as_integer())
        report.ok("stream \"" + config.stream + "\" has " + std::to_string(*length->as_integer()) + " entries (max_len " +
                  std::to_string(config.max_len) + ")");
    else
        report.fatal("XLEN " + config.stream + " failed: " + (length && length->is_error() ? length->text : error),
                     "check that [cluster] stream names a stream, or a key that does not exist yet");
}
}  // namespace

int run_check(const CheckOptions& options) {
    auto loaded = load_config(options.config_path);
    if (!loaded) {
        std::printf("FATAL  %s\n", loaded.error().message.c_str());
        return 2;
    }
    Config config = std::move(*loaded);
    if (!options.dsn.empty()) config.dsn = options.dsn;
    if (!options.slot.empty()) config.slot = options.slot;
    Report report;
    report.ok("config " + options.config_path + " is valid (" + std::to_string(config.models.size()) + " models)");

    std::string secret, secret_error;
    if (!load_secret(config, secret, secret_error))
        report.fatal(secret_error, "head -c 32 /dev/urandom | base64 > /etc/walcast/jwt.key && chmod 0600 /etc/walcast/jwt.key");
    else if (auto problem = jwt_secret_problem(secret))
        report.fatal("JWT secret refused: " + *problem, "head -c 32 /dev/urandom | base64 > " +
                                                            (config.jwt_secret_file.empty() ? std::string("KEYFILE")
                                                                                            : config.jwt_secret_file));
    else
        report.ok("JWT secret has " + std::to_string(secret.size()) + " bytes");
    if (!config.redis.empty()) check_redis(config, report);

    const char* keys[] = {"dbname", "application_name", nullptr};
    const char* values[] = {config.dsn.c_str(), "walcast-check", nullptr};
    Db db(PQconnectdbParams(keys, values, 1));
    if (PQstatus(db.conn) != CONNECTION_OK) {
        const std::string e = one_line(PQerrorMessage(db.conn));
        report.fatal("cannot connect with dsn \"" + config.dsn + "\": " + e, "fix [postgres] dsn in the config, or pass --dsn");
        return 1;
    }
    report.ok("connected");

    auto level = db.query("SHOW wal_level");
    if (level.ok && !level.rows.empty() && level.rows[0][0] == "logical") report.ok("wal_level = logical");
    else
        report.fatal("wal_level is " + (level.rows.empty() ? std::string("unknown") : level.rows[0][0]) +
                         "; logical decoding needs logical",
                     "ALTER SYSTEM SET wal_level = logical;  -- then restart PostgreSQL");

    // Some builds only load output plugins listed here; where the setting exists it must
    // name wal2json (written unquoted: one quoted string becomes one wrong entry).
    auto libs = db.query("SELECT setting FROM pg_settings WHERE name = 'output_plugin_libraries'");
    if (libs.ok && !libs.rows.empty()) {
        if (libs.rows[0][0].find("wal2json") != std::string::npos) report.ok("output_plugin_libraries lists wal2json");
        else
            report.fatal("output_plugin_libraries (" + libs.rows[0][0] + ") does not list wal2json",
                         "ALTER SYSTEM SET output_plugin_libraries = pgoutput, test_decoding, wal2json; SELECT pg_reload_conf();");
    }

    auto role = db.query("SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user");
    if (role.ok && !role.rows.empty() && role.rows[0][0] == "t") report.ok("role may replicate");
    else
        report.fatal("role " + std::string(PQuser(db.conn)) + " lacks the REPLICATION attribute",
                     "ALTER ROLE " + quote_ident(PQuser(db.conn)) + " REPLICATION;");

    // A slot keeps every WAL segment its consumer has not confirmed: unbounded, a stopped
    // walcast fills the primary's disk.
    auto keep = db.query("SELECT setting FROM pg_settings WHERE name = 'max_slot_wal_keep_size'");
    if (keep.ok && !keep.rows.empty()) {
        if (keep.rows[0][0] == "-1")
            report.warn("max_slot_wal_keep_size is unlimited (-1): if walcast stops, its slot keeps WAL until the disk "
                        "is full",
                        "ALTER SYSTEM SET max_slot_wal_keep_size = '4GB'; SELECT pg_reload_conf();  -- size it for the "
                        "longest outage to bridge; past it the slot is invalidated and walcast reports a discontinuity");
        else
            report.ok("max_slot_wal_keep_size = " + keep.rows[0][0] + " MB");
    }

    auto slot = db.query("SELECT plugin, active_pid, confirmed_flush_lsn, "
                         "pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint, wal_status, "
                         "pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint "
                         "FROM pg_replication_slots WHERE slot_name = $1",
                         {config.slot});
    if (slot.ok && !slot.rows.empty()) {
        const auto& row = slot.rows[0];
        const bool active = !slot.nulls[0][1];
        if (row[0] != "wal2json") {
            report.fatal("slot \"" + config.slot + "\" uses plugin " + row[0] + ", not wal2json",
                         "SELECT pg_drop_replication_slot('" + config.slot + "');  -- or set [postgres] slot = \"another_name\"");
        } else if (row[4] == "lost") {
            report.fatal("slot \"" + config.slot + "\" is invalidated (wal_status lost): the WAL it needed is gone, and "
                         "events since " + row[2] + " cannot be delivered",
                         "SELECT pg_drop_replication_slot('" + config.slot + "'); then start walcast (create_slot = "
                         "\"always\" recreates it by itself); clients are told to resync");
        } else {
            report.ok("slot \"" + config.slot + "\" uses wal2json; confirmed at " + row[2] + ", wal_status " + row[4] +
                      ", retaining " + row[3] + " bytes of WAL" + (active ? "; in use by PID " + row[1] : ""));
            if (row[4] == "unreserved")
                report.warn("slot \"" + config.slot + "\" is about to lose WAL it needs (wal_status unreserved)",
                            "start walcast, or raise max_slot_wal_keep_size");
            // Behind by more than 1 GiB and nobody streaming it: walcast is stopped, or failing.
            const long long behind = row[5].empty() ? 0 : std::stoll(row[5]);
            if (!active && behind > (1LL << 30))
                report.warn("slot \"" + config.slot + "\" is inactive and " + std::to_string(behind) +
                                " bytes behind the server's WAL",
                            "start walcast (systemctl start walcast), or drop the slot if walcast is gone for good");
        }
    } else {
        // No slot yet: walcast run creates it. Prove now that it could, with a temporary one.
        auto probe = db.query("SELECT pg_drop_replication_slot(slot_name) FROM "
                              "pg_create_logical_replication_slot('walcast_check_' || pg_backend_pid(), 'wal2json', true)");
        if (probe.ok) report.ok("slot \"" + config.slot + "\" does not exist yet; walcast run will create it with wal2json");
        else if (probe.error.find("output_plugin_libraries") != std::string::npos)
            report.fatal("the server refuses wal2json as an output plugin",
                         "ALTER SYSTEM SET output_plugin_libraries = pgoutput, test_decoding, wal2json; SELECT pg_reload_conf();");
        else if (probe.error.find("wal2json") != std::string::npos)
            report.fatal("the wal2json output plugin cannot be loaded: " + probe.error,
                         "apt-get install postgresql-15-wal2json  (on the database server)");
        else
            report.fatal("cannot create a logical slot: " + probe.error,
                         "check max_replication_slots and wal_level (needs logical)");
    }

    check_models(db, config, report);
    std::printf("%s\n", report.fatal_count() ? "walcast check: problems found" : "walcast check: ready");
    return report.fatal_count() ? 1 : 0;
}

}  // namespace walcast
