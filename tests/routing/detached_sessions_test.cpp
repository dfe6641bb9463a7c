// Tests for routing/detached_sessions: the caps on resumable sessions and the state file's
// text (a torn or foreign file is refused whole).
#include "routing/detached_sessions.hpp"

#include <doctest/doctest.h>

#include <string>

using namespace walcast;

namespace {

SessionSnapshot snap(std::string pid, std::string user, std::int64_t at, std::vector<std::string> projects = {}) {
    SessionSnapshot s;
    s.pid = std::move(pid);
    s.sid = "sid-" + s.pid;
    s.user = std::move(user);
    s.tenant = "acme";
    s.projects = std::move(projects);
    s.base = EventOffset{Lsn{0x1000}, 2};
    s.detached_at_ms = at;
    return s;
}

}  // namespace

TEST_SUITE("detached sessions") {
    TEST_CASE("kept by pid; take removes it") {
        DetachedSessions d(10, 10);
        CHECK(d.add(snap("p1", "u1", 1, {"a", "b"})) == 0);
        REQUIRE(d.find("p1"));
        CHECK(d.find("p1")->projects == std::vector<std::string>{"a", "b"});
        auto taken = d.take("p1");
        REQUIRE(taken);
        CHECK(taken->pid == "p1");
        CHECK(taken->user == "u1");
        CHECK(d.size() == 0);
        CHECK(d.of_user("u1") == 0);
        CHECK_FALSE(d.take("p1"));
    }

    TEST_CASE("a user past max_per_user loses its oldest, others keep theirs") {
        DetachedSessions d(100, 3);
        for (int i = 0; i < 3; ++i) CHECK(d.add(snap("a" + std::to_string(i), "alice", i)) == 0);
        CHECK(d.add(snap("b0", "bob", 10)) == 0);
        CHECK(d.add(snap("a3", "alice", 11)) == 1);
        CHECK_FALSE(d.find("a0"));
        CHECK(d.find("a1"));
        CHECK(d.find("a3"));
        CHECK(d.of_user("alice") == 3);
        CHECK(d.find("b0"));
    }

    TEST_CASE("past max_total the oldest of anyone goes; a flood of 100,000 stays at the cap") {
        DetachedSessions d(1000, 16);
        std::size_t evicted = 0;
        for (int i = 0; i < 100000; ++i) evicted += d.add(snap("p" + std::to_string(i), "u" + std::to_string(i % 50000), i));
        CHECK(d.size() == 1000);
        CHECK(evicted == 99000);
        CHECK(d.find("p99999"));
        CHECK_FALSE(d.find("p98999"));
    }

    TEST_CASE("caps of 0 keep nothing") {
        DetachedSessions d(0, 16);
        CHECK(d.add(snap("p", "u", 1)) == 1);
        CHECK(d.size() == 0);
    }

    TEST_CASE("taking then adding for the same user leaves no stale entry") {
        DetachedSessions d(100, 2);
        d.add(snap("p1", "u", 1));
        d.take("p1");
        d.add(snap("p2", "u", 2));
        d.add(snap("p3", "u", 3));
        CHECK(d.add(snap("p4", "u", 4)) == 1);
        CHECK(d.of_user("u") == 2);
        CHECK(d.size() == 2);
    }

    TEST_CASE("expire forgets those detached longer than the window") {
        DetachedSessions d(100, 16);
        d.add(snap("old", "u", 1000));
        d.add(snap("new", "v", 5000));
        CHECK(d.expire(6000, 2000) == 1);
        CHECK_FALSE(d.find("old"));
        CHECK(d.find("new"));
    }

    TEST_CASE("re-adding a pid replaces it") {
        DetachedSessions d(100, 16);
        d.add(snap("p", "u", 1, {"a"}));
        d.add(snap("p", "u", 2, {"b"}));
        CHECK(d.size() == 1);
        CHECK(d.find("p")->projects == std::vector<std::string>{"b"});
    }
}

TEST_SUITE("recovery state file") {
    TEST_CASE("round trip") {
        RecoveryState st;
        st.dispatched = Lsn{0x16B3F10};
        st.sessions = {snap("p1", "u\"1", 7, {"x", "y"}), snap("p2", "u2", 8)};
        auto back = decode_recovery_state(encode_recovery_state(st));
        REQUIRE(back);
        CHECK(back->dispatched == st.dispatched);
        REQUIRE(back->sessions.size() == 2);
        CHECK(back->sessions[0].user == "u\"1");
        CHECK(back->sessions[0].projects == std::vector<std::string>{"x", "y"});
        CHECK(back->sessions[0].base == EventOffset{Lsn{0x1000}, 2});
        CHECK(back->sessions[1].detached_at_ms == 8);
    }

    TEST_CASE("a torn, empty, foreign or hostile file is refused whole, with the reason") {
        RecoveryState st;
        st.dispatched = Lsn{0x10};
        st.sessions = {snap("p1", "u1", 7)};
        const std::string text = encode_recovery_state(st);
        for (std::size_t cut : {std::size_t(0), std::size_t(1), text.size() / 2, text.size() - 3}) {
            auto r = decode_recovery_state(text.substr(0, cut));
            CHECK_FALSE(r);
            CHECK_FALSE(r.error().message.empty());
        }
        CHECK(decode_recovery_state(R"({"version":3,"dispatched":"0/10","sessions":[]})").error().message ==
              "not a walcast state file (version 1 or 2)");
        // Version 1, written before the end marker existed, is still read.
        auto v1 = decode_recovery_state(R"({"version":1,"dispatched":"0/10","sessions":[{"pid":"p","sid":"s","user":"u","tenant":"t","base":"0/8:1","detachedAtMs":5,"projects":["a"]}]})");
        REQUIRE(v1);
        CHECK(v1->sessions.size() == 1);
        CHECK(v1->sessions[0].projects == std::vector<std::string>{"a"});
        CHECK(decode_recovery_state(R"({"version":2,"dispatched":"0/10","sessions":[]})").error().message ==
              "incomplete (no end marker)");
        CHECK(decode_recovery_state(R"({"version":2,"dispatched":"zz","sessions":[],"end":true})").error().message ==
              "bad dispatched LSN");
        CHECK_FALSE(decode_recovery_state(std::string(1000000, '[')));
        CHECK(decode_recovery_state(R"({"version":2,"dispatched":"0/10","sessions":[{"pid":"p"}],"end":true})")
                  .error()
                  .message == "a session without pid, user or base");
    }
}
