// Logging for the shell (daemon/ only: the pure libraries never log). One line per event on
// stderr. Under systemd (JOURNAL_STREAM set) each line starts with the syslog priority
// "<N>" so journald files it at the right level; elsewhere "walcast: level: ".
// Loop thread (and the demo's writer thread: each line is written with one fputs).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace walcast {

enum class LogLevel : int { Error = 3, Warning = 4, Notice = 5, Info = 6, Debug = 7 };

// "error", "warning", "notice", "info", "debug".
std::optional<LogLevel> parse_log_level(std::string_view name);

// Lines above `level` are dropped. Default: info, or WALCAST_LOG_LEVEL.
void set_log_level(LogLevel level);
bool log_enabled(LogLevel level);

void log_line(LogLevel level, std::string_view message);

inline void log_error(std::string_view m) { log_line(LogLevel::Error, m); }
inline void log_warning(std::string_view m) { log_line(LogLevel::Warning, m); }
inline void log_notice(std::string_view m) { log_line(LogLevel::Notice, m); }
inline void log_info(std::string_view m) { log_line(LogLevel::Info, m); }
inline void log_debug(std::string_view m) {
    if (log_enabled(LogLevel::Debug)) log_line(LogLevel::Debug, m);
}

}  // namespace walcast
