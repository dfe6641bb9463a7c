// HttpEndpoints (see http_endpoints.hpp).
#include "daemon/http_endpoints.hpp"

#include <cctype>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace walcast {

namespace {

constexpr std::size_t kMaxStaticFileBytes = 8 << 20;

const char* content_type(const std::string& path) {
    const auto dot = path.rfind('.');
    const std::string ext = dot == std::string::npos ? "" : path.substr(dot + 1);
    if (ext == "html" || ext == "htm") return "text/html; charset=utf-8";
    if (ext == "js" || ext == "mjs") return "text/javascript; charset=utf-8";
    if (ext == "css") return "text/css; charset=utf-8";
    if (ext == "json") return "application/json";
    if (ext == "svg") return "image/svg+xml";
    if (ext == "png") return "image/png";
    if (ext == "ico") return "image/x-icon";
    if (ext == "txt") return "text/plain; charset=utf-8";
    return "application/octet-stream";
}

}  // namespace

bool safe_static_path(const std::string& path) {
    if (path.empty() || path[0] != '/') return false;
    std::size_t start = 1;
    while (start <= path.size()) {
        std::size_t end = path.find('/', start);
        if (end == std::string::npos) end = path.size();
        const std::string_view seg(path.data() + start, end - start);
        if (seg.empty() && end != path.size()) return false;  // "//"
        if (!seg.empty() && seg[0] == '.') return false;
        for (char c : seg)
            if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-')) return false;
        start = end + 1;
    }
    return true;
}

void HttpEndpoints::handle(const std::shared_ptr<HttpExchange>& exchange) const {
    HttpExchange& x = *exchange;
    auto respond = [&](int status, const char* type, std::string body, HttpHeaders extra = {}) {
        extra.emplace_back("Content-Type", type);
        extra.emplace_back("Cache-Control", "no-store");
        x.respond(status, extra, std::move(body));
    };
    const std::string& path = x.path();
    if (x.method() != "GET") return respond(405, "text/plain; charset=utf-8", "method not allowed\n", {{"Allow", "GET"}});
    if (operator_endpoints && path == "/healthz") {
        const bool ok = !healthy || healthy();
        std::string body = ok ? "ok\n" : "not streaming\n";
        if (health_detail) body += health_detail();
        return respond(ok ? 200 : 503, "text/plain; charset=utf-8", std::move(body));
    }
    if (operator_endpoints && path == "/metrics" && metrics)
        return respond(200, "text/plain; version=0.0.4; charset=utf-8", metrics->render());
    if (extra && extra(exchange)) return;
    if (!static_dir.empty() && safe_static_path(path)) {
        std::string file = static_dir + path;
        if (file.back() == '/') file += "index.html";
        std::error_code ec;
        const auto size = std::filesystem::file_size(file, ec);
        if (!ec && std::filesystem::is_regular_file(file, ec) && size <= kMaxStaticFileBytes) {
            std::ifstream in(file, std::ios::binary);
            std::ostringstream body;
            body << in.rdbuf();
            if (in) return respond(200, content_type(file), body.str());
        }
    }
    respond(404, "text/plain; charset=utf-8", "not found\n");
}

}  // namespace walcast
