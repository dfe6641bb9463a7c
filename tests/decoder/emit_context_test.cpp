// Emit context parsing: the fields, failing closed on a malformed context, and the size and
// depth limits that keep a hostile context from crashing or swelling the daemon.
#include <doctest/doctest.h>

#include <string>

#include "decoder/emit_context.hpp"

using namespace walcast;

TEST_SUITE("emit_context") {
    TEST_CASE("all fields") {
        auto ctx = parse_emit_context(R"({"actorUserId":"u1","projectId":"p1","tenantId":"acme","skipEmit":false})");
        REQUIRE(ctx);
        CHECK(*ctx->actor_user_id == "u1");
        CHECK(*ctx->project_id == "p1");
        CHECK(*ctx->tenant_id == "acme");
        CHECK_FALSE(ctx->skip_emit);
        CHECK(ctx->to_json() == R"({"actorUserId":"u1","projectId":"p1","tenantId":"acme","skipEmit":false})");
    }

    TEST_CASE("optional fields may be absent or null; unknown fields are ignored") {
        auto ctx = parse_emit_context(R"({"actorUserId":"u1","projectId":null,"requestId":42})");
        REQUIRE(ctx);
        CHECK_FALSE(ctx->project_id);
        CHECK_FALSE(ctx->tenant_id);
        CHECK_FALSE(ctx->skip_emit);
    }

    TEST_CASE("skipEmit needs no actor") {
        auto ctx = parse_emit_context(R"({"actorUserId":null,"skipEmit":true})");
        REQUIRE(ctx);
        CHECK(ctx->skip_emit);
    }

    TEST_CASE("malformed contexts are errors the user can act on") {
        struct Case { const char* content; const char* message; };
        for (Case c : {
                 Case{"", "context is not valid JSON (byte 0: The document is empty.)"},
                 Case{"x", "context is not valid JSON (byte 0: Invalid value.)"},
                 Case{R"({"actorUserId":"u1")", "context is not valid JSON (byte 19: Missing a comma or '}' after an object member.)"},
                 Case{R"(["u1"])", "context is not a JSON object"},
                 Case{R"({"projectId":"p1"})", "context has no actorUserId"},
                 Case{R"({"actorUserId":7})", "context field actorUserId is not a string"},
                 Case{R"({"actorUserId":"u1","projectId":5})", "context field projectId is not a string or null"},
                 Case{R"({"actorUserId":"u1","tenantId":{}})", "context field tenantId is not a string or null"},
                 Case{R"({"actorUserId":"u1","skipEmit":"yes"})", "context field skipEmit is not a boolean"},
                 Case{"{\"actorUserId\":\"\xff\"}", "context is not valid JSON (byte 16: Invalid encoding in string.)"},
             }) {
            auto ctx = parse_emit_context(c.content);
            REQUIRE_MESSAGE(!ctx, c.content);
            CHECK(ctx.error().message == c.message);
        }
    }

    TEST_CASE("a content over kMaxContextBytes is refused without being parsed") {
        const std::string head = R"({"actorUserId":"u1","pad":")";
        std::string content = head + std::string(kMaxContextBytes - head.size() - 2, 'x') + "\"}";
        REQUIRE(content.size() == kMaxContextBytes);
        CHECK(parse_emit_context(content));  // at the limit: an ordinary context

        content.insert(head.size(), "x");
        REQUIRE(content.size() == 4097);
        auto ctx = parse_emit_context(content);
        REQUIRE_FALSE(ctx);
        CHECK(ctx.error().message == "context is 4097 bytes, over the 4096-byte limit");
    }

    TEST_CASE("a million '[' (the crash-loop context) is refused by its size") {
        auto ctx = parse_emit_context(std::string(1000000, '['));
        REQUIRE_FALSE(ctx);
        CHECK(ctx.error().message == "context is 1000000 bytes, over the 4096-byte limit");
    }

    TEST_CASE("nesting deeper than kMaxContextDepth is refused with the byte where it starts") {
        // Within the size limit, so only the depth limit can stop it.
        auto bomb = parse_emit_context(std::string(kMaxContextBytes, '['));
        REQUIRE_FALSE(bomb);
        CHECK(bomb.error().message == "context is nested deeper than 16 levels (byte 16)");

        // An unknown field may hold nested values, up to the limit counting the top object.
        const auto nested = [](int arrays) {
            return R"({"actorUserId":"u1","trace":)" + std::string(arrays, '[') + std::string(arrays, ']') + "}";
        };
        auto deepest = parse_emit_context(nested(kMaxContextDepth - 1));
        REQUIRE_MESSAGE(deepest, deepest.error().message);
        CHECK(*deepest->actor_user_id == "u1");
        auto too_deep = parse_emit_context(nested(kMaxContextDepth));
        REQUIRE_FALSE(too_deep);
        CHECK(too_deep.error().message == "context is nested deeper than 16 levels (byte 43)");

        // Objects count too: the 16th nested {"b":..} (byte 19 + 15 * 11 + 5) is level 17.
        std::string objects = R"({"actorUserId":"u1")";
        for (int i = 1; i < 100; ++i) objects += R"(,"a":{"b":1)";
        objects += std::string(99, '}') + "}";
        auto deep_objects = parse_emit_context(objects);
        REQUIRE_FALSE(deep_objects);
        CHECK(deep_objects.error().message == "context is nested deeper than 16 levels (byte 189)");
    }
}
