#!/usr/bin/env bash
# Installs what is missing (scripts/deps.sh), then runs every test: unit
# tests, capture tests and the kernel end-to-end tests, which need root (they
# create network namespaces and attach eBPF programs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
export PATH="$HOME/.cargo/bin:$PATH"
if [ "$(id -u)" -eq 0 ]; then
  # As root the kernel tests must run: a missing tool fails them, it does
  # not skip them.
  export REJECTWATCH_REQUIRE_KERNEL=1
fi
exec cargo test --locked "$@"
