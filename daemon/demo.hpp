// `walcast demo`: a throwaway PostgreSQL cluster with the reference schema, the daemon, a
// writer that simulates a small team, and a live board page at http://127.0.0.1:PORT/ that
// reads the board from GET /api/board (the tasks and a snapshot token) and joins the project
// with that token. Ctrl-C stops everything and removes the cluster; SIGUSR1 pauses the
// simulated team and SIGUSR2 resumes it. Main thread (plus the writer and board threads).
#pragma once

#include <cstdint>

namespace walcast {

struct DemoOptions {
    std::uint16_t port = 8787;
    bool writer = true;  // simulate the team's writes
};

int run_demo(const DemoOptions& options);

}  // namespace walcast
