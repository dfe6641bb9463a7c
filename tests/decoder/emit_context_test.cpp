// Emit context parsing: SPEC §3 fields, fail-closed rule 5.
#include <doctest/doctest.h>

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
}
