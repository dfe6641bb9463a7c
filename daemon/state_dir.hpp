// StateDir: walcast's state directory ([recovery] state_dir, or systemd's StateDirectory=).
// identity.json says which server and slot this walcast streamed, so that a missing slot
// later is a discontinuity rather than a first start; recovery.json says what it dispatched
// and which sessions may resume. A missing or unreadable recovery.json next to an
// identity.json is lost state: the daemon then re-reads the slot without sending anything
// committed before it started, and no session resumes. Loop thread; recovery.json is
// written by StateFileWriter's thread.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "daemon/recovery_state.hpp"
#include "decoder/continuity.hpp"
#include "routing/detached_sessions.hpp"

namespace walcast {

class StateDir {
public:
    // The configured directory, else the first of $STATE_DIRECTORY; empty when neither.
    static std::string resolve(const std::string& configured);

    StateDir(std::string dir, std::string slot);
    bool enabled() const { return !dir_.empty(); }
    const std::string& dir() const { return dir_; }

    enum class Found {
        FirstStart,  // nothing: this walcast never streamed this slot
        Resumable,   // identity and recovery state
        Lost,        // identity, but no usable recovery state (missing, or corrupt and set aside)
    };
    struct Loaded {
        Found found = Found::FirstStart;
        StreamRecord record;
        std::vector<SessionSnapshot> sessions;
        std::string problem;  // for Lost: what was wrong with recovery.json
    };
    Loaded load();

    // identity.json, written and fsynced at once: it changes only with the server or slot.
    // Returns an error message, empty on success.
    std::string save_identity(const ServerIdentity& server);
    void save_recovery(const RecoveryState& state);
    Lsn durable() const { return writer_ ? writer_->durable() : Lsn{}; }
    std::string take_error() { return writer_ ? writer_->take_error() : std::string(); }
    void flush() {
        if (writer_) writer_->flush();
    }

private:
    std::string dir_, slot_;
    std::unique_ptr<StateFileWriter> writer_;
};

}  // namespace walcast
