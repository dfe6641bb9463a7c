// TypeScript for the browser side of a walcast config: event names, payload and event types,
// the typed Socket.IO event maps, and a React `useSocket` hook. Pure (text in, text out, no
// database, no files); any thread.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "config/config.hpp"
#include "decoder/result.hpp"

namespace walcast {

// What the database catalog says about one column, as far as the JSON that wal2json (and so
// an event's `data`) carries for it depends on it.
struct CatalogColumn {
    std::string name;
    std::uint32_t type_oid = 0;            // pg_attribute.atttypid
    std::string sql_type;                  // format_type(): "numeric(12,2)", "public.mood", for comments
    char type_kind = 'b';                  // pg_type.typtype: b base, d domain, e enum, c composite, r range, ...
    bool is_array = false;                 // pg_type.typcategory 'A'
    bool not_null = false;                 // attnotnull, or a NOT NULL domain
    std::vector<std::string> enum_labels;  // type_kind 'e': the labels in their sort order
};

// One table: its columns and the replica identity, which decides which columns an UPDATE
// or a DELETE carries.
struct CatalogTable {
    std::vector<CatalogColumn> columns;  // attnum order
    char replica_identity = 'd';         // pg_class.relreplident: d default (primary key), f full, i index, n nothing
    std::vector<std::string> identity_columns;  // the primary key ('d') or the identity index ('i')

    const CatalogColumn* find(const std::string& column) const;
};

// The routed tables as the database has them, by (schema, table).
struct Catalog {
    std::map<std::pair<std::string, std::string>, CatalogTable> tables;
};

struct TypeScriptOptions {
    std::string config_path;           // as given on the command line; named in the files' header
    const Catalog* catalog = nullptr;  // nullptr: column types are unknown
};

struct GeneratedFile {
    std::string name;  // "socket-events.ts"
    std::string text;
};

// socket-events.ts and use-socket.ts for `config`. The same input gives the same bytes.
// Errors (one problem per line): model names that do not make distinct TypeScript
// identifiers, two models sharing an event name, and with a catalog a table it lacks or a
// payload or key column the table does not have.
Result<std::vector<GeneratedFile>> generate_typescript(const Config& config, const TypeScriptOptions& options);

// The TypeScript type of a column's value in `data`, without `| null`: what wal2json
// writes for it (a JSON number only for int2, int4, int8, oid, float4, float8 and numeric
// themselves, true/false only for boolean; every other type, domains and arrays included,
// as a string), with int8 and numeric as strings under `numbers_as_strings`.
std::string typescript_type(const CatalogColumn& column, bool numbers_as_strings);

// Whether the column's value can be null in an event although the row's column cannot be:
// wal2json writes NaN and ±Infinity of float4, float8 and numeric as null.
bool null_for_special_numbers(const CatalogColumn& column);

}  // namespace walcast
