#!/usr/bin/env bash
# demo.sh: see alterego work on a fresh machine.
#
#  1. cargo build --release
#  2. scripts/sandbox.sh up          (local MariaDB primary + replica)
#  3. demo.orders with 1,000,000 rows, plus an identical "oracle" copy
#     demo.orders_oracle
#  4. a background writer: one long-lived mariadb client fed by a bash loop,
#     ~150 transactions/s of INSERT / UPDATE / primary-key UPDATE / DELETE; each
#     transaction applies the same statement to orders and orders_oracle
#  5. alterego adds a column and an index to demo.orders while the writer runs
#  6. stop the writer and compare orders with orders_oracle row for row:
#     prints PASS, or FAIL and exits non-zero
#
# Knobs: DEMO_ROWS (default 1000000), DEMO_TPS (default 150), and the sandbox's
# SANDBOX_PORT / SANDBOX_REPLICA_PORT. The sandbox stays up afterwards; stop it
# with `scripts/sandbox.sh down`.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

ROWS="${DEMO_ROWS:-1000000}"
TPS="${DEMO_TPS:-150}"
ALTER="ADD COLUMN shipped_at DATETIME NULL, ADD INDEX idx_status (status)"
WRITER_LOG="$REPO_ROOT/.sandbox/demo-writer.log"
STOP_FILE="$REPO_ROOT/.sandbox/demo-writer.stop"
WRITER_PID=""

now_us() { local t=${EPOCHREALTIME//[.,]/}; echo "$t"; }   # wall clock in microseconds
secs_since() { local d=$(( $(now_us) - $1 )); printf '%d.%d' $((d / 1000000)) $((d % 1000000 / 100000)); }
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
die()  { printf 'demo: ERROR: %s\n' "$*" >&2; exit 1; }

# ------------------------------------------------------------ 1. build ---
step "Building alterego (cargo build --release)"
command -v cargo >/dev/null 2>&1 || die "cargo not found; install Rust from https://rustup.rs"
cargo build --release --quiet
[[ -x target/release/alterego ]] || die "target/release/alterego was not built"

# ---------------------------------------------------------- 2. sandbox ---
step "Starting the MariaDB sandbox (scripts/sandbox.sh up)"
scripts/sandbox.sh up
# shellcheck source=/dev/null
. .sandbox/env
CLIENT="${SANDBOX_CLIENT:-mariadb}"

db() {  # run SQL on the primary as dba over TCP, like a real client would
    "$CLIENT" --no-defaults -h"$SANDBOX_HOST" -P"$SANDBOX_PORT" -u"$SANDBOX_USER" -p"$SANDBOX_PASSWORD" "$@"
}

# ------------------------------------------------------------- 3. data ---
step "Creating demo.orders with $ROWS rows and its oracle copy demo.orders_oracle"
if [[ "${SANDBOX_FLAVOR:-mariadb}" == mariadb ]]; then
    SEQ="seq_1_to_${ROWS} AS s"          # MariaDB Sequence engine
else                                      # MySQL: 10^7 numbers from digits
    DIGITS="(SELECT 0 d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4
             UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9)"
    SEQ="(SELECT 1 + a.d + 10*b.d + 100*c.d + 1000*e.d + 10000*f.d + 100000*g.d + 1000000*h.d AS seq
          FROM $DIGITS a, $DIGITS b, $DIGITS c, $DIGITS e, $DIGITS f, $DIGITS g, $DIGITS h) AS s
          WHERE s.seq <= $ROWS"
fi
start=$(now_us)
db <<EOF
DROP TABLE IF EXISTS demo._orders_gho, demo._orders_ghc, demo._orders_del;
DROP DATABASE IF EXISTS demo;
CREATE DATABASE demo;
USE demo;
CREATE TABLE orders (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  customer_id INT NOT NULL,
  amount DECIMAL(12,2) NOT NULL,
  status VARCHAR(16) NOT NULL,
  note VARCHAR(100),
  created_at DATETIME(6) NOT NULL,
  KEY (customer_id)
) ENGINE=InnoDB;
INSERT INTO orders (id, customer_id, amount, status, note, created_at)
SELECT s.seq,
       1 + (s.seq * 7919) % 50000,
       ((s.seq * 104729) % 10000000) / 100,
       ELT(1 + s.seq % 5, 'new', 'paid', 'shipped', 'cancelled', 'refunded'),
       IF(s.seq % 7 = 0, NULL, CONCAT('order #', s.seq)),
       TIMESTAMP('2024-01-01 00:00:00') + INTERVAL s.seq * 13 SECOND + INTERVAL (s.seq * 7) % 1000000 MICROSECOND
FROM $SEQ;
CREATE TABLE orders_oracle LIKE orders;
INSERT INTO orders_oracle SELECT * FROM orders;
EOF
echo "created $(db -N -e 'SELECT COUNT(*) FROM demo.orders') rows (x2) in $(secs_since "$start")s"

# ----------------------------------------------------------- 4. writer ---
# Each transaction runs one statement against both tables, so orders_oracle
# always holds exactly what the writer committed. Ids are deterministic:
# inserts take explicit ids from a counter (ROWS+1, ROWS+2, ... < 2,000,000);
# other statements pick a random id below the counter; a primary-key change
# moves id x to x+2000000, which cannot collide because x < 2000000 and a
# moved row is never picked again.
writer_loop() {
    local next_id=$((ROWS + 1)) n=0 tick r x c stmt now note
    local per_tick=$(( (TPS + 9) / 10 ))
    local statuses=(new paid shipped cancelled refunded)
    local t0
    t0=$(now_us)
    echo "SET SESSION innodb_lock_wait_timeout = 600, lock_wait_timeout = 600;"
    while [[ ! -e "$STOP_FILE" ]]; do
        for ((tick = 0; tick < per_tick; tick++)); do
            r=$((RANDOM % 100))
            x=$(( ((RANDOM << 15) | RANDOM) % (next_id - 1) + 1 ))
            if (( r < 25 && next_id < 2000000 )); then
                printf -v now '%(%Y-%m-%d %H:%M:%S)T.%06d' -1 $((RANDOM * 30))
                note="'writer $next_id'"; ((RANDOM % 4)) || note=NULL
                stmt="INSERT INTO __T__ (id, customer_id, amount, status, note, created_at) VALUES ($next_id, $((RANDOM % 50000 + 1)), $((RANDOM % 5000)).$((RANDOM % 90 + 10)), 'new', $note, '$now')"
                next_id=$((next_id + 1))
            elif (( r < 60 )); then
                stmt="UPDATE __T__ SET amount = $((RANDOM % 5000)).$((RANDOM % 90 + 10)), status = '${statuses[RANDOM % 5]}' WHERE id = $x"
            elif (( r < 70 )); then
                note="'edited $x'"; ((RANDOM % 2)) || note=NULL
                stmt="UPDATE __T__ SET note = $note WHERE id = $x"
            elif (( r < 80 )); then
                c=$((RANDOM % 50000 + 1))
                stmt="UPDATE __T__ SET amount = amount + 1 WHERE customer_id = $c"
            elif (( r < 88 )); then
                stmt="UPDATE __T__ SET id = id + 2000000 WHERE id = $x"
            else
                stmt="DELETE FROM __T__ WHERE id = $x"
            fi
            printf 'BEGIN;\n%s;\n%s;\nCOMMIT;\n' "${stmt//__T__/orders}" "${stmt//__T__/orders_oracle}"
            n=$((n + 1))
        done
        sleep 0.1
    done
    echo "writer: $n transactions in $(secs_since "$t0")s (last insert id $((next_id - 1)))" >&2
}

stop_writer() {
    [[ -n "$WRITER_PID" ]] || return 0
    touch "$STOP_FILE"
    local rc=0
    wait "$WRITER_PID" || rc=$?
    WRITER_PID=""
    rm -f "$STOP_FILE"
    return "$rc"
}
trap 'stop_writer || true' EXIT

step "Starting the background writer (~$TPS transactions/s, log: .sandbox/demo-writer.log)"
rm -f "$STOP_FILE"
# No --force: on any SQL error the client exits and its open transaction is
# rolled back, so the oracle never diverges from a half-applied transaction.
( writer_loop | db --batch --silent demo ) >"$WRITER_LOG" 2>&1 &
WRITER_PID=$!
sleep 2
kill -0 "$WRITER_PID" 2>/dev/null || { cat "$WRITER_LOG" >&2; die "the writer died right away"; }

# ---------------------------------------------------------- 5. alterego ---
step "Running alterego: ALTER TABLE demo.orders $ALTER"
alter_rc=0
ALTEREGO_PASSWORD="$SANDBOX_PASSWORD" target/release/alterego \
    --host "$SANDBOX_HOST" --port "$SANDBOX_PORT" --user "$SANDBOX_USER" \
    --database demo --table orders \
    --alter "$ALTER" \
    --execute || alter_rc=$?

# Keep writing a little after the cut-over, against the new table.
sleep 2

# ------------------------------------------------------------- 6. check ---
step "Stopping the writer"
writer_rc=0
stop_writer || writer_rc=$?
cat "$WRITER_LOG"

step "Checking demo.orders against demo.orders_oracle"
# Full outer comparison on the shared columns: rows only on one side, plus
# rows whose values differ (NULL-safe <=>).
counts="$(db -N demo <<'EOF'
SELECT (SELECT COUNT(*) FROM orders),
       (SELECT COUNT(*) FROM orders_oracle),
       (SELECT COUNT(*) FROM orders o LEFT JOIN orders_oracle r ON r.id = o.id WHERE r.id IS NULL),
       (SELECT COUNT(*) FROM orders_oracle r LEFT JOIN orders o ON o.id = r.id WHERE o.id IS NULL),
       (SELECT COUNT(*) FROM orders o JOIN orders_oracle r ON r.id = o.id
         WHERE NOT (o.customer_id <=> r.customer_id AND o.amount <=> r.amount
                    AND o.status <=> r.status AND o.note <=> r.note
                    AND o.created_at <=> r.created_at));
EOF
)"
read -r orders_rows oracle_rows only_orders only_oracle differing <<<"$counts"
[[ "$differing" =~ ^[0-9]+$ ]] || die "could not compare the tables (got: $counts)"
printf '  rows in orders:              %s\n' "$orders_rows"
printf '  rows in orders_oracle:       %s\n' "$oracle_rows"
printf '  only in orders:              %s\n' "$only_orders"
printf '  only in orders_oracle:       %s\n' "$only_oracle"
printf '  same id, different values:   %s\n' "$differing"
diffs=$((only_orders + only_oracle + differing))
schema_ok="$(db -N <<'EOF'
SELECT (SELECT COUNT(*) FROM information_schema.COLUMNS
         WHERE TABLE_SCHEMA = 'demo' AND TABLE_NAME = 'orders' AND COLUMN_NAME = 'shipped_at')
     * (SELECT COUNT(*) > 0 FROM information_schema.STATISTICS
         WHERE TABLE_SCHEMA = 'demo' AND TABLE_NAME = 'orders' AND INDEX_NAME = 'idx_status');
EOF
)"

step "SHOW CREATE TABLE demo.orders"
db -N -e 'SHOW CREATE TABLE demo.orders\G' | sed -n '3,$p'
echo "tables in demo: $(db -N -e 'SHOW TABLES FROM demo' | tr '\n' ' ')"

echo
fail=0
if [[ "$diffs" == 0 ]]; then echo "rows:     orders matches orders_oracle row for row"
else echo "rows:     $diffs rows differ between orders and orders_oracle"; fail=1; fi
if [[ "$schema_ok" == 1 ]]; then echo "schema:   shipped_at and idx_status present"
else echo "schema:   the ALTER was not applied (shipped_at/idx_status missing)"; fail=1; fi
if [[ "$alter_rc" != 0 ]]; then echo "alterego: exited with status $alter_rc"; fail=1; fi
if [[ "$writer_rc" != 0 ]]; then echo "writer:   exited with status $writer_rc (see above)"; fail=1; fi

if (( fail )); then
    printf '\n\033[1;31mFAIL\033[0m\n'
    exit 1
fi
printf '\n\033[1;32mPASS\033[0m\n'
