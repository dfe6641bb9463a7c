// EmitContext: the writer's context, carried in the WAL as a transactional logical message
// (SPEC §3). Pure; any thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "decoder/result.hpp"

namespace walcast {

struct EmitContext {
    std::optional<std::string> actor_user_id;  // always set unless skip_emit
    std::optional<std::string> project_id;
    std::optional<std::string> tenant_id;
    bool skip_emit = false;

    // Canonical JSON with the seed's field names, for logs and --explain.
    std::string to_json() const;
};

// Parses a message's content. Fails closed (SPEC §3 rule 5): anything but a JSON object
// with a string actorUserId is an error, except that {"skipEmit":true} needs no actor
// (a batch job silencing its writes has nobody to name). Unknown fields are ignored so
// newer writers can add some; known fields with the wrong type are errors.
Result<EmitContext> parse_emit_context(std::string_view content);

}  // namespace walcast
