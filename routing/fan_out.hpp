// Fan-out of one loop turn: each event becomes one Socket.IO packet, serialized once; each
// recipient's packets of the turn go to its transport as one EventRun, and recipients that
// get the same sequence (every member of one room, the common case) share one run.
// Loop thread only.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace walcast {

using Packet = std::shared_ptr<const std::string>;

// Socket.IO packets ("42[...]") in order, as one unit of sending. A WebSocket transport
// writes them as consecutive text frames, built once however many recipients share the
// run; a polling transport joins them into its next payload.
class EventRun {
public:
    EventRun() = default;
    explicit EventRun(std::vector<Packet> packets);

    const std::vector<Packet>& packets() const { return packets_; }
    std::size_t bytes() const { return bytes_; }  // packet text, without framing
    void append(Packet packet);

    // The packets as consecutive WebSocket text frames (server side, unmasked).
    const std::string& websocket_frames() const;

    // What a transport derived from this run to send it again without copying (the
    // WebSocket transport keeps its prepared message here); lives as long as the run.
    mutable std::shared_ptr<void> transport_cache;

private:
    std::vector<Packet> packets_;
    std::size_t bytes_ = 0;
    mutable std::string frames_;
};

// Appends the header of a final, unmasked WebSocket text frame of `payload_bytes`.
void append_websocket_text_header(std::string& out, std::size_t payload_bytes);

// The events of one turn and the runs built from them.
class Batch {
public:
    // A turn's packets past this many bytes are written early: batching saves per-write
    // overhead, which packets this large have amortized already, and a turn of big rows
    // must not hold them all (and their concatenations) at once.
    static constexpr std::size_t kMaxBytes = 256 << 10;

    std::uint32_t add(Packet packet);
    const Packet& packet(std::uint32_t index) const { return packets_[index]; }
    // The run of these packets (indices from add, in order); built at its first recipient.
    const EventRun& run(const std::vector<std::uint32_t>& indices);
    std::size_t bytes() const { return bytes_; }
    bool empty() const { return packets_.empty(); }
    void clear();

private:
    std::vector<Packet> packets_;
    std::unordered_map<std::string, EventRun> runs_;  // by the sequence of indices
    std::size_t bytes_ = 0;
};

}  // namespace walcast
