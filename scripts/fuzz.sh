#!/usr/bin/env bash
# Runs every fuzz target (fuzz/, cargo-fuzz) for SECONDS each (default 30)
# from its corpus, seeded first by fuzz/seed.sh; fails on any crash, hang
# (-timeout) or allocation past -rss_limit_mb. FUZZ_TARGETS="a b" picks
# targets; FUZZ_RUNS=N also ends each target after N executions, whichever
# comes first (a campaign: 1800 seconds or 10 million). The crashing input
# is left in fuzz/artifacts/<target>/: keep it in fuzz/seeds/<target>/ and
# as a unit test once fixed.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
seconds=${1:-30}
command -v cargo-fuzz >/dev/null || { echo "fuzz: cargo-fuzz missing (scripts/deps.sh installs it)" >&2; exit 1; }
# The fuzz build never loads the kernel object, so it skips building it;
# debug assertions and overflow checks are on, so arithmetic that would
# wrap in a release build fails here. No sanitizer: the code under test is
# safe Rust, and its heap is mimalloc, which AddressSanitizer does not see.
(cd fuzz && AYA_BUILD_SKIP=1 cargo +nightly fuzz build -O -a -s none)
# `fuzz.sh --build`: only that (scripts/test.sh builds while tests run).
[ "$seconds" = --build ] && exit 0
bash fuzz/seed.sh >/dev/null
# Where cargo put them: fuzz/target, or CARGO_TARGET_DIR when it is set.
bin=$(realpath -m "${CARGO_TARGET_DIR:-fuzz/target}")/x86_64-unknown-linux-gnu/release
targets=${FUZZ_TARGETS:-$(cd fuzz && cargo +nightly fuzz list)}
# Each target is one libFuzzer process on one core: run as many at once as
# there are cores, so the CI run pays the seconds once per core, not once
# per target.
jobs=${FUZZ_JOBS:-$(nproc)}
run_one() {
  local t=$1 rc=0 log="fuzz/logs/$1.log" extra=()
  mkdir -p "fuzz/artifacts/$t" "fuzz/logs"
  # The log reader reports a few bad lines per file on stderr; its
  # output would be the whole log.
  [ "$t" = logreader ] && extra=(-close_fd_mask=2)
  [ -n "${FUZZ_RUNS:-}" ] && extra+=(-runs="$FUZZ_RUNS")
  "$bin/$t" "fuzz/corpus/$t" -rss_limit_mb=512 -timeout=10 -max_total_time="$seconds" -print_final_stats=1 \
    -artifact_prefix="fuzz/artifacts/$t/" "${extra[@]}" >"$log" 2>&1 || rc=$?
  if [ "$rc" -eq 0 ]; then
    runs=$(awk '/stat::number_of_executed_units/ { print $2 }' "$log")
    echo "fuzz: $t: ${runs:-?} executions, no crash"
  else
    tail -n 40 "$log"
    # Above 128: killed by a signal libFuzzer could not report (SIGKILL).
    echo "fuzz: $t: FAILED, exit status $rc (log $log, input in fuzz/artifacts/$t/)"
    # Background jobs' statuses are not all kept by the throttle's wait -n:
    # a file says which failed.
    touch "fuzz/logs/$t.failed"
  fi
}
mkdir -p fuzz/logs
rm -f fuzz/logs/*.failed
for t in $targets; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
  run_one "$t" &
done
wait
failed=()
for t in $targets; do
  [ -e "fuzz/logs/$t.failed" ] && failed+=("$t")
done
if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz: failed: ${failed[*]}"
  exit 1
fi
