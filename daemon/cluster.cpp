// Cluster (see cluster.hpp).
#include "daemon/cluster.hpp"

#include <boost/asio/post.hpp>

#include <charconv>
#include <cinttypes>
#include <cstdio>

#include "daemon/log.hpp"
#include "daemon/random_id.hpp"
#include "wire/msgpack.hpp"

namespace walcast {

namespace {

constexpr const char* kNamespace = "/";
constexpr const char* kReadCount = "1000";  // entries per XREAD
constexpr const char* kBlockMs = "5000";    // XREAD BLOCK, as the adapter
constexpr std::size_t kBackfillPage = 1000;
constexpr int kBackfillPages = 1000;
constexpr std::chrono::milliseconds kMaxBackoff{2000};
// One script call carries at most this many events or bytes: Redis runs a script to its
// end before serving anyone else.
constexpr std::size_t kBatchEvents = 256;
constexpr std::size_t kBatchBytes = 1 << 20;
constexpr const char* kSessionPrefix = "sio:session:";  // the adapter's sessionKeyPrefix

// KEYS: the stream, the tail key, the epoch key. ARGV: max_len, fields per entry, epoch;
// then per event its position (sortable text) and its fields. An event whose position is
// not above the tail is in the stream already and is skipped.
constexpr const char* kAppendScript = R"(
if redis.call('EXISTS', KEYS[3]) == 0 then redis.call('SET', KEYS[3], ARGV[3]) end
local tail = redis.call('GET', KEYS[2]) or ''
local k = tonumber(ARGV[2])
local last = nil
local n = 0
for i = 4, #ARGV, k + 1 do
  if ARGV[i] > tail then
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', unpack(ARGV, i + 1, i + k))
    last = ARGV[i]
    n = n + 1
  end
end
if last then redis.call('SET', KEYS[2], last) end
return n
)";

std::string hex_id(std::size_t digits) {
    static const char hex[] = "0123456789abcdef";
    std::string out;
    while (out.size() < digits)
        for (unsigned char c : random_id()) {
            if (out.size() == digits) break;
            out.push_back(hex[c & 15]);
        }
    return out;
}

// (end LSN, index) as text that sorts like the pair: what the script compares.
std::string position_key(Lsn end, std::uint32_t index) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%016" PRIx64 ":%08" PRIx32, end.value, index);
    return buf;
}

std::optional<RawEntry> raw_entry(const RespValue& v) {
    if (!v.is_array() || v.elements.size() != 2 || !v.elements[1].is_array()) return std::nullopt;
    auto id_text = v.elements[0].as_string();
    if (!id_text) return std::nullopt;
    auto id = StreamId::parse(*id_text);
    if (!id) return std::nullopt;
    RawEntry e;
    e.id = *id;
    const auto& kv = v.elements[1].elements;
    for (std::size_t i = 0; i + 1 < kv.size(); i += 2) {
        auto k = kv[i].as_string();
        auto val = kv[i + 1].as_string();
        if (k && val) e.fields.emplace_back(*k, *val);
    }
    return e;
}

// One field of XINFO STREAM's flat key/value reply, as text; "" when absent.
std::string info_field(const RespValue& info, std::string_view key) {
    if (!info.is_array()) return {};
    for (std::size_t i = 0; i + 1 < info.elements.size(); i += 2)
        if (info.elements[i].as_string() == key) {
            if (auto s = info.elements[i + 1].as_string()) return std::string(*s);
            if (auto n = info.elements[i + 1].as_integer()) return std::to_string(*n);
        }
    return {};
}

// A resumable session in the adapter's form: its rooms as a Node server would have them
// (its sid, user, tenant and project rooms), walcast's identity and offset in `data`.
std::string encode_walcast_session(const SessionSnapshot& s) {
    AdapterSession a;
    a.sid = s.sid;
    a.pid = s.pid;
    a.rooms = {s.sid, "user:" + s.user, "tenant:" + s.tenant};
    for (const std::string& p : s.projects) a.rooms.push_back("project:" + p);
    a.data = walcast_session_data(WalcastSessionFields{s.user, s.tenant, s.base.str()});
    return encode_session_blob(a);
}

// Only sessions walcast wrote: a Node server's session names no user walcast could verify.
std::optional<SessionSnapshot> decode_walcast_session(std::string_view blob) {
    auto decoded = decode_session_blob(blob);
    if (!decoded || !decoded->walcast) return std::nullopt;
    auto base = EventOffset::parse(decoded->walcast->base);
    if (!base) return std::nullopt;
    SessionSnapshot s;
    s.pid = decoded->session.pid;
    s.sid = decoded->session.sid;
    s.user = decoded->walcast->user;
    s.tenant = decoded->walcast->tenant;
    s.base = *base;
    for (const std::string& room : decoded->session.rooms)
        if (room.rfind("project:", 0) == 0) s.projects.push_back(room.substr(8));
    return s;
}

}  // namespace

// The entry as something to relay to this node's clients: a broadcast to "/" it can send as
// text. Anything else is skipped; what is malformed or cannot be relayed is counted and
// logged (at most a few lines a minute: any writer of the stream could flood the journal).
std::optional<BroadcastEntry> Cluster::relayable(const StreamId& id, const RawEntry& raw) {
    auto decoded = decode_entry(raw.fields);
    std::string why;
    if (!decoded) why = decoded.error().message;
    else if (decoded->kind == EntryKind::Unrelayable) why = decoded->reason;
    else if (decoded->kind == EntryKind::NotBroadcast || decoded->entry.nsp != kNamespace) return std::nullopt;
    else return std::move(decoded->entry);
    ++metrics_.stream_skipped;
    const auto now = std::chrono::steady_clock::now();
    if (now - skip_log_window_ > std::chrono::minutes(1)) {
        skip_log_window_ = now;
        skip_logged_ = 0;
    }
    if (++skip_logged_ <= 5) log_warning("stream entry " + id.str() + " not relayed: " + why);
    return std::nullopt;
}

Cluster::Cluster(boost::asio::io_context& io, const Config& config, std::int64_t window_ms, std::size_t max_bytes,
                 Handler& handler, Metrics& metrics)
    : io_(io), config_(config), window_ms_(window_ms), max_bytes_(max_bytes), handler_(handler), metrics_(metrics),
      uid_(hex_id(16)),
      epoch_candidate_(hex_id(16)), tail_key_(config.stream + ":walcast:tail"),
      epoch_key_(config.stream + ":walcast:epoch"), retry_timer_(io) {}

Cluster::~Cluster() { stop(); }

void Cluster::start() {
    stopping_ = false;
    connect();
}

void Cluster::stop() {
    stopping_ = true;
    retry_timer_.cancel();
    alive_ = std::make_shared<char>();
    if (writer_) writer_->close("stopping");
    if (reader_) reader_->close("stopping");
    up_ = false;
}

void Cluster::connect() {
    const auto address = parse_redis_url(config_.redis);  // validated with the config
    const std::string& password = config_.redis_password;
    alive_ = std::make_shared<char>();
    writer_ = std::make_unique<RedisClient>(io_, *address, password, "walcast-" + uid_ + "-writer");
    reader_ = std::make_unique<RedisClient>(io_, *address, password, "walcast-" + uid_ + "-reader");
    std::weak_ptr<char> guard = alive_;
    writer_->on_down = [this, guard](const std::string& why) { if (guard.lock()) on_down(why); };
    reader_->on_down = [this, guard](const std::string& why) { if (guard.lock()) on_down(why); };
    auto connected = std::make_shared<int>(0);
    auto done = [this, connected, guard](const std::string& error) {
        if (!guard.lock() || *connected < 0) return;
        if (!error.empty()) {
            *connected = -1;
            return on_down(error);
        }
        if (++*connected < 2) return;
        up_ = true;
        outage_logged_ = false;
        backoff_ = std::chrono::milliseconds(100);
        log_notice("Redis connected: stream \"" + config_.stream + "\" (node " + uid_ + ")");
        handler_.on_redis(true, "");
        backfill();
    };
    writer_->connect(done);
    reader_->connect(done);
}

void Cluster::on_down(const std::string& why) {
    if (stopping_) return;
    const bool was_up = up_;
    up_ = false;
    reading_ = false;
    alive_ = std::make_shared<char>();
    if (writer_) writer_->close(why);
    if (reader_) reader_->close(why);
    // Appends in flight went with the connection: the leader stops streaming and re-reads
    // them from the slot, whose confirmation waited for Redis.
    pending_.clear();
    unacked_bytes_ = 0;
    // Said once per outage: a Redis that stays away is retried quietly.
    if (was_up || !outage_logged_) log_warning("Redis unavailable: " + why + "; retrying");
    outage_logged_ = true;
    handler_.on_redis(false, why);
    retry_timer_.expires_after(backoff_);
    retry_timer_.async_wait([this](const boost::system::error_code& ec) {
        if (!ec && !stopping_) connect();
    });
    backoff_ = std::min(backoff_ * 2, kMaxBackoff);
}

// ---- reading ------------------------------------------------------------------------------
//
// Trimming (MAXLEN ~) removes entries from the head and leaves no mark in Redis 7.0 (its
// max-deleted-entry-id counts XDEL only), so a node counts: entries-added numbers every entry
// ever appended, the stream holds the last `length` of them, and the node knows the number of
// the last one it read. When the first one held is past the one after that, entries it had
// not read are gone.

// XINFO STREAM's figures; zeros for a stream that does not exist yet.
Cluster::StreamInfo Cluster::stream_info(const RespValue& reply) {
    StreamInfo info;
    if (reply.is_error()) return info;
    auto number = [&](std::string_view key) {
        std::uint64_t n = 0;
        const std::string text = info_field(reply, key);
        std::from_chars(text.data(), text.data() + text.size(), n);
        return n;
    };
    info.exists = true;
    info.added = number("entries-added");
    info.length = number("length");
    info.last = StreamId::parse(info_field(reply, "last-generated-id")).value_or(StreamId{});
    info.max_deleted = StreamId::parse(info_field(reply, "max-deleted-entry-id")).value_or(StreamId{});
    return info;
}

// At start, the stream's recent past (the recovery window, at most max_bytes) fills the
// recovery buffer; after a reconnect, reading goes on where it stopped.
void Cluster::backfill() {
    if (last_read_) return read_round();
    auto collected = std::make_shared<std::vector<std::pair<StreamId, BroadcastEntry>>>();
    auto bytes = std::make_shared<std::size_t>(0);
    auto info = std::make_shared<StreamInfo>();
    auto page = std::make_shared<std::function<void(std::string, int)>>();
    std::weak_ptr<char> guard = alive_;
    // Sent together with the first page: both see the stream as it is now.
    reader_->command({"XINFO", "STREAM", config_.stream}, [info, guard](const RespValue* reply, const std::string&) {
        if (guard.lock() && reply) *info = stream_info(*reply);
    });
    *page = [this, collected, bytes, info, page, guard](std::string end, int n) {
        reader_->command({"XREVRANGE", config_.stream, end, "-", "COUNT", std::to_string(kBackfillPage)},
                         [this, collected, bytes, info, page, guard, n](const RespValue* reply, const std::string&) {
            if (!guard.lock() || !reply) return;
            bool more = reply->is_array() && reply->elements.size() == kBackfillPage && n + 1 < kBackfillPages;
            std::optional<StreamId> oldest;
            if (reply->is_array())
                for (const RespValue& v : reply->elements) {
                    auto raw = raw_entry(v);
                    if (!raw) continue;
                    oldest = raw->id;
                    if (raw->id.ms + static_cast<std::uint64_t>(window_ms_) < info->last.ms || *bytes > max_bytes_) {
                        more = false;
                        break;
                    }
                    auto entry = relayable(raw->id, *raw);
                    if (!entry) continue;
                    *bytes += entry->args_json.size() + 64;
                    collected->emplace_back(raw->id, std::move(*entry));
                }
            if (more && oldest) return (*page)("(" + oldest->str(), n + 1);
            page->operator=(nullptr);  // the closure held itself
            for (auto it = collected->rbegin(); it != collected->rend(); ++it) handler_.on_entry(it->first, it->second, false);
            last_read_ = info->last;
            last_index_ = info->added;
            handler_.on_backfilled();
            read_round();
        });
    };
    (*page)("+", 0);
}

// One round, pipelined so Redis answers the first two at the same moment and the XREAD
// right after: the epoch, the stream's figures, then XREAD from what was read.
void Cluster::read_round() {
    if (reading_ || !up_) return;
    reading_ = true;
    std::weak_ptr<char> guard = alive_;
    auto epoch = std::make_shared<std::optional<std::string>>();
    auto info = std::make_shared<StreamInfo>();
    reader_->command({"GET", epoch_key_}, [epoch, guard](const RespValue* reply, const std::string&) {
        if (!guard.lock() || !reply) return;
        if (auto s = reply->as_string()) *epoch = std::string(*s);
    });
    reader_->command({"XINFO", "STREAM", config_.stream}, [this, epoch, info, guard](const RespValue* reply,
                                                                                      const std::string&) {
        if (!guard.lock() || !reply) return;
        *info = stream_info(*reply);
        check_gap(*epoch, *info);
    });
    reader_->command({"XREAD", "BLOCK", kBlockMs, "COUNT", kReadCount, "STREAMS", config_.stream, last_read_->str()},
                     [this, info, guard](const RespValue* reply, const std::string&) {
        if (!guard.lock()) return;
        reading_ = false;
        if (!reply) return;  // the connection went down: on_down reconnects
        if (reply->is_error()) return on_down("XREAD failed: " + reply->text);
        on_read(*reply);
        if (!guard.lock()) return;
        // Read up to the newest entry there was: its number is known exactly.
        if (info->exists && *last_read_ == info->last) last_index_ = info->added;
        read_round();
    });
}

void Cluster::check_gap(const std::optional<std::string>& epoch, const StreamInfo& info) {
    std::string why;
    if (epoch && epoch_ && *epoch != *epoch_) {
        why = "Redis lost stream \"" + config_.stream + "\" (its epoch changed from " + *epoch_ + " to " + *epoch + ")";
        last_read_ = StreamId{0, 0};  // the new stream is read from its start
        last_index_ = 0;
    } else if (info.exists && info.last < *last_read_) {
        why = "stream \"" + config_.stream + "\" went back to " + info.last.str() + " (Redis lost data); this node had read up to " +
              last_read_->str();
        last_read_ = info.last;
        last_index_ = info.added;
    } else if (info.exists && info.added - info.length > last_index_) {
        why = std::to_string(info.added - info.length - last_index_) + " entries after " + last_read_->str() +
              " left stream \"" + config_.stream + "\" before this node read them (cluster.max_len " +
              std::to_string(config_.max_len) + ")";
        last_index_ = info.added - info.length;
    } else if (info.exists && *last_read_ < info.max_deleted) {
        why = "entries after " + last_read_->str() + " up to " + info.max_deleted.str() + " were deleted from stream \"" +
              config_.stream + "\" (XDEL) before this node read them";
    }
    if (epoch) epoch_ = *epoch;
    if (!why.empty()) handler_.on_stream_gap(why);
}

void Cluster::on_read(const RespValue& reply) {
    if (!reply.is_array()) return;  // null: BLOCK timed out
    std::weak_ptr<char> guard = alive_;
    for (const RespValue& stream : reply.elements) {
        if (!stream.is_array() || stream.elements.size() != 2 || !stream.elements[1].is_array()) continue;
        for (const RespValue& v : stream.elements[1].elements) {
            auto raw = raw_entry(v);
            if (!raw || !(*last_read_ < raw->id)) continue;
            last_read_ = raw->id;
            ++last_index_;
            auto entry = relayable(raw->id, *raw);
            if (!entry) continue;
            handler_.on_entry(raw->id, *entry, true);
            if (!guard.lock()) return;
        }
    }
}

// ---- appending ----------------------------------------------------------------------------

void Cluster::append(const std::vector<Event>& events) {
    if (!up_ || events.empty()) return;
    if (pending_.empty() || pending_.back().committed) pending_.push_back(Pending{});
    std::vector<std::string> args;
    std::size_t bytes = 0, count = 0, per_entry = 0;
    auto begin = [&] {
        args = {"EVAL", kAppendScript, "3", config_.stream, tail_key_, epoch_key_, std::to_string(config_.max_len), "",
                epoch_candidate_};
        bytes = 0;
        count = 0;
    };
    begin();
    for (const Event& ev : events) {
        const WalcastTag tag{ev.end_lsn, ev.index, ev.xid};
        std::vector<std::string> fields =
            encode_broadcast_fields(uid_, kNamespace, ev.name, ev.payload, ev.rooms, tag.str());
        per_entry = fields.size();
        args.push_back(position_key(ev.end_lsn, ev.index));
        for (std::string& f : fields) {
            bytes += f.size();
            args.push_back(std::move(f));
        }
        if (++count == kBatchEvents || bytes >= kBatchBytes) {
            args[7] = std::to_string(per_entry);
            send_batch(std::move(args), bytes);
            begin();
        }
    }
    if (count > 0) {
        args[7] = std::to_string(per_entry);
        send_batch(std::move(args), bytes);
    }
}

void Cluster::send_batch(std::vector<std::string> args, std::size_t bytes) {
    ++pending_.back().outstanding;
    unacked_bytes_ += bytes;
    writer_->command(args, [this, bytes, guard = std::weak_ptr<char>(alive_)](const RespValue* reply,
                                                                              const std::string& error) {
        if (!guard.lock()) return;
        if (!reply || reply->is_error()) return on_down(reply ? "appending to the stream failed: " + reply->text : error);
        unacked_bytes_ -= std::min(unacked_bytes_, bytes);
        for (Pending& p : pending_)
            if (p.outstanding > 0) {  // replies come in the order the scripts were sent
                --p.outstanding;
                break;
            }
        settle();
    });
}

void Cluster::commit(Lsn end) {
    if (!up_) return;
    if (pending_.empty() || pending_.back().committed) pending_.push_back(Pending{});
    pending_.back().end = end;
    pending_.back().committed = true;
    settle();
}

void Cluster::settle() {
    while (!pending_.empty() && pending_.front().committed && pending_.front().outstanding == 0) {
        const Lsn end = pending_.front().end;
        pending_.pop_front();
        handler_.on_appended(end);
    }
}

void Cluster::restart_positions() {
    if (!up_) return;
    writer_->command({"DEL", tail_key_}, [](const RespValue*, const std::string&) {});
}

void Cluster::append_resync(const std::string& payload_json) {
    if (!up_) return;
    std::vector<std::string> args{"XADD", config_.stream, "MAXLEN", "~", std::to_string(config_.max_len), "*"};
    for (std::string& f : encode_broadcast_fields(uid_, kNamespace, "walcast:resync", payload_json, {}, "resync"))
        args.push_back(std::move(f));
    writer_->command(args, [](const RespValue*, const std::string&) {});
}

// ---- sessions -----------------------------------------------------------------------------

void Cluster::save(const SessionSnapshot& s, std::int64_t ttl_ms) {
    if (!up_ || s.pid.empty()) return;
    writer_->command({"SET", kSessionPrefix + s.pid, encode_walcast_session(s), "PX",
                      std::to_string(std::max<std::int64_t>(1, ttl_ms))},
                     [](const RespValue*, const std::string&) {});
}

void Cluster::forget(const std::string& pid) {
    if (!up_ || pid.empty()) return;
    writer_->command({"DEL", kSessionPrefix + pid}, [](const RespValue*, const std::string&) {});
}

void Cluster::take(const std::string& pid, std::function<void(std::optional<SessionSnapshot>)> done) {
    if (!up_) {
        boost::asio::post(io_, [done = std::move(done)] { done(std::nullopt); });
        return;
    }
    writer_->command({"GETDEL", kSessionPrefix + pid},
                     [pid, done = std::move(done)](const RespValue* reply, const std::string&) {
        if (!reply || reply->is_null() || reply->is_error()) return done(std::nullopt);
        auto text = reply->as_string();
        if (!text) return done(std::nullopt);
        auto session = decode_walcast_session(*text);
        if (!session || session->pid != pid) return done(std::nullopt);
        done(std::move(*session));
    });
}

}  // namespace walcast
