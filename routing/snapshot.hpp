// Snapshot tokens (walcast.snapshot()): which transactions a page's database read saw, so
// that joining a room with the token delivers exactly the others. A token is
// `v1:<xmin>:<xmax>:<xip,...>:<lsn>`: PostgreSQL's MVCC snapshot with 64-bit (epoch)
// xids, and a WAL position no earlier than any commit it saw. Pure; any thread.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "decoder/lsn.hpp"
#include "decoder/result.hpp"

namespace walcast {

// Tokens longer than this, or with more in-progress xids, are refused: a client sends them.
constexpr std::size_t kMaxSnapshotTokenBytes = 64 << 10;
constexpr std::size_t kMaxSnapshotXips = 8192;

struct Snapshot {
    std::uint64_t xmin = 0;  // every xid below it had finished
    std::uint64_t xmax = 0;  // every xid from it on had not started
    std::vector<std::uint64_t> xip;  // in progress between the two, sorted
    Lsn seen_until;          // every commit the snapshot sees is before this WAL position

    // Whether a committed transaction was visible to the snapshot (PostgreSQL's rule).
    bool sees(std::uint64_t xid) const;
};

Result<Snapshot> parse_snapshot(std::string_view token);

// The full (epoch-qualified) xid of a 32-bit xid from the WAL: the one with those low bits
// nearest to `reference` (a full xid of about the same time; xids in use are within 2^31).
std::uint64_t full_xid(std::uint32_t xid, std::uint64_t reference);

}  // namespace walcast
