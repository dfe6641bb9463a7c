// One wal2json format-version 2 line decoded into a Change record.
// Pure; any thread. Numbers keep their exact digits; an unchanged TOASTed column that
// wal2json leaves out of an UPDATE stays absent (it is never turned into null).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "decoder/lsn.hpp"
#include "decoder/result.hpp"

namespace walcast {

enum class Action : char {
    Begin = 'B',
    Commit = 'C',
    Insert = 'I',
    Update = 'U',
    Delete = 'D',
    Truncate = 'T',
    Message = 'M',
};

// The letter wal2json writes for an action ("B", "I", ...): the enum's own value.
inline char action_letter(Action a) { return static_cast<char>(a); }

// A column value as wal2json wrote it. Number keeps the literal digits ("9007199254740993",
// "12345678.90"); String is unescaped and not validated as UTF-8 (the JSON writer does
// that); Bool is "true" or "false".
struct Value {
    enum class Kind : std::uint8_t { Null, Bool, Number, String };
    Kind kind = Kind::Null;
    std::string text;

    bool is_null() const { return kind == Kind::Null; }
};

struct Column {
    std::string name;
    std::string type;
    Value value;
};

struct Change {
    Action action = Action::Begin;
    std::optional<std::int64_t> xid;  // null for non-transactional messages
    std::string timestamp;            // as wal2json printed it, e.g. "2026-11-26 03:11:59.98+00"
    std::optional<Lsn> lsn;
    std::optional<Lsn> nextlsn;       // B and C: end of the commit record
    std::string schema;
    std::string table;
    std::vector<Column> columns;      // I, U: the new row
    std::vector<Column> identity;     // U, D: the old key, or the whole old row (FULL)
    std::vector<std::string> pk;      // primary key names, when wal2json was asked for them
    bool transactional = false;       // M
    std::string prefix;               // M
    std::string content;              // M, unescaped

    bool is_row_change() const {
        return action == Action::Insert || action == Action::Update || action == Action::Delete;
    }
};

// Objects and arrays nested deeper than this make a line malformed (the top-level object is
// depth 1). wal2json's own lines nest at most 3 deep (line, columns, column); the rest of the
// bound is room for unknown keys, whose values are skipped whatever they hold.
inline constexpr int kMaxWal2jsonDepth = 64;

// Finds a column by name; nullptr when absent.
const Column* find_column(const std::vector<Column>& columns, std::string_view name);

// Decodes one line into `out`, reusing its storage (the hot path of replay and run).
// On error `out` is unspecified and the message names the byte offset or the field.
// Nesting past kMaxWal2jsonDepth is refused before it is parsed, so no line, however deep,
// can exhaust the stack. The line's length is the caller's to bound (`out` holds copies of
// its strings).
std::optional<Error> decode_wal2json_line(std::string_view line, Change& out);

Result<Change> decode_wal2json_line(std::string_view line);

}  // namespace walcast
