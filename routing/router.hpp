// The router: turns the assembler's row changes plus the config into Socket.IO events
// named in the config. It buffers one transaction's events and hands them to an EventSink at
// commit; past max_events_per_transaction it coalesces them into one bulk event per
// (room, event name), so memory stays bounded whatever the transaction's size.
// Pure: no sockets, no logging, no clock. Owned by one thread.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "decoder/transaction.hpp"
#include "config/config.hpp"

namespace walcast {

struct Event {
    std::string name;                // "task:created"
    std::vector<std::string> rooms;  // "project:p1", ...
    std::string payload;             // the event's one argument, JSON, serialized once
    Lsn end_lsn;                     // the transaction's commit end LSN
    std::uint32_t index = 0;         // position within the transaction: eventId "end:index"
    std::int64_t xid = 0;            // the transaction's xid as the WAL carries it (32 bits)
};

// What became of one change, for --explain and for drop counters.
enum class Fate : std::uint8_t {
    Emitted,           // an event (possibly coalesced into a bulk event)
    NoContext,         // no context in force
    Suppressed,        // skipEmit, a malformed context or a bad line silenced its transaction
    NotRouted,         // table not in the config
    RoomUnresolved,    // every room template failed to resolve
    Truncate,          // TRUNCATE emits nothing
};

struct ChangeOutcome {
    Fate fate = Fate::Emitted;
    std::string event_name;          // set when Emitted
    std::vector<std::string> rooms;  // set when Emitted
    std::string detail;              // RoomUnresolved: which placeholder of which template
};

class EventSink {
public:
    virtual ~EventSink() = default;
    // A committed transaction's events, in change order. `events` may be moved from.
    virtual void on_transaction(const TransactionInfo& txn, std::vector<Event>& events) = 0;
};

// Optional observer of every decision, for --explain. Calls arrive in stream order.
class RouteObserver {
public:
    virtual ~RouteObserver() = default;
    virtual void on_begin(const TransactionInfo& txn) = 0;
    virtual void on_context(const Change& message, const EmitContext* context, const Error* error) = 0;
    virtual void on_change(const Change& change, const ChangeOutcome& outcome) = 0;
    virtual void on_commit(const TransactionInfo& txn, const Verdict& verdict, std::size_t events) = 0;
    virtual void on_abandon(const TransactionInfo& txn, const std::string& reason) = 0;
};

struct RouterCounters {
    std::uint64_t transactions = 0;           // committed transactions seen
    std::uint64_t events = 0;                 // events handed to the sink (bulk counts as one)
    std::uint64_t coalesced_transactions = 0;
    std::uint64_t dropped_no_context = 0;
    std::uint64_t dropped_suppressed = 0;     // changes of skipped/malformed/damaged transactions
    std::uint64_t dropped_not_routed = 0;
    std::uint64_t dropped_room_unresolved = 0;
    std::uint64_t dropped_truncate = 0;
    std::uint64_t malformed_contexts = 0;
    std::uint64_t abandoned_transactions = 0;
};

class Router : public TransactionSink {
public:
    Router(const Config& config, EventSink& sink, RouteObserver* observer = nullptr);

    void on_begin(const TransactionInfo& txn) override;
    void on_context(const Change& message, const EmitContext* context, const Error* error) override;
    void on_change(const Change& change, const EmitContext* context, const Verdict& so_far) override;
    void on_commit(const TransactionInfo& txn, const Verdict& verdict) override;
    void on_abandon(const TransactionInfo& txn, const std::string& reason) override;

    const RouterCounters& counters() const { return counters_; }

private:
    struct BulkKey {
        std::string room;
        std::string name;
        bool operator==(const BulkKey& o) const { return room == o.room && name == o.name; }
    };
    struct BulkKeyHash {
        std::size_t operator()(const BulkKey& k) const {
            return std::hash<std::string>()(k.room) * 31 + std::hash<std::string>()(k.name);
        }
    };
    // What a bulk event keeps of each event it absorbs; actor/tenant/project are JSON values.
    struct Scope {
        const ModelConfig* model = nullptr;
        const char* operation = "";
        std::string actor, tenant, project;
    };
    struct Bulk {
        std::size_t order = 0;  // first appearance, so bulk events keep change order
        std::uint64_t count = 0;
        Scope scope;
    };

    const Config& config_;
    EventSink& sink_;
    RouteObserver* observer_;
    RouterCounters counters_;

    // Per transaction.
    TransactionInfo txn_;
    std::string stamp_;  // ,"lsn":..,"xid":..,"committedAt":.. shared by its events
    std::vector<Event> events_;
    // Parallel to events_ (its first events_.size() entries), kept in case coalescing starts;
    // the entries past it are kept for their strings' storage.
    std::vector<Scope> scopes_;
    // Events handed over or dropped, kept for their strings' storage (payload, rooms): the
    // next transaction's events are built in them instead of in fresh allocations. At most
    // kSpareEvents, so what is kept stays small whatever a transaction's size.
    static constexpr std::size_t kSpareEvents = 1024;
    std::vector<Event> spare_;
    bool coalescing_ = false;
    std::unordered_map<BulkKey, Bulk, BulkKeyHash> bulks_;
    Scope bulk_scope_;  // scratch: the scope of a change absorbed into a bulk event
    std::uint64_t changes_ = 0;  // row changes seen in this transaction

    // Last table lookup, since consecutive changes usually hit the same table.
    std::string last_schema_, last_table_;
    const ModelConfig* last_model_ = nullptr;

    // Scratch reused across changes.
    ChangeOutcome outcome_;

    // The model's name and payload column names as JSON strings, quoted once per model.
    struct Quoted {
        const ModelConfig* model = nullptr;
        std::string name;               // "\"task\""
        std::vector<std::string> keys;  // "\"title\":", parallel to model->payload
    };
    Quoted quoted_;
    const Quoted& quoted(const ModelConfig& model);

    Event& new_event();
    void recycle_events();

    const ModelConfig* lookup(const Change& change);
    void start_coalescing();
    void add_to_bulk(const std::string& room, const std::string& name, const Scope& scope);
    void reset_transaction();
};

}  // namespace walcast
