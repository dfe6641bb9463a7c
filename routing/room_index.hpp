// RoomIndex: which sessions are in which rooms ("project:p1", "user:u1", "tenant:acme"),
// and the fan-out walk that hands each recipient of an event to a sink exactly once.
// Pure: never touches a socket; owned by the one thread that owns the sessions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace walcast {

using SessionId = std::uint64_t;

// Receives the recipients of one event. It may call back into the index (leave, leave_all,
// join); those changes are deferred until the walk ends, and a session removed with
// leave_all during the walk receives nothing more from it.
class RecipientSink {
public:
    virtual ~RecipientSink() = default;
    virtual void deliver(SessionId session) = 0;
};

class RoomIndex {
public:
    RoomIndex();
    ~RoomIndex();
    RoomIndex(const RoomIndex&) = delete;
    RoomIndex& operator=(const RoomIndex&) = delete;

    // True when the session was not yet in the room. During a walk the change is deferred
    // and the answer reflects the membership before it.
    bool join(SessionId session, std::string_view room);
    // True when the session was in the room. Deferred during a walk, like join.
    bool leave(SessionId session, std::string_view room);
    // Removes the session from every room. During a walk: it is skipped at once, and the
    // removal happens when the walk ends.
    void leave_all(SessionId session);

    bool is_member(SessionId session, std::string_view room) const;
    std::size_t rooms_of(SessionId session) const;   // rooms the session is in
    std::size_t members(std::string_view room) const;
    std::size_t rooms() const;                        // non-empty rooms
    std::size_t sessions() const;                     // sessions in at least one room

    // Calls sink.deliver once for every distinct session in any of `rooms` (a session in
    // several of them is delivered to once). Returns the number of deliveries.
    std::size_t for_each_recipient(const std::vector<std::string>& rooms, RecipientSink& sink);

private:
    struct Member;
    // A room's members in no particular order; each member knows its position in every room
    // it is in, so leaving is a swap with the last member, whatever the room's size.
    using Room = std::vector<Member*>;
    // A room's name and members, as one node of rooms_ (nodes never move).
    using RoomEntry = std::pair<const std::string, Room>;

    struct Membership {
        RoomEntry* room;     // the name is stored once, in the index, however many members
        std::size_t at;      // this member's position in room->second
    };

    struct Member {
        SessionId id = 0;
        std::uint64_t stamp = 0;  // last walk that delivered to it: dedupes multi-room events
        bool removed = false;     // leave_all during a walk: skip it, erase after
        std::vector<Membership> rooms;
    };

    struct Deferred {
        enum class Op : std::uint8_t { Join, Leave, LeaveAll } op;
        SessionId session;
        std::string room;
    };

    bool do_join(SessionId session, std::string_view room);
    bool do_leave(SessionId session, std::string_view room);
    void do_leave_all(SessionId session);
    void apply_deferred();
    // Takes `m` out of the room of membership `k`, dropping the room when it empties.
    void remove_from_room(Member* m, const Membership& k);

    // Nodes of unordered_map are stable, so rooms hold Member pointers and members hold
    // RoomEntry pointers.
    std::unordered_map<SessionId, Member> members_;
    std::unordered_map<std::string, Room> rooms_;
    std::uint64_t walk_ = 0;   // stamp of the current or last walk
    int walking_ = 0;          // nesting depth of for_each_recipient
    std::vector<Deferred> deferred_;
};

}  // namespace walcast
