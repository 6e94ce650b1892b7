#!/usr/bin/env bash
# Installs what the test suites need on a fresh machine (Rust, Python 3.11 and
# Java 17 are already there): Debian's Apache ZooKeeper 3.8 and Curator jars
# (plus whatever the Java suite lists in net/tests/java/PACKAGES), then kazoo
# and pytest from PyPI.
#
# Idempotent and quick: when every package is already installed and kazoo and
# pytest import, it does nothing (no apt-get update). Otherwise it runs
# apt-get update once, skips (with a line saying so) any package name the
# archive does not have, and installs the rest with --no-install-recommends.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
start=$(date +%s)

# Debian bookworm names (checked with apt-cache policy): zookeeper pulls in
# libzookeeper-java, which ships /usr/share/java/zookeeper.jar.
packages=(zookeeper libzookeeper-java libcurator-framework-java
          libcurator-recipes-java libcurator-client-java openssl)
if [ -f net/tests/java/PACKAGES ]; then
  while read -r p; do
    [ -n "$p" ] && packages+=("$p")
  done < <(grep -v '^\s*#' net/tests/java/PACKAGES | sed 's/\s*#.*//' | grep -v '^\s*$')
fi
# de-duplicate, keep order
mapfile -t packages < <(printf '%s\n' "${packages[@]}" | awk '!seen[$0]++')

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

missing=()
for p in "${packages[@]}"; do
  installed "$p" || missing+=("$p")
done

if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-deps: apt packages to install: ${missing[*]}"
  apt-get update -q
  available=()
  for p in "${missing[@]}"; do
    if apt-cache show "$p" >/dev/null 2>&1; then
      available+=("$p")
    else
      echo "install-deps: skipping $p: no such package in the apt archive"
    fi
  done
  if [ "${#available[@]}" -gt 0 ]; then
    apt-get install -y -q --no-install-recommends "${available[@]}"
  fi
else
  echo "install-deps: apt packages already installed"
fi

if python3 -c "import kazoo, pytest" 2>/dev/null; then
  echo "install-deps: kazoo and pytest already installed"
else
  python3 -m pip install -q --root-user-action=ignore kazoo pytest
fi
echo "install-deps: done in $(( $(date +%s) - start ))s"
