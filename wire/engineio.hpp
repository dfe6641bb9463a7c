// Engine.IO v4 over HTTP long-polling: the payload framing of POST and GET bodies, the
// request's query string, and the JSON refusals the reference server answers.
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

// ---- payloads ----------------------------------------------------------------------------
// A polling body is one or more packets joined by the record separator 0x1E, each packet
// `<type digit>[<data>]` exactly as one WebSocket frame would carry it, so each packet is
// then read by parse_client_packet. A packet whose text is JSON cannot hold a raw 0x1E (JSON
// escapes every control character), which is what makes the separator safe.
constexpr char kRecordSeparator = '\x1e';

// Splits a POST body into its packets, as views into `body` (valid while `body` is).
// Refused, naming the packet (from 1) and the byte offset: an empty body; an empty packet
// (the body starts or ends with a separator, or holds two in a row: the reference server
// reads that as a parse error and closes the session); more than `max_packets` packets
// (bounding the work one request can cause); a binary packet, `b<base64>`, which walcast
// never asks for. Packet types and contents are not checked here. A refusal of a POST body
// means HTTP 400 and the session closed.
Result<std::vector<std::string_view>> split_polling_payload(std::string_view body, std::size_t max_packets);

// A POST body as the server takes it: split_polling_payload, and then refused when the body
// is not well-formed UTF-8 (a polling body is text, as a WebSocket text frame is, which
// websocketpp closes with 1007 when it is not) or a packet's first byte is not an Engine.IO
// type digit 0-6 (the reference server's decoder fails the payload: "parse error"). Both
// are checked before the POST is acknowledged, so that they answer HTTP 400. What each
// packet says is still the packet parser's.
Result<std::vector<std::string_view>> read_polling_post(std::string_view body, std::size_t max_packets);

// Appends one encoded packet (non-empty, without 0x1E: what the encode_* functions of
// socketio_packet.hpp produce) to a GET response body, with a separator unless the body is
// still empty.
void append_polling_packet(std::string& payload, std::string_view packet);

// Response headers and bodies of the polling transport, as the reference server sends them.
// A GET answers 200 with the payload as text/plain; charset=UTF-8.
constexpr std::string_view kPollingPayloadContentType = "text/plain; charset=UTF-8";
// A POST whose packets were all taken answers 200 with the body "ok" as text/html (text/html
// rather than text/plain keeps some user agents from offering a download).
constexpr std::string_view kPollingPostAck = "ok";
constexpr std::string_view kPollingPostAckContentType = "text/html";

// ---- refusals ----------------------------------------------------------------------------
// The reference server's error codes, answered as a JSON body to a refused HTTP request.
enum class EngineError : std::uint8_t {
    UnknownTransport = 0,            // transport absent, unknown or not enabled
    UnknownSid = 1,                  // sid names no live session
    BadHandshakeMethod = 2,          // a request without sid that is not a GET
    BadRequest = 3,                  // anything else malformed
    Forbidden = 4,                   // the server's own admission check said no
    UnsupportedProtocolVersion = 5,  // EIO absent or not "4"
};

// "Transport unknown", "Session ID unknown", "Bad handshake method", "Bad request",
// "Forbidden", "Unsupported protocol version".
std::string_view engine_error_message(EngineError error);
// 403 for Forbidden, 400 for every other code.
int engine_error_http_status(EngineError error);
// `{"code":<n>,"message":"<message>"}`, sent with Content-Type application/json. An empty
// `message` means the code's own; the reference server replaces it only for Forbidden, with
// the reason its admission check gave.
std::string encode_engine_error(EngineError error, std::string_view message = {});
constexpr std::string_view kEngineErrorContentType = "application/json";

// ---- the query string --------------------------------------------------------------------
// What the server reads from `/socket.io/?EIO=4&transport=polling&sid=..&t=..`. Other keys
// (`t`, a cache buster; `b64`; whatever the application adds) are skipped unread.
struct EngineQuery {
    std::optional<std::string> eio;        // "4" is the only version served
    std::optional<std::string> transport;  // see engine_transport
    // The session, on every request after the handshake. An empty `sid=` is absent, as the
    // reference server treats it: the request is a handshake.
    std::optional<std::string> sid;
    bool jsonp = false;  // a `j` key: JSONP polling, which socket.io-client v3+ never uses
};

constexpr std::size_t kMaxEngineQueryBytes = 4096;
constexpr std::size_t kMaxEngineQueryPairs = 64;

// Parses the text after '?'. Keys and the values of EIO, transport and sid are
// percent-decoded as the reference server does (`+` is a space, `%XY` a byte); other values
// are never decoded. Refused, with the offset: a query longer than kMaxEngineQueryBytes or
// with more than kMaxEngineQueryPairs pairs (empty pairs between `&&` are not counted); EIO,
// transport or sid given twice; a bad percent escape in one of their values, or a decoded
// value with a byte outside printable ASCII (no legitimate client sends one). A refused
// query answers EngineError::BadRequest.
//
// The server then applies the reference server's checks, in its order: transport absent or
// not enabled -> UnknownTransport; with a sid: unknown -> UnknownSid, a transport other than
// the session's outside an upgrade -> BadRequest; without a sid: not a GET ->
// BadHandshakeMethod, websocket without an Upgrade header -> BadRequest, admission refused
// -> Forbidden, then EIO not "4" -> UnsupportedProtocolVersion. (The reference checks EIO
// only at the handshake.)
Result<EngineQuery> parse_engine_query(std::string_view query);

enum class EngineTransport : std::uint8_t { Polling, WebSocket };
// "polling" or "websocket"; nullopt for anything else.
std::optional<EngineTransport> engine_transport(std::string_view name);

}  // namespace walcast
