// Emit context parsing (see emit_context.hpp). The content is checked for size before it is
// read and parsed iteratively with a depth limit, so no content can exhaust the stack or
// make the daemon build a large document.
#include "decoder/emit_context.hpp"

#include <rapidjson/document.h>
#include <rapidjson/encodedstream.h>
#include <rapidjson/error/en.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>

#include "decoder/json_text.hpp"

namespace walcast {

namespace {

using Document = rapidjson::GenericDocument<rapidjson::UTF8<>, rapidjson::MemoryPoolAllocator<>,
                                            rapidjson::MemoryPoolAllocator<>>;

// Forwards SAX events to a Document and refuses an object or array that would open deeper
// than kMaxContextDepth.
class DepthLimitedBuilder {
public:
    explicit DepthLimitedBuilder(Document& doc) : doc_(doc) {}

    bool too_deep = false;

    bool Null() { return doc_.Null(); }
    bool Bool(bool b) { return doc_.Bool(b); }
    bool Int(int i) { return doc_.Int(i); }
    bool Uint(unsigned u) { return doc_.Uint(u); }
    bool Int64(std::int64_t i) { return doc_.Int64(i); }
    bool Uint64(std::uint64_t u) { return doc_.Uint64(u); }
    bool Double(double d) { return doc_.Double(d); }
    bool RawNumber(const char* s, rapidjson::SizeType n, bool copy) { return doc_.RawNumber(s, n, copy); }
    bool String(const char* s, rapidjson::SizeType n, bool copy) { return doc_.String(s, n, copy); }
    bool Key(const char* s, rapidjson::SizeType n, bool copy) { return doc_.Key(s, n, copy); }
    bool StartObject() { return enter() && doc_.StartObject(); }
    bool EndObject(rapidjson::SizeType members) {
        --depth_;
        return doc_.EndObject(members);
    }
    bool StartArray() { return enter() && doc_.StartArray(); }
    bool EndArray(rapidjson::SizeType elements) {
        --depth_;
        return doc_.EndArray(elements);
    }

private:
    Document& doc_;
    int depth_ = 0;

    bool enter() {
        if (depth_ == kMaxContextDepth) {
            too_deep = true;
            return false;
        }
        ++depth_;
        return true;
    }
};

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
    if (content.size() > kMaxContextBytes)
        return make_error("context is " + std::to_string(content.size()) + " bytes, over the " +
                          std::to_string(kMaxContextBytes) + "-byte limit");

    // One context per transaction: its document and the parser's stack start in buffers on
    // this stack instead of a fresh 64 KiB heap chunk each (a usual context takes ~1 KiB;
    // the pools take from the heap only beyond their buffers).
    char value_buffer[8192];
    char stack_buffer[2048];
    rapidjson::MemoryPoolAllocator<> values(value_buffer, sizeof value_buffer);
    rapidjson::MemoryPoolAllocator<> stack(stack_buffer, sizeof stack_buffer);
    Document doc(&values, 256, &stack);
    rapidjson::ParseResult parsed;
    bool too_deep = false;
    auto parse = [&](Document& d) {
        DepthLimitedBuilder builder(d);
        rapidjson::MemoryStream bytes(content.data(), content.size());
        rapidjson::EncodedInputStream<rapidjson::UTF8<>, rapidjson::MemoryStream> stream(bytes);  // skips a BOM
        rapidjson::GenericReader<rapidjson::UTF8<>, rapidjson::UTF8<>, rapidjson::MemoryPoolAllocator<>> reader(&stack, 256);
        parsed = reader.Parse<rapidjson::kParseIterativeFlag | rapidjson::kParseValidateEncodingFlag>(stream, builder);
        too_deep = builder.too_deep;
        return !parsed.IsError();
    };
    doc.Populate(parse);
    if (too_deep)
        return make_error("context is nested deeper than " + std::to_string(kMaxContextDepth) + " levels (byte " +
                          std::to_string(parsed.Offset()) + ")");
    if (parsed.IsError())
        return make_error(std::string("context is not valid JSON (byte ") + std::to_string(parsed.Offset()) + ": " +
                          rapidjson::GetParseError_En(parsed.Code()) + ")");
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
