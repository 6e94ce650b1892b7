#!/usr/bin/env bash
# Installs what the test suites need on a fresh machine (Rust, Python and
# Java are already there): Debian's Apache ZooKeeper 3.8, Curator and the
# other jars the Java suite names in net/tests/java/PACKAGES, plus kazoo and
# pytest. Idempotent: skips apt when every package is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
mapfile -t packages < <(grep -v '^\s*#' net/tests/java/PACKAGES | grep -v '^\s*$')
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing: ${missing[*]}"
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
python3 -c "import kazoo, pytest" 2>/dev/null || python3 -m pip install -q --root-user-action=ignore kazoo pytest
