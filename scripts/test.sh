#!/usr/bin/env bash
# Runs the tests on each server flavor: unit tests, and integration tests against real servers
# that the tests start themselves (temporary data directories, free ports, binlog on).
#
#   mariadb       the host's MariaDB (Debian 12: 10.11)              the whole suite
#   mysql         MySQL 9.7 from Debian sid, in a debootstrap root   the whole suite
#   mariadb-11.8  MariaDB 11.8 from Debian sid, in its root          the core binaries
#
# Checks `cargo fmt --check` and `cargo clippy --all-targets -- -D warnings` first.
# Installs what is missing first: MariaDB server and client from the host's Debian packages,
# and the roots of the other flavors (scripts/server-roots.sh: debootstrap, cached under
# ${ALTEREGO_ROOTS:-$HOME/.cache/alterego/roots}). The tests are built once, then `cargo test`
# runs once per flavor (ALTEREGO_TEST_FLAVOR), each under a header; a flavor's failure does not
# stop the others, and the run fails if any failed.
#
#   ALTEREGO_TEST_FLAVORS   the flavors to run, space-separated (default: all three), e.g.
#                           ALTEREGO_TEST_FLAVORS=mysql scripts/test.sh --test migrate
#   ALTEREGO_TEST_TIMEOUT   seconds for the build and all the runs together (default 1800); a
#                           hung test is killed and fails the run
# Arguments go to every `cargo test`; with none, mariadb-11.8 runs its core binaries only.
set -euo pipefail
cd "$(dirname "$0")/.."

flavors="${ALTEREGO_TEST_FLAVORS:-mariadb mysql mariadb-11.8}"
# The core of the suite, for the flavor run in addition to the two main ones.
core=(--test migrate --test resume --test cutover --test restart --test lag --test signals --test guards --test tls --test soak --test mysql --test late_changes)

rooted=()
for flavor in $flavors; do
  case "$flavor" in
    mariadb) ;;
    mysql | mariadb-11.8) rooted+=("$flavor") ;;
    *) echo "test.sh: unknown flavor '$flavor' in ALTEREGO_TEST_FLAVORS (mariadb, mysql, mariadb-11.8)" >&2; exit 2 ;;
  esac
done

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo=sudo; fi
missing=()
if [[ " $flavors " == *" mariadb "* ]]; then
  command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || missing+=(mariadb-server)
  command -v mariadb >/dev/null 2>&1 || missing+=(mariadb-client)
fi
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing ${missing[*]} from Debian packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if [ "${#rooted[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "test.sh: the ${rooted[*]} flavor(s) run their servers with chroot, which needs root: run as root, or ALTEREGO_TEST_FLAVORS=mariadb" >&2
    exit 2
  fi
  scripts/server-roots.sh "${rooted[@]}"
fi

# One deadline for the build and every flavor's run: a hung test must fail the run, not hold CI
# until its own limit.
deadline=$((SECONDS + ${ALTEREGO_TEST_TIMEOUT:-1800}))
within_deadline() {
  local left=$((deadline - SECONDS))
  if [ "$left" -le 0 ]; then
    echo "test.sh: ALTEREGO_TEST_TIMEOUT (${ALTEREGO_TEST_TIMEOUT:-1800} s) reached" >&2
    return 124
  fi
  timeout --signal=KILL "$left" "$@"
}

# Style first: the code is formatted and clippy-clean (rustup's default profile has both tools).
for tool in rustfmt clippy; do
  cargo "${tool/rustfmt/fmt}" --version >/dev/null 2>&1 || rustup component add "$tool"
done
within_deadline cargo fmt --check
within_deadline cargo clippy --locked --all-targets -- -D warnings

within_deadline cargo test --locked --no-run "$@"

describe() {
  case "$1" in
    mariadb) echo "the host's $(mariadbd --version 2>/dev/null | grep -o 'Ver [^ ]*' || echo mariadbd)" ;;
    *)
      local root
      root="${ALTEREGO_ROOTS:-$HOME/.cache/alterego/roots}/$([ "$1" = mysql ] && echo mysql-9.7 || echo "$1")"
      echo "$(grep -E '^(mysql|mariadb)-server\s' "$root/alterego-root.txt" | tr '\t' ' ') in $root"
      ;;
  esac
}

results=()
failed=0
for flavor in $flavors; do
  args=("$@")
  if [ "$#" -eq 0 ] && [ "$flavor" = mariadb-11.8 ]; then args=("${core[@]}"); fi
  echo
  echo "======== flavor $flavor: $(describe "$flavor"); cargo test --locked --no-fail-fast ${args[*]} ========"
  started=$SECONDS
  status=0
  # Every test binary runs even when one fails, so one run shows every failure of the flavor.
  ALTEREGO_TEST_FLAVOR="$flavor" within_deadline cargo test --locked --no-fail-fast "${args[@]}" || status=$?
  took=$((SECONDS - started))
  if [ "$status" -eq 0 ]; then
    results+=("$flavor: passed in ${took} s")
  else
    results+=("$flavor: FAILED (exit $status) after ${took} s")
    failed=1
  fi
  echo "======== flavor $flavor: ${results[-1]#*: } ========"
  if [ "$SECONDS" -ge "$deadline" ]; then break; fi
done

echo
echo "======== summary ========"
printf '%s\n' "${results[@]}"
exit "$failed"
