// Resumable sessions: the snapshot type (saved, restored and detached as itself), the
// bounded set of detached sessions, and the text of the durable state file (recovery.json).
// Pure; owned by one thread.
#pragma once

#include <cstdint>
#include <list>
#include <optional>
#include <string>
#include <string_view>
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

}  // namespace walcast
