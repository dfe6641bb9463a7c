// CopyData parsing and standby status encoding (see copy_message.hpp).
#include "decoder/copy_message.hpp"

namespace walcast {

namespace {

std::uint64_t read_be64(std::string_view s, std::size_t at) {
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < 8; ++i) v = (v << 8) | static_cast<unsigned char>(s[at + i]);
    return v;
}

void write_be64(std::string& out, std::uint64_t v) {
    for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>((v >> shift) & 0xFF));
}

}  // namespace

Result<CopyMessage> parse_copy_message(std::string_view bytes) {
    if (bytes.empty()) return make_error("empty CopyData message");
    switch (bytes[0]) {
    case 'w': {
        constexpr std::size_t header = 1 + 8 + 8 + 8;
        if (bytes.size() < header)
            return make_error("XLogData message too short: " + std::to_string(bytes.size()) +
                              " bytes, header needs " + std::to_string(header));
        XLogData m;
        m.wal_start = Lsn{read_be64(bytes, 1)};
        m.wal_end = Lsn{read_be64(bytes, 9)};
        m.send_time = static_cast<PgTimestamp>(read_be64(bytes, 17));
        m.payload = bytes.substr(header);
        return CopyMessage{m};
    }
    case 'k': {
        constexpr std::size_t size = 1 + 8 + 8 + 1;
        if (bytes.size() != size)
            return make_error("keepalive message has " + std::to_string(bytes.size()) +
                              " bytes, expected " + std::to_string(size));
        Keepalive m;
        m.wal_end = Lsn{read_be64(bytes, 1)};
        m.send_time = static_cast<PgTimestamp>(read_be64(bytes, 9));
        m.reply_requested = bytes[17] != 0;
        return CopyMessage{m};
    }
    default:
        return make_error(std::string("unknown CopyData message type byte 0x") +
                          "0123456789abcdef"[(static_cast<unsigned char>(bytes[0]) >> 4) & 0xF] +
                          "0123456789abcdef"[static_cast<unsigned char>(bytes[0]) & 0xF]);
    }
}

std::string encode_standby_status(Lsn write, Lsn flush, Lsn apply, PgTimestamp now,
                                  bool reply_requested) {
    std::string out;
    out.reserve(34);
    out.push_back('r');
    write_be64(out, write.value);
    write_be64(out, flush.value);
    write_be64(out, apply.value);
    write_be64(out, static_cast<std::uint64_t>(now));
    out.push_back(reply_requested ? 1 : 0);
    return out;
}

Result<std::size_t> message_payload_size(std::string_view header) {
    if (header.size() < kMessageHeader) return make_error("message header needs 5 bytes");
    std::uint32_t len = 0;
    for (std::size_t i = 1; i < 5; ++i) len = (len << 8) | static_cast<unsigned char>(header[i]);
    if (len < 4) return make_error("message length " + std::to_string(len) + " is under 4");
    return static_cast<std::size_t>(len - 4);
}

namespace {

void write_be32(std::string& out, std::uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((v >> shift) & 0xFF));
}

std::string framed(char type, std::string_view payload) {
    std::string out;
    out.reserve(payload.size() + kMessageHeader);
    out.push_back(type);
    write_be32(out, static_cast<std::uint32_t>(payload.size() + 4));
    out.append(payload);
    return out;
}

}  // namespace

std::string encode_query_message(std::string_view sql) {
    std::string body(sql);
    body.push_back('\0');
    return framed('Q', body);
}

std::string encode_copy_data(std::string_view payload) { return framed('d', payload); }

std::string encode_copy_done() { return framed('c', {}); }

Result<ServerNotice> parse_server_notice(std::string_view body) {
    ServerNotice n;
    std::size_t i = 0;
    while (i < body.size() && body[i] != '\0') {
        const char field = body[i++];
        const std::size_t end = body.find('\0', i);
        if (end == std::string_view::npos) return make_error("notice field without a terminator");
        const std::string_view value = body.substr(i, end - i);
        switch (field) {
        case 'S': n.severity.assign(value); break;
        case 'C': n.sqlstate.assign(value); break;
        case 'M': n.message.assign(value); break;
        case 'D': n.detail.assign(value); break;
        default: break;
        }
        i = end + 1;
    }
    if (i >= body.size()) return make_error("notice without its final terminator");
    return n;
}

}  // namespace walcast
