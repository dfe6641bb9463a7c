// Loads the daemon config from TOML and parses room templates.
// Pure apart from load_config's one file read; called once at start-up, from one thread.
#include "config/config.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <map>
#include <utility>

#include <toml++/toml.h>

namespace walcast {

namespace {

constexpr std::string_view kContextFields[] = {"actorUserId", "projectId", "tenantId"};

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

std::string_view trim(std::string_view s) {
    while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
    while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
    return s;
}

std::string quoted(std::string_view s) {
    std::string out;
    out.reserve(s.size() + 2);
    out += '"';
    out += s;
    out += '"';
    return out;
}

std::string join(const std::vector<std::string_view>& items) {
    std::string out;
    for (std::string_view item : items) {
        if (!out.empty()) out += ", ";
        out += item;
    }
    return out;
}

// Template errors quote the whole entry: the config line alone may hold several.
Error template_error(std::string_view what, std::string_view text, std::string_view hint = {}) {
    std::string message(what);
    message += " in ";
    message += quoted(text);
    if (!hint.empty()) {
        message += "; ";
        message += hint;
    }
    return make_error(std::move(message));
}

Result<Placeholder> parse_placeholder(std::string_view inner, std::string_view text) {
    const std::string braced = "{" + std::string(inner) + "}";
    if (inner.empty()) return template_error("empty placeholder {}", text);
    // Column names with spaces are legal SQL but "{ projectId }" is far likelier a typo that
    // would silently never resolve, so both are refused.
    for (char c : inner) {
        if (is_space(c) || c == '|') {
            return template_error("placeholder " + braced + " may not contain whitespace or '|'", text);
        }
    }

    Placeholder p;
    const std::size_t dot = inner.find('.');
    if (dot == std::string_view::npos) {
        p.source = Placeholder::Source::RowThenContext;
        p.name = std::string(inner);
        return p;
    }
    const std::string_view prefix = inner.substr(0, dot);
    const std::string_view name = inner.substr(dot + 1);
    if (prefix == "row") {
        p.source = Placeholder::Source::Row;
    } else if (prefix == "ctx") {
        p.source = Placeholder::Source::Context;
    } else {
        return template_error("unknown placeholder prefix " + quoted(std::string(prefix) + "."), text,
                              "use {column}, {row.column} or {ctx.field}");
    }
    if (name.empty()) return template_error("empty name in placeholder " + braced, text);
    if (p.source == Placeholder::Source::Context &&
        std::find(std::begin(kContextFields), std::end(kContextFields), name) ==
            std::end(kContextFields)) {
        return template_error("unknown context field " + quoted(name), text,
                              "context fields are actorUserId, projectId, tenantId");
    }
    p.name = std::string(name);
    return p;
}

Result<RoomAlternative> parse_alternative(std::string_view alt, std::string_view text) {
    RoomAlternative out;
    std::size_t pos = 0;
    while (pos < alt.size()) {
        const std::size_t open = alt.find('{', pos);
        if (open == std::string_view::npos) {
            out.segments.push_back(TemplateSegment{std::string(alt.substr(pos)), std::nullopt});
            break;
        }
        if (open > pos) {
            out.segments.push_back(TemplateSegment{std::string(alt.substr(pos, open - pos)), std::nullopt});
        }
        // Balance was checked over the whole entry, so this '}' exists.
        const std::size_t close = alt.find('}', open);
        auto placeholder = parse_placeholder(alt.substr(open + 1, close - open - 1), text);
        if (!placeholder) return placeholder.error();
        out.segments.push_back(TemplateSegment{std::string(), std::move(*placeholder)});
        pos = close + 1;
    }
    return out;
}

// ---- TOML checking -------------------------------------------------------------------------

std::string_view type_name(toml::node_type type) {
    switch (type) {
        case toml::node_type::table: return "a table";
        case toml::node_type::array: return "an array";
        case toml::node_type::string: return "a string";
        case toml::node_type::integer: return "an integer";
        case toml::node_type::floating_point: return "a float";
        case toml::node_type::boolean: return "a boolean";
        case toml::node_type::date: return "a date";
        case toml::node_type::time: return "a time";
        case toml::node_type::date_time: return "a date-time";
        case toml::node_type::none: break;
    }
    return "nothing";
}

std::size_t line_of(const toml::node& node) { return node.source().begin.line; }

// Edit distance, for "did you mean" on unknown keys; inputs are short key names.
std::size_t distance(std::string_view a, std::string_view b) {
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diagonal = row[0];
        row[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t above = row[j];
            const bool same = std::tolower(static_cast<unsigned char>(a[i - 1])) ==
                              std::tolower(static_cast<unsigned char>(b[j - 1]));
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (same ? 0 : 1)});
            diagonal = above;
        }
    }
    return row[b.size()];
}

struct Section {
    std::string_view name;
    std::vector<std::string_view> keys;
};

const std::vector<Section>& sections() {
    static const std::vector<Section> all = {
        {"postgres", {"dsn", "slot", "message_prefix", "create_slot"}},
        {"server", {"listen", "admin_listen", "ping_interval_ms", "ping_timeout_ms", "max_payload",
                    "connect_timeout_ms", "transports", "cors_origins"}},
        {"auth", {"jwt_secret_file", "tenant_claim", "project_access", "project_access_sql", "audience", "issuer"}},
        {"limits", {"max_events_per_transaction", "max_connections", "max_connections_per_user",
                    "max_access_checks_per_user", "max_rooms_per_client", "max_send_buffer_bytes", "max_line_bytes",
                    "max_detached_sessions", "max_detached_per_user"}},
        {"events", {"numbers_as_strings"}},
        {"recovery", {"window_seconds", "max_bytes", "state_dir"}},
        {"cluster", {"redis", "stream", "max_len", "password_file"}},
    };
    return all;
}

const std::vector<std::string_view> kModelKeys = {"table", "name", "rooms", "payload", "key"};

// Collects every problem in the file, so one run of `walcast check` lists them all; they are
// reported in line order because toml++ iterates a table's keys sorted by name.
class Checker {
public:
    explicit Checker(std::string_view origin) : origin_(origin) {}

    void report(std::size_t line, std::string_view path, std::string_view message) {
        problems_.push_back({line, std::string(path) + ": " + std::string(message)});
    }

    bool failed() const { return !problems_.empty(); }

    Error error() {
        std::stable_sort(problems_.begin(), problems_.end(),
                         [](const Problem& a, const Problem& b) { return a.line < b.line; });
        std::string message;
        for (const Problem& p : problems_) {
            if (!message.empty()) message += '\n';
            message += origin_ + ":" + std::to_string(p.line) + ": " + p.text;
        }
        return make_error(std::move(message));
    }

    void check_keys(const toml::table& table, const std::string& path,
                    const std::vector<std::string_view>& allowed) {
        for (auto&& [key, value] : table) {
            (void)value;
            const std::string_view name = key.str();
            if (std::find(allowed.begin(), allowed.end(), name) != allowed.end()) continue;
            std::string message = "unknown key";
            if (auto guess = closest(name, allowed)) message += " (did you mean " + quoted(*guess) + "?)";
            message += "; allowed keys: " + join(allowed);
            report(key.source().begin.line, path + "." + std::string(name), message);
        }
    }

    // Each reader leaves `out` untouched and reports when the value has the wrong type.
    bool read(const toml::node& node, const std::string& path, std::string& out) {
        if (const auto* s = node.as_string()) {
            out = s->get();
            return true;
        }
        wrong_type(node, path, "a string");
        return false;
    }

    bool read(const toml::node& node, const std::string& path, bool& out) {
        if (const auto* b = node.as_boolean()) {
            out = b->get();
            return true;
        }
        wrong_type(node, path, "a boolean (true or false)");
        return false;
    }

    bool read(const toml::node& node, const std::string& path, std::int64_t& out) {
        if (const auto* i = node.as_integer()) {
            out = i->get();
            return true;
        }
        wrong_type(node, path, "an integer");
        return false;
    }

    // An array of strings; `unique` and non-empty elements are checked here, emptiness of the
    // array itself by the caller since its meaning differs per key.
    bool read_names(const toml::node& node, const std::string& path, std::vector<std::string>& out) {
        const auto* array = node.as_array();
        if (!array) {
            wrong_type(node, path, "an array of strings");
            return false;
        }
        bool ok = true;
        std::vector<std::string> names;
        for (std::size_t i = 0; i < array->size(); ++i) {
            const toml::node& element = *array->get(i);
            const std::string element_path = path + "[" + std::to_string(i + 1) + "]";
            std::string name;
            if (!read(element, element_path, name)) {
                ok = false;
            } else if (name.empty()) {
                report(line_of(element), element_path, "must not be empty");
                ok = false;
            } else if (std::find(names.begin(), names.end(), name) != names.end()) {
                report(line_of(element), element_path, quoted(name) + " is listed twice");
                ok = false;
            }
            names.push_back(std::move(name));
        }
        if (ok) out = std::move(names);
        return ok;
    }

    void wrong_type(const toml::node& node, const std::string& path, std::string_view expected) {
        report(line_of(node), path,
               "expected " + std::string(expected) + ", got " + std::string(type_name(node.type())));
    }

private:
    struct Problem {
        std::size_t line;
        std::string text;
    };

    static std::optional<std::string_view> closest(std::string_view name,
                                                   const std::vector<std::string_view>& allowed) {
        std::optional<std::string_view> best;
        std::size_t best_distance = 3;  // further than two edits is not a typo
        for (std::string_view candidate : allowed) {
            const std::size_t d = distance(name, candidate);
            if (d < best_distance && d < candidate.size()) {
                best = candidate;
                best_distance = d;
            }
        }
        return best;
    }

    std::string origin_;
    std::vector<Problem> problems_;
};

bool valid_slot_name(std::string_view slot) {
    // PostgreSQL's own rule (ReplicationSlotValidateName): [a-z0-9_], at most NAMEDATALEN-1.
    if (slot.empty() || slot.size() > 63) return false;
    return std::all_of(slot.begin(), slot.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
    });
}

bool valid_listen(std::string_view listen) {
    const std::size_t colon = listen.rfind(':');
    if (colon == std::string_view::npos || colon == 0) return false;
    const std::string_view port = listen.substr(colon + 1);
    if (port.empty() || port.size() > 5) return false;
    if (!std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; })) return false;
    const long number = std::stol(std::string(port));
    return number >= 1 && number <= 65535;
}

bool valid_model_name(std::string_view name) {
    return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '_' || c == '-';
    });
}

void read_postgres(Checker& check, const toml::table& t, Config& cfg) {
    if (const auto* v = t.get("dsn")) check.read(*v, "postgres.dsn", cfg.dsn);
    if (const auto* v = t.get("slot")) {
        std::string slot;
        if (check.read(*v, "postgres.slot", slot)) {
            if (valid_slot_name(slot)) {
                cfg.slot = std::move(slot);
            } else {
                check.report(line_of(*v), "postgres.slot",
                             "invalid replication slot name " + quoted(slot) +
                                 "; use lower case letters, digits and '_' (at most 63)");
            }
        }
    }
    if (const auto* v = t.get("message_prefix")) {
        std::string prefix;
        if (check.read(*v, "postgres.message_prefix", prefix)) {
            if (prefix.empty()) {
                check.report(line_of(*v), "postgres.message_prefix", "must not be empty");
            } else {
                cfg.message_prefix = std::move(prefix);
            }
        }
    }
    if (const auto* v = t.get("create_slot")) {
        std::string mode;
        if (check.read(*v, "postgres.create_slot", mode)) {
            if (mode == "always") cfg.create_slot = CreateSlot::Always;
            else if (mode == "first-start") cfg.create_slot = CreateSlot::FirstStart;
            else if (mode == "never") cfg.create_slot = CreateSlot::Never;
            else
                check.report(line_of(*v), "postgres.create_slot",
                             "must be \"always\", \"first-start\" or \"never\", got " + quoted(mode));
        }
    }
}

void read_listen(Checker& check, const toml::table& t, std::string_view key, std::string& out) {
    const auto* v = t.get(key);
    if (!v) return;
    const std::string path = "server." + std::string(key);
    std::string listen;
    if (!check.read(*v, path, listen)) return;
    if (valid_listen(listen)) out = std::move(listen);
    else check.report(line_of(*v), path, "expected \"host:port\" (e.g. \"127.0.0.1:8787\"), got " + quoted(listen));
}

void read_count(Checker& check, const toml::table& t, std::string_view section, std::string_view key, std::int64_t min,
                std::string_view expected, std::size_t& out);

void read_server(Checker& check, const toml::table& t, Config& cfg) {
    read_listen(check, t, "listen", cfg.listen);
    read_listen(check, t, "admin_listen", cfg.admin_listen);
    read_count(check, t, "server", "ping_interval_ms", 1, "a positive number of milliseconds", cfg.ping_interval_ms);
    read_count(check, t, "server", "ping_timeout_ms", 1, "a positive number of milliseconds", cfg.ping_timeout_ms);
    read_count(check, t, "server", "max_payload", 1024, "at least 1024 bytes", cfg.max_payload);
    read_count(check, t, "server", "connect_timeout_ms", 1, "a positive number of milliseconds", cfg.connect_timeout_ms);
    if (const auto* v = t.get("transports")) {
        std::vector<std::string> transports;
        if (check.read_names(*v, "server.transports", transports)) {
            bool ok = !transports.empty();
            if (!ok) check.report(line_of(*v), "server.transports", "must list \"polling\", \"websocket\" or both");
            for (const std::string& name : transports)
                if (name != "polling" && name != "websocket") {
                    check.report(line_of(*v), "server.transports",
                                 "unknown transport " + quoted(name) + "; use \"polling\" and/or \"websocket\"");
                    ok = false;
                }
            if (ok) cfg.transports = std::move(transports);
        }
    }
    if (const auto* v = t.get("cors_origins")) {
        std::vector<std::string> origins;
        if (check.read_names(*v, "server.cors_origins", origins)) {
            bool ok = true;
            for (const std::string& origin : origins)
                if (origin.rfind("http://", 0) != 0 && origin.rfind("https://", 0) != 0) {
                    check.report(line_of(*v), "server.cors_origins",
                                 "an origin is \"scheme://host[:port]\" (e.g. \"https://app.example.com\"), got " +
                                     quoted(origin));
                    ok = false;
                } else if (origin.back() == '/') {
                    check.report(line_of(*v), "server.cors_origins",
                                 quoted(origin) + " ends with '/'; an origin has no path");
                    ok = false;
                }
            if (ok) cfg.cors_origins = std::move(origins);
        }
    }
}

void read_auth(Checker& check, const toml::table& t, Config& cfg) {
    // jwt_secret_file may stay empty: WALCAST_JWT_SECRET can supply the secret instead.
    if (const auto* v = t.get("jwt_secret_file")) check.read(*v, "auth.jwt_secret_file", cfg.jwt_secret_file);
    if (const auto* v = t.get("tenant_claim")) {
        std::string claim;
        if (check.read(*v, "auth.tenant_claim", claim)) {
            if (claim.empty()) {
                check.report(line_of(*v), "auth.tenant_claim", "must not be empty");
            } else {
                cfg.tenant_claim = std::move(claim);
            }
        }
    }
    if (const auto* v = t.get("project_access")) {
        std::string access;
        if (check.read(*v, "auth.project_access", access)) {
            if (access == "query" || access == "token") {
                cfg.project_access = std::move(access);
            } else {
                check.report(line_of(*v), "auth.project_access",
                             "must be \"query\" or \"token\", got " + quoted(access));
            }
        }
    }
    if (const auto* v = t.get("project_access_sql")) {
        std::string sql;
        if (check.read(*v, "auth.project_access_sql", sql)) {
            if (trim(sql).empty()) {
                check.report(line_of(*v), "auth.project_access_sql", "must not be empty");
            } else {
                cfg.project_access_sql = std::move(sql);
            }
        }
    }
    if (const auto* v = t.get("audience")) check.read(*v, "auth.audience", cfg.audience);
    if (const auto* v = t.get("issuer")) check.read(*v, "auth.issuer", cfg.issuer);
}

// Reads the integer at `section`.`key`, if present, into `out` when it is at least `min`;
// otherwise reports what it must be (`expected`, e.g. "a positive integer").
void read_count(Checker& check, const toml::table& t, std::string_view section, std::string_view key, std::int64_t min,
                std::string_view expected, std::size_t& out) {
    const auto* v = t.get(key);
    if (!v) return;
    const std::string path = std::string(section) + "." + std::string(key);
    std::int64_t n = 0;
    if (!check.read(*v, path, n)) return;
    if (n >= min) out = static_cast<std::size_t>(n);
    else check.report(line_of(*v), path, "must be " + std::string(expected) + ", got " + std::to_string(n));
}

void read_limits(Checker& check, const toml::table& t, Config& cfg) {
    read_count(check, t, "limits", "max_events_per_transaction", 1, "a positive integer", cfg.max_events_per_transaction);
    read_count(check, t, "limits", "max_connections", 0, "0 (as many as the open-file limit allows) or more",
               cfg.max_connections);
    read_count(check, t, "limits", "max_connections_per_user", 1, "a positive integer", cfg.max_connections_per_user);
    read_count(check, t, "limits", "max_access_checks_per_user", 1, "a positive integer", cfg.max_access_checks_per_user);
    read_count(check, t, "limits", "max_rooms_per_client", 1, "a positive integer", cfg.max_rooms_per_client);
    read_count(check, t, "limits", "max_send_buffer_bytes", 65536, "at least 65536", cfg.max_send_buffer_bytes);
    read_count(check, t, "limits", "max_line_bytes", 4096, "at least 4096", cfg.max_line_bytes);
    read_count(check, t, "limits", "max_detached_sessions", 0, "0 (none kept) or more", cfg.max_detached_sessions);
    read_count(check, t, "limits", "max_detached_per_user", 0, "0 (none kept) or more", cfg.max_detached_per_user);
}

void read_events(Checker& check, const toml::table& t, Config& cfg) {
    if (const auto* v = t.get("numbers_as_strings")) check.read(*v, "events.numbers_as_strings", cfg.numbers_as_strings);
}

void read_recovery(Checker& check, const toml::table& t, Config& cfg) {
    read_count(check, t, "recovery", "window_seconds", 0, "0 (off) or more", cfg.recovery_window_seconds);
    read_count(check, t, "recovery", "max_bytes", 1, "a positive integer", cfg.recovery_max_bytes);
    if (const auto* v = t.get("state_dir")) check.read(*v, "recovery.state_dir", cfg.state_dir);
}

void read_cluster(Checker& check, const toml::table& t, Config& cfg) {
    if (const auto* v = t.get("redis")) {
        std::string url;
        if (check.read(*v, "cluster.redis", url)) {
            if (auto parsed = parse_redis_url(url); parsed) cfg.redis = std::move(url);
            else check.report(line_of(*v), "cluster.redis", parsed.error().message);
        }
    } else {
        check.report(line_of(t), "cluster.redis", "required key missing (redis://host:port/db or unix:///path)");
    }
    if (const auto* v = t.get("stream")) {
        std::string stream;
        if (check.read(*v, "cluster.stream", stream)) {
            if (stream.empty()) check.report(line_of(*v), "cluster.stream", "must not be empty");
            else cfg.stream = std::move(stream);
        }
    }
    read_count(check, t, "cluster", "max_len", 100, "at least 100", cfg.max_len);
    if (const auto* v = t.get("password_file")) check.read(*v, "cluster.password_file", cfg.password_file);
}

struct RoutedTable {
    std::size_t model;  // 1-based, as in messages
    std::size_t line;
};

// Returns the model only when every key of this [[model]] is valid.
std::optional<ModelConfig> read_model(Checker& check, const toml::table& t, std::size_t index,
                                      std::map<std::string, RoutedTable>& routed) {
    const std::string path = "model[" + std::to_string(index) + "]";
    check.check_keys(t, path, kModelKeys);
    ModelConfig model;
    bool ok = true;
    auto missing = [&](std::string_view key) {
        check.report(line_of(t), path + "." + std::string(key), "required key missing");
        ok = false;
    };

    if (const auto* v = t.get("table")) {
        std::string qualified;
        if (!check.read(*v, path + ".table", qualified)) {
            ok = false;
        } else {
            const std::size_t dot = qualified.find('.');
            const bool one_dot = dot != std::string::npos && qualified.find('.', dot + 1) == std::string::npos;
            if (!one_dot || dot == 0 || dot + 1 == qualified.size()) {
                check.report(line_of(*v), path + ".table",
                             "expected \"schema.table\" (e.g. \"public.Task\"), got " + quoted(qualified));
                ok = false;
            } else {
                model.schema = qualified.substr(0, dot);
                model.table = qualified.substr(dot + 1);
                auto [it, inserted] = routed.emplace(qualified, RoutedTable{index, line_of(*v)});
                if (!inserted) {
                    check.report(line_of(*v), path + ".table",
                                 quoted(qualified) + " is already routed by model[" +
                                     std::to_string(it->second.model) + "] at line " +
                                     std::to_string(it->second.line) + "; a table may appear in one [[model]] only");
                    ok = false;
                }
            }
        }
    } else {
        missing("table");
    }

    if (const auto* v = t.get("name")) {
        if (!check.read(*v, path + ".name", model.name)) {
            ok = false;
        } else if (!valid_model_name(model.name)) {
            check.report(line_of(*v), path + ".name",
                         "expected letters, digits, '_' or '-' (the event is \"<name>:created\"), got " +
                             quoted(model.name));
            ok = false;
        }
    } else {
        missing("name");
    }

    if (const auto* v = t.get("rooms")) {
        const auto* array = v->as_array();
        if (!array) {
            check.wrong_type(*v, path + ".rooms", "an array of strings");
            ok = false;
        } else if (array->empty()) {
            check.report(line_of(*v), path + ".rooms", "must list at least one room");
            ok = false;
        } else {
            for (std::size_t i = 0; i < array->size(); ++i) {
                const toml::node& element = *array->get(i);
                const std::string element_path = path + ".rooms[" + std::to_string(i + 1) + "]";
                std::string text;
                if (!check.read(element, element_path, text)) {
                    ok = false;
                    continue;
                }
                auto parsed = parse_room_template(text);
                if (!parsed) {
                    check.report(line_of(element), element_path, parsed.error().message);
                    ok = false;
                    continue;
                }
                model.rooms.push_back(std::move(*parsed));
            }
        }
    } else {
        missing("rooms");
    }

    model.key = {"id"};
    if (const auto* v = t.get("key")) {
        std::vector<std::string> key;
        if (!check.read_names(*v, path + ".key", key)) {
            ok = false;
        } else if (key.empty()) {
            check.report(line_of(*v), path + ".key", "must name at least one column");
            ok = false;
        } else {
            model.key = std::move(key);
        }
    }

    if (const auto* v = t.get("payload")) {
        // An empty payload is allowed: such events carry only `id` and an empty `data`.
        if (!check.read_names(*v, path + ".payload", model.payload)) ok = false;
    } else {
        model.payload = model.key;
    }

    if (!ok) return std::nullopt;
    return model;
}

void read_models(Checker& check, const toml::node& node, Config& cfg) {
    const auto* array = node.as_array();
    if (!array) {
        const std::string_view got = node.is_table() ? "a single [model] table" : type_name(node.type());
        check.report(line_of(node), "model",
                     "expected [[model]] entries (an array of tables), got " + std::string(got));
        return;
    }
    std::map<std::string, RoutedTable> routed;
    for (std::size_t i = 0; i < array->size(); ++i) {
        const toml::node& element = *array->get(i);
        const std::string path = "model[" + std::to_string(i + 1) + "]";
        const auto* table = element.as_table();
        if (!table) {
            check.wrong_type(element, path, "a table");
            continue;
        }
        if (auto model = read_model(check, *table, i + 1, routed)) cfg.models.push_back(std::move(*model));
    }
}

void read_root(Checker& check, const toml::table& root, Config& cfg) {
    std::vector<std::string_view> section_names;
    for (const Section& s : sections()) section_names.push_back(s.name);
    section_names.push_back("model");

    for (auto&& [key, value] : root) {
        const std::string name(key.str());
        const std::size_t line = key.source().begin.line;
        if (name == "model") {
            read_models(check, value, cfg);
            continue;
        }
        const auto known = std::find_if(sections().begin(), sections().end(),
                                        [&](const Section& s) { return s.name == name; });
        if (known != sections().end()) {
            const auto* table = value.as_table();
            if (!table) {
                check.wrong_type(value, name, "a table ([" + name + "])");
                continue;
            }
            check.check_keys(*table, name, known->keys);
            if (name == "postgres") read_postgres(check, *table, cfg);
            else if (name == "server") read_server(check, *table, cfg);
            else if (name == "auth") read_auth(check, *table, cfg);
            else if (name == "limits") read_limits(check, *table, cfg);
            else if (name == "events") read_events(check, *table, cfg);
            else if (name == "recovery") read_recovery(check, *table, cfg);
            else if (name == "cluster") read_cluster(check, *table, cfg);
            continue;
        }
        if (value.is_table() || value.is_array_of_tables()) {
            check.report(line, name, "unknown section; allowed sections: " + join(section_names));
            continue;
        }
        // A bare key above the first [section] usually belongs in one: say which.
        std::string message = "unknown top-level key";
        for (const Section& s : sections()) {
            if (std::find(s.keys.begin(), s.keys.end(), name) != s.keys.end()) {
                message += " (it belongs in [" + std::string(s.name) + "])";
            }
        }
        message += "; allowed sections: " + join(section_names);
        check.report(line, name, message);
    }
}

std::string model_key(std::string_view schema, std::string_view table) {
    // '\0' cannot occur in an SQL identifier, so no two (schema, table) pairs collide.
    std::string key;
    key.reserve(schema.size() + 1 + table.size());
    key.append(schema);
    key.push_back('\0');
    key.append(table);
    return key;
}

}  // namespace

Result<RedisAddress> parse_redis_url(std::string_view url) {
    RedisAddress a;
    auto number = [](std::string_view s, unsigned long max, unsigned long& out) {
        if (s.empty() || s.size() > 10) return false;
        out = 0;
        for (char c : s) {
            if (c < '0' || c > '9') return false;
            out = out * 10 + static_cast<unsigned long>(c - '0');
        }
        return out <= max;
    };
    unsigned long n = 0;
    if (url.rfind("unix://", 0) == 0) {
        std::string_view rest = url.substr(7);
        const auto q = rest.find('?');
        a.path = std::string(rest.substr(0, q));
        if (a.path.empty() || a.path[0] != '/') return make_error("a unix:// Redis URL needs an absolute path, got " + quoted(url));
        if (q != std::string_view::npos) {
            const std::string_view query = rest.substr(q + 1);
            if (query.rfind("db=", 0) != 0 || !number(query.substr(3), 1000000, n))
                return make_error("a unix:// Redis URL takes only ?db=N, got " + quoted(url));
            a.db = static_cast<unsigned>(n);
        }
        return a;
    }
    if (url.rfind("redis://", 0) != 0) return make_error("expected redis://host:port/db or unix:///path, got " + quoted(url));
    std::string_view rest = url.substr(8);
    if (rest.find('@') != std::string_view::npos)
        return make_error("put the Redis password in [cluster] password_file, not in the URL");
    const auto slash = rest.find('/');
    std::string_view hostport = rest.substr(0, slash);
    if (slash != std::string_view::npos && slash + 1 < rest.size()) {
        if (!number(rest.substr(slash + 1), 1000000, n)) return make_error("bad database number in " + quoted(url));
        a.db = static_cast<unsigned>(n);
    }
    const auto colon = hostport.rfind(':');
    if (colon != std::string_view::npos && hostport.find(']') == std::string_view::npos) {
        if (!number(hostport.substr(colon + 1), 65535, n) || n == 0) return make_error("bad port in " + quoted(url));
        a.port = static_cast<std::uint16_t>(n);
        hostport = hostport.substr(0, colon);
    }
    if (hostport.empty()) return make_error("no host in " + quoted(url));
    a.host = std::string(hostport);
    return a;
}

Result<RoomTemplate> parse_room_template(std::string_view text) {
    if (trim(text).empty()) return make_error("empty room template");

    // Pass 1: braces must pair up without nesting; '|' splits alternatives only outside braces.
    std::vector<std::string_view> alternatives;
    std::size_t start = 0;
    bool inside = false;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (c == '{') {
            if (inside) return template_error("nested '{'", text);
            inside = true;
        } else if (c == '}') {
            if (!inside) return template_error("unbalanced '}'", text);
            inside = false;
        } else if (c == '|' && !inside) {
            alternatives.push_back(text.substr(start, i - start));
            start = i + 1;
        }
    }
    if (inside) return template_error("unbalanced '{'", text);
    alternatives.push_back(text.substr(start));

    RoomTemplate out;
    out.source = std::string(text);
    for (std::string_view alt : alternatives) {
        alt = trim(alt);
        if (alt.empty()) return template_error("empty alternative", text);
        auto parsed = parse_alternative(alt, text);
        if (!parsed) return parsed.error();
        out.alternatives.push_back(std::move(*parsed));
    }
    return out;
}

const ModelConfig* Config::find_model(std::string_view schema, std::string_view table) const {
    const auto it = model_index_.find(model_key(schema, table));
    return it == model_index_.end() ? nullptr : &models[it->second];
}

void Config::index_models() {
    model_index_.clear();
    // parse_config refuses duplicates; for hand-built configs the first entry wins.
    for (std::size_t i = 0; i < models.size(); ++i) {
        model_index_.emplace(model_key(models[i].schema, models[i].table), i);
    }
}

Result<Config> parse_config(std::string_view text, std::string_view origin) {
    toml::table root;
    const std::string origin_str(origin);
#if TOML_EXCEPTIONS
    try {
        root = toml::parse(text, std::string_view(origin_str));
    } catch (const toml::parse_error& e) {
        return make_error(origin_str + ":" + std::to_string(e.source().begin.line) + ":" +
                          std::to_string(e.source().begin.column) + ": invalid TOML: " +
                          std::string(e.description()));
    }
#else
    toml::parse_result parsed = toml::parse(text, std::string_view(origin_str));
    if (!parsed) {
        const toml::parse_error& e = parsed.error();
        return make_error(origin_str + ":" + std::to_string(e.source().begin.line) + ":" +
                          std::to_string(e.source().begin.column) + ": invalid TOML: " +
                          std::string(e.description()));
    }
    root = std::move(parsed).table();
#endif

    Checker check(origin);
    Config cfg;
    read_root(check, root, cfg);
    if (check.failed()) return check.error();
    cfg.index_models();
    return cfg;
}

Result<Config> load_config(const std::string& path) {
    std::FILE* file = std::fopen(path.c_str(), "rb");
    if (!file) {
        return make_error("cannot open config file " + quoted(path) + ": " + std::strerror(errno));
    }
    std::string text;
    char buffer[8192];
    std::size_t n = 0;
    while ((n = std::fread(buffer, 1, sizeof buffer, file)) > 0) text.append(buffer, n);
    const bool failed = std::ferror(file) != 0;
    const int error = errno;  // fclose may overwrite it
    std::fclose(file);
    if (failed) {
        return make_error("cannot read config file " + quoted(path) + ": " + std::strerror(error));
    }
    return parse_config(text, path);
}

}  // namespace walcast
