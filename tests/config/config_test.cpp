// Tests for config/config: room template parsing, TOML loading with its user-facing error
// messages, model lookup, and the shipped examples/walcast.toml against the reference schema.
#include "config/config.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

using namespace walcast;

namespace {

// Config snippets are written as R"(\n...)": dropping that first newline makes line 1 of
// the snippet line 1 of the file, so the line numbers in expected messages can be read off.
std::string_view snippet(std::string_view text) {
    if (!text.empty() && text.front() == '\n') text.remove_prefix(1);
    return text;
}

Config parse_ok(std::string_view text) {
    auto result = parse_config(snippet(text), "walcast.toml");
    INFO((result.ok() ? std::string() : result.error().message));
    REQUIRE(result.ok());
    return *result;
}

std::string error_of(std::string_view text) {
    auto result = parse_config(snippet(text), "walcast.toml");
    REQUIRE_FALSE(result.ok());
    return result.error().message;
}

std::string template_error(std::string_view text) {
    auto result = parse_room_template(text);
    REQUIRE_FALSE(result.ok());
    return result.error().message;
}

bool is_literal(const TemplateSegment& s, std::string_view text) {
    return !s.placeholder && s.literal == text;
}

bool is_placeholder(const TemplateSegment& s, Placeholder::Source source, std::string_view name) {
    return s.placeholder && s.literal.empty() && s.placeholder->source == source &&
           s.placeholder->name == name;
}

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    REQUIRE_MESSAGE(in, "cannot open " << path);
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
}

// Table name -> column names, from the CREATE TABLE statements of app-schema.sql. Enough SQL
// for that file: quoted or bare names, parentheses inside types such as numeric(12,2).
std::map<std::string, std::vector<std::string>> schema_columns(const std::string& sql) {
    std::map<std::string, std::vector<std::string>> tables;
    std::size_t pos = 0;
    while ((pos = sql.find("CREATE TABLE", pos)) != std::string::npos) {
        const std::size_t name_begin = sql.find('"', pos) + 1;
        const std::size_t name_end = sql.find('"', name_begin);
        const std::string table = sql.substr(name_begin, name_end - name_begin);
        std::size_t i = sql.find('(', name_end) + 1;
        int depth = 0;
        std::string item;
        std::vector<std::string> items;
        for (; i < sql.size(); ++i) {
            const char c = sql[i];
            if (c == '(') ++depth;
            if (c == ')' && depth-- == 0) break;
            if (c == ',' && depth == 0) {
                items.push_back(item);
                item.clear();
            } else {
                item += c;
            }
        }
        items.push_back(item);
        for (std::string& column : items) {
            const std::size_t begin = column.find_first_not_of(" \n\t");
            if (column[begin] == '"') {
                tables[table].push_back(column.substr(begin + 1, column.find('"', begin + 1) - begin - 1));
            } else {
                tables[table].push_back(column.substr(begin, column.find(' ', begin) - begin));
            }
        }
        pos = i;
    }
    return tables;
}

const char* const kTask = R"(
[[model]]
table = "public.Task"
name = "task"
rooms = ["project:{projectId}"]
)";

}  // namespace

TEST_SUITE("room template") {
    using Source = Placeholder::Source;

    TEST_CASE("{col} reads the row, then the context") {
        auto t = parse_room_template("project:{projectId}");
        REQUIRE(t.ok());
        CHECK(t->source == "project:{projectId}");
        REQUIRE(t->alternatives.size() == 1);
        const auto& segments = t->alternatives[0].segments;
        REQUIRE(segments.size() == 2);
        CHECK(is_literal(segments[0], "project:"));
        CHECK(is_placeholder(segments[1], Source::RowThenContext, "projectId"));
    }

    TEST_CASE("{row.col} reads the row only") {
        auto t = parse_room_template("user:{row.userId}");
        REQUIRE(t.ok());
        const auto& segments = t->alternatives.at(0).segments;
        REQUIRE(segments.size() == 2);
        CHECK(is_placeholder(segments[1], Source::Row, "userId"));
    }

    TEST_CASE("{ctx.field} reads the context only, for each context field") {
        for (std::string field : {"actorUserId", "projectId", "tenantId"}) {
            CAPTURE(field);
            auto t = parse_room_template("x:{ctx." + field + "}");
            REQUIRE(t.ok());
            const auto& segments = t->alternatives.at(0).segments;
            REQUIRE(segments.size() == 2);
            CHECK(is_placeholder(segments[1], Source::Context, field));
        }
    }

    TEST_CASE("alternatives split on '|' with surrounding whitespace trimmed") {
        auto t = parse_room_template("  project:{projectId}   |\tuser:{userId} ");
        REQUIRE(t.ok());
        CHECK(t->source == "  project:{projectId}   |\tuser:{userId} ");
        REQUIRE(t->alternatives.size() == 2);
        const auto& first = t->alternatives[0].segments;
        const auto& second = t->alternatives[1].segments;
        REQUIRE(first.size() == 2);
        REQUIRE(second.size() == 2);
        CHECK(is_literal(first[0], "project:"));
        CHECK(is_placeholder(first[1], Source::RowThenContext, "projectId"));
        CHECK(is_literal(second[0], "user:"));
        CHECK(is_placeholder(second[1], Source::RowThenContext, "userId"));
    }

    TEST_CASE("literal segments are kept exactly, inner spaces included") {
        auto t = parse_room_template("org {tenantId}-{row.id}:x y");
        REQUIRE(t.ok());
        const auto& s = t->alternatives.at(0).segments;
        REQUIRE(s.size() == 5);
        CHECK(is_literal(s[0], "org "));
        CHECK(is_placeholder(s[1], Source::RowThenContext, "tenantId"));
        CHECK(is_literal(s[2], "-"));
        CHECK(is_placeholder(s[3], Source::Row, "id"));
        CHECK(is_literal(s[4], ":x y"));
    }

    TEST_CASE("adjacent placeholders and literal-only rooms") {
        auto t = parse_room_template("{ctx.tenantId}{id}");
        REQUIRE(t.ok());
        const auto& s = t->alternatives.at(0).segments;
        REQUIRE(s.size() == 2);
        CHECK(is_placeholder(s[0], Source::Context, "tenantId"));
        CHECK(is_placeholder(s[1], Source::RowThenContext, "id"));

        auto fixed = parse_room_template("everyone");
        REQUIRE(fixed.ok());
        REQUIRE(fixed->alternatives.at(0).segments.size() == 1);
        CHECK(is_literal(fixed->alternatives[0].segments[0], "everyone"));
    }

    TEST_CASE("a dot after the prefix belongs to the column name") {
        auto t = parse_room_template("{row.a.b}");
        REQUIRE(t.ok());
        CHECK(is_placeholder(t->alternatives.at(0).segments.at(0), Source::Row, "a.b"));
    }

    TEST_CASE("errors quote the template") {
        CHECK(template_error("project:{id") == "unbalanced '{' in \"project:{id\"");
        CHECK(template_error("project:id}") == "unbalanced '}' in \"project:id}\"");
        CHECK(template_error("project:{a{b}}") == "nested '{' in \"project:{a{b}}\"");
        CHECK(template_error("project:{}") == "empty placeholder {} in \"project:{}\"");
        CHECK(template_error("x:{foo.bar}") ==
              "unknown placeholder prefix \"foo.\" in \"x:{foo.bar}\"; use {column}, {row.column} or {ctx.field}");
        CHECK(template_error("x:{ctx.nope}") ==
              "unknown context field \"nope\" in \"x:{ctx.nope}\"; context fields are actorUserId, projectId, tenantId");
        CHECK(template_error("x:{ctx.projectid}") ==
              "unknown context field \"projectid\" in \"x:{ctx.projectid}\"; context fields are actorUserId, projectId, tenantId");
        CHECK(template_error("x:{row.}") == "empty name in placeholder {row.} in \"x:{row.}\"");
        CHECK(template_error("x:{ projectId }") ==
              "placeholder { projectId } may not contain whitespace or '|' in \"x:{ projectId }\"");
        CHECK(template_error("x:{a|b}") == "placeholder {a|b} may not contain whitespace or '|' in \"x:{a|b}\"");
    }

    TEST_CASE("empty entries and empty alternatives are refused") {
        CHECK(template_error("") == "empty room template");
        CHECK(template_error("   ") == "empty room template");
        CHECK(template_error("a | ") == "empty alternative in \"a | \"");
        CHECK(template_error("| a") == "empty alternative in \"| a\"");
        CHECK(template_error("a || b") == "empty alternative in \"a || b\"");
    }
}

TEST_SUITE("config") {
    TEST_CASE("every key is read") {
        Config cfg = parse_ok(R"(
[postgres]
dsn = "host=db dbname=app"
slot = "rt_slot"
message_prefix = "rt"

[server]
listen = "[::1]:9000"

[auth]
jwt_secret_file = "/run/secrets/jwt"
tenant_claim = "org"
project_access = "token"
project_access_sql = "SELECT 1"

[limits]
max_events_per_transaction = 5
max_connections = 20000

[events]
numbers_as_strings = true

[[model]]
table = "app.Task"
name = "task-v2"
rooms = ["project:{projectId}", "user:{row.assigneeId}"]
payload = ["id", "title"]
key = ["tenantId", "id"]
)");
        CHECK(cfg.dsn == "host=db dbname=app");
        CHECK(cfg.slot == "rt_slot");
        CHECK(cfg.message_prefix == "rt");
        CHECK(cfg.listen == "[::1]:9000");
        CHECK(cfg.jwt_secret_file == "/run/secrets/jwt");
        CHECK(cfg.tenant_claim == "org");
        CHECK(cfg.project_access == "token");
        CHECK(cfg.project_access_sql == "SELECT 1");
        CHECK(cfg.max_events_per_transaction == 5);
        CHECK(cfg.max_connections == 20000);
        CHECK(cfg.numbers_as_strings);
        REQUIRE(cfg.models.size() == 1);
        const ModelConfig& m = cfg.models[0];
        CHECK(m.schema == "app");
        CHECK(m.table == "Task");
        CHECK(m.name == "task-v2");
        REQUIRE(m.rooms.size() == 2);
        CHECK(m.rooms[0].source == "project:{projectId}");
        CHECK(m.rooms[1].source == "user:{row.assigneeId}");
        CHECK(m.payload == std::vector<std::string>{"id", "title"});
        CHECK(m.key == std::vector<std::string>{"tenantId", "id"});
    }

    TEST_CASE("absent keys keep their defaults; payload defaults to the key") {
        Config cfg = parse_ok(kTask);
        const Config defaults;
        CHECK(cfg.dsn == defaults.dsn);
        CHECK(cfg.slot == "walcast");
        CHECK(cfg.message_prefix == "walcast");
        CHECK(cfg.listen == "127.0.0.1:8787");
        CHECK(cfg.tenant_claim == "tenantId");
        CHECK(cfg.project_access == "query");
        CHECK(cfg.project_access_sql == defaults.project_access_sql);
        CHECK(cfg.max_events_per_transaction == 10000);
        CHECK(cfg.max_connections == 0);
        CHECK_FALSE(cfg.numbers_as_strings);
        REQUIRE(cfg.models.size() == 1);
        CHECK(cfg.models[0].key == std::vector<std::string>{"id"});
        CHECK(cfg.models[0].payload == std::vector<std::string>{"id"});

        Config keyed = parse_ok(R"(
[[model]]
table = "public.Membership"
name = "membership"
rooms = ["tenant:{tenantId}"]
key = ["tenantId", "userId"]
)");
        CHECK(keyed.models.at(0).payload == std::vector<std::string>{"tenantId", "userId"});

        Config empty = parse_ok("");
        CHECK(empty.models.empty());
        CHECK(empty.find_model("public", "Task") == nullptr);
    }

    TEST_CASE("an empty payload is allowed") {
        Config cfg = parse_ok(R"(
[[model]]
table = "public.Task"
name = "task"
rooms = ["project:{projectId}"]
payload = []
)");
        CHECK(cfg.models.at(0).payload.empty());
    }

    TEST_CASE("find_model matches schema and table with exact case") {
        Config cfg = parse_ok(R"(
[[model]]
table = "public.Task"
name = "task"
rooms = ["project:{projectId}"]

[[model]]
table = "audit.Task"
name = "auditTask"
rooms = ["tenant:{tenantId}"]
)");
        const ModelConfig* task = cfg.find_model("public", "Task");
        REQUIRE(task != nullptr);
        CHECK(task->name == "task");
        const ModelConfig* audit = cfg.find_model("audit", "Task");
        REQUIRE(audit != nullptr);
        CHECK(audit->name == "auditTask");
        CHECK(cfg.find_model("public", "task") == nullptr);
        CHECK(cfg.find_model("Public", "Task") == nullptr);
        CHECK(cfg.find_model("public", "Comment") == nullptr);
        CHECK(cfg.find_model("publicT", "ask") == nullptr);

        // The index survives a copy: it holds positions, not pointers.
        const Config copy = cfg;
        REQUIRE(copy.find_model("audit", "Task") != nullptr);
        CHECK(copy.find_model("audit", "Task") == &copy.models[1]);
    }

    TEST_CASE("index_models indexes hand-built configs") {
        Config cfg;
        ModelConfig m;
        m.schema = "public";
        m.table = "Note";
        m.name = "note";
        cfg.models.push_back(m);
        CHECK(cfg.find_model("public", "Note") == nullptr);
        cfg.index_models();
        REQUIRE(cfg.find_model("public", "Note") != nullptr);
        CHECK(cfg.find_model("public", "Note")->name == "note");

        m.name = "second";
        cfg.models.push_back(m);
        cfg.index_models();
        CHECK(cfg.find_model("public", "Note")->name == "note");
    }
}

TEST_SUITE("config errors") {
    TEST_CASE("TOML syntax error names file, line and column") {
        CHECK(error_of(R"(
[postgres]
slot = walcast
)") == "walcast.toml:2:8: invalid TOML: Error while parsing value: could not determine value type");
        CHECK(error_of(R"(
[postgres]
slot = "a"
slot = "b"
)") == "walcast.toml:3:8: invalid TOML: Error while parsing key-value pair: cannot redefine existing string 'slot'");
        const std::string unclosed = error_of(R"(
[[model]]
table = "public.Task"
rooms = ["a",
)");
        CHECK(unclosed.rfind("walcast.toml:3:", 0) == 0);
        CHECK(unclosed.find("invalid TOML: ") != std::string::npos);
    }

    TEST_CASE("unknown section") {
        CHECK(error_of(R"(
[postgres]
slot = "walcast"

[postgress]
dsn = "x"
)") == "walcast.toml:4: postgress: unknown section; allowed sections: postgres, server, auth, limits, events, recovery, cluster, model");
        CHECK(error_of(R"(
[[models]]
table = "public.Task"
)") == "walcast.toml:1: models: unknown section; allowed sections: postgres, server, auth, limits, events, recovery, cluster, model");
    }

    TEST_CASE("a bare key above the first section says where it belongs") {
        CHECK(error_of(R"(
slot = "walcast"
)") == "walcast.toml:1: slot: unknown top-level key (it belongs in [postgres]); "
       "allowed sections: postgres, server, auth, limits, events, recovery, cluster, model");
        CHECK(error_of("verbose = true\n") ==
              "walcast.toml:1: verbose: unknown top-level key; allowed sections: postgres, server, auth, limits, events, recovery, cluster, model");
    }

    TEST_CASE("unknown key names the key and lists the allowed ones") {
        CHECK(error_of(R"(
[postgres]
dns = "host=db"
)") == "walcast.toml:2: postgres.dns: unknown key (did you mean \"dsn\"?); allowed keys: dsn, slot, message_prefix, create_slot");
        CHECK(error_of(R"(
[auth]
secret = "hunter2"
)") == "walcast.toml:2: auth.secret: unknown key; allowed keys: jwt_secret_file, tenant_claim, project_access, "
       "project_access_sql, audience, issuer");
        CHECK(error_of(R"(
[[model]]
table = "public.Task"
name = "task"
rooms = ["project:{projectId}"]
room = "x"
)") == "walcast.toml:5: model[1].room: unknown key (did you mean \"rooms\"?); allowed keys: table, name, rooms, "
       "payload, key");
    }

    TEST_CASE("missing required model keys") {
        CHECK(error_of(R"(
[[model]]
name = "task"
rooms = ["project:{projectId}"]
)") == "walcast.toml:1: model[1].table: required key missing");
        CHECK(error_of(R"(
[[model]]
table = "public.Task"
rooms = ["project:{projectId}"]
)") == "walcast.toml:1: model[1].name: required key missing");
        CHECK(error_of(R"(
[[model]]
table = "public.Task"
name = "task"
rooms = ["project:{projectId}"]

[[model]]
table = "public.Comment"
name = "comment"
)") == "walcast.toml:6: model[2].rooms: required key missing");
    }

    TEST_CASE("wrong types") {
        CHECK(error_of(R"(
[postgres]
slot = 5
)") == "walcast.toml:2: postgres.slot: expected a string, got an integer");
        CHECK(error_of(R"(
[events]
numbers_as_strings = "yes"
)") == "walcast.toml:2: events.numbers_as_strings: expected a boolean (true or false), got a string");
        CHECK(error_of(R"(
[limits]
max_events_per_transaction = 1.5
)") == "walcast.toml:2: limits.max_events_per_transaction: expected an integer, got a float");
        CHECK(error_of(R"(
[limits]
max_connections = -1
)") == "walcast.toml:2: limits.max_connections: must be 0 (as many as the open-file limit allows) or more, got -1");
        CHECK(error_of("server = \"127.0.0.1:8787\"\n") == "walcast.toml:1: server: expected a table ([server]), got a string");
        CHECK(error_of(R"(
[[model]]
table = "public.Task"
name = "task"
rooms = "project:{projectId}"
)") == "walcast.toml:4: model[1].rooms: expected an array of strings, got a string");
        CHECK(error_of(R"(
[[model]]
table = "public.Task"
name = "task"
rooms = ["project:{projectId}", 7]
)") == "walcast.toml:4: model[1].rooms[2]: expected a string, got an integer");
        CHECK(error_of(R"(
[model]
table = "public.Task"
name = "task"
rooms = ["project:{projectId}"]
)") == "walcast.toml:1: model: expected [[model]] entries (an array of tables), got a single [model] table");
    }

    TEST_CASE("the same table in two [[model]] entries names both lines") {
        CHECK(error_of(R"(
[[model]]
table = "public.Task"
name = "task"
rooms = ["project:{projectId}"]

[[model]]
table = "public.Task"
name = "task2"
rooms = ["tenant:{tenantId}"]
)") == "walcast.toml:7: model[2].table: \"public.Task\" is already routed by model[1] at line 2; "
       "a table may appear in one [[model]] only");
    }

    TEST_CASE("bad room templates name the model, the entry and its line") {
        CHECK(error_of(R"(
[[model]]
table = "public.Task"
name = "task"
rooms = ["project:{projectId}"]

[[model]]
table = "public.Note"
name = "note"
rooms = [
  "tenant:{tenantId}",
  "project:{id",
]
)") == "walcast.toml:11: model[2].rooms[2]: unbalanced '{' in \"project:{id\"");

        auto one_room = [](std::string_view room) {
            return error_of("[[model]]\ntable = \"public.Task\"\nname = \"task\"\nrooms = [\"" + std::string(room) + "\"]\n");
        };
        CHECK(one_room("project:{}") == "walcast.toml:4: model[1].rooms[1]: empty placeholder {} in \"project:{}\"");
        CHECK(one_room("x:{foo.bar}") ==
              "walcast.toml:4: model[1].rooms[1]: unknown placeholder prefix \"foo.\" in \"x:{foo.bar}\"; "
              "use {column}, {row.column} or {ctx.field}");
        CHECK(one_room("x:{ctx.nope}") ==
              "walcast.toml:4: model[1].rooms[1]: unknown context field \"nope\" in \"x:{ctx.nope}\"; "
              "context fields are actorUserId, projectId, tenantId");
        CHECK(one_room("a | ") == "walcast.toml:4: model[1].rooms[1]: empty alternative in \"a | \"");
        CHECK(one_room("") == "walcast.toml:4: model[1].rooms[1]: empty room template");
        CHECK(error_of(R"(
[[model]]
table = "public.Task"
name = "task"
rooms = []
)") == "walcast.toml:4: model[1].rooms: must list at least one room");
    }

    TEST_CASE("model table, name, key and payload values") {
        auto model = [](std::string_view lines) {
            return error_of("[[model]]\n" + std::string(lines));
        };
        CHECK(model("table = \"Task\"\nname = \"task\"\nrooms = [\"r\"]\n") ==
              "walcast.toml:2: model[1].table: expected \"schema.table\" (e.g. \"public.Task\"), got \"Task\"");
        CHECK(model("table = \"a.b.c\"\nname = \"task\"\nrooms = [\"r\"]\n") ==
              "walcast.toml:2: model[1].table: expected \"schema.table\" (e.g. \"public.Task\"), got \"a.b.c\"");
        CHECK(model("table = \"public.\"\nname = \"task\"\nrooms = [\"r\"]\n") ==
              "walcast.toml:2: model[1].table: expected \"schema.table\" (e.g. \"public.Task\"), got \"public.\"");
        CHECK(model("table = \"public.Task\"\nname = \"task created\"\nrooms = [\"r\"]\n") ==
              "walcast.toml:3: model[1].name: expected letters, digits, '_' or '-' (the event is \"<name>:created\"), "
              "got \"task created\"");
        CHECK(model("table = \"public.Task\"\nname = \"\"\nrooms = [\"r\"]\n") ==
              "walcast.toml:3: model[1].name: expected letters, digits, '_' or '-' (the event is \"<name>:created\"), "
              "got \"\"");
        CHECK(model("table = \"public.Task\"\nname = \"task\"\nrooms = [\"r\"]\npayload = [\"id\", \"title\", \"id\"]\n") ==
              "walcast.toml:5: model[1].payload[3]: \"id\" is listed twice");
        CHECK(model("table = \"public.Task\"\nname = \"task\"\nrooms = [\"r\"]\npayload = [\"id\", \"\"]\n") ==
              "walcast.toml:5: model[1].payload[2]: must not be empty");
        CHECK(model("table = \"public.Task\"\nname = \"task\"\nrooms = [\"r\"]\nkey = []\n") ==
              "walcast.toml:5: model[1].key: must name at least one column");
        CHECK(model("table = \"public.Task\"\nname = \"task\"\nrooms = [\"r\"]\nkey = \"id\"\n") ==
              "walcast.toml:5: model[1].key: expected an array of strings, got a string");
    }

    TEST_CASE("project_access is query or token") {
        CHECK(error_of(R"(
[auth]
project_access = "sql"
)") == "walcast.toml:2: auth.project_access: must be \"query\" or \"token\", got \"sql\"");
    }

    TEST_CASE("max_events_per_transaction must be positive") {
        CHECK(error_of(R"(
[limits]
max_events_per_transaction = 0
)") == "walcast.toml:2: limits.max_events_per_transaction: must be a positive integer, got 0");
        CHECK(error_of(R"(
[limits]
max_events_per_transaction = -3
)") == "walcast.toml:2: limits.max_events_per_transaction: must be a positive integer, got -3");
    }

    TEST_CASE("postgres and server values") {
        CHECK(error_of("[postgres]\nslot = \"My-Slot\"\n") ==
              "walcast.toml:2: postgres.slot: invalid replication slot name \"My-Slot\"; "
              "use lower case letters, digits and '_' (at most 63)");
        CHECK(error_of("[postgres]\nmessage_prefix = \"\"\n") == "walcast.toml:2: postgres.message_prefix: must not be empty");
        CHECK(error_of("[server]\nlisten = \"8787\"\n") ==
              "walcast.toml:2: server.listen: expected \"host:port\" (e.g. \"127.0.0.1:8787\"), got \"8787\"");
        CHECK(error_of("[server]\nlisten = \"localhost:99999\"\n") ==
              "walcast.toml:2: server.listen: expected \"host:port\" (e.g. \"127.0.0.1:8787\"), got \"localhost:99999\"");
        CHECK(error_of("[auth]\ntenant_claim = \"\"\n") == "walcast.toml:2: auth.tenant_claim: must not be empty");
    }

    TEST_CASE("every problem is reported, in line order") {
        CHECK(error_of(R"(
[postgres]
slot = 5

[auth]
project_access = "sql"

[[model]]
table = "public.Task"
rooms = ["project:{id"]
)") == "walcast.toml:2: postgres.slot: expected a string, got an integer\n"
       "walcast.toml:5: auth.project_access: must be \"query\" or \"token\", got \"sql\"\n"
       "walcast.toml:7: model[1].name: required key missing\n"
       "walcast.toml:9: model[1].rooms[1]: unbalanced '{' in \"project:{id\"");
    }
}

TEST_SUITE("load_config") {
    TEST_CASE("a missing file names its path") {
        const std::string path = std::string(WALCAST_FIXTURES) + "/configs/does-not-exist.toml";
        auto result = load_config(path);
        REQUIRE_FALSE(result.ok());
        CHECK(result.error().message == "cannot open config file \"" + path + "\": No such file or directory");
    }

    TEST_CASE("a good file loads") {
        auto result = load_config(std::string(WALCAST_FIXTURES) + "/configs/minimal.toml");
        INFO((result.ok() ? std::string() : result.error().message));
        REQUIRE(result.ok());
        REQUIRE(result->find_model("public", "Task") != nullptr);
        CHECK(result->find_model("public", "Task")->name == "task");
    }

    TEST_CASE("errors in a file carry its path as origin") {
        const std::string path = std::string(WALCAST_FIXTURES) + "/configs/bad-template.toml";
        auto result = load_config(path);
        REQUIRE_FALSE(result.ok());
        CHECK(result.error().message == path + ":8: model[1].rooms[1]: unbalanced '{' in \"project:{id\"");
    }
}

TEST_SUITE("examples/walcast.toml") {
    TEST_CASE("routes the reference schema as the original ORM hooks did") {
        auto loaded = load_config(std::string(WALCAST_SOURCE_DIR) + "/examples/walcast.toml");
        INFO((loaded.ok() ? std::string() : loaded.error().message));
        REQUIRE(loaded.ok());
        const Config& cfg = *loaded;

        CHECK(cfg.dsn == "host=/var/run/postgresql dbname=app user=walcast");
        CHECK(cfg.slot == "walcast");
        CHECK(cfg.message_prefix == "walcast");
        CHECK(cfg.listen == "127.0.0.1:8787");
        CHECK(cfg.jwt_secret_file == "/etc/walcast/jwt.key");
        CHECK(cfg.tenant_claim == "tenantId");
        CHECK(cfg.project_access == "query");
        CHECK(cfg.project_access_sql == "SELECT 1 FROM \"Project\" WHERE id = $1 AND \"tenantId\" = $2");
        CHECK(cfg.max_events_per_transaction == 10000);

        struct Route {
            std::string name;
            std::vector<std::string> rooms;
        };
        const std::map<std::string, Route> expected = {
            {"Task", {"task", {"project:{projectId}"}}},
            {"Comment", {"comment", {"project:{ctx.projectId}"}}},
            {"TimeEntry", {"timeEntry", {"project:{ctx.projectId}"}}},
            {"File", {"file", {"project:{projectId} | user:{userId}"}}},
            {"Note", {"note", {"project:{projectId} | user:{userId}"}}},
            {"Notification", {"notification", {"user:{userId}"}}},
            {"NoteCategory", {"noteCategory", {"tenant:{tenantId}"}}},
            {"Project", {"project", {"tenant:{tenantId}"}}},
            {"Invitation", {"invitation", {"tenant:{tenantId}"}}},
            {"Membership", {"membership", {"tenant:{tenantId}"}}},
        };
        const std::set<std::string> unrouted = {"Tenant", "User"};

        const auto schema = schema_columns(read_file(std::string(WALCAST_FIXTURES) + "/app-schema.sql"));
        REQUIRE(schema.size() == expected.size() + unrouted.size());
        CHECK(cfg.models.size() == expected.size());

        for (const auto& [table, columns] : schema) {
            CAPTURE(table);
            const ModelConfig* model = cfg.find_model("public", table);
            if (unrouted.count(table)) {
                CHECK(model == nullptr);
                continue;
            }
            REQUIRE(expected.count(table) == 1);
            REQUIRE(model != nullptr);
            const Route& route = expected.at(table);
            CHECK(model->name == route.name);
            std::vector<std::string> rooms;
            for (const RoomTemplate& room : model->rooms) rooms.push_back(room.source);
            CHECK(rooms == route.rooms);
            CHECK(model->key == std::vector<std::string>{"id"});
            CHECK(std::find(model->payload.begin(), model->payload.end(), "id") != model->payload.end());
            for (const std::string& column : model->payload) {
                CAPTURE(column);
                CHECK(std::find(columns.begin(), columns.end(), column) != columns.end());
                CHECK(column != "token");
                CHECK(column != "passwordHash");
            }
        }

        // Comment and TimeEntry have no projectId column: the room must come from the context.
        for (const char* table : {"Comment", "TimeEntry"}) {
            CAPTURE(table);
            const auto& columns = schema.at(table);
            CHECK(std::find(columns.begin(), columns.end(), "projectId") == columns.end());
        }

        const ModelConfig* task = cfg.find_model("public", "Task");
        REQUIRE(task != nullptr);
        for (const char* column :
             {"id", "projectId", "title", "status", "assigneeId", "position", "estimate", "createdAt"}) {
            CAPTURE(column);
            CHECK(std::find(task->payload.begin(), task->payload.end(), column) != task->payload.end());
        }

        // The personal fallback: a second alternative, tried when projectId is null.
        const ModelConfig* note = cfg.find_model("public", "Note");
        REQUIRE(note != nullptr);
        REQUIRE(note->rooms.size() == 1);
        CHECK(note->rooms[0].alternatives.size() == 2);
    }
}

TEST_SUITE("config recovery") {
    TEST_CASE("[recovery] defaults, values and errors") {
        auto d = walcast::parse_config("", "r.toml");
        REQUIRE(d);
        CHECK(d->recovery_window_seconds == 120);
        CHECK(d->recovery_max_bytes == (std::size_t(64) << 20));
        CHECK(d->state_dir.empty());
        auto c = walcast::parse_config("[recovery]\nwindow_seconds = 30\nmax_bytes = 1048576\nstate_dir = \"/var/lib/walcast\"\n", "r.toml");
        REQUIRE(c);
        CHECK(c->recovery_window_seconds == 30);
        CHECK(c->recovery_max_bytes == 1048576);
        CHECK(c->state_dir == "/var/lib/walcast");
        auto bad = walcast::parse_config("[recovery]\nwindow_seconds = -1\nmax_bytes = 0\n", "r.toml");
        REQUIRE_FALSE(bad);
        CHECK(bad.error().message.find("r.toml:2: recovery.window_seconds: must be 0 (off) or more, got -1") != std::string::npos);
        CHECK(bad.error().message.find("r.toml:3: recovery.max_bytes: must be a positive integer, got 0") != std::string::npos);
    }
}

TEST_SUITE("config limits, server and auth keys") {
    TEST_CASE("defaults") {
        const Config d = parse_ok("");
        CHECK(d.create_slot == CreateSlot::FirstStart);
        CHECK(d.admin_listen.empty());
        CHECK(d.ping_interval_ms == 25000);
        CHECK(d.ping_timeout_ms == 20000);
        CHECK(d.max_payload == 1000000);
        CHECK(d.connect_timeout_ms == 10000);
        CHECK(d.transports == std::vector<std::string>{"polling", "websocket"});
        CHECK(d.cors_origins.empty());
        CHECK(d.audience.empty());
        CHECK(d.issuer.empty());
        CHECK(d.max_line_bytes == (std::size_t(64) << 20));
        CHECK(d.max_send_buffer_bytes == (std::size_t(1) << 20));
        CHECK(d.max_connections_per_user == 64);
        CHECK(d.max_access_checks_per_user == 32);
        CHECK(d.max_rooms_per_client == 256);
        CHECK(d.max_detached_sessions == 10000);
        CHECK(d.max_detached_per_user == 16);
    }

    TEST_CASE("values are read") {
        const Config c = parse_ok(R"(
[postgres]
create_slot = "never"
[server]
admin_listen = "127.0.0.1:9090"
ping_interval_ms = 300
ping_timeout_ms = 200
max_payload = 1000000
connect_timeout_ms = 45000
transports = ["websocket"]
cors_origins = ["https://app.example.com", "http://localhost:5173"]
[auth]
audience = "walcast"
issuer = "https://auth.example.com"
[limits]
max_line_bytes = 1048576
max_send_buffer_bytes = 262144
max_connections_per_user = 8
max_access_checks_per_user = 4
max_rooms_per_client = 10
max_detached_sessions = 100
max_detached_per_user = 2
)");
        CHECK(c.create_slot == CreateSlot::Never);
        CHECK(c.admin_listen == "127.0.0.1:9090");
        CHECK(c.ping_interval_ms == 300);
        CHECK(c.ping_timeout_ms == 200);
        CHECK(c.connect_timeout_ms == 45000);
        CHECK(c.transports == std::vector<std::string>{"websocket"});
        CHECK(c.cors_origins == std::vector<std::string>{"https://app.example.com", "http://localhost:5173"});
        CHECK(c.audience == "walcast");
        CHECK(c.issuer == "https://auth.example.com");
        CHECK(c.max_line_bytes == 1048576);
        CHECK(c.max_send_buffer_bytes == 262144);
        CHECK(c.max_connections_per_user == 8);
        CHECK(c.max_access_checks_per_user == 4);
        CHECK(c.max_rooms_per_client == 10);
        CHECK(c.max_detached_sessions == 100);
        CHECK(c.max_detached_per_user == 2);
        CHECK(parse_ok("[postgres]\ncreate_slot = \"always\"\n").create_slot == CreateSlot::Always);
    }

    TEST_CASE("bad values name the key and what it must be") {
        CHECK(error_of("[postgres]\ncreate_slot = \"sometimes\"\n") ==
              "walcast.toml:2: postgres.create_slot: must be \"always\", \"first-start\" or \"never\", got \"sometimes\"");
        CHECK(error_of("[server]\nadmin_listen = \"9090\"\n") ==
              "walcast.toml:2: server.admin_listen: expected \"host:port\" (e.g. \"127.0.0.1:8787\"), got \"9090\"");
        CHECK(error_of("[server]\ntransports = [\"websocket\", \"flash\"]\n") ==
              "walcast.toml:2: server.transports: unknown transport \"flash\"; use \"polling\" and/or \"websocket\"");
        CHECK(error_of("[server]\ntransports = []\n") ==
              "walcast.toml:2: server.transports: must list \"polling\", \"websocket\" or both");
        CHECK(error_of("[server]\ncors_origins = [\"app.example.com\"]\n").find("an origin is \"scheme://host[:port]\"") !=
              std::string::npos);
        CHECK(error_of("[server]\ncors_origins = [\"https://app.example.com/\"]\n").find("an origin has no path") !=
              std::string::npos);
        CHECK(error_of("[server]\nmax_payload = 10\n") == "walcast.toml:2: server.max_payload: must be at least 1024 bytes, got 10");
        CHECK(error_of("[limits]\nmax_line_bytes = 100\n") == "walcast.toml:2: limits.max_line_bytes: must be at least 4096, got 100");
        CHECK(error_of("[limits]\nmax_connections_per_user = 0\n") ==
              "walcast.toml:2: limits.max_connections_per_user: must be a positive integer, got 0");
        CHECK(error_of("[auth]\naudience = 3\n") == "walcast.toml:2: auth.audience: expected a string, got an integer");
    }
}

TEST_SUITE("config cluster") {
    TEST_CASE("[cluster] keys and Redis URLs") {
        const Config none = parse_ok("");
        CHECK(none.redis.empty());
        const Config c = parse_ok("[cluster]\nredis = \"redis://10.0.0.5:6380/2\"\nstream = \"walcast\"\nmax_len = 50000\npassword_file = \"/etc/walcast/redis.pw\"\n");
        CHECK(c.redis == "redis://10.0.0.5:6380/2");
        CHECK(c.stream == "walcast");
        CHECK(c.max_len == 50000);
        CHECK(c.password_file == "/etc/walcast/redis.pw");
        auto a = parse_redis_url("redis://10.0.0.5:6380/2");
        REQUIRE(a);
        CHECK(a->host == "10.0.0.5");
        CHECK(a->port == 6380);
        CHECK(a->db == 2);
        auto d = parse_redis_url("redis://cache");
        REQUIRE(d);
        CHECK(d->port == 6379);
        CHECK(d->db == 0);
        auto u = parse_redis_url("unix:///run/redis/redis.sock?db=3");
        REQUIRE(u);
        CHECK(u->path == "/run/redis/redis.sock");
        CHECK(u->db == 3);
        CHECK(error_of("[cluster]\nredis = \"http://x\"\n").find("expected redis://host:port/db or unix:///path") != std::string::npos);
        CHECK(error_of("[cluster]\nredis = \"redis://:pw@x\"\n").find("password_file") != std::string::npos);
        CHECK(error_of("[cluster]\nredis = \"redis://x:99999\"\n").find("bad port") != std::string::npos);
        CHECK(error_of("[cluster]\nredis = \"unix://relative.sock\"\n").find("absolute path") != std::string::npos);
        CHECK(error_of("[cluster]\nstream = \"s\"\n").find("cluster.redis: required key missing") != std::string::npos);
        CHECK(error_of("[cluster]\nredis = \"redis://x\"\nmax_len = 5\n") == "walcast.toml:3: cluster.max_len: must be at least 100, got 5");
    }
}
