// Connection-state recovery state: the resumable session (one type, saved, restored and
// detached as itself), the bounded set of detached sessions, and the durable state file
// (recovery.json) that lets sessions resume across a restart of walcast.
// DetachedSessions and the codec are pure; StateFileWriter owns one writer thread and is
// driven from the loop thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "decoder/lsn.hpp"
#include "decoder/result.hpp"
#include "routing/recovery_buffer.hpp"

namespace walcast {

// What a reconnect presenting `pid` gets back.
struct SessionSnapshot {
    std::string pid;   // private id the client presents to resume
    std::string sid;   // Socket.IO sid, kept on resume
    std::string user, tenant;
    std::vector<std::string> projects;  // project rooms joined (access is checked again)
    EventOffset base;                   // newest event when it (re)connected
    std::int64_t detached_at_ms = 0;    // wall clock; for a connected session, when saved
};

// Detached sessions by pid, bounded in total and per user: past either cap the oldest
// detached session (of that user, or overall) is forgotten, and its client gets a fresh
// session if it comes back.
class DetachedSessions {
public:
    DetachedSessions(std::size_t max_total, std::size_t max_per_user) : max_total_(max_total), max_per_user_(max_per_user) {}

    // Keeps `s` (replacing one with the same pid); returns how many were evicted for the caps.
    std::size_t add(SessionSnapshot s);
    const SessionSnapshot* find(const std::string& pid) const;
    std::optional<SessionSnapshot> take(const std::string& pid);
    // Forgets sessions detached more than `window_ms` before `now_ms`; returns how many.
    std::size_t expire(std::int64_t now_ms, std::int64_t window_ms);
    std::size_t size() const { return by_pid_.size(); }
    std::size_t of_user(const std::string& user) const;
    std::vector<SessionSnapshot> all() const;

private:
    using Order = std::list<SessionSnapshot>;  // oldest detached first
    std::size_t max_total_, max_per_user_;
    Order order_;
    std::unordered_map<std::string, Order::iterator> by_pid_;
    std::unordered_map<std::string, std::vector<Order::iterator>> by_user_;  // oldest first

    void erase(Order::iterator it);
};

// The durable state: what was dispatched, and the sessions that may resume.
struct RecoveryState {
    Lsn dispatched;
    std::vector<SessionSnapshot> sessions;
};

std::string encode_recovery_state(const RecoveryState& state);
// Refuses anything that is not a complete state file written by encode_recovery_state.
Result<RecoveryState> decode_recovery_state(std::string_view text);

// Writes recovery.json on its own thread, so the loop never waits for the disk: the loop
// hands over the newest encoded state, the writer writes a temp file, fsyncs it, renames it
// over the old one and fsyncs the directory. Only the newest state is written; one that
// arrives while a write is under way replaces any still waiting.
class StateFileWriter {
public:
    explicit StateFileWriter(std::string path);
    ~StateFileWriter();  // writes what is pending, then stops

    void write(std::string contents, Lsn dispatched);
    // What the newest completed write recorded as dispatched (for confirmations).
    Lsn durable() const;
    // Waits until everything handed over is on disk (shutdown).
    void flush();
    // The last error, once; empty when none since the last call.
    std::string take_error();

private:
    std::string path_;
    mutable std::mutex mutex_;
    std::condition_variable wake_, idle_;
    std::optional<std::pair<std::string, Lsn>> pending_;
    bool busy_ = false;
    bool stop_ = false;
    Lsn durable_;
    std::string error_;
    std::thread thread_;

    void loop();
    bool write_file(const std::string& contents, std::string& error);
};

}  // namespace walcast
