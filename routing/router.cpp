// The router (see router.hpp). The hot path is on_change: it builds an event's JSON payload
// straight from the decoded columns into one string, reusing scratch buffers.
#include "routing/router.hpp"

#include <algorithm>

#include "decoder/json_text.hpp"

namespace walcast {

namespace {

const char* operation_name(Action a) {
    switch (a) {
    case Action::Insert: return "created";
    case Action::Update: return "updated";
    default: return "deleted";
    }
}

// int8 and numeric lose digits in a browser's JSON.parse; integer and smaller do not.
bool big_number_type(const std::string& type) {
    return type == "bigint" || type.compare(0, 7, "numeric") == 0;
}

// The row a change describes: the new row, or for DELETE the old one. For an UPDATE a
// column absent from the new row (an unchanged TOASTed value) is looked up in the old row,
// which has it when the table's identity is FULL.
struct RowView {
    const std::vector<Column>& row;
    const std::vector<Column>* old;

    const Column* find(std::string_view name) const {
        if (const Column* c = find_column(row, name)) return c;
        return old ? find_column(*old, name) : nullptr;
    }
};

RowView row_of(const Change& change) {
    if (change.action == Action::Delete) return {change.identity, nullptr};
    if (change.action == Action::Update) return {change.columns, &change.identity};
    return {change.columns, nullptr};
}

const std::optional<std::string>* context_field(const EmitContext& ctx, std::string_view name) {
    if (name == "actorUserId") return &ctx.actor_user_id;
    if (name == "projectId") return &ctx.project_id;
    if (name == "tenantId") return &ctx.tenant_id;
    return nullptr;
}

// Appends a placeholder's value to `room`; false when it does not resolve to a non-null
// value, with `why` naming what was missing.
bool resolve(const Placeholder& p, const RowView& row, const EmitContext& ctx, std::string& room,
             std::string& why) {
    if (p.source != Placeholder::Source::Context) {
        if (const Column* c = row.find(p.name)) {
            if (c->value.is_null()) {
                why = p.name + " is null";
                return false;
            }
            room += c->value.text;
            return true;
        }
        if (p.source == Placeholder::Source::Row) {
            why = "the row has no column " + p.name;
            return false;
        }
    }
    const std::optional<std::string>* field = context_field(ctx, p.name);
    if (!field) {
        why = "the row has no column " + p.name + " and the context no such field";
        return false;
    }
    if (!*field) {
        why = "context " + p.name + " is null";
        return false;
    }
    room += **field;
    return true;
}

// Row column of that name when the row has it, else the context's field: the same rule as
// a {col} placeholder, so an event's projectId agrees with the room it was sent to.
void append_scope(std::string& out, const RowView& row, std::string_view name,
                  const std::optional<std::string>& ctx_value) {
    if (const Column* c = row.find(name)) append_json_value(out, c->value);
    else append_json_optional(out, ctx_value);
}

}  // namespace

Router::Router(const Config& config, EventSink& sink, RouteObserver* observer)
    : config_(config), sink_(sink), observer_(observer) {}

const ModelConfig* Router::lookup(const Change& change) {
    if (change.table != last_table_ || change.schema != last_schema_) {
        last_schema_ = change.schema;
        last_table_ = change.table;
        last_model_ = config_.find_model(change.schema, change.table);
    }
    return last_model_;
}

const Router::Quoted& Router::quoted(const ModelConfig& model) {
    if (quoted_.model != &model) {
        quoted_.model = &model;
        quoted_.name.clear();
        append_json_string(quoted_.name, model.name);
        quoted_.keys.resize(model.payload.size());
        for (std::size_t i = 0; i < model.payload.size(); ++i) {
            quoted_.keys[i].clear();
            append_json_string(quoted_.keys[i], model.payload[i]);
            quoted_.keys[i].push_back(':');
        }
    }
    return quoted_;
}

// A new event at the end of events_, with empty fields, built in a spare one when there is.
Event& Router::new_event() {
    if (spare_.empty()) return events_.emplace_back();
    Event& ev = events_.emplace_back(std::move(spare_.back()));
    spare_.pop_back();
    ev.name.clear();
    ev.payload.clear();
    ev.end_lsn = Lsn{};
    ev.index = 0;
    ev.xid = 0;
    return ev;  // rooms: assigned by the caller, keeping its strings' storage
}

void Router::recycle_events() {
    for (Event& ev : events_) {
        if (spare_.size() == kSpareEvents) break;
        spare_.push_back(std::move(ev));
    }
    events_.clear();
}

void Router::reset_transaction() {
    recycle_events();
    bulks_.clear();
    coalescing_ = false;
    changes_ = 0;
}

void Router::on_begin(const TransactionInfo& txn) {
    reset_transaction();
    txn_ = txn;
    stamp_.clear();
    stamp_ += ",\"lsn\":\"";
    stamp_ += txn.end_lsn.str();
    stamp_ += "\",\"xid\":";
    stamp_ += std::to_string(txn.xid);
    stamp_ += ",\"committedAt\":";
    if (txn.committed_at.empty()) stamp_ += "null";
    else append_json_string(stamp_, txn.committed_at);
    if (observer_) observer_->on_begin(txn);
}

void Router::on_context(const Change& message, const EmitContext* context, const Error* error) {
    if (error) ++counters_.malformed_contexts;
    if (observer_) observer_->on_context(message, context, error);
}

void Router::on_change(const Change& change, const EmitContext* context, const Verdict& so_far) {
    ++changes_;
    ChangeOutcome& out = outcome_;
    out.event_name.clear();
    out.detail.clear();
    // This change's rooms are out.rooms[0, nrooms); the entries past them are kept for their
    // storage, and cut off only when an observer is shown the outcome.
    std::size_t nrooms = 0;
    auto report = [&](Fate fate) {
        out.fate = fate;
        if (observer_) {
            out.rooms.resize(nrooms);
            observer_->on_change(change, out);
        }
    };

    if (change.action == Action::Truncate) {
        ++counters_.dropped_truncate;
        return report(Fate::Truncate);
    }
    const ModelConfig* model = lookup(change);
    if (!model) {
        ++counters_.dropped_not_routed;
        return report(Fate::NotRouted);
    }
    if (so_far.suppressed()) {
        ++counters_.dropped_suppressed;
        return report(Fate::Suppressed);
    }
    if (!context) {
        ++counters_.dropped_no_context;
        return report(Fate::NoContext);
    }

    const RowView row = row_of(change);
    std::string why;
    for (const RoomTemplate& tpl : model->rooms) {
        bool resolved = false;
        for (const RoomAlternative& alt : tpl.alternatives) {
            if (out.rooms.size() == nrooms) out.rooms.emplace_back();
            std::string& room = out.rooms[nrooms];
            room.clear();
            resolved = true;
            for (const TemplateSegment& seg : alt.segments) {
                if (!seg.placeholder) room += seg.literal;
                else if (!resolve(*seg.placeholder, row, *context, room, why)) {
                    const char* prefix = seg.placeholder->source == Placeholder::Source::Row ? "row."
                                       : seg.placeholder->source == Placeholder::Source::Context ? "ctx." : "";
                    why = "{" + std::string(prefix) + seg.placeholder->name + "} in \"" + tpl.source +
                          "\" (" + why + ")";
                    resolved = false;
                    break;
                }
            }
            if (resolved) {
                const auto end = out.rooms.begin() + static_cast<std::ptrdiff_t>(nrooms);
                if (std::find(out.rooms.begin(), end, room) == end) ++nrooms;
                break;
            }
        }
        if (!resolved) {
            if (!out.detail.empty()) out.detail += "; ";
            out.detail += why;
        }
    }
    if (nrooms == 0) {
        ++counters_.dropped_room_unresolved;
        return report(Fate::RoomUnresolved);
    }

    const char* operation = operation_name(change.action);
    out.event_name = model->name;
    out.event_name += ':';
    out.event_name += operation;

    if (!coalescing_ && events_.size() >= config_.max_events_per_transaction) start_coalescing();
    // The scope is built in the entry that goes with the new event (kept storage).
    if (!coalescing_ && scopes_.size() <= events_.size()) scopes_.resize(events_.size() + 1);
    Scope& scope = coalescing_ ? bulk_scope_ : scopes_[events_.size()];
    scope.model = model;
    scope.operation = operation;
    scope.actor.clear();
    scope.tenant.clear();
    scope.project.clear();
    append_json_optional(scope.actor, context->actor_user_id);
    append_scope(scope.tenant, row, "tenantId", context->tenant_id);
    append_scope(scope.project, row, "projectId", context->project_id);

    if (coalescing_) {
        for (std::size_t i = 0; i < nrooms; ++i) add_to_bulk(out.rooms[i], out.event_name, scope);
        return report(Fate::Emitted);
    }

    const Quoted& q = quoted(*model);
    Event& ev = new_event();
    ev.name = out.event_name;
    ev.rooms.resize(nrooms);
    for (std::size_t i = 0; i < nrooms; ++i) ev.rooms[i] = out.rooms[i];
    ev.end_lsn = txn_.end_lsn;
    ev.xid = txn_.xid;
    ev.index = static_cast<std::uint32_t>(events_.size() - 1);

    const bool quote_numbers = config_.numbers_as_strings;
    std::string& p = ev.payload;
    p.reserve(256);
    p += "{\"model\":";
    p += q.name;
    p += ",\"operation\":\"";
    p += operation;
    p += "\",\"id\":";
    if (model->key.size() == 1) {
        const Column* c = row.find(model->key[0]);
        if (c) append_json_value(p, c->value, quote_numbers && big_number_type(c->type));
        else p += "null";
    } else {
        p.push_back('{');
        bool first = true;
        for (const std::string& k : model->key) {
            if (!first) p.push_back(',');
            first = false;
            append_json_string(p, k);
            p.push_back(':');
            const Column* c = row.find(k);
            if (c) append_json_value(p, c->value, quote_numbers && big_number_type(c->type));
            else p += "null";
        }
        p.push_back('}');
    }
    p += ",\"actorUserId\":";
    p += scope.actor;
    p += ",\"tenantId\":";
    p += scope.tenant;
    p += ",\"projectId\":";
    p += scope.project;
    p += ",\"eventId\":\"";
    p += txn_.end_lsn.str();
    p.push_back(':');
    p += std::to_string(ev.index);
    p.push_back('"');
    p += stamp_;
    p += ",\"data\":{";
    bool first = true;
    for (std::size_t i = 0; i < model->payload.size(); ++i) {
        const Column* c = row.find(model->payload[i]);
        if (!c) continue;  // absent, e.g. an unchanged TOASTed value: absent, never null
        if (!first) p.push_back(',');
        first = false;
        p += q.keys[i];
        append_json_value(p, c->value, quote_numbers && big_number_type(c->type));
    }
    p += "}}";
    return report(Fate::Emitted);
}

void Router::start_coalescing() {
    coalescing_ = true;
    ++counters_.coalesced_transactions;
    for (std::size_t i = 0; i < events_.size(); ++i)
        for (const std::string& room : events_[i].rooms) add_to_bulk(room, events_[i].name, scopes_[i]);
    events_.clear();
    events_.shrink_to_fit();
    scopes_.clear();
    scopes_.shrink_to_fit();
    spare_.clear();
    spare_.shrink_to_fit();
}

void Router::add_to_bulk(const std::string& room, const std::string& name, const Scope& scope) {
    auto [it, inserted] = bulks_.try_emplace(BulkKey{room, name});
    Bulk& b = it->second;
    if (inserted) {
        b.order = bulks_.size() - 1;
        b.scope = scope;
    } else {
        // A field shared by every coalesced event is kept; one that varies becomes null.
        if (b.scope.actor != scope.actor) b.scope.actor = "null";
        if (b.scope.tenant != scope.tenant) b.scope.tenant = "null";
        if (b.scope.project != scope.project) b.scope.project = "null";
    }
    ++b.count;
}

void Router::on_commit(const TransactionInfo& txn, const Verdict& verdict) {
    ++counters_.transactions;
    std::size_t handed = 0;
    if (verdict.suppressed()) {
        std::uint64_t lost = events_.size();
        for (auto& [key, bulk] : bulks_) lost += bulk.count;
        counters_.dropped_suppressed += lost;
        reset_transaction();
    } else {
        if (coalescing_) {
            std::vector<std::pair<const BulkKey*, const Bulk*>> ordered(bulks_.size());
            for (const auto& [key, bulk] : bulks_) ordered[bulk.order] = {&key, &bulk};
            events_.clear();
            for (const auto& [key, bulk] : ordered) {
                Event& ev = events_.emplace_back();
                ev.name = key->name;
                ev.rooms = {key->room};
                ev.end_lsn = txn.end_lsn;
                ev.xid = txn.xid;
                ev.index = static_cast<std::uint32_t>(events_.size() - 1);
                std::string& p = ev.payload;
                p += "{\"model\":";
                append_json_string(p, bulk->scope.model->name);
                p += ",\"operation\":\"";
                p += bulk->scope.operation;
                p += "\",\"bulk\":true,\"count\":";
                p += std::to_string(bulk->count);
                p += ",\"actorUserId\":";
                p += bulk->scope.actor;
                p += ",\"tenantId\":";
                p += bulk->scope.tenant;
                p += ",\"projectId\":";
                p += bulk->scope.project;
                p += ",\"eventId\":\"";
                p += txn.end_lsn.str();
                p.push_back(':');
                p += std::to_string(ev.index);
                p.push_back('"');
                p += stamp_;
                p.push_back('}');
            }
        }
        handed = events_.size();
        counters_.events += handed;
        if (!events_.empty()) sink_.on_transaction(txn, events_);
        reset_transaction();
    }
    if (observer_) observer_->on_commit(txn, verdict, handed);
}

void Router::on_abandon(const TransactionInfo& txn, const std::string& reason) {
    ++counters_.abandoned_transactions;
    reset_transaction();
    if (observer_) observer_->on_abandon(txn, reason);
}

}  // namespace walcast
