// Detached sessions and the state file's text (see detached_sessions.hpp).
#include "routing/detached_sessions.hpp"

#include <rapidjson/document.h>

#include <algorithm>

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
    if (!doc.IsObject() || !doc.HasMember("version") || !doc["version"].IsInt() ||
        (doc["version"].GetInt() != 1 && doc["version"].GetInt() != 2))
        return make_error("not a walcast state file (version 1 or 2)");
    // Version 2 ends with a marker, so a torn write is refused rather than half-read.
    // Version 1 (written by walcast before it had one) is read as it is.
    if (doc["version"].GetInt() == 2 && (!doc.HasMember("end") || !doc["end"].IsTrue()))
        return make_error("incomplete (no end marker)");
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

}  // namespace walcast
