// RecoveryBuffer (see recovery_buffer.hpp).
#include "routing/recovery_buffer.hpp"

#include <algorithm>
#include <charconv>

namespace walcast {

std::optional<EventOffset> EventOffset::parse(std::string_view text) {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) {
        // A stream entry id: <ms>-<seq>, both decimal.
        const auto dash = text.find('-');
        if (dash == std::string_view::npos) return std::nullopt;
        std::uint64_t ms = 0;
        std::uint32_t seq = 0;
        const std::string_view a = text.substr(0, dash), b = text.substr(dash + 1);
        auto [pa, ea] = std::from_chars(a.data(), a.data() + a.size(), ms);
        auto [pb, eb] = std::from_chars(b.data(), b.data() + b.size(), seq);
        if (a.empty() || b.empty() || ea != std::errc() || eb != std::errc() || pa != a.data() + a.size() ||
            pb != b.data() + b.size())
            return std::nullopt;
        return EventOffset{Lsn{ms}, seq, true};
    }
    auto lsn = Lsn::parse(text.substr(0, colon));
    if (!lsn) return std::nullopt;
    std::uint32_t index = 0;
    const std::string_view digits = text.substr(colon + 1);
    auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), index);
    if (digits.empty() || ec != std::errc() || p != digits.data() + digits.size()) return std::nullopt;
    return EventOffset{*lsn, index};
}

std::string EventOffset::str() const {
    if (stream) return std::to_string(lsn.value) + "-" + std::to_string(index);
    return lsn.str() + ":" + std::to_string(index);
}

void RecoveryBuffer::evict_front() {
    bytes_ -= events_.front().bytes;
    xid_horizon_ = std::max(xid_horizon_, events_.front().xid + 1);
    last_evicted_ = events_.front().offset;
    ++evicted_;
    events_.pop_front();
}

void RecoveryBuffer::push(BufferedEvent event, std::int64_t now_ms) {
    if (event.bytes == 0 && event.frame) event.bytes = event.frame->size();
    event.at_ms = now_ms;
    bytes_ += event.bytes;
    events_.push_back(std::move(event));
    while (!events_.empty() && bytes_ > max_bytes_) evict_front();
    expire(now_ms);
}

void RecoveryBuffer::expire(std::int64_t now_ms) {
    while (!events_.empty() && now_ms - events_.front().at_ms > window_ms_) evict_front();
}

void RecoveryBuffer::set_floor(const EventOffset& floor) {
    if (!last_evicted_ || *last_evicted_ < floor) last_evicted_ = floor;
}

void RecoveryBuffer::cut(const EventOffset& floor) {
    for (const BufferedEvent& e : events_) xid_horizon_ = std::max(xid_horizon_, e.xid + 1);
    evicted_ += events_.size();
    events_.clear();
    bytes_ = 0;
    if (!last_evicted_ || *last_evicted_ < floor) last_evicted_ = floor;
}

bool RecoveryBuffer::covers(const EventOffset& offset) const {
    return !last_evicted_ || *last_evicted_ <= offset;
}

std::size_t RecoveryBuffer::index_after(const EventOffset& offset) const {
    // Offsets increase along the deque.
    auto it = std::upper_bound(events_.begin(), events_.end(), offset,
                               [](const EventOffset& o, const BufferedEvent& e) { return o < e.offset; });
    return static_cast<std::size_t>(it - events_.begin());
}

std::vector<const BufferedEvent*> RecoveryBuffer::after(const EventOffset& offset,
                                                        const std::vector<std::string>& rooms) const {
    std::vector<const BufferedEvent*> out;
    // Offsets increase along the deque: binary search for the first one past `offset`.
    auto it = std::upper_bound(events_.begin(), events_.end(), offset,
                               [](const EventOffset& o, const BufferedEvent& e) { return o < e.offset; });
    for (; it != events_.end(); ++it) {
        const bool member = std::any_of(it->rooms.begin(), it->rooms.end(), [&](const std::string& r) {
            return std::find(rooms.begin(), rooms.end(), r) != rooms.end();
        });
        if (member) out.push_back(&*it);
    }
    return out;
}

std::optional<EventOffset> RecoveryBuffer::newest() const {
    if (events_.empty()) return std::nullopt;
    return events_.back().offset;
}

}  // namespace walcast
