// RoomIndex (see room_index.hpp). Rooms map to lists of member records; a walk stamps each
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
        if (it != members_.end()) it->second.removed = true;
        deferred_.push_back(Deferred{Deferred::Op::LeaveAll, session, std::string()});
        return;
    }
    do_leave_all(session);
}

namespace {

template <class Rooms>
auto find_room(Rooms& rooms, std::string_view name) {
    return std::find_if(rooms.begin(), rooms.end(), [&](const auto& k) { return k.room->first == name; });
}

}  // namespace

bool RoomIndex::do_join(SessionId session, std::string_view room) {
    auto [it, inserted] = members_.try_emplace(session);
    Member* m = &it->second;
    if (inserted) m->id = session;
    if (find_room(m->rooms, room) != m->rooms.end()) return false;
    auto entry = rooms_.find(std::string(room));
    if (entry == rooms_.end()) entry = rooms_.emplace(std::string(room), Room()).first;
    m->rooms.push_back(Membership{&*entry, entry->second.size()});
    entry->second.push_back(m);
    return true;
}

void RoomIndex::remove_from_room(Member* m, const Membership& k) {
    Room& room = k.room->second;
    Member* last = room.back();
    if (last != m) {
        // The last member takes m's place; its record of where it stands follows.
        room[k.at] = last;
        for (Membership& lk : last->rooms)
            if (lk.room == k.room) lk.at = k.at;
    }
    room.pop_back();
    if (room.empty()) rooms_.erase(rooms_.find(k.room->first));
}

bool RoomIndex::do_leave(SessionId session, std::string_view room) {
    auto it = members_.find(session);
    if (it == members_.end()) return false;
    Member* m = &it->second;
    auto r = find_room(m->rooms, room);
    if (r == m->rooms.end()) return false;
    const Membership k = *r;
    m->rooms.erase(r);
    remove_from_room(m, k);
    if (m->rooms.empty()) members_.erase(it);
    return true;
}

void RoomIndex::do_leave_all(SessionId session) {
    auto it = members_.find(session);
    if (it == members_.end()) return;
    Member* m = &it->second;
    for (const Membership& k : m->rooms) remove_from_room(m, k);
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
    const auto& rooms = it->second.rooms;
    return find_room(rooms, room) != rooms.end();
}

std::size_t RoomIndex::rooms_of(SessionId session) const {
    auto it = members_.find(session);
    return it == members_.end() ? 0 : it->second.rooms.size();
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
        // The list cannot change under us: every mutation is deferred while walking_ > 0.
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
