#!/usr/bin/env bash
# Installs what is missing (scripts/deps.sh), then runs every test: unit
# tests, capture tests and the kernel end-to-end tests, which need root (they
# create network namespaces and attach eBPF programs), with cargo-nextest
# where it is installed and `cargo test` otherwise (or when given
# arguments, which go to `cargo test`); then every fuzz target briefly
# (scripts/fuzz.sh; REJECTWATCH_SKIP_FUZZ=1 skips it,
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
fuzz_build_log=$(mktemp)
trap 'rm -f "$log" "$fuzz_build_log"' EXIT
set +e
fuzz=0
[ "$#" -eq 0 ] && [ "${REJECTWATCH_SKIP_FUZZ:-0}" != 1 ] && fuzz=1
if [ "$#" -eq 0 ] && command -v cargo-nextest >/dev/null; then
  # Most tests wait (on namespaces, daemons, timeouts) more than they
  # compute: cargo-nextest runs them four at a time across the test
  # binaries, where `cargo test` runs one binary after another. The fuzz
  # targets build meanwhile, in the time the tests leave idle.
  cargo test --locked --no-run
  status=$?
  if [ "$status" -eq 0 ]; then
    fuzz_build=
    if [ "$fuzz" = 1 ]; then
      nice -n 10 bash scripts/fuzz.sh --build >"$fuzz_build_log" 2>&1 &
      fuzz_build=$!
    fi
    cargo nextest run --locked --no-fail-fast --test-threads 4 --hide-progress-bar 2>&1 | tee "$log"
    status=${PIPESTATUS[0]}
    if [ -n "$fuzz_build" ] && ! wait "$fuzz_build"; then
      cat "$fuzz_build_log"
      echo "fuzz: the targets did not build"
      status=1
    fi
  fi
else
  cargo test --locked "$@" 2>&1 | tee "$log"
  status=${PIPESTATUS[0]}
fi
# Every test must pass for every hash seed: the unit tests again under a few
# fixed ones (REJECTWATCH_HASH_SEED fixes every table's seed in a process).
# The unit-test binary the run above built is run again as it is: `cargo
# test -p rejectwatch` would build it anew (the package alone unifies
# features differently), the eBPF object with it, for a minute.
if [ "$status" -eq 0 ] && [ "$#" -eq 0 ]; then
  unit=$(cargo test --locked --no-run --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    t = m.get("target", {})
    if m.get("reason") == "compiler-artifact" and m.get("executable") and t.get("name") == "rejectwatch" and "lib" in t.get("kind", []):
        print(m["executable"])')
  [ -x "$unit" ] || { echo "unit tests: the rejectwatch unit-test binary was not found"; status=1; }
fi
if [ "$status" -eq 0 ] && [ "$#" -eq 0 ]; then
  for seed in 1 2 3 0xdeadbeef; do
    if (cd rejectwatch && REJECTWATCH_HASH_SEED=$seed "$unit" -q) >"$log.seed" 2>&1; then
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
if [ "$status" -eq 0 ] && [ "$fuzz" = 1 ]; then
  bash scripts/fuzz.sh "${REJECTWATCH_FUZZ_SECONDS:-30}" || status=1
fi
set -e
# One closing line for the whole run: cargo prints one per test binary,
# nextest one "Summary" line.
awk '/^test result:/ || /^ *Summary \[/ {
       for (i = 1; i <= NF; i++) { w = $(i+1); sub(/[,;]$/, "", w); if (w == "passed") p += $i; if (w == "failed") f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
