// libFuzzer target: a wal2json format-version 2 stream (lines split on '\n') through the
// decoder, the transaction assembler and the router with examples/walcast.toml.
// Invariant beyond "no crash": every event payload the router writes is valid UTF-8 JSON,
// whatever bytes the lines carried (a bad byte in a text frame drops a browser).
#include <rapidjson/document.h>
#include <rapidjson/error/en.h>

#include <cstdio>
#include <cstdlib>

#include "decoder/transaction.hpp"
#include "decoder/wal2json.hpp"
#include "config/config.hpp"
#include "routing/router.hpp"

namespace {

const walcast::Config& example_config() {
    static const walcast::Config config = [] {
        auto loaded = walcast::load_config(WALCAST_EXAMPLE_CONFIG);
        if (!loaded) {
            std::fprintf(stderr, "%s: %s\n", WALCAST_EXAMPLE_CONFIG, loaded.error().message.c_str());
            std::abort();
        }
        return std::move(*loaded);
    }();
    return config;
}

void require_json(const std::string& text, const char* what) {
    rapidjson::Document doc;
    doc.Parse<rapidjson::kParseValidateEncodingFlag>(text.data(), text.size());
    if (!doc.HasParseError()) return;
    std::fprintf(stderr, "%s is not valid JSON (%s at %zu): %s\n", what, rapidjson::GetParseError_En(doc.GetParseError()),
                 doc.GetErrorOffset(), text.c_str());
    std::abort();
}

struct CheckingSink : walcast::EventSink {
    void on_transaction(const walcast::TransactionInfo&, std::vector<walcast::Event>& events) override {
        for (const auto& e : events) {
            if (e.name.empty() || e.rooms.empty()) std::abort();
            require_json(e.payload, "event payload");
        }
    }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    CheckingSink sink;
    walcast::Router router(example_config(), sink);
    walcast::TransactionAssembler assembler(example_config().message_prefix, router);
    std::string_view rest(reinterpret_cast<const char*>(data), size);
    while (!rest.empty()) {
        const std::size_t nl = rest.find('\n');
        const std::string_view line = rest.substr(0, nl);
        rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
        auto change = walcast::decode_wal2json_line(line);
        if (change) {
            (void)assembler.feed(*change);
        } else {
            if (change.error().message.empty()) std::abort();  // every refusal says why
            assembler.damage(change.error().message);
        }
    }
    assembler.finish("end of input");
    return 0;
}
