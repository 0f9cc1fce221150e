#!/usr/bin/env bash
# Installs what is missing (scripts/deps.sh), then runs every test: unit
# tests, capture tests and the kernel end-to-end tests, which need root (they
# create network namespaces and attach eBPF programs); then every fuzz
# target briefly (scripts/fuzz.sh; REJECTWATCH_SKIP_FUZZ=1 skips it,
# REJECTWATCH_FUZZ_SECONDS sets the time per target, 30 by default).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
export PATH="$HOME/.cargo/bin:$PATH"
if [ "$(id -u)" -eq 0 ]; then
  # As root the kernel tests must run: a missing tool fails them, it does
  # not skip them.
  export REJECTWATCH_REQUIRE_KERNEL=1
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --locked "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
# Every test must pass for every hash seed: the unit tests again under a few
# fixed ones (REJECTWATCH_HASH_SEED fixes every table's seed in a process).
if [ "$status" -eq 0 ] && [ "$#" -eq 0 ]; then
  for seed in 1 2 3 0xdeadbeef; do
    if REJECTWATCH_HASH_SEED=$seed cargo test --locked -q -p rejectwatch --lib >"$log.seed" 2>&1; then
      echo "unit tests with REJECTWATCH_HASH_SEED=$seed: $(grep '^test result' "$log.seed")"
    else
      cat "$log.seed"
      echo "unit tests with REJECTWATCH_HASH_SEED=$seed: FAILED"
      status=1
    fi
  done
  rm -f "$log.seed"
fi
# The fuzz targets only after a full, passing run: a failing test says
# more, sooner.
if [ "$status" -eq 0 ] && [ "$#" -eq 0 ] && [ "${REJECTWATCH_SKIP_FUZZ:-0}" != 1 ]; then
  bash scripts/fuzz.sh "${REJECTWATCH_FUZZ_SECONDS:-30}" || status=1
fi
set -e
# One closing line for the whole run: cargo prints one per test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
