#!/usr/bin/env bash
# bench.sh: alterego against native ALTER TABLE and pt-online-schema-change, on a local primary
# and replica of one server flavor.
#
#   scripts/bench.sh                      1,000,000 rows, every method, idle and under load
#   scripts/bench.sh --large              5,000,000 rows
#   scripts/bench.sh --rows 100000 --only alterego,copy --no-load
#   scripts/bench.sh --flavor mysql       the same on MySQL 9.7
#   scripts/bench.sh --flavor all         mariadb, mysql and mariadb-11.8 in turn, then side by side
#
# Flavors (--flavor, default mariadb):
#   mariadb       the sandbox (scripts/sandbox.sh up): the host's MariaDB (Debian 12: 10.11)
#   mysql         MySQL 9.7 from the mysql-9.7 root of scripts/server-roots.sh, run with chroot
#   mariadb-11.8  MariaDB 11.8 from the mariadb-11.8 root, likewise
# The roots live under ${ALTEREGO_ROOTS:-$HOME/.cache/alterego/roots} (scripts/server-roots.sh
# builds a missing one). In a root the bench keeps its two servers in /srv/alterego-bench,
# starts them for the run and shuts them down at its end (--keep-servers leaves them running);
# their data stays, so the next run reuses the loaded table.
#
# One run does, in this order (docs/benchmark.md says what is measured and how to read it):
#  1. Installs sysbench, GNU time, the mariadb client and (mariadb) percona-toolkit with
#     apt-get when missing, builds the roots it needs (the flavor's, and mariadb-11.8, whose
#     pt-online-schema-change 3.7.1 the mysql flavor uses too), builds
#     target/release/alterego (cargo build --release) and starts the flavor's primary and
#     replica.
#  2. Loads bench.sbtest1_pristine with sysbench (oltp_write_only prepare), once: a later run
#     with the same row count reuses it. Starts a 100 ms heartbeat, written on the primary
#     and read on the replica, for the replica lag.
#  3. For each ALTER, each condition (idle, then load) and each method (copy, copy_online,
#     inplace, instant, bare_copy (idle only), ptosc, alterego, alterego_client; one the
#     flavor or the ALTER does not have is skipped, with the reason): recreates bench.sbtest1
#     from the pristine copy on both servers and flushes their dirty pages; under load
#     starts the writer (scripts/bench_writer.lua: oltp_write_only's transaction at a fixed
#     rate) and waits out the baseline; runs the method; stops the writer a second later;
#     waits for the replica; checks the data; writes one JSON line.
#  4. The applier's ceiling: alterego with its cut-over postponed while sysbench
#     oltp_write_only runs unthrottled on the table; and the server's own write rates.
#  5. Prints the results table, the ratios and PASS/FAIL per target. The targets are
#     information: the exit status is 1 only when a tool failed, a data check failed or
#     the bench itself broke (2 for a usage error).
# With several flavors (--flavor all, or a list) it runs itself once per flavor, then prints
# the flavors side by side.
#
# Passwords: the tools connect as the dba user over TCP, alterego with ALTEREGO_PASSWORD in
# its environment, the mariadb client and pt-online-schema-change with an option file (mode
# 0600; for pt-osc from the mariadb-11.8 root, one in that root's /tmp); nothing puts the
# password in argv. The harness (resets, checks, heartbeat, sysbench) uses root over the Unix
# socket, which has no password on these servers.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

# ------------------------------------------------------------------- knobs ---

FLAVOR=mariadb
ROWS=1000000
METHODS="copy,copy_online,inplace,instant,bare_copy,ptosc,alterego,alterego_client"
ALTERS="add_column,add_column_index"
CONDITIONS="idle,load"
RATE="${BENCH_RATE:-200}"                  # writer transactions/s, all threads together
WRITER_THREADS="${BENCH_THREADS:-4}"       # writer (and ceiling load) threads
BASELINE_SECS="${BENCH_BASELINE_SECS:-5}"  # writer running before each method starts
CEILING_SECS="${BENCH_CEILING_SECS:-10}"   # unthrottled load in the ceiling measurement
METHOD_TIMEOUT="${BENCH_METHOD_TIMEOUT:-1800}"
ALTEREGO_ARGS="${ALTEREGO_ARGS:-}"         # extra alterego flags, split on whitespace
PTOSC_ARGS="${PTOSC_ARGS:-}"               # extra pt-online-schema-change flags, likewise
CEILING=1
BUILD=1
RELOAD=0
REPLICA_STOPPED=0
KEEP_SERVERS=0
JSON_OUT=""
CHILD_ARGS=()                              # every argument but --flavor and --json

# The two ALTERs; every method runs the same text (INPLACE adds FORCE, see run_tool).
declare -A ALTER_SQL=(
    [add_column]="ADD COLUMN bench_flag INT NOT NULL DEFAULT 0"
    [add_column_index]="ADD COLUMN bench_flag INT NOT NULL DEFAULT 0, ADD INDEX idx_bench_pad (pad)"
)
ALL_METHODS="copy copy_online inplace instant bare_copy ptosc alterego alterego_client"
ALL_FLAVORS="mariadb mysql mariadb-11.8"

ROOTS="${ALTEREGO_ROOTS:-$HOME/.cache/alterego/roots}"
PT_ROOT="$ROOTS/mariadb-11.8"               # pt-online-schema-change 3.7.1 runs from this root
ALTEREGO="$REPO_ROOT/target/release/alterego"
WRITER_LUA="$REPO_ROOT/scripts/bench_writer.lua"
# The checked columns: the original ones, which every method keeps.
AGG="COUNT(*), COALESCE(BIT_XOR(CRC32(CONCAT_WS('#', id, k, c, pad))), 0)"
NOW_US_SQL="CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS SIGNED)"

usage() {
    cat <<EOF
usage: scripts/bench.sh [options]

  --flavor F          the servers: mariadb (the sandbox: the host's MariaDB; default), mysql
                      (MySQL 9.7) or mariadb-11.8 (MariaDB 11.8), both from the roots of
                      scripts/server-roots.sh; or several, comma-separated, or all: one run
                      each, then the flavors side by side
  --rows N            rows in sbtest1 (default 1000000)
  --large             5000000 rows
  --only LIST         methods to run, comma-separated: copy,copy_online,inplace,instant,
                      bare_copy,ptosc,alterego,alterego_client (default all; copy_online is
                      MariaDB 11.2+'s ALGORITHM=COPY, LOCK=NONE; instant applies to add_column
                      only; bare_copy is the copy's work alone, idle only; alterego_client is
                      alterego with --copy-through-client)
  --alters LIST       ALTERs to run: add_column,add_column_index (default both)
  --no-load           idle runs only          --no-idle   runs under load only
  --rate N            writer transactions/s (default 200; env BENCH_RATE)
  --threads N         writer threads (default 4; env BENCH_THREADS)
  --baseline SECS     writer time before each method (default 5)
  --ceiling-secs SECS unthrottled load in the ceiling measurement (default 10)
  --no-ceiling        skip the applier's ceiling and the server's rates
  --json FILE         JSON lines output (default <work directory>/bench-results.jsonl)
  --no-build          use target/release/alterego as it is
  --reload            reload sbtest1_pristine even if one with --rows rows exists
  --replica-stopped   stop the replica's replication during each method and let it catch up
                      after: the primary alone, as if the replica ran on its own machine
                      (no replica CPU on these cores, no lag throttle, no lag measured)
  --keep-servers      mysql, mariadb-11.8: leave their servers running at the end (the
                      mariadb sandbox is always left running)
Environment: ALTEREGO_ARGS, PTOSC_ARGS (extra flags), SANDBOX_DIR, SANDBOX_PORT,
SANDBOX_REPLICA_PORT (which sandbox, for mariadb), BENCH_PORT, BENCH_REPLICA_PORT (the
mysql and mariadb-11.8 servers' ports; defaults 23316/23317 and 23326/23327), ALTEREGO_ROOTS
(where the roots are), BENCH_METHOD_TIMEOUT (seconds per method, 1800).
EOF
}

log()  { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*"; }
warn() { printf '[bench %(%H:%M:%S)T] WARNING: %s\n' -1 "$*" >&2; }
die()  { printf '[bench] ERROR: %s\n' "$*" >&2; exit 1; }
usage_error() { printf 'bench.sh: %s (see scripts/bench.sh --help)\n' "$*" >&2; exit 2; }

now_us() { echo "${EPOCHREALTIME//[.,]/}"; }
# awk arithmetic on already-validated numbers; prints "null" for a missing operand.
calc() { awk -v a="$2" -v b="${3:-0}" -v c="${4:-0}" "BEGIN { if (a == \"\" || a == \"null\" || b == \"null\") print \"null\"; else $1 }"; }
us_to_s()  { calc 'printf "%.2f", a / 1e6' "$1"; }
ratio()    { calc 'if (b + 0 == 0) print "null"; else printf "%.2f", a / b' "$1" "$2"; }
is_int()   { [[ $1 =~ ^[0-9]+$ ]]; }
positive() { is_int "$1" && (($1 > 0)); }

parse_args() {
    while (($#)); do
        case $1 in
            --rows|--only|--alters|--rate|--threads|--baseline|--ceiling-secs|--json|--flavor)
                (($# >= 2)) || usage_error "$1 needs a value" ;;
        esac
        # What one flavor's run gets when several are asked for.
        case $1 in
            --flavor|--json) ;;
            --flavor=*|--json=*) ;;
            --rows|--only|--alters|--rate|--threads|--baseline|--ceiling-secs) CHILD_ARGS+=("$1" "$2") ;;
            *) CHILD_ARGS+=("$1") ;;
        esac
        case $1 in
            --flavor) FLAVOR=${2:-}; shift ;;
            --flavor=*) FLAVOR=${1#*=} ;;
            --rows) ROWS=${2:-}; shift ;;
            --rows=*) ROWS=${1#*=} ;;
            --large) ROWS=5000000 ;;
            --only) METHODS=${2:-}; shift ;;
            --only=*) METHODS=${1#*=} ;;
            --alters) ALTERS=${2:-}; shift ;;
            --alters=*) ALTERS=${1#*=} ;;
            --no-load) CONDITIONS=${CONDITIONS/load/}; CONDITIONS=${CONDITIONS//,/} ;;
            --no-idle) CONDITIONS=${CONDITIONS/idle/}; CONDITIONS=${CONDITIONS//,/} ;;
            --rate) RATE=${2:-}; shift ;;
            --rate=*) RATE=${1#*=} ;;
            --threads) WRITER_THREADS=${2:-}; shift ;;
            --threads=*) WRITER_THREADS=${1#*=} ;;
            --baseline) BASELINE_SECS=${2:-}; shift ;;
            --baseline=*) BASELINE_SECS=${1#*=} ;;
            --ceiling-secs) CEILING_SECS=${2:-}; shift ;;
            --ceiling-secs=*) CEILING_SECS=${1#*=} ;;
            --no-ceiling) CEILING=0 ;;
            --json) JSON_OUT=${2:-}; shift ;;
            --json=*) JSON_OUT=${1#*=} ;;
            --no-build) BUILD=0 ;;
            --reload) RELOAD=1 ;;
            --replica-stopped) REPLICA_STOPPED=1 ;;
            --keep-servers) KEEP_SERVERS=1 ;;
            -h|--help) usage; exit 0 ;;
            *) usage_error "unknown argument: $1" ;;
        esac
        shift
    done
    [[ $FLAVOR == all ]] && FLAVOR=${ALL_FLAVORS// /,}
    local f
    IFS=', ' read -r -a FLAVOR_LIST <<<"$FLAVOR"
    ((${#FLAVOR_LIST[@]})) || usage_error "--flavor needs a flavor"
    for f in "${FLAVOR_LIST[@]}"; do
        [[ " $ALL_FLAVORS " == *" $f "* ]] || usage_error "unknown flavor '$f' (flavors: ${ALL_FLAVORS// /, }, or all)"
    done
    FLAVOR=${FLAVOR_LIST[0]}
    local n
    for n in "$ROWS" "$RATE" "$WRITER_THREADS" "$BASELINE_SECS" "$CEILING_SECS" "$METHOD_TIMEOUT"; do
        positive "$n" || usage_error "rows, rates, threads and seconds must be positive integers (got '$n')"
    done
    local m a
    IFS=', ' read -r -a METHOD_LIST <<<"$METHODS"
    for m in "${METHOD_LIST[@]}"; do
        [[ " $ALL_METHODS " == *" $m "* ]] || usage_error "unknown method '$m' (methods: $ALL_METHODS)"
    done
    # Run the methods in the canonical order, so that COPY (the reference) comes first.
    local ordered=()
    for m in $ALL_METHODS; do
        if [[ " ${METHOD_LIST[*]} " == *" $m "* ]]; then ordered+=("$m"); fi
    done
    METHOD_LIST=("${ordered[@]}")
    IFS=', ' read -r -a ALTER_LIST <<<"$ALTERS"
    for a in "${ALTER_LIST[@]}"; do
        [[ -n ${ALTER_SQL[$a]:-} ]] || usage_error "unknown ALTER '$a' (ALTERs: ${!ALTER_SQL[*]})"
    done
    CONDITION_LIST=()
    if [[ $CONDITIONS == *idle* ]]; then CONDITION_LIST+=(idle); fi
    if [[ $CONDITIONS == *load* ]]; then CONDITION_LIST+=(load); fi
    # The ceiling is alterego's; --only without alterego skips it.
    if [[ " ${METHOD_LIST[*]} " != *" alterego "* ]]; then CEILING=0; fi
    ((${#METHOD_LIST[@]} && ${#ALTER_LIST[@]} && ${#CONDITION_LIST[@]})) || ((CEILING)) ||
        usage_error "nothing to run"
    read -r -a ALTEREGO_EXTRA <<<"$ALTEREGO_ARGS"
    read -r -a PTOSC_EXTRA <<<"$PTOSC_ARGS"
    # The lag target is alterego's own --max-lag-millis.
    MAX_LAG_MS=1500
    if [[ " $ALTEREGO_ARGS " =~ [[:space:]]-?-max-lag-millis[=[:space:]]([0-9]+) ]]; then
        MAX_LAG_MS=${BASH_REMATCH[1]}
    fi
}

# ------------------------------------------------------------------- setup ---

wants() { [[ " ${METHOD_LIST[*]} " == *" $1 "* ]]; }

# sysbench, GNU time (for the peak RSS) and the mariadb client, from Debian's packages when
# missing, as sandbox.sh installs mariadb; and, with scripts/server-roots.sh, the roots this
# run needs. pt-online-schema-change: on mariadb the host's (percona-toolkit; Debian 12's is
# 3.2.1), as before; on mysql and mariadb-11.8 3.7.1 from the mariadb-11.8 root, which knows
# MySQL 8.4+'s statements. (3.7.1 does not work on Debian's MariaDB 10.11: it takes a server for
# MariaDB only when version_comment says so, which Debian's does not ("Debian 12"), and then
# sends it MySQL's SHOW REPLICAS and SHOW BINARY LOG STATUS.) The roots' servers and their
# pt-osc run with chroot, which needs root.
ensure_tools() {
    local pkgs=() sudo=() roots=()
    command -v sysbench >/dev/null 2>&1 || pkgs+=(sysbench)
    [[ -x /usr/bin/time ]] || pkgs+=(time)
    if [[ $FLAVOR == mariadb ]]; then
        PTOSC_CMD=(pt-online-schema-change)
        if wants ptosc; then command -v pt-online-schema-change >/dev/null 2>&1 || pkgs+=(percona-toolkit); fi
    else
        ((EUID == 0)) || die "the $FLAVOR flavor runs its servers from a Debian root with chroot, which needs root: run as root"
        command -v mariadb >/dev/null 2>&1 || pkgs+=(mariadb-client)
        roots+=("$FLAVOR")
        if wants ptosc && [[ $FLAVOR != mariadb-11.8 ]]; then roots+=(mariadb-11.8); fi
        PTOSC_CMD=(chroot "$PT_ROOT" pt-online-schema-change)
    fi
    if ((${#pkgs[@]})); then
        command -v apt-get >/dev/null 2>&1 || die "missing ${pkgs[*]} and apt-get is unavailable; install them yourself"
        if ((EUID != 0)); then
            command -v sudo >/dev/null 2>&1 || die "missing ${pkgs[*]}; run as root or install sudo"
            sudo=(sudo)
        fi
        log "installing ${pkgs[*]} with apt-get"
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${pkgs[@]}"
    fi
    if ((${#roots[@]})); then
        ALTEREGO_ROOTS="$ROOTS" scripts/server-roots.sh "${roots[@]}" || die "scripts/server-roots.sh ${roots[*]} failed"
    fi
}

# The commit measured: written beside the binary by the build (with "+ uncommitted changes in
# src/" when the build had some), so that a --no-build run (or the later flavors of --flavor
# all) names the binary's commit rather than the checkout's; "unknown" for a binary something
# else built since. The target directory may be shared: the summary says if the binary changed
# during the run.
build_alterego() {
    if ((BUILD)); then
        command -v cargo >/dev/null 2>&1 || die "cargo not found; install Rust from https://rustup.rs"
        log "building alterego (cargo build --release)"
        local commit
        commit="$(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
        git -C "$REPO_ROOT" diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null ||
            commit+=" + uncommitted changes in src/"
        cargo build --release --quiet
        echo "$commit" >"$ALTEREGO.commit"
    fi
    [[ -x $ALTEREGO ]] || die "$ALTEREGO was not built"
    ALTEREGO_COMMIT="unknown (target/release/alterego was not built by bench.sh)"
    if [[ -f $ALTEREGO.commit && ! $ALTEREGO -nt $ALTEREGO.commit ]]; then ALTEREGO_COMMIT="$(<"$ALTEREGO.commit")"; fi
    ALTEREGO_MTIME="$(stat -c %Y "$ALTEREGO")"
}

# The primary and the replica of the flavor, then what every flavor shares. Each start_servers_*
# sets SB (the servers' directory as this script sees it: pid files, error logs, the work
# directory), the SANDBOX_* connection variables, CLIENT and IS_MYSQL.
start_servers() {
    case $FLAVOR in
        mariadb) start_servers_mariadb ;;
        mysql) start_servers_mysql ;;
        mariadb-11.8) start_servers_mariadb_11_8 ;;
    esac
    WORK="$SB/bench"                            # logs of the last run, one directory per measurement
    rm -rf "$WORK"
    mkdir -p "$WORK"
    JSON_OUT="${JSON_OUT:-$WORK/bench-results.jsonl}"
    : >"$JSON_OUT"
    # The dba credentials for the mariadb client and pt-online-schema-change (F=).
    CNF="$WORK/dba.cnf"
    write_cnf "$CNF"
    if ((IS_MYSQL)); then warm_logins; fi
    SERVER_VERSION="$(sql_primary -e 'SELECT VERSION()')"
    # MariaDB 11.2+ runs ALGORITHM=COPY online unless told otherwise (MDEV-16329).
    ONLINE_COPY=0
    if ((!IS_MYSQL)) && [[ $SERVER_VERSION =~ ^([0-9]+)\.([0-9]+) ]] &&
        ((BASH_REMATCH[1] > 11 || (BASH_REMATCH[1] == 11 && BASH_REMATCH[2] >= 2))); then
        ONLINE_COPY=1
    fi
    COPY_LOCK=""
    ((ONLINE_COPY)) && COPY_LOCK=", LOCK=SHARED"
    PTOSC_VERSION=none
    if wants ptosc; then
        if [[ ${PTOSC_CMD[0]} == chroot ]]; then
            # Its option file must be inside the root it runs in.
            mkdir -p "$PT_ROOT/tmp"
            PT_TMP="$(mktemp -d "$PT_ROOT/tmp/alterego-bench.XXXXXX")"
            write_cnf "$PT_TMP/dba.cnf"
            PT_CNF="/tmp/${PT_TMP##*/}/dba.cnf"
        else
            PT_CNF="$CNF"
        fi
        PTOSC_VERSION="$("${PTOSC_CMD[@]}" --version 2>/dev/null | awk 'NR == 1 { print $NF }')"
        if [[ ${PTOSC_CMD[0]} == chroot ]]; then PTOSC_VERSION+=" (mariadb-11.8 root)"; else PTOSC_VERSION+=" (the host's)"; fi
    fi
    CLK_TCK="$(getconf CLK_TCK)"
    # Every deadlock into the primary's error log, for the per-measurement count; restored
    # at the end.
    PRINT_DEADLOCKS="$(sql_primary -e 'SELECT @@GLOBAL.innodb_print_all_deadlocks')"
    sql_primary -e "SET GLOBAL innodb_print_all_deadlocks = ON"
}

write_cnf() {  # FILE: the dba user's [client] option file, mode 0600
    (umask 077 && printf '[client]\nuser=%s\npassword=%s\nhost=%s\nport=%s\n' \
        "$SANDBOX_USER" "$SANDBOX_PASSWORD" "$SANDBOX_HOST" "$SANDBOX_PORT" >"$1")
}

# MySQL's caching_sha2_password: without TLS (these servers run without it, as the tests do)
# the host's mariadb client cannot do the full authentication over TCP; one login over the
# socket puts the dba user in the server's cache, after which TCP logins work. (alterego and
# pt-online-schema-change 3.7.1 do the full authentication themselves.) After each start.
warm_logins() {
    local sock cnf="$WORK/dba-socket.cnf"
    # Without host and port: the client takes a host other than localhost over --socket.
    (umask 077 && printf '[client]\nuser=%s\npassword=%s\n' "$SANDBOX_USER" "$SANDBOX_PASSWORD" >"$cnf")
    for sock in "$SANDBOX_SOCKET" "$SANDBOX_REPLICA_SOCKET"; do
        "$CLIENT" --defaults-file="$cnf" --socket="$sock" -e 'SELECT 1' >/dev/null ||
            { rm -f "$cnf"; die "the dba user cannot log in over $sock"; }
    done
    rm -f "$cnf"
}

# mariadb: the sandbox of scripts/sandbox.sh, the host's server (MariaDB 10.11 on Debian 12).
start_servers_mariadb() {
    SB="${SANDBOX_DIR:-$REPO_ROOT/.sandbox}"
    log "starting the sandbox (scripts/sandbox.sh up, $SB)"
    mkdir -p "$SB"
    scripts/sandbox.sh up >"$SB/bench-sandbox-up.log" 2>&1 ||
        { cat "$SB/bench-sandbox-up.log" >&2; die "scripts/sandbox.sh up failed"; }
    set -a
    # shellcheck source=/dev/null
    . "$SB/env"
    set +a
    CLIENT="${SANDBOX_CLIENT:-mariadb}"
    IS_MYSQL=0
    [[ ${SANDBOX_FLAVOR:-mariadb} == mariadb ]] || IS_MYSQL=1   # a host with MySQL's mysqld
    SERVER_SOURCE="the host's server, scripts/sandbox.sh"
}

# mysql: MySQL 9.7 from the mysql-9.7 root. No TLS and no X protocol, as the tests run it;
# GTIDs on; a redo log of 512 MB like the sandbox's (innodb_redo_log_capacity replaces
# innodb_log_file_size). Otherwise MySQL's defaults: sync_binlog=1, a replica applying with 4
# workers (replica_parallel_workers), utf8mb4_0900_ai_ci.
start_servers_mysql() {
    ROOT="$ROOTS/mysql-9.7"
    SERVER_BIN=/usr/sbin/mysqld
    IS_MYSQL=1
    SERVER_ARGS=(--mysqlx=OFF --tls-version= --gtid-mode=ON --enforce-gtid-consistency=ON
        --log-replica-updates=ON --innodb-redo-log-capacity=512M)
    start_rooted_pair "${BENCH_PORT:-23316}" "${BENCH_REPLICA_PORT:-23317}"
}

# mariadb-11.8: MariaDB 11.8 from the mariadb-11.8 root, with the sandbox's settings
# (utf8mb4_general_ci rather than 11.8's utf8mb4_uca1400_ai_ci, a 512 MB redo log) and no TLS
# (11.4+ would make up a certificate), as the tests run it.
start_servers_mariadb_11_8() {
    ROOT="$ROOTS/mariadb-11.8"
    SERVER_BIN=/usr/sbin/mariadbd
    IS_MYSQL=0
    SERVER_ARGS=(--skip-ssl --log-slave-updates --collation-server=utf8mb4_general_ci
        --innodb-log-file-size=512M)
    start_rooted_pair "${BENCH_PORT:-23326}" "${BENCH_REPLICA_PORT:-23327}"
}

# A primary and a replica run with chroot in ROOT, their files in the root's RSRV: the data
# directories primary/ and replica/, and <who>.sock, .pid, .err and .tmp/. The same options as
# the sandbox's (scripts/sandbox.sh) plus SERVER_ARGS; dba/sandbox with all privileges and
# repl/sandbox; GTID replication. Servers already running there are used as they are.
RSRV=/srv/alterego-bench      # as the servers see it
ROOTED_PIDS=()
start_rooted_pair() {  # PRIMARY_PORT REPLICA_PORT
    [[ -x $ROOT$SERVER_BIN ]] || die "no $SERVER_BIN in $ROOT: scripts/server-roots.sh builds the root"
    SB="$ROOT$RSRV"
    CLIENT="$(command -v mariadb)" || die "no mariadb client on this machine (apt-get install mariadb-client)"
    SANDBOX_HOST=127.0.0.1 SANDBOX_PORT=$1 SANDBOX_REPLICA_PORT=$2
    SANDBOX_SOCKET="$SB/primary.sock" SANDBOX_REPLICA_SOCKET="$SB/replica.sock"
    SANDBOX_USER=dba SANDBOX_PASSWORD=sandbox
    SERVER_SOURCE="$({ grep -E '^(mysql|mariadb)-server' "$ROOT/alterego-root.txt" 2>/dev/null || echo "$SERVER_BIN"; } | head -n1 | tr '\t' ' ') in ${ROOT/#$HOME/\~}"
    mkdir -p "$SB"
    log "starting $FLAVOR's primary and replica in $ROOT (chroot; files in $SB)"
    start_rooted_server primary "$SANDBOX_PORT" 1
    # dba@localhost on MariaDB, whose anonymous ''@localhost would otherwise take socket logins;
    # not on MySQL, which has none, so that warm_logins' socket login is dba@'%''s.
    local local_dba="DROP USER IF EXISTS '$SANDBOX_USER'@'localhost';"
    ((IS_MYSQL)) || local_dba="DROP USER IF EXISTS ''@'localhost'; DROP USER IF EXISTS ''@'$(hostname)';
CREATE USER IF NOT EXISTS '$SANDBOX_USER'@'localhost' IDENTIFIED BY '$SANDBOX_PASSWORD';
GRANT ALL PRIVILEGES ON *.* TO '$SANDBOX_USER'@'localhost' WITH GRANT OPTION;"
    sql_primary <<EOF
CREATE USER IF NOT EXISTS '$SANDBOX_USER'@'%' IDENTIFIED BY '$SANDBOX_PASSWORD';
GRANT ALL PRIVILEGES ON *.* TO '$SANDBOX_USER'@'%' WITH GRANT OPTION;
$local_dba
CREATE USER IF NOT EXISTS 'repl'@'%' IDENTIFIED BY 'sandbox';
GRANT REPLICATION SLAVE ON *.* TO 'repl'@'%';
EOF
    start_rooted_server replica "$SANDBOX_REPLICA_PORT" 2
    # The replica starts from the primary's first binlog (its users included), once; a restarted
    # replica resumes where it was.
    if [[ -z "$(replica_status_field '(Slave|Replica)_IO_Running')" ]]; then
        if ((IS_MYSQL)); then
            sql_replica -e "CHANGE REPLICATION SOURCE TO SOURCE_HOST='127.0.0.1', SOURCE_PORT=$SANDBOX_PORT,
                SOURCE_USER='repl', SOURCE_PASSWORD='sandbox', SOURCE_AUTO_POSITION=1, SOURCE_SSL=0,
                GET_SOURCE_PUBLIC_KEY=1; START REPLICA"
        else
            sql_replica -e "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=$SANDBOX_PORT,
                MASTER_USER='repl', MASTER_PASSWORD='sandbox', MASTER_USE_GTID=slave_pos, MASTER_SSL=0;
                START REPLICA"
        fi
    else
        sql_replica -e "START REPLICA" 2>/dev/null || true
    fi
    local i io=""
    for ((i = 0; i < 120; i++)); do
        io="$(replica_status_field '(Slave|Replica)_IO_Running')"
        [[ $io == Yes ]] && break
        sleep 0.5
    done
    [[ $io == Yes ]] || { sql_replica --column-names -e 'SHOW REPLICA STATUS\G' >&2 || true; die "the replica's IO thread is not running after 60 s"; }
    wait_replica
    log "  $FLAVOR: primary 127.0.0.1:$SANDBOX_PORT, replica 127.0.0.1:$SANDBOX_REPLICA_PORT, replicating ($SERVER_SOURCE)"
}

replica_status_field() {  # REGEX: that field of SHOW REPLICA STATUS ('' when not configured)
    sql_replica --column-names -e 'SHOW REPLICA STATUS\G' 2>/dev/null | sed -n -E "s/^ *$1: //p" | head -n1
}

rooted_pid() {  # WHO: the pid of its server, if it runs
    local pid
    pid="$(tr -dc '0-9' 2>/dev/null <"$SB/$1.pid" || true)"
    if [[ -n $pid && -r /proc/$pid/cmdline ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -Eq 'mariadbd|mysqld'; then
        echo "$pid"
    fi
}

start_rooted_server() {  # WHO PORT SERVER_ID
    local who=$1 port=$2 id=$3 sql=(sql_primary) i
    [[ $who == replica ]] && sql=(sql_replica)
    if [[ -n "$(rooted_pid "$who")" ]] && "${sql[@]}" -e 'SELECT 1' >/dev/null 2>&1; then
        log "  $who: already running (pid $(rooted_pid "$who"))"
        ROOTED_PIDS+=("$(rooted_pid "$who")")
        return 0
    fi
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        die "port $port (for the $who) is in use; BENCH_PORT and BENCH_REPLICA_PORT choose others"
    fi
    if [[ ! -d $SB/$who/mysql ]]; then
        log "  initializing the $who's data directory"
        rm -rf "${SB:?}/$who"
        if ((IS_MYSQL)); then
            chroot "$ROOT" "$SERVER_BIN" --no-defaults --initialize-insecure --user=root \
                --datadir="$RSRV/$who" --log-error="$RSRV/$who-install.log" >/dev/null 2>&1 ||
                { tail -n 20 "$SB/$who-install.log" >&2; die "mysqld --initialize-insecure failed for the $who"; }
        else
            chroot "$ROOT" mariadb-install-db --no-defaults --auth-root-authentication-method=normal \
                --skip-test-db --user=root --datadir="$RSRV/$who" >"$SB/$who-install.log" 2>&1 ||
                { tail -n 20 "$SB/$who-install.log" >&2; die "mariadb-install-db failed for the $who"; }
        fi
    fi
    rm -f "$SB/$who.sock" "$SB/$who.pid"
    mkdir -p "$SB/$who.tmp"
    local args=(
        --no-defaults --user=root
        --datadir="$RSRV/$who" --socket="$RSRV/$who.sock" --pid-file="$RSRV/$who.pid"
        --log-error="$RSRV/$who.err" --tmpdir="$RSRV/$who.tmp"
        --port="$port" --bind-address=127.0.0.1 --server-id="$id"
        --log-bin=mysql-bin --relay-log=relay-bin --binlog-format=ROW --binlog-row-image=FULL
        --innodb-buffer-pool-size=1G --max-connections=500 --skip-name-resolve
        --character-set-server=utf8mb4 --report-host=127.0.0.1 --report-port="$port"
        "${SERVER_ARGS[@]}"
    )
    # setsid: out of this script's process group, so that a Ctrl-C reaches the bench only; the
    # bench shuts the servers down itself at its end.
    setsid chroot "$ROOT" "$SERVER_BIN" "${args[@]}" </dev/null >>"$SB/$who.err" 2>&1 &
    for ((i = 0; i < 240; i++)); do
        if [[ -n "$(rooted_pid "$who")" ]] && "${sql[@]}" -e 'SELECT 1' >/dev/null 2>&1; then
            ROOTED_PIDS+=("$(rooted_pid "$who")")
            log "  $who: up on port $port (pid $(rooted_pid "$who"))"
            return 0
        fi
        sleep 0.5
    done
    tail -n 30 "$SB/$who.err" >&2 || true
    die "the $who did not answer within 120 s (log: $SB/$who.err)"
}

# At the end of a run (unless --keep-servers): SHUTDOWN, then SIGTERM to one still running 120 s
# later.
# shellcheck disable=SC2317 # called from the EXIT trap
stop_rooted_servers() {
    ((${#ROOTED_PIDS[@]})) || return 0
    sql_replica -e 'SHUTDOWN' >/dev/null 2>&1 || true
    sql_primary -e 'SHUTDOWN' >/dev/null 2>&1 || true
    local pid i
    for pid in "${ROOTED_PIDS[@]}"; do
        for ((i = 0; i < 240; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
        if kill -0 "$pid" 2>/dev/null; then
            warn "server pid $pid still runs 120 s after SHUTDOWN: SIGTERM"
            kill -TERM "$pid" 2>/dev/null || true
        fi
    done
    ROOTED_PIDS=()
    log "stopped $FLAVOR's servers (their data stays in $SB; --keep-servers leaves them running)"
}

# Harness SQL: root over the Unix socket of the primary or the replica.
sql_primary() { "$CLIENT" --no-defaults -uroot --socket="$SANDBOX_SOCKET" --batch --skip-column-names "$@"; }
sql_replica() { "$CLIENT" --no-defaults -uroot --socket="$SANDBOX_REPLICA_SOCKET" --batch --skip-column-names "$@"; }

# Until the replica has applied everything the primary has binlogged so far.
wait_replica() {
    local pos ok
    if ((!IS_MYSQL)); then
        pos="$(sql_primary -e 'SELECT @@GLOBAL.gtid_binlog_pos')"
        [[ -z $pos ]] && return 0
        ok="$(sql_replica -e "SELECT MASTER_GTID_WAIT('$pos', 1800)")"
    else
        pos="$(sql_primary -e 'SELECT @@GLOBAL.gtid_executed' | tr -d '\n')"
        ok="$(sql_replica -e "SELECT WAIT_FOR_EXECUTED_GTID_SET('$pos', 1800)")"
    fi
    [[ $ok == 0 ]] || die "the replica did not catch up with the primary within 30 minutes"
}

# --replica-stopped: replication off until the method ends, and the primary no longer lists
# the replica (SHOW SLAVE HOSTS; MySQL: SHOW REPLICAS), so that no tool finds it to watch.
stop_replication() {
    local hosts='SHOW SLAVE HOSTS'
    ((IS_MYSQL)) && hosts='SHOW REPLICAS'
    sql_replica -e 'STOP REPLICA'
    local i
    for ((i = 0; i < 100; i++)); do
        [[ -z "$(sql_primary -e "$hosts")" ]] && return 0
        sleep 0.1
    done
    die "the primary still lists its replica 10 s after STOP REPLICA"
}

table_agg() {  # primary|replica TABLE -> "count checksum"
    "sql_$1" -e "SELECT $AGG FROM bench.$2" | tr '\t' ' '
}

# CPU accounting, in clock ticks: "machine_user servers_total servers_user writer_user".
# servers_total (user + system of both server processes) is what a method costs the
# database. The rest of the machine's user time, less the tool's and the writer's, is
# "other": the heartbeat loops and whatever else runs on the machine, which makes the
# numbers noisy. (System time is left out of "other" because the kernel's I/O work for the
# servers, journal commits and block I/O, is charged to kernel threads, not to the servers.)
cpu_snapshot() {
    local who pid u s st=0 su=0 wu=0
    for who in primary replica; do
        pid="$(tr -dc '0-9' <"$SB/$who.pid" 2>/dev/null || true)"
        if [[ -n $pid && -r /proc/$pid/stat ]]; then
            read -r u s < <(awk '{ print $14, $15 }' "/proc/$pid/stat")
            st=$((st + u + s)); su=$((su + u))
        fi
    done
    if [[ -n $WRITER_PID && -r /proc/$WRITER_PID/stat ]]; then
        wu="$(awk '{ print $14 }' "/proc/$WRITER_PID/stat")"
    fi
    echo "$(awk '/^cpu / { print $2 + $3; exit }' /proc/stat) $st $su $wu"
}
ticks_to_s() { calc 'printf "%.1f", a / b' "$1" "$CLK_TCK"; }

# sbtest1_pristine with ROWS rows on both servers, plus the journal and heartbeat tables.
prepare_data() {
    sql_primary <<'EOF'
CREATE DATABASE IF NOT EXISTS bench;
CREATE TABLE IF NOT EXISTS bench.bench_journal (
  id INT NOT NULL PRIMARY KEY, k INT NULL, c CHAR(120) NULL, pad CHAR(60) NULL) ENGINE=InnoDB;
CREATE TABLE IF NOT EXISTS bench.bench_heartbeat (id INT NOT NULL PRIMARY KEY, ts BIGINT NOT NULL) ENGINE=InnoDB;
INSERT IGNORE INTO bench.bench_heartbeat VALUES (1, 0);
EOF
    wait_replica
    local have="" replica_agg=""
    if ((!RELOAD)); then
        have="$(sql_primary -e 'SELECT COUNT(*) FROM bench.sbtest1_pristine' 2>/dev/null || true)"
    fi
    if [[ $have == "$ROWS" ]]; then
        PRISTINE_AGG="$(table_agg primary sbtest1_pristine)"
        replica_agg="$(table_agg replica sbtest1_pristine 2>/dev/null || true)"
    fi
    if [[ $have == "$ROWS" && $replica_agg == "$PRISTINE_AGG" ]]; then
        log "reusing bench.sbtest1_pristine ($ROWS rows; --reload loads it again)"
        return 0
    fi
    log "loading $ROWS rows with sysbench oltp_write_only prepare (log: $WORK/prepare.log)"
    local t0
    t0=$(now_us)
    sql_primary -e "DROP TABLE IF EXISTS bench.sbtest1, bench.sbtest1_pristine"
    sysbench oltp_write_only --db-driver=mysql --mysql-socket="$SANDBOX_SOCKET" --mysql-user=root \
        --mysql-db=bench --tables=1 --table-size="$ROWS" prepare >"$WORK/prepare.log" 2>&1 ||
        { tail -n 20 "$WORK/prepare.log" >&2; die "sysbench prepare failed"; }
    sql_primary -e "RENAME TABLE bench.sbtest1 TO bench.sbtest1_pristine"
    wait_replica
    PRISTINE_AGG="$(table_agg primary sbtest1_pristine)"
    [[ "$(table_agg replica sbtest1_pristine)" == "$PRISTINE_AGG" ]] ||
        die "sbtest1_pristine differs between the primary and the replica"
    log "loaded in $(us_to_s $(($(now_us) - t0))) s (primary and replica)"
}

# Recreates bench.sbtest1 from the pristine copy, empties the journal and removes every
# helper table the tools leave (_sbtest1_gho/_ghc/_ghk/_del: alterego, _new/_old: pt-osc).
# Run on each server on its own, outside the binlog, both at once: a replicated 1M-row
# INSERT ... SELECT would double the time and put 250 MB in the binlog for each run.
reset_table() {
    local stmt p r
    stmt="SET SESSION sql_log_bin = 0;
DROP TABLE IF EXISTS bench.sbtest1, bench._sbtest1_gho, bench._sbtest1_ghc, bench._sbtest1_ghk,
                     bench._sbtest1_del, bench._sbtest1_new, bench._sbtest1_old;
CREATE TABLE bench.sbtest1 LIKE bench.sbtest1_pristine;
INSERT INTO bench.sbtest1 SELECT * FROM bench.sbtest1_pristine;
TRUNCATE TABLE bench.bench_journal;"
    wait_replica
    sql_primary <<<"$stmt" & p=$!
    sql_replica <<<"$stmt" & r=$!
    wait "$p" || die "resetting bench.sbtest1 on the primary failed"
    wait "$r" || die "resetting bench.sbtest1 on the replica failed"
    flush_dirty_pages
}

# Writes both servers' dirty pages to disk, so that every method starts from a clean buffer
# pool. A reset leaves the new sbtest1 dirty on both (about 250 MB at 1M rows), which InnoDB
# would otherwise write out during the method, at innodb_io_capacity (200 by default), or
# page by page as it evicts them for the method's own pages once the pool is full: the later
# measurements of a run were slowed by what earlier ones left. Takes a few seconds.
FLUSH_SAVED=()   # per server: "io_capacity io_capacity_max max_dirty_pages_pct"
flush_dirty_pages() {
    local who i dirty settings
    for who in primary replica; do
        settings="$("sql_$who" -e "SELECT @@innodb_io_capacity, @@innodb_io_capacity_max, @@innodb_max_dirty_pages_pct")"
        FLUSH_SAVED+=("$who $settings")
        "sql_$who" -e "SET GLOBAL innodb_io_capacity_max = 40000, GLOBAL innodb_io_capacity = 20000,
                       GLOBAL innodb_max_dirty_pages_pct = 0"
    done
    for ((i = 0; i < 240; i++)); do
        dirty=0
        for who in primary replica; do
            dirty=$((dirty + $("sql_$who" -e "SHOW GLOBAL STATUS LIKE 'Innodb_buffer_pool_pages_dirty'" | awk '{ print $2 }')))
        done
        ((dirty < 200)) && break
        sleep 0.25
    done
    ((dirty < 200)) || warn "$dirty pages still dirty after 60 s; measuring anyway"
    restore_flushing
}
restore_flushing() {
    local saved who cap cap_max pct
    for saved in "${FLUSH_SAVED[@]}"; do
        read -r who cap cap_max pct <<<"$saved"
        "sql_$who" -e "SET GLOBAL innodb_max_dirty_pages_pct = $pct, GLOBAL innodb_io_capacity = $cap,
                       GLOBAL innodb_io_capacity_max = $cap_max" || warn "could not restore the $who's page flushing settings"
    done
    FLUSH_SAVED=()
}

# Binlogs of earlier runs are of no use and a 5M-row run writes gigabytes of them.
purge_binlogs() {
    sql_primary -e "FLUSH BINARY LOGS; PURGE BINARY LOGS BEFORE NOW()" >/dev/null 2>&1 || true
    sql_replica -e "FLUSH BINARY LOGS; PURGE BINARY LOGS BEFORE NOW()" >/dev/null 2>&1 || true
}

# ------------------------------------------------------ heartbeat and writer ---

# Every 100 ms the primary stamps its clock into bench_heartbeat, and the replica reads
# "now, now - stamp" (microseconds). Both servers run on this machine, so they share the
# clock; a lag includes up to one interval (100 ms).
HB_STOP=""; HB_LOG=""; HB_PIDS=()
start_heartbeat() {
    HB_STOP="$WORK/heartbeat.stop"; HB_LOG="$WORK/heartbeat.log"
    rm -f "$HB_STOP"
    { while [[ ! -e $HB_STOP ]]; do
          echo "UPDATE bench.bench_heartbeat SET ts = $NOW_US_SQL WHERE id = 1;"
          sleep 0.1
      done | sql_primary; } >"$WORK/heartbeat-writer.log" 2>&1 &
    HB_PIDS+=($!)
    { while [[ ! -e $HB_STOP ]]; do
          echo "SELECT $NOW_US_SQL, $NOW_US_SQL - ts FROM bench.bench_heartbeat WHERE id = 1;"
          sleep 0.1
      done | sql_replica --unbuffered; } >"$HB_LOG" 2>&1 &
    HB_PIDS+=($!)
}
stop_heartbeat() {
    [[ -n $HB_STOP ]] && touch "$HB_STOP"
    local p
    for p in "${HB_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    HB_PIDS=()
}
max_lag_ms() {  # FROM_US TO_US: the highest replica lag read in that window
    awk -v a="$1" -v b="$2" '$1 >= a && $1 <= b && $2 ~ /^-?[0-9]+$/ { if ($2 > m) m = $2 }
        END { printf "%d\n", m / 1000 }' "$HB_LOG"
}

# The writer (scripts/bench_writer.lua): WRITER_THREADS threads, RATE transactions/s in
# all, on sbtest1 as root over the socket; one log line per transaction in DIR/writer.N.
WRITER_PID=""; WRITER_STOP=""
start_writer() {  # DIR
    WRITER_STOP="$1/writer.stop"
    rm -f "$WRITER_STOP"
    sysbench "$WRITER_LUA" --threads="$WRITER_THREADS" --time=0 --db-driver=mysql \
        --mysql-socket="$SANDBOX_SOCKET" --mysql-user=root --mysql-db=bench \
        --mysql-ignore-errors=all --report-interval=1 --percentile=99 \
        --writer_rate="$RATE" --table_size="$ROWS" --stop_file="$WRITER_STOP" \
        --out="$1/writer" --max_seconds=$((METHOD_TIMEOUT + 900)) run >"$1/sysbench-writer.log" 2>&1 &
    WRITER_PID=$!
}
stop_writer() {
    [[ -n $WRITER_PID ]] || return 0
    touch "$WRITER_STOP"
    local rc=0
    wait "$WRITER_PID" || rc=$?
    WRITER_PID=""
    return "$rc"
}

# Writer transactions due in [FROM, TO): "count errors p99_ms max_ms", latency measured
# from when each was due (see bench_writer.lua).
writer_window() {  # DIR FROM_US TO_US
    cat "$1"/writer.[0-9]* 2>/dev/null |
        awk -v a="$2" -v b="$3" '$1 >= a && $1 < b { if ($4 == "ok") print ($3 - $1) / 1000; else print "err" }' |
        sort -g |
        awk '$1 == "err" { e++; next } { v[++n] = $1 }
             END { i = int(n * 0.99); if (i < n * 0.99) i++; if (i < 1) i = 1
                   if (n) printf "%d %d %.1f %.1f\n", n, e, v[i], v[n]; else printf "0 %d null null\n", e }'
}
# The longest time without a completed writer transaction that overlaps [FROM, TO], in ms.
writer_stall() {  # DIR FROM_US TO_US
    cat "$1"/writer.[0-9]* 2>/dev/null | awk '$4 == "ok" { print $3 }' | sort -n |
        awk -v a="$2" -v b="$3" 'NR > 1 && p < b && $1 > a { g = $1 - p; if (g > m) m = g } { p = $1 }
             END { printf "%.1f\n", m / 1000 }'
}
writer_errors() { cat "$1"/writer.[0-9]* 2>/dev/null | awk '$4 != "ok" { e++ } END { print e + 0 }'; }

# ------------------------------------------------------ alterego status lines ---

# alterego's --status-json lines as
# "epoch_s event state backlog changes_applied lag_ms changes_skipped" ("null" when absent).
json_field() {  # NAME FILE: that field of every JSON line ("null" when absent, spaces as _)
    awk -v f="$1" '{ v = "null"; if (match($0, "\"" f "\":(\"[^\"]*\"|[^,}]*)")) {
        v = substr($0, RSTART + length(f) + 3, RLENGTH - length(f) - 3); gsub(/"/, "", v); gsub(/ /, "_", v) }
        print v }' "$2"
}
status_rows() {  # FILE
    [[ -s $1 ]] || return 0
    paste -d ' ' <(json_field time "$1" | date -u -f - +%s.%N) <(json_field event "$1") \
        <(json_field state "$1") <(json_field backlog "$1") <(json_field changes_applied "$1") \
        <(json_field replica_lag_ms "$1") <(json_field changes_skipped "$1")
}
# Row changes alterego has dealt with (applied, or left out as superseded) on the last
# status line at or before EPOCH_S.
applied_at() {  # FILE EPOCH_S
    status_rows "$1" | awk -v t="$2" '$1 <= t && $5 ~ /^[0-9]+$/ { v = $5 + $7 } END { print v + 0 }'
}
# Seconds alterego spent in each phase, from its state lines: "copying=5.1 verifying=1.6 ...".
alterego_phases() {  # FILE
    status_rows "$1" | awk '$2 != "state" && $2 != "done" { next }
        p != "" && p != "done" { d[p] += $1 - t; if (!(p in seen)) { seen[p] = 1; order[++n] = p } }
        { p = $3; t = $1 }
        END { for (i = 1; i <= n; i++) printf "%s%s=%.1f", (i > 1 ? " " : ""), order[i], d[order[i]]; print "" }'
}
# "throttled_s max_backlog max_lag_ms cut_over_lock_ms" of one alterego run.
alterego_extras() {  # FILE
    local lock
    lock="$(grep -o '"cut_over_lock_ms":[0-9]*' "$1" 2>/dev/null | tail -n1 | cut -d: -f2 || true)"
    status_rows "$1" | awk -v lock="${lock:-null}" '
        $2 == "throttled" && !t { t = $1 }
        ($2 == "unthrottled" || $2 == "done" || $2 == "failed") && t { s += $1 - t; t = 0 }
        $4 ~ /^[0-9]+$/ && $4 > b { b = $4 }
        $6 ~ /^[0-9]+$/ && $6 > l { l = $6 }
        END { printf "%.1f %d %d %s\n", s, b, l, lock }'
}

# ----------------------------------------------------------------- methods ---

# Runs one method on sbtest1: sets RC, T_START and T_END (us), RSS_KB, TOOL_CPU_S and
# TOOL_USER_S (the tool process; null for the native ALTERs, which run inside the server),
# and the cpu_snapshot()s CPU_START and CPU_END.
run_tool() {  # METHOD ALTER_SQL DIR
    local method=$1 alter=$2 dir=$3
    local -a cmd
    case $method in
        copy)
            # MariaDB 11.2+ copies online unless told otherwise: LOCK=SHARED keeps this the
            # classic copy that blocks writers, as on MySQL and older MariaDB.
            cmd=("$CLIENT" --defaults-file="$CNF" -e "ALTER TABLE bench.sbtest1 $alter, ALGORITHM=COPY$COPY_LOCK") ;;
        copy_online)
            # MariaDB 11.2+ (MDEV-16329): the copy with concurrent writes logged and replayed.
            cmd=("$CLIENT" --defaults-file="$CNF" -e "ALTER TABLE bench.sbtest1 $alter, ALGORITHM=COPY, LOCK=NONE") ;;
        instant)
            cmd=("$CLIENT" --defaults-file="$CNF" -e "ALTER TABLE bench.sbtest1 $alter, ALGORITHM=INSTANT") ;;
        inplace)
            # FORCE: MariaDB adds a column instantly under INPLACE; FORCE makes it rebuild the
            # table, online, which is the work the other methods do.
            cmd=("$CLIENT" --defaults-file="$CNF" -e "ALTER TABLE bench.sbtest1 $alter, FORCE, ALGORITHM=INPLACE, LOCK=NONE") ;;
        bare_copy)
            # The copy's work alone, no tool around it (idle only: it replays no change).
            cmd=(bash "$REPO_ROOT/scripts/bench_bare_copy.sh" "$CLIENT" "$CNF" bench sbtest1 "$alter") ;;
        ptosc)
            # From the mariadb-11.8 root (chroot execs it: the same process, for the RSS).
            cmd=(/usr/bin/time -f '%M %U %S' -o "$dir/rusage" "${PTOSC_CMD[@]}" --alter "$alter" --execute
                 --recursion-method=hosts "${PTOSC_EXTRA[@]}"
                 "h=$SANDBOX_HOST,P=$SANDBOX_PORT,D=bench,t=sbtest1,F=$PT_CNF") ;;
        alterego|alterego_client)
            # alterego_client: the same run with each chunk read into alterego and inserted
            # from there, to measure that against the server-side INSERT ... SELECT.
            cmd=(/usr/bin/time -f '%M %U %S' -o "$dir/rusage" "$ALTEREGO" --host "$SANDBOX_HOST" --port "$SANDBOX_PORT"
                 --user "$SANDBOX_USER" --database bench --table sbtest1 --alter "$alter" --execute
                 --ok-to-drop-table --progress=false --status-json "$dir/status.jsonl"
                 --status-interval-millis 500 "${ALTEREGO_EXTRA[@]}")
            [[ $method == alterego_client ]] && cmd+=(--copy-through-client) ;;
    esac
    printf '%q ' "${cmd[@]}" >"$dir/command"
    echo >>"$dir/command"
    RC=0
    CPU_START="$(cpu_snapshot)"
    T_START=$(now_us)
    if [[ $method == alterego* ]]; then
        ALTEREGO_PASSWORD="$SANDBOX_PASSWORD" timeout "$METHOD_TIMEOUT" "${cmd[@]}" >"$dir/method.log" 2>&1 || RC=$?
    else
        timeout "$METHOD_TIMEOUT" "${cmd[@]}" >"$dir/method.log" 2>&1 || RC=$?
    fi
    T_END=$(now_us)
    CPU_END="$(cpu_snapshot)"
    local rusage=()
    read -r -a rusage <<<"$(tail -n1 "$dir/rusage" 2>/dev/null || true)"
    RSS_KB=null TOOL_CPU_S=null TOOL_USER_S=0
    if ((${#rusage[@]} == 3)) && is_int "${rusage[0]}"; then
        RSS_KB=${rusage[0]} TOOL_USER_S=${rusage[1]}
        TOOL_CPU_S="$(calc 'printf "%.1f", a + b' "${rusage[1]}" "${rusage[2]}")"
    fi
}

# Compares sbtest1 with what it must hold: sbtest1_pristine overlaid with the writer's
# journal, on the original columns; and the replica's sbtest1 with the primary's. Checks
# the ALTER took effect and that no helper table or trigger is left. Sets DATA and
# DATA_DETAIL.
check_data() {  # ALTER_SQL
    local alter=$1 actual expected replica schema want_index=0 rpid
    [[ $alter == *"ADD INDEX"* ]] && want_index=1
    table_agg replica sbtest1 >"$WORK/replica-agg" 2>&1 & rpid=$!
    actual="$(table_agg primary sbtest1)"
    expected="$(sql_primary -e "SELECT COUNT(*), COALESCE(BIT_XOR(CRC32(CONCAT_WS('#', p.id,
        COALESCE(j.k, p.k), COALESCE(j.c, p.c), COALESCE(j.pad, p.pad)))), 0)
        FROM bench.sbtest1_pristine p LEFT JOIN bench.bench_journal j ON j.id = p.id" | tr '\t' ' ')"
    wait "$rpid" || true
    replica="$(cat "$WORK/replica-agg")"
    schema="$(sql_primary -e "SELECT
        (SELECT COUNT(*) FROM information_schema.COLUMNS
          WHERE TABLE_SCHEMA = 'bench' AND TABLE_NAME = 'sbtest1' AND COLUMN_NAME = 'bench_flag'),
        (SELECT COUNT(DISTINCT INDEX_NAME) FROM information_schema.STATISTICS
          WHERE TABLE_SCHEMA = 'bench' AND TABLE_NAME = 'sbtest1' AND INDEX_NAME = 'idx_bench_pad'),
        (SELECT COUNT(*) FROM information_schema.TABLES
          WHERE TABLE_SCHEMA = 'bench' AND TABLE_NAME LIKE '\\_sbtest1\\_%'),
        (SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = 'bench')" | tr '\t' ' ')"
    DATA=pass
    DATA_DETAIL="rows+checksum $actual"
    if [[ $actual != "$expected" ]]; then
        DATA=fail; DATA_DETAIL="sbtest1 has $actual (count checksum), expected $expected"
    elif [[ $replica != "$actual" ]]; then
        DATA=fail; DATA_DETAIL="the replica's sbtest1 has $replica, the primary's $actual"
    elif [[ $schema != "1 $want_index 0 0" ]]; then
        DATA=fail; DATA_DETAIL="schema check (column, index, helper tables, triggers) gave '$schema', expected '1 $want_index 0 0'"
    fi
}

# Per measurement, for the summary.
declare -A R_WALL R_RC R_P99 R_BASE_P99 R_MAX R_ERR R_STALL R_LAG R_RSS R_DATA R_RPS R_XCOPY R_SCPU R_OCPU R_DL
FAILURES=()

# One measurement: reset, [writer + baseline], the method, [writer stop], replica, checks.
run_measurement() {  # ALTER_NAME CONDITION METHOD
    local name=$1 cond=$2 method=$3 alter=${ALTER_SQL[$1]}
    local key="$name/$cond/$method" dir="$WORK/$name-$cond-$method"
    mkdir -p "$dir"
    reset_table
    ((REPLICA_STOPPED)) && stop_replication
    log "$name, $cond: $method"
    local w_start=""
    if [[ $cond == load ]]; then
        start_writer "$dir"
        w_start=$(now_us)
        sleep "$BASELINE_SECS"
        kill -0 "$WRITER_PID" 2>/dev/null || { cat "$dir/sysbench-writer.log" >&2; die "the writer died"; }
    fi
    local err_off
    err_off="$(stat -c %s "$SB/primary.err")"
    run_tool "$method" "$alter" "$dir"
    local wrc=0
    if [[ $cond == load ]]; then
        sleep 1   # writes reach the new table too
        stop_writer || wrc=$?
    fi
    ((REPLICA_STOPPED)) && sql_replica -e 'START REPLICA'
    wait_replica
    local t_caught wall
    t_caught=$(now_us)
    wall=$((T_END - T_START))

    # CPU: both servers from the start until the replica caught up (the replica replays a
    # native ALTER after the primary); "other" during the method only.
    local c0 c1 c2 server_cpu other_cpu
    read -r -a c0 <<<"$CPU_START"
    read -r -a c1 <<<"$CPU_END"
    read -r -a c2 <<<"$(cpu_snapshot)"
    server_cpu="$(ticks_to_s $((c2[1] - c0[1])))"
    other_cpu="$(calc 'v = a / b - c; printf "%.1f", (v < 0 ? 0 : v)' \
        $((c1[0] - c0[0] - (c1[2] - c0[2]) - (c1[3] - c0[3]))) "$CLK_TCK" "$TOOL_USER_S")"
    # Deadlocks on the primary during the method (innodb_print_all_deadlocks is on).
    tail -c +$((err_off + 1)) "$SB/primary.err" >"$dir/primary-err.log" 2>/dev/null || true
    local deadlocks
    deadlocks="$(grep -c 'Transactions deadlock detected' "$dir/primary-err.log" || true)"

    # Writer: baseline [start + 1 s, method start) against the migration [start, end].
    local base=(null null null null) mig=(null null null null) stall=null errors=null
    if [[ $cond == load ]]; then
        read -r -a base <<<"$(writer_window "$dir" $((w_start + 1000000)) "$T_START")"
        read -r -a mig <<<"$(writer_window "$dir" "$T_START" $((T_END + 1)))"
        stall="$(writer_stall "$dir" "$T_START" "$T_END")"
        errors="$(writer_errors "$dir")"
        ((wrc == 0)) || { errors=$((errors + 1)); warn "the writer exited with status $wrc (see $dir/sysbench-writer.log)"; }
    fi
    local lag=null
    ((REPLICA_STOPPED)) || lag="$(max_lag_ms "$T_START" "$t_caught")"
    local ae=(null null null null) phases=""
    if [[ $method == alterego* ]]; then
        read -r -a ae <<<"$(alterego_extras "$dir/status.jsonl")"
        phases="$(alterego_phases "$dir/status.jsonl")"
    fi

    check_data "$alter"
    if ((RC != 0)); then
        DATA_DETAIL="$method exited with status $RC (log: $dir/method.log); $DATA_DETAIL"
        FAILURES+=("$key: $method exited with status $RC (see $dir/method.log)")
        tail -n 5 "$dir/method.log" >&2 || true
    fi
    [[ $DATA == pass ]] || FAILURES+=("$key: data check failed: $DATA_DETAIL")

    local secs rps xcopy
    secs="$(us_to_s "$wall")"
    rps="$(calc 'printf "%d", a / (b / 1e6)' "$ROWS" "$wall")"
    xcopy=null
    [[ -n ${R_WALL[$name/$cond/copy]:-} ]] && xcopy="$(ratio "$secs" "${R_WALL[$name/$cond/copy]}")"
    R_WALL[$key]=$secs R_RC[$key]=$RC R_RPS[$key]=$rps R_XCOPY[$key]=$xcopy
    R_BASE_P99[$key]=${base[2]} R_P99[$key]=${mig[2]} R_MAX[$key]=${mig[3]}
    R_ERR[$key]=$errors R_STALL[$key]=$stall R_LAG[$key]=$lag R_RSS[$key]=$RSS_KB R_DATA[$key]=$DATA
    R_SCPU[$key]=$server_cpu R_OCPU[$key]=$other_cpu R_DL[$key]=$deadlocks

    {
        printf '{"time":"%(%Y-%m-%dT%H:%M:%S%z)T","flavor":"%s","server_version":"%s","rows":%d,"alter":"%s","alter_sql":"%s","condition":"%s","method":"%s",' \
            -1 "$FLAVOR" "$SERVER_VERSION" "$ROWS" "$name" "$alter" "$cond" "$method"
        printf '"exit_code":%d,"wall_s":%s,"rows_per_s":%s,"ratio_to_copy":%s,' "$RC" "$secs" "$rps" "$xcopy"
        printf '"writer_rate":%s,"writer_baseline_tx":%s,"writer_baseline_p99_ms":%s,"writer_baseline_max_ms":%s,' \
            "$([[ $cond == load ]] && echo "$RATE" || echo null)" "${base[0]}" "${base[2]}" "${base[3]}"
        printf '"writer_tx":%s,"writer_p99_ms":%s,"writer_max_ms":%s,"writer_errors":%s,"writer_stall_ms":%s,' \
            "${mig[0]}" "${mig[2]}" "${mig[3]}" "$errors" "$stall"
        printf '"replica_lag_max_ms":%s,"peak_rss_kb":%s,"tool_cpu_s":%s,"server_cpu_s":%s,"other_cpu_s":%s,"deadlocks":%s,' \
            "$lag" "$RSS_KB" "$TOOL_CPU_S" "$server_cpu" "$other_cpu" "$deadlocks"
        printf '"alterego_throttled_s":%s,"alterego_max_backlog":%s,"alterego_lag_max_ms":%s,"cut_over_lock_ms":%s,"alterego_phases_s":"%s",' \
            "${ae[0]}" "${ae[1]}" "${ae[2]}" "${ae[3]}" "$phases"
        printf '"replica_stopped":%s,"data_check":"%s","data_detail":"%s","log_dir":"%s"}\n' \
            "$( ((REPLICA_STOPPED)) && echo true || echo false)" "$DATA" "$DATA_DETAIL" "$dir"
    } >>"$JSON_OUT"

    local wtxt=""
    [[ $cond == load ]] && wtxt=", writer p99 ${base[2]} -> ${mig[2]} ms, max ${mig[3]} ms, stall $stall ms, errors $errors"
    log "  $method: ${secs} s (exit $RC)$wtxt, replica lag max $lag ms, deadlocks $deadlocks, data $DATA"
    if [[ -n $phases ]]; then log "    phases (s): $phases; throttled ${ae[0]} s; cut-over lock ${ae[3]} ms"; fi
    purge_binlogs
}

# ------------------------------------------------------ the applier's ceiling ---

# Stock sysbench on sbtest1, unthrottled: "tx_per_s writes_per_s".
sysbench_rate() {  # TEST LOG
    sysbench "$1" --db-driver=mysql --mysql-socket="$SANDBOX_SOCKET" --mysql-user=root --mysql-db=bench \
        --tables=1 --table-size="$ROWS" --threads="$WRITER_THREADS" --time="$CEILING_SECS" \
        --report-interval=1 run >"$2" 2>&1 || { tail -n 20 "$2" >&2; die "sysbench $1 failed (log: $2)"; }
    awk '/transactions:/ { gsub(/[(]/, "", $3); tps = $3 } /^ *write:/ { w = $2 } /total time:/ { t = $3 + 0 }
         END { printf "%.0f %.0f\n", tps, (t > 0 ? w / t : 0) }' "$2"
}

# The server alone: oltp_write_only and oltp_insert, unthrottled, on a fresh sbtest1.
CEIL=()
server_rates() {
    local dir="$WORK/server-rates"
    mkdir -p "$dir"
    reset_table
    log "the server alone: sysbench oltp_write_only, then oltp_insert, $WRITER_THREADS threads, unthrottled, ${CEILING_SECS} s each"
    read -r SRV_WO_TPS SRV_WO_ROWS <<<"$(sysbench_rate oltp_write_only "$dir/oltp_write_only.log")"
    read -r SRV_INS_TPS _ <<<"$(sysbench_rate oltp_insert "$dir/oltp_insert.log")"
    wait_replica
    log "  oltp_write_only: $SRV_WO_TPS tx/s, $SRV_WO_ROWS row changes/s; oltp_insert: $SRV_INS_TPS rows/s"
}

# alterego copies, verifies and then holds its cut-over (postpone flag file) with the applier
# running; sysbench oltp_write_only then runs unthrottled on the table for CEILING_SECS.
# The applier kept up if it had replayed every row change within 2 s of the load's end.
AE_BG_PID=""
ceiling() {
    local dir="$WORK/ceiling" flag status
    mkdir -p "$dir"
    flag="$dir/postpone.flag"; status="$dir/status.jsonl"
    reset_table
    touch "$flag"
    log "the applier's ceiling: alterego with the cut-over postponed, then sysbench oltp_write_only unthrottled"
    ALTEREGO_PASSWORD="$SANDBOX_PASSWORD" /usr/bin/time -f '%M %U %S' -o "$dir/rusage" "$ALTEREGO" \
        --host "$SANDBOX_HOST" --port "$SANDBOX_PORT" --user "$SANDBOX_USER" --database bench --table sbtest1 \
        --alter "${ALTER_SQL[add_column]}" --execute --ok-to-drop-table --progress=false \
        --postpone-cut-over-flag-file "$flag" --status-json "$status" --status-interval-millis 200 \
        "${ALTEREGO_EXTRA[@]}" >"$dir/alterego.log" 2>&1 &
    AE_BG_PID=$!
    local i
    for ((i = 0; i < METHOD_TIMEOUT * 2; i++)); do
        grep -q '"state":"postponed"' "$status" 2>/dev/null && break
        kill -0 "$AE_BG_PID" 2>/dev/null || break
        sleep 0.5
    done
    if ! grep -q '"state":"postponed"' "$status" 2>/dev/null; then
        rm -f "$flag"; wait "$AE_BG_PID" || true; AE_BG_PID=""
        FAILURES+=("ceiling: alterego never reached the postponed cut-over (see $dir/alterego.log)")
        CEIL=(failed); return 0
    fi
    sleep 1
    local t0 t1 tps rows
    t0=$(now_us)
    read -r tps rows <<<"$(sysbench_rate oltp_write_only "$dir/sysbench.log")"
    t1=$(now_us)
    local writes
    writes="$(awk '/^ *write:/ { print $2 }' "$dir/sysbench.log")"
    # Caught up: changes_applied has not moved for 2 s (the heartbeat keeps the binlog
    # moving, so a reader still behind would still be delivering changes). Up to 10 minutes.
    local last="" same=0 now_applied
    for ((i = 0; i < 3000 && same < 10; i++)); do
        sleep 0.2
        kill -0 "$AE_BG_PID" 2>/dev/null || break
        now_applied="$(applied_at "$status" 9999999999)"
        if [[ $now_applied == "$last" ]]; then same=$((same + 1)); else same=0; last=$now_applied; fi
    done
    local base applied_t1 final caught max_backlog
    base="$(applied_at "$status" "$(calc 'printf "%.6f", a / 1e6' "$t0")")"
    applied_t1="$(applied_at "$status" "$(calc 'printf "%.6f", a / 1e6' "$t1")")"
    final="$(applied_at "$status" 9999999999)"
    # The time of the first status line that shows the final count.
    # (awk reads to the end: an early exit would kill the writer of the pipe with SIGPIPE.)
    caught="$(status_rows "$status" | awk -v f="$final" '!done && $5 + $7 == f { printf "%.0f\n", $1 * 1e6; done = 1 }')"
    max_backlog="$(status_rows "$status" | awk '$4 ~ /^[0-9]+$/ && $4 > m { m = $4 } END { print m + 0 }')"
    rm -f "$flag"
    local rc=0
    wait "$AE_BG_PID" || rc=$?
    AE_BG_PID=""
    ((rc == 0)) || FAILURES+=("ceiling: alterego exited with status $rc (see $dir/alterego.log)")
    local load_s applied_rate catchup verdict
    load_s="$(calc 'printf "%.1f", a / 1e6' $((t1 - t0)))"
    applied_rate="$(calc 'printf "%.0f", a / b' "$((applied_t1 - base))" "$load_s")"
    if ((same >= 10)) && [[ -n $caught ]]; then
        catchup="$(calc 'printf "%.1f", (a < 0 ? 0 : a / 1e6)' $((caught - t1)))"
        verdict="$(calc 'print (a <= 2 ? "kept up" : "fell behind")' "$catchup")"
    else
        catchup=null; verdict="did not catch up within 10 minutes"
    fi
    local applied_total=$((final - base))
    CEIL=("$tps" "$rows" "$applied_rate" "$max_backlog" "$catchup" "$verdict" "$rc" "$load_s" "$applied_total" "$writes")
    log "  load: $tps tx/s, $rows row changes/s for $load_s s; replayed during the load: $applied_rate changes/s;" \
        "all replayed ${catchup} s after the load ended; max backlog $max_backlog transactions: $verdict"
    {
        printf '{"time":"%(%Y-%m-%dT%H:%M:%S%z)T","flavor":"%s","server_version":"%s","rows":%d,"measurement":"applier_ceiling","load":"oltp_write_only","threads":%d,' \
            -1 "$FLAVOR" "$SERVER_VERSION" "$ROWS" "$WRITER_THREADS"
        printf '"load_s":%s,"load_tx_per_s":%s,"load_rows_per_s":%s,"load_write_statements":%s,"changes_replayed":%s,"replayed_rows_per_s_during_load":%s,' \
            "$load_s" "$tps" "$rows" "$writes" "$applied_total" "$applied_rate"
        printf '"catch_up_s":%s,"max_backlog":%s,"verdict":"%s","exit_code":%d,' "$catchup" "$max_backlog" "$verdict" "$rc"
        printf '"server_alone_write_only_tx_per_s":%s,"server_alone_write_only_rows_per_s":%s,"server_alone_insert_rows_per_s":%s}\n' \
            "${SRV_WO_TPS:-null}" "${SRV_WO_ROWS:-null}" "${SRV_INS_TPS:-null}"
    } >>"$JSON_OUT"
}

# ----------------------------------------------------------------- summary ---

verdict() { if [[ $1 == null ]]; then echo "n/a"; elif [[ $1 == 1 ]]; then echo PASS; else echo FAIL; fi; }
check() { calc "print (($1) ? 1 : 0)" "$2" "${3:-0}"; }   # EXPR(a, b) A B -> 1, 0 or null

print_summary() {
    local name cond method key noisy=()
    echo
    echo "== alterego benchmark, flavor $FLAVOR: $ROWS rows, ${SERVER_VERSION}, $(nproc) cores, writer $RATE tx/s on $WRITER_THREADS threads =="
    echo "(servers: $SERVER_SOURCE; pt-online-schema-change $PTOSC_VERSION; alterego $ALTEREGO_COMMIT)"
    ((REPLICA_STOPPED)) && echo "(--replica-stopped: replication was off during each method, so no tool saw a replica; lag was not measured)"
    [[ "$(stat -c %Y "$ALTEREGO")" == "$ALTEREGO_MTIME" ]] ||
        echo "WARNING: $ALTEREGO was rebuilt during the run (by another process?): later measurements may have run another build"
    local skip
    for skip in "${SKIPPED[@]}"; do echo "skipped: $skip"; done
    local fmt='%-16s %-4s %-15s %7s %7s %5s %16s %7s %3s %8s %6s %6s %7s %6s %3s %s\n'
    # shellcheck disable=SC2059
    printf "$fmt" ALTER cond method wall_s rows/s xCOPY "p99_ms base>mig" max_ms err stall_ms lag_ms rss_MB \
        srv_cpu oth_cpu dl data
    for name in "${ALTER_LIST[@]}"; do
        for cond in "${CONDITION_LIST[@]}"; do
            for method in "${METHOD_LIST[@]}"; do
                key="$name/$cond/$method"
                [[ -n ${R_WALL[$key]:-} ]] || continue
                local p99="-" rss="-"
                [[ $cond == load ]] && p99="${R_BASE_P99[$key]} > ${R_P99[$key]}"
                [[ ${R_RSS[$key]} != null ]] && rss="$(calc 'printf "%.1f", a / 1024' "${R_RSS[$key]}")"
                # shellcheck disable=SC2059
                printf "$fmt" "$name" "$cond" "$method" \
                    "${R_WALL[$key]}" "${R_RPS[$key]}" "${R_XCOPY[$key]/null/-}" "$p99" "${R_MAX[$key]/null/-}" \
                    "${R_ERR[$key]/null/-}" "${R_STALL[$key]/null/-}" "${R_LAG[$key]}" "$rss" \
                    "${R_SCPU[$key]}" "${R_OCPU[$key]}" "${R_DL[$key]}" \
                    "${R_DATA[$key]}$([[ ${R_RC[$key]} == 0 ]] || echo " (exit ${R_RC[$key]})")"
                if [[ $(check 'a > 0.25 * b' "${R_OCPU[$key]}" "${R_WALL[$key]}") == 1 ]]; then
                    noisy+=("$key")
                fi
            done
        done
    done
    echo "(p99/max: writer latency from when a transaction was due; stall: longest time with no writer commit;"
    echo " lag: highest replica lag from the 100 ms heartbeat, until the replica caught up after the method;"
    echo " srv_cpu: CPU seconds of both servers until the replica caught up; oth_cpu: user CPU seconds of other"
    echo " processes than the servers, the tool and the writer during the method; dl: InnoDB deadlocks on the"
    echo " primary during the method)"
    if ((${#noisy[@]})); then
        echo "NOTE: other processes used more than a quarter of a core during: ${noisy[*]}; those numbers are noisy."
    fi

    echo
    echo "== targets (information only) =="
    for name in "${ALTER_LIST[@]}"; do   # (a missing figure prints as "-")
        local ae_i=${R_WALL[$name/idle/alterego]:-null} cp_i=${R_WALL[$name/idle/copy]:-null}
        local pt_i=${R_WALL[$name/idle/ptosc]:-null} ae_l=${R_WALL[$name/load/alterego]:-null}
        local r
        r="$(ratio "$ae_i" "$cp_i")"
        printf '%-17s idle: alterego / COPY = %s (target <= 1.5): %s\n' "$name" "$r" "$(verdict "$(check 'a <= 1.5' "$r")")"
        r="$(ratio "$pt_i" "$ae_i")"
        printf '%-17s idle: pt-osc / alterego = %s (target >= 2): %s\n' "$name" "$r" "$(verdict "$(check 'a >= 2' "$r")")"
        local bc_i=${R_WALL[$name/idle/bare_copy]:-null}
        if [[ $bc_i != null ]]; then
            printf '%-17s idle: alterego / bare copy = %s, pt-osc / bare copy = %s (information: the bare copy is the copy through the binlog and nothing else)\n' \
                "$name" "$(ratio "$ae_i" "$bc_i")" "$(ratio "$pt_i" "$bc_i")"
        fi
        r="$(ratio "$ae_l" "$ae_i")"
        printf '%-17s load: alterego load / idle = %s (target <= 1.3): %s\n' "$name" "$r" "$(verdict "$(check 'a <= 1.3' "$r")")"
        local p_ae=${R_P99[$name/load/alterego]:-null} p_in=${R_P99[$name/load/inplace]:-null} p_pt=${R_P99[$name/load/ptosc]:-null}
        local both=null
        if [[ $p_ae != null && $p_in != null && $p_pt != null ]]; then
            both=$(( $(check 'a < b' "$p_ae" "$p_in") * $(check 'a < b' "$p_ae" "$p_pt") ))
        fi
        printf '%-17s load: writer p99 alterego %s ms, INPLACE %s ms, pt-osc %s ms (target: alterego lowest): %s\n' \
            "$name" "$p_ae" "$p_in" "$p_pt" "$(verdict "$both")"
        local e=${R_ERR[$name/load/alterego]:-null} s=${R_STALL[$name/load/alterego]:-null}
        local l=null
        [[ $ae_l != null ]] && l=${R_LAG[$name/load/alterego]}
        printf '%-17s load: writer errors %s (target 0): %s; longest stall %s ms (target <= 500): %s; replica lag %s ms (target < %s): %s\n' \
            "$name" "$e" "$(verdict "$(check 'a == 0' "$e")")" "$s" "$(verdict "$(check 'a <= 500' "$s")")" \
            "$l" "$MAX_LAG_MS" "$(verdict "$(check 'a < b' "$l" "$MAX_LAG_MS")")"
        local oc_i=${R_WALL[$name/idle/copy_online]:-null} oc_l=${R_WALL[$name/load/copy_online]:-null}
        if [[ $oc_i != null || $oc_l != null ]]; then
            printf '%-17s online COPY (ALGORITHM=COPY, LOCK=NONE): alterego / online COPY = %s idle, %s load; writer p99 online COPY %s ms, alterego %s ms (information: the server'"'"'s own online copy)\n' \
                "$name" "$(ratio "$ae_i" "$oc_i")" "$(ratio "$ae_l" "$oc_l")" "${R_P99[$name/load/copy_online]:-null}" "$p_ae"
        fi
        local in_i=${R_WALL[$name/idle/instant]:-null} in_l=${R_WALL[$name/load/instant]:-null}
        if [[ $in_i != null || $in_l != null ]]; then
            printf '%-17s INSTANT: %s s idle, %s s load, writer p99 %s ms (information: metadata only, no copy; alterego uses it with --attempt-instant-ddl)\n' \
                "$name" "$in_i" "$in_l" "${R_P99[$name/load/instant]:-null}"
        fi
        local cl_i=${R_WALL[$name/idle/alterego_client]:-null} cl_l=${R_WALL[$name/load/alterego_client]:-null}
        if [[ $cl_i != null || $cl_l != null ]]; then
            printf '%-17s copy through the client / INSERT ... SELECT: idle %s, load %s (information: which way of copying is faster)\n' \
                "$name" "$(ratio "$cl_i" "$ae_i")" "$(ratio "$cl_l" "$ae_l")"
        fi
    done | sed -e 's/\bnull\b/-/g'

    if ((CEILING)) && ((${#CEIL[@]})); then
        echo
        echo "== the applier's ceiling =="
        echo "server alone, $WRITER_THREADS threads unthrottled: oltp_write_only ${SRV_WO_TPS:-?} tx/s = ${SRV_WO_ROWS:-?} row changes/s; oltp_insert ${SRV_INS_TPS:-?} rows/s"
        if [[ ${CEIL[0]} == failed ]]; then
            echo "alterego (cut-over postponed): FAILED, see $WORK/ceiling"
        else
            echo "alterego applying (cut-over postponed), oltp_write_only unthrottled for ${CEIL[7]} s: the server took ${CEIL[0]} tx/s = ${CEIL[1]} row changes/s;"
            echo "  alterego replayed ${CEIL[2]} changes/s during the load (applied, or left out as superseded), and all ${CEIL[8]}"
            echo "  (sysbench counted ${CEIL[9]} writes) ${CEIL[4]} s after it ended; max backlog ${CEIL[3]} transactions: ${CEIL[5]}"
            if [[ ${CEIL[5]} == "kept up" ]]; then
                echo "  => ceiling not reached: the applier kept up with all the server took while alterego ran (>= ${CEIL[1]} row changes/s)"
            else
                echo "  => the applier's ceiling under this load: about ${CEIL[2]} row changes/s"
            fi
        fi
    fi
    echo
    echo "JSON lines: $JSON_OUT"
    echo "logs:       $WORK"
}

# ------------------------------------------------------------ several flavors ---

# --flavor all (or a list): this script once per flavor, each run complete with its own
# summary, then the flavors side by side from their JSON lines. alterego is built once.
run_flavors() {
    local dir f rc status=0 build=() files=() results=()
    if [[ -n $JSON_OUT ]]; then dir="$(mktemp -d)"; else dir="$REPO_ROOT/target/bench-flavors"; fi
    mkdir -p "$dir"
    for f in "${FLAVOR_LIST[@]}"; do
        echo
        echo "======== flavor $f: scripts/bench.sh --flavor $f ${CHILD_ARGS[*]} ${build[*]} ========"
        rm -f "$dir/$f.jsonl"
        rc=0
        "$REPO_ROOT/scripts/bench.sh" --flavor "$f" --json "$dir/$f.jsonl" "${CHILD_ARGS[@]}" "${build[@]}" || rc=$?
        build=(--no-build)
        results+=("$f: exit $rc")
        ((rc == 0)) || status=1
        ((rc == 130)) && exit 130
        if [[ -s $dir/$f.jsonl ]]; then files+=("$dir/$f.jsonl"); fi
    done
    if ((${#files[@]})); then side_by_side "${files[@]}" | sed -e 's/[[:space:]]*$//'; fi
    echo
    echo "runs: ${results[*]}"
    if [[ -n $JSON_OUT ]]; then
        if ((${#files[@]})); then cat "${files[@]}" >"$JSON_OUT"; fi
        rm -rf "$dir"
        echo "JSON lines: $JSON_OUT"
    else
        echo "JSON lines: ${files[*]}"
    fi
    return "$status"
}

# J = the value of FIELD in the JSON line LINE (strings without their quotes; null if absent).
jf() {  # LINE FIELD
    local re="\"$2\":(\"([^\"]*)\"|([^,}]*))"
    if [[ $1 =~ $re ]]; then J="${BASH_REMATCH[2]}${BASH_REMATCH[3]}"; else J=null; fi
}

# The flavors side by side: per measurement wall time, ratio to COPY, writer p99 and replica
# lag; then the targets and the applier's ceiling, per flavor. (Its helpers are called by name,
# through target_row.)
# shellcheck disable=SC2317
side_by_side() {  # FILE... (the JSON lines of one flavor each)
    local file line f k rows="" ceil="" flavors=()
    local -A S_WALL S_X S_P99 S_LAG S_ERR S_STALL S_BAD S_SKIP S_VER S_CEIL S_COND
    for file; do
        while IFS= read -r line; do
            jf "$line" flavor; f=$J
            [[ " ${flavors[*]} " == *" $f "* ]] || flavors+=("$f")
            jf "$line" server_version; S_VER[$f]=${J%%-*}
            jf "$line" rows; rows=$J
            jf "$line" measurement
            case $J in
                skipped)
                    jf "$line" alter; k="$f|$J"; jf "$line" method; S_SKIP[$k|$J]=1 ;;
                applier_ceiling)
                    local v tk
                    jf "$line" verdict; v=$J; jf "$line" load_rows_per_s; tk=$J
                    jf "$line" server_alone_write_only_rows_per_s
                    S_CEIL[$f]="$v at $tk changes/s (server alone $J)"; ceil=1 ;;
                *)
                    jf "$line" alter; k="$f|$J"; jf "$line" condition; k+="|$J"; S_COND[$J]=1; jf "$line" method; k+="|$J"
                    jf "$line" wall_s; S_WALL[$k]=$J
                    jf "$line" ratio_to_copy; S_X[$k]=$J
                    jf "$line" writer_p99_ms; S_P99[$k]=$J
                    jf "$line" replica_lag_max_ms; S_LAG[$k]=$J
                    jf "$line" writer_errors; S_ERR[$k]=$J
                    jf "$line" writer_stall_ms; S_STALL[$k]=$J
                    local bad=""
                    jf "$line" exit_code; [[ $J == 0 ]] || bad="!"
                    jf "$line" data_check; [[ $J == pass ]] || bad="!"
                    S_BAD[$k]=$bad ;;
            esac
        done <"$file"
    done
    local name cond method
    echo
    echo "== the flavors side by side: $rows rows; per flavor wall_s, xCOPY, writer p99 ms during the method, replica lag ms =="
    printf '%-33s' ""
    for f in "${flavors[@]}"; do printf ' | %-26s' "$f ${S_VER[$f]}"; done
    echo
    printf '%-16s %-4s %-11s' ALTER cond method
    for f in "${flavors[@]}"; do printf ' | %7s %5s %6s %6s' wall_s xCOPY p99 lag; done
    echo
    for name in add_column add_column_index; do
        for cond in idle load; do
            [[ -n ${S_COND[$cond]:-} ]] || continue
            for method in $ALL_METHODS; do
                local any=0
                for f in "${flavors[@]}"; do
                    [[ -n ${S_WALL[$f|$name|$cond|$method]:-} || -n ${S_SKIP[$f|$name|$method]:-} ]] && any=1
                done
                ((any)) || continue
                [[ $method == bare_copy && $cond == load ]] && continue
                printf '%-16s %-4s %-11s' "$name" "$cond" "${method/alterego_client/ae_client}"
                for f in "${flavors[@]}"; do
                    k="$f|$name|$cond|$method"
                    if [[ -n ${S_WALL[$k]:-} ]]; then
                        printf ' | %7s %5s %6s %6s' "${S_WALL[$k]}${S_BAD[$k]}" "${S_X[$k]/#null/-}" \
                            "${S_P99[$k]/#null/-}" "${S_LAG[$k]/#null/-}"
                    elif [[ -n ${S_SKIP[$f|$name|$method]:-} ]]; then
                        printf ' | %-26s' "   (skipped)"
                    else
                        printf ' | %-26s' "   -"
                    fi
                done
                echo
            done
        done
    done
    echo "(! after a wall time: the tool failed or the data check did not pass; see that flavor's summary)"
    echo
    echo "== targets side by side (information only) =="
    target_row() {  # FUNCTION LABEL: the label, then FUNCTION's value for each flavor
        printf '%-44s' "$2"
        local v
        for f in "${flavors[@]}"; do v="$("$1" "$f")"; printf ' | %-24s' "${v//null/-}"; done
        echo
    }
    for name in add_column add_column_index; do
        [[ -n "$(for f in "${flavors[@]}"; do echo "${S_WALL[$f|$name|idle|alterego]:-}${S_WALL[$f|$name|load|alterego]:-}"; done)" ]] || continue
        printf '%-44s' "$name"
        for f in "${flavors[@]}"; do printf ' | %-24s' "$f"; done
        echo
        ae_copy() { local r; r="$(ratio "${S_WALL[$1|$name|idle|alterego]:-null}" "${S_WALL[$1|$name|idle|copy]:-null}")"
                    echo "$r $(verdict "$(check 'a <= 1.5' "$r")")"; }
        pt_ae() { local r; r="$(ratio "${S_WALL[$1|$name|idle|ptosc]:-null}" "${S_WALL[$1|$name|idle|alterego]:-null}")"
                  echo "$r $(verdict "$(check 'a >= 2' "$r")")"; }
        ae_bare() { echo "$(ratio "${S_WALL[$1|$name|idle|alterego]:-null}" "${S_WALL[$1|$name|idle|bare_copy]:-null}") / $(ratio "${S_WALL[$1|$name|idle|ptosc]:-null}" "${S_WALL[$1|$name|idle|bare_copy]:-null}")"; }
        ae_online() { echo "$(ratio "${S_WALL[$1|$name|idle|alterego]:-null}" "${S_WALL[$1|$name|idle|copy_online]:-null}") / $(ratio "${S_WALL[$1|$name|load|alterego]:-null}" "${S_WALL[$1|$name|load|copy_online]:-null}")"; }
        load_idle() { local r; r="$(ratio "${S_WALL[$1|$name|load|alterego]:-null}" "${S_WALL[$1|$name|idle|alterego]:-null}")"
                      echo "$r $(verdict "$(check 'a <= 1.3' "$r")")"; }
        p99s() { local a=${S_P99[$1|$name|load|alterego]:-null} i=${S_P99[$1|$name|load|inplace]:-null} p=${S_P99[$1|$name|load|ptosc]:-null} both=null
                 if [[ $a != null && $i != null && $p != null ]]; then both=$(( $(check 'a < b' "$a" "$i") * $(check 'a < b' "$a" "$p") )); fi
                 echo "$a/$i/$p $(verdict "$both")"; }
        errs() { local e=${S_ERR[$1|$name|load|alterego]:-null} s=${S_STALL[$1|$name|load|alterego]:-null}
                 local ok=null; [[ $e != null && $s != null ]] && ok=$(( $(check 'a == 0' "$e") * $(check 'a <= 500' "$s") ))
                 echo "$e/$s $(verdict "$ok")"; }
        lag() { local l=${S_LAG[$1|$name|load|alterego]:-null}; echo "$l $(verdict "$(check 'a < b' "$l" "$MAX_LAG_MS")")"; }
        target_row ae_copy "  idle: alterego / COPY (<= 1.5)"
        target_row pt_ae "  idle: pt-osc / alterego (>= 2)"
        target_row ae_bare "  idle: alterego, pt-osc / bare copy"
        target_row ae_online "  alterego / online COPY, idle / load"
        target_row load_idle "  load: alterego load / idle (<= 1.3)"
        target_row p99s "  load: p99 ms alterego/INPLACE/pt-osc"
        target_row errs "  load: writer errors / stall ms (0, <= 500)"
        target_row lag "  load: replica lag ms (< $MAX_LAG_MS)"
    done
    if [[ -n $ceil ]]; then
        echo
        echo "== the applier's ceiling =="
        for f in "${flavors[@]}"; do printf '%-13s %s\n' "$f:" "${S_CEIL[$f]:-not measured}"; done
    fi
}

# -------------------------------------------------------------------- main ---

# The ceiling's alterego, if it still runs: SIGTERM to alterego itself (/usr/bin/time, its
# parent, does not pass it on), then SIGKILL after 15 s.
# shellcheck disable=SC2317 # called from the EXIT trap
stop_ceiling_alterego() {
    [[ -n $AE_BG_PID ]] || return 0
    local kids pid i
    kids="$(cat /proc/"$AE_BG_PID"/task/*/children 2>/dev/null || true)"
    for pid in $kids; do kill -TERM "$pid" 2>/dev/null || true; done
    for ((i = 0; i < 150; i++)); do kill -0 "$AE_BG_PID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$AE_BG_PID" 2>/dev/null; then
        warn "alterego (ceiling) still runs 15 s after SIGTERM: SIGKILL"
        for pid in $kids; do kill -KILL "$pid" 2>/dev/null || true; done
    fi
    wait "$AE_BG_PID" 2>/dev/null || true
    AE_BG_PID=""
}

# shellcheck disable=SC2317 # the EXIT trap
cleanup() {
    stop_writer 2>/dev/null || true
    stop_ceiling_alterego
    stop_heartbeat
    restore_flushing
    if [[ -n ${CNF:-} ]]; then rm -f "$CNF"; fi
    if [[ -n ${PT_TMP:-} ]]; then rm -rf "$PT_TMP"; fi
    if [[ -n ${PRINT_DEADLOCKS:-} ]]; then
        sql_primary -e "SET GLOBAL innodb_print_all_deadlocks = $PRINT_DEADLOCKS" 2>/dev/null || true
    fi
    if ((!KEEP_SERVERS)); then stop_rooted_servers; fi
}

# Why METHOD cannot run ALTER_NAME on this server ("" when it can).
skip_reason() {  # METHOD ALTER_NAME
    case $1 in
        copy_online)
            if ((IS_MYSQL)); then
                echo "MySQL has no online ALGORITHM=COPY (it refuses LOCK=NONE with COPY; INPLACE is its online rebuild)"
            elif ((!ONLINE_COPY)); then
                echo "ALGORITHM=COPY, LOCK=NONE needs MariaDB 11.2+ (MDEV-16329); this is $SERVER_VERSION"
            fi ;;
        instant)
            if [[ ${ALTER_SQL[$2]} == *"ADD INDEX"* ]]; then echo "ALGORITHM=INSTANT cannot add an index"; fi ;;
    esac
}

# A method skipped for an ALTER: logged once, listed in the summary, one JSON line.
SKIPPED=()
declare -A SKIP_SEEN
note_skip() {  # METHOD ALTER_NAME REASON
    [[ -z ${SKIP_SEEN[$1/$2]:-} ]] || return 0
    SKIP_SEEN[$1/$2]=1
    SKIPPED+=("$1 on $2: $3")
    log "$2: $1 skipped: $3"
    printf '{"time":"%(%Y-%m-%dT%H:%M:%S%z)T","flavor":"%s","server_version":"%s","rows":%d,"measurement":"skipped","alter":"%s","method":"%s","reason":"%s"}\n' \
        -1 "$FLAVOR" "$SERVER_VERSION" "$ROWS" "$2" "$1" "$3" >>"$JSON_OUT"
}

main() {
    parse_args "$@"
    if ((${#FLAVOR_LIST[@]} > 1)); then
        trap 'exit 130' INT TERM
        run_flavors
        exit
    fi
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    local t0
    t0=$(now_us)
    ensure_tools
    build_alterego
    start_servers
    log "flavor $FLAVOR: $SERVER_VERSION ($SERVER_SOURCE); work directory: $WORK"
    prepare_data
    start_heartbeat
    purge_binlogs
    local name cond method reason
    for name in "${ALTER_LIST[@]}"; do
        for cond in "${CONDITION_LIST[@]}"; do
            for method in "${METHOD_LIST[@]}"; do
                [[ $method == bare_copy && $cond == load ]] && continue   # it would lose the writes
                reason="$(skip_reason "$method" "$name")"
                if [[ -n $reason ]]; then note_skip "$method" "$name" "$reason"; continue; fi
                run_measurement "$name" "$cond" "$method"
            done
        done
    done
    if ((CEILING)); then
        server_rates
        ceiling
    fi
    stop_heartbeat
    print_summary
    echo "total time: $(us_to_s $(($(now_us) - t0))) s"
    if ((${#FAILURES[@]})); then
        echo
        echo "FAILED:"
        printf '  %s\n' "${FAILURES[@]}"
        exit 1
    fi
}

# On one line with main: bash reads a script as it runs it, and an edit made meanwhile must not
# be read after main returns.
main "$@"; exit
