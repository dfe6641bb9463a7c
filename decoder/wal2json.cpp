// wal2json v2 line decoder: a RapidJSON SAX handler that fills a reusable Change.
// SAX rather than a DOM: numbers arrive as their literal digits, and nothing is built that
// the Change does not keep.
#include "decoder/wal2json.hpp"

// RapidJSON's SSE2 paths (whitespace and the unescaped runs of strings, 16 bytes at a time)
// serve an in-situ parse; every x86-64 has SSE2. Only this file sees the macro, and every
// reader instantiation it makes is of its own Handler.
#if defined(__SSE2__) && !defined(RAPIDJSON_SSE2) && !defined(RAPIDJSON_SSE42)
#define RAPIDJSON_SSE2
#endif
#include <rapidjson/error/en.h>
#include <rapidjson/reader.h>

#include <charconv>
#include <cstring>
#include <vector>

namespace walcast {

const Column* find_column(const std::vector<Column>& columns, std::string_view name) {
    for (const Column& c : columns)
        if (c.name == name) return &c;
    return nullptr;
}

namespace {

enum class Key : std::uint8_t {
    None, Action, Xid, Timestamp, Lsn, NextLsn, Schema, Table, Columns, Identity, Pk,
    Transactional, Prefix, Content, Unknown,
};

Key top_key(std::string_view k) {
    switch (k.size()) {
    case 2: if (k == "pk") return Key::Pk; break;
    case 3:
        if (k == "xid") return Key::Xid;
        if (k == "lsn") return Key::Lsn;
        break;
    case 5: if (k == "table") return Key::Table; break;
    case 6:
        if (k == "action") return Key::Action;
        if (k == "schema") return Key::Schema;
        if (k == "prefix") return Key::Prefix;
        break;
    case 7:
        if (k == "nextlsn") return Key::NextLsn;
        if (k == "columns") return Key::Columns;
        if (k == "content") return Key::Content;
        break;
    case 8: if (k == "identity") return Key::Identity; break;
    case 9: if (k == "timestamp") return Key::Timestamp; break;
    case 13: if (k == "transactional") return Key::Transactional; break;
    }
    return Key::Unknown;
}

const char* key_name(Key k) {
    switch (k) {
    case Key::Action: return "action";
    case Key::Xid: return "xid";
    case Key::Timestamp: return "timestamp";
    case Key::Lsn: return "lsn";
    case Key::NextLsn: return "nextlsn";
    case Key::Schema: return "schema";
    case Key::Table: return "table";
    case Key::Columns: return "columns";
    case Key::Identity: return "identity";
    case Key::Pk: return "pk";
    case Key::Transactional: return "transactional";
    case Key::Prefix: return "prefix";
    case Key::Content: return "content";
    default: return "?";
    }
}

enum class ColKey : std::uint8_t { None, Name, Type, Value, Unknown };

class Handler : public rapidjson::BaseReaderHandler<rapidjson::UTF8<>, Handler> {
public:
    explicit Handler(Change& out) : out_(out) {}

    std::string error;
    bool seen_action = false;
    bool seen_columns = false;
    bool seen_identity = false;
    bool seen_transactional = false;
    bool seen_prefix = false;
    bool seen_content = false;
    std::size_t ncolumns = 0;
    std::size_t nidentity = 0;
    std::size_t npk = 0;

    bool Null() { return scalar(Value::Kind::Null, {}); }
    bool Bool(bool b) { return scalar(Value::Kind::Bool, b ? "true" : "false"); }
    bool RawNumber(const char* s, rapidjson::SizeType n, bool) {
        return scalar(Value::Kind::Number, std::string_view(s, n));
    }
    bool String(const char* s, rapidjson::SizeType n, bool) {
        return scalar(Value::Kind::String, std::string_view(s, n));
    }
    // Only reached without kParseNumbersAsStringsFlag; kept total for safety.
    bool Int(int) { return fail("unexpected binary number"); }
    bool Uint(unsigned) { return Int(0); }
    bool Int64(std::int64_t) { return Int(0); }
    bool Uint64(std::uint64_t) { return Int(0); }
    bool Double(double) { return Int(0); }

    bool Key(const char* s, rapidjson::SizeType n, bool) {
        if (skip_ > 0) return true;
        std::string_view k(s, n);
        switch (where_) {
        case Where::Top: key_ = top_key(k); return true;
        case Where::ColumnObject:
        case Where::PkObject:
            col_key_ = k == "name" ? ColKey::Name : k == "type" ? ColKey::Type
                     : k == "value" ? ColKey::Value : ColKey::Unknown;
            return true;
        default: return fail("unexpected key");
        }
    }

    // The parser descends into an object or array only when these return true, so the depth
    // check, first thing, is what bounds the parse's stack use, whatever the line holds.
    bool StartObject() {
        if (++depth_ > kMaxWal2jsonDepth) return too_deep();
        if (skip_ > 0) { ++skip_; return true; }
        switch (where_) {
        case Where::Root: where_ = Where::Top; return true;
        case Where::Top:
            if (key_ == Key::Unknown) { skip_ = 1; return true; }
            return wrong_type("an object");
        case Where::ColumnArray: {
            where_ = Where::ColumnObject;
            col_key_ = ColKey::None;
            Column& c = next_column();
            c.name.clear();
            c.type.clear();
            c.value.kind = Value::Kind::Null;
            c.value.text.clear();
            col_has_name_ = false;
            return true;
        }
        case Where::PkArray:
            where_ = Where::PkObject;
            col_key_ = ColKey::None;
            return true;
        case Where::ColumnObject:
            if (col_key_ == ColKey::Unknown) { skip_ = 1; return true; }
            return fail(std::string("column \"") + current_column().name + "\": " +
                        (col_key_ == ColKey::Value ? "value must be a scalar" : "field must be a string"));
        case Where::PkObject:
            skip_ = 1;
            return true;
        case Where::Done:
            break;
        }
        return fail("unexpected object");
    }

    bool EndObject(rapidjson::SizeType) {
        --depth_;
        if (skip_ > 0) { --skip_; return true; }
        switch (where_) {
        case Where::Top: where_ = Where::Done; return true;
        case Where::ColumnObject:
            if (!col_has_name_) return fail(std::string(key_name(array_key_)) + ": column without a name");
            where_ = Where::ColumnArray;
            return true;
        case Where::PkObject: where_ = Where::PkArray; return true;
        default: return fail("unexpected end of object");
        }
    }

    bool StartArray() {
        if (++depth_ > kMaxWal2jsonDepth) return too_deep();
        if (skip_ > 0) { ++skip_; return true; }
        if (where_ == Where::Top) {
            switch (key_) {
            case Key::Columns:
                seen_columns = true;
                array_key_ = key_;
                where_ = Where::ColumnArray;
                return true;
            case Key::Identity:
                seen_identity = true;
                array_key_ = key_;
                where_ = Where::ColumnArray;
                return true;
            case Key::Pk: where_ = Where::PkArray; return true;
            case Key::Unknown: skip_ = 1; return true;
            default: return wrong_type("an array");
            }
        }
        if (where_ == Where::ColumnObject && col_key_ == ColKey::Unknown) { skip_ = 1; return true; }
        if (where_ == Where::PkObject) { skip_ = 1; return true; }
        if (where_ == Where::Root) return fail("a wal2json line must be a JSON object");
        if (where_ == Where::ColumnObject)
            return fail(std::string("column \"") + current_column().name + "\": value must be a scalar");
        return fail(std::string(key_name(array_key_)) + ": elements must be objects");
    }

    bool EndArray(rapidjson::SizeType) {
        --depth_;
        if (skip_ > 0) { --skip_; return true; }
        where_ = Where::Top;
        return true;
    }

private:
    enum class Where : std::uint8_t { Root, Top, ColumnArray, ColumnObject, PkArray, PkObject, Done };

    Change& out_;
    Where where_ = Where::Root;
    walcast::Key key_ = walcast::Key::None;
    walcast::Key array_key_ = walcast::Key::None;
    ColKey col_key_ = ColKey::None;
    bool col_has_name_ = false;
    int depth_ = 0;  // objects and arrays open, the line's own object included
    int skip_ = 0;   // of those, how many belong to a value being skipped (< depth_)

    bool fail(std::string message) {
        error = std::move(message);
        return false;
    }

    bool too_deep() {
        return fail("objects and arrays nested deeper than " + std::to_string(kMaxWal2jsonDepth) + " levels");
    }

    bool wrong_type(const char* got) {
        return fail(std::string("field \"") + key_name(key_) + "\" has the wrong type (" + got + ")");
    }

    std::vector<Column>& current_array() {
        return array_key_ == walcast::Key::Columns ? out_.columns : out_.identity;
    }
    std::size_t& current_count() { return array_key_ == walcast::Key::Columns ? ncolumns : nidentity; }
    Column& current_column() { return current_array()[current_count() - 1]; }

    // Reuses an element left from a previous line when there is one, keeping its capacity.
    Column& next_column() {
        std::vector<Column>& v = current_array();
        std::size_t& n = current_count();
        if (n == v.size()) v.emplace_back();
        return v[n++];
    }

    bool scalar(Value::Kind kind, std::string_view text) {
        if (skip_ > 0) return true;
        switch (where_) {
        case Where::Top: return top_scalar(kind, text);
        case Where::ColumnObject: {
            Column& c = current_column();
            switch (col_key_) {
            case ColKey::Name:
                if (kind != Value::Kind::String) return fail(std::string(key_name(array_key_)) + ": column name must be a string");
                c.name.assign(text);
                col_has_name_ = true;
                return true;
            case ColKey::Type:
                if (kind != Value::Kind::String) return fail("column \"" + c.name + "\": type must be a string");
                c.type.assign(text);
                return true;
            case ColKey::Value:
                c.value.kind = kind;
                c.value.text.assign(text);
                return true;
            default: return true;
            }
        }
        case Where::PkObject:
            if (col_key_ == ColKey::Name && kind == Value::Kind::String) {
                if (npk == out_.pk.size()) out_.pk.emplace_back();
                out_.pk[npk++].assign(text);
            }
            return true;
        case Where::Root: return fail("a wal2json line must be a JSON object");
        default: return fail(std::string(key_name(array_key_)) + ": elements must be objects");
        }
    }

    bool top_scalar(Value::Kind kind, std::string_view text) {
        using K = walcast::Key;
        switch (key_) {
        case K::Action:
            if (kind != Value::Kind::String) return wrong_type("not a string");
            if (text.size() != 1 || std::string_view("BCIUDTM").find(text[0]) == std::string_view::npos)
                return fail("unknown action \"" + std::string(text) + "\"");
            out_.action = static_cast<Action>(text[0]);
            seen_action = true;
            return true;
        case K::Xid: {
            if (kind == Value::Kind::Null) { out_.xid.reset(); return true; }
            std::int64_t x = 0;
            auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), x);
            if (kind != Value::Kind::Number || ec != std::errc() || p != text.data() + text.size() || x < 0)
                return fail("field \"xid\" must be a non-negative integer or null");
            out_.xid = x;
            return true;
        }
        case K::Timestamp:
            if (kind == Value::Kind::Null) { out_.timestamp.clear(); return true; }
            if (kind != Value::Kind::String) return wrong_type("not a string");
            out_.timestamp.assign(text);
            return true;
        case K::Lsn:
        case K::NextLsn: {
            std::optional<Lsn>& dst = key_ == K::Lsn ? out_.lsn : out_.nextlsn;
            if (kind == Value::Kind::Null) { dst.reset(); return true; }
            if (kind != Value::Kind::String) return wrong_type("not a string");
            dst = Lsn::parse(text);
            if (!dst) return fail(std::string("field \"") + key_name(key_) + "\" is not an LSN: \"" + std::string(text) + "\"");
            return true;
        }
        case K::Schema:
        case K::Table:
        case K::Prefix:
        case K::Content: {
            if (kind != Value::Kind::String) return wrong_type("not a string");
            std::string& dst = key_ == K::Schema ? out_.schema : key_ == K::Table ? out_.table
                             : key_ == K::Prefix ? out_.prefix : out_.content;
            dst.assign(text);
            if (key_ == K::Prefix) seen_prefix = true;
            if (key_ == K::Content) seen_content = true;
            return true;
        }
        case K::Transactional:
            if (kind != Value::Kind::Bool) return wrong_type("not a boolean");
            out_.transactional = text == "true";
            seen_transactional = true;
            return true;
        case K::Columns:
        case K::Identity:
        case K::Pk:
            return wrong_type(kind == Value::Kind::Null ? "null" : "a scalar");
        default: return true;
        }
    }
};

std::optional<Error> check_complete(const Handler& h, const Change& c) {
    if (!h.seen_action) return Error{"missing field \"action\""};
    switch (c.action) {
    case Action::Insert:
    case Action::Update:
    case Action::Delete:
    case Action::Truncate:
        if (c.schema.empty() || c.table.empty())
            return Error{std::string("action ") + action_letter(c.action) + ": missing \"schema\" or \"table\""};
        if ((c.action == Action::Insert || c.action == Action::Update) && !h.seen_columns)
            return Error{std::string("action ") + action_letter(c.action) + ": missing \"columns\""};
        if (c.action == Action::Delete && !h.seen_identity)
            return Error{"action D: missing \"identity\""};
        return std::nullopt;
    case Action::Message:
        if (!h.seen_transactional || !h.seen_prefix || !h.seen_content)
            return Error{"action M: missing \"transactional\", \"prefix\" or \"content\""};
        return std::nullopt;
    default: return std::nullopt;
    }
}

}  // namespace

std::optional<Error> decode_wal2json_line(std::string_view line, Change& out) {
    out.xid.reset();
    out.timestamp.clear();
    out.lsn.reset();
    out.nextlsn.reset();
    out.schema.clear();
    out.table.clear();
    out.transactional = false;
    out.prefix.clear();
    out.content.clear();

    // The parse runs in situ on a copy of the line: strings are unescaped where they lie
    // instead of being pushed byte by byte onto the reader's stack, and their unescaped runs
    // are scanned 16 bytes at a time. The copy ends in a NUL, which ends the parse exactly as
    // the end of the line would (a NUL inside the line ends it too, as it did for a memory
    // stream), then in zeros up to the next 16-byte boundary and one block more, since the
    // SIMD scans load aligned blocks that may reach past the NUL. A copy of a line up to
    // kKeptCopy bytes is kept for the next line; a longer one is freed after its parse.
    constexpr std::size_t kPad = 32;
    constexpr std::size_t kKeptCopy = 1 << 20;
    thread_local std::vector<char> kept;
    std::vector<char> large;
    std::vector<char>& copy = line.size() + kPad <= kKeptCopy ? kept : large;
    if (copy.size() < line.size() + kPad) copy.resize(line.size() + kPad);
    std::memcpy(copy.data(), line.data(), line.size());
    std::memset(copy.data() + line.size(), 0, kPad);

    Handler h(out);
    rapidjson::InsituStringStream stream(copy.data());
    rapidjson::Reader reader;
    // No UTF-8 validation here: it was 29% of replay's time, and append_json_string checks
    // every byte it writes anyway (invalid sequences become U+FFFD there).
    // Recursive, not kParseIterativeFlag: the iterative parser costs 12% more instructions
    // per line (7.6% of a whole replay; callgrind on bench/gen_capture's lines). The recursion is bounded all the same, because the
    // handler refuses an object or array past kMaxWal2jsonDepth before it is descended into.
    constexpr unsigned flags = rapidjson::kParseInsituFlag | rapidjson::kParseNumbersAsStringsFlag;
    rapidjson::ParseResult r = reader.Parse<flags>(stream, h);
    out.columns.resize(h.ncolumns);
    out.identity.resize(h.nidentity);
    out.pk.resize(h.npk);
    if (r.IsError()) {
        if (!h.error.empty()) return Error{h.error + " (byte " + std::to_string(r.Offset()) + ")"};
        return Error{std::string("invalid JSON at byte ") + std::to_string(r.Offset()) + ": " +
                     rapidjson::GetParseError_En(r.Code())};
    }
    return check_complete(h, out);
}

Result<Change> decode_wal2json_line(std::string_view line) {
    Change c;
    if (auto err = decode_wal2json_line(line, c)) return *err;
    return c;
}

}  // namespace walcast
