#!/usr/bin/env bash
# The benchmark's "bare_copy" reference (scripts/bench.sh; docs/benchmark.md): the work every
# tool that copies a table through the binlog must do, and nothing else. It creates the new
# table without its secondary indexes, copies the rows in key ranges with one client per core
# (plain READ COMMITTED reads, so the rows go to the binlog as row events, as alterego's and
# pt-online-schema-change's copies do), adds the secondary indexes in one ALTER and renames.
#
# It does none of what makes a migration online and safe: no binlog replay or triggers, no
# throttle on replica lag, no verification, no locked cut-over. It is therefore only correct on
# an idle table, and bench.sh runs it only there. Its wall time is a floor: how fast an online
# tool could be on this machine if all of that cost nothing.
#
# usage: bench_bare_copy.sh CLIENT OPTION_FILE DATABASE TABLE ALTER
#   CLIENT       the mariadb (or mysql) client
#   OPTION_FILE  a client option file with the user, password, host and port
#   The table's primary key must be one integer column (sysbench's `id`).
set -euo pipefail

(($# == 5)) || { echo "usage: $0 CLIENT OPTION_FILE DATABASE TABLE ALTER" >&2; exit 2; }
client=$1 cnf=$2 db=$3 table=$4 alter=$5
new="_${table}_new" old="_${table}_old"
CHUNK_ROWS=50000
clients=$(nproc)

sql() { "$client" --defaults-file="$cnf" --batch --skip-column-names "$db" "$@"; }
q() { printf '`%s`' "${1//\`/\`\`}"; }

sql -e "CREATE TABLE $(q "$new") LIKE $(q "$table"); ALTER TABLE $(q "$new") $alter"

# The secondary indexes, as SHOW CREATE TABLE writes them, to add back after the copy.
mapfile -t index_defs < <(sql -e "SHOW CREATE TABLE $(q "$new")" | sed 's/\\n/\n/g' |
    sed -n -E 's/^ *((UNIQUE |FULLTEXT |SPATIAL )?KEY .*[^,]),?$/\1/p')
if ((${#index_defs[@]})); then
    drops="" adds=""
    for def in "${index_defs[@]}"; do
        name=$(sed -E 's/^[A-Z ]*KEY (`([^`]|``)*`).*/\1/' <<<"$def")
        drops+="${drops:+, }DROP INDEX $name"
        adds+="${adds:+, }ADD $def"
    done
    sql -e "ALTER TABLE $(q "$new") $drops"
fi

key=$(sql -e "SELECT COLUMN_NAME FROM information_schema.STATISTICS
    WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '$table' AND INDEX_NAME = 'PRIMARY'")
columns=$(sql -e "SELECT GROUP_CONCAT(CONCAT('\`', REPLACE(COLUMN_NAME, '\`', '\`\`'), '\`') ORDER BY ORDINAL_POSITION)
    FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '$table'")
read -r lowest highest < <(sql -e "SELECT COALESCE(MIN($(q "$key")), 0), COALESCE(MAX($(q "$key")), 0) FROM $(q "$table")")

# Client i copies the ranges i, i + clients, i + 2 * clients ..., each statement committed.
copy_ranges() {  # CLIENT_INDEX
    local from
    echo "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED;"
    for ((from = lowest - 1 + $1 * CHUNK_ROWS; from < highest; from += clients * CHUNK_ROWS)); do
        echo "INSERT INTO $(q "$new") ($columns) SELECT $columns FROM $(q "$table")
              WHERE $(q "$key") > $from AND $(q "$key") <= $((from + CHUNK_ROWS));"
    done
}
pids=()
for ((i = 0; i < clients; i++)); do
    copy_ranges "$i" | sql & pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done

if ((${#index_defs[@]})); then
    sql -e "ALTER TABLE $(q "$new") $adds, ALGORITHM=INPLACE, LOCK=NONE"
fi
sql -e "RENAME TABLE $(q "$table") TO $(q "$old"), $(q "$new") TO $(q "$table"); DROP TABLE $(q "$old")"
