// The floor bench/replay compares `walcast replay` against: read a capture line by line
// with std::getline and parse each line into a RapidJSON DOM, nothing else.
// Single-threaded command-line tool.
#include <rapidjson/document.h>
#include <rapidjson/error/en.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr,
                     "usage: json_baseline CAPTURE|-\n"
                     "Parses every line with rapidjson::Document::Parse and prints\n"
                     "lines, bytes and seconds on one line.\n");
        return 2;
    }
    std::ios::sync_with_stdio(false);
    const std::string path = argv[1];
    std::ifstream file;
    if (path != "-") {
        file.open(path, std::ios::binary);
        if (!file) {
            std::perror(path.c_str());
            return 1;
        }
    }
    std::istream& in = path == "-" ? std::cin : file;

    // One pool reused for every line: without Clear() a Document's pool keeps every
    // line it ever parsed. The first 64 KiB live on the stack, as a tuned caller would do.
    char pool_buffer[64 * 1024];
    rapidjson::MemoryPoolAllocator<> pool(pool_buffer, sizeof pool_buffer);
    rapidjson::Document doc(&pool);

    const auto start = std::chrono::steady_clock::now();
    std::string line;
    std::uint64_t lines = 0, bytes = 0, objects = 0, errors = 0;
    while (std::getline(in, line)) {
        ++lines;
        bytes += line.size() + 1;
        doc.Parse(line.c_str(), line.size());
        if (doc.HasParseError()) {
            if (errors++ == 0)
                std::fprintf(stderr, "json_baseline: line %llu, byte %zu: %s\n",
                             static_cast<unsigned long long>(lines), doc.GetErrorOffset(),
                             rapidjson::GetParseError_En(doc.GetParseError()));
        } else if (doc.IsObject()) {
            ++objects;  // a use of the result, so the parse is not dead code
        }
        doc.SetNull();
        pool.Clear();
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

    std::printf("lines=%llu bytes=%llu objects=%llu errors=%llu seconds=%.6f\n",
                static_cast<unsigned long long>(lines), static_cast<unsigned long long>(bytes),
                static_cast<unsigned long long>(objects), static_cast<unsigned long long>(errors),
                seconds);
    return errors == 0 ? 0 : 3;
}
