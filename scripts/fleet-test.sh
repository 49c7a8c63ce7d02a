#!/usr/bin/env bash
# fleet-test.sh — a fleet of promlets on loopback and the central servers that collect from them.
#
# Starts, all on 127.0.0.1:
#   - FLEET_SIZE (20) promlets, each with its own port, data dir and
#     `global.external_labels: {instance: node-NN}`, collecting every INTERVAL (5s);
#   - a real Prometheus 3.5 federating all of them (`/federate`, honor_labels, every series);
#   - a second Prometheus 3.5 with --web.enable-remote-write-receiver that every promlet
#     remote_writes to (`remote_write: [{url: .../api/v1/write}]`) — when this promlet build
#     accepts remote_write (`promlet check config`); otherwise the script says so and runs the
#     federation half alone;
#   - FLEET_SIZE node_exporters doing only the collection, scraped by the first Prometheus at
#     the same INTERVAL (their CPU is what collecting the same machine costs Go's exporter).
# Then, over a MEASURE (60 s) window after a warm-up, it prints the fleet's total RSS and CPU
# against the node_exporters' (ratios), and checks that every node's series reached each central
# server: per node, the central server must hold at least 95% of the series the node itself
# holds. Exit status: non-zero when a check fails (or a process dies).
#
# Takes about WARMUP + MEASURE + 30 s (~2 min with the defaults). Not part of test-all.sh:
#   PROMLET_STACK_DIR=/work/stack bash scripts/fleet-test.sh
# Env: PROMLET_BIN (default target/x86_64-unknown-linux-musl/release/promlet, else
#      target/release/promlet, built when missing), PROMLET_STACK_DIR (default <repo>/.stack),
#      FLEET_SIZE, INTERVAL, WARMUP (30), MEASURE (60), KEEP=1 keeps the work dir.
set -uo pipefail
export LC_ALL=C
# Never probe this machine's real gateway or nameservers (the default config would):
# only loopback is ours to test against. See src/probe/mod.rs.
export PROMLET_UPLINK_PROBES=off
cd "$(dirname "$0")/.."

N=${FLEET_SIZE:-20}
INTERVAL=${INTERVAL:-5s}
WARMUP=${WARMUP:-30}
MEASURE=${MEASURE:-60}
STACK=${PROMLET_STACK_DIR:-$PWD/.stack}
PROM=$STACK/bin/prometheus
NE=$STACK/bin/prometheus-node-exporter
die() { echo "fleet: ERROR: $*" >&2; exit 1; }
[ -x "$PROM" ] || die "$PROM missing: run scripts/install-stack.sh or set PROMLET_STACK_DIR"
[ -x "$NE" ] || die "$NE missing: run scripts/install-stack.sh or set PROMLET_STACK_DIR"
for t in curl python3 awk; do command -v $t >/dev/null || die "$t missing"; done

if [ -n "${PROMLET_BIN:-}" ]; then
  PL=$PROMLET_BIN
elif [ -x target/x86_64-unknown-linux-musl/release/promlet ]; then
  PL=target/x86_64-unknown-linux-musl/release/promlet
else
  cargo build -q --release --bin promlet || die "cargo build failed"
  PL=target/release/promlet
fi
PL=$(realpath "$PL")

WORK=$(mktemp -d /tmp/promlet-fleet.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  if [ "${KEEP:-0}" = 1 ]; then echo "fleet: work dir kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# 2N+2 distinct free ports, chosen at once so none is handed out twice
mapfile -t PORTS < <(python3 - "$((2 * N + 2))" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
for s in socks:
    print(s.getsockname()[1])
PY
)
FED_PORT=${PORTS[0]}
RECV_PORT=${PORTS[1]}
pl_port() { echo "${PORTS[$((2 + $1))]}"; }
ne_port() { echo "${PORTS[$((2 + N + $1))]}"; }
node() { printf 'node-%02d' "$1"; }

wait_http() {  # $1 port, $2 pid, $3 path
  for _ in $(seq 300); do
    kill -0 "$2" 2>/dev/null || return 1
    curl -fs -o /dev/null "http://127.0.0.1:$1$3" && return 0
    sleep 0.1
  done
  return 1
}

# Does this build take remote_write? (It is being built on another branch.)
cat >"$WORK/probe.yml" <<YAML
remote_write:
  - url: http://127.0.0.1:$RECV_PORT/api/v1/write
YAML
if out=$("$PL" check config "$WORK/probe.yml" 2>&1); then
  REMOTE=1
else
  REMOTE=0
  echo "fleet: NOTE: this promlet build rejects remote_write, so only federation is tested:"
  echo "fleet:   $out"
fi

echo "fleet: $N promlets ($PL), $N node_exporters, collection every $INTERVAL; work dir $WORK"
PL_PIDS=()
NE_PIDS=()
for i in $(seq 0 $((N - 1))); do
  d=$WORK/$(node "$i")
  mkdir -p "$d"
  {
    printf 'global:\n  scrape_interval: %s\n  external_labels:\n    instance: %s\n' "$INTERVAL" "$(node "$i")"
    if [ $REMOTE = 1 ]; then
      printf 'remote_write:\n  - url: http://127.0.0.1:%s/api/v1/write\n' "$RECV_PORT"
    fi
  } >"$d/promlet.yml"
  "$PL" --config.file="$d/promlet.yml" --storage.tsdb.path="$d/data" \
    --web.listen-address="127.0.0.1:$(pl_port "$i")" >"$d/promlet.log" 2>&1 &
  PL_PIDS+=($!)
  PIDS+=($!)
  "$NE" --web.listen-address="127.0.0.1:$(ne_port "$i")" --no-collector.systemd \
    >"$d/node_exporter.log" 2>&1 &
  NE_PIDS+=($!)
  PIDS+=($!)
done

{
  printf 'global:\n  scrape_interval: %s\nscrape_configs:\n' "$INTERVAL"
  printf '  - job_name: federate\n    honor_labels: true\n    metrics_path: /federate\n'
  printf "    params:\n      'match[]': ['{__name__=~\".+\"}']\n    static_configs:\n      - targets:\n"
  for i in $(seq 0 $((N - 1))); do printf "          - '127.0.0.1:%s'\n" "$(pl_port "$i")"; done
  printf '  - job_name: node\n    static_configs:\n      - targets:\n'
  for i in $(seq 0 $((N - 1))); do printf "          - '127.0.0.1:%s'\n" "$(ne_port "$i")"; done
} >"$WORK/federate.yml"
"$PROM" --config.file="$WORK/federate.yml" --storage.tsdb.path="$WORK/prom-federate" \
  --web.listen-address="127.0.0.1:$FED_PORT" >"$WORK/prom-federate.log" 2>&1 &
FED_PID=$!
PIDS+=($!)
if [ $REMOTE = 1 ]; then
  printf 'global:\n  scrape_interval: %s\n' "$INTERVAL" >"$WORK/receiver.yml"
  "$PROM" --config.file="$WORK/receiver.yml" --storage.tsdb.path="$WORK/prom-receiver" \
    --web.enable-remote-write-receiver \
    --web.listen-address="127.0.0.1:$RECV_PORT" >"$WORK/prom-receiver.log" 2>&1 &
  RECV_PID=$!
  PIDS+=($!)
fi

for i in $(seq 0 $((N - 1))); do
  wait_http "$(pl_port "$i")" "${PL_PIDS[$i]}" /-/ready ||
    { tail -n 20 "$WORK/$(node "$i")/promlet.log" >&2; die "promlet $(node "$i") did not start"; }
  wait_http "$(ne_port "$i")" "${NE_PIDS[$i]}" /metrics || die "node_exporter $i did not start"
done
wait_http "$FED_PORT" "$FED_PID" /-/ready || { tail "$WORK/prom-federate.log" >&2; die "federating Prometheus did not start"; }
if [ $REMOTE = 1 ]; then
  wait_http "$RECV_PORT" "$RECV_PID" /-/ready || { tail "$WORK/prom-receiver.log" >&2; die "receiving Prometheus did not start"; }
fi
echo "fleet: all started; warming up ${WARMUP}s"
sleep "$WARMUP"

HZ=$(getconf CLK_TCK)
ticks() { local s=0 p; for p in "$@"; do s=$((s + $(awk '{ print $14 + $15 }' "/proc/$p/stat"))); done; echo $s; }
rss_kib() { local s=0 p; for p in "$@"; do s=$((s + $(awk '$1 == "VmRSS:" { print $2 }' "/proc/$p/status"))); done; echo $s; }
pl0=$(ticks "${PL_PIDS[@]}")
ne0=$(ticks "${NE_PIDS[@]}")
t0=$(date +%s.%N)
echo "fleet: measuring ${MEASURE}s"
sleep "$MEASURE"
pl1=$(ticks "${PL_PIDS[@]}")
ne1=$(ticks "${NE_PIDS[@]}")
t1=$(date +%s.%N)
pl_rss=$(rss_kib "${PL_PIDS[@]}")
ne_rss=$(rss_kib "${NE_PIDS[@]}")
fed_rss=$(rss_kib "$FED_PID")

awk -v n="$N" -v hz="$HZ" -v el="$(echo "$t1 - $t0" | bc -l 2>/dev/null || python3 -c "print($t1 - $t0)")" \
  -v plc=$((pl1 - pl0)) -v nec=$((ne1 - ne0)) -v plr="$pl_rss" -v ner="$ne_rss" -v fr="$fed_rss" 'BEGIN {
  printf "\nfleet of %d on one machine, %.0f s measured (CPU = utime+stime from /proc/PID/stat)\n", n, el
  printf "%-34s %16s %16s %8s\n", "", "promlet x" n, "node_exporter x" n, "ratio"
  printf "%-34s %13.1f MiB %13.1f MiB %7.3fx\n", "total RSS", plr / 1024, ner / 1024, (ner ? plr / ner : 0)
  printf "%-34s %13.2f MiB %13.2f MiB\n", "RSS per process", plr / 1024 / n, ner / 1024 / n
  printf "%-34s %15.2f%% %15.2f%% %7.3fx\n", "total CPU (% of one core)", 100 * plc / hz / el, 100 * nec / hz / el, (nec ? plc / nec : 0)
  printf "%-34s %16s %16s\n", "work", "collect+store+serve", "collect+serve"
  printf "(the federating Prometheus: %.1f MiB RSS)\n\n", fr / 1024
}'

# --- checks: every node's series on each central server
fails=0
query() {  # $1 port, $2 PromQL: prints "label value" lines of an instant vector
  curl -fsS --data-urlencode "query=$2" "http://127.0.0.1:$1/api/v1/query" | python3 -c '
import json, sys
for r in json.load(sys.stdin)["data"]["result"]:
    print(r["metric"].get("instance", "-"), r["value"][1])'
}
local_counts=$WORK/local.txt
: >"$local_counts"
for i in $(seq 0 $((N - 1))); do
  c=$(query "$(pl_port "$i")" 'count({__name__=~".+"})' | awk '{ print $2 }')
  echo "$(node "$i") ${c:-0}" >>"$local_counts"
done
check_server() {  # $1 name, $2 port, $3 selector of the fleet's series there
  local got missing=0 short=0
  got=$(query "$2" "count by (instance) ($3)")
  while read -r name want; do
    have=$(awk -v n="$name" '$1 == n { print $2 }' <<<"$got")
    if [ -z "$have" ]; then
      missing=$((missing + 1)); echo "fleet: FAIL: $1 has no series of $name"
    elif [ "$have" -lt $((want * 95 / 100)) ]; then
      short=$((short + 1)); echo "fleet: FAIL: $1 has $have series of $name, which holds $want"
    fi
  done <"$local_counts"
  local total
  total=$(awk '{ s += $2 } END { print s + 0 }' <<<"$got")
  if [ $missing = 0 ] && [ $short = 0 ]; then
    echo "fleet: ok: $1 sees all $N nodes ($total series; each node's count >= 95% of what it holds)"
  else
    fails=$((fails + 1))
  fi
}
check_server "federating Prometheus" "$FED_PORT" '{job="federate"}'
if [ $REMOTE = 1 ]; then
  check_server "remote-write receiver" "$RECV_PORT" '{__name__=~".+"}'
  sent=$(for i in $(seq 0 $((N - 1))); do curl -fsS "http://127.0.0.1:$(pl_port "$i")/metrics"; done |
    awk '!/timestamp/ && /^(promlet_remote_write|prometheus_remote_storage)_/ { split($1, a, "{"); s[a[1]] += $NF } END { for (k in s) printf "  %s %.0f\n", k, s[k] }' | sort)
  [ -n "$sent" ] && printf 'fleet: remote_write counters summed over the fleet:\n%s\n' "$sent"
else
  echo "fleet: SKIPPED: remote_write half (this build rejects remote_write; see the NOTE above)"
fi
up=$(query "$FED_PORT" 'count(up{job="node"} == 1)' | awk '{ print $2 }')
[ "${up:-0}" = "$N" ] && echo "fleet: ok: $N node_exporters scraped" ||
  { echo "fleet: FAIL: ${up:-0} of $N node_exporters up"; fails=$((fails + 1)); }
for i in $(seq 0 $((N - 1))); do
  kill -0 "${PL_PIDS[$i]}" 2>/dev/null || { echo "fleet: FAIL: promlet $(node "$i") died"; fails=$((fails + 1)); }
done

[ $fails = 0 ] && echo "fleet: all checks passed" || { echo "fleet: $fails checks FAILED"; exit 1; }
