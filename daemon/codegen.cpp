// walcast codegen: the config, the catalog of its tables (blocking libpq), the files.
#include "daemon/codegen.hpp"

#include <libpq-fe.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "codegen/typescript.hpp"
#include "config/config.hpp"
#include "daemon/pg_text.hpp"

namespace walcast {

namespace {

void fail(const std::string& message) { std::fprintf(stderr, "walcast codegen: %s\n", message.c_str()); }

using Conn = std::unique_ptr<PGconn, decltype(&PQfinish)>;
using Res = std::unique_ptr<PGresult, decltype(&PQclear)>;

// Runs a catalog query; an empty pointer, with `error` set, when it fails.
Res query(PGconn* conn, const char* sql, const std::vector<std::string>& params, std::string& error) {
    std::vector<const char*> values;
    for (const std::string& p : params) values.push_back(p.c_str());
    Res r(PQexecParams(conn, sql, static_cast<int>(values.size()), nullptr, values.data(), nullptr, nullptr, 0),
          &PQclear);
    if (PQresultStatus(r.get()) != PGRES_TUPLES_OK) {
        error = one_line(PQresultErrorMessage(r.get()));
        return Res(nullptr, &PQclear);
    }
    return r;
}

// The relation of a routed table: its oid and replica identity. Only tables (plain and
// partitioned) are routed; a view of that name is "missing" as far as walcast is concerned.
constexpr const char* kTableSql =
    "SELECT c.oid, c.relreplident FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')";

// Columns in attnum order, with what decides their JSON form. A NOT NULL domain makes the
// column not null too.
constexpr const char* kColumnsSql =
    "SELECT a.attname, a.atttypid, format_type(a.atttypid, a.atttypmod), t.typtype, t.typcategory = 'A', "
    "a.attnotnull OR (t.typtype = 'd' AND t.typnotnull) "
    "FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
    "WHERE a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum";

constexpr const char* kEnumLabelsSql =
    "SELECT a.attname, e.enumlabel FROM pg_attribute a JOIN pg_enum e ON e.enumtypid = a.atttypid "
    "WHERE a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum, e.enumsortorder";

// The primary key's columns for the default identity, the identity index's for USING INDEX.
constexpr const char* kIdentitySql =
    "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
    "WHERE i.indrelid = $1::oid AND CASE WHEN $2 = 'i' THEN i.indisreplident ELSE i.indisprimary END "
    "ORDER BY array_position(i.indkey, a.attnum)";

// The catalog of every routed table; false (with each problem printed) when the database
// cannot be read or lacks a table.
bool read_catalog(const Config& config, const std::string& config_path, const std::string& dsn, Catalog& catalog) {
    const char* keys[] = {"dbname", "application_name", nullptr};
    const char* values[] = {dsn.c_str(), "walcast-codegen", nullptr};
    Conn conn(PQconnectdbParams(keys, values, /*expand_dbname=*/1), &PQfinish);
    if (PQstatus(conn.get()) != CONNECTION_OK) {
        fail("cannot connect with --dsn: " + one_line(PQerrorMessage(conn.get())));
        return false;
    }
    bool ok = true;
    std::string error;
    for (const ModelConfig& m : config.models) {
        const std::string name = m.schema + "." + m.table;
        auto table = query(conn.get(), kTableSql, {m.schema, m.table}, error);
        if (!table) {
            fail("reading table " + name + ": " + error);
            return false;
        }
        if (PQntuples(table.get()) == 0) {
            fail("table " + name + " (model \"" + m.name + "\") does not exist in database \"" +
                 std::string(PQdb(conn.get())) + "\": create it, or remove its [[model]] from " + config_path);
            ok = false;
            continue;
        }
        const std::string oid = PQgetvalue(table.get(), 0, 0);
        CatalogTable t;
        const char* ident = PQgetvalue(table.get(), 0, 1);
        t.replica_identity = ident[0] ? ident[0] : 'd';

        auto cols = query(conn.get(), kColumnsSql, {oid}, error);
        auto labels = cols ? query(conn.get(), kEnumLabelsSql, {oid}, error) : Res(nullptr, &PQclear);
        auto identity = labels ? query(conn.get(), kIdentitySql, {oid, std::string(1, t.replica_identity)}, error)
                               : Res(nullptr, &PQclear);
        if (!identity) {
            fail("reading the columns of " + name + ": " + error);
            return false;
        }
        for (int i = 0; i < PQntuples(cols.get()); ++i) {
            CatalogColumn c;
            c.name = PQgetvalue(cols.get(), i, 0);
            c.type_oid = static_cast<std::uint32_t>(std::strtoul(PQgetvalue(cols.get(), i, 1), nullptr, 10));
            c.sql_type = PQgetvalue(cols.get(), i, 2);
            c.type_kind = PQgetvalue(cols.get(), i, 3)[0];
            c.is_array = PQgetvalue(cols.get(), i, 4)[0] == 't';
            c.not_null = PQgetvalue(cols.get(), i, 5)[0] == 't';
            t.columns.push_back(std::move(c));
        }
        for (int i = 0; i < PQntuples(labels.get()); ++i) {
            for (CatalogColumn& c : t.columns)
                if (c.name == PQgetvalue(labels.get(), i, 0)) c.enum_labels.push_back(PQgetvalue(labels.get(), i, 1));
        }
        if (t.replica_identity == 'd' || t.replica_identity == 'i')
            for (int i = 0; i < PQntuples(identity.get()); ++i) t.identity_columns.push_back(PQgetvalue(identity.get(), i, 0));
        catalog.tables[{m.schema, m.table}] = std::move(t);
    }
    return ok;
}

// Writes every file to a temp name first, then renames them into place: a failure leaves
// the previous files as they were (unless it comes between two renames).
bool write_files(const std::filesystem::path& dir, const std::vector<GeneratedFile>& files) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) {
        fail("cannot create directory " + dir.string() + ": " + ec.message());
        return false;
    }
    std::vector<std::filesystem::path> temps;
    auto cleanup = [&] {
        for (const auto& t : temps) std::filesystem::remove(t, ec);
    };
    for (const GeneratedFile& f : files) {
        const std::filesystem::path tmp = dir / ("." + f.name + ".tmp");
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        if (!out) {
            fail("cannot write " + tmp.string() + ": " + std::strerror(errno));
            cleanup();
            return false;
        }
        temps.push_back(tmp);
        out.write(f.text.data(), static_cast<std::streamsize>(f.text.size()));
        out.close();
        if (!out) {
            fail("cannot write " + tmp.string() + ": " + std::strerror(errno));
            cleanup();
            return false;
        }
    }
    for (std::size_t i = 0; i < files.size(); ++i) {
        std::filesystem::rename(temps[i], dir / files[i].name, ec);
        if (ec) {
            fail("cannot write " + (dir / files[i].name).string() + ": " + ec.message());
            cleanup();
            return false;
        }
    }
    return true;
}

}  // namespace

int run_codegen(const CodegenOptions& options) {
    if (options.language != "typescript") {
        fail("unknown language \"" + options.language + "\"; supported: typescript");
        return 2;
    }
    auto loaded = load_config(options.config_path);
    if (!loaded) {
        fail(loaded.error().message);
        return 2;
    }
    const Config& config = *loaded;

    Catalog catalog;
    TypeScriptOptions ts;
    ts.config_path = options.config_path;
    if (!options.dsn.empty()) {
        if (!read_catalog(config, options.config_path, options.dsn, catalog)) return 1;
        ts.catalog = &catalog;
    }
    auto files = generate_typescript(config, ts);
    if (!files) {
        // One problem per line, each prefixed like every other message.
        const std::string& text = files.error().message;
        for (std::size_t start = 0; start <= text.size();) {
            const std::size_t end = std::min(text.find('\n', start), text.size());
            fail(options.config_path + ": " + text.substr(start, end - start));
            start = end + 1;
        }
        return 1;
    }
    if (!write_files(options.out_dir, *files)) return 1;
    for (const GeneratedFile& f : *files)
        std::printf("wrote %s\n", (std::filesystem::path(options.out_dir) / f.name).string().c_str());
    return 0;
}

}  // namespace walcast
