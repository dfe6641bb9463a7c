# Build-time step: writes a C++ source defining `extern const std::string_view NAME`, holding
# the bytes of INPUT, so `walcast demo` carries its page, schema and SQL inside the binary.
# Usage: cmake -DINPUT=file -DOUTPUT=file.cpp -DNAME=identifier -P embed.cmake
file(READ "${INPUT}" hex HEX)
string(LENGTH "${hex}" hex_length)
math(EXPR size "${hex_length} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "'\\\\x\\1'," bytes "${hex}")
# Break the initializer into lines of 32 bytes.
string(REGEX REPLACE "(('\\\\x[0-9a-f][0-9a-f]',){32})" "\\1\n" bytes "${bytes}")
file(WRITE "${OUTPUT}" "// Generated from ${INPUT} by scripts/embed.cmake; do not edit.\n#include <string_view>\nnamespace walcast::embedded {\nstatic const char ${NAME}_bytes[] = {\n${bytes}'\\0'};\nextern const std::string_view ${NAME}(${NAME}_bytes, ${size});\n}\n")
