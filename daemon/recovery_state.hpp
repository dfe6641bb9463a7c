// StateFileWriter: writes the durable recovery state (recovery.json) on its own thread.
// Driven from the loop thread; the writer thread only touches the file.
#pragma once

#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>

#include "decoder/lsn.hpp"
#include "routing/detached_sessions.hpp"

namespace walcast {

// Writes recovery.json on its own thread, so the loop never waits for the disk: the loop
// hands over the newest encoded state, the writer writes a temp file, fsyncs it, renames it
// over the old one and fsyncs the directory. Only the newest state is written; one that
// arrives while a write is under way replaces any still waiting.
class StateFileWriter {
public:
    explicit StateFileWriter(std::string path);
    ~StateFileWriter();  // writes what is pending, then stops

    void write(std::string contents, Lsn dispatched);
    // What the newest completed write recorded as dispatched (for confirmations).
    Lsn durable() const;
    // Waits until everything handed over is on disk (shutdown).
    void flush();
    // The last error, once; empty when none since the last call.
    std::string take_error();

private:
    std::string path_;
    mutable std::mutex mutex_;
    std::condition_variable wake_, idle_;
    std::optional<std::pair<std::string, Lsn>> pending_;
    bool busy_ = false;
    bool stop_ = false;
    Lsn durable_;
    std::string error_;
    std::thread thread_;

    void loop();
    bool write_file(const std::string& contents, std::string& error);
};

}  // namespace walcast
