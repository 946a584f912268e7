#!/usr/bin/env bash
# sandbox.sh up|down|status
#
# Runs a throw-away local MariaDB (or MySQL) primary + replica for alterego's
# tests and demo, using the server binary installed on this machine (no Docker).
#
#   up      create/start primary (port $SANDBOX_PORT, default 23306) and replica
#           ($SANDBOX_REPLICA_PORT, default 23307), binlog ROW/FULL, GTID
#           replication, user dba/sandbox with all privileges. Idempotent.
#   down    stop both servers and delete all sandbox state (<repo>/.sandbox/).
#   status  show whether each server runs, its port and the replication state.
#           Exits 0 if both servers are running, 3 otherwise.
#
# State lives in $SANDBOX_DIR (default <repo>/.sandbox/): primary/ and replica/ data dirs, *.sock,
# *.pid, *.err (error logs) and `env`, a KEY=VALUE file you can source:
#   set -a; . .sandbox/env; set +a
# If mariadbd/mysqld is missing it installs mariadb-server + mariadb-client
# with apt-get (through sudo when not root).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SB="${SANDBOX_DIR:-$REPO_ROOT/.sandbox}"
ENV_FILE="$SB/env"
HOST=127.0.0.1
DBA_USER=dba
DBA_PASSWORD=sandbox
REPL_USER=repl
REPL_PASSWORD=sandbox
WAIT_SECS=60
RUN_USER="$(id -un)"

log() { printf '[sandbox] %s\n' "$*"; }
die() { printf '[sandbox] ERROR: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- binaries ---

find_bin() {
    local n d
    for n in "$@"; do
        if command -v "$n" >/dev/null 2>&1; then command -v "$n"; return 0; fi
        for d in /usr/sbin /usr/local/sbin /usr/libexec /usr/local/mysql/bin; do
            if [[ -x "$d/$n" ]]; then echo "$d/$n"; return 0; fi
        done
    done
    return 1
}

install_mariadb() {
    command -v apt-get >/dev/null 2>&1 ||
        die "neither mariadbd nor mysqld found and apt-get is unavailable; install MariaDB (10.6+) yourself"
    local sudo=()
    if [[ "$(id -u)" -ne 0 ]]; then
        command -v sudo >/dev/null 2>&1 || die "mariadbd not found; run as root or install sudo (or install mariadb-server yourself)"
        sudo=(sudo)
    fi
    log "mariadbd/mysqld not found: installing mariadb-server mariadb-client with apt-get"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q mariadb-server mariadb-client
}

resolve_binaries() {
    SERVER="$(find_bin mariadbd mysqld)" || { install_mariadb; SERVER="$(find_bin mariadbd mysqld)" ||
        die "mariadbd still not found after installing mariadb-server"; }
    if "$SERVER" --version 2>/dev/null | grep -qi mariadb; then
        FLAVOR=mariadb
        CLIENT="$(find_bin mariadb mysql)" || die "no mariadb/mysql client found (apt-get install mariadb-client)"
        ADMIN="$(find_bin mariadb-admin mysqladmin)" || die "no mariadb-admin/mysqladmin found"
        INSTALL_DB="$(find_bin mariadb-install-db mysql_install_db)" || die "no mariadb-install-db found"
    else
        FLAVOR=mysql   # Oracle MySQL 8.0+
        CLIENT="$(find_bin mysql mariadb)" || die "no mysql client found"
        ADMIN="$(find_bin mysqladmin mariadb-admin)" || die "no mysqladmin found"
        INSTALL_DB=""
    fi
}

# ------------------------------------------------------------------- state ---

# Ports: an already running server keeps the port recorded in .sandbox/env;
# otherwise SANDBOX_PORT / SANDBOX_REPLICA_PORT (defaults 23306 / 23307).
load_ports() {
    local rec_p="" rec_r=""
    if [[ -f "$ENV_FILE" ]]; then
        rec_p="$(sed -n 's/^SANDBOX_PORT=//p' "$ENV_FILE")"
        rec_r="$(sed -n 's/^SANDBOX_REPLICA_PORT=//p' "$ENV_FILE")"
    fi
    PRIMARY_PORT="${SANDBOX_PORT:-23306}"
    REPLICA_PORT="${SANDBOX_REPLICA_PORT:-23307}"
    if [[ -n "$rec_p" ]] && is_alive primary; then
        [[ -n "${SANDBOX_PORT:-}" && "$rec_p" != "$PRIMARY_PORT" ]] && log "note: primary already runs on port $rec_p (run 'down' first to change it)"
        PRIMARY_PORT="$rec_p"
    fi
    if [[ -n "$rec_r" ]] && is_alive replica; then
        [[ -n "${SANDBOX_REPLICA_PORT:-}" && "$rec_r" != "$REPLICA_PORT" ]] && log "note: replica already runs on port $rec_r (run 'down' first to change it)"
        REPLICA_PORT="$rec_r"
    fi
}

port_of()   { if [[ $1 == primary ]]; then echo "$PRIMARY_PORT"; else echo "$REPLICA_PORT"; fi; }
id_of()     { if [[ $1 == primary ]]; then echo 1; else echo 2; fi; }
envvar_of() { if [[ $1 == primary ]]; then echo SANDBOX_PORT; else echo SANDBOX_REPLICA_PORT; fi; }
sock_of()   { echo "$SB/$1.sock"; }
pidf_of()   { echo "$SB/$1.pid"; }
errlog_of() { echo "$SB/$1.err"; }

# PID from the pid file if that process is alive and is a mysql/mariadb server.
server_pid() {
    local pidf pid
    pidf="$(pidf_of "$1")"
    [[ -s "$pidf" ]] || return 1
    pid="$(tr -dc '0-9' <"$pidf")"
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
    if [[ -r "/proc/$pid/cmdline" ]]; then
        tr '\0' ' ' <"/proc/$pid/cmdline" | grep -Eq 'mariadbd|mysqld' || return 1
    fi
    echo "$pid"
}
is_alive() { server_pid "$1" >/dev/null; }

ping_ok() { "$ADMIN" --no-defaults -uroot --socket="$(sock_of "$1")" --connect-timeout=2 ping >/dev/null 2>&1; }
is_running() { is_alive "$1" && ping_ok "$1"; }

# Run SQL as root over the server's unix socket.
sql() {
    local who=$1; shift
    "$CLIENT" --no-defaults -uroot --socket="$(sock_of "$who")" --batch --skip-column-names "$@"
}

port_in_use() {
    local port=$1
    if command -v ss >/dev/null 2>&1 && ss -Htln "sport = :$port" 2>/dev/null | grep -q .; then
        return 0
    fi
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null
}

write_env() {
    mkdir -p "$SB"
    cat >"$ENV_FILE" <<EOF
# Written by scripts/sandbox.sh. Source it: set -a; . .sandbox/env; set +a
SANDBOX_HOST=$HOST
SANDBOX_PORT=$PRIMARY_PORT
SANDBOX_REPLICA_PORT=$REPLICA_PORT
SANDBOX_SOCKET=$(sock_of primary)
SANDBOX_REPLICA_SOCKET=$(sock_of replica)
SANDBOX_USER=$DBA_USER
SANDBOX_PASSWORD=$DBA_PASSWORD
SANDBOX_FLAVOR=$FLAVOR
SANDBOX_CLIENT=$CLIENT
EOF
}

# ----------------------------------------------------------------- servers ---

init_datadir() {
    local who=$1 dd="$SB/$1"
    [[ -d "$dd/mysql" ]] && return 0
    log "initializing $who data dir $dd"
    rm -rf "$dd"; mkdir -p "$dd"
    local ilog="$SB/$who-install.log"
    if [[ $FLAVOR == mariadb ]]; then
        "$INSTALL_DB" --no-defaults --auth-root-authentication-method=normal --skip-test-db \
            --user="$RUN_USER" --datadir="$dd" >"$ilog" 2>&1 ||
            { tail -n 30 "$ilog" >&2; die "mariadb-install-db failed for $who (log: $ilog)"; }
    else
        rmdir "$dd"   # mysqld --initialize wants to create it
        "$SERVER" --no-defaults --initialize-insecure --user="$RUN_USER" --datadir="$dd" >"$ilog" 2>&1 ||
            { tail -n 30 "$ilog" >&2; die "mysqld --initialize-insecure failed for $who (log: $ilog)"; }
    fi
}

start_server() {
    local who=$1 port sock pidf errlog
    port="$(port_of "$who")"; sock="$(sock_of "$who")"
    pidf="$(pidf_of "$who")"; errlog="$(errlog_of "$who")"
    if is_running "$who"; then return 0; fi
    if is_alive "$who"; then
        die "$who has a live process (pid $(server_pid "$who")) that does not answer; run '$0 down' and retry"
    fi
    (( ${#sock} < 100 )) || die "socket path too long for a unix socket: $sock (move the repo to a shorter path)"
    if port_in_use "$port"; then
        die "port $port (for the $who) is already in use; pick a free one with $(envvar_of "$who")=<port> $0 up"
    fi
    init_datadir "$who"
    rm -f "$sock" "$pidf"

    local args=(
        --no-defaults
        --user="$RUN_USER"
        --datadir="$SB/$who"
        --socket="$sock"
        --port="$port"
        --bind-address="$HOST"
        --pid-file="$pidf"
        --log-error="$errlog"
        --server-id="$(id_of "$who")"
        --log-bin=mysql-bin
        --relay-log=relay-bin
        --binlog-format=ROW
        --binlog-row-image=FULL
        --innodb-buffer-pool-size=1G
        --innodb-log-file-size=512M
        --max-connections=500
        --skip-name-resolve
        --character-set-server=utf8mb4
        --report-host="$HOST"
        --report-port="$port"
    )
    if [[ $FLAVOR == mariadb ]]; then
        args+=(--log-slave-updates --collation-server=utf8mb4_general_ci)
    else
        args+=(--log-replica-updates --gtid-mode=ON --enforce-gtid-consistency=ON --mysqlx=OFF)
    fi

    log "starting $who on $HOST:$port ($("$SERVER" --version | sed 's/^.*Ver //'))"
    # setsid: detach from our session so Ctrl-C in a caller does not kill it.
    setsid "$SERVER" "${args[@]}" </dev/null >>"$errlog" 2>&1 &

    local i
    for ((i = 0; i < WAIT_SECS * 2; i++)); do
        if ping_ok "$who" && [[ -s "$pidf" ]]; then
            log "$who is up (pid $(tr -dc '0-9' <"$pidf"))"
            return 0
        fi
        sleep 0.5
    done
    echo "----- last lines of $errlog -----" >&2
    tail -n 40 "$errlog" >&2 || true
    die "$who did not answer within ${WAIT_SECS}s"
}

setup_primary_users() {
    local anon=""
    [[ $FLAVOR == mariadb ]] && anon="DROP USER IF EXISTS ''@'localhost'; DROP USER IF EXISTS ''@'$(hostname)';"
    sql primary <<EOF
$anon
CREATE USER IF NOT EXISTS '$DBA_USER'@'%' IDENTIFIED BY '$DBA_PASSWORD';
CREATE USER IF NOT EXISTS '$DBA_USER'@'localhost' IDENTIFIED BY '$DBA_PASSWORD';
GRANT ALL PRIVILEGES ON *.* TO '$DBA_USER'@'%' WITH GRANT OPTION;
GRANT ALL PRIVILEGES ON *.* TO '$DBA_USER'@'localhost' WITH GRANT OPTION;
CREATE USER IF NOT EXISTS '$REPL_USER'@'%' IDENTIFIED BY '$REPL_PASSWORD';
GRANT REPLICATION SLAVE ON *.* TO '$REPL_USER'@'%';
EOF
}

# "Key: value" field of SHOW SLAVE/REPLICA STATUS on the replica ('' if none).
repl_field() {
    local stmt="SHOW SLAVE STATUS"
    [[ $FLAVOR == mysql ]] && stmt="SHOW REPLICA STATUS"
    "$CLIENT" --no-defaults -uroot --socket="$(sock_of replica)" -e "$stmt\\G" 2>/dev/null |
        sed -n "s/^ *$1: //p" | head -n1
}
io_field()  { if [[ $FLAVOR == mysql ]]; then echo Replica_IO_Running; else echo Slave_IO_Running; fi; }
sqlt_field() { if [[ $FLAVOR == mysql ]]; then echo Replica_SQL_Running; else echo Slave_SQL_Running; fi; }
lag_field() { if [[ $FLAVOR == mysql ]]; then echo Seconds_Behind_Source; else echo Seconds_Behind_Master; fi; }

setup_replication() {
    if [[ -z "$(repl_field "$(io_field)")" ]]; then
        log "pointing replica at primary 127.0.0.1:$PRIMARY_PORT (GTID)"
        if [[ $FLAVOR == mariadb ]]; then
            sql replica -e "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=$PRIMARY_PORT,
                MASTER_USER='$REPL_USER', MASTER_PASSWORD='$REPL_PASSWORD', MASTER_USE_GTID=slave_pos;
                START SLAVE;"
        else
            sql replica -e "CHANGE REPLICATION SOURCE TO SOURCE_HOST='127.0.0.1', SOURCE_PORT=$PRIMARY_PORT,
                SOURCE_USER='$REPL_USER', SOURCE_PASSWORD='$REPL_PASSWORD', SOURCE_AUTO_POSITION=1,
                GET_SOURCE_PUBLIC_KEY=1; START REPLICA;"
        fi
    elif [[ "$(repl_field "$(io_field)")" != Yes ]]; then
        if [[ $FLAVOR == mariadb ]]; then sql replica -e "START SLAVE"; else sql replica -e "START REPLICA"; fi
    fi

    local i io=""
    for ((i = 0; i < WAIT_SECS * 2; i++)); do
        io="$(repl_field "$(io_field)")"
        [[ $io == Yes ]] && break
        sleep 0.5
    done
    if [[ $io != Yes ]]; then
        local stmt="SHOW SLAVE STATUS"
        [[ $FLAVOR == mysql ]] && stmt="SHOW REPLICA STATUS"
        "$CLIENT" --no-defaults -uroot --socket="$(sock_of replica)" -e "$stmt\\G" >&2 || true
        die "replica IO thread not running after ${WAIT_SECS}s ($(io_field): ${io:-none})"
    fi
    # Wait until the replica has applied everything the primary has so far
    # (e.g. the dba user), so callers can use it right away.
    if [[ $FLAVOR == mariadb ]]; then
        local pos
        pos="$(sql primary -e "SELECT @@GLOBAL.gtid_binlog_pos")"
        if [[ -n "$pos" ]]; then
            [[ "$(sql replica -e "SELECT MASTER_GTID_WAIT('$pos', $WAIT_SECS)")" == 0 ]] ||
                log "warning: replica did not catch up to $pos within ${WAIT_SECS}s"
        fi
    else
        local gtid_set
        gtid_set="$(sql primary -e "SELECT @@GLOBAL.gtid_executed" | tr -d '\n')"
        [[ -z "$gtid_set" ]] || sql replica -e "SELECT WAIT_FOR_EXECUTED_GTID_SET('$gtid_set', $WAIT_SECS)" >/dev/null
    fi
    log "replication running ($(io_field)=Yes)"
}

stop_server() {
    local who=$1 pid="" i
    # Remember the pid first: the server deletes its pid file before it exits.
    pid="$(server_pid "$who")" || pid=""
    if ping_ok "$who"; then
        log "shutting down $who"
        "$ADMIN" --no-defaults -uroot --socket="$(sock_of "$who")" shutdown >/dev/null 2>&1 || true
    fi
    if [[ -n "$pid" ]]; then
        for ((i = 0; i < 60; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
        if kill -0 "$pid" 2>/dev/null; then
            log "$who (pid $pid) still alive: sending SIGTERM"
            kill -TERM "$pid" 2>/dev/null || true
            for ((i = 0; i < 60; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
        fi
        if kill -0 "$pid" 2>/dev/null; then
            log "$who (pid $pid) still alive: sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.5
        fi
    fi
    log "$who stopped"
}

# --------------------------------------------------------------- commands ---

print_connect_help() {
    local cli
    cli="$(basename "$CLIENT")"
    cat <<EOF

Connect:
  primary:  $cli -h$HOST -P$PRIMARY_PORT -u$DBA_USER -p$DBA_PASSWORD
  replica:  $cli -h$HOST -P$REPLICA_PORT -u$DBA_USER -p$DBA_PASSWORD
  socket:   $cli -S $(sock_of primary) -u$DBA_USER -p$DBA_PASSWORD
Run alterego against it:
  export ALTEREGO_PASSWORD=$DBA_PASSWORD; alterego --host $HOST --port $PRIMARY_PORT --user $DBA_USER --database <db> --table <table> --alter "<alter>" --execute
Environment for scripts/tests:
  set -a; . $ENV_FILE; set +a
EOF
}

cmd_status() {
    local who rc=0 pid
    for who in primary replica; do
        if is_running "$who"; then
            pid="$(server_pid "$who")"
            printf '%-8s running  port %s  pid %s  socket %s\n' "$who:" "$(port_of "$who")" "$pid" "$(sock_of "$who")"
        else
            printf '%-8s stopped  (port %s)\n' "$who:" "$(port_of "$who")"
            rc=3
        fi
    done
    if is_running replica; then
        local io sqlt lag err
        io="$(repl_field "$(io_field)")"; sqlt="$(repl_field "$(sqlt_field)")"; lag="$(repl_field "$(lag_field)")"
        if [[ -z "$io" ]]; then
            echo "replication: not configured"
        else
            echo "replication: IO thread ${io}, SQL thread ${sqlt}, $(lag_field) ${lag:-NULL}"
            err="$(repl_field Last_IO_Error)"; [[ -n "$err" ]] && echo "  Last_IO_Error: $err"
            err="$(repl_field Last_SQL_Error)"; [[ -n "$err" ]] && echo "  Last_SQL_Error: $err"
        fi
    fi
    return "$rc"
}

cmd_up() {
    mkdir -p "$SB"
    if is_running primary && is_running replica && [[ "$(repl_field "$(io_field)")" == Yes ]]; then
        log "already running"
        cmd_status || true
        print_connect_help
        return 0
    fi
    write_env
    start_server primary
    setup_primary_users
    start_server replica
    setup_replication
    write_env
    echo
    cmd_status || true
    print_connect_help
}

cmd_down() {
    stop_server replica
    stop_server primary
    # Only a directory this script made: <repo>/.sandbox, or one holding its env file.
    if [[ "$SB" == */.sandbox ]] || head -n 1 "$ENV_FILE" 2>/dev/null | grep -q '^# Written by scripts/sandbox.sh'; then
        rm -rf -- "$SB"
        log "removed $SB"
    else
        log "left $SB in place: it does not look like a sandbox this script made"
    fi
}

main() {
    local cmd="${1:-}"
    case "$cmd" in
        up|down|status) ;;
        *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
    esac
    if [[ $cmd == up ]]; then
        resolve_binaries
    else
        # down/status must not install anything.
        SERVER="$(find_bin mariadbd mysqld || true)"
        if [[ -n "$SERVER" ]] && ! "$SERVER" --version 2>/dev/null | grep -qi mariadb; then
            FLAVOR=mysql; CLIENT="$(find_bin mysql mariadb || echo mysql)"; ADMIN="$(find_bin mysqladmin mariadb-admin || echo mysqladmin)"
        else
            FLAVOR=mariadb; CLIENT="$(find_bin mariadb mysql || echo mariadb)"; ADMIN="$(find_bin mariadb-admin mysqladmin || echo mariadb-admin)"
        fi
    fi
    load_ports
    "cmd_$cmd"
}

main "$@"
