#!/usr/bin/env bash
# Installs what the test suites need on a fresh machine (Rust, Python and
# Java are already there): Debian's Apache ZooKeeper 3.8 and Curator, kazoo
# and pytest. Idempotent.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
need_apt=0
[ -f /usr/share/java/zookeeper.jar ] || need_apt=1
[ -f /usr/share/java/curator-recipes.jar ] || need_apt=1
if [ "$need_apt" = 1 ]; then
  apt-get update -q
  apt-get install -y -q --no-install-recommends \
    zookeeper libcurator-framework-java libcurator-recipes-java libcurator-client-java
fi
python3 -c "import kazoo, pytest" 2>/dev/null || python3 -m pip install -q --root-user-action=ignore kazoo pytest
