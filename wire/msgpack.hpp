// The MessagePack the Redis adapter stores: a value tree, a bounded decoder, an encoder
// writing the forms @msgpack/msgpack writes, a JSON bridge, and the recoverable session
// blob `SET sio:session:<pid> <base64(msgpack({sid, pid, rooms, data}))>` that any node of a
// cluster, walcast or Node, may write and any may restore.
// Pure: no sockets, no clock, no logging; any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "decoder/result.hpp"

namespace walcast {

struct MsgMember;

// One MessagePack value. Integers: the decoder gives UInt for every non-negative one and Int
// for every negative one, whatever width they were written in; the encoder takes either
// (an Int >= 0 is written as an unsigned form) and equality compares them as numbers.
struct MsgValue {
    enum class Type : std::uint8_t { Nil, Bool, Int, UInt, Float, String, Binary, Ext, Array, Map };

    Type type = Type::Nil;
    bool boolean = false;
    std::int8_t ext_type = 0;  // Ext: the application type (-1 is a timestamp, a JS Date)
    std::int64_t int_value = 0;
    std::uint64_t uint_value = 0;
    double float_value = 0;
    std::string bytes;  // String (UTF-8 as written, not validated), Binary, Ext payload
    std::vector<MsgValue> array;
    std::vector<MsgMember> map;  // in the order written

    static MsgValue nil();
    static MsgValue of_bool(bool b);
    static MsgValue of_int(std::int64_t n);
    static MsgValue of_uint(std::uint64_t n);
    static MsgValue of_float(double d);
    static MsgValue of_string(std::string s);
    static MsgValue of_binary(std::string b);
    static MsgValue of_ext(std::int8_t type, std::string payload);
    static MsgValue of_array(std::vector<MsgValue> elements);
    static MsgValue of_map(std::vector<MsgMember> members);
    static MsgValue empty_map();

    bool is_string() const { return type == Type::String; }
    bool is_map() const { return type == Type::Map; }
    // The value of the first member whose key is the string `key`; nullptr when this is not
    // a map or has no such member.
    const MsgValue* find(std::string_view key) const;

    // Structural equality; integers by numeric value, floats by bit pattern (so NaN equals
    // itself and 0.0 differs from -0.0), maps in order.
    friend bool operator==(const MsgValue& a, const MsgValue& b);
    friend bool operator!=(const MsgValue& a, const MsgValue& b) { return !(a == b); }
};

struct MsgMember {
    MsgValue key;
    MsgValue value;
};

// Everything a decode may build. Every limit is a refusal, never a truncation.
struct MsgpackLimits {
    std::size_t max_bytes = 1u << 20;           // the whole encoded input
    std::size_t max_depth = 32;                 // containers inside containers; the top one is 1
    std::size_t max_string_bytes = 1u << 20;    // one str, bin or ext payload
    std::size_t max_container_entries = 100'000;  // one array's elements, one map's members
    // Values in the whole tree, keys and containers included. A value costs ~120 bytes of
    // memory and may take one byte of input, so this bounds the memory a decode takes.
    std::size_t max_values = 250'000;
};

// Decodes exactly one value filling `bytes` (trailing bytes are refused, as
// @msgpack/msgpack refuses them). Refused with what and the byte offset: a truncated value;
// the never-used byte 0xC1; a length or count past a limit or past the bytes left; nesting
// past max_depth; a map key that is not a string or a number (@msgpack/msgpack refuses
// those), or the key "__proto__" (refused there too). Ext values are kept opaque: a
// Node app's Date in socket.data survives a decode and an encode unchanged.
Result<MsgValue> decode_msgpack(std::string_view bytes, const MsgpackLimits& limits = {});

// The bytes @msgpack/msgpack writes for the same value: each integer, string, binary,
// array and map in its smallest form; floats as float64. Recursive over the tree's depth,
// which the decoder bounds; a tree built by hand must stay shallow too.
std::string encode_msgpack(const MsgValue& value);
void append_msgpack(std::string& out, const MsgValue& value);

// What a JSON rendering does with a binary value, which JSON has no form for.
enum class BinaryInJson : std::uint8_t {
    Refuse,  // an error naming the value's size
    Base64,  // a string holding its standard base64
};

// Compact JSON text of a value, as JSON.stringify would write the decoded object: strings
// with invalid UTF-8 get U+FFFD (as @msgpack/msgpack's decoder substitutes it); integer map
// keys become strings ("1"); NaN and the infinities become null. Refused: ext values, map
// keys that are floats or not scalars, binary under BinaryInJson::Refuse.
Result<std::string> msgpack_value_to_json(const MsgValue& value, BinaryInJson binary = BinaryInJson::Refuse);
// decode_msgpack then msgpack_value_to_json.
Result<std::string> msgpack_to_json(std::string_view bytes, const MsgpackLimits& limits = {},
                                    BinaryInJson binary = BinaryInJson::Refuse);
// A JSON text as a value: integers as Int/UInt (exact to 64 bits), other numbers as Float
// (correctly rounded; below the double range +-0 and above it +-Infinity, as JSON.parse
// gives, except those RapidJSON's scan already calls too big, like 1e400: refused),
// objects as maps in text order. Bounded by the same limits (max_bytes is the text's size).
// Refused: invalid JSON or UTF-8, nesting past max_depth, the key "__proto__" (which
// @msgpack/msgpack would refuse to read back). JSON escapes of lone UTF-16
// surrogates are refused (or, a lone low one, kept as its 3-byte encoding) by the parser.
Result<MsgValue> json_to_msgpack_value(std::string_view json, const MsgpackLimits& limits = {});

// walcast's own fields in a session's `data`: {"walcast": {"user", "tenant", "base"}}.
struct WalcastSessionFields {
    std::string user;
    std::string tenant;
    std::string base;  // the stream offset the session's events are counted from
};

// The adapter's recoverable session (the value of sio:session:<pid>, before base64).
// `rooms` holds the socket's own id room too (a socket joins its sid on connect).
struct AdapterSession {
    std::string sid;
    std::string pid;
    std::vector<std::string> rooms;
    MsgValue data = MsgValue::empty_map();  // socket.data: {} unless the app set something
};

// A decoded session and what walcast found of its own in `data`.
struct DecodedSession {
    AdapterSession session;
    // Set when data is a map holding "walcast"; nullopt for a session a Node server wrote
    // with data of its own (or none).
    std::optional<WalcastSessionFields> walcast;
};

// The msgpack map {sid, pid, rooms, data}, keys in that order, as the Node adapter writes it.
std::string encode_session(const AdapterSession& session);
// `data` = {"walcast": {"user": .., "tenant": .., "base": ..}}.
MsgValue walcast_session_data(const WalcastSessionFields& fields);

// Accepts any map holding sid and pid (non-empty strings), rooms (an array of strings) and
// optionally data (any value; absent becomes nil); other keys are ignored, as Node ignores
// them; each of the four at most once. `data.walcast`, when present, must be a map whose
// user, tenant and base are strings (other keys ignored): anything else is refused rather
// than guessed at.
Result<DecodedSession> decode_session(std::string_view bytes, const MsgpackLimits& limits = {});

// The same over the base64 text stored in Redis. The text may be up to
// 4 * ceil(max_bytes / 3) characters.
std::string encode_session_blob(const AdapterSession& session);
Result<DecodedSession> decode_session_blob(std::string_view base64_text, const MsgpackLimits& limits = {});

}  // namespace walcast
