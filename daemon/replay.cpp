// `walcast replay`: decoder + assembler + router over a capture, printing events or, with
// --explain, every decision. Output goes through one large stdio buffer.
#include "daemon/replay.hpp"

#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/line_reader.hpp"
#include "decoder/json_text.hpp"
#include "decoder/transaction.hpp"
#include "decoder/wal2json.hpp"
#include "config/config.hpp"
#include "routing/router.hpp"

namespace walcast {

namespace {

constexpr const char* kHowToRecord =
    "record the stream with LSNs, e.g. pg_recvlogical -d DB --slot SLOT --start -f capture.jsonl "
    "-o format-version=2 -o include-xids=1 -o include-lsn=1 -o include-timestamp=1, "
    "or with walcast run --record capture.jsonl";

// Only this thread writes `out`: glibc's unlocked fwrite skips the stream lock of each call.
void write(std::FILE* out, std::string_view s) { fwrite_unlocked(s.data(), 1, s.size(), out); }

// Prints each committed transaction's events as {"event":..,"rooms":[..],"payload":..}.
class PrintingSink : public EventSink {
public:
    explicit PrintingSink(std::FILE* out) : out_(out) {}

    void on_transaction(const TransactionInfo&, std::vector<Event>& events) override {
        // The line's head is built apart; the payload, most of the line, goes to the stdio
        // buffer as it is instead of being copied into the line first.
        for (const Event& ev : events) {
            line_.clear();
            line_ += "{\"event\":";
            append_json_string(line_, ev.name);
            line_ += ",\"rooms\":[";
            for (std::size_t i = 0; i < ev.rooms.size(); ++i) {
                if (i) line_.push_back(',');
                append_json_string(line_, ev.rooms[i]);
            }
            line_ += "],\"payload\":";
            write(out_, line_);
            write(out_, ev.payload);
            write(out_, std::string_view("}\n"));
        }
    }

private:
    std::FILE* out_;
    std::string line_;
};

// --explain: buffers one transaction's lines, since a skip found late changes the fate of
// changes before it, and prints them at commit.
class Explainer : public RouteObserver, public EventSink {
public:
    Explainer(const Config& config, std::FILE* out) : config_(config), out_(out) {}

    void on_transaction(const TransactionInfo&, std::vector<Event>&) override {}

    void on_begin(const TransactionInfo&) override {
        lines_.clear();
        contexts_ = 0;
        damage_.clear();
    }

    // A line of the open transaction that could not be used (malformed or oversized), shown
    // where it fell among the changes; `detail` says which line and why.
    void on_damaged_line(const std::string& detail) {
        Line l;
        l.text = "  damaged: " + detail;
        lines_.push_back(std::move(l));
        if (damage_.empty()) damage_ = detail;
    }

    void on_context(const Change& message, const EmitContext* context, const Error* error) override {
        ++contexts_;
        Line l;
        l.text = "  context at " + (message.lsn ? message.lsn->str() : std::string("?")) + ": ";
        if (context) l.text += context->to_json();
        else l.text += "malformed (" + error->message + "): the transaction emits nothing";
        lines_.push_back(std::move(l));
    }

    void on_change(const Change& change, const ChangeOutcome& outcome) override {
        Line l;
        l.text = std::string("  ") + action_letter(change.action) + " " + change.schema + "." + change.table;
        if (change.action != Action::Truncate) l.text += " id=" + id_of(change);
        l.text += ": ";
        switch (outcome.fate) {
        case Fate::Emitted:
            l.emitted = true;
            l.text += outcome.event_name + " -> ";
            for (std::size_t i = 0; i < outcome.rooms.size(); ++i) l.text += (i ? ", " : "") + outcome.rooms[i];
            break;
        case Fate::NoContext: l.text += "no event: no context (no walcast.set_context before it in its transaction)"; break;
        case Fate::Suppressed: l.suppressed = true; break;  // reason filled in at commit
        case Fate::NotRouted: l.text += "no event: table not routed (no [[model]] for it in the config)"; break;
        case Fate::RoomUnresolved: l.text += "no event: room unresolved: " + outcome.detail; break;
        case Fate::Truncate: l.text += "no event: TRUNCATE emits nothing"; break;
        }
        lines_.push_back(std::move(l));
    }

    void on_commit(const TransactionInfo& txn, const Verdict& verdict, std::size_t events) override {
        std::string out = header(txn) + " skip=" + (verdict.suppression == Suppression::Skipped ? "true" : "false") +
                          (contexts_ == 0 ? " context=none" : "") + "\n";
        std::string reason;
        switch (verdict.suppression) {
        case Suppression::None: break;
        case Suppression::Skipped: reason = "skipped (skipEmit at " + verdict.at.str() + ")"; break;
        case Suppression::MalformedContext:
            reason = "malformed context at " + verdict.at.str() + " (" + verdict.detail + ")";
            break;
        case Suppression::Damaged: reason = "transaction damaged (" + verdict.detail + ")"; break;
        }
        for (Line& l : lines_) {
            // Rules 3 and 5 silence the whole transaction, changes before the message too.
            if (l.suppressed || (l.emitted && verdict.suppressed())) {
                if (l.emitted) l.text.erase(l.text.find(": ") + 2);
                l.text += "no event: " + reason;
            }
            out += l.text;
            out.push_back('\n');
        }
        out += "  => " + std::to_string(events) + (events == 1 ? " event" : " events");
        if (verdict.suppressed()) out += ": " + reason;
        out += "\n";
        write(out_, out);
    }

    void on_abandon(const TransactionInfo& txn, const std::string& reason) override {
        // The damaged line may have been the missing commit line: name it.
        write(out_, header(txn) + " abandoned: " + reason + (damage_.empty() ? "" : " (damaged: " + damage_ + ")") + "\n");
        lines_.clear();
        damage_.clear();
    }

private:
    struct Line {
        std::string text;
        bool emitted = false;
        bool suppressed = false;
    };

    const Config& config_;
    std::FILE* out_;
    std::vector<Line> lines_;
    std::size_t contexts_ = 0;
    std::string damage_;  // the first damaged line of the open transaction

    static std::string header(const TransactionInfo& txn) {
        return "transaction xid=" + std::to_string(txn.xid) + " end=" + txn.end_lsn.str() +
               " committedAt=" + (txn.committed_at.empty() ? std::string("?") : txn.committed_at);
    }

    std::string id_of(const Change& change) const {
        const std::vector<Column>& row = change.action == Action::Delete ? change.identity : change.columns;
        const ModelConfig* model = config_.find_model(change.schema, change.table);
        std::vector<std::string> key = model ? model->key : change.pk;
        if (key.empty()) key = {"id"};
        std::string out;
        if (key.size() > 1) out.push_back('{');
        for (std::size_t i = 0; i < key.size(); ++i) {
            if (i) out.push_back(',');
            if (key.size() > 1) {
                append_json_string(out, key[i]);
                out.push_back(':');
            }
            const Column* c = find_column(row, key[i]);
            if (!c && change.action == Action::Update) c = find_column(change.identity, key[i]);
            if (c) append_json_value(out, c->value);
            else out += "null";
        }
        if (key.size() > 1) out.push_back('}');
        return out;
    }
};

}  // namespace

int run_replay(const ReplayOptions& options) {
    auto config = load_config(options.config_path);
    if (!config) {
        std::fprintf(stderr, "walcast replay: %s\n", config.error().message.c_str());
        return 2;
    }
    std::FILE* in = stdin;
    if (options.input != "-") {
        in = std::fopen(options.input.c_str(), "rb");
        if (!in) {
            std::fprintf(stderr, "walcast replay: cannot open %s: %s\n", options.input.c_str(),
                         std::strerror(errno));
            return 2;
        }
    }
    static char out_buffer[1 << 20];
    std::setvbuf(stdout, out_buffer, _IOFBF, sizeof out_buffer);

    PrintingSink printer(stdout);
    Explainer explainer(*config, stdout);
    EventSink& sink = options.explain ? static_cast<EventSink&>(explainer) : printer;
    Router router(*config, sink, options.explain ? &explainer : nullptr);
    TransactionAssembler assembler(config->message_prefix, router);

    const std::string name = options.input == "-" ? "stdin" : options.input;
    // A line over [limits] max_line_bytes is read past without being held whole.
    LineReader reader(in, config->max_line_bytes);
    Change change;
    std::string_view line;
    std::size_t line_no = 0, malformed = 0;
    int status = 0;
    // A line that cannot be used fails its transaction closed: the lost line may have been
    // the context that skips it, or a change it would have emitted.
    const auto damaged = [&](const std::string& what, const std::string& why) {
        ++malformed;
        std::fprintf(stderr, "walcast replay: %s:%zu: %s wal2json line: %s\n", name.c_str(), line_no, what.c_str(),
                     why.c_str());
        std::string detail = "line " + std::to_string(line_no) + " is " + what + ": " + why;
        if (options.explain && assembler.in_transaction()) explainer.on_damaged_line(detail);
        assembler.damage(std::move(detail));
    };
    for (LineReader::Status got; (got = reader.next(line)) != LineReader::Status::End;) {
        ++line_no;
        if (got == LineReader::Status::Oversized) {
            damaged("oversized", std::to_string(reader.oversized_length()) + " bytes, over the " +
                                     std::to_string(config->max_line_bytes) + "-byte limit ([limits] max_line_bytes)");
            continue;
        }
        if (line.find_first_not_of(" \t") == std::string_view::npos) continue;
        if (auto err = decode_wal2json_line(line, change)) {
            damaged("malformed", err->message);
            continue;
        }
        if ((change.action == Action::Begin || change.action == Action::Commit) && !change.nextlsn) {
            std::fprintf(stderr,
                         "walcast replay: %s:%zu: this capture has no \"lsn\"/\"nextlsn\" fields, so its "
                         "events cannot get their eventId; %s\n",
                         name.c_str(), line_no, kHowToRecord);
            status = 2;
            break;
        }
        if (auto err = assembler.feed(change)) {
            ++malformed;
            std::fprintf(stderr, "walcast replay: %s:%zu: %s\n", name.c_str(), line_no, err->message.c_str());
        }
    }
    if (reader.failed()) {
        std::fprintf(stderr, "walcast replay: error reading %s: %s\n", name.c_str(), std::strerror(errno));
        status = 2;
    }
    if (assembler.in_transaction() && status == 0)
        std::fprintf(stderr, "walcast replay: %s ends inside transaction xid %lld (no commit line): it emits nothing\n",
                     name.c_str(), static_cast<long long>(assembler.current().xid));
    assembler.finish("the input ended before its commit line");
    std::fflush(stdout);
    if (in != stdin) std::fclose(in);
    if (status) return status;
    if (malformed) {
        std::fprintf(stderr, "walcast replay: %zu malformed line%s in %s\n", malformed, malformed == 1 ? "" : "s",
                     name.c_str());
        return 3;
    }
    return 0;
}

}  // namespace walcast
