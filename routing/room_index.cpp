// RoomIndex (see room_index.hpp). Rooms map to sets of member records; a walk stamps each
// record it delivers to, so a session in several rooms of one event is seen once, with no
// per-event set. Owned by one thread.
#include "routing/room_index.hpp"

#include <algorithm>
#include <cassert>

namespace walcast {

RoomIndex::RoomIndex() = default;
RoomIndex::~RoomIndex() = default;

bool RoomIndex::join(SessionId session, std::string_view room) {
    if (walking_ > 0) {
        const bool was_member = is_member(session, room);
        deferred_.push_back(Deferred{Deferred::Op::Join, session, std::string(room)});
        return !was_member;
    }
    return do_join(session, room);
}

bool RoomIndex::leave(SessionId session, std::string_view room) {
    if (walking_ > 0) {
        const bool was_member = is_member(session, room);
        deferred_.push_back(Deferred{Deferred::Op::Leave, session, std::string(room)});
        return was_member;
    }
    return do_leave(session, room);
}

void RoomIndex::leave_all(SessionId session) {
    if (walking_ > 0) {
        auto it = members_.find(session);
        if (it != members_.end()) it->second->removed = true;
        deferred_.push_back(Deferred{Deferred::Op::LeaveAll, session, std::string()});
        return;
    }
    do_leave_all(session);
}

bool RoomIndex::do_join(SessionId session, std::string_view room) {
    auto& slot = members_[session];
    if (!slot) {
        slot = std::make_unique<Member>();
        slot->id = session;
    }
    Member* m = slot.get();
    if (std::find(m->rooms.begin(), m->rooms.end(), room) != m->rooms.end()) return false;
    m->rooms.emplace_back(room);
    rooms_[m->rooms.back()].insert(m);
    return true;
}

bool RoomIndex::do_leave(SessionId session, std::string_view room) {
    auto it = members_.find(session);
    if (it == members_.end()) return false;
    Member* m = it->second.get();
    auto r = std::find(m->rooms.begin(), m->rooms.end(), room);
    if (r == m->rooms.end()) return false;
    auto set = rooms_.find(*r);
    if (set != rooms_.end()) {
        set->second.erase(m);
        if (set->second.empty()) rooms_.erase(set);
    }
    m->rooms.erase(r);
    if (m->rooms.empty()) members_.erase(it);
    return true;
}

void RoomIndex::do_leave_all(SessionId session) {
    auto it = members_.find(session);
    if (it == members_.end()) return;
    Member* m = it->second.get();
    for (const std::string& room : m->rooms) {
        auto set = rooms_.find(room);
        if (set == rooms_.end()) continue;
        set->second.erase(m);
        if (set->second.empty()) rooms_.erase(set);
    }
    members_.erase(it);
}

void RoomIndex::apply_deferred() {
    // Applying may not defer again (walking_ is 0), and ops keep their order.
    std::vector<Deferred> ops;
    ops.swap(deferred_);
    for (const Deferred& d : ops) {
        switch (d.op) {
        case Deferred::Op::Join: do_join(d.session, d.room); break;
        case Deferred::Op::Leave: do_leave(d.session, d.room); break;
        case Deferred::Op::LeaveAll: do_leave_all(d.session); break;
        }
    }
}

bool RoomIndex::is_member(SessionId session, std::string_view room) const {
    auto it = members_.find(session);
    if (it == members_.end()) return false;
    const auto& rooms = it->second->rooms;
    return std::find(rooms.begin(), rooms.end(), room) != rooms.end();
}

std::size_t RoomIndex::rooms_of(SessionId session) const {
    auto it = members_.find(session);
    return it == members_.end() ? 0 : it->second->rooms.size();
}

std::size_t RoomIndex::members(std::string_view room) const {
    auto it = rooms_.find(std::string(room));
    return it == rooms_.end() ? 0 : it->second.size();
}

std::size_t RoomIndex::rooms() const { return rooms_.size(); }
std::size_t RoomIndex::sessions() const { return members_.size(); }

std::size_t RoomIndex::for_each_recipient(const std::vector<std::string>& rooms, RecipientSink& sink) {
    // Not reentrant: a nested walk would restamp members and break the outer dedupe.
    assert(walking_ == 0);
    // Ends the walk even if the sink throws, so later mutations are not deferred forever.
    struct WalkGuard {
        RoomIndex& index;
        explicit WalkGuard(RoomIndex& i) : index(i) { ++index.walking_; }
        ~WalkGuard() {
            if (--index.walking_ == 0 && !index.deferred_.empty()) index.apply_deferred();
        }
    } guard(*this);
    const std::uint64_t stamp = ++walk_;
    std::size_t delivered = 0;
    for (const std::string& name : rooms) {
        auto room = rooms_.find(name);
        if (room == rooms_.end()) continue;
        // The set cannot change under us: every mutation is deferred while walking_ > 0.
        for (Member* m : room->second) {
            if (m->stamp == stamp || m->removed) continue;
            m->stamp = stamp;
            sink.deliver(m->id);
            ++delivered;
        }
    }
    return delivered;
}

}  // namespace walcast
