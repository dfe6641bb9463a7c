// Engine.IO v4 / Socket.IO v5 packets, one per WebSocket text frame or per packet of a
// polling payload: parsing what a client may send, and encoding what the server sends.
// Pure: no sockets, no logging; any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "decoder/result.hpp"

namespace walcast {

enum class EioType : std::uint8_t { Open = 0, Close = 1, Ping = 2, Pong = 3, Message = 4, Upgrade = 5, Noop = 6 };

enum class SioType : std::uint8_t {
    Connect = 0,
    Disconnect = 1,
    Event = 2,
    Ack = 3,
    ConnectError = 4,
    BinaryEvent = 5,
    BinaryAck = 6,
};

// One argument of an EVENT or ACK: a string's decoded text, or any other JSON value as
// compact JSON text.
struct PacketArg {
    bool is_string = false;
    std::string text;
};

// A frame a client sent. Only the fields of its kind are set. `eio` is Ping only for the
// upgrade probe `2probe` and Upgrade only for `5`, both parsed on ClientChannel::UpgradeProbe.
struct ClientPacket {
    EioType eio = EioType::Noop;
    // eio == Message:
    SioType type = SioType::Connect;
    std::string nsp = "/";                // namespace; "/" when the packet names none
    std::optional<std::uint64_t> ack_id;  // EVENT asking for an ack, or ACK
    // CONNECT: the auth object, if one was sent, and its `token` when that is a string.
    bool has_auth = false;
    std::optional<std::string> auth_token;
    std::optional<std::string> auth_pid;     // recovery: the session to resume
    std::optional<std::string> auth_offset;  // recovery: the last event offset received
    std::optional<std::string> auth_snapshot;  // walcast.snapshot() token for the user and tenant rooms
    // EVENT: name and the arguments after it. ACK: the arguments.
    std::string event;
    std::vector<PacketArg> args;
};

// Nesting deeper than this is refused before parsing; RapidJSON also parses iteratively, so
// no input can exhaust the stack of the parser or of anything that walks the JSON.
constexpr int kMaxJsonDepth = 32;
constexpr std::size_t kMaxNamespaceBytes = 128;
constexpr std::uint64_t kMaxAckId = 9007199254740991ULL;  // 2^53-1: JavaScript's safe integers

// Where a client packet arrived, which decides the Engine.IO types it may be.
enum class ClientChannel : std::uint8_t {
    // The session's current transport: a WebSocket opened without `sid`, a WebSocket whose
    // upgrade has completed, or one packet of a polling POST body.
    Session,
    // A WebSocket opened with the `sid` of a polling session whose upgrade has not completed
    // (no `5` received on it yet). Only `2probe` and `5` are valid here.
    UpgradeProbe,
};

// Parses one packet from a client. Refused, with the reason: an empty frame; an unknown
// Engine.IO type; on Session: open (only the server opens), ping (v4 heartbeats are the
// server's; `2probe` too, it belongs to an upgrade), upgrade `5`; on UpgradeProbe: anything
// but exactly `2probe` (eio Ping) or exactly `5` (eio Upgrade). Inside a Socket.IO message:
// an unknown type, a binary type (walcast never asks for attachments), CONNECT_ERROR (server
// only); a namespace that is too long or holds control characters; an ack id that is out of
// range or on a packet that cannot carry one; a payload that is not valid JSON or nested too
// deeply; a CONNECT payload that is not an object; a DISCONNECT with a payload; an EVENT
// whose payload is not a non-empty array starting with a string that is not a reserved event
// name; an ACK without an id or whose payload is not an array. Pong and close payloads are
// ignored.
//
// What the parser cannot know, and the server must check itself:
// - the channel: UpgradeProbe only for a WebSocket whose `sid` names a live polling session
//   with no other WebSocket upgrading or upgraded (the reference server closes a second one
//   at once), Session for everything else;
// - on UpgradeProbe, a Ping is answered `3probe` on that WebSocket (encode_probe_pong), and
//   a GET pending on the polling transport is answered `6` (encode_noop) so the client's
//   poll returns and it can send `5`; the client may send `5` right after `2probe`, before
//   `3probe` reaches it, and the reference server also takes `5` without a probe first;
// - on Upgrade, the WebSocket becomes the session's transport: packets still buffered for
//   polling go to it, in order, and from then on a polling request with that sid gets HTTP
//   400 and frames on the WebSocket are parsed as Session;
// - a refusal on UpgradeProbe closes that WebSocket only: the polling session goes on (as
//   the reference server does), and an upgrade not completed in time (the reference allows
//   10 s) is closed the same way;
// - a refusal on Session is a protocol error that ends the session; for a polling POST that
//   is HTTP 400 and the session closed.
Result<ClientPacket> parse_client_packet(std::string_view frame, ClientChannel channel = ClientChannel::Session);

// Event names socket.io reserves for itself; a client may not emit them.
bool is_reserved_event_name(std::string_view name);

// Server frames.
// `0{"sid":..,"upgrades":[..],"pingInterval":..,"pingTimeout":..,"maxPayload":..}`.
// `upgrades` lists the transports the client may upgrade to: ["websocket"] for a session
// opened by polling when WebSocket is enabled, [] for a session opened on a WebSocket.
std::string encode_open(std::string_view sid, const std::vector<std::string>& upgrades, std::uint64_t ping_interval_ms,
                        std::uint64_t ping_timeout_ms, std::uint64_t max_payload);
// The same with `"upgrades":[]`, for a session opened on a WebSocket.
std::string encode_open(std::string_view sid, std::uint64_t ping_interval_ms, std::uint64_t ping_timeout_ms,
                        std::uint64_t max_payload);
inline std::string encode_ping() { return "2"; }
// `3probe`: the answer to a client's `2probe` on an upgrading WebSocket.
inline std::string encode_probe_pong() { return "3probe"; }
// `6`: ends a pending polling GET when the session upgrades (or has nothing else to say).
inline std::string encode_noop() { return "6"; }
// `40{"sid":".."}`: CONNECT accepted on "/"; with a pid (connection-state recovery)
// `40{"sid":"..","pid":".."}`.
std::string encode_connect(std::string_view sid, std::string_view pid = {});
// `44{"message":".."}` on "/", `44/admin,{"message":".."}` elsewhere.
std::string encode_connect_error(std::string_view nsp, std::string_view message);
// `41`: "io server disconnect"; the client will not reconnect by itself.
inline std::string encode_disconnect() { return "41"; }
// `42["name",payload]` where `payload_json` is one JSON value, used as it is; with an
// offset (connection-state recovery) `42["name",payload,"offset"]`, the offset last.
std::string encode_event(std::string_view name, std::string_view payload_json, std::string_view offset = {});
void append_event(std::string& out, std::string_view name, std::string_view payload_json,
                  std::string_view offset = {});
// `43<id>[payload]` where `payload_json` is the one JSON value acknowledged.
std::string encode_ack(std::uint64_t id, std::string_view payload_json);

}  // namespace walcast
