// Emit context parsing (see emit_context.hpp).
#include "decoder/emit_context.hpp"

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>

#include "decoder/json_text.hpp"

namespace walcast {

namespace {

// Reads an optional string-or-null field; false when the field has another type.
bool read_optional_string(const rapidjson::Value& obj, const char* name,
                          std::optional<std::string>& out) {
    auto it = obj.FindMember(name);
    if (it == obj.MemberEnd() || it->value.IsNull()) return true;
    if (!it->value.IsString()) return false;
    out.emplace(it->value.GetString(), it->value.GetStringLength());
    return true;
}

}  // namespace

Result<EmitContext> parse_emit_context(std::string_view content) {
    rapidjson::Document doc;
    doc.Parse<rapidjson::kParseValidateEncodingFlag>(content.data(), content.size());
    if (doc.HasParseError())
        return make_error(std::string("context is not valid JSON (byte ") +
                          std::to_string(doc.GetErrorOffset()) + ": " +
                          rapidjson::GetParseError_En(doc.GetParseError()) + ")");
    if (!doc.IsObject()) return make_error("context is not a JSON object");

    EmitContext ctx;
    auto skip = doc.FindMember("skipEmit");
    if (skip != doc.MemberEnd() && !skip->value.IsNull()) {
        if (!skip->value.IsBool()) return make_error("context field skipEmit is not a boolean");
        ctx.skip_emit = skip->value.GetBool();
    }
    if (!read_optional_string(doc, "actorUserId", ctx.actor_user_id))
        return make_error("context field actorUserId is not a string");
    if (!ctx.actor_user_id && !ctx.skip_emit)
        return make_error("context has no actorUserId");
    if (!read_optional_string(doc, "projectId", ctx.project_id))
        return make_error("context field projectId is not a string or null");
    if (!read_optional_string(doc, "tenantId", ctx.tenant_id))
        return make_error("context field tenantId is not a string or null");
    return ctx;
}

std::string EmitContext::to_json() const {
    std::string out = "{\"actorUserId\":";
    append_json_optional(out, actor_user_id);
    out += ",\"projectId\":";
    append_json_optional(out, project_id);
    out += ",\"tenantId\":";
    append_json_optional(out, tenant_id);
    out += skip_emit ? ",\"skipEmit\":true}" : ",\"skipEmit\":false}";
    return out;
}

}  // namespace walcast
