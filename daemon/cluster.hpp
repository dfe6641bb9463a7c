// Cluster: several walcast nodes (and Node.js Socket.IO servers with
// @socket.io/redis-streams-adapter) sharing one Redis stream, in that adapter's entry format.
//
// The node that holds the replication slot (the leader) appends every routed event to the
// stream, and the slot is confirmed only up to what Redis acknowledged. Appends go through
// one Lua script per batch that compares each event's (end LSN, index) with the newest one
// appended so far, kept in a key beside the stream, and skips what is not newer: a new
// leader re-reading from the slot's confirmed position, or a stalled old one whose last
// appends land late, never duplicates an event or reorders the stream.
//
// Every node, leader included, reads the stream (XREAD BLOCK) and fans the entries out to
// its own clients; entry ids are the connection-state-recovery offsets. Before each read a
// node checks that the stream still holds everything after what it read (trimming, or a
// Redis that lost its data): if not, it says so and its clients resync. Resumable sessions
// live in Redis under the adapter's keys, so a client cut from one node resumes on another.
// Loop thread only.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "daemon/metrics.hpp"
#include "daemon/redis_client.hpp"
#include "daemon/socketio_server.hpp"
#include "routing/router.hpp"
#include "routing/stream_entry.hpp"

namespace walcast {

// An XREAD/XRANGE entry, [id, [field, value, ...]], as views into the reply.
struct RawEntry {
    StreamId id;
    std::vector<std::pair<std::string_view, std::string_view>> fields;
};

class Cluster : public SessionStore {
public:
    class Handler {
    public:
        virtual ~Handler() = default;
        // An entry read from the stream, in order. `live` is false for the stream's recent
        // past read at start: it only fills the recovery buffer.
        virtual void on_entry(const StreamId& id, const BroadcastEntry& entry, bool live) = 0;
        // The start-up read is done; live entries follow.
        virtual void on_backfilled() = 0;
        // The stream no longer holds entries this node had not read: its clients missed them.
        virtual void on_stream_gap(const std::string& why) = 0;
        // Leader: every event of every transaction that ended at or before `end` is in Redis.
        virtual void on_appended(Lsn end) = 0;
        // Redis became reachable (true) or not (false, with why).
        virtual void on_redis(bool up, const std::string& why) = 0;
    };

    Cluster(boost::asio::io_context& io, const Config& config, std::int64_t window_ms, std::size_t max_bytes,
            Handler& handler, Metrics& metrics);
    ~Cluster() override;

    // Connects (and keeps reconnecting with backoff), reads the stream's recent past into
    // the recovery buffer, then follows the stream.
    void start();
    void stop();
    bool redis_up() const { return up_; }

    // ---- leader ------------------------------------------------------------------------
    // A committed transaction's events; then commit(end) marks its end. commit is also used
    // for transactions without events and for idle keepalives, so the slot's confirmations
    // (on_appended) follow the stream's order.
    void append(const std::vector<Event>& events);
    void commit(Lsn end);
    // The slot's stream started afresh (a discontinuity): its positions may be below what was
    // appended before, so the comparison starts over.
    void restart_positions();
    // A `walcast:resync` broadcast to every client of every node (and of Node servers).
    void append_resync(const std::string& payload_json);
    // Bytes sent to Redis and not yet acknowledged.
    std::size_t unacked_bytes() const { return unacked_bytes_; }

    // ---- SessionStore ------------------------------------------------------------------
    void save(const SessionSnapshot& session, std::int64_t ttl_ms) override;
    void forget(const std::string& pid) override;
    void take(const std::string& pid, std::function<void(std::optional<SessionSnapshot>)> done) override;

    const std::string& uid() const { return uid_; }

private:
    boost::asio::io_context& io_;
    const Config& config_;
    std::int64_t window_ms_;
    std::size_t max_bytes_;
    Handler& handler_;
    Metrics& metrics_;
    const std::string uid_;    // this node's id in the entries' uid field (16 hex digits)
    const std::string epoch_candidate_;  // written when the stream's epoch key is missing
    const std::string tail_key_, epoch_key_;
    std::unique_ptr<RedisClient> writer_;  // appends, sessions
    std::unique_ptr<RedisClient> reader_;  // XREAD BLOCK
    boost::asio::steady_timer retry_timer_;
    std::chrono::milliseconds backoff_{100};
    bool up_ = false;
    bool outage_logged_ = false;
    bool stopping_ = false;
    std::shared_ptr<char> alive_ = std::make_shared<char>();  // replaced at each connection

    // Reading.
    struct StreamInfo {  // XINFO STREAM
        bool exists = false;
        std::uint64_t added = 0;   // entries-added: every entry ever appended
        std::uint64_t length = 0;  // entries held now (the last `length` of them)
        StreamId last;             // last-generated-id
        StreamId max_deleted;      // max-deleted-entry-id (XDEL)
    };
    std::optional<StreamId> last_read_;   // nullopt until the start-up read
    std::uint64_t last_index_ = 0;        // the number (entries-added) of last_read_
    std::optional<std::string> epoch_;    // the stream's epoch when last seen
    bool reading_ = false;

    // Appending: transaction ends in order, each waiting for its scripts' replies.
    struct Pending {
        Lsn end;
        std::size_t outstanding = 0;
        bool committed = false;
    };
    std::deque<Pending> pending_;
    std::size_t unacked_bytes_ = 0;

    std::chrono::steady_clock::time_point skip_log_window_{};
    unsigned skip_logged_ = 0;

    void connect();
    void on_down(const std::string& why);
    void backfill();
    void read_round();
    void on_read(const RespValue& reply);
    static StreamInfo stream_info(const RespValue& reply);
    void check_gap(const std::optional<std::string>& epoch, const StreamInfo& info);
    std::optional<BroadcastEntry> relayable(const StreamId& id, const RawEntry& raw);
    void send_batch(std::vector<std::string> args, std::size_t bytes);
    void settle();
};

}  // namespace walcast
