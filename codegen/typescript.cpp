// generate_typescript: the two files as text. Every list in them follows the config's model
// order (and each table's column order), never a hash order, so the output is byte-stable.
#include "codegen/typescript.hpp"

#include <algorithm>
#include <cctype>
#include <set>
#include <sstream>

namespace walcast {

namespace {

// PostgreSQL's fixed type OIDs (pg_type.dat) for the types wal2json writes as JSON numbers
// or booleans. It tests the exact OID, so a domain over one of them is written as a string.
constexpr std::uint32_t kBool = 16;
constexpr std::uint32_t kBytea = 17;
constexpr std::uint32_t kInt8 = 20;
constexpr std::uint32_t kInt2 = 21;
constexpr std::uint32_t kInt4 = 23;
constexpr std::uint32_t kOid = 26;
constexpr std::uint32_t kJson = 114;
constexpr std::uint32_t kFloat4 = 700;
constexpr std::uint32_t kFloat8 = 701;
constexpr std::uint32_t kNumeric = 1700;
constexpr std::uint32_t kJsonb = 3802;

constexpr const char* kOperations[] = {"created", "updated", "deleted"};

bool is_upper(char c) { return c >= 'A' && c <= 'Z'; }
bool is_lower(char c) { return c >= 'a' && c <= 'z'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

// A model name ("timeEntry", "time_entry", "HTTPLog") as words: split at '_' and '-', before
// an upper-case letter that follows a lower-case letter or digit, and before the last
// capital of an acronym that a lower-case letter follows ("HTTP" "Log").
std::vector<std::string> words_of(const std::string& name) {
    std::vector<std::string> words;
    std::string word;
    for (std::size_t i = 0; i < name.size(); ++i) {
        const char c = name[i];
        if (c == '_' || c == '-') {
            if (!word.empty()) words.push_back(std::move(word));
            word.clear();
            continue;
        }
        if (is_upper(c) && !word.empty()) {
            const char prev = word.back();
            const bool next_lower = i + 1 < name.size() && is_lower(name[i + 1]);
            if (is_lower(prev) || is_digit(prev) || (is_upper(prev) && next_lower)) {
                words.push_back(std::move(word));
                word.clear();
            }
        }
        word += c;
    }
    if (!word.empty()) words.push_back(std::move(word));
    return words;
}

std::string pascal_case(const std::string& name) {
    std::string out;
    for (std::string w : words_of(name)) {
        w[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(w[0])));
        out += w;
    }
    return out;
}

std::string constant_case(const std::string& name) {
    std::string out;
    for (const std::string& w : words_of(name)) {
        if (!out.empty()) out += '_';
        for (char c : w) out += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
    return out;
}

// A TypeScript string literal in single quotes.
std::string ts_string(const std::string& s) {
    static const char* hex = "0123456789abcdef";
    std::string out = "'";
    for (std::size_t i = 0; i < s.size(); ++i) {
        const unsigned char c = static_cast<unsigned char>(s[i]);
        if (c == '\'' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c == '\n') {
            out += "\\n";
        } else if (c == '\r') {
            out += "\\r";
        } else if (c < 0x20 || c == 0x7f) {
            out += "\\x";
            out += hex[c >> 4];
            out += hex[c & 0xf];
        } else if (c == 0xe2 && i + 2 < s.size() && static_cast<unsigned char>(s[i + 1]) == 0x80 &&
                   (static_cast<unsigned char>(s[i + 2]) == 0xa8 || static_cast<unsigned char>(s[i + 2]) == 0xa9)) {
            // U+2028 and U+2029 end a line in older JavaScript parsers.
            out += static_cast<unsigned char>(s[i + 2]) == 0xa8 ? "\\u2028" : "\\u2029";
            i += 2;
        } else {
            out += static_cast<char>(c);
        }
    }
    return out + "'";
}

bool is_identifier(const std::string& s) {
    if (s.empty() || is_digit(s[0])) return false;
    return std::all_of(s.begin(), s.end(),
                       [](char c) { return is_upper(c) || is_lower(c) || is_digit(c) || c == '_' || c == '$'; });
}

// A property name as written in an interface: bare when it is an identifier, else quoted.
std::string property_name(const std::string& column) { return is_identifier(column) ? column : ts_string(column); }

// Text for inside a /** */ comment.
std::string comment_text(std::string s) {
    for (std::size_t at = s.find("*/"); at != std::string::npos; at = s.find("*/", at)) s.replace(at, 2, "*\\/");
    for (char& c : s)
        if (c == '\n' || c == '\r') c = ' ';
    return s;
}

// Words joined and wrapped into "// " comment lines of at most 100 columns.
std::string comment_lines(const std::string& text) {
    std::istringstream in(text);
    std::string out, line, word;
    while (in >> word) {
        if (!line.empty() && line.size() + 1 + word.size() > 97) {
            out += "// " + line + "\n";
            line.clear();
        }
        line += (line.empty() ? "" : " ") + word;
    }
    if (!line.empty()) out += "// " + line + "\n";
    return out;
}

// Everything generated about one model.
struct ModelNames {
    const ModelConfig* model;
    std::string pascal;    // TimeEntry
    std::string constant;  // TIME_ENTRY
    const CatalogTable* table = nullptr;
};

// What `data` and `id` look like for one model.
struct Field {
    std::string name;
    std::string type;      // with "| null" where it can be null
    bool required = true;  // present in every event of the model
    std::string doc;       // empty without a catalog
};

bool always_present(const ModelConfig& model, const CatalogTable* table, const std::string& column) {
    if (!table) return std::find(model.key.begin(), model.key.end(), column) != model.key.end();
    // FULL: updates and deletes carry the whole row. Nothing, or a default identity without
    // a primary key: wal2json sends no UPDATE or DELETE, only INSERTs, which carry every column.
    if (table->replica_identity == 'f' || table->replica_identity == 'n' || table->identity_columns.empty()) return true;
    const auto& ids = table->identity_columns;
    return std::find(ids.begin(), ids.end(), column) != ids.end();
}

std::string column_doc(const CatalogColumn& c) {
    std::string doc = c.sql_type;
    if (c.not_null) doc += ", not null";
    if (c.is_array) doc += "; as a PostgreSQL array literal, e.g. {1,2}";
    else if (c.type_oid == kJson || c.type_oid == kJsonb) doc += "; the JSON text: JSON.parse it";
    else if (c.type_oid == kBytea) doc += "; hex digits, without \\x";
    else if (c.type_kind == 'd') doc += "; a domain: its text form";
    if (null_for_special_numbers(c)) doc += "; NaN and \xC2\xB1Infinity arrive as null";
    return comment_text(doc);
}

Field column_field(const ModelConfig& model, const CatalogTable* table, const CatalogColumn* column,
                   const std::string& name, bool numbers_as_strings) {
    Field f;
    f.name = name;
    f.required = always_present(model, table, name);
    if (!column) {
        f.type = "unknown";
        return f;
    }
    f.type = typescript_type(*column, numbers_as_strings);
    if (!column->not_null || null_for_special_numbers(*column)) f.type += " | null";
    f.doc = column_doc(*column);
    return f;
}

class Problems {
public:
    void add(std::string message) { lines_.push_back(std::move(message)); }
    bool empty() const { return lines_.empty(); }
    Error error() const {
        std::string text;
        for (const auto& l : lines_) text += (text.empty() ? "" : "\n") + l;
        return make_error(text);
    }

private:
    std::vector<std::string> lines_;
};

std::string model_label(const ModelConfig& m) { return "model \"" + m.name + "\" (" + m.schema + "." + m.table + ")"; }

// Names and catalog tables per model, or the reasons they cannot be generated.
Result<std::vector<ModelNames>> resolve_models(const Config& config, const Catalog* catalog) {
    Problems problems;
    std::vector<ModelNames> out;
    // Every exported name, with who took it first: two models must not make the same one,
    // nor a model one of the fixed names.
    std::map<std::string, std::string> taken = {
        {"SOCKET_EVENTS", "walcast"},        {"SocketEventName", "walcast"},   {"WalcastOperation", "walcast"},
        {"WalcastEvent", "walcast"},         {"WalcastBulkEvent", "walcast"},  {"WalcastResync", "walcast"},
        {"JoinProjectOptions", "walcast"},   {"JoinProjectAck", "walcast"},    {"LeaveProjectAck", "walcast"},
        {"ServerToClientEvents", "walcast"}, {"ClientToServerEvents", "walcast"}, {"WalcastSocket", "walcast"},
        {"WalcastModelEvent", "walcast"},    {"WALCAST_RESYNC", "walcast"},    {"JOIN_PROJECT", "walcast"},
        {"LEAVE_PROJECT", "walcast"},        {"Socket", "walcast"},
    };
    std::map<std::string, std::string> events;  // event prefix -> model
    for (const ModelConfig& m : config.models) {
        ModelNames n{&m, pascal_case(m.name), constant_case(m.name)};
        if (n.pascal.empty() || is_digit(n.pascal[0])) {
            problems.add(model_label(m) + ": the name must start with a letter to name TypeScript types (" +
                         (n.pascal.empty() ? std::string("it has none") : "\"" + n.pascal + "Data\" is not an identifier") +
                         ")");
            continue;
        }
        if (auto [it, fresh] = events.emplace(m.name, model_label(m)); !fresh) {
            problems.add(model_label(m) + ": " + it->second + " has the same name: their events (\"" + m.name +
                         ":created\" ...) would need one payload type for two tables");
            continue;
        }
        std::vector<std::string> names = {n.pascal + "Data", n.pascal + "Id", n.pascal + "Event"};
        for (const char* op : kOperations) {
            names.push_back(n.pascal + pascal_case(op) + "Event");
            names.push_back(n.constant + "_" + constant_case(op));
        }
        for (const std::string& name : names) {
            auto [it, fresh] = taken.emplace(name, model_label(m));
            if (!fresh) {
                problems.add(model_label(m) + ": its TypeScript name " + name + " is already " +
                             (it->second == "walcast" ? std::string("one of walcast's own names")
                                                      : "taken by " + it->second) +
                             "; rename one of them");
                break;
            }
        }
        if (catalog) {
            auto t = catalog->tables.find({m.schema, m.table});
            if (t == catalog->tables.end()) {
                problems.add(model_label(m) + ": the table does not exist in the database");
                continue;
            }
            n.table = &t->second;
            for (const std::string& col : m.payload)
                if (!n.table->find(col))
                    problems.add(model_label(m) + ": payload column \"" + col + "\" is not a column of the table");
            for (const std::string& col : m.key)
                if (!n.table->find(col))
                    problems.add(model_label(m) + ": key column \"" + col + "\" is not a column of the table");
        }
        out.push_back(std::move(n));
    }
    if (!problems.empty()) return problems.error();
    return out;
}

std::string header(const Config& config, const TypeScriptOptions& options, const std::string& what,
                   bool with_types) {
    std::string models;
    for (const ModelConfig& m : config.models) models += (models.empty() ? "" : ", ") + m.name;
    if (models.empty()) models = "none";
    std::string text = "Generated by walcast (`walcast codegen typescript`) from " + options.config_path +
                       ", models: " + models + ".";
    std::string types =
        options.catalog
            ? std::string("Column types from the database catalog") +
                  (config.numbers_as_strings ? ", int8 and numeric as strings ([events] numbers_as_strings = true)."
                                             : ", int8 and numeric as numbers ([events] numbers_as_strings = false).")
            : std::string("Column types: unknown (run with --dsn to read them from the database catalog).");
    return comment_lines(text) + comment_lines(what) + (with_types ? comment_lines(types) : std::string()) +
           comment_lines("Do not edit by hand: change the config and run `walcast codegen typescript` again.");
}

std::string id_type(const ModelNames& n, bool numbers_as_strings) {
    const ModelConfig& m = *n.model;
    auto one = [&](const std::string& col) {
        if (!n.table) return std::string("unknown");
        const CatalogColumn* c = n.table->find(col);
        std::string type = typescript_type(*c, numbers_as_strings);
        // null when the column is, or when some event lacks it (a DELETE carries only the identity).
        if (!c->not_null || null_for_special_numbers(*c) || !always_present(m, n.table, col)) type += " | null";
        return type;
    };
    if (m.key.size() == 1) return one(m.key[0]);
    std::string out = "{ ";
    for (const std::string& col : m.key) out += property_name(col) + ": " + one(col) + "; ";
    return out + "}";
}

std::string socket_events(const Config& config, const TypeScriptOptions& options,
                          const std::vector<ModelNames>& models) {
    const bool numbers_as_strings = config.numbers_as_strings;
    std::string o = header(config, options,
                           "Event names, payload types and the typed Socket.IO event maps of walcast.", true);
    o += "\nimport type { Socket } from 'socket.io-client';\n\n";

    o += "/** Socket.IO event names: one per routed model and operation, then walcast's own. */\n";
    o += "export const SOCKET_EVENTS = {\n";
    for (const ModelNames& n : models)
        for (const char* op : kOperations)
            o += "  " + n.constant + "_" + constant_case(op) + ": " + ts_string(n.model->name + ":" + op) + ",\n";
    o += "  /** walcast lost events (see WalcastResync); it closes the connection right after. */\n";
    o += "  WALCAST_RESYNC: 'walcast:resync',\n";
    o += "  /** Client to server: join or leave a project's room. */\n";
    o += "  JOIN_PROJECT: 'join-project',\n";
    o += "  LEAVE_PROJECT: 'leave-project',\n";
    o += "} as const;\n\n";
    o += "export type SocketEventName = (typeof SOCKET_EVENTS)[keyof typeof SOCKET_EVENTS];\n\n";
    o += "/** INSERT, UPDATE and DELETE (an upsert is one of the first two). */\n";
    o += "export type WalcastOperation = 'created' | 'updated' | 'deleted';\n\n";

    o += "// ---- payloads: `data` of each model's events --------------------------------------------\n";
    std::string rule =
        "`data` holds the model's payload columns. A field is optional (?:) when some event of the model "
        "can lack it: a DELETE carries only the columns of the table's replica identity (the whole old "
        "row with REPLICA IDENTITY FULL), and an UPDATE leaves out a TOASTed column it did not change "
        "unless the identity is FULL. Absent is never null: null is a NULL in the row.";
    if (options.catalog)
        rule += " The replica identity and the column types below were read from the database: values are "
                "what wal2json sends, JSON numbers only for int2, int4, int8, oid, float4, float8 and "
                "numeric, booleans only for boolean, every other type (arrays, json, domains, enums) as "
                "its text.";
    else
        rule += " Without the catalog the key columns are taken as the replica identity: they are "
                "required, every other field is optional, and all are unknown.";
    o += comment_lines(rule) + "\n";
    for (const ModelNames& n : models) {
        const ModelConfig& m = *n.model;
        o += "/** " + comment_text(m.schema + "." + m.table) + ": data of " + comment_text(m.name) + " events. */\n";
        if (m.payload.empty()) {
            o += "export type " + n.pascal + "Data = Record<string, never>;\n\n";
        } else {
            o += "export interface " + n.pascal + "Data {\n";
            for (const std::string& col : m.payload) {
                const CatalogColumn* c = n.table ? n.table->find(col) : nullptr;
                const Field f = column_field(m, n.table, c, col, numbers_as_strings);
                if (!f.doc.empty()) o += "  /** " + f.doc + " */\n";
                o += "  " + property_name(f.name) + (f.required ? ": " : "?: ") + f.type + ";\n";
            }
            o += "}\n\n";
        }
        std::string key;
        for (const std::string& k : m.key) key += (key.empty() ? "" : ", ") + k;
        o += "/** `id` of " + comment_text(m.name) + " events: " +
             (m.key.size() > 1 ? "an object of the key columns " : "the key column ") + comment_text(key) + ". */\n";
        o += "export type " + n.pascal + "Id = " + id_type(n, numbers_as_strings) + ";\n\n";
    }

    o += "// ---- events -----------------------------------------------------------------------------\n\n";
    o += "/** One committed row change: the one argument of a `model:operation` event. */\n";
    o += "export interface WalcastEvent<M extends string, O extends WalcastOperation, D, I = unknown> {\n";
    o += "  model: M;\n";
    o += "  operation: O;\n";
    o += "  /** The key column's value (an object of them for a composite key); null when the change lacks it. */\n";
    o += "  id: I;\n";
    o += "  /** Who wrote it (the writer's emit context). */\n";
    o += "  actorUserId: string;\n";
    o += "  /** The row's tenantId column, else the context's; null when neither has one. */\n";
    o += "  tenantId: string | null;\n";
    o += "  /** The row's projectId column, else the context's; null when neither has one. */\n";
    o += "  projectId: string | null;\n";
    o += "  /** Commit end LSN and index in the transaction (\"0/153C6A8:0\"): unique and ordered. Delivery is\n";
    o += "   * at least once: drop an event whose eventId was seen. */\n";
    o += "  eventId: string;\n";
    o += "  /** The commit's end LSN, \"X/Y\". */\n";
    o += "  lsn: string;\n";
    o += "  /** PostgreSQL transaction id. */\n";
    o += "  xid: number;\n";
    o += "  /** Commit time, ISO 8601 in UTC (\"2026-11-26T03:11:59.981011Z\"). */\n";
    o += "  committedAt: string;\n";
    o += "  data: D;\n";
    o += "  bulk?: undefined;\n";
    o += "}\n\n";
    o += comment_lines(
        "A transaction with more than " + std::to_string(config.max_events_per_transaction) +
        " events ([limits] max_events_per_transaction) sends, instead of them, one of these per room and "
        "event name: how many there were, without ids or data. Refetch what it covers.");
    o += "export interface WalcastBulkEvent<M extends string, O extends WalcastOperation> {\n";
    o += "  model: M;\n";
    o += "  operation: O;\n";
    o += "  bulk: true;\n";
    o += "  count: number;\n";
    o += "  /** This, tenantId and projectId are null when the coalesced events disagree. */\n";
    o += "  actorUserId: string | null;\n";
    o += "  tenantId: string | null;\n";
    o += "  projectId: string | null;\n";
    o += "  eventId: string;\n";
    o += "  lsn: string;\n";
    o += "  xid: number;\n";
    o += "  committedAt: string;\n";
    o += "}\n\n";

    std::vector<std::string> all_events;
    for (const ModelNames& n : models) {
        const std::string model = ts_string(n.model->name);
        std::string each;
        for (const char* op : kOperations) {
            const std::string name = n.pascal + pascal_case(op) + "Event";
            o += "export type " + name + " =\n";
            o += "  | WalcastEvent<" + model + ", '" + op + "', " + n.pascal + "Data, " + n.pascal + "Id>\n";
            o += "  | WalcastBulkEvent<" + model + ", '" + op + "'>;\n";
            each += (each.empty() ? "" : " | ") + name;
        }
        o += "export type " + n.pascal + "Event = " + each + ";\n\n";
        all_events.push_back(n.pascal + "Event");
    }
    o += "/** Any model event. */\n";
    if (all_events.empty()) {
        o += "export type WalcastModelEvent = never;\n\n";
    } else {
        o += "export type WalcastModelEvent =\n";
        for (std::size_t i = 0; i < all_events.size(); ++i)
            o += "  | " + all_events[i] + (i + 1 == all_events.size() ? ";\n\n" : "\n");
    }

    o += comment_lines(
        "Sent to every connected client when walcast lost events (a discontinuity of its replication slot); "
        "the connection is closed right after and the reconnect is not recovered: join again and refetch.");
    o += "export interface WalcastResync {\n";
    o += "  /** slot_missing, slot_invalidated, slot_ahead, server_changed or promotion */\n";
    o += "  reason: string;\n";
    o += "  /** LSN after which committed changes were not delivered. */\n";
    o += "  lostAfter: string;\n";
    o += "  detail: string;\n";
    o += "}\n\n";

    o += "// ---- Socket.IO event maps: Socket<ServerToClientEvents, ClientToServerEvents> -----------\n\n";
    o += "export interface JoinProjectOptions {\n";
    o += "  /** From walcast.snapshot() in the transaction that loaded the page: the join then delivers what\n";
    o += "   * that read did not see. */\n";
    o += "  snapshot?: string;\n";
    o += "}\n\n";
    o += "export type JoinProjectAck =\n";
    o += "  | { ok: true; recovered?: boolean }\n";
    o += "  | { ok: false; error: 'forbidden' | 'busy' | 'too many rooms' | 'invalid project id' };\n\n";
    o += "export type LeaveProjectAck = { ok: true } | { ok: false; error: 'invalid project id' };\n\n";
    o += "export interface ServerToClientEvents {\n";
    for (const ModelNames& n : models)
        for (const char* op : kOperations)
            o += "  " + ts_string(n.model->name + ":" + op) + ": (event: " + n.pascal + pascal_case(op) +
                 "Event) => void;\n";
    o += "  'walcast:resync': (resync: WalcastResync) => void;\n";
    o += "}\n\n";
    o += "export interface ClientToServerEvents {\n";
    o += "  'join-project': (\n";
    o += "    ...args:\n";
    o += "      | [projectId: string, ack: (answer: JoinProjectAck) => void]\n";
    o += "      | [projectId: string, options: JoinProjectOptions, ack: (answer: JoinProjectAck) => void]\n";
    o += "  ) => void;\n";
    o += "  'leave-project': (\n";
    o += "    ...args: [projectId: string] | [projectId: string, ack: (answer: LeaveProjectAck) => void]\n";
    o += "  ) => void;\n";
    o += "}\n\n";
    o += "export type WalcastSocket = Socket<ServerToClientEvents, ClientToServerEvents>;\n";
    return o;
}

// The hook's fixed part before the per-model callbacks of UseSocketOptions.
constexpr const char* kHookOptionsHead = R"(
export interface UseSocketOptions {
  /** walcast's URL ("https://realtime.example.com"); default: the page's own origin. */
  url?: string | undefined;
  /** false: no connection (yet), e.g. until the user is signed in. */
  enabled: boolean;
  /**
   * A token for the next connection attempt, asked for on every (re)connection: walcast
   * closes a connection when its token expires, and the reconnect must carry a fresh one.
   * When the promise rejects, socket.io-client tries again after its reconnection delay.
   */
  getToken: () => Promise<string>;
)";

// After the callbacks: onResync, the result, and the hook up to its event subscriptions.
constexpr const char* kHookBody = R"(  /**
   * The app must refetch what it shows: events were missed. Called once per episode, after
   * the project rooms were joined again, so a refetch started then misses nothing. `resync`
   * carries walcast's details when walcast lost events ('walcast:resync'); it is null when
   * a reconnect was not recovered (away longer than walcast's recovery window, walcast
   * restarted without its state) or after `url` or `enabled` changed.
   */
  onResync?: ((resync: WalcastResync | null) => void) | undefined;
}

/** walcast's answer to join-project, or 'cancelled': leaveProjectRoom came first. */
export type JoinProjectResult = JoinProjectAck | { ok: false; error: 'cancelled' };

export interface UseSocketResult {
  /** The socket itself, for anything else; null while disabled. */
  socket: WalcastSocket | null;
  connected: boolean;
  /**
   * Joins the room project:<projectId>, now or as soon as connected. `snapshot` (see
   * JoinProjectOptions) applies to this first join only. Resolves with walcast's answer
   * ('busy' is retried, never returned); a room walcast accepted is joined again by itself
   * after a reconnect that was not recovered.
   */
  joinProjectRoom: (projectId: string, snapshot?: string) => Promise<JoinProjectResult>;
  /** Leaves the room now, or on the next connection when not connected. */
  leaveProjectRoom: (projectId: string) => void;
}

// Recent event ids remembered to drop duplicates: delivery is at least once, and what
// arrives again (after a walcast restart or a resumed session) is recent.
const RECENT_EVENT_IDS = 1024;
// A join answered 'busy' (walcast runs few access checks per user at a time, and after a
// restart every client joins again at once) is asked again after this delay, doubled up to
// the maximum: 'busy' is never a final answer.
const BUSY_RETRY_MS = 500;
const BUSY_RETRY_MAX_MS = 30_000;

/** The last `capacity` ids added, in a ring. */
class RecentIds {
  private readonly capacity: number;
  private readonly ids = new Set<string>();
  private readonly ring: string[] = [];
  private next = 0;

  constructor(capacity: number) {
    this.capacity = capacity;
  }

  /** false when `id` is one of the last `capacity` added. */
  add(id: string): boolean {
    if (this.ids.has(id)) return false;
    if (this.ring.length < this.capacity) {
      this.ring.push(id);
    } else {
      const oldest = this.ring[this.next];
      if (oldest !== undefined) this.ids.delete(oldest);
      this.ring[this.next] = id;
      this.next = (this.next + 1) % this.capacity;
    }
    this.ids.add(id);
    return true;
  }

  clear(): void {
    this.ids.clear();
    this.ring.length = 0;
    this.next = 0;
  }
}

/** A project room the app asked for. */
interface Room {
  /** walcast accepted it on the current connection, or on the session that connection resumed. */
  joined: boolean;
  /** The connection the join was last sent on (0: none yet, or to be sent again). */
  sentOn: number;
  snapshot: string | undefined;
  /** Delay before asking again after 'busy'. */
  retryMs: number;
  /** joinProjectRoom promises waiting for walcast's answer. */
  waiters: Array<(result: JoinProjectResult) => void>;
}

/** Calls an app callback; what it throws is reported without breaking socket.io-client's dispatch. */
function invoke<A>(callback: ((arg: A) => void) | undefined, arg: A): void {
  if (callback === undefined) return;
  try {
    callback(arg);
  } catch (error) {
    setTimeout(() => {
      throw error;
    }, 0);
  }
}

/**
 * What outlives renders and reconnections: the rooms the app wants, recent event ids, and a
 * resync owed to the app. One per hook instance.
 */
class SocketState {
  readonly recent = new RecentIds(RECENT_EVENT_IDS);
  private readonly rooms = new Map<string, Room>();
  /** Rooms left while disconnected: a resumed session would still have them. */
  private readonly leaving = new Set<string>();
  private socket: WalcastSocket | null = null;
  /** Counts connects, of every socket this hook made. */
  private connection = 0;
  /** undefined: nothing owed; null: a reconnect was not recovered; else walcast's resync. */
  private owed: WalcastResync | null | undefined = undefined;

  attach(socket: WalcastSocket | null): void {
    this.socket = socket;
    if (socket !== null) return;
    // The next socket starts a new session: every room is joined again there.
    for (const room of this.rooms.values()) {
      room.joined = false;
      room.sentOn = 0;
    }
  }

  noteResync(resync: WalcastResync): void {
    this.owed = resync;
    // Nothing is delivered twice across a discontinuity, and after one the event ids may
    // start over (another server answers): an old id must not hide a new event.
    this.recent.clear();
  }

  onConnect(socket: WalcastSocket, onResync: (resync: WalcastResync | null) => void): void {
    const first = this.connection === 0;
    this.connection += 1;
    // socket.recovered is undefined, not false, when walcast runs with recovery off.
    const recovered = socket.recovered === true;
    if (!recovered && !first && this.owed === undefined) this.owed = null;
    for (const projectId of this.leaving) socket.emit('leave-project', projectId);
    this.leaving.clear();
    const answers: Array<Promise<JoinProjectResult>> = [];
    for (const [projectId, room] of this.rooms) {
      if (!recovered) {
        room.joined = false;
        // A refetch follows (onResync): the snapshot of the first load is moot.
        if (!first) room.snapshot = undefined;
      }
      if (!room.joined) {
        answers.push(this.wait(room));
        this.send(socket, projectId, room);
      }
    }
    if (this.owed === undefined) return;
    const connection = this.connection;
    void Promise.all(answers).then(() => {
      // Reconnected in between: that connection tells the app once its rooms are back.
      if (connection !== this.connection || this.owed === undefined) return;
      const resync = this.owed;
      this.owed = undefined;
      onResync(resync);
    });
  }

  joinRoom(projectId: string, snapshot: string | undefined): Promise<JoinProjectResult> {
    this.leaving.delete(projectId);
    const room = this.rooms.get(projectId) ?? { joined: false, sentOn: 0, snapshot, retryMs: BUSY_RETRY_MS, waiters: [] };
    this.rooms.set(projectId, room);
    if (room.joined) return Promise.resolve({ ok: true });
    const answer = this.wait(room);
    const socket = this.socket;
    if (socket !== null && socket.connected) this.send(socket, projectId, room);  // else sent by onConnect
    return answer;
  }

  leaveRoom(projectId: string): void {
    const room = this.rooms.get(projectId);
    if (room === undefined) return;
    this.rooms.delete(projectId);
    for (const waiter of room.waiters.splice(0)) waiter({ ok: false, error: 'cancelled' });
    const socket = this.socket;
    if (socket !== null && socket.connected) socket.emit('leave-project', projectId);
    else this.leaving.add(projectId);
  }

  private wait(room: Room): Promise<JoinProjectResult> {
    return new Promise((resolve) => room.waiters.push(resolve));
  }

  private send(socket: WalcastSocket, projectId: string, room: Room): void {
    if (room.sentOn === this.connection) return;  // asked already on this connection
    room.sentOn = this.connection;
    const connection = this.connection;
    const current = () => connection === this.connection && this.rooms.get(projectId) === room;
    const onAnswer = (ack: JoinProjectAck): void => {
      // Left since, or an answer from an earlier connection.
      if (!current()) return;
      if (!ack.ok && ack.error === 'busy') {
        room.sentOn = 0;
        const delay = room.retryMs * (0.5 + Math.random());
        room.retryMs = Math.min(room.retryMs * 2, BUSY_RETRY_MAX_MS);
        setTimeout(() => {
          if (current() && this.socket === socket && socket.connected) this.send(socket, projectId, room);
        }, delay);
        return;
      }
      room.retryMs = BUSY_RETRY_MS;
      if (ack.ok) {
        room.joined = true;
        room.snapshot = undefined;
      } else {
        this.rooms.delete(projectId);
      }
      for (const waiter of room.waiters.splice(0)) waiter(ack);
    };
    if (room.snapshot === undefined) socket.emit('join-project', projectId, onAnswer);
    else socket.emit('join-project', projectId, { snapshot: room.snapshot }, onAnswer);
  }
}

/**
 * walcast's events for this app. Connection-state recovery is socket.io-client's own: the
 * socket lives as long as `url` and `enabled` do not change, and a resumed session gets what
 * it missed. A reconnect that was not recovered (socket.recovered false) re-joins the
 * project rooms and calls onResync.
 */
export function useSocket(options: UseSocketOptions): UseSocketResult {
  const { url, enabled } = options;
  // Callbacks and getToken are read through this ref: new functions on each render must not
  // reconnect.
  const latest = useRef(options);
  useEffect(() => {
    latest.current = options;
  });
  const [state] = useState(() => new SocketState());
  const [socket, setSocket] = useState<WalcastSocket | null>(null);
  const [connected, setConnected] = useState(false);

  useEffect(() => {
    if (!enabled) return undefined;
    // url undefined: socket.io-client connects to the page's origin.
    const s: WalcastSocket = io(url, {
      auth: (send) => {
        Promise.resolve()
          .then(() => latest.current.getToken())
          .then(
            (token) => send({ token }),
            // Drop this attempt: the manager reconnects after its delay and asks again.
            () => s.io.engine.close(),
          );
      },
    });
    const deliver = <E extends { eventId: string }>(event: E, callback: ((event: E) => void) | undefined): void => {
      if (state.recent.add(event.eventId)) invoke(callback, event);
    };
)";

constexpr const char* kHookTail = R"(    s.on(SOCKET_EVENTS.WALCAST_RESYNC, (resync) => state.noteResync(resync));
    s.on('connect', () => {
      setConnected(true);
      state.onConnect(s, (resync) => invoke(latest.current.onResync, resync));
    });
    s.on('disconnect', () => setConnected(false));
    state.attach(s);
    setSocket(s);
    return () => {
      state.attach(null);
      s.off();
      s.disconnect();
      setSocket(null);
      setConnected(false);
    };
  }, [url, enabled, state]);

  const joinProjectRoom = useCallback(
    (projectId: string, snapshot?: string) => state.joinRoom(projectId, snapshot),
    [state],
  );
  const leaveProjectRoom = useCallback((projectId: string) => state.leaveRoom(projectId), [state]);

  return { socket, connected, joinProjectRoom, leaveProjectRoom };
}
)";

std::string use_socket(const Config& config, const TypeScriptOptions& options, const std::vector<ModelNames>& models) {
    std::string o = header(config, options,
                           "useSocket: a React hook for walcast's events, with token refresh, rooms kept across "
                           "reconnects, resync and de-duplication.",
                           false);
    o += "\nimport { useCallback, useEffect, useRef, useState } from 'react';\n";
    o += "import { io } from 'socket.io-client';\n\n";
    o += "import { SOCKET_EVENTS } from './socket-events';\n";
    std::vector<std::string> types = {"JoinProjectAck", "WalcastResync", "WalcastSocket"};
    for (const ModelNames& n : models)
        for (const char* op : kOperations) types.push_back(n.pascal + pascal_case(op) + "Event");
    std::sort(types.begin(), types.end());
    o += "import type {\n";
    for (const std::string& t : types) o += "  " + t + ",\n";
    o += "} from './socket-events';\n";

    o += kHookOptionsHead;
    for (const ModelNames& n : models)
        for (const char* op : kOperations) {
            const std::string type = n.pascal + pascal_case(op) + "Event";
            o += "  on" + n.pascal + pascal_case(op) + "?: ((event: " + type + ") => void) | undefined;\n";
        }
    o += kHookBody;
    for (const ModelNames& n : models)
        for (const char* op : kOperations)
            o += "    s.on(SOCKET_EVENTS." + n.constant + "_" + constant_case(op) + ", (event) => deliver(event, latest.current.on" +
                 n.pascal + pascal_case(op) + "));\n";
    o += kHookTail;
    return o;
}

}  // namespace

const CatalogColumn* CatalogTable::find(const std::string& column) const {
    for (const CatalogColumn& c : columns)
        if (c.name == column) return &c;
    return nullptr;
}

std::string typescript_type(const CatalogColumn& column, bool numbers_as_strings) {
    switch (column.type_oid) {
    case kBool: return "boolean";
    case kInt2:
    case kInt4:
    case kOid:
    case kFloat4:
    case kFloat8: return "number";
    case kInt8:
    case kNumeric: return numbers_as_strings ? "string" : "number";
    default: break;
    }
    if (column.type_kind == 'e' && !column.enum_labels.empty()) {
        std::string out;
        for (const std::string& label : column.enum_labels) out += (out.empty() ? "" : " | ") + ts_string(label);
        return out;
    }
    return "string";
}

bool null_for_special_numbers(const CatalogColumn& column) {
    return column.type_oid == kFloat4 || column.type_oid == kFloat8 || column.type_oid == kNumeric;
}

Result<std::vector<GeneratedFile>> generate_typescript(const Config& config, const TypeScriptOptions& options) {
    auto models = resolve_models(config, options.catalog);
    if (!models) return models.error();
    std::vector<GeneratedFile> files;
    files.push_back({"socket-events.ts", socket_events(config, options, *models)});
    files.push_back({"use-socket.ts", use_socket(config, options, *models)});
    return files;
}

}  // namespace walcast
