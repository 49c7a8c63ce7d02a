#!/usr/bin/env bash
# test-all.sh — promlet's whole test suite, on a fresh Debian machine (bookworm or later).
#
# Installs what the tests need (each step skipped when already there), then runs every check and
# reports all failures at the end rather than stopping at the first:
#
#   1. toolchain: apt packages, rustup targets, zig, cargo-zigbuild   scripts/install-cross.sh
#   1b. chromium (apt) for the web UI tests
#   2. the real Prometheus stack (Prometheus, promtool, node_exporter, Pushgateway, Alertmanager,
#      blackbox_exporter) into $PROMLET_STACK_DIR or <repo>/.stack   scripts/install-stack.sh
#      and the other test peers (dnsmasq)                              scripts/install-test-peers.sh
#   3. cargo fmt --check; cargo clippy --all-targets -D warnings, without and with the `tls`
#      feature; Cross.toml == cross.toml
#   4. cargo test (unit + integration, against the real stack and ../shared test data), then
#      with `--features tls` the library tests and the integration tests whose code the
#      feature changes (webauth, scrape, http, agent) — not the whole suite twice
#   5. release builds for x86_64/aarch64/armv7/ARMv6 musl, size budget, `--version` and the
#      library unit tests under qemu-user                               scripts/cross-test.sh
#   5a. release tarballs + .debs + SHA256SUMS from those binaries     scripts/release.sh --no-build
#   5b. packaging: the .deb built, installed with dpkg, run as installed, purged (root only)
#       packaging/deb/test.sh; the OpenWrt package checks   packaging/openwrt/test.sh
#   6. fuzz smoke: every cargo-fuzz target for 20 s (nightly + cargo-fuzz installed if missing)
#                                                                      scripts/fuzz.sh
#   7. (not a test) a short side-by-side run against node_exporter, if promlet serves /metrics
#
# Exit status is non-zero if any step failed. The last line sums up every `test result:` line.
# Env: CI=true makes a missing test prerequisite a failure (tests/common/mod.rs);
#      PROMLET_SHARED (default ../shared), PROMLET_STACK_DIR (default <repo>/.stack);
#      PROMLET_SKIP_CROSS=1 skips step 5; PROMLET_SKIP_FUZZ=1 skips step 6 (PROMLET_FUZZ_SECONDS
#      sets its time per target); PROMLET_SKIP_BENCH=1 skips step 7.
#      Disk: the host test tree is deleted after step 4, each cross tree after its checks and the
#      fuzz build after step 6 (PROMLET_KEEP_TARGET=1 keeps the host and fuzz trees);
#      CARGO_INCREMENTAL defaults to 0.
set -uo pipefail
export LC_ALL=C
# Never probe this machine's real gateway or nameservers (the default config would):
# only loopback is ours to test against. See src/probe/mod.rs.
export PROMLET_UPLINK_PROBES=off
cd "$(dirname "$0")/.."
REPO=$PWD
export PROMLET_STACK_DIR=${PROMLET_STACK_DIR:-$REPO/.stack}
export CARGO_TERM_COLOR=never
# One build per tree here: incremental state would only take disk (several GiB for the test tree).
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
mkdir -p target
LOG=target/test-all.log
: >"$LOG"

T0=$SECONDS
failed=()
timings=()
# Free space where the builds go: CI shares its disk, so each step's line shows it.
disk_free() { df -h --output=avail "$REPO/target" 2>/dev/null | tail -n 1 | tr -d ' '; }
# step NAME CMD...: runs CMD with its output shown and logged; records failure and duration.
step() {
  local name=$1 t=$SECONDS rc
  shift
  echo
  echo "===== $name: $*"
  "$@" 2>&1 | tee -a "$LOG"
  rc=${PIPESTATUS[0]}
  timings+=("$(printf '%-28s %4d s  %-16s %s' "$name" $((SECONDS - t)) "$([ "$rc" = 0 ] && echo ok || echo "FAILED (exit $rc)")" "disk free $(disk_free)")")
  [ "$rc" = 0 ] || failed+=("$name")
  return "$rc"
}

# Prerequisites: without them nothing below means anything, so stop here if they fail.
step "install cross toolchain" bash scripts/install-cross.sh || exit 1
step "install Prometheus stack" bash scripts/install-stack.sh "$PROMLET_STACK_DIR" || exit 1
step "install test peers" bash scripts/install-test-peers.sh || exit 1
# prometheus_client drives the Pushgateway differential test (tests/push.rs).
python3 -c 'import prometheus_client' 2>/dev/null ||
  step "install prometheus_client" python3 -m pip install --quiet prometheus_client || exit 1
# Headless Chromium drives the web UI tests (tests/webui.rs); installed as install-cross.sh
# installs its apt packages (skipped when present or with SKIP_APT=1).
install_chromium() {
  [ "${SKIP_APT:-0}" = 1 ] && return 0
  dpkg-query -W -f='${Status}' chromium 2>/dev/null | grep -q 'install ok installed' && return 0
  local sudo=()
  [ "$(id -u)" = 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update -q >/dev/null &&
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends chromium >/dev/null
}
step "install chromium" install_chromium || exit 1

step "cross.toml == Cross.toml" cmp Cross.toml cross.toml
step "cargo fmt --check" cargo fmt --check
step "cargo clippy" cargo clippy --all-targets -- -D warnings
step "cargo clippy --features tls" cargo clippy --all-targets --features tls -- -D warnings
step "cargo test" cargo test
step "cargo test --features tls (lib)" cargo test --features tls --lib
step "cargo test --features tls (integration)" \
  cargo test --features tls --test tests -- webauth:: scrape:: http:: agent:: notify::alerts_reach_an_alertmanager_over_https remote_write::remote_write_over_https probe::https_probes_match_blackbox_exporter
# The host test tree is no longer needed: free its disk before the cross builds (PROMLET_KEEP_TARGET=1
# keeps it, for a local run that goes on editing).
[ "${PROMLET_KEEP_TARGET:-0}" = 1 ] || rm -rf target/debug
if [ "${PROMLET_SKIP_CROSS:-0}" != 1 ]; then
  # cross-test keeps only each target's release binary once it is checked (--keep-build keeps more).
  step "cross build + qemu tests" bash scripts/cross-test.sh &&
    step "release tarballs" bash scripts/release.sh --no-build --deb
fi
# The .deb test installs and purges a package on this machine: root only (CI is root).
if [ "$(id -u)" = 0 ]; then
  step "deb package" bash packaging/deb/test.sh
elif [ "${CI:-}" = true ]; then
  step "deb package (needs root)" false
else
  echo "===== deb package: SKIPPED (needs root: it runs dpkg -i / --purge)"
fi
# the binary cross-test built, when there is one (else the script builds target/release/promlet)
musl_bin=target/x86_64-unknown-linux-musl/release/promlet
step "openwrt package" bash packaging/openwrt/test.sh $([ -x "$musl_bin" ] && echo "$musl_bin")
# Fuzzing needs a nightly toolchain (install-cross.sh may have installed one for -Zbuild-std)
# and cargo-fuzz; both are kept between runs.
install_fuzz() {
  rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal || return 1
  command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
}
if [ "${PROMLET_SKIP_FUZZ:-0}" != 1 ]; then
  step "install cargo-fuzz" install_fuzz &&
    step "fuzz smoke" bash scripts/fuzz.sh "${PROMLET_FUZZ_SECONDS:-20}"
  # the instrumented build tree (GiBs); the corpus found so far stays in target/fuzz-corpus
  [ "${PROMLET_KEEP_TARGET:-0}" = 1 ] || rm -rf fuzz/target
fi
if [ "${PROMLET_SKIP_BENCH:-0}" != 1 ] && [ -x target/x86_64-unknown-linux-musl/release/promlet ]; then
  # A benchmark, not a test: its goals are printed, not enforced, and a failure is not fatal.
  # 300 scrapes: CPU is counted in 10 ms ticks, and promlet spends ~1 ms a scrape, so 100
  # scrapes (11 ticks) resolved its CPU to only ±9 %; 300 give ±3 % for ~10 s more.
  echo
  echo "===== side-by-side with node_exporter (informational)"
  PROMLET_BIN=target/x86_64-unknown-linux-musl/release/promlet \
    bash scripts/bench-vs-node-exporter.sh 300 2>&1 || echo "(benchmark did not run; see above)"
fi

echo
echo "===== summary ($((SECONDS - T0)) s)"
for t in "${timings[@]}"; do echo "  $t"; done
[ ${#failed[@]} -eq 0 ] || echo "FAILED steps: ${failed[*]}"
# the closing line: every `test result:` line of cargo test and of the qemu runs, added up
awk '/^test result:/ {
       for (i = 1; i < NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i }
     }
     END { printf "test-all: %d passed, %d failed\n", p, f }' "$LOG"
[ ${#failed[@]} -eq 0 ]
