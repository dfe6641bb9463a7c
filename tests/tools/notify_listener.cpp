// Test tool: binds a Unix datagram socket (what systemd's NOTIFY_SOCKET is) and prints each
// datagram it receives as one line "<milliseconds since start> <message with \n as |>".
// Usage: notify_listener PATH   (runs until killed)
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: notify_listener PATH\n");
        return 2;
    }
    const int fd = ::socket(AF_UNIX, SOCK_DGRAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, argv[1], sizeof addr.sun_path - 1);
    ::unlink(argv[1]);
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        std::perror("notify_listener: bind");
        return 1;
    }
    std::printf("listening\n");
    std::fflush(stdout);
    const auto start = std::chrono::steady_clock::now();
    char buf[4096];
    for (;;) {
        const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n < 0) continue;
        std::string msg(buf, static_cast<std::size_t>(n));
        for (char& c : msg)
            if (c == '\n') c = '|';
        const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count();
        std::printf("%lld %s\n", static_cast<long long>(ms), msg.c_str());
        std::fflush(stdout);
    }
}
