// RoomIndex with a fake sink: membership, multi-room dedupe, and sessions removed or added
// while an event is being fanned out.
#include <doctest/doctest.h>

#include <algorithm>
#include <functional>
#include <vector>

#include "routing/room_index.hpp"

using namespace walcast;

namespace {

// Records deliveries; an optional hook runs inside deliver, like a server closing a slow client.
struct FakeSink : RecipientSink {
    std::vector<SessionId> got;
    std::function<void(SessionId)> hook;
    void deliver(SessionId s) override {
        got.push_back(s);
        if (hook) hook(s);
    }
    std::vector<SessionId> sorted() const {
        auto v = got;
        std::sort(v.begin(), v.end());
        return v;
    }
};

}  // namespace

TEST_SUITE("room_index") {

TEST_CASE("join and leave") {
    RoomIndex index;
    CHECK(index.join(1, "project:p1"));
    CHECK_FALSE(index.join(1, "project:p1"));  // already in
    CHECK(index.join(1, "user:u1"));
    CHECK(index.join(2, "project:p1"));
    CHECK(index.is_member(1, "project:p1"));
    CHECK(index.rooms_of(1) == 2);
    CHECK(index.members("project:p1") == 2);
    CHECK(index.rooms() == 2);
    CHECK(index.sessions() == 2);

    CHECK(index.leave(1, "project:p1"));
    CHECK_FALSE(index.leave(1, "project:p1"));
    CHECK_FALSE(index.leave(9, "project:p1"));
    CHECK_FALSE(index.is_member(1, "project:p1"));
    CHECK(index.members("project:p1") == 1);

    index.leave_all(2);
    CHECK(index.members("project:p1") == 0);
    CHECK(index.rooms() == 1);  // empty rooms are dropped
    CHECK(index.sessions() == 1);
    index.leave_all(2);         // twice is harmless
    index.leave(1, "user:u1");
    CHECK(index.sessions() == 0);
    CHECK(index.rooms() == 0);
}

TEST_CASE("recipients of one room") {
    RoomIndex index;
    index.join(1, "project:p1");
    index.join(2, "project:p1");
    index.join(3, "project:p2");
    FakeSink sink;
    CHECK(index.for_each_recipient({"project:p1"}, sink) == 2);
    CHECK(sink.sorted() == std::vector<SessionId>{1, 2});

    FakeSink none;
    CHECK(index.for_each_recipient({"project:nobody"}, none) == 0);
    CHECK(index.for_each_recipient({}, none) == 0);
    CHECK(none.got.empty());
}

TEST_CASE("a session in several rooms of one event gets it once") {
    RoomIndex index;
    index.join(1, "project:p1");
    index.join(1, "user:u1");
    index.join(1, "tenant:acme");
    index.join(2, "tenant:acme");
    index.join(3, "user:u1");
    FakeSink sink;
    CHECK(index.for_each_recipient({"project:p1", "user:u1", "tenant:acme"}, sink) == 3);
    CHECK(sink.sorted() == std::vector<SessionId>{1, 2, 3});

    // The next event delivers again.
    FakeSink again;
    CHECK(index.for_each_recipient({"user:u1", "project:p1"}, again) == 2);
    CHECK(again.sorted() == std::vector<SessionId>{1, 3});

    // The same room named twice.
    FakeSink twice;
    CHECK(index.for_each_recipient({"tenant:acme", "tenant:acme"}, twice) == 2);
}

TEST_CASE("a session removed during a walk gets nothing more and is removed after") {
    RoomIndex index;
    for (SessionId s = 1; s <= 100; ++s) {
        index.join(s, "tenant:acme");
        index.join(s, "user:u" + std::to_string(s));
    }
    FakeSink sink;
    std::vector<SessionId> closed;
    // Every delivery "closes" the session and another one, as a slow-consumer close would.
    sink.hook = [&](SessionId s) {
        index.leave_all(s);
        closed.push_back(s);
        const SessionId other = s % 100 + 1;
        index.leave_all(other);
        CHECK(index.sessions() == 100);  // nothing erased mid-walk
    };
    std::vector<std::string> rooms{"tenant:acme"};
    for (SessionId s = 1; s <= 100; ++s) rooms.push_back("user:u" + std::to_string(s));
    const std::size_t delivered = index.for_each_recipient(rooms, sink);
    // Each delivery removed itself and at most one session not yet visited.
    CHECK(delivered == sink.got.size());
    CHECK(delivered >= 50);
    CHECK(delivered < 100);
    auto got = sink.sorted();
    CHECK(std::adjacent_find(got.begin(), got.end()) == got.end());  // no duplicates
    CHECK(index.sessions() == 0);
    CHECK(index.rooms() == 0);
    CHECK(index.members("tenant:acme") == 0);
}

TEST_CASE("joins and leaves during a walk are applied after it, in order") {
    RoomIndex index;
    index.join(1, "project:p1");
    index.join(2, "project:p1");
    FakeSink sink;
    sink.hook = [&](SessionId s) {
        if (s == 1) {
            CHECK(index.join(3, "project:p1"));       // new member: not delivered this time
            CHECK(index.leave(2, "project:p1"));      // leave is deferred: 2 may still get it
            CHECK_FALSE(index.join(1, "project:p1"));  // already a member
            index.leave_all(1);
            CHECK(index.join(1, "project:p2"));       // after its leave_all, a fresh join
        }
    };
    index.for_each_recipient({"project:p1"}, sink);
    CHECK(std::find(sink.got.begin(), sink.got.end(), 3) == sink.got.end());
    CHECK(index.is_member(3, "project:p1"));
    CHECK_FALSE(index.is_member(2, "project:p1"));
    CHECK_FALSE(index.is_member(1, "project:p1"));
    CHECK(index.is_member(1, "project:p2"));
    CHECK(index.members("project:p1") == 1);

    FakeSink next;
    CHECK(index.for_each_recipient({"project:p1", "project:p2"}, next) == 2);
    CHECK(next.sorted() == std::vector<SessionId>{1, 3});
}

TEST_CASE("members leaving from anywhere in shared rooms, against a model of the rooms") {
    // Rooms keep their members in a list and a leaver's place is taken by the last member;
    // every leave, whichever place it empties, must leave exactly the model's members.
    RoomIndex index;
    std::vector<std::vector<SessionId>> model(3);
    const std::string names[3] = {"tenant:t", "project:p", "user:u"};
    std::uint32_t state = 7;
    const auto next = [&] { return (state = state * 1103515245u + 12345u) >> 16; };
    for (int step = 0; step < 3000; ++step) {
        const SessionId s = next() % 40;
        const unsigned r = next() % 3;
        auto& members = model[r];
        const auto at = std::find(members.begin(), members.end(), s);
        switch (next() % 4) {
        case 0:
        case 1:
            CHECK(index.join(s, names[r]) == (at == members.end()));
            if (at == members.end()) members.push_back(s);
            break;
        case 2:
            CHECK(index.leave(s, names[r]) == (at != members.end()));
            if (at != members.end()) members.erase(at);
            break;
        default:
            index.leave_all(s);
            for (auto& m : model) m.erase(std::remove(m.begin(), m.end(), s), m.end());
        }
        for (int k = 0; k < 3; ++k) {
            FakeSink sink;
            index.for_each_recipient({names[k]}, sink);
            auto want = model[k];
            std::sort(want.begin(), want.end());
            REQUIRE(sink.sorted() == want);
            CHECK(index.members(names[k]) == want.size());
        }
    }
}

TEST_CASE("a sink that throws does not leave the index stuck") {
    RoomIndex index;
    index.join(1, "r");
    FakeSink sink;
    sink.hook = [&](SessionId s) {
        index.leave_all(s);
        throw 1;
    };
    CHECK_THROWS(index.for_each_recipient({"r"}, sink));
    CHECK(index.sessions() == 0);  // the deferred leave_all ran
    CHECK(index.join(2, "r"));
    CHECK(index.members("r") == 1);
}

}  // TEST_SUITE
