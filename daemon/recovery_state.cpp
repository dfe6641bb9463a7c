// StateFileWriter (see recovery_state.hpp).
#include "daemon/recovery_state.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace walcast {

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
