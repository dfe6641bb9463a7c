// libFuzzer target: stream entries of the Redis streams adapter. The input is decoded twice:
// as the `data` of a BROADCAST a Node server wrote, and as a whole field/value list (NUL
// separates the strings). Invariants: a refusal says why, a skip too; a relayed entry's
// arguments are valid, compact JSON (no whitespace outside strings) and valid UTF-8, as
// many as arg_count; its names are valid UTF-8 within the limits; encoding it again
// decodes to the same event. Also: stream ids and walcast tags print back to themselves.
#include <rapidjson/document.h>
#include <rapidjson/error/en.h>

#include <cstdlib>

#include "decoder/json_text.hpp"
#include "routing/stream_entry.hpp"

namespace {

using Fields = std::vector<std::pair<std::string_view, std::string_view>>;

bool valid_utf8(std::string_view s) { return walcast::first_invalid_utf8(s) == std::string_view::npos; }

// No JSON whitespace outside strings.
bool compact(std::string_view json) {
    bool in_string = false, escaped = false;
    for (char c : json) {
        if (in_string) {
            if (escaped) escaped = false;
            else if (c == '\\') escaped = true;
            else if (c == '"') in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            return false;
        }
    }
    return !in_string;
}

void check_args(const walcast::BroadcastEntry& e) {
    if ((e.arg_count == 0) != e.args_json.empty()) std::abort();
    if (!valid_utf8(e.args_json) || !compact(e.args_json)) std::abort();
    const std::string array = "[" + e.args_json + "]";
    rapidjson::Document doc;
    doc.Parse<rapidjson::kParseValidateEncodingFlag | rapidjson::kParseIterativeFlag>(array.data(), array.size());
    if (doc.HasParseError()) {
        // RapidJSON refuses escaped lone surrogates, which JSON's grammar (and JSON.parse)
        // accepts and which the decoder copies as written.
        if (doc.GetParseError() != rapidjson::kParseErrorStringUnicodeSurrogateInvalid) std::abort();
    } else if (!doc.IsArray() || doc.Size() != e.arg_count) {
        std::abort();
    }
}

void check(const Fields& fields) {
    const walcast::StreamEntryLimits limits;
    auto decoded = walcast::decode_entry(fields, limits);
    if (!decoded) {
        if (decoded.error().message.rfind("stream entry: ", 0) != 0) std::abort();
        return;
    }
    if (decoded->kind != walcast::EntryKind::Broadcast) {
        if ((decoded->kind == walcast::EntryKind::Unrelayable) == decoded->reason.empty()) std::abort();
        return;
    }
    const walcast::BroadcastEntry& e = decoded->entry;
    check_args(e);
    if (!valid_utf8(e.event) || e.event.size() > limits.max_name_bytes) std::abort();
    if (e.rooms.size() > limits.max_rooms || e.except.size() > limits.max_rooms) std::abort();
    for (const auto* list : {&e.rooms, &e.except})
        for (const std::string& room : *list)
            if (!valid_utf8(room) || room.size() > limits.max_name_bytes) std::abort();

    // Relayed again by walcast: the same event.
    const auto again_fields = walcast::encode_broadcast_fields(e.uid, e.nsp, e.event, e.args_json, e.rooms,
                                                               e.walcast ? e.walcast->str() : std::string());
    Fields view;
    for (std::size_t i = 0; i + 1 < again_fields.size(); i += 2) view.emplace_back(again_fields[i], again_fields[i + 1]);
    walcast::StreamEntryLimits roomy;
    roomy.max_data_bytes = SIZE_MAX;
    auto again = walcast::decode_entry(view, roomy);
    if (!again || again->kind != walcast::EntryKind::Broadcast) std::abort();
    const walcast::BroadcastEntry& a = again->entry;
    if (a.uid != e.uid || a.nsp != e.nsp || a.event != e.event || a.args_json != e.args_json ||
        a.arg_count != e.arg_count || a.rooms != e.rooms || !a.except.empty() || a.volatile_flag ||
        a.walcast.has_value() != e.walcast.has_value() || (a.walcast && !(*a.walcast == *e.walcast)))
        std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);

    check({{"uid", "0f3a9c27d1e4b856"}, {"nsp", "/"}, {"type", "3"}, {"data", input}});

    // Strings separated by NUL, taken in pairs.
    std::vector<std::string_view> parts;
    for (std::size_t at = 0;;) {
        const std::size_t nul = input.find('\0', at);
        parts.push_back(input.substr(at, nul == std::string_view::npos ? std::string_view::npos : nul - at));
        if (nul == std::string_view::npos) break;
        at = nul + 1;
    }
    Fields fields;
    for (std::size_t i = 0; i + 1 < parts.size(); i += 2) fields.emplace_back(parts[i], parts[i + 1]);
    check(fields);

    if (auto id = walcast::StreamId::parse(input)) {
        auto back = walcast::StreamId::parse(id->str());
        if (!back || *back != *id) std::abort();
        if (auto next = id->next(); next && !(*id < *next)) std::abort();
    }
    if (auto tag = walcast::WalcastTag::parse(input)) {
        auto back = walcast::WalcastTag::parse(tag->str());
        if (!back || !(*back == *tag)) std::abort();
    }
    return 0;
}
