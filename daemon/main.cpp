// walcast's entry point: parses the command line and runs one command. Main thread.
#include <CLI/CLI.hpp>

#include "daemon/check.hpp"
#include "daemon/codegen.hpp"
#include "daemon/demo.hpp"
#include "daemon/log.hpp"
#include "daemon/replay.hpp"
#include "daemon/run.hpp"

int main(int argc, char** argv) {
    CLI::App app{"walcast: committed PostgreSQL row changes as Socket.IO events"};
    app.require_subcommand(1);
    app.set_version_flag("--version", "walcast 0.1.0");

    walcast::ReplayOptions replay;
    CLI::App* replay_cmd = app.add_subcommand("replay", "print the events a recorded wal2json stream emits");
    replay_cmd->add_option("--config", replay.config_path, "routing config (TOML)")->required();
    replay_cmd->add_option("--input", replay.input, "wal2json v2 capture, or - for stdin")->required();
    replay_cmd->add_flag("--explain", replay.explain, "per transaction and change, why it emitted what it did");

    walcast::RunOptions run;
    CLI::App* run_cmd = app.add_subcommand("run", "stream the slot and serve Socket.IO clients");
    run_cmd->add_option("--config", run.config_path, "routing config (TOML)")->required();
    run_cmd->add_option("--dsn", run.dsn, "PostgreSQL connection string (overrides [postgres] dsn)");
    run_cmd->add_option("--slot", run.slot, "replication slot (overrides [postgres] slot)");
    run_cmd->add_option("--listen", run.listen, "HOST:PORT (overrides [server] listen)");
    run_cmd->add_option("--record", run.record, "append every wal2json line received to FILE");
    std::string log_level;
    app.add_option("--log-level", log_level, "error, warning, notice, info (default) or debug; env WALCAST_LOG_LEVEL")
        ->check([](const std::string& v) { return walcast::parse_log_level(v) ? std::string() : "unknown log level " + v; });

    walcast::CheckOptions check;
    CLI::App* check_cmd = app.add_subcommand("check", "validate the config and the database, and say what to fix");
    check_cmd->add_option("--config", check.config_path, "routing config (TOML)")->required();
    check_cmd->add_option("--dsn", check.dsn, "PostgreSQL connection string (overrides [postgres] dsn)");
    check_cmd->add_option("--slot", check.slot, "replication slot (overrides [postgres] slot)");

    walcast::DemoOptions demo;
    CLI::App* demo_cmd = app.add_subcommand("demo", "throwaway PostgreSQL + daemon + simulated team + live page");
    demo_cmd->add_option("--port", demo.port, "HTTP/WebSocket port of the page (default 8787)");
    demo_cmd->add_flag("!--no-writer", demo.writer, "do not simulate the team's writes");

    walcast::CodegenOptions codegen;
    CLI::App* codegen_cmd = app.add_subcommand("codegen", "write client code for the config's events (typescript)");
    codegen_cmd->add_option("language", codegen.language, "typescript")->required();
    codegen_cmd->add_option("--config", codegen.config_path, "routing config (TOML)")->required();
    codegen_cmd->add_option("--dsn", codegen.dsn, "PostgreSQL connection string: type the columns from its catalog");
    codegen_cmd->add_option("--out", codegen.out_dir, "directory to write the files into (created if missing)")->required();

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        int code = app.exit(e);
        return code == 0 ? 0 : 2;
    }
    if (!log_level.empty()) walcast::set_log_level(*walcast::parse_log_level(log_level));
    if (*replay_cmd) return walcast::run_replay(replay);
    if (*run_cmd) return walcast::run_daemon(run);
    if (*check_cmd) return walcast::run_check(check);
    if (*demo_cmd) return walcast::run_demo(demo);
    if (*codegen_cmd) return walcast::run_codegen(codegen);
    return 2;
}
