// RecoveryBuffer: the recent events kept for Socket.IO connection-state recovery, bounded by
// age and by bytes. Each event keeps its offset (the eventId: commit end
// LSN and index), its rooms and its already-serialized frame, shared with the fan-out.
// Pure: the clock is passed in. Owned by the loop thread.
#pragma once

#include <cstdint>
#include <algorithm>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "decoder/lsn.hpp"

namespace walcast {

// An event's position: "0/153C6A8:3" is transaction end 0/153C6A8, fourth event of it.
// In cluster mode an offset is instead a Redis stream entry id, "1718000000000-3" (`lsn`
// holds its milliseconds, `index` its sequence), shared with Node servers on the stream.
struct EventOffset {
    Lsn lsn;
    std::uint32_t index = 0;
    bool stream = false;  // printed as a stream entry id

    static std::optional<EventOffset> parse(std::string_view text);
    std::string str() const;

    friend bool operator<(const EventOffset& a, const EventOffset& b) {
        return a.lsn != b.lsn ? a.lsn < b.lsn : a.index < b.index;
    }
    friend bool operator==(const EventOffset& a, const EventOffset& b) { return a.lsn == b.lsn && a.index == b.index; }
    friend bool operator<=(const EventOffset& a, const EventOffset& b) { return !(b < a); }
};

struct BufferedEvent {
    EventOffset offset;
    std::vector<std::string> rooms;
    std::shared_ptr<const std::string> frame;  // the Socket.IO text frame, sent as is
    std::int64_t at_ms = 0;                    // when it was buffered (caller's clock)
    std::size_t bytes = 0;                     // what it costs the byte budget
    std::uint64_t xid = 0;                     // the transaction's full (epoch) xid
};

class RecoveryBuffer {
public:
    RecoveryBuffer(std::int64_t window_ms, std::size_t max_bytes) : window_ms_(window_ms), max_bytes_(max_bytes) {}

    // Appends an event; offsets must increase. Evicts what falls out of either bound.
    void push(BufferedEvent event, std::int64_t now_ms);

    // Drops events older than the window.
    void expire(std::int64_t now_ms);

    // Nothing at or before `floor` is here: a buffer rebuilt from the WAL after a restart
    // starts after the slot's confirmed position, so older offsets cannot be recovered.
    void set_floor(const EventOffset& floor);

    // Forgets every event and raises the floor to `floor`: after a discontinuity no offset
    // from before it can be resumed, whatever the buffer still held.
    void cut(const EventOffset& floor);

    // True when every event after `offset` is still here: nothing after it was evicted.
    // An offset older than the oldest eviction cannot be recovered.
    bool covers(const EventOffset& offset) const;

    // Events after `offset` that were sent to any of `rooms`, in order.
    std::vector<const BufferedEvent*> after(const EventOffset& offset, const std::vector<std::string>& rooms) const;

    // Position of the first event after `offset` (size() when there is none), and the event
    // at a position: a reader walks the buffer at its own pace. Positions stay valid until
    // the next push, expire or cut.
    std::size_t index_after(const EventOffset& offset) const;
    const BufferedEvent& at(std::size_t index) const { return events_[index]; }

    // Every transaction no longer here had an xid below this (full xids): a snapshot whose
    // xmin is at least this saw them all, so the buffer holds everything it did not see.
    // Raised by eviction, and by set_floor / cut to the caller's bound (`xid_bound`: the
    // next xid when the floor was set; 0 keeps it as it is).
    std::uint64_t xid_horizon() const { return xid_horizon_; }
    void raise_xid_horizon(std::uint64_t bound) { xid_horizon_ = std::max(xid_horizon_, bound); }

    std::size_t size() const { return events_.size(); }
    std::size_t bytes() const { return bytes_; }
    std::uint64_t evicted() const { return evicted_; }
    std::optional<EventOffset> newest() const;

private:
    std::int64_t window_ms_;
    std::size_t max_bytes_;
    std::deque<BufferedEvent> events_;
    std::size_t bytes_ = 0;
    std::uint64_t evicted_ = 0;
    std::optional<EventOffset> last_evicted_;  // newest offset no longer here
    std::uint64_t xid_horizon_ = 0;

    void evict_front();
};

}  // namespace walcast
