// decide_slot (see continuity.hpp).
#include "decoder/continuity.hpp"

namespace walcast {

const char* discontinuity_name(Discontinuity d) {
    switch (d) {
    case Discontinuity::None: return "none";
    case Discontinuity::SlotMissing: return "slot_missing";
    case Discontinuity::SlotInvalidated: return "slot_invalidated";
    case Discontinuity::SlotAhead: return "slot_ahead";
    case Discontinuity::ServerChanged: return "server_changed";
    case Discontinuity::Promotion: return "promotion";
    }
    return "unknown";
}

namespace {

const char* policy_name(CreateSlot p) {
    switch (p) {
    case CreateSlot::Always: return "always";
    case CreateSlot::FirstStart: return "first-start";
    case CreateSlot::Never: return "never";
    }
    return "?";
}

}  // namespace

SlotDecision decide_slot(CreateSlot policy, const std::string& slot_name, const StreamRecord& record,
                         const ServerIdentity& server, const SlotInfo& slot) {
    SlotDecision d;
    if (slot.exists && slot.plugin != "wal2json") {
        d.step = SlotStep::Fatal;
        d.detail = "replication slot \"" + slot_name + "\" uses plugin \"" + slot.plugin +
                   "\", not wal2json; drop it (SELECT pg_drop_replication_slot('" + slot_name +
                   "');) or set [postgres] slot to another name";
        return d;
    }

    // Only a walcast that streamed before can have lost anything; the most fundamental
    // cause is named.
    if (record.streamed) {
        const bool server_known = record.server.known() && server.known();
        if (server_known && server.system_id != record.server.system_id) {
            d.discontinuity = Discontinuity::ServerChanged;
            d.detail = "the server's system identifier is " + server.system_id + ", not " + record.server.system_id +
                       " where this walcast streamed before";
        } else if (server_known && server.timeline != record.server.timeline &&
                   !(slot.exists && slot.failover && !slot.invalidated())) {
            // A PostgreSQL 17 failover slot is synchronized to the standby and survives the
            // promotion: then the new timeline loses nothing.
            d.discontinuity = Discontinuity::Promotion;
            d.detail = "the server is on timeline " + std::to_string(server.timeline) + ", not " +
                       std::to_string(record.server.timeline) + " (a standby was promoted) and the slot " +
                       (slot.exists ? "is not a failover slot" : "did not follow");
        } else if (!slot.exists) {
            d.discontinuity = Discontinuity::SlotMissing;
            d.detail = "replication slot \"" + slot_name + "\" no longer exists";
        } else if (slot.invalidated()) {
            d.discontinuity = Discontinuity::SlotInvalidated;
            d.detail = "replication slot \"" + slot_name +
                       "\" was invalidated (wal_status lost: it fell behind max_slot_wal_keep_size)";
        } else if (record.dispatched && slot.confirmed > *record.dispatched) {
            d.discontinuity = Discontinuity::SlotAhead;
            d.detail = "replication slot \"" + slot_name + "\" confirms up to " + slot.confirmed.str() +
                       ", past the " + record.dispatched->str() + " this walcast dispatched (advanced or recreated)";
        }
    }

    if (slot.exists && !slot.invalidated()) {
        d.step = SlotStep::Start;
        return d;
    }
    if (slot.exists && d.discontinuity == Discontinuity::None) {
        // Invalidated before this walcast ever streamed it: nothing of ours was lost.
        d.detail = "replication slot \"" + slot_name + "\" is invalidated (wal_status lost)";
    } else if (d.discontinuity == Discontinuity::None) {
        d.detail = "replication slot \"" + slot_name + "\" does not exist";
    }
    const bool create = policy == CreateSlot::Always || (policy == CreateSlot::FirstStart && !record.streamed);
    if (create) {
        d.step = slot.exists ? SlotStep::Recreate : SlotStep::Create;
        d.detail += std::string("; ") + (slot.exists ? "recreating" : "creating") + " it (create_slot = \"" +
                    policy_name(policy) + "\"" + (record.streamed ? ")" : ", first start)");
        return d;
    }
    d.step = SlotStep::Wait;
    d.detail += std::string("; not creating it (create_slot = \"") + policy_name(policy) + "\"" +
                (policy == CreateSlot::FirstStart ? ": this walcast streamed before" : "") +
                "): " + (slot.exists ? "drop and create it, e.g. SELECT pg_drop_replication_slot('" + slot_name + "'); " : "create it, e.g. ") +
                "SELECT pg_create_logical_replication_slot('" + slot_name + "', 'wal2json'); or set create_slot = \"always\"";
    return d;
}

}  // namespace walcast
