#!/usr/bin/env bash
# Builds the Debian roots the tests run their other server flavors from (see tests/common/mod.rs,
# ALTEREGO_TEST_FLAVOR): a minimal Debian unstable (sid) made with debootstrap, with
#   mysql         -> mysql-9.7:     mysql-server (MySQL 9.7)
#   mariadb-11.8  -> mariadb-11.8:  mariadb-server, mariadb-client, percona-toolkit (MariaDB 11.8;
#                                   percona-toolkit conflicts with mysql-server in sid)
# under ${ALTEREGO_ROOTS:-$HOME/.cache/alterego/roots}. The tests run the servers in them with
# chroot(2); nothing is installed on the host but debootstrap.
#
# Usage: scripts/server-roots.sh [mysql] [mariadb-11.8]     (no argument: both)
#
# Cached and idempotent: a root that exists is complete and is kept (delete its directory to
# build it again). A root is built in a temporary directory beside it and renamed into place
# only once its packages are installed and its server has the expected version, so an
# interrupted build is never taken for a root; leftovers of one are removed by the next run.
# Builds are serialized by a lock, so concurrent runs are safe.
#
# Needs root (it re-runs itself with sudo otherwise) and network access to the Debian archive
# (about 450 MB downloaded per root, about a minute each). ALTEREGO_DEBIAN_MIRROR replaces
# http://deb.debian.org/debian: once sid has moved past these versions, point it at a
# snapshot.debian.org archive of a day it had them (e.g.
# https://snapshot.debian.org/archive/debian/20261207T000000Z); Release files there are past
# their Valid-Until date, which is why apt is told not to check it.
set -euo pipefail

roots="${ALTEREGO_ROOTS:-$HOME/.cache/alterego/roots}"
mirror="${ALTEREGO_DEBIAN_MIRROR:-http://deb.debian.org/debian}"

root_name() {
  case "$1" in
    mysql | mysql-9.7) echo mysql-9.7 ;;
    mariadb-11.8) echo mariadb-11.8 ;;
    *) echo "server-roots.sh: unknown flavor '$1' (expected mysql or mariadb-11.8)" >&2; exit 2 ;;
  esac
}

packages() {
  case "$1" in
    mysql-9.7) echo mysql-server ;;
    mariadb-11.8) echo mariadb-server mariadb-client percona-toolkit ;;
  esac
}

# The server binary in the root, and the version it must report.
server_version_check() {
  case "$1" in
    mysql-9.7) chroot "$2" /usr/sbin/mysqld --version | grep -q ' Ver 9\.7\.' ;;
    mariadb-11.8) chroot "$2" /usr/sbin/mariadbd --version | grep -q ' Ver 11\.8\.' ;;
  esac
}

wanted=()
for flavor in "${@:-mysql mariadb-11.8}"; do
  for f in $flavor; do wanted+=("$(root_name "$f")"); done
done

missing=()
for name in "${wanted[@]}"; do
  [ -d "$roots/$name" ] || missing+=("$name")
done
[ "${#missing[@]}" -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "server-roots.sh: building ${missing[*]} needs root; running it with sudo" >&2
  exec sudo ALTEREGO_ROOTS="$roots" ALTEREGO_DEBIAN_MIRROR="$mirror" "$0" "${missing[@]}"
fi

export DEBIAN_FRONTEND=noninteractive
host_packages=()
command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || host_packages+=(debootstrap)
[ -e /usr/share/keyrings/debian-archive-keyring.gpg ] || host_packages+=(debian-archive-keyring)
if [ "${#host_packages[@]}" -gt 0 ]; then
  echo "server-roots.sh: installing ${host_packages[*]} from the host's packages" >&2
  apt-get update -qq
  apt-get install -y -qq "${host_packages[@]}" >/dev/null
fi
PATH="$PATH:/usr/sbin:/sbin"

mkdir -p "$roots"
exec 9>"$roots/.lock"
flock 9

# Leftovers of builds that were interrupted (this run holds the lock: none is running).
for stale in "$roots"/.building-*; do
  [ -e "$stale" ] || continue
  if mountpoint -q "$stale/proc"; then umount "$stale/proc" || umount -l "$stale/proc"; fi
  rm -rf --one-file-system "$stale"
done

building=""
cleanup() {
  if [ -n "$building" ]; then
    if mountpoint -q "$building/proc"; then umount "$building/proc" || umount -l "$building/proc"; fi
    rm -rf --one-file-system "$building"
  fi
}
trap cleanup EXIT

apt_in() {
  chroot "$building" apt-get -o Acquire::Check-Valid-Until=false -o Dpkg::Use-Pty=0 "$@"
}

for name in "${missing[@]}"; do
  [ -d "$roots/$name" ] && continue # built by another run while this one waited for the lock
  building="$roots/.building-$name-$$"
  log="$roots/$name.build.log"
  echo "server-roots.sh: building $roots/$name ($(packages "$name"), Debian sid from $mirror); log in $log" >&2
  started=$SECONDS
  {
    debootstrap --variant=minbase --keyring=/usr/share/keyrings/debian-archive-keyring.gpg sid "$building" "$mirror"
    # No service starts in the root: the tests start the servers themselves.
    printf '#!/bin/sh\nexit 101\n' >"$building/usr/sbin/policy-rc.d"
    chmod 755 "$building/usr/sbin/policy-rc.d"
    cp -L /etc/resolv.conf "$building/etc/resolv.conf" 2>/dev/null || true
    mount -t proc proc "$building/proc"
    apt_in update
    # shellcheck disable=SC2046 # the package list is split on purpose
    apt_in install -y --no-install-recommends $(packages "$name")
    apt_in clean
    umount "$building/proc"
  } >"$log" 2>&1 || {
    echo "server-roots.sh: building $name failed; the end of $log:" >&2
    tail -n 30 "$log" >&2
    exit 1
  }
  if ! server_version_check "$name" "$building"; then
    echo "server-roots.sh: the server in the new $name root is not the expected version:" >&2
    chroot "$building" dpkg-query -W 'mysql-server*' 'mariadb-server*' >&2 || true
    echo "  Debian sid has moved on: set ALTEREGO_DEBIAN_MIRROR to a snapshot.debian.org archive of a day it had it" >&2
    exit 1
  fi
  rm -rf "$building"/var/lib/apt/lists/*
  mkdir -p "$building/srv/alterego-tests"
  {
    echo "root: $name"
    echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ) from $mirror (sid)"
    chroot "$building" dpkg-query -W $(packages "$name")
  } >"$building/alterego-root.txt"
  mv -T "$building" "$roots/$name"
  building=""
  echo "server-roots.sh: $roots/$name ready in $((SECONDS - started)) s: $(grep -v '^root:\|^built:' "$roots/$name/alterego-root.txt" | tr '\t\n' ' ')" >&2
done
