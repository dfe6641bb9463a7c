// Snapshot tokens (see snapshot.hpp).
#include "routing/snapshot.hpp"

#include <algorithm>
#include <charconv>

namespace walcast {

namespace {

bool number(std::string_view s, std::uint64_t& out) {
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return !s.empty() && ec == std::errc() && p == s.data() + s.size();
}

}  // namespace

bool Snapshot::sees(std::uint64_t xid) const {
    if (xid < xmin) return true;
    if (xid >= xmax) return false;
    return !std::binary_search(xip.begin(), xip.end(), xid);
}

Result<Snapshot> parse_snapshot(std::string_view token) {
    if (token.size() > kMaxSnapshotTokenBytes)
        return make_error("snapshot token of " + std::to_string(token.size()) + " bytes, over " +
                          std::to_string(kMaxSnapshotTokenBytes));
    if (token.substr(0, 3) != "v1:") return make_error("not a walcast snapshot token (no \"v1:\")");
    token.remove_prefix(3);
    std::string_view part[4];
    for (int i = 0; i < 3; ++i) {
        const auto colon = token.find(':');
        if (colon == std::string_view::npos) return make_error("snapshot token has too few parts");
        part[i] = token.substr(0, colon);
        token.remove_prefix(colon + 1);
    }
    part[3] = token;
    Snapshot s;
    if (!number(part[0], s.xmin) || !number(part[1], s.xmax) || s.xmin > s.xmax)
        return make_error("snapshot token's xmin and xmax are not xids in order");
    for (std::string_view rest = part[2]; !rest.empty();) {
        const auto comma = rest.find(',');
        const std::string_view item = rest.substr(0, comma);
        std::uint64_t xid = 0;
        if (!number(item, xid) || xid < s.xmin || xid >= s.xmax)
            return make_error("snapshot token has an in-progress xid outside xmin..xmax");
        if (s.xip.size() == kMaxSnapshotXips)
            return make_error("snapshot token lists more than " + std::to_string(kMaxSnapshotXips) + " xids");
        s.xip.push_back(xid);
        if (comma == std::string_view::npos) break;
        rest.remove_prefix(comma + 1);
        if (rest.empty()) return make_error("snapshot token has an empty xid");
    }
    std::sort(s.xip.begin(), s.xip.end());
    auto lsn = Lsn::parse(part[3]);
    if (!lsn) return make_error("snapshot token's WAL position is not an LSN");
    s.seen_until = *lsn;
    return s;
}

std::uint64_t full_xid(std::uint32_t xid, std::uint64_t reference) {
    // Same epoch as the reference, then the neighbour epoch when that is nearer.
    const std::uint64_t base = reference & ~std::uint64_t{0xFFFFFFFF};
    const std::uint64_t candidate = base | xid;
    if (candidate > reference && candidate - reference > 0x80000000ULL && base > 0) return candidate - (1ULL << 32);
    if (candidate < reference && reference - candidate > 0x80000000ULL) return candidate + (1ULL << 32);
    return candidate;
}

}  // namespace walcast
