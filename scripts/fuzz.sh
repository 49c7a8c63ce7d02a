#!/usr/bin/env bash
# fuzz.sh — runs promlet's cargo-fuzz targets (fuzz/fuzz_targets) one after the other.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]    default: 20 s each, every target
#
# Starts from the committed seed corpus (fuzz/corpus/<target>, never written to) plus what
# earlier runs found (target/fuzz-corpus/<target>, kept for the next run). Prints one line per
# target with its exec count; a crash stops that target, leaves the input in
# fuzz/artifacts/<target>/ and makes the script exit non-zero.
# Needs a nightly toolchain and cargo-fuzz (scripts/test-all.sh installs both).
# Env: FUZZ_RSS_MB (default 1024) and FUZZ_TIMEOUT_S (default 10): libFuzzer's per-input
# memory and time limits, so runaway allocation or a hang counts as a crash.
set -uo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."
secs=${1:-20}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(expo_parse promql config http persist)
failed=()
for t in "${targets[@]}"; do
  mkdir -p "target/fuzz-corpus/$t" "target/fuzz-logs"
  log="target/fuzz-logs/$t.log"
  (cd fuzz && cargo +nightly fuzz run -O "$t" "../target/fuzz-corpus/$t" "corpus/$t" -- \
    -max_total_time="$secs" -rss_limit_mb="${FUZZ_RSS_MB:-1024}" -timeout="${FUZZ_TIMEOUT_S:-10}" \
    -print_final_stats=1) >"$log" 2>&1
  rc=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
  printf 'fuzz %-11s %4d s  %10s execs  %s  %s\n' "$t" "$secs" "${execs:-?}" "${cov:-}" \
    "$([ $rc = 0 ] && echo ok || echo "FAILED (exit $rc, see $log)")"
  [ $rc = 0 ] || { failed+=("$t"); grep -m5 -E 'panicked|ERROR|SUMMARY' "$log"; }
done
[ ${#failed[@]} -eq 0 ]
