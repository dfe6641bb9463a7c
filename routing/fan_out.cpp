// EventRun and Batch (see fan_out.hpp).
#include "routing/fan_out.hpp"

namespace walcast {

EventRun::EventRun(std::vector<Packet> packets) : packets_(std::move(packets)) {
    for (const Packet& p : packets_) bytes_ += p->size();
}

void EventRun::append(Packet packet) {
    bytes_ += packet->size();
    packets_.push_back(std::move(packet));
    frames_.clear();
    transport_cache.reset();
}

void append_websocket_text_header(std::string& out, std::size_t n) {
    out.push_back(static_cast<char>(0x81));  // FIN, text
    if (n < 126) {
        out.push_back(static_cast<char>(n));
    } else if (n <= 0xFFFF) {
        out.push_back(static_cast<char>(126));
        out.push_back(static_cast<char>(n >> 8));
        out.push_back(static_cast<char>(n & 0xFF));
    } else {
        out.push_back(static_cast<char>(127));
        for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>((std::uint64_t(n) >> shift) & 0xFF));
    }
}

const std::string& EventRun::websocket_frames() const {
    if (frames_.empty() && !packets_.empty()) {
        frames_.reserve(bytes_ + 10 * packets_.size());
        for (const Packet& p : packets_) {
            append_websocket_text_header(frames_, p->size());
            frames_ += *p;
        }
    }
    return frames_;
}

std::uint32_t Batch::add(Packet packet) {
    bytes_ += packet->size();
    packets_.push_back(std::move(packet));
    return static_cast<std::uint32_t>(packets_.size() - 1);
}

const EventRun& Batch::run(const std::vector<std::uint32_t>& indices) {
    std::string key(reinterpret_cast<const char*>(indices.data()), indices.size() * sizeof indices[0]);
    auto [it, inserted] = runs_.try_emplace(std::move(key));
    if (inserted) {
        std::vector<Packet> packets;
        packets.reserve(indices.size());
        for (std::uint32_t i : indices) packets.push_back(packets_[i]);
        it->second = EventRun(std::move(packets));
    }
    return it->second;
}

void Batch::clear() {
    packets_.clear();
    runs_.clear();
    bytes_ = 0;
}

}  // namespace walcast
