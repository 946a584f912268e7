#!/usr/bin/env bash
# The randomized fault soak: scripts/soak.sh ROUNDS [SEED]
# Runs ROUNDS rounds of tests/soak.rs in a release build (random table, ALTER, writers and
# faults per round; see docs/soak.md). SEED defaults to a random one, printed first; round i
# uses a seed derived from it, and `scripts/soak.sh 1 <round seed>` replays that round.
# SOAK_MAX_ROWS (default 30000) caps the rows of a round's table.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds="${1:?usage: scripts/soak.sh ROUNDS [SEED]}"
seed="${2:-$(od -An -N8 -tu8 /dev/urandom | tr -d ' ')}"
echo "soak: seed $seed, $rounds rounds"
started=$(date +%s)
status=0
SOAK_ROUNDS="$rounds" SOAK_SEED="$seed" RUST_BACKTRACE=0 cargo test --release --locked --test soak -- --nocapture || status=$?
echo "soak: seed $seed, $rounds rounds, wall time $(( $(date +%s) - started ))s, $([ "$status" -eq 0 ] && echo passed || echo FAILED)"
exit "$status"
