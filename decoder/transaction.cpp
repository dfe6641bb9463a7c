// The transaction assembler (see transaction.hpp).
#include "decoder/transaction.hpp"

#include <charconv>
#include <cstdio>

namespace walcast {

namespace {

bool digits(std::string_view s, std::size_t at, std::size_t n, int& out) {
    if (at + n > s.size()) return false;
    auto [p, ec] = std::from_chars(s.data() + at, s.data() + at + n, out);
    return ec == std::errc() && p == s.data() + at + n;
}

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
std::int64_t days_from_civil(int y, int m, int d) {
    y -= m <= 2;
    const int era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * static_cast<unsigned>(m + (m > 2 ? -3 : 9)) + 2) / 5 + static_cast<unsigned>(d) - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return static_cast<std::int64_t>(era) * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

void civil_from_days(std::int64_t z, int& y, int& m, int& d) {
    z += 719468;
    const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = static_cast<unsigned>(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    d = static_cast<int>(doy - (153 * mp + 2) / 5 + 1);
    m = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
    y = static_cast<int>(yoe) + static_cast<int>(era) * 400 + (m <= 2);
}

std::string finish_iso8601(std::string out, std::string_view fraction) {
    if (!fraction.empty()) {
        out.push_back('.');
        out.append(fraction);
    }
    out.push_back('Z');
    return out;
}

// A timestamptz as wal2json prints it, taken apart: seconds since the Unix epoch (UTC) and the
// fraction's digits as written.
struct PgTime {
    std::int64_t unix_seconds = 0;
    std::string_view fraction;
};

// YYYY-MM-DD HH:MM:SS[.ffffff](+|-)HH[:MM[:SS]]
std::optional<PgTime> parse_pg_time(std::string_view s) {
    int y, mo, d, h, mi, sec;
    if (!digits(s, 0, 4, y) || s.size() < 19 || s[4] != '-' || !digits(s, 5, 2, mo) || s[7] != '-' ||
        !digits(s, 8, 2, d) || (s[10] != ' ' && s[10] != 'T') || !digits(s, 11, 2, h) || s[13] != ':' ||
        !digits(s, 14, 2, mi) || s[16] != ':' || !digits(s, 17, 2, sec))
        return std::nullopt;
    std::size_t i = 19;
    PgTime out;
    if (i < s.size() && s[i] == '.') {
        std::size_t start = ++i;
        while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
        if (i == start) return std::nullopt;
        out.fraction = s.substr(start, i - start);
    }
    if (i >= s.size() || (s[i] != '+' && s[i] != '-')) return std::nullopt;
    const int sign = s[i] == '+' ? 1 : -1;
    int oh = 0, om = 0, os = 0;
    if (!digits(s, i + 1, 2, oh)) return std::nullopt;
    i += 3;
    if (i < s.size() && s[i] == ':') {
        if (!digits(s, i + 1, 2, om)) return std::nullopt;
        i += 3;
        if (i < s.size() && s[i] == ':') {
            if (!digits(s, i + 1, 2, os)) return std::nullopt;
            i += 3;
        }
    }
    if (i != s.size() || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        return std::nullopt;
    out.unix_seconds = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec;
    out.unix_seconds -= sign * (oh * 3600 + om * 60 + os);
    return out;
}

}  // namespace

std::optional<std::int64_t> pg_timestamp_unix_us(std::string_view s) {
    auto t = parse_pg_time(s);
    if (!t) return std::nullopt;
    std::int64_t us = 0;
    for (std::size_t k = 0; k < 6; ++k) us = us * 10 + (k < t->fraction.size() ? t->fraction[k] - '0' : 0);
    return t->unix_seconds * 1000000 + us;
}

std::optional<std::string> iso8601_utc(std::string_view s) {
    auto parsed = parse_pg_time(s);
    if (!parsed) return std::nullopt;
    const std::int64_t t = parsed->unix_seconds;
    const std::string_view fraction = parsed->fraction;
    std::int64_t days = t >= 0 ? t / 86400 : (t - 86399) / 86400;
    std::int64_t rem = t - days * 86400;
    int y, mo, d;
    civil_from_days(days, y, mo, d);
    std::string out;
    if (y < 0 || y > 9999) {  // an offset moved 9999-12-31 into year 10000
        char buf[40];
        int n = std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d", y, mo, d,
                              static_cast<int>(rem / 3600), static_cast<int>(rem / 60 % 60),
                              static_cast<int>(rem % 60));
        out.assign(buf, static_cast<std::size_t>(n));
        return finish_iso8601(std::move(out), fraction);
    }
    // YYYY-MM-DDTHH:MM:SS by hand: printf was a visible part of decoding a transaction.
    out = "0000-00-00T00:00:00";
    auto put2 = [&](std::size_t at, int v) {
        out[at] = static_cast<char>('0' + v / 10);
        out[at + 1] = static_cast<char>('0' + v % 10);
    };
    put2(0, y / 100);
    put2(2, y % 100);
    put2(5, mo);
    put2(8, d);
    put2(11, static_cast<int>(rem / 3600));
    put2(14, static_cast<int>(rem / 60 % 60));
    put2(17, static_cast<int>(rem % 60));
    return finish_iso8601(std::move(out), fraction);
}

void TransactionAssembler::suppress(Suppression why, std::string detail, Lsn at) {
    // The first reason found stands: it is the one --explain reports.
    if (verdict_.suppressed()) return;
    verdict_ = Verdict{why, std::move(detail), at};
}

std::optional<Error> TransactionAssembler::feed(const Change& change) {
    switch (change.action) {
    case Action::Begin: {
        std::optional<Error> err;
        if (open_) {
            err = Error{"transaction xid " + std::to_string(txn_.xid) +
                        " has no commit line before the next begin; it emits nothing"};
            sink_.on_abandon(txn_, err->message);
        }
        if (!change.xid || !change.lsn || !change.nextlsn) {
            open_ = false;
            return Error{"begin line without xid, lsn or nextlsn"};
        }
        open_ = true;
        txn_.xid = *change.xid;
        txn_.commit_lsn = *change.lsn;
        txn_.end_lsn = *change.nextlsn;
        auto iso = iso8601_utc(change.timestamp);
        txn_.committed_at = iso ? std::move(*iso) : std::string();
        context_.reset();
        verdict_ = Verdict{};
        sink_.on_begin(txn_);
        return err;
    }
    case Action::Commit: {
        if (!open_) return Error{"commit line without a begin line"};
        open_ = false;
        if (change.xid != txn_.xid || change.nextlsn != txn_.end_lsn) {
            std::string reason = "commit line (xid " + (change.xid ? std::to_string(*change.xid) : std::string("null")) +
                                 ") does not match the open transaction xid " + std::to_string(txn_.xid);
            sink_.on_abandon(txn_, reason);
            return Error{reason};
        }
        sink_.on_commit(txn_, verdict_);
        return std::nullopt;
    }
    case Action::Message: {
        // A non-transactional message never sets context.
        if (!change.transactional || change.prefix != prefix_) return std::nullopt;
        if (!open_) return Error{"transactional message outside a transaction"};
        Lsn at = change.lsn.value_or(Lsn{});
        auto parsed = parse_emit_context(change.content);
        if (!parsed) {
            context_.reset();
            suppress(Suppression::MalformedContext, parsed.error().message, at);
            sink_.on_context(change, nullptr, &parsed.error());
            return std::nullopt;
        }
        context_ = std::move(parsed.value());
        if (context_->skip_emit) suppress(Suppression::Skipped, "skipEmit", at);
        sink_.on_context(change, &*context_, nullptr);
        return std::nullopt;
    }
    case Action::Insert:
    case Action::Update:
    case Action::Delete:
    case Action::Truncate:
        if (!open_)
            return Error{std::string("change (") + action_letter(change.action) + ") outside a transaction"};
        sink_.on_change(change, context_ ? &*context_ : nullptr, verdict_);
        return std::nullopt;
    }
    return std::nullopt;
}

void TransactionAssembler::damage(std::string reason) {
    if (open_) suppress(Suppression::Damaged, std::move(reason), Lsn{});
}

void TransactionAssembler::finish(const std::string& reason) {
    if (!open_) return;
    open_ = false;
    sink_.on_abandon(txn_, reason);
}

}  // namespace walcast
