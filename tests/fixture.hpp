// Test helpers: reading golden wal2json captures from tests/fixtures.
#pragma once

#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace walcast::test {

inline std::vector<std::string> fixture_lines(const std::string& name) {
    std::ifstream in(std::string(WALCAST_FIXTURES) + "/" + name);
    if (!in) throw std::runtime_error("missing fixture " + name);
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);)
        if (!line.empty()) lines.push_back(line);
    return lines;
}

inline std::string fixture_text(const std::string& name) {
    std::ifstream in(std::string(WALCAST_FIXTURES) + "/" + name);
    if (!in) throw std::runtime_error("missing fixture " + name);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

}  // namespace walcast::test
