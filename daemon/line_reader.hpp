// LineReader: reads '\n'-terminated lines from a FILE* in large chunks. A line longer than
// the reader's maximum is read to its end and discarded, never held whole, so the memory it
// takes depends on the chunk size and the maximum, not on the input. Header-only, no
// dependencies; owned by one thread.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

namespace walcast {

class LineReader {
public:
    enum class Status { Line, Oversized, End };

    // `max_line`: the longest line handed out, in bytes before its '\n' (a trailing '\r'
    // counts). `chunk`: bytes read at a time.
    explicit LineReader(std::FILE* file, std::size_t max_line = std::numeric_limits<std::size_t>::max(),
                        std::size_t chunk = 1 << 20)
        : file_(file), max_line_(max_line), buf_(chunk) {}

    // Line: `line` is the next line without its '\n' (and without a trailing '\r'), valid
    // until the next call. Oversized: the next line was longer than max_line and has been
    // skipped; oversized_length() says how long it was. End: no more input.
    Status next(std::string_view& line) {
        if (carry_used_) {
            carry_.clear();
            carry_used_ = false;
        }
        for (;;) {
            const char* start = buf_.data() + pos_;
            const std::size_t avail = end_ - pos_;
            if (const char* nl = static_cast<const char*>(std::memchr(start, '\n', avail))) {
                const std::size_t len = static_cast<std::size_t>(nl - start);
                pos_ += len + 1;
                if (carry_.empty()) {
                    if (len > max_line_) return oversized(len);
                    line = std::string_view(start, len);
                } else {
                    if (len > max_line_ - carry_.size()) return oversized(carry_.size() + len);
                    carry_.append(start, len);
                    line = carry_;
                    carry_used_ = true;
                }
                trim_cr(line);
                return Status::Line;
            }
            // The line goes on past this chunk: keep its start, unless that is already too much.
            if (avail > max_line_ - carry_.size()) return oversized(skip_rest_of_line(carry_.size() + avail));
            carry_.append(start, avail);
            pos_ = end_ = 0;
            if (eof_) break;
            refill();
        }
        if (carry_.empty()) return Status::End;
        // Last line without a final newline.
        last_.swap(carry_);
        carry_.clear();
        line = last_;
        trim_cr(line);
        return Status::Line;
    }

    // The length in bytes (before its '\n') of the line the last Oversized skipped.
    std::uint64_t oversized_length() const { return oversized_length_; }

    bool failed() const { return std::ferror(file_) != 0; }

    // Bytes the reader holds in its buffers. It depends on the chunk size and max_line, not on
    // the input: a line spanning chunks is kept only up to max_line bytes (in strings that
    // grow geometrically, so their capacity may reach about twice that).
    std::size_t capacity() const { return buf_.capacity() + carry_.capacity() + last_.capacity(); }

private:
    std::FILE* file_;
    std::size_t max_line_;
    std::vector<char> buf_;
    std::size_t pos_ = 0, end_ = 0;
    bool eof_ = false;
    std::string carry_;        // a line spanning chunks, at most max_line_ bytes
    bool carry_used_ = false;  // carry_ was handed out and must be cleared before reuse
    std::string last_;
    std::uint64_t oversized_length_ = 0;

    void refill() {
        end_ = std::fread(buf_.data(), 1, buf_.size(), file_);
        if (end_ < buf_.size()) eof_ = true;
    }

    // The buffer up to end_ belongs to an oversized line whose first `so_far` bytes were
    // seen: reads on to its '\n' (or the end of input), keeping nothing. Returns its length.
    std::uint64_t skip_rest_of_line(std::uint64_t so_far) {
        carry_.clear();
        for (;;) {
            pos_ = end_ = 0;
            if (eof_) return so_far;
            refill();
            if (const char* nl = static_cast<const char*>(std::memchr(buf_.data(), '\n', end_))) {
                const std::size_t len = static_cast<std::size_t>(nl - buf_.data());
                pos_ = len + 1;
                return so_far + len;
            }
            so_far += end_;
        }
    }

    Status oversized(std::uint64_t length) {
        carry_.clear();
        oversized_length_ = length;
        return Status::Oversized;
    }

    static void trim_cr(std::string_view& line) {
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    }
};

}  // namespace walcast
