// RESP2, the Redis serialization protocol: encoding commands, and an incremental parser of
// the replies a Redis server sends, bounded in every size, count and depth because other
// clients of the same server (Node.js application servers) write what walcast reads.
// Pure: no sockets, no clock, no logging; any thread (one parser per connection).
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "decoder/result.hpp"

namespace walcast {

// `*<n>\r\n` then `$<len>\r\n<arg>\r\n` per argument: the form in which a client sends every
// command. Arguments are binary-safe (any bytes, CR and LF included).
std::string encode_command(std::initializer_list<std::string_view> args);
std::string encode_command(const std::vector<std::string>& args);
void append_command(std::string& out, std::initializer_list<std::string_view> args);
void append_command(std::string& out, const std::vector<std::string>& args);

// One reply. Null is both the null bulk string `$-1` (GET of a missing key) and the null
// array `*-1` (XREAD BLOCK timing out).
struct RespValue {
    enum class Type : std::uint8_t { SimpleString, Error, Integer, BulkString, Array, Null };

    Type type = Type::Null;
    std::string text;                 // SimpleString, Error (the message), BulkString
    std::int64_t integer = 0;         // Integer
    std::vector<RespValue> elements;  // Array

    static RespValue simple(std::string s) { return {Type::SimpleString, std::move(s), 0, {}}; }
    static RespValue error(std::string s) { return {Type::Error, std::move(s), 0, {}}; }
    static RespValue bulk(std::string s) { return {Type::BulkString, std::move(s), 0, {}}; }
    static RespValue number(std::int64_t n) { return {Type::Integer, {}, n, {}}; }
    static RespValue array(std::vector<RespValue> e) { return {Type::Array, {}, 0, std::move(e)}; }
    static RespValue null() { return {}; }

    bool is_error() const { return type == Type::Error; }
    bool is_null() const { return type == Type::Null; }
    bool is_array() const { return type == Type::Array; }
    // The text of a SimpleString or BulkString; nullopt for every other type (an Error too:
    // test is_error() first).
    std::optional<std::string_view> as_string() const {
        if (type == Type::SimpleString || type == Type::BulkString) return std::string_view(text);
        return std::nullopt;
    }
    std::optional<std::int64_t> as_integer() const {
        if (type == Type::Integer) return integer;
        return std::nullopt;
    }

    friend bool operator==(const RespValue& a, const RespValue& b) {
        return a.type == b.type && a.text == b.text && a.integer == b.integer && a.elements == b.elements;
    }
    friend bool operator!=(const RespValue& a, const RespValue& b) { return !(a == b); }
};

// A reply as a server writes it: the inverse of RespParser, for fake servers in tests.
// Null is written `$-1`. Recursive over the value's depth, which the parser bounds.
std::string encode_reply(const RespValue& value);

// What one connection's replies may hold. Every limit is a refusal, never a truncation.
struct RespLimits {
    std::size_t max_bulk_bytes = 64u << 20;      // one bulk string's length
    std::size_t max_array_elements = 1'000'000;  // one array's declared count
    std::size_t max_depth = 8;                   // arrays inside arrays; a top-level array is 1
    std::size_t max_line_bytes = 64u << 10;      // a simple string, error or integer line,
                                                 // and the header line of a bulk or array
    // One reply's whole size on the wire, and so what an incomplete reply may hold buffered.
    std::size_t max_reply_bytes = 128u << 20;
    // Values in one reply, nested ones included. A value costs ~80 bytes of memory and may
    // take 3 bytes of input (`+\r\n`), so this, not max_reply_bytes, bounds the memory.
    std::size_t max_reply_values = 2'000'000;
};

// Incremental parser of a stream of replies. Bytes are fed as they arrive, split anywhere;
// complete replies are queued in order and taken with next().
//
// After a refusal the parser stays failed: every later feed returns the same error, because
// nothing after a framing error can be trusted and the connection is to be dropped. Replies
// completed before the refused byte stay queued.
class RespParser {
public:
    explicit RespParser(RespLimits limits = {});

    // Appends `bytes` and parses every reply they complete. Returns the number of complete
    // replies queued (not yet taken by next()), or the refusal: what was wrong, the limit
    // passed if any, and the byte offset in the connection's stream (from the first byte
    // ever fed) of the element at fault.
    Result<std::size_t> feed(std::string_view bytes);

    // Moves the oldest complete reply into `out`; false when none is queued.
    bool next(RespValue& out);

    // Bytes of the reply in progress: received, not yet part of a complete reply (0 once
    // failed: what was held is freed).
    std::size_t buffered() const { return failure_ ? 0 : static_cast<std::size_t>(received_ - reply_start_); }
    std::size_t ready() const { return ready_.size(); }
    bool failed() const { return failure_.has_value(); }

private:
    struct Frame {
        RespValue array;
        std::size_t remaining;  // elements still to come
    };

    void parse();
    void complete(RespValue value);
    void fail(std::string what, std::uint64_t at);

    RespLimits limits_;
    std::string buf_;               // unparsed bytes start at buf_[pos_]
    std::size_t pos_ = 0;
    std::uint64_t buf_origin_ = 0;  // stream offset of buf_[0]
    std::uint64_t received_ = 0;    // bytes fed so far
    std::uint64_t reply_start_ = 0; // stream offset of the reply in progress
    std::size_t reply_values_ = 0;  // values begun in the reply in progress
    std::size_t line_searched_ = 0; // bytes after pos_ already searched for the line's LF
    bool in_bulk_ = false;          // a bulk header was read; its content starts at pos_
    std::size_t bulk_len_ = 0;
    std::vector<Frame> stack_;      // arrays in progress, outermost first
    std::deque<RespValue> ready_;
    std::optional<Error> failure_;
};

}  // namespace walcast
