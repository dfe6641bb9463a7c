// Recovery state (see recovery_state.hpp).
#include "daemon/recovery_state.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <rapidjson/document.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "decoder/json_text.hpp"

namespace walcast {

// ---- DetachedSessions --------------------------------------------------------------------

void DetachedSessions::erase(Order::iterator it) {
    auto user = by_user_.find(it->user);
    if (user != by_user_.end()) {
        auto& list = user->second;
        list.erase(std::remove(list.begin(), list.end(), it), list.end());
        if (list.empty()) by_user_.erase(user);
    }
    by_pid_.erase(it->pid);
    order_.erase(it);
}

std::size_t DetachedSessions::add(SessionSnapshot s) {
    if (auto old = by_pid_.find(s.pid); old != by_pid_.end()) erase(old->second);
    std::size_t evicted = 0;
    if (max_total_ == 0 || max_per_user_ == 0) return 1;
    if (auto user = by_user_.find(s.user); user != by_user_.end()) {
        while (!user->second.empty() && user->second.size() >= max_per_user_) {
            erase(user->second.front());
            ++evicted;
            user = by_user_.find(s.user);
            if (user == by_user_.end()) break;
        }
    }
    while (order_.size() >= max_total_) {
        erase(order_.begin());
        ++evicted;
    }
    const std::string pid = s.pid, user = s.user;
    order_.push_back(std::move(s));
    const auto it = std::prev(order_.end());
    by_pid_.emplace(pid, it);
    by_user_[user].push_back(it);
    return evicted;
}

const SessionSnapshot* DetachedSessions::find(const std::string& pid) const {
    auto it = by_pid_.find(pid);
    return it == by_pid_.end() ? nullptr : &*it->second;
}

std::optional<SessionSnapshot> DetachedSessions::take(const std::string& pid) {
    auto it = by_pid_.find(pid);
    if (it == by_pid_.end()) return std::nullopt;
    SessionSnapshot s = *it->second;  // a copy: erase() still reads the user from the node
    erase(it->second);
    return s;
}

std::size_t DetachedSessions::expire(std::int64_t now_ms, std::int64_t window_ms) {
    // Sessions are added in the order they detach, so the oldest are in front.
    std::size_t n = 0;
    while (!order_.empty() && now_ms - order_.front().detached_at_ms > window_ms) {
        erase(order_.begin());
        ++n;
    }
    return n;
}

std::size_t DetachedSessions::of_user(const std::string& user) const {
    auto it = by_user_.find(user);
    return it == by_user_.end() ? 0 : it->second.size();
}

std::vector<SessionSnapshot> DetachedSessions::all() const { return {order_.begin(), order_.end()}; }

// ---- the state file ----------------------------------------------------------------------

std::string encode_recovery_state(const RecoveryState& st) {
    std::string out = "{\"version\":2,\"dispatched\":";
    append_json_string(out, st.dispatched.str());
    out += ",\"sessions\":[";
    for (std::size_t i = 0; i < st.sessions.size(); ++i) {
        const SessionSnapshot& s = st.sessions[i];
        out += i ? ",\n{" : "\n{";
        out += "\"pid\":";
        append_json_string(out, s.pid);
        out += ",\"sid\":";
        append_json_string(out, s.sid);
        out += ",\"user\":";
        append_json_string(out, s.user);
        out += ",\"tenant\":";
        append_json_string(out, s.tenant);
        out += ",\"base\":";
        append_json_string(out, s.base.str());
        out += ",\"detachedAtMs\":" + std::to_string(s.detached_at_ms) + ",\"projects\":[";
        for (std::size_t j = 0; j < s.projects.size(); ++j) {
            if (j) out += ',';
            append_json_string(out, s.projects[j]);
        }
        out += "]}";
    }
    // The last line marks a complete file: a torn write is refused, not half-read.
    out += "],\n\"end\":true}\n";
    return out;
}

Result<RecoveryState> decode_recovery_state(std::string_view text) {
    rapidjson::Document doc;
    doc.Parse<rapidjson::kParseIterativeFlag>(text.data(), text.size());
    if (doc.HasParseError()) return make_error("not JSON (byte " + std::to_string(doc.GetErrorOffset()) + ")");
    if (!doc.IsObject() || !doc.HasMember("version") || !doc["version"].IsInt() || doc["version"].GetInt() != 2)
        return make_error("not a version 2 walcast state file");
    if (!doc.HasMember("end") || !doc["end"].IsTrue()) return make_error("incomplete (no end marker)");
    if (!doc.HasMember("dispatched") || !doc["dispatched"].IsString() || !doc.HasMember("sessions") ||
        !doc["sessions"].IsArray())
        return make_error("missing \"dispatched\" or \"sessions\"");
    RecoveryState st;
    auto lsn = Lsn::parse(doc["dispatched"].GetString());
    if (!lsn) return make_error("bad dispatched LSN");
    st.dispatched = *lsn;
    auto str = [](const rapidjson::Value& o, const char* k) {
        return o.HasMember(k) && o[k].IsString() ? std::string(o[k].GetString(), o[k].GetStringLength()) : std::string();
    };
    for (const auto& v : doc["sessions"].GetArray()) {
        if (!v.IsObject()) return make_error("a session that is not an object");
        SessionSnapshot s;
        s.pid = str(v, "pid");
        s.sid = str(v, "sid");
        s.user = str(v, "user");
        s.tenant = str(v, "tenant");
        auto base = EventOffset::parse(str(v, "base"));
        if (s.pid.empty() || s.user.empty() || !base) return make_error("a session without pid, user or base");
        s.base = *base;
        s.detached_at_ms = v.HasMember("detachedAtMs") && v["detachedAtMs"].IsInt64() ? v["detachedAtMs"].GetInt64() : 0;
        if (v.HasMember("projects") && v["projects"].IsArray())
            for (const auto& p : v["projects"].GetArray())
                if (p.IsString()) s.projects.emplace_back(p.GetString(), p.GetStringLength());
        st.sessions.push_back(std::move(s));
    }
    return st;
}

// ---- StateFileWriter ---------------------------------------------------------------------

StateFileWriter::StateFileWriter(std::string path) : path_(std::move(path)), thread_([this] { loop(); }) {}

StateFileWriter::~StateFileWriter() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stop_ = true;
    }
    wake_.notify_one();
    thread_.join();
}

void StateFileWriter::write(std::string contents, Lsn dispatched) {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        pending_.emplace(std::move(contents), dispatched);
    }
    wake_.notify_one();
}

Lsn StateFileWriter::durable() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return durable_;
}

void StateFileWriter::flush() {
    std::unique_lock<std::mutex> lock(mutex_);
    idle_.wait(lock, [this] { return !pending_ && !busy_; });
}

std::string StateFileWriter::take_error() {
    std::lock_guard<std::mutex> lock(mutex_);
    return std::exchange(error_, {});
}

void StateFileWriter::loop() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
        wake_.wait(lock, [this] { return stop_ || pending_; });
        if (!pending_) return;  // stopping with nothing left
        auto [contents, dispatched] = std::move(*pending_);
        pending_.reset();
        busy_ = true;
        lock.unlock();
        std::string error;
        const bool ok = write_file(contents, error);
        lock.lock();
        busy_ = false;
        if (ok) durable_ = std::max(durable_, dispatched);
        else error_ = error;
        if (!pending_) idle_.notify_all();
    }
}

bool StateFileWriter::write_file(const std::string& contents, std::string& error) {
    const std::string tmp = path_ + ".tmp";
    auto fail = [&](const std::string& what) {
        error = what + " " + tmp + ": " + std::strerror(errno);
        return false;
    };
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return fail("cannot create");
    std::size_t done = 0;
    while (done < contents.size()) {
        const ssize_t n = ::write(fd, contents.data() + done, contents.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            ::close(fd);
            return fail("cannot write");
        }
        done += static_cast<std::size_t>(n);
    }
    // The data before the rename, and the rename before anything relies on it.
    if (::fsync(fd) != 0) {
        ::close(fd);
        return fail("cannot fsync");
    }
    ::close(fd);
    if (::rename(tmp.c_str(), path_.c_str()) != 0) return fail("cannot rename");
    const auto slash = path_.rfind('/');
    const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path_.substr(0, slash);
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        ::fsync(dfd);
        ::close(dfd);
    }
    return true;
}

}  // namespace walcast
