#!/usr/bin/env bash
# ghost-localtests.sh: run gh-ost's own integration corpus (its localtests/
# directory) against alterego, to measure how many of gh-ost's cases it passes.
#
#   scripts/ghost-localtests.sh --ghost-repo PATH [--ref REF] [--only CASE,...]
#                               [--keep-going] [--work-dir DIR] [--timeout SECS]
#
# PATH is a local gh-ost checkout, or a bare git dir of one (its localtests/ is
# then extracted at REF, default HEAD, with `git archive`). Nothing is
# downloaded and nothing of gh-ost is copied into this repository.
#
# Each case directory holds create.sql (table `gh_ost_test`, usually plus an
# EVENT writing to it every second) and optionally extra_args (gh-ost flags,
# usually --alter), expect_failure (text the failing run must print),
# ignore_versions (a regex of server versions to skip), orig_columns /
# ghost_columns / order_by (what to compare), expect_table_structure (text
# SHOW CREATE TABLE of the result must contain), sql_mode, gtid_mode,
# before.sql / after.sql / destroy.sql, or a test.sh of its own.
#
# Per case, on the sandbox's primary (scripts/sandbox.sh up; started if needed):
#  1. SKIP when ignore_versions matches the server (@@version or
#     @@version_comment, case-insensitively), when gtid_mode asks for OFF
#     (MariaDB always logs GTIDs), for the `sysbench` case when sysbench is
#     missing, and for cases driven by their own test.sh (after a dry run, so
#     a flag alterego refuses is still named as the reason), except those whose
#     driver only runs SQL on the primary once the copy is complete: they run
#     as below, with that SQL run when alterego logs its copy done and the
#     swap held back INJECT_SETTLE_SECS more.
#  2. DROP/CREATE DATABASE test, set the case's sql_mode, run create.sql (the
#     `sysbench` case: `sysbench oltp_write_only prepare`, 20,000 rows in
#     sbtest1) and before.sql (primary and replica), with event_scheduler=ON.
#  3. Run target/release/alterego (built with `cargo build --release` when
#     missing) with the case's extra_args passed through as they are (alterego
#     reads gh-ost's flags) plus, unless the case sets them itself:
#       --database test --table gh_ost_test --alter engine=innodb --execute
#       --chunk-size 10 --chunk-time 0 --default-retries 3 (gh-ost's runner's)
#       --throttle-flag-file F --postpone-cut-over-flag-file P --verbose
#     The old table is kept as _gh_ost_test_del (no --ok-to-drop-table).
#     Writes DURING the run: the throttle file exists at the start, so the
#     copy waits 3 s while the event's writes reach the binlog
#     replay (rows not copied yet, new rows); then the copy runs in 10-row
#     chunks; the swap is then postponed until the run has lasted at least
#     6 s, the event still writing. Only then are the
#     writers stopped (every EVENT in `test` dropped, sysbench killed), 1.5 s
#     allowed for a running event to finish, and the postpone file removed,
#     so the cut-over is real and no write lands on one table only.
#  4. after.sql (primary and replica), sql_mode and max_binlog_cache_size put
#     back, destroy.sql.
#  5. Judge, like gh-ost's runner:
#     - exit 2 with "not supported by alterego yet", or the argument parser's
#       "unexpected argument": SKIP, naming the flag.
#     - expect_failure: alterego must fail (non-zero exit) and its output must
#       contain one of the file's lines (an empty file: any failure), or, in
#       its own words, refuse or fail cleanly (exit 1 or 3, no old table: the
#       swap never happened): a PASS that quotes alterego's message "in its
#       own words", to be checked against gh-ost's reason. Any other failure
#       is a FAIL that quotes alterego's error.
#     - otherwise exit 0 is required, _gh_ost_test_del must exist, SHOW CREATE
#       TABLE gh_ost_test must contain expect_table_structure, and
#       `SELECT ghost_columns FROM gh_ost_test` must equal
#       `SELECT orig_columns FROM _gh_ost_test_del` (both `*` by default,
#       ORDER BY order_by when given) row for row: both dumps (client output,
#       utf8mb4) are sorted bytewise and compared whole; the diff is logged.
#     - no exit within --timeout seconds (default 120): FAIL.
#
# Output: one line per case, `PASS|FAIL|SKIP case reason`, then the totals.
# The run stops at the first FAIL unless --keep-going (as gh-ost's runner
# does). Exit status 1 if any case failed. Per-case logs (alterego.log,
# setup.log, the dumps and their diff) are kept under the work directory
# (default: a new /tmp/alterego-ghost-localtests.XXXXXX), printed at the end.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

GHOST_REPO=""
REF=HEAD
ONLY=""
KEEP_GOING=0
WORK=""
TIMEOUT=120
THROTTLE_SECS=3      # copy held by the throttle flag file while the event writes
POSTPONE_SECS=3      # at least this much more writing before the writers stop
INJECT_SETTLE_SECS=3  # after SQL a driver script injects, before the swap may go ahead
DB="test"            # gh-ost's cases run create.sql in database `test`
BIN="$REPO_ROOT/target/release/alterego"

usage() {
    sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
    exit "${1:-2}"
}
die() { printf 'ghost-localtests: ERROR: %s\n' "$*" >&2; exit 1; }
say() { printf '%s\n' "$*"; }

while (($#)); do
    case "$1" in
        --ghost-repo) GHOST_REPO="${2:?--ghost-repo needs a path}"; shift 2 ;;
        --ghost-repo=*) GHOST_REPO="${1#*=}"; shift ;;
        --ref) REF="${2:?--ref needs a value}"; shift 2 ;;
        --ref=*) REF="${1#*=}"; shift ;;
        --only) ONLY="${2:?--only needs CASE,...}"; shift 2 ;;
        --only=*) ONLY="${1#*=}"; shift ;;
        --keep-going) KEEP_GOING=1; shift ;;
        --work-dir) WORK="${2:?--work-dir needs a path}"; shift 2 ;;
        --work-dir=*) WORK="${1#*=}"; shift ;;
        --timeout) TIMEOUT="${2:?--timeout needs seconds}"; shift 2 ;;
        --timeout=*) TIMEOUT="${1#*=}"; shift ;;
        -h|--help) usage 0 ;;
        *) printf 'ghost-localtests: unknown argument: %s\n' "$1" >&2; usage 2 ;;
    esac
done
[[ -n "$GHOST_REPO" ]] || { printf 'ghost-localtests: --ghost-repo is required\n' >&2; usage 2; }
[[ "$TIMEOUT" =~ ^[0-9]+$ ]] || die "--timeout takes whole seconds"

# ------------------------------------------------------------ work dir ---
if [[ -z "$WORK" ]]; then
    WORK="$(mktemp -d "${TMPDIR:-/tmp}/alterego-ghost-localtests.XXXXXX")"
else
    mkdir -p "$WORK"
fi
WORK="$(cd "$WORK" && pwd)"
mkdir -p "$WORK/cases"

# ---------------------------------------------------------- the corpus ---
# CASES: a directory holding one subdirectory per case.
if [[ -d "$GHOST_REPO/localtests" ]]; then
    CASES="$(cd "$GHOST_REPO/localtests" && pwd)"
    CORPUS="$CASES"
elif git --git-dir="$GHOST_REPO" rev-parse --verify --quiet HEAD >/dev/null 2>&1; then
    commit="$(git --git-dir="$GHOST_REPO" rev-parse --verify --quiet "$REF^{commit}")" ||
        die "$REF is not a commit in $GHOST_REPO"
    rm -rf "$WORK/src"; mkdir -p "$WORK/src"
    git --git-dir="$GHOST_REPO" archive "$commit" localtests | tar -x -C "$WORK/src" ||
        die "cannot extract localtests/ from $GHOST_REPO at $REF"
    CASES="$WORK/src/localtests"
    CORPUS="$GHOST_REPO at ${commit:0:12}"
else
    die "$GHOST_REPO is neither a gh-ost checkout (no localtests/) nor a bare git dir"
fi

mapfile -t ALL_CASES < <(find "$CASES" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | LC_ALL=C sort)
((${#ALL_CASES[@]})) || die "no cases under $CASES"
if [[ -n "$ONLY" ]]; then
    IFS=, read -r -a SELECTED <<<"$ONLY"
    for c in "${SELECTED[@]}"; do
        [[ -d "$CASES/$c" ]] || die "no case named '$c' under $CASES"
    done
else
    SELECTED=("${ALL_CASES[@]}")
fi

# ------------------------------------------------------------- binary ---
if [[ ! -x "$BIN" ]]; then
    say "building alterego (cargo build --release)"
    command -v cargo >/dev/null 2>&1 || die "cargo not found"
    cargo build --release --quiet
    [[ -x "$BIN" ]] || die "$BIN was not built"
fi

# ------------------------------------------------------------ sandbox ---
if ! scripts/sandbox.sh up >"$WORK/sandbox.log" 2>&1; then
    tail -n 20 "$WORK/sandbox.log" >&2
    die "scripts/sandbox.sh up failed (log: $WORK/sandbox.log)"
fi
SANDBOX_ENV="${SANDBOX_DIR:-$REPO_ROOT/.sandbox}/env"
# shellcheck source=/dev/null
. "$SANDBOX_ENV"
CLIENT="${SANDBOX_CLIENT:-mariadb}"
HOST="$SANDBOX_HOST"
PORT="$SANDBOX_PORT"
RPORT="$SANDBOX_REPLICA_PORT"
ERRLOG="${SANDBOX_DIR:-$REPO_ROOT/.sandbox}/primary.err"   # for the events' failures
export MYSQL_PWD="$SANDBOX_PASSWORD"   # the sandbox's throw-away password, for the client

# SQL on the primary (db) or the replica (dbr) as the sandbox's dba, over TCP.
db()  { "$CLIENT" --no-defaults -h"$HOST" -P"$PORT" -u"$SANDBOX_USER" --default-character-set=utf8mb4 "$@"; }
dbr() { "$CLIENT" --no-defaults -h"$HOST" -P"$RPORT" -u"$SANDBOX_USER" --default-character-set=utf8mb4 "$@"; }
q()   { db -N -B -e "$1"; }

VERSION="$(q 'SELECT @@version')"
VERSION_COMMENT="$(q 'SELECT @@version_comment')"
ORIG_EVENT_SCHEDULER="$(q 'SELECT @@global.event_scheduler')"
ORIG_SQL_MODE="$(q 'SELECT @@global.sql_mode')"
ORIG_SQL_MODE_R="$(dbr -N -B -e 'SELECT @@global.sql_mode')"
ORIG_BINLOG_CACHE="$(q 'SELECT @@global.max_binlog_cache_size')"
ORIG_BINLOG_CACHE_R="$(dbr -N -B -e 'SELECT @@global.max_binlog_cache_size')"
IS_MARIADB=0; [[ "$VERSION" == *MariaDB* ]] && IS_MARIADB=1

ALTEREGO_PID=""
SYSBENCH_PID=""
FLAG_FILES=()

restore_globals() {
    db -e "SET GLOBAL sql_mode = '$ORIG_SQL_MODE', GLOBAL max_binlog_cache_size = $ORIG_BINLOG_CACHE" >/dev/null 2>&1 || true
    dbr -e "SET GLOBAL sql_mode = '$ORIG_SQL_MODE_R', GLOBAL max_binlog_cache_size = $ORIG_BINLOG_CACHE_R" >/dev/null 2>&1 || true
}
cleanup() {
    if [[ -n "$ALTEREGO_PID" ]] && kill -0 "$ALTEREGO_PID" 2>/dev/null; then
        kill -TERM "$ALTEREGO_PID" 2>/dev/null || true
        wait "$ALTEREGO_PID" 2>/dev/null || true
    fi
    if [[ -n "$SYSBENCH_PID" ]] && kill -0 "$SYSBENCH_PID" 2>/dev/null; then
        kill -TERM "$SYSBENCH_PID" 2>/dev/null || true
        wait "$SYSBENCH_PID" 2>/dev/null || true
    fi
    ((${#FLAG_FILES[@]})) && rm -f "${FLAG_FILES[@]}"
    restore_globals
    q "SET GLOBAL event_scheduler = $ORIG_EVENT_SCHEDULER" >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'echo; echo "ghost-localtests: interrupted (logs: $WORK)"; exit 130' INT TERM

q 'SET GLOBAL event_scheduler = ON' || die "cannot turn the event scheduler on"

# ------------------------------------------------------------ helpers ---
now_ms() { local t=${EPOCHREALTIME//[.,]/}; echo $((t / 1000)); }

# The flag names (without dashes and value) among the given arguments.
flag_names() {
    local a
    for a in "$@"; do
        [[ "$a" == -[a-zA-Z-]* ]] || continue
        a="${a#-}"; a="${a#-}"; a="${a%%=*}"
        printf '%s\n' "$a"
    done
}
# The value of flag $1 among the remaining arguments (--f=v, --f v, -f=v, -f v).
flag_value() {
    local name=$1; shift
    local args=("$@") i a
    for ((i = 0; i < ${#args[@]}; i++)); do
        a="${args[i]}"
        case "$a" in
            -"$name"=*|--"$name"=*) printf '%s\n' "${a#*=}"; return 0 ;;
            -"$name"|--"$name") printf '%s\n' "${args[i+1]:-}"; return 0 ;;
        esac
    done
    return 1
}
has_flag() { local n=$1; shift; flag_names "$@" | grep -qx -- "$n"; }

# The first error line alterego printed, else the log's last line.
alterego_error() {
    local log=$1 line
    line="$(grep -m1 -E '^alterego: |^error: ' "$log" || true)"
    [[ -n "$line" ]] || line="$(grep -m1 -iE '\b(ERROR|FATAL)\b' "$log" || true)"
    [[ -n "$line" ]] || line="$(tail -n 1 "$log" || true)"
    printf '%s' "${line:0:300}"
}

# Stop everything writing to the test database: drop its events (an execution
# already running finishes), kill sysbench, then give them a moment.
stop_writers() {
    local ev
    while read -r ev; do
        [[ -n "$ev" ]] && q "DROP EVENT IF EXISTS \`$DB\`.\`$ev\`"
    done < <(q "SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = '$DB'" 2>/dev/null || true)
    if [[ -n "$SYSBENCH_PID" ]]; then
        kill -TERM "$SYSBENCH_PID" 2>/dev/null || true
        wait "$SYSBENCH_PID" 2>/dev/null || true
        SYSBENCH_PID=""
    fi
    sleep 1.5
}

sysbench_args() {
    printf '%s\n' oltp_write_only --db-driver=mysql --mysql-host="$HOST" --mysql-port="$PORT" \
        --mysql-user="$SANDBOX_USER" --mysql-password="$SANDBOX_PASSWORD" --mysql-db="$DB" --tables=1
}

# Fresh database, the case's sql_mode, create.sql (or sysbench's table) and
# before.sql. Returns non-zero at the first step that fails.
setup_case() {
    local dir=$1 name=$2 mode sb
    echo "== drop/create database $DB"
    db -e "DROP DATABASE IF EXISTS \`$DB\`; CREATE DATABASE \`$DB\`" || return 1
    if [[ -f "$dir/sql_mode" ]]; then
        mode="$(tr -d '\n\r' <"$dir/sql_mode")"
        echo "== sql_mode '$mode'"
        db -e "SET GLOBAL sql_mode = '$mode'" || return 1
        dbr -e "SET GLOBAL sql_mode = '$mode'" || return 1
    fi
    echo "== create.sql"
    db "$DB" <"$dir/create.sql" || return 1
    if [[ "$name" == sysbench ]]; then
        echo "== sysbench prepare"
        mapfile -t sb < <(sysbench_args)
        sysbench "${sb[@]}" --table-size=20000 prepare || return 1
    fi
    if [[ -f "$dir/before.sql" ]]; then
        echo "== before.sql"
        db "$DB" <"$dir/before.sql" || return 1
        dbr "$DB" <"$dir/before.sql" || return 1
    fi
}

# ---------------------------------------------------------- one case ---
STATUS=""
REASON=""
result() { STATUS=$1; REASON=$2; }

# The SQL a case's own driver script (test.sh) runs on the primary once gh-ost reports its row
# copy complete, when that is the one thing it adds to the usual run: the statements of a
# `gh-ost-test-mysql-master test << 'EOF'` here-document, or of `... test -e "..."`. Such a case
# runs like the others, with that SQL run once alterego logs its copy done (`copied N rows in`)
# and the swap held back a few seconds more for its replay. Other drivers: nothing (status 1).
injected_sql() {
    local script=$1
    grep -q 'Row copy complete' "$script" && grep -q 'gh-ost-test-mysql-master' "$script" || return 1
    awk '
        /gh-ost-test-mysql-master [a-z_]+ *<< *.?EOF.?/ { inside = 1; next }
        inside && /^EOF$/ { inside = 0; next }
        inside { print; next }
        /gh-ost-test-mysql-master [a-z_]+ -e "/ { s = $0; sub(/.*-e "/, "", s); sub(/"[^"]*$/, "", s); print s ";" }
    ' "$script"
}

run_case() {
    local name=$1
    local dir="$CASES/$name" out="$WORK/cases/$name"
    local table=gh_ost_test
    rm -rf "$out"; mkdir -p "$out"
    local setup="$out/setup.log" log="$out/alterego.log"
    : >"$setup"

    # ---- requirements
    if [[ -f "$dir/ignore_versions" ]]; then
        local iv
        iv="$(tr -d '\n\r' <"$dir/ignore_versions")"
        if [[ -n "$iv" ]] && { grep -Eiq "^${iv}" <<<"$VERSION" || grep -Eiq "^${iv}" <<<"$VERSION_COMMENT"; }; then
            result SKIP "ignore_versions '$iv' excludes $VERSION ($VERSION_COMMENT)"; return
        fi
    fi
    if [[ -f "$dir/gtid_mode" ]]; then
        local gm
        gm="$(tr -d ' \n\r' <"$dir/gtid_mode")"
        if ((IS_MARIADB)) && [[ "$gm" != ON ]]; then
            result SKIP "needs gtid_mode=$gm; MariaDB always logs GTIDs"; return
        fi
        if ((!IS_MARIADB)) && [[ "$(q 'SELECT @@global.gtid_mode' 2>/dev/null)" != "$gm" ]]; then
            result SKIP "needs gtid_mode=$gm"; return
        fi
    fi
    if [[ "$name" == sysbench ]]; then
        command -v sysbench >/dev/null 2>&1 || { result SKIP "sysbench is not installed"; return; }
        table=sbtest1
    fi
    [[ -f "$dir/create.sql" ]] || { result SKIP "no create.sql"; return; }

    # ---- arguments
    local extra=()
    if [[ -f "$dir/extra_args" ]]; then
        # Shell-style quotes, as gh-ost's runner reads them, without evaluating anything.
        mapfile -d '' -t extra < <(tr '\n' ' ' <"$dir/extra_args" | xargs -r printf '%s\0') ||
            { result FAIL "cannot parse extra_args"; return; }
    fi
    local throttle_file postpone_file
    throttle_file="$(flag_value throttle-flag-file "${extra[@]}")" || throttle_file="$out/throttle.flag"
    postpone_file="$(flag_value postpone-cut-over-flag-file "${extra[@]}")" || postpone_file="$out/postpone.flag"
    FLAG_FILES=("$throttle_file" "$postpone_file")
    local args=(--host "$HOST" --port "$PORT" --user "$SANDBOX_USER")
    local defaults=(
        "database=$DB" "table=$table" "alter=engine=innodb" "execute=" "chunk-size=10" "chunk-time=0"
        "default-retries=3" "throttle-flag-file=$throttle_file"
        "postpone-cut-over-flag-file=$postpone_file" "verbose=" "progress=false"
    )
    local d n v
    for d in "${defaults[@]}"; do
        n="${d%%=*}"; v="${d#*=}"
        has_flag "$n" "${extra[@]}" && continue
        if [[ -z "$v" ]]; then args+=("--$n"); else args+=("--$n=$v"); fi
    done
    args+=("${extra[@]}")
    printf '%q ' "$BIN" "${args[@]}" >"$out/command"; echo >>"$out/command"

    # ---- setup
    if ! setup_case "$dir" "$name" >>"$setup" 2>&1; then
        restore_globals
        stop_writers
        result FAIL "setup failed: $(grep -m1 -E 'ERROR|FATAL' "$setup" || tail -n 1 "$setup")"; return
    fi
    # Let the replica catch up before the run, as gh-ost's runner does.
    if ((IS_MARIADB)); then
        local pos
        pos="$(q 'SELECT @@global.gtid_binlog_pos')"
        [[ -z "$pos" ]] || dbr -N -B -e "SELECT MASTER_GTID_WAIT('$pos', 10)" >>"$setup" 2>&1 || true
    fi

    # ---- a case with a driver of its own: run when it only injects SQL after the copy (see
    # injected_sql), else a dry run only, for the flags
    local inject=""
    [[ -f "$dir/test.sh" ]] && inject="$(injected_sql "$dir/test.sh")" || true
    if [[ -f "$dir/test.sh" && -z "$inject" ]]; then
        local dry=() a
        for a in "${args[@]}"; do [[ "$a" == --execute ]] || dry+=("$a"); done
        local rc=0
        ALTEREGO_PASSWORD="$SANDBOX_PASSWORD" timeout 60 "$BIN" "${dry[@]}" >"$log" 2>&1 </dev/null || rc=$?
        restore_globals
        stop_writers
        if ((rc == 2)) && grep -q 'not supported by alterego yet' "$log"; then
            result SKIP "$(alterego_error "$log" | sed 's/^alterego: invalid usage: //')"
        elif ((rc == 2)) && grep -q "unexpected argument '-" "$log"; then
            result SKIP "unknown to alterego: $(grep -o -m1 "unexpected argument '[^']*'" "$log" | sed "s/unexpected argument //")"
        else
            result SKIP "driven by its own test.sh (gh-ost-specific steps), not reproduced (dry run exit $rc)"
        fi
        return
    fi

    # ---- the run
    local rows_before
    rows_before="$(q "SELECT COUNT(*) FROM \`$DB\`.\`$table\`" 2>/dev/null || echo '?')"
    local errlog_from=0
    [[ -r "$ERRLOG" ]] && errlog_from=$(stat -c %s "$ERRLOG")
    touch "$throttle_file" "$postpone_file"
    if [[ "$name" == sysbench ]]; then
        mapfile -t sb < <(sysbench_args)
        sysbench "${sb[@]}" --rand-seed=163 --threads=2 --time=$((TIMEOUT + 30)) --rate=200 \
            --report-interval=10 run >"$out/sysbench.log" 2>&1 &
        SYSBENCH_PID=$!
    fi
    local start rc=0 elapsed throttled=1 stopped=0 timed_out=0 rows_at_stop="?" injected_at=0
    start=$(now_ms)
    ALTEREGO_PASSWORD="$SANDBOX_PASSWORD" "$BIN" "${args[@]}" >"$log" 2>&1 </dev/null &
    ALTEREGO_PID=$!
    while kill -0 "$ALTEREGO_PID" 2>/dev/null; do
        elapsed=$(($(now_ms) - start))
        if ((throttled && elapsed >= THROTTLE_SECS * 1000)); then
            rm -f "$throttle_file"; throttled=0
        fi
        if [[ -n "$inject" ]] && ((!injected_at)) && grep -q 'copied [0-9]* rows in' "$log"; then
            { echo "== SQL injected after the copy (test.sh)"; db "$DB" <<<"$inject"; } >>"$setup" 2>&1 ||
                echo "(the injected SQL reported errors)" >>"$setup"
            injected_at=$(now_ms)
        fi
        if ((!throttled && !stopped && elapsed >= (THROTTLE_SECS + POSTPONE_SECS) * 1000)) &&
            { [[ -z "$inject" ]] || ((injected_at && $(now_ms) - injected_at >= INJECT_SETTLE_SECS * 1000)); } &&
            grep -q 'cut-over postponed while' "$log"; then
            stop_writers
            rows_at_stop="$(q "SELECT COUNT(*) FROM \`$DB\`.\`$table\`" 2>/dev/null || echo '?')"
            stopped=1
            rm -f "$postpone_file"
        fi
        if ((elapsed >= TIMEOUT * 1000)); then
            timed_out=1
            kill -TERM "$ALTEREGO_PID" 2>/dev/null || true
            local i
            for ((i = 0; i < 50; i++)); do kill -0 "$ALTEREGO_PID" 2>/dev/null || break; sleep 0.2; done
            kill -KILL "$ALTEREGO_PID" 2>/dev/null || true
            break
        fi
        sleep 0.2
    done
    wait "$ALTEREGO_PID" 2>/dev/null || rc=$?
    ALTEREGO_PID=""
    elapsed=$(($(now_ms) - start))
    ((stopped)) || { stop_writers; rows_at_stop="$(q "SELECT COUNT(*) FROM \`$DB\`.\`$table\`" 2>/dev/null || echo '?')"; }
    rm -f "$throttle_file" "$postpone_file"
    echo "alterego exit $rc after ${elapsed} ms; $table rows: $rows_before before the run, $rows_at_stop when the writers stopped" >>"$setup"
    # Statements of the case's event that failed during the run (they wrote nothing).
    local event_errors=0 note=""
    if [[ -r "$ERRLOG" ]]; then
        tail -c +$((errlog_from + 1)) "$ERRLOG" | grep -E "\[ERROR\] Event Scheduler: .*\[$DB\." >"$out/event-errors.log" || true
        event_errors=$(wc -l <"$out/event-errors.log")
        if ((event_errors)); then
            note="; $event_errors event errors, e.g. $(head -n 1 "$out/event-errors.log" | sed 's/.*\] //' | cut -c1-80)"
            echo "$event_errors failed event executions during the run (event-errors.log)" >>"$setup"
        fi
    fi

    # ---- teardown, as gh-ost's runner
    {
        restore_globals
        if [[ -f "$dir/after.sql" ]]; then
            echo "== after.sql"; db "$DB" <"$dir/after.sql"; dbr "$DB" <"$dir/after.sql"
        fi
        restore_globals
        if [[ -f "$dir/destroy.sql" ]]; then
            echo "== destroy.sql"; db "$DB" <"$dir/destroy.sql"
        fi
    } >>"$setup" 2>&1 || echo "(teardown reported errors)" >>"$setup"

    # ---- judge
    if ((timed_out)); then
        result FAIL "no exit within ${TIMEOUT}s (killed); last line: $(tail -n 1 "$log")"; return
    fi
    if ((rc == 2)) && grep -q 'not supported by alterego yet' "$log"; then
        result SKIP "$(alterego_error "$log" | sed 's/^alterego: invalid usage: //')"; return
    fi
    if ((rc == 2)) && grep -q "unexpected argument '-" "$log"; then
        result SKIP "unknown to alterego: $(grep -o -m1 "unexpected argument '[^']*'" "$log" | sed "s/unexpected argument //")"; return
    fi
    if [[ -f "$dir/expect_failure" ]]; then
        grep -v '^[[:space:]]*$' "$dir/expect_failure" >"$out/expected_messages" || true
        if ((rc == 0)); then
            result FAIL "expected a failure ('$(head -n 1 "$out/expected_messages")'), but alterego succeeded"; return
        fi
        if [[ ! -s "$out/expected_messages" ]]; then
            result PASS "failed as expected (exit $rc): $(alterego_error "$log")"; return
        fi
        if grep -qF -f "$out/expected_messages" "$log"; then
            result PASS "failed as expected (exit $rc) with '$(head -n 1 "$out/expected_messages")'"; return
        fi
        # gh-ost's wording is gh-ost's own: a refusal (exit 1 or 3) that swapped nothing counts,
        # with alterego's words shown so that the reason can be checked against gh-ost's.
        if ((rc == 1 || rc == 3)) && [[ "$(q "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA='$DB' AND TABLE_NAME='_${table}_del'")" == 0 ]]; then
            result PASS "refused as expected, in its own words (exit $rc; gh-ost: '$(head -n 1 "$out/expected_messages")'): $(alterego_error "$log")"; return
        fi
        result FAIL "failed (exit $rc) but without '$(head -n 1 "$out/expected_messages")': $(alterego_error "$log")"; return
    fi
    if ((rc != 0)); then
        result FAIL "exit $rc: $(alterego_error "$log")"; return
    fi
    local old="_${table}_del"
    if [[ "$(q "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA='$DB' AND TABLE_NAME='$old'")" != 1 ]]; then
        if grep -q 'ALGORITHM=INSTANT' "$log"; then
            result PASS "altered in place with ALGORITHM=INSTANT (no copy, nothing to compare)"; return
        fi
        result FAIL "exit 0 but no $old table to compare with"; return
    fi
    q "SHOW CREATE TABLE \`$DB\`.\`$table\`" >"$out/result.structure.sql" 2>&1 || true
    if [[ -f "$dir/expect_table_structure" ]]; then
        local want
        want="$(tr -d '\n\r' <"$dir/expect_table_structure")"
        if ! grep -qF -- "$want" "$out/result.structure.sql"; then
            result FAIL "SHOW CREATE TABLE $table lacks '$want' (got: $(grep -o 'AUTO_INCREMENT=[0-9]*' "$out/result.structure.sql" || echo 'no AUTO_INCREMENT='))"
            return
        fi
    fi
    local orig_cols='*' ghost_cols='*' order=""
    [[ -f "$dir/orig_columns" ]] && orig_cols="$(tr '\n\r' '  ' <"$dir/orig_columns")"
    [[ -f "$dir/ghost_columns" ]] && ghost_cols="$(tr '\n\r' '  ' <"$dir/ghost_columns")"
    [[ -f "$dir/order_by" ]] && order="ORDER BY $(tr '\n\r' '  ' <"$dir/order_by")"
    if ! db -N -B "$DB" -e "SELECT $orig_cols FROM \`$old\` $order" >"$out/orig.txt" 2>"$out/orig.err" ||
        ! db -N -B "$DB" -e "SELECT $ghost_cols FROM \`$table\` $order" >"$out/ghost.txt" 2>"$out/ghost.err"; then
        result FAIL "cannot read the tables to compare: $(cat "$out/orig.err" "$out/ghost.err" 2>/dev/null | head -n 1)"; return
    fi
    LC_ALL=C sort "$out/orig.txt" >"$out/orig.sorted"
    LC_ALL=C sort "$out/ghost.txt" >"$out/ghost.sorted"
    local nrows
    nrows=$(wc -l <"$out/orig.sorted")
    if cmp -s "$out/orig.sorted" "$out/ghost.sorted"; then
        result PASS "$nrows rows equal ($table: $rows_before rows before, $rows_at_stop when the writers stopped; ${elapsed} ms$note)"
        return
    fi
    diff "$out/orig.sorted" "$out/ghost.sorted" >"$out/diff.txt" || true
    local only_orig only_ghost
    only_orig=$(grep -c '^<' "$out/diff.txt" || true)
    only_ghost=$(grep -c '^>' "$out/diff.txt" || true)
    result FAIL "data mismatch: $only_orig rows only in $old, $only_ghost only in $table (of $nrows; diff in $out/diff.txt), e.g. $(grep -m1 '^[<>]' "$out/diff.txt" | cut -c1-120)"
}

# ---------------------------------------------------------------- main ---
say "gh-ost localtests against alterego"
say "  corpus:  $CORPUS (${#SELECTED[@]} of ${#ALL_CASES[@]} cases)"
say "  server:  $VERSION ($VERSION_COMMENT) at $HOST:$PORT, replica :$RPORT"
say "  binary:  $BIN"
say "  logs:    $WORK"
say ""

pass=0 fail=0 skip=0 run=0 other_message=0
: >"$WORK/results.txt"
for c in "${SELECTED[@]}"; do
    STATUS=""; REASON=""
    run_case "$c"
    run=$((run + 1))
    line="$(printf '%s %s %s' "$STATUS" "$c" "$REASON")"
    say "$line"
    say "$line" >>"$WORK/results.txt"
    case "$STATUS" in
        PASS) pass=$((pass + 1)) ;;
        SKIP) skip=$((skip + 1)) ;;
        *) fail=$((fail + 1))
           [[ "$REASON" == "failed (exit "* ]] && other_message=$((other_message + 1))
           if ((!KEEP_GOING)); then
               say "(stopping at the first FAIL; --keep-going runs the rest)"
               break
           fi ;;
    esac
done

say ""
say "totals: $pass PASS, $fail FAIL, $skip SKIP ($run of ${#SELECTED[@]} cases run)"
((other_message == 0)) ||
    say "        $other_message of the FAILs are expected failures where alterego failed too, with its own message"
say "logs: $WORK (results.txt; cases/<case>/alterego.log, setup.log, command, dumps, diff.txt)"
((fail == 0))
