// Lsn: a PostgreSQL WAL position, printed and parsed as "X/Y" (two hex halves).
// Pure value type; any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace walcast {

struct Lsn {
    std::uint64_t value = 0;

    static std::optional<Lsn> parse(std::string_view text);
    std::string str() const;
    bool valid() const { return value != 0; }

    friend bool operator==(Lsn a, Lsn b) { return a.value == b.value; }
    friend bool operator!=(Lsn a, Lsn b) { return a.value != b.value; }
    friend bool operator<(Lsn a, Lsn b) { return a.value < b.value; }
    friend bool operator<=(Lsn a, Lsn b) { return a.value <= b.value; }
    friend bool operator>(Lsn a, Lsn b) { return a.value > b.value; }
    friend bool operator>=(Lsn a, Lsn b) { return a.value >= b.value; }
};

}  // namespace walcast
