// InboundBudget: what one peer may send, as two token buckets (frames and bytes per
// second, each with a burst). Every frame counts: Engine.IO packets, WebSocket pings and
// pongs, polling requests. Before the Socket.IO CONNECT a peer has a small budget; after
// it, one that no honest client comes near. Pure (the caller passes the clock); any thread.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

namespace walcast {

struct BudgetLimits {
    double frames_per_second;
    double frame_burst;
    double bytes_per_second;
    double byte_burst;
};

// An unauthenticated peer needs a handful of frames: the handshake, CONNECT, a pong.
inline constexpr BudgetLimits kBudgetBeforeConnect{4, 16, 16 * 1024, 64 * 1024};
// An authenticated client sends joins, leaves, acks and pongs: a few a second, a burst of a
// few hundred when a page joins its rooms at once.
inline constexpr BudgetLimits kBudgetConnected{200, 1000, 1024 * 1024, 4 * 1024 * 1024};
// WebSocket pings and pongs, in every phase: browsers send none, and a client library that
// keeps a connection alive sends one every few seconds. Each costs a parse and, for a
// ping, a pong: a flood of them is closed early.
inline constexpr BudgetLimits kBudgetControlFrames{4, 16, 4 * 1024, 16 * 1024};

class InboundBudget {
public:
    explicit InboundBudget(BudgetLimits limits = kBudgetBeforeConnect)
        : limits_(limits), frames_(limits.frame_burst), bytes_(limits.byte_burst) {}

    // Takes one frame of `bytes` at `now_ms` (any monotonic milliseconds). False when either
    // bucket is empty: the peer sends more than its budget.
    bool charge(std::size_t bytes, std::int64_t now_ms) {
        refill(now_ms);
        frames_ -= 1;
        bytes_ -= static_cast<double>(bytes);
        return frames_ >= 0 && bytes_ >= 0;
    }

    // New limits from now on (after CONNECT); the buckets are refilled to the new bursts.
    void set_limits(BudgetLimits limits) {
        limits_ = limits;
        frames_ = limits.frame_burst;
        bytes_ = limits.byte_burst;
    }

    const BudgetLimits& limits() const { return limits_; }

private:
    BudgetLimits limits_;
    double frames_, bytes_;
    std::int64_t last_ms_ = -1;

    void refill(std::int64_t now_ms) {
        if (last_ms_ >= 0 && now_ms > last_ms_) {
            const double seconds = static_cast<double>(now_ms - last_ms_) / 1000.0;
            frames_ = std::min(limits_.frame_burst, frames_ + seconds * limits_.frames_per_second);
            bytes_ = std::min(limits_.byte_burst, bytes_ + seconds * limits_.bytes_per_second);
        }
        if (now_ms > last_ms_) last_ms_ = now_ms;
    }
};

}  // namespace walcast
