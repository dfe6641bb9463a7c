// RESP2 command encoding and the incremental reply parser (see resp.hpp). The parser keeps
// the arrays in progress on an explicit stack, so nesting never recurses, and it looks at no
// byte beyond the limit that refuses it: fed in one call or byte by byte, the same input
// gives the same replies and the same error. Pure; any thread.
#include "wire/resp.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <limits>

namespace walcast {

namespace {

void append_decimal(std::string& out, std::int64_t n) {
    char buf[24];
    const auto r = std::to_chars(buf, buf + sizeof buf, n);
    out.append(buf, static_cast<std::size_t>(r.ptr - buf));
}

template <class Args>
std::size_t command_size(const Args& args) {
    std::size_t n = 16;
    for (const auto& a : args) n += std::string_view(a).size() + 16;
    return n;
}

template <class Args>
void append_args(std::string& out, const Args& args) {
    out.reserve(out.size() + command_size(args));
    out += '*';
    append_decimal(out, static_cast<std::int64_t>(args.size()));
    out += "\r\n";
    for (const auto& a : args) {
        const std::string_view arg(a);
        out += '$';
        append_decimal(out, static_cast<std::int64_t>(arg.size()));
        out += "\r\n";
        out += arg;
        out += "\r\n";
    }
}

void append_reply(std::string& out, const RespValue& v) {
    switch (v.type) {
    case RespValue::Type::SimpleString: out += '+'; out += v.text; out += "\r\n"; break;
    case RespValue::Type::Error: out += '-'; out += v.text; out += "\r\n"; break;
    case RespValue::Type::Integer: out += ':'; append_decimal(out, v.integer); out += "\r\n"; break;
    case RespValue::Type::BulkString:
        out += '$';
        append_decimal(out, static_cast<std::int64_t>(v.text.size()));
        out += "\r\n";
        out += v.text;
        out += "\r\n";
        break;
    case RespValue::Type::Array:
        out += '*';
        append_decimal(out, static_cast<std::int64_t>(v.elements.size()));
        out += "\r\n";
        for (const RespValue& e : v.elements) append_reply(out, e);
        break;
    case RespValue::Type::Null: out += "$-1\r\n"; break;
    }
}

// A RESP integer: an optional '-' and at least one decimal digit, nothing else, within
// int64. Returns why not, or nullptr.
const char* parse_integer(std::string_view s, std::int64_t& out) {
    bool negative = false;
    std::size_t i = 0;
    if (!s.empty() && s[0] == '-') {
        negative = true;
        i = 1;
    }
    if (i == s.size()) return "empty integer";
    // Magnitude limit: 2^63 - 1, or 2^63 for a negative number.
    const std::uint64_t limit = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) + (negative ? 1 : 0);
    std::uint64_t v = 0;
    for (; i < s.size(); ++i) {
        const char c = s[i];
        if (c < '0' || c > '9') return "integer holds a byte that is not a decimal digit";
        const auto d = static_cast<std::uint64_t>(c - '0');
        if (v > (limit - d) / 10) return "integer out of the 64-bit signed range";
        v = v * 10 + d;
    }
    if (negative) out = v == (std::uint64_t{1} << 63) ? std::numeric_limits<std::int64_t>::min()
                                                      : -static_cast<std::int64_t>(v);
    else out = static_cast<std::int64_t>(v);
    return nullptr;
}

std::string describe_byte(unsigned char c) {
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string s = "0x";
    s += hex[c >> 4];
    s += hex[c & 0xF];
    if (c >= 0x21 && c < 0x7F) {
        s += " '";
        s += static_cast<char>(c);
        s += '\'';
    }
    return s;
}

// a + b, or the largest value when that overflows (limits may be set to "unlimited").
template <class T>
T saturating_add(T a, T b) {
    return a > std::numeric_limits<T>::max() - b ? std::numeric_limits<T>::max() : a + b;
}

std::string limit_text(const char* name, std::size_t value) {
    return std::string(" (limit ") + name + " = " + std::to_string(value) + ")";
}

}  // namespace

std::string encode_command(std::initializer_list<std::string_view> args) {
    std::string out;
    append_args(out, args);
    return out;
}

std::string encode_command(const std::vector<std::string>& args) {
    std::string out;
    append_args(out, args);
    return out;
}

void append_command(std::string& out, std::initializer_list<std::string_view> args) { append_args(out, args); }
void append_command(std::string& out, const std::vector<std::string>& args) { append_args(out, args); }

std::string encode_reply(const RespValue& value) {
    std::string out;
    append_reply(out, value);
    return out;
}

RespParser::RespParser(RespLimits limits) : limits_(limits) {}

Result<std::size_t> RespParser::feed(std::string_view bytes) {
    if (failure_) return *failure_;
    received_ += bytes.size();
    buf_.append(bytes.data(), bytes.size());
    parse();
    // Drop what was parsed: everything, usually, so the buffer is reused without moving
    // bytes; otherwise once the parsed prefix is worth moving the rest for.
    if (pos_ == buf_.size()) {
        buf_origin_ += pos_;
        buf_.clear();
        pos_ = 0;
    } else if (pos_ >= 4096 && pos_ >= buf_.size() / 2) {
        buf_origin_ += pos_;
        buf_.erase(0, pos_);
        pos_ = 0;
    }
    if (failure_) return *failure_;
    return ready_.size();
}

bool RespParser::next(RespValue& out) {
    if (ready_.empty()) return false;
    out = std::move(ready_.front());
    ready_.pop_front();
    return true;
}

void RespParser::fail(std::string what, std::uint64_t at) {
    failure_ = make_error("RESP: " + what + " at byte " + std::to_string(at));
    // The connection is to be dropped: free what the broken reply held.
    std::string().swap(buf_);
    pos_ = 0;
    stack_.clear();
}

void RespParser::complete(RespValue value) {
    while (!stack_.empty()) {
        Frame& top = stack_.back();
        top.array.elements.push_back(std::move(value));
        if (--top.remaining > 0) return;
        value = std::move(top.array);
        stack_.pop_back();
    }
    ready_.push_back(std::move(value));
    reply_start_ = buf_origin_ + pos_;
    reply_values_ = 0;
}

void RespParser::parse() {
    for (;;) {
        const std::size_t avail = buf_.size() - pos_;
        const std::uint64_t here = buf_origin_ + pos_;

        if (in_bulk_) {
            // The header was checked against max_reply_bytes, so waiting here is bounded.
            if (avail < bulk_len_ + 2) return;
            const char* end = buf_.data() + pos_ + bulk_len_;
            if (end[0] != '\r' || end[1] != '\n')
                return fail("bulk string of " + std::to_string(bulk_len_) + " bytes not followed by CRLF",
                            here + bulk_len_);
            RespValue v;
            v.type = RespValue::Type::BulkString;
            v.text.assign(buf_.data() + pos_, bulk_len_);
            pos_ += bulk_len_ + 2;
            in_bulk_ = false;
            complete(std::move(v));
            continue;
        }
        if (avail == 0) return;

        // Every element starts inside the reply's size limit, and counts as a value.
        if (here - reply_start_ >= limits_.max_reply_bytes)
            return fail("reply starting at byte " + std::to_string(reply_start_) + " is larger than " +
                            std::to_string(limits_.max_reply_bytes) + " bytes" +
                            limit_text("max_reply_bytes", limits_.max_reply_bytes),
                        reply_start_);

        const auto type = static_cast<unsigned char>(buf_[pos_]);
        switch (type) {
        case '+': case '-': case ':': case '$': case '*': break;
        case '_': case ',': case '#': case '!': case '=': case '(': case '%': case '~': case '|': case '>':
            return fail("RESP3 type byte " + describe_byte(type) +
                            " (this parser speaks RESP2; the connection must not send HELLO 3)",
                        here);
        default: return fail("unknown type byte " + describe_byte(type), here);
        }
        if (reply_values_ >= limits_.max_reply_values)
            return fail("reply starting at byte " + std::to_string(reply_start_) + " holds more than " +
                            std::to_string(limits_.max_reply_values) + " values" +
                            limit_text("max_reply_values", limits_.max_reply_values),
                        here);

        // The line after the type byte: at most max_line_bytes, then CRLF, and nothing past
        // the reply's limit. Bytes already searched in an earlier feed are not searched again.
        const std::size_t content = pos_ + 1;
        const std::size_t line_end = saturating_add(content, saturating_add(limits_.max_line_bytes, std::size_t{2}));
        const std::uint64_t reply_end = saturating_add<std::uint64_t>(reply_start_, limits_.max_reply_bytes);
        const std::size_t reply_end_index = static_cast<std::size_t>(reply_end - buf_origin_);
        const std::size_t window = std::min({buf_.size(), line_end, reply_end_index});
        const std::size_t from = std::max(content, pos_ + line_searched_);
        const void* lf = from < window ? std::memchr(buf_.data() + from, '\n', window - from) : nullptr;
        if (!lf) {
            line_searched_ = window - pos_;
            if (window == line_end)
                return fail(std::string(type == '$' || type == '*' ? "header" : "line") + " longer than " +
                                std::to_string(limits_.max_line_bytes) + " bytes" +
                                limit_text("max_line_bytes", limits_.max_line_bytes),
                            here);
            if (window == reply_end_index)
                return fail("reply starting at byte " + std::to_string(reply_start_) + " is larger than " +
                                std::to_string(limits_.max_reply_bytes) + " bytes" +
                                limit_text("max_reply_bytes", limits_.max_reply_bytes),
                            reply_start_);
            return;  // the line goes on in bytes not received yet
        }
        line_searched_ = 0;
        const std::size_t lf_index = static_cast<std::size_t>(static_cast<const char*>(lf) - buf_.data());
        if (lf_index == content || buf_[lf_index - 1] != '\r')
            return fail("line ends in LF without CR", buf_origin_ + lf_index);
        const std::string_view line(buf_.data() + content, lf_index - 1 - content);
        if (const auto cr = line.find('\r'); cr != std::string_view::npos)
            return fail("CR inside a line", here + 1 + cr);
        const std::size_t after = lf_index + 1;
        ++reply_values_;

        RespValue v;
        switch (type) {
        case '+':
            v.type = RespValue::Type::SimpleString;
            v.text.assign(line);
            break;
        case '-':
            v.type = RespValue::Type::Error;
            v.text.assign(line);
            break;
        case ':':
            v.type = RespValue::Type::Integer;
            if (const char* why = parse_integer(line, v.integer)) return fail(why, here + 1);
            break;
        case '$':
        case '*': {
            const char* what = type == '$' ? "bulk string length" : "array length";
            std::int64_t n = 0;
            if (const char* why = parse_integer(line, n)) return fail(std::string(what) + ": " + why, here + 1);
            if (n == -1) break;  // v is Null
            if (n < 0) return fail(std::string(what) + " " + std::to_string(n) + " is negative (only -1, null, is)", here);
            const auto count = static_cast<std::uint64_t>(n);
            if (type == '$') {
                if (count > limits_.max_bulk_bytes)
                    return fail("bulk string length " + std::to_string(n) + limit_text("max_bulk_bytes", limits_.max_bulk_bytes),
                                here);
                // Refused now, from the header, rather than after buffering up to the limit.
                if (saturating_add<std::uint64_t>(buf_origin_ + after, count + 2) > reply_end)
                    return fail("reply starting at byte " + std::to_string(reply_start_) + " is larger than " +
                                    std::to_string(limits_.max_reply_bytes) + " bytes" +
                                    limit_text("max_reply_bytes", limits_.max_reply_bytes),
                                reply_start_);
                pos_ = after;
                in_bulk_ = true;
                bulk_len_ = static_cast<std::size_t>(count);
                continue;
            }
            if (count > limits_.max_array_elements)
                return fail("array length " + std::to_string(n) + limit_text("max_array_elements", limits_.max_array_elements),
                            here);
            if (stack_.size() >= limits_.max_depth)
                return fail("array nested deeper than " + std::to_string(limits_.max_depth) + " levels" +
                                limit_text("max_depth", limits_.max_depth),
                            here);
            v.type = RespValue::Type::Array;
            if (count == 0) break;
            pos_ = after;
            stack_.push_back(Frame{std::move(v), static_cast<std::size_t>(count)});
            // The declared count is only a claim: reserve a little, grow as elements arrive.
            stack_.back().array.elements.reserve(std::min<std::size_t>(static_cast<std::size_t>(count), 16));
            continue;
        }
        }
        pos_ = after;
        complete(std::move(v));
    }
}

}  // namespace walcast
