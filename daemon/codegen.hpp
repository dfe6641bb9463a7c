// `walcast codegen typescript`: writes the TypeScript for a config's events into a directory,
// with column types read from the database catalog when given a DSN. Main thread; blocking.
#pragma once

#include <string>

namespace walcast {

struct CodegenOptions {
    std::string language;     // "typescript", the only one
    std::string config_path;
    std::string dsn;          // empty: no catalog, column types unknown
    std::string out_dir;      // created when missing
};

// 0 when both files were written; 2 for an unknown language or an invalid config; 1 when
// the models cannot be generated (names that collide, a table or column the database
// lacks), or the database or the directory failed.
int run_codegen(const CodegenOptions& options);

}  // namespace walcast
