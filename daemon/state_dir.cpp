// StateDir (see state_dir.hpp).
#include "daemon/state_dir.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <rapidjson/document.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "decoder/json_text.hpp"

namespace walcast {

namespace {

// Reads a whole file; false when it does not exist or cannot be read.
bool read_file(const std::string& path, std::string& out) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return false;
    std::ostringstream ss;
    ss << in.rdbuf();
    out = ss.str();
    return static_cast<bool>(in) || in.eof();
}

// Writes `contents` to `path` durably: temp file, fsync, rename, fsync of the directory.
std::string write_durably(const std::string& dir, const std::string& path, const std::string& contents) {
    const std::string tmp = path + ".tmp";
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return "cannot create " + tmp + ": " + std::strerror(errno);
    const bool ok = ::write(fd, contents.data(), contents.size()) == static_cast<ssize_t>(contents.size()) && ::fsync(fd) == 0;
    const int err = errno;
    ::close(fd);
    if (!ok) return "cannot write " + tmp + ": " + std::strerror(err);
    if (::rename(tmp.c_str(), path.c_str()) != 0) return "cannot rename " + tmp + ": " + std::strerror(errno);
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        ::fsync(dfd);
        ::close(dfd);
    }
    return {};
}

}  // namespace

std::string StateDir::resolve(const std::string& configured) {
    if (!configured.empty()) return configured;
    const char* env = std::getenv("STATE_DIRECTORY");
    if (!env || !*env) return {};
    std::string dir = env;
    return dir.substr(0, dir.find(':'));  // systemd may list several
}

StateDir::StateDir(std::string dir, std::string slot) : dir_(std::move(dir)), slot_(std::move(slot)) {
    if (enabled()) writer_ = std::make_unique<StateFileWriter>(dir_ + "/recovery.json");
}

StateDir::Loaded StateDir::load() {
    Loaded out;
    if (!enabled()) return out;
    std::string text;
    if (read_file(dir_ + "/identity.json", text)) {
        rapidjson::Document doc;
        doc.Parse<rapidjson::kParseIterativeFlag>(text.data(), text.size());
        if (!doc.HasParseError() && doc.IsObject() && doc.HasMember("slot") && doc["slot"].IsString() &&
            doc["slot"].GetString() == slot_ && doc.HasMember("systemId") && doc["systemId"].IsString() &&
            doc.HasMember("timeline") && doc["timeline"].IsUint()) {
            out.record.streamed = true;
            out.record.server.system_id = doc["systemId"].GetString();
            out.record.server.timeline = doc["timeline"].GetUint();
        }
    }
    const std::string path = dir_ + "/recovery.json";
    if (!read_file(path, text)) {
        if (!out.record.streamed) return out;  // a first start
        out.found = Found::Lost;
        out.problem = path + " is missing";
        return out;
    }
    // A recovery state, even an unreadable one, says this walcast streamed here before.
    out.record.streamed = true;
    auto state = decode_recovery_state(text);
    if (!state) {
        // Kept aside for whoever investigates; a new one is written from now on.
        const std::string aside =
            path + ".corrupt-" +
            std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count());
        std::error_code ec;
        std::filesystem::rename(path, aside, ec);
        out.found = Found::Lost;
        out.problem = path + " is unreadable (" + state.error().message + "); set aside as " + aside;
        return out;
    }
    out.found = Found::Resumable;
    out.record.dispatched = state->dispatched;
    out.sessions = std::move(state->sessions);
    return out;
}

std::string StateDir::save_identity(const ServerIdentity& server) {
    if (!enabled()) return {};
    std::string text = "{\"version\":1,\"slot\":";
    append_json_string(text, slot_);
    text += ",\"systemId\":";
    append_json_string(text, server.system_id);
    text += ",\"timeline\":" + std::to_string(server.timeline) + "}\n";
    return write_durably(dir_, dir_ + "/identity.json", text);
}

void StateDir::save_recovery(const RecoveryState& state) {
    if (writer_) writer_->write(encode_recovery_state(state), state.dispatched);
}

}  // namespace walcast
