// The daemon config: TOML loaded into plain structs, with every error naming
// file, line and key. Pure; loaded once at start-up, then read-only from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "decoder/continuity.hpp"
#include "decoder/result.hpp"

namespace walcast {

// One placeholder of a room template: {col} (row, else context), {row.col}, {ctx.field}.
struct Placeholder {
    enum class Source : unsigned char { RowThenContext, Row, Context };
    Source source = Source::RowThenContext;
    std::string name;  // column name, or context field: actorUserId, projectId, tenantId
};

// A literal run or a placeholder; exactly one of the two is set.
struct TemplateSegment {
    std::string literal;
    std::optional<Placeholder> placeholder;
};

// "project:{projectId}" is one alternative; "A | B" has two, tried in order.
struct RoomAlternative {
    std::vector<TemplateSegment> segments;
};

struct RoomTemplate {
    std::string source;  // as written in the config, for messages
    std::vector<RoomAlternative> alternatives;
};

// Parses one rooms entry. Errors: empty entry, empty alternative, unbalanced braces,
// empty placeholder, unknown prefix (only row. and ctx.), unknown context field.
Result<RoomTemplate> parse_room_template(std::string_view text);

struct ModelConfig {
    std::string schema;                  // "public"
    std::string table;                   // "Task", exact case
    std::string name;                    // event prefix: "task"
    std::vector<RoomTemplate> rooms;
    std::vector<std::string> payload;    // columns copied into data; defaults to key
    std::vector<std::string> key;        // primary key columns; default ["id"]
};

struct Config {
    // [postgres]
    std::string dsn;
    std::string slot = "walcast";
    std::string message_prefix = "walcast";
    CreateSlot create_slot = CreateSlot::FirstStart;
    // [server]
    std::string listen = "127.0.0.1:8787";
    std::string admin_listen;  // /healthz and /metrics only here when set
    std::size_t ping_interval_ms = 25000;
    std::size_t ping_timeout_ms = 20000;
    std::size_t max_payload = 1000000;    // Engine.IO maxPayload: an HTTP POST body, or a WebSocket frame
    std::size_t connect_timeout_ms = 10000;  // no Socket.IO CONNECT -> closed
    std::vector<std::string> transports = {"polling", "websocket"};
    std::vector<std::string> cors_origins;  // empty: same-origin polling only
    // [auth]
    std::string jwt_secret_file;
    std::string tenant_claim = "tenantId";
    std::string project_access = "query";  // "query" or "token"
    std::string project_access_sql =
        "SELECT 1 FROM \"Project\" WHERE id = $1 AND \"tenantId\" = $2";
    std::string audience;  // required `aud` when set
    std::string issuer;    // required `iss` when set
    // [limits]
    std::size_t max_events_per_transaction = 10000;
    std::size_t max_connections = 0;  // clients at once; 0: as the open-file limit allows
    std::size_t max_connections_per_user = 64;
    std::size_t max_access_checks_per_user = 32;  // project checks in flight, resumes included
    std::size_t max_rooms_per_client = 256;       // project rooms
    std::size_t max_send_buffer_bytes = std::size_t(1) << 20;  // per client; over it: catch up from the buffer, or 4008
    std::size_t max_line_bytes = std::size_t(64) << 20;  // one wal2json line; over it the transaction fails closed
    std::size_t max_detached_sessions = 10000;    // resumable sessions kept, in all
    std::size_t max_detached_per_user = 16;
    // [events]
    bool numbers_as_strings = false;  // int8/numeric values sent as JSON strings
    // [recovery]: Socket.IO connection-state recovery (0 seconds: off).
    std::size_t recovery_window_seconds = 120;
    std::size_t recovery_max_bytes = std::size_t(64) << 20;
    std::string state_dir;  // durable recovery state; default $STATE_DIRECTORY (systemd)

    // [cluster]: several walcast nodes (and Node.js Socket.IO servers) over one Redis
    // stream in the format of @socket.io/redis-streams-adapter. Empty `redis`: one node.
    std::string redis;  // "redis://host:port[/db]" or "unix:///path/to/redis.sock[?db=N]"
    std::string stream = "socket.io";
    std::size_t max_len = 100000;  // XADD MAXLEN ~: the stream's (and the recovery window's) length
    std::string password_file;
    std::string redis_password;  // not a key: read from password_file when walcast starts

    std::vector<ModelConfig> models;

    // nullptr when the table is not routed.
    const ModelConfig* find_model(std::string_view schema, std::string_view table) const;

    // Rebuilds the lookup index; call after changing `models`.
    void index_models();

private:
    std::unordered_map<std::string, std::size_t> model_index_;  // "schema.table" -> models[i]
};

// A parsed [cluster] redis URL.
struct RedisAddress {
    std::string host;     // empty for a Unix socket
    std::uint16_t port = 6379;
    std::string path;     // the Unix socket, empty for TCP
    unsigned db = 0;
};
// "redis://host:port/db", "redis://host" (port 6379, db 0), "unix:///run/redis.sock?db=2".
Result<RedisAddress> parse_redis_url(std::string_view url);

// Parses TOML text. `origin` names the source in messages ("walcast.toml").
// Errors read "walcast.toml:12: model[2].rooms: unbalanced '{' in \"project:{id\"".
Result<Config> parse_config(std::string_view text, std::string_view origin);

// Reads and parses a file; a missing or unreadable file is an error naming the path.
Result<Config> load_config(const std::string& path);

}  // namespace walcast
