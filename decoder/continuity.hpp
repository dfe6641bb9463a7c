// Continuity of the stream across reconnects, restarts and failovers: whether the slot
// walcast is about to stream continues what it streamed before, and what to do when it does
// not (a dropped, invalidated, advanced or recreated slot, another server, a promotion).
// Pure: the caller gathers the facts (IDENTIFY_SYSTEM, pg_replication_slots, its own record)
// and carries out the decision. Any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "decoder/lsn.hpp"

namespace walcast {

// When walcast may create its replication slot.
enum class CreateSlot : unsigned char {
    Always,      // whenever it is missing or invalidated (the discontinuity is still reported)
    FirstStart,  // only while this walcast has never streamed (its state directory says so)
    Never,       // never: a missing slot is reported and waited for until an operator acts
};

// The server as IDENTIFY_SYSTEM describes it.
struct ServerIdentity {
    std::string system_id;  // the cluster's system identifier; a restored or new cluster differs
    std::uint32_t timeline = 0;  // a promotion starts a new timeline

    bool known() const { return !system_id.empty(); }
};

// What this walcast knows of its own past streaming (in memory, or from its state directory).
struct StreamRecord {
    bool streamed = false;           // it has streamed this slot before
    ServerIdentity server;           // where it last streamed
    std::optional<Lsn> dispatched;   // events up to here were handed to clients (unknown: no bound)
};

// The slot as pg_replication_slots shows it.
struct SlotInfo {
    bool exists = false;
    std::string plugin;
    Lsn confirmed;                // confirmed_flush_lsn: where streaming resumes
    std::string wal_status;       // reserved, extended, unreserved or lost
    bool failover = false;        // PostgreSQL 17 failover slot: synchronized to standbys
    bool invalidated() const { return wal_status == "lost"; }
};

enum class Discontinuity : std::uint8_t {
    None,
    SlotMissing,      // dropped (by hand, or lost with its server)
    SlotInvalidated,  // max_slot_wal_keep_size (or a conflict) invalidated it
    SlotAhead,        // it confirms past what this walcast dispatched: someone advanced or recreated it
    ServerChanged,    // another cluster answers (a restore, or the wrong host)
    Promotion,        // a new timeline: a standby was promoted and the slot did not follow
};

// The label of walcast_discontinuities_total{reason=...}.
const char* discontinuity_name(Discontinuity d);

enum class SlotStep : std::uint8_t {
    Start,     // stream the slot as it is
    Create,    // create it, then stream
    Recreate,  // drop the invalidated slot, create it, then stream
    Wait,      // do not create it: retry later, until an operator acts
    Fatal,     // the slot cannot be used (another output plugin): stop
};

struct SlotDecision {
    SlotStep step = SlotStep::Start;
    Discontinuity discontinuity = Discontinuity::None;
    std::string detail;  // for the log: what was found and what to do about it
};

SlotDecision decide_slot(CreateSlot policy, const std::string& slot_name, const StreamRecord& record,
                         const ServerIdentity& server, const SlotInfo& slot);

}  // namespace walcast
