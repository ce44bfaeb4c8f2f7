#!/usr/bin/env bash
# Debian packages the test suite uses that pip cannot install: Graphviz (`dot` renders the DOT
# lineage export in the tests) and Chromium with its driver (tests/ui drive the web view in a real
# headless browser through playwright; `playwright install` is never run). Installs only what is
# missing; needs root and apt-get. Slurm and munge are installed by scripts/slurm.sh when the
# Slurm tests start a cluster.
set -euo pipefail

missing=()
command -v dot > /dev/null || missing+=(graphviz)
command -v chromium > /dev/null || missing+=(chromium)
command -v chromedriver > /dev/null || missing+=(chromium-driver)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get > /dev/null; then
    echo "system_deps.sh: missing ${missing[*]}; install them (Debian: apt-get install ${missing[*]})" >&2
    exit 1
fi
echo "system_deps.sh: installing ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" > /dev/null
