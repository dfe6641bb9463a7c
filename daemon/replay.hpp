// `walcast replay`: what a recorded wal2json stream would emit Main thread only.
#pragma once

#include <string>

namespace walcast {

struct ReplayOptions {
    std::string config_path;
    std::string input;  // a file, or "-" for stdin
    bool explain = false;
};

// Exit status: 0, or 3 when any line was malformed, or 2 when the replay could not run.
int run_replay(const ReplayOptions& options);

}  // namespace walcast
