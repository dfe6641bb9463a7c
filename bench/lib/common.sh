# bench/lib/common.sh: what bench/e2e, drain, idle, fanout-floor and latency-breakdown share.
# Sourced, not run. Before sourcing, a script sets `bench_name` (for messages and the temp
# directory's name); `bench_keep` non-empty keeps the temp directory at exit.
# Holds: number and time helpers, the temp directory and the processes started in it (all
# stopped at exit), building targets, pinning to cores, CPU from /proc, a throwaway
# PostgreSQL 15 + wal2json cluster, a walcast config, and starting and stopping walcast.
# shellcheck shell=bash disable=SC2034,SC2154,SC2120  # globals shared with the sourcing script

die() { echo "bench/$bench_name: $*" >&2; exit 1; }

# 1234567 -> 1,234,567 (no locale needed); non-numbers pass through.
commas() { awk -v n="$1" 'BEGIN { if (n !~ /^-?[0-9.]+$/) { print n; exit }
    s = sprintf("%.0f", n); o = ""; neg = ""
    if (substr(s, 1, 1) == "-") { neg = "-"; s = substr(s, 2) }
    while (length(s) > 3) { o = "," substr(s, length(s) - 2) o; s = substr(s, 1, length(s) - 3) }
    print neg s o }'; }
calc() { awk "BEGIN { $1 }"; }      # calc 'printf "%.1f", 3 / 2'
now_s() { echo "${EPOCHREALTIME/,/.}"; }
sleep_until() {  # absolute time in seconds (now_s scale)
    local d
    d=$(awk -v t="$1" -v n="$(now_s)" 'BEGIN { d = t - n; printf "%.3f", (d > 0) ? d : 0 }')
    sleep "$d"
}
verdict() { if [[ $1 == 1 ]]; then echo PASS; else echo FAIL; fi; }
is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

# ---- the temp directory and our processes -------------------------------------------------------
pids=()          # background processes of ours still possibly running
bench_fds=()     # file descriptors to close at exit (FIFO write ends)
pgdata=''        # set by pg_start
as_pg=()         # prefix that runs a server program as an unprivileged user
pg_bindir=${WALCAST_PG_BINDIR:-/usr/lib/postgresql/15/bin}

bench_tmp() {  # creates $tmp and installs the cleanup
    tmp=$(mktemp -d "/tmp/walcast-$bench_name.XXXXXX")
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
}

# shellcheck disable=SC2317  # called from the EXIT trap
bench_cleanup() {
    local pid fd
    for fd in "${bench_fds[@]}"; do exec {fd}>&- 2>/dev/null || true; done
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    sleep 0.2
    for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    if [[ -n $pgdata && -f $pgdata/postmaster.pid ]]; then
        (cd "$tmp" && "${as_pg[@]}" "$pg_bindir/pg_ctl" -D "$pgdata" -m immediate -w -t 30 stop) \
            > /dev/null 2>&1 || true
    fi
    if [[ -n ${bench_keep:-} ]]; then echo "kept $tmp" >&2; else rm -rf "$tmp"; fi
}

forget_pid() {  # drop $1 from pids
    local keep=() p
    for p in "${pids[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
    pids=("${keep[@]}")
}

# wait_exit PID SECONDS: waits for a child of ours; sets wait_rc (124 on timeout, then killed).
wait_exit() {
    local pid=$1 deadline
    deadline=$(calc "printf \"%.6f\", $(now_s) + $2")
    while kill -0 "$pid" 2>/dev/null; do
        if awk -v n="$(now_s)" -v d="$deadline" 'BEGIN { exit !(n > d) }'; then
            kill -KILL "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
            forget_pid "$pid"
            wait_rc=124
            return
        fi
        sleep 0.05
    done
    if wait "$pid" 2>/dev/null; then wait_rc=0; else wait_rc=$?; fi
    forget_pid "$pid"
}

# ---- build -------------------------------------------------------------------------------------
# bench_build BUILD_DIR TARGET...: checks the build directory, brings the targets up to date
# (nothing else), warns on a debug or sanitizer build. Sets build, build_type.
bench_build() {
    build=$1
    shift
    [[ -d $build ]] || die "no build directory '$build'; configure and build first:
  cmake -S $root -B $build -DCMAKE_BUILD_TYPE=RelWithDebInfo && cmake --build $build"
    build=$(cd "$build" && pwd)
    [[ -f $build/CMakeCache.txt ]] || die "'$build' is not a configured CMake build directory"
    local target
    for target in "$@"; do
        if ! cmake --build "$build" --target "$target" -j "$(nproc)" > "$tmp/build.log" 2>&1; then
            tail -n 30 "$tmp/build.log" >&2
            die "building target '$target' in $build failed (log above)"
        fi
    done
    build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$build/CMakeCache.txt")
    local sanitize
    sanitize=$(sed -n 's/^WALCAST_SANITIZE:[A-Z]*=//p' "$build/CMakeCache.txt")
    case $build_type in
        Release|RelWithDebInfo|MinSizeRel) ;;
        *) echo "WARNING: $build is a '${build_type:-no type}' build; its figures mean little" >&2 ;;
    esac
    if [[ $sanitize == ON ]]; then
        echo "WARNING: $build has WALCAST_SANITIZE=ON; its figures mean little" >&2
    fi
}

tree_desc() {
    echo "$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')$(
        [[ -n $(git -C "$root" status --porcelain 2>/dev/null) ]] && echo ' (uncommitted changes)')"
}
cpu_desc() { echo "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), ${#cpus[@]} cores usable"; }

# ---- cores: the server side on the first usable core, the load on the last --------------------
# Sets cpus, srv_core, load_core, srv_pin, load_pin (taskset prefixes, empty when not pinned),
# pinning (a sentence).
pick_cores() {
    local allowed part c
    read -r -a allowed < <(awk '/^Cpus_allowed_list/ { gsub(/,/, " ", $2); print $2 }' /proc/self/status)
    cpus=()
    for part in "${allowed[@]}"; do
        if [[ $part == *-* ]]; then
            for (( c = ${part%-*}; c <= ${part#*-}; c++ )); do cpus+=("$c"); done
        else
            cpus+=("$part")
        fi
    done
    srv_pin=() load_pin=()
    if command -v taskset >/dev/null && (( ${#cpus[@]} >= 2 )); then
        srv_core=${cpus[0]} load_core=${cpus[${#cpus[@]} - 1]}
        srv_pin=(taskset -c "$srv_core") load_pin=(taskset -c "$load_core")
        pinning="server side on core $srv_core, load on core $load_core"
    else
        srv_core='' load_core=''
        pinning="not pinned (needs taskset and 2 cores)"
        echo "WARNING: cannot pin server and load to different cores; figures are not comparable" >&2
    fi
}

# ---- /proc readings -----------------------------------------------------------------------------
clk_tck=$(getconf CLK_TCK)
proc_ticks() {  # utime+stime of PID (0 if gone)
    local s
    s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
    s=${s##*) }
    awk '{ print $12 + $13 }' <<< "$s"
}
pg_ticks() {  # postmaster and its children (backends, walsenders, background workers)
    local pm
    pm=$(head -n1 "$pgdata/postmaster.pid" 2>/dev/null) || { echo 0; return; }
    # Live children's utime+stime, plus the postmaster's own and its reaped children's
    # (cutime+cstime): a backend or autovacuum worker that exits mid-window still counts.
    { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v pm="$pm" '{ pid = $1; sub(/^.*\) /, "")
        if (pid == pm) s += $12 + $13 + $14 + $15; else if ($2 == pm) s += $12 + $13 }
        END { print s + 0 }'
}
core_ticks() {  # "busy total" of cpuN (or all cores with "cpu")
    awk -v c="$1" '$1 == c { t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t }' /proc/stat
}
pct() {  # TICKS SECONDS -> percent of one core
    calc "printf \"%.0f\", $1 / $clk_tck / $2 * 100"
}
ticks_s() {  # TICKS -> CPU seconds
    calc "printf \"%.2f\", $1 / $clk_tck"
}
status_kib() {  # PID FIELD (VmRSS, VmHWM, RssAnon, ...) -> KiB, empty if gone
    awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status" 2>/dev/null || true
}

# ---- PostgreSQL ---------------------------------------------------------------------------------
pg_check_tools() {
    [[ -x $pg_bindir/initdb ]] || die "no PostgreSQL 15 in $pg_bindir (apt-get install postgresql-15 postgresql-15-wal2json)"
    [[ -f $pg_bindir/../lib/wal2json.so || -f /usr/lib/postgresql/15/lib/wal2json.so ]] ||
        die "wal2json is not installed (apt-get install postgresql-15-wal2json)"
    local tool
    for tool in psql pg_recvlogical curl "$@"; do
        command -v "$tool" >/dev/null || die "'$tool' not found"
    done
    if (( EUID == 0 )); then
        id postgres >/dev/null 2>&1 || die "running as root but there is no 'postgres' user to run PostgreSQL as"
        as_pg=(runuser -u postgres --)
    fi
}

# pg_start [postgresql.conf lines]: a cluster in $tmp/pg (Unix socket only, wal_level =
# logical, fsync off), started pinned to the server core (every backend and walsender
# inherits it), with database bench: tests/fixtures/app-schema.sql, sql/walcast.sql,
# walcast.track('"Task"'), tenant acme and its project p1. Sets pgdata, pgsock, pgport, dsn,
# pg_args; psql_bench runs psql on it.
pg_start() {
    pgdata=$tmp/pg/data
    pgsock=$tmp/pg/socket
    mkdir -p "$tmp/pg" "$pgsock"
    if (( EUID == 0 )); then chown -R postgres: "$tmp/pg"; chmod 755 "$tmp"; fi
    pgport=$(( 20000 + RANDOM % 10000 ))   # Unix socket only: the number just names the socket
    (cd "$tmp" && "${as_pg[@]}" "$pg_bindir/initdb" -D "$pgdata" -A trust -U postgres -E UTF8 --locale=C \
        --no-sync --no-instructions) > "$tmp/initdb.log" 2>&1 || { cat "$tmp/initdb.log" >&2; die "initdb failed"; }
    cat >> "$pgdata/postgresql.conf" <<EOF

# walcast bench/$bench_name cluster
listen_addresses = ''
port = $pgport
unix_socket_directories = '$pgsock'
wal_level = logical
max_replication_slots = 16
max_wal_senders = 16
timezone = 'UTC'
log_timezone = 'UTC'
fsync = off
full_page_writes = off
shared_buffers = '128MB'
EOF
    local line
    for line in "$@"; do echo "$line" >> "$pgdata/postgresql.conf"; done
    (cd "$tmp" && "${srv_pin[@]}" "${as_pg[@]}" "$pg_bindir/pg_ctl" -D "$pgdata" -l "$tmp/pg/server.log" \
        -w -t 60 start) > "$tmp/pg_ctl.log" 2>&1 ||
        { cat "$tmp/pg_ctl.log" "$tmp/pg/server.log" >&2 2>/dev/null; die "PostgreSQL did not start"; }

    unset PGHOST PGPORT PGUSER PGDATABASE PGPASSWORD PGSERVICE PGOPTIONS
    export PGTZ=UTC
    dsn="host=$pgsock port=$pgport dbname=bench user=postgres"
    pg_args=(-h "$pgsock" -p "$pgport" -U postgres)
    # Builds with output_plugin_libraries (PostgreSQL 15.20) load only listed plugins; older
    # ones have no such setting and refuse the statement, which is fine.
    if psql -X -q "${pg_args[@]}" -d postgres -c 'ALTER SYSTEM SET output_plugin_libraries = pgoutput, test_decoding, wal2json' 2> /dev/null; then
        psql -X -q "${pg_args[@]}" -d postgres -c 'SELECT pg_reload_conf()' > /dev/null
    fi
    psql -X -q -v ON_ERROR_STOP=1 "${pg_args[@]}" -d postgres -c 'CREATE DATABASE bench' ||
        die "CREATE DATABASE failed"
    psql_bench -f "$root/tests/fixtures/app-schema.sql" > /dev/null || die "loading app-schema.sql failed"
    psql_bench -f "$root/sql/walcast.sql" > /dev/null || die "loading sql/walcast.sql failed"
    psql_bench > /dev/null <<'EOF' || die "bench data setup failed"
SELECT walcast.track('"Task"');
INSERT INTO "Tenant" VALUES ('acme', 'Acme');
INSERT INTO "Project" VALUES ('p1', 'acme', 'Bench project');
EOF
}
psql_bench() { psql -X -q -v ON_ERROR_STOP=1 "${pg_args[@]}" -d bench -At "$@"; }
pg_desc() { echo "$(psql_bench -c 'SHOW server_version'), wal2json; cluster in $tmp/pg"; }

# recreate_slot NAME: drops it if it exists and creates a wal2json slot at the current WAL
# position. A walcast that just stopped may hold it for a moment: retried for 10 s.
recreate_slot() {
    local i
    for (( i = 0; i < 50; i++ )); do
        if psql_bench > /dev/null 2> "$tmp/slot.err" <<EOF
SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '$1';
SELECT pg_create_logical_replication_slot('$1', 'wal2json');
EOF
        then return 0; fi
        sleep 0.2
    done
    sed 's/^/    | /' "$tmp/slot.err" >&2
    die "could not recreate the slot $1"
}

# The four wal2json options walcast uses.
wal2json_opts=(-o format-version=2 -o include-xids=1 -o include-lsn=1 -o include-timestamp=1)

# Counts lines on stdin and prints "LINES SECONDS_FROM_FIRST_TO_LAST_LINE" (perl's
# Time::HiRes); without it, "LINES 0" and the caller times the whole run instead.
if perl -MTime::HiRes -e 1 2>/dev/null; then
    # shellcheck disable=SC2016  # perl code, not shell
    line_counter=(perl -MTime::HiRes=time -ne '$f = time unless $n++; $l = time;
        END { printf "%d %.6f\n", $n, $n ? $l - $f : 0 }')
else
    line_counter=(awk 'END { print NR, 0 }')
fi

# ---- walcast ------------------------------------------------------------------------------------
free_port() {
    local p i
    for (( i = 0; i < 100; i++ )); do
        p=$(( 20000 + RANDOM % 12000 ))   # below the ephemeral range the clients' sockets use
        if ! (exec 3<> "/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
    done
    die "no free TCP port found"
}

# walcast_config FILE SLOT [TOML...]: examples/walcast.toml with this cluster, the slot, a free
# 127.0.0.1 port (sets port) and token project access; the secret comes in WALCAST_JWT_SECRET
# (sets secret, random). Extra TOML text is appended (whole tables, e.g. "[recovery]...").
walcast_config() {
    local cfg=$1 slot=$2 want
    shift 2
    port=$(free_port)
    sed -E \
        -e "s|^dsn = .*|dsn = \"$dsn\"|" \
        -e "s|^slot = .*|slot = \"$slot\"|" \
        -e "s|^listen = .*|listen = \"127.0.0.1:$port\"|" \
        -e 's|^jwt_secret_file = .*|# secret: WALCAST_JWT_SECRET|' \
        -e 's|^project_access = .*|project_access = "token"|' \
        "$root/examples/walcast.toml" > "$cfg"
    for want in "dsn = \"$dsn\"" "slot = \"$slot\"" "listen = \"127.0.0.1:$port\"" \
                'project_access = "token"' 'table = "public.Task"'; do
        grep -qF "$want" "$cfg" || die "examples/walcast.toml changed shape: could not set '$want'"
    done
    local extra
    for extra in "$@"; do printf '\n%s\n' "$extra" >> "$cfg"; done
    secret=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
}

# launch_walcast CFG LOG [ENV=VALUE...] [-- ARGS...]: `walcast run` pinned to the server core
# (or to core $walcast_core when that is set), no STATE_DIRECTORY (no durable recovery state
# between runs). Sets daemon_pid.
launch_walcast() {
    local cfg=$1 log=$2 envs=() args=() pin=("${srv_pin[@]}")
    if [[ -n ${walcast_core:-} ]]; then pin=(taskset -c "$walcast_core"); fi
    shift 2
    while (( $# )); do
        if [[ $1 == -- ]]; then shift; args=("$@"); break; fi
        envs+=("$1"); shift
    done
    # WALCAST_BENCH_WRAP: a command put before walcast, for profiling (e.g. "heaptrack -o FILE");
    # the figures read from the daemon's pid are then the wrapper's.
    local wrap=()
    read -r -a wrap <<< "${WALCAST_BENCH_WRAP:-}"
    env -u STATE_DIRECTORY WALCAST_JWT_SECRET="$secret" "${envs[@]}" "${pin[@]}" "${wrap[@]}" "$build/walcast" run \
        --config "$cfg" "${args[@]}" > "$log" 2>&1 &
    daemon_pid=$!
    pids+=("$daemon_pid")
}

# wait_healthy PID SECONDS: polls /healthz until 200 (walcast streams from its slot).
wait_healthy() {
    local i n=$(( $2 * 10 ))
    for (( i = 0; i < n; i++ )); do
        kill -0 "$1" 2>/dev/null || return 1
        if [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$port/healthz" 2>/dev/null) == 200 ]]
        then return 0; fi
        sleep 0.1
    done
    return 1
}

# wait_listening PID SECONDS: polls until walcast answers HTTP at all (streaming or not).
wait_listening() {
    local i n=$(( $2 * 10 ))
    for (( i = 0; i < n; i++ )); do
        kill -0 "$1" 2>/dev/null || return 1
        if [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$port/healthz" 2>/dev/null) =~ ^[25] ]]
        then return 0; fi
        sleep 0.1
    done
    return 1
}

metrics_get() { curl -s --max-time 2 "http://127.0.0.1:$port/metrics" 2>/dev/null || true; }
metric() {  # NAME FILE -> value ("" if absent)
    awk -v n="$1" '$1 == n { print $2; exit }' "$2"
}

stop_daemon() {  # PID; sets daemon_rc
    # Under WALCAST_BENCH_WRAP the pid is the wrapper's: walcast is its child.
    if [[ -n ${WALCAST_BENCH_WRAP:-} ]]; then pkill -TERM -P "$1" 2>/dev/null || true; fi
    kill -TERM "$1" 2>/dev/null || true
    wait_exit "$1" 15
    daemon_rc=$wait_rc
}

# ---- Redis, for walcast's cluster mode ---------------------------------------------------------
# redis_start [redis-server ARGS...]: a throwaway redis-server in $tmp/redis on a free 127.0.0.1
# port (Redis refuses port 0 for a listener it should report), in the foreground of a background
# job so it is stopped at exit with the rest, pinned to core $redis_core (else the server core).
# The caller's ARGS choose persistence (e.g. --save '' --appendonly no). Sets redis_pid,
# redis_port, redis_url; rcli runs redis-cli on it.
redis_start() {
    local tool i pin=("${srv_pin[@]}")
    for tool in redis-server redis-cli; do
        command -v "$tool" >/dev/null || die "'$tool' not found (apt-get install redis-server)"
    done
    if [[ -n ${redis_core:-} ]]; then pin=(taskset -c "$redis_core"); fi
    mkdir -p "$tmp/redis"
    redis_port=$(free_port)
    (cd "$tmp/redis" && exec "${pin[@]}" redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$tmp/redis" \
        --protected-mode no --daemonize no "$@") > "$tmp/redis/redis.log" 2>&1 &
    redis_pid=$!
    pids+=("$redis_pid")
    for (( i = 0; i < 100; i++ )); do
        [[ $(rcli PING 2>/dev/null) == PONG ]] && break
        kill -0 "$redis_pid" 2>/dev/null || { cat "$tmp/redis/redis.log" >&2; die "redis-server exited at start"; }
        sleep 0.1
    done
    [[ $(rcli PING 2>/dev/null) == PONG ]] || { cat "$tmp/redis/redis.log" >&2; die "redis-server did not answer PING"; }
    redis_url="redis://127.0.0.1:$redis_port/0"
}
rcli() { redis-cli -h 127.0.0.1 -p "$redis_port" "$@"; }

# open_fifo_writer FIFO: opens FIFO for writing on a new descriptor; sets fifo_fd.
open_fifo_writer() {
    exec {fifo_fd}> "$1"
    bench_fds+=("$fifo_fd")
}
close_fifo_writer() {  # FD
    local fd=$1 keep=() f
    exec {fd}>&- 2>/dev/null || true
    for f in "${bench_fds[@]}"; do [[ $f == "$1" ]] || keep+=("$f"); done
    bench_fds=("${keep[@]}")
}

# start_load_client LOG_DIR N [ARGS...]: bench/load_client pinned to the load core, its commands
# through a FIFO (sets lc_pid, lc_fd), report in LOG_DIR/lc.out; waits until every client has
# joined. Returns 1 (and says why) when they cannot. The clients go to $port, or round-robin
# over $lc_ports ("P1,P2,...": several walcast nodes) when that is set.
start_load_client() {
    local log=$1 n=$2 line i to=(--port "$port")
    shift 2
    if [[ -n ${lc_ports:-} ]]; then to=(--ports "$lc_ports"); fi
    rm -f "$log/lc.in"
    mkfifo -m 600 "$log/lc.in"
    "${load_pin[@]}" "$build/bench/load_client" "${to[@]}" --secret "$secret" --clients "$n" --project p1 \
        --tenant acme "$@" < "$log/lc.in" > "$log/lc.out" 2> "$log/lc.err" &
    lc_pid=$!
    pids+=("$lc_pid")
    open_fifo_writer "$log/lc.in"
    lc_fd=$fifo_fd
    line=''
    for (( i = 0; i < 1500; i++ )); do
        line=$(grep -m1 -E '^(ready|failed)' "$log/lc.out" 2>/dev/null || true)
        [[ -n $line ]] && break
        kill -0 "$lc_pid" 2>/dev/null || break
        sleep 0.1
    done
    lc_ready=$line
    if [[ $line != ready* ]]; then
        echo "  load client could not connect all clients: ${line:-no answer}" >&2
        sed -n '/^closed_client/s/^/    | /p' "$log/lc.out" >&2
        sed 's/^/    | /' "$log/lc.err" >&2
        close_fifo_writer "$lc_fd"; lc_fd=
        wait_exit "$lc_pid" 5
        return 1
    fi
    return 0
}
lc_value() { sed -n "s/^$1=//p" "$2" | awk 'NR == 1'; }  # KEY REPORT_FILE
