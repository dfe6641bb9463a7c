// Logging (see log.hpp).
#include "daemon/log.hpp"

#include <cstdio>
#include <cstdlib>

namespace walcast {

namespace {

LogLevel initial_level() {
    if (const char* env = std::getenv("WALCAST_LOG_LEVEL"))
        if (auto level = parse_log_level(env)) return *level;
    return LogLevel::Info;
}

LogLevel g_level = initial_level();
const bool g_journal = std::getenv("JOURNAL_STREAM") != nullptr;

const char* level_name(LogLevel level) {
    switch (level) {
    case LogLevel::Error: return "error";
    case LogLevel::Warning: return "warning";
    case LogLevel::Notice: return "notice";
    case LogLevel::Info: return "info";
    case LogLevel::Debug: return "debug";
    }
    return "info";
}

}  // namespace

std::optional<LogLevel> parse_log_level(std::string_view name) {
    for (LogLevel l : {LogLevel::Error, LogLevel::Warning, LogLevel::Notice, LogLevel::Info, LogLevel::Debug})
        if (name == level_name(l)) return l;
    return std::nullopt;
}

void set_log_level(LogLevel level) { g_level = level; }

bool log_enabled(LogLevel level) { return static_cast<int>(level) <= static_cast<int>(g_level); }

void log_line(LogLevel level, std::string_view message) {
    if (!log_enabled(level)) return;
    std::string line;
    line.reserve(message.size() + 24);
    if (g_journal) {
        line += '<';
        line += static_cast<char>('0' + static_cast<int>(level));
        line += '>';
    } else {
        line += "walcast: ";
        if (level != LogLevel::Info) {
            line += level_name(level);
            line += ": ";
        }
    }
    for (char c : message) line += c == '\n' ? ' ' : c;  // one event, one line
    line += '\n';
    std::fputs(line.c_str(), stderr);
}

}  // namespace walcast
