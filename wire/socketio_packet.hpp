// Engine.IO v4 / Socket.IO v5 packets as one WebSocket text frame each: parsing what a
// client may send, and encoding what the server sends (shared/notes/protocols.md).
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

// A frame a client sent. Only the fields of its kind are set.
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
    // EVENT: name and the arguments after it. ACK: the arguments.
    std::string event;
    std::vector<PacketArg> args;
};

// Nesting deeper than this is refused before parsing, so hostile input cannot exhaust the
// stack of anything that walks the JSON.
constexpr int kMaxJsonDepth = 32;
constexpr std::size_t kMaxNamespaceBytes = 128;
constexpr std::uint64_t kMaxAckId = 9007199254740991ULL;  // 2^53-1: JavaScript's safe integers

// Parses one text frame from a client. Refused, with the reason: an empty frame; Engine.IO
// types a client never sends here (open, ping: v4 heartbeats are the server's, upgrade:
// WebSocket is the only transport) or unknown; a Socket.IO packet with an unknown type, a
// binary type (walcast never asks for attachments), CONNECT_ERROR (server only); a namespace
// that is too long or holds control characters; an ack id that is out of range or on a
// packet that cannot carry one; a payload that is not valid JSON or nested too deeply; a
// CONNECT payload that is not an object; a DISCONNECT with a payload; an EVENT whose payload
// is not a non-empty array starting with a string that is not a reserved event name; an ACK
// without an id or whose payload is not an array. Pong and close payloads are ignored.
Result<ClientPacket> parse_client_packet(std::string_view frame);

// Event names socket.io reserves for itself; a client may not emit them.
bool is_reserved_event_name(std::string_view name);

// Server frames.
// `0{"sid":..,"upgrades":[],"pingInterval":..,"pingTimeout":..,"maxPayload":..}`
std::string encode_open(std::string_view sid, std::uint64_t ping_interval_ms, std::uint64_t ping_timeout_ms,
                        std::uint64_t max_payload);
inline std::string encode_ping() { return "2"; }
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
