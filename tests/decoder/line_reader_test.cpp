// LineReader (daemon/line_reader.hpp, header-only): lines split across chunks, '\r\n', a last
// line without '\n', and lines over the maximum skipped in bounded memory.
#include <doctest/doctest.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "daemon/line_reader.hpp"

using namespace walcast;

namespace {

using File = std::unique_ptr<std::FILE, int (*)(std::FILE*)>;

File file_with(const std::string& content) {
    File f(std::tmpfile(), &std::fclose);
    REQUIRE(f);
    REQUIRE(std::fwrite(content.data(), 1, content.size(), f.get()) == content.size());
    std::rewind(f.get());
    return f;
}

// What the reader gave: each line as itself, each skipped line as "<oversized N>".
std::vector<std::string> read_all(const std::string& content, std::size_t max_line, std::size_t chunk) {
    File f = file_with(content);
    LineReader reader(f.get(), max_line, chunk);
    std::vector<std::string> out;
    std::string_view line;
    for (;;) {
        const LineReader::Status s = reader.next(line);
        if (s == LineReader::Status::End) break;
        if (s == LineReader::Status::Oversized) out.push_back("<oversized " + std::to_string(reader.oversized_length()) + ">");
        else out.emplace_back(line);
    }
    CHECK_FALSE(reader.failed());
    return out;
}

// The same, by splitting the whole text at once.
std::vector<std::string> expected(const std::string& content, std::size_t max_line) {
    std::vector<std::string> out;
    std::size_t at = 0;
    while (at < content.size()) {
        std::size_t nl = content.find('\n', at);
        if (nl == std::string::npos) nl = content.size();
        std::string line = content.substr(at, nl - at);
        if (line.size() > max_line) {
            out.push_back("<oversized " + std::to_string(line.size()) + ">");
        } else {
            if (!line.empty() && line.back() == '\r') line.pop_back();
            out.push_back(line);
        }
        at = nl + 1;
    }
    return out;
}

}  // namespace

TEST_SUITE("line_reader") {
    TEST_CASE("lines split at every chunk boundary come out whole") {
        const std::string text = "a\nbb\r\n\nccc\r\ndddddddddd\n\r\neeeeeee";
        for (std::size_t chunk = 1; chunk <= text.size() + 1; ++chunk)
            CHECK_MESSAGE(read_all(text, SIZE_MAX, chunk) == expected(text, SIZE_MAX), "chunk " << chunk);
        CHECK(read_all("", SIZE_MAX, 4).empty());
        CHECK(read_all("\n", SIZE_MAX, 4) == std::vector<std::string>{""});
    }

    TEST_CASE("lines over the maximum are skipped with their length, wherever the chunks fall") {
        const std::string text = "12345\n123456\n1234567890123\nab\r\n1234\r\n12345\r\nxyz\n0123456789abcdef";
        for (std::size_t max_line : {0, 1, 3, 5, 6, 13, 100})
            for (std::size_t chunk = 1; chunk <= 20; ++chunk)
                CHECK_MESSAGE(read_all(text, max_line, chunk) == expected(text, max_line),
                              "max_line " << max_line << ", chunk " << chunk);
    }

    TEST_CASE("a 10 MB line with a 1 MB maximum is skipped without being held") {
        const std::size_t chunk = 64 << 10, max_line = 1 << 20;
        const std::string big(10000000, 'x');
        File f = file_with("first\n" + big + "\nlast\n" + big);  // the last one without '\n'
        LineReader reader(f.get(), max_line, chunk);
        std::string_view line;
        REQUIRE(reader.next(line) == LineReader::Status::Line);
        CHECK(line == "first");
        REQUIRE(reader.next(line) == LineReader::Status::Oversized);
        CHECK(reader.oversized_length() == big.size());
        CHECK(reader.capacity() <= chunk + 2 * max_line);
        REQUIRE(reader.next(line) == LineReader::Status::Line);
        CHECK(line == "last");
        REQUIRE(reader.next(line) == LineReader::Status::Oversized);
        CHECK(reader.oversized_length() == big.size());
        CHECK(reader.next(line) == LineReader::Status::End);
        CHECK(reader.capacity() <= chunk + 2 * max_line);
        CHECK_FALSE(reader.failed());
    }

    TEST_CASE("a line at the maximum is handed out") {
        const std::string line_at_max(1000, 'y');
        CHECK(read_all(line_at_max + "\n" + line_at_max, 1000, 64) == std::vector<std::string>{line_at_max, line_at_max});
        CHECK(read_all(line_at_max + "z\n", 1000, 64) == std::vector<std::string>{"<oversized 1001>"});
    }
}
