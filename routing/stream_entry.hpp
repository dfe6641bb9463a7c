// The entries of a Redis stream shared with @socket.io/redis-streams-adapter nodes: stream
// entry ids, and BROADCAST entries encoded for XADD and decoded from XREAD/XRANGE. Node
// servers write to the same stream, so decoding bounds every size and refuses every shape
// it cannot relay exactly. Pure: no sockets, no clock, no logging; any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "decoder/lsn.hpp"
#include "decoder/result.hpp"

namespace walcast {

// A stream entry id `<ms>-<seq>`, both unsigned 64-bit; the offset a Socket.IO client gets
// as the last argument of each event when connection-state recovery is on.
struct StreamId {
    std::uint64_t ms = 0;
    std::uint64_t seq = 0;

    // Exactly two runs of decimal digits joined by '-', each within 64 bits. Refused:
    // signs, spaces, a bare `<ms>`, `*`, `$`, `-`, `+` (Redis accepts some of these as
    // command arguments; none is an entry's id).
    static std::optional<StreamId> parse(std::string_view text);
    std::string str() const;
    // The smallest id after this one (seq + 1, carrying into ms): the exclusive start for
    // XRANGE on Redis before 6.2. nullopt after 18446744073709551615-18446744073709551615.
    std::optional<StreamId> next() const;

    friend bool operator==(StreamId a, StreamId b) { return a.ms == b.ms && a.seq == b.seq; }
    friend bool operator!=(StreamId a, StreamId b) { return !(a == b); }
    friend bool operator<(StreamId a, StreamId b) { return a.ms != b.ms ? a.ms < b.ms : a.seq < b.seq; }
    friend bool operator<=(StreamId a, StreamId b) { return !(b < a); }
    friend bool operator>(StreamId a, StreamId b) { return b < a; }
    friend bool operator>=(StreamId a, StreamId b) { return !(a < b); }
};

// walcast's own field on the entries it appends, `walcast <end lsn>:<index>:<xid>`
// (e.g. `0/1A2B3C4:0:748`): the event's place in the WAL, so a new leader can find what the
// previous one already appended. Node servers ignore fields they do not know.
struct WalcastTag {
    Lsn end_lsn;               // the transaction's commit end LSN
    std::uint32_t index = 0;   // the event's index within the transaction
    std::int64_t xid = 0;      // the transaction id, >= 0

    // `X/Y:<index>:<xid>`: an LSN as Lsn::parse reads it, then decimal digits only.
    static std::optional<WalcastTag> parse(std::string_view text);
    std::string str() const;

    friend bool operator==(const WalcastTag& a, const WalcastTag& b) {
        return a.end_lsn == b.end_lsn && a.index == b.index && a.xid == b.xid;
    }
};

// The adapter's MessageType for BROADCAST, as the decimal string in the `type` field.
constexpr int kBroadcastMessageType = 3;

// The field/value list of one BROADCAST entry for `XADD <stream> MAXLEN ~ <n> * <fields...>`:
//   uid <uid> nsp <nsp> type 3 data <json> walcast <tag>
// where json = {"packet":{"type":2,"data":[<event>,<payload>]},
//               "opts":{"rooms":[<rooms>],"except":[],"flags":{}}}.
// `payload_json` is one compact JSON value used as it is (an empty one gives an event with
// no argument); the event name and rooms are escaped (bytes that are not UTF-8 become
// U+FFFD). An empty `walcast_tag` leaves the walcast field out.
std::vector<std::string> encode_broadcast_fields(std::string_view uid, std::string_view nsp, std::string_view event_name,
                                                 std::string_view payload_json, const std::vector<std::string>& rooms,
                                                 std::string_view walcast_tag);

// What a decode may accept. Every limit is a refusal, never a truncation.
struct StreamEntryLimits {
    std::size_t max_fields = 64;                // field/value pairs in one entry
    std::size_t max_uid_bytes = 64;
    std::size_t max_nsp_bytes = 256;
    std::size_t max_data_bytes = 16u << 20;     // the `data` field
    std::size_t max_json_depth = 64;            // arrays/objects inside `data`; data itself is 1
    std::size_t max_rooms = 10'000;             // in opts.rooms, and in opts.except
    std::size_t max_name_bytes = 4096;          // the event name, and each room name (decoded)
};

// A BROADCAST entry walcast can relay to its own clients.
struct BroadcastEntry {
    std::string uid;  // the writer's adapter id; equal to walcast's own for its own entries
    std::string nsp;  // the namespace, e.g. "/"
    int type = kBroadcastMessageType;
    std::string event;  // the event name, decoded (escape it again to write it)
    // The arguments after the event name as compact JSON, comma-separated, copied from the
    // entry without a second parse (strings and numbers exactly as written, whitespace
    // dropped): `42[<event as JSON>,<args_json>,"<offset>"]` is the frame to send. Empty
    // when the event has no argument (then there is no comma to write after the name).
    std::string args_json;
    std::size_t arg_count = 0;
    std::vector<std::string> rooms;   // opts.rooms, decoded; empty means every socket
    std::vector<std::string> except;  // opts.except, decoded
    // opts.flags holds `volatile` (any value): the adapter then delivers the event without
    // appending the offset, and a recovering client does not rely on it.
    bool volatile_flag = false;
    std::optional<WalcastTag> walcast;  // walcast's field; nullopt on a Node server's entry
};

enum class EntryKind : std::uint8_t {
    Broadcast,     // a BROADCAST walcast relays: all of `entry` is set
    NotBroadcast,  // another MessageType (heartbeats 1/2, socket joins 4/5, ...): skip quietly
    // A BROADCAST walcast cannot relay as text: a binary (base64 msgpack) payload, an
    // acknowledgement requested, a packet that is not an EVENT. `reason` says which.
    Unrelayable,
};

struct DecodedEntry {
    EntryKind kind = EntryKind::NotBroadcast;
    std::string reason;  // Unrelayable: why, for a debug log and a counter
    // Broadcast: everything. NotBroadcast and Unrelayable: uid, nsp, type and walcast only.
    BroadcastEntry entry;
};

// Decodes one entry's field/value pairs (in the order XREAD returns them).
// Refused, with the field and byte offset: more than max_fields pairs; uid, nsp or type
// missing, repeated or malformed (type must be a canonical decimal number); a walcast field
// that is not a WalcastTag; for BROADCAST: no data, data over max_data_bytes, data that is
// not one valid JSON object (strict RFC 8259, UTF-8 validated) or nests past
// max_json_depth; a repeated key among those read; no packet or no opts; packet.data not a
// non-empty array starting with a string; an event name over max_name_bytes, holding an
// escaped lone surrogate, or reserved by Socket.IO (connect, disconnect, ...: a Node server
// refuses to emit those); opts.rooms or opts.except missing or not arrays of strings, over
// max_rooms or with a name over max_name_bytes; opts.flags not an object.
// Unrelayable (not an error): data not starting with '{'; packet.type other than 2; a
// packet `id`; a `requestId` (an acknowledged broadcast, which the adapter's 0.2.x
// versions sent through the stream).
Result<DecodedEntry> decode_entry(const std::vector<std::pair<std::string_view, std::string_view>>& fields,
                                  const StreamEntryLimits& limits = {});

}  // namespace walcast
