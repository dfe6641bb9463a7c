// The transaction assembler: applies the emit-context rules to a stream of decoded wal2json lines
// and hands each row change, with the emit context in force, to a TransactionSink.
// It keeps only the current context and a verdict, never the transaction's rows, so its
// memory does not grow with transaction size. Pure; owned by one thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "decoder/emit_context.hpp"
#include "decoder/lsn.hpp"
#include "decoder/result.hpp"
#include "decoder/wal2json.hpp"

namespace walcast {

struct TransactionInfo {
    std::int64_t xid = 0;
    Lsn commit_lsn;           // the commit record (B and C "lsn")
    Lsn end_lsn;              // end of the commit record (B and C "nextlsn"): what to confirm
    std::string committed_at; // ISO 8601 UTC, e.g. "2026-11-26T03:11:59.981011Z"
};

// Why a whole transaction emits nothing. A skip and a malformed context
// suppress every change of the transaction, including those before the message.
enum class Suppression : std::uint8_t {
    None,
    Skipped,           // a context with skipEmit: true
    MalformedContext,  // a context message that failed parse_emit_context
    Damaged,           // a line of the transaction was malformed or oversized: fail closed
};

// The first reason found stands; later ones do not replace it.
struct Verdict {
    Suppression suppression = Suppression::None;
    // MalformedContext: the context's parse error. Skipped: "skipEmit". Damaged: the reason
    // given to damage(), which names the line and why it could not be used.
    std::string detail;
    // LSN of the context message that decided it; 0/0 for Damaged, since a line that was not
    // decoded has no LSN to give.
    Lsn at;

    bool suppressed() const { return suppression != Suppression::None; }
};

class TransactionSink {
public:
    virtual ~TransactionSink() = default;
    virtual void on_begin(const TransactionInfo& txn) = 0;
    // A context message of this transaction, parsed (context set) or not (error set).
    virtual void on_context(const Change& message, const EmitContext* context,
                            const Error* error) {
        (void)message, (void)context, (void)error;
    }
    // A row change or TRUNCATE. `context` is null when none is in force (nothing emits);
    // `so_far` already says whether the transaction is suppressed.
    virtual void on_change(const Change& change, const EmitContext* context,
                           const Verdict& so_far) = 0;
    virtual void on_commit(const TransactionInfo& txn, const Verdict& verdict) = 0;
    // A transaction that ended without a commit line (a damaged capture): nothing of it
    // may be emitted.
    virtual void on_abandon(const TransactionInfo& txn, const std::string& reason) = 0;
};

class TransactionAssembler {
public:
    TransactionAssembler(std::string message_prefix, TransactionSink& sink)
        : prefix_(std::move(message_prefix)), sink_(sink) {}

    // Feeds one decoded line. An error means the line does not fit the stream's structure
    // (a change outside a transaction, a commit of another xid, B or C without LSNs); the
    // transaction it belongs to, if any, then emits nothing.
    std::optional<Error> feed(const Change& change);

    // A line that could not be used (malformed, or over the line size limit): if a
    // transaction is open it emits nothing, since the lost line may have been the context
    // that skips it. `reason` becomes the verdict's detail, so it says which line and why,
    // e.g. "line 4 is oversized: 70000000 bytes, over the 67108864-byte limit".
    void damage(std::string reason);

    // Ends the stream: an open transaction is abandoned.
    void finish(const std::string& reason);

    bool in_transaction() const { return open_; }
    const TransactionInfo& current() const { return txn_; }

private:
    std::string prefix_;
    TransactionSink& sink_;
    bool open_ = false;
    TransactionInfo txn_;
    std::optional<EmitContext> context_;
    Verdict verdict_;

    void suppress(Suppression why, std::string detail, Lsn at);
};

// "2026-11-26 03:11:59.981011+00" (any offset, as timestamptz prints) -> ISO 8601 UTC
// "2026-11-26T03:11:59.981011Z". nullopt when the text is not such a timestamp.
std::optional<std::string> iso8601_utc(std::string_view pg_timestamp);

// The same text as microseconds since the Unix epoch; a fraction past six digits is cut.
std::optional<std::int64_t> pg_timestamp_unix_us(std::string_view pg_timestamp);

}  // namespace walcast
