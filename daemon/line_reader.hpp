// LineReader: reads '\n'-terminated lines from a FILE* in large chunks, with no limit on a
// line's length (a row with a 100 MB text column is one line). Owned by one thread.
#pragma once

#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace walcast {

class LineReader {
public:
    explicit LineReader(std::FILE* file, std::size_t chunk = 1 << 20) : file_(file), buf_(chunk) {}

    // The next line without its '\n' (and without a trailing '\r'); false at end of input.
    // The view stays valid until the next call.
    bool next(std::string_view& line) {
        if (carry_used_) {
            carry_.clear();
            carry_used_ = false;
        }
        for (;;) {
            if (const char* nl = static_cast<const char*>(std::memchr(buf_.data() + pos_, '\n', end_ - pos_))) {
                std::size_t len = static_cast<std::size_t>(nl - (buf_.data() + pos_));
                if (carry_.empty()) {
                    line = std::string_view(buf_.data() + pos_, len);
                } else {
                    carry_.append(buf_.data() + pos_, len);
                    line = carry_;
                    carry_used_ = true;
                }
                pos_ += len + 1;
                trim_cr(line);
                return true;
            }
            carry_.append(buf_.data() + pos_, end_ - pos_);
            pos_ = end_ = 0;
            if (eof_) break;
            end_ = std::fread(buf_.data(), 1, buf_.size(), file_);
            if (end_ < buf_.size()) eof_ = true;
        }
        if (carry_.empty()) return false;
        // Last line without a final newline.
        last_.swap(carry_);
        carry_.clear();
        line = last_;
        trim_cr(line);
        return true;
    }

    bool failed() const { return std::ferror(file_) != 0; }

private:
    std::FILE* file_;
    std::vector<char> buf_;
    std::size_t pos_ = 0, end_ = 0;
    bool eof_ = false;
    std::string carry_;        // a line spanning chunks
    bool carry_used_ = false;  // carry_ was handed out and must be cleared before reuse
    std::string last_;

    static void trim_cr(std::string_view& line) {
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    }
};

}  // namespace walcast
