#!/usr/bin/env bash
# Runs every test: unit tests, and integration tests against real mariadbd servers that the
# tests start themselves (temporary data directories, free ports, binlog on).
# Installs what is missing first: MariaDB server and client from Debian packages.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || missing+=(mariadb-server)
command -v mariadb >/dev/null 2>&1 || missing+=(mariadb-client)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing ${missing[*]} from Debian packages" >&2
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo=sudo; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# A hung test must fail the run, not hold CI until its own limit.
timeout --signal=KILL "${ALTEREGO_TEST_TIMEOUT:-1800}" cargo test --locked "$@"
