#!/usr/bin/env bash
# bench-vs-node-exporter.sh [N]
#
# Runs promlet and the real node_exporter 1.11 side by side on this machine, in one run, scrapes
# each N times (default 300; interleaved, so machine load hits both alike) and prints, as ratios
# promlet / node_exporter, next to the goals of issue 2:
#
#   CPU time per scrape   utime+stime from /proc/PID/stat over the N scrapes   goal ≤ 0.1×
#                         (whole process, threads that ended included; the kernel derives it from
#                         exact run time, so the only error is the final 10 ms rounding. Summing
#                         /proc/PID/task/*/schedstat instead would miss node_exporter's netlink
#                         threads, which end after each scrape: 6.7 instead of 11.8 ms measured.)
#   RSS, peak RSS         VmRSS / VmHWM from /proc/PID/status after them        goal ≤ 0.25×
#   threads               Threads from /proc/PID/status                        goal 2
#   bytes per scrape      response body, uncompressed and as gzip on the wire
#   binary size           stripped release binary per target (target/cross-sizes.tsv from
#                         scripts/cross-test.sh) vs node_exporter's              goal ≤ 1536 KiB
#
# Scrapes ask like Prometheus does: Accept text/plain;version=0.0.4 and Accept-Encoding gzip,
# over a new connection each time. Each process gets 10 warm-up scrapes first; start-up CPU is
# not counted.
#
# node_exporter runs with its defaults except the systemd collector (on in Debian's build; it
# needs a systemd bus, and promlet has no equivalent). promlet runs with no config file:
# `promlet --web.listen-address=127.0.0.1:PORT`.
#
# Env: PROMLET_BIN (default: build the shipped static x86_64-musl release binary with
#      scripts/cross-test.sh's recipe if cargo-zigbuild and nightly are installed, else
#      `cargo build --release`, which is bigger and slower: no -Zbuild-std, no promlet_speed),
#      PROMLET_STACK_DIR (default <repo>/.stack),
#      NODE_EXPORTER_ARGS (extra flags).
set -euo pipefail
export LC_ALL=C
# Never probe this machine's real gateway or nameservers (the default config would):
# only loopback is ours to test against. See src/probe/mod.rs.
export PROMLET_UPLINK_PROBES=off
cd "$(dirname "$0")/.."
N=${1:-300}
[[ $N =~ ^[0-9]+$ ]] && [ "$N" -ge 10 ] || { echo "usage: $0 [N>=10]" >&2; exit 2; }

die() { echo "bench: ERROR: $*" >&2; exit 1; }
STACK=${PROMLET_STACK_DIR:-$PWD/.stack}
NE=$STACK/bin/prometheus-node-exporter
[ -x "$NE" ] || die "$NE missing: run scripts/install-stack.sh"
command -v curl >/dev/null || die "curl missing"

if [ -n "${PROMLET_BIN:-}" ]; then
  PL=$PROMLET_BIN
elif command -v cargo-zigbuild >/dev/null && rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  bash scripts/cross-test.sh --no-tests --keep-build x86_64-unknown-linux-musl >/dev/null ||
    die "scripts/cross-test.sh could not build the x86_64 release binary"
  PL=target/x86_64-unknown-linux-musl/release/promlet
else
  cargo build -q --release --bin promlet
  PL=target/release/promlet
fi
[ -x "$PL" ] || die "promlet binary $PL missing"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {  # $1 port, $2 pid
  for _ in $(seq 200); do
    kill -0 "$2" 2>/dev/null || return 1
    curl -s -o /dev/null "http://127.0.0.1:$1/" && return 0
    sleep 0.05
  done
  return 1
}

TMP=$(mktemp -d /tmp/promlet-bench.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT

PL_PORT=$(free_port)
NE_PORT=$(free_port)
# shellcheck disable=SC2086
"$NE" --web.listen-address="127.0.0.1:$NE_PORT" --no-collector.systemd ${NODE_EXPORTER_ARGS:-} \
  >"$TMP/ne.log" 2>&1 &
NE_PID=$!
PIDS+=("$NE_PID")
"$PL" --web.listen-address="127.0.0.1:$PL_PORT" >"$TMP/pl.log" 2>&1 &
PL_PID=$!
PIDS+=("$PL_PID")
wait_port "$NE_PORT" "$NE_PID" || { cat "$TMP/ne.log" >&2; die "node_exporter did not start"; }
wait_port "$PL_PORT" "$PL_PID" || {
  tail -n 20 "$TMP/pl.log" >&2
  die "promlet did not serve on 127.0.0.1:$PL_PORT (does this build have the HTTP server yet?)"
}

scrape() {  # $1 port, $2 out-file for the decoded body; prints the bytes on the wire
  curl -s --fail -H 'Accept: text/plain;version=0.0.4' -H 'Accept-Encoding: gzip' \
    -o "$TMP/wire" -w '%{size_download}' "http://127.0.0.1:$1/metrics"
  if gzip -t "$TMP/wire" 2>/dev/null; then gzip -dc "$TMP/wire" >"$2"; else cp "$TMP/wire" "$2"; fi
}
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }  # utime + stime, after the comm field
# (comm can hold spaces; ours do not: "promlet", "prometheus-node")
status_kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }

for _ in $(seq 10); do scrape "$PL_PORT" "$TMP/pl.prom" >/dev/null; scrape "$NE_PORT" "$TMP/ne.prom" >/dev/null; done
pl0=$(cpu_ticks "$PL_PID"); ne0=$(cpu_ticks "$NE_PID")
pl_wire=0; ne_wire=0
start=$(date +%s.%N)
for _ in $(seq "$N"); do
  w=$(scrape "$PL_PORT" "$TMP/pl.prom") || die "promlet scrape failed"
  pl_wire=$((pl_wire + w))
  w=$(scrape "$NE_PORT" "$TMP/ne.prom") || die "node_exporter scrape failed"
  ne_wire=$((ne_wire + w))
done
elapsed=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
pl1=$(cpu_ticks "$PL_PID"); ne1=$(cpu_ticks "$NE_PID")
HZ=$(getconf CLK_TCK)

pl_rss=$(status_kib "$PL_PID" VmRSS); ne_rss=$(status_kib "$NE_PID" VmRSS)
pl_hwm=$(status_kib "$PL_PID" VmHWM); ne_hwm=$(status_kib "$NE_PID" VmHWM)
pl_thr=$(status_kib "$PL_PID" Threads); ne_thr=$(status_kib "$NE_PID" Threads)
pl_bytes=$(stat -c %s "$TMP/pl.prom"); ne_bytes=$(stat -c %s "$TMP/ne.prom")
samples() { grep -cv '^#' "$1" || true; }
families() { grep -c '^# TYPE' "$1" || true; }

awk -v n="$N" -v hz="$HZ" -v el="$elapsed" \
    -v plc=$((pl1 - pl0)) -v nec=$((ne1 - ne0)) \
    -v plr="$pl_rss" -v ner="$ne_rss" -v plh="$pl_hwm" -v neh="$ne_hwm" \
    -v plt="$pl_thr" -v net="$ne_thr" -v plb="$pl_bytes" -v neb="$ne_bytes" \
    -v plw="$pl_wire" -v new="$ne_wire" \
    -v pls="$(samples "$TMP/pl.prom")" -v nes="$(samples "$TMP/ne.prom")" \
    -v plf="$(families "$TMP/pl.prom")" -v nef="$(families "$TMP/ne.prom")" \
    -v plv="$("$PL" --version 2>&1 | head -n1)" -v nev="$("$NE" --version 2>&1 | head -n1)" '
function ratio(a, b) { return b > 0 ? sprintf("%.3f×", a / b) : "n/a" }
function verdict(ok) { return ok ? "met" : "NOT met" }
BEGIN {
  printf "promlet vs node_exporter, same machine, one run: %d interleaved scrapes each (%s s)\n", n, el
  printf "  promlet:       %s\n  node_exporter: %s\n\n", plv, nev
  printf "%-26s %14s %14s %9s   %s\n", "", "promlet", "node_exporter", "ratio", "goal"
  plcpu = plc / hz / n * 1000; necpu = nec / hz / n * 1000
  printf "%-26s %11.3f ms %11.3f ms %9s   ≤ 0.1× (%s)\n", "CPU per scrape", plcpu, necpu, ratio(plc, nec), verdict(nec > 0 && plc / nec <= 0.1)
  printf "%-26s %10.1f MiB %10.1f MiB %9s   ≤ 0.25× (%s)\n", "RSS", plr / 1024, ner / 1024, ratio(plr, ner), verdict(plr / ner <= 0.25)
  printf "%-26s %10.1f MiB %10.1f MiB %9s\n", "peak RSS (VmHWM)", plh / 1024, neh / 1024, ratio(plh, neh)
  printf "%-26s %14d %14d %9s   2 (%s)\n", "threads", plt, net, ratio(plt, net), verdict(plt <= 2)
  printf "%-26s %14d %14d %9s\n", "bytes per scrape", plb, neb, ratio(plb, neb)
  printf "%-26s %14d %14d %9s\n", "bytes per scrape (gzip)", plw / n, new / n, ratio(plw, new)
  printf "%-26s %14d %14d %9s\n", "samples per scrape", pls, nes, ratio(pls, nes)
  printf "%-26s %14d %14d %9s\n", "families per scrape", plf, nef, ratio(plf, nef)
  printf "%-26s %14s %14s\n", "CPU over the run (ticks)", plc, nec
}'

ne_size=$(stat -c %s "$NE")
echo
echo "stripped release binary (goal ≤ 1536 KiB = 1572864 bytes, the complete agent without TLS; node_exporter 1.11: $ne_size bytes)"
if [ -s target/cross-sizes.tsv ]; then
  awk -F'\t' -v ne="$ne_size" '!/^#/ && $2 ~ /^[0-9]+$/ {
    printf "  %-34s %9d bytes %7.1f KiB  %.3f×  %s\n", $1, $2, $2 / 1024, $2 / ne, ($2 <= 1572864 ? "met" : "NOT met") }' \
    target/cross-sizes.tsv
else
  echo "  (no target/cross-sizes.tsv: run scripts/cross-test.sh --no-tests for every target)"
fi
s=$(stat -c %s "$PL")
awk -v p="$PL" -v s="$s" -v ne="$ne_size" \
  'BEGIN { printf "  %-34s %9d bytes %7.1f KiB  %.3f×  (the binary measured above)\n", p, s, s / 1024, s / ne }'
