// EmitContext: the writer's context, carried in the WAL as a transactional logical message.
// Pure; any thread.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "decoder/result.hpp"

namespace walcast {

// Any role that can log in may write a context message (pg_logical_emit_message needs no
// table rights), so its content is hostile input. A real context is a flat object of four
// short fields, well under both limits.
// A content longer than this is refused without being parsed.
inline constexpr std::size_t kMaxContextBytes = 4096;
// Objects and arrays nested deeper than this are refused while parsing; the top-level
// object is depth 1.
inline constexpr int kMaxContextDepth = 16;

struct EmitContext {
    std::optional<std::string> actor_user_id;  // always set unless skip_emit
    std::optional<std::string> project_id;
    std::optional<std::string> tenant_id;
    bool skip_emit = false;

    // Canonical JSON with the seed's field names, for logs and --explain.
    std::string to_json() const;
};

// Parses a message's content. Fails closed: anything but a JSON object with a string
// actorUserId is an error, except that {"skipEmit":true} needs no actor (a batch job
// silencing its writes has nobody to name). Unknown fields are ignored so newer writers can
// add some; known fields with the wrong type are errors, and so is a content over
// kMaxContextBytes or nested deeper than kMaxContextDepth.
Result<EmitContext> parse_emit_context(std::string_view content);

}  // namespace walcast
