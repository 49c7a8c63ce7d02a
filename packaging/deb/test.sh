#!/usr/bin/env bash
# test.sh [BINARY] — builds the .deb, installs it on THIS machine with dpkg, checks what it put
# where, runs the INSTALLED binary with the INSTALLED config exactly as the systemd unit would
# (its ExecStart line, as the `promlet` user, with /etc/default/promlet's ARGS), then removes
# and purges the package and checks that nothing is left. Needs root; scripts/test-all.sh runs it.
#
#   BINARY  the promlet to package (default: target/x86_64-unknown-linux-musl/release/promlet
#           when built, else a fresh `cargo build --release`)
#
# systemd is usually not PID 1 where this runs (containers, CI), so the unit is checked with
# `systemd-analyze verify` and started by hand; `systemctl start` is not exercised here.
# Refuses to run when a promlet package or user already exists (it would remove them).
set -uo pipefail
export LC_ALL=C
# Never probe this machine's real gateway or nameservers (the default config would):
# only loopback is ours to test against. See src/probe/mod.rs.
export PROMLET_UPLINK_PROBES=off
cd "$(dirname "$0")/../.."

fails=0
ok() { echo "  ok: $*"; }
bad() { echo "  FAIL: $*"; fails=$((fails + 1)); }
check() {  # check DESCRIPTION CMD...
  local what=$1
  shift
  if "$@" >/dev/null 2>&1; then ok "$what"; else bad "$what"; fi
}

[ "$(id -u)" = 0 ] || { echo "deb test: needs root (dpkg -i)" >&2; exit 1; }
for t in dpkg dpkg-deb setpriv curl; do
  command -v $t >/dev/null || { echo "deb test: $t missing" >&2; exit 1; }
done
if dpkg-query -W -f='${Status}' promlet 2>/dev/null | grep -q installed || getent passwd promlet >/dev/null; then
  echo "deb test: a promlet package or user already exists here; not touching it" >&2
  exit 1
fi

BIN=${1:-}
if [ -z "$BIN" ]; then
  BIN=target/x86_64-unknown-linux-musl/release/promlet
  if [ ! -x "$BIN" ]; then
    cargo build --release --bin promlet -q || exit 1
    BIN=target/release/promlet
  fi
fi
WORK=$(mktemp -d)
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null
  dpkg --purge promlet >/dev/null 2>&1
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "== build"
deb=$(PROMLET_DIST_DIR=$WORK bash packaging/deb/build.sh amd64 "$BIN") || exit 1
ok "built $(basename "$deb") ($(stat -c %s "$deb") bytes) from $BIN"

echo "== install"
dpkg -i "$deb" || { bad "dpkg -i"; exit 1; }
for f in /usr/bin/promlet /etc/promlet/promlet.yml /etc/promlet/rules/heartbeat.yml \
  /etc/promlet/rules/uplink.yml /etc/default/promlet /usr/lib/systemd/system/promlet.service /usr/share/doc/promlet/copyright; do
  check "installed $f" test -f "$f"
done
check "/usr/bin/promlet runs" sh -c '/usr/bin/promlet --version | grep -q "^promlet"'
conffiles=$(dpkg-query -W -f='${Conffiles}' promlet)
for f in /etc/promlet/promlet.yml /etc/promlet/rules/heartbeat.yml /etc/promlet/rules/uplink.yml /etc/default/promlet; do
  check "conffile $f" grep -q " $f " <<<"$conffiles"
done
check "system user promlet" getent passwd promlet
uid=$(id -u promlet 2>/dev/null || echo 99999)
[ "$uid" -lt 1000 ] && ok "promlet is a system uid ($uid)" || bad "promlet uid $uid is not a system uid"
shell=$(getent passwd promlet | cut -d: -f7)
[ "$shell" = /usr/sbin/nologin ] && ok "no login shell" || bad "login shell is '$shell'"
check "group promlet" getent group promlet
owner=$(stat -c '%U:%G %a' /var/lib/promlet 2>/dev/null)
[ "$owner" = "promlet:promlet 750" ] && ok "/var/lib/promlet is $owner" || bad "/var/lib/promlet is '$owner'"
check "installed config passes promlet check config" /usr/bin/promlet check config /etc/promlet/promlet.yml
# the packaged config is the embedded default plus the rules section: keep them in step
same_as_default() {
  diff <(grep -v '^\s*#' src/config/default.yml | grep -v '^\s*$') \
    <(sed '/^# Recording and alerting/,$d' /etc/promlet/promlet.yml | grep -v '^\s*#' | grep -v '^\s*$')
}
check "installed config = src/config/default.yml + rule_files" same_as_default
dpkg -i "$deb" >/dev/null && ok "reinstall over itself (postinst configure with an old version)" || bad "reinstall"

echo "== the unit"
unit=/usr/lib/systemd/system/promlet.service
for key in 'User=promlet' 'ProtectSystem=strict' 'ProtectHome=' 'PrivateTmp=yes' \
  'NoNewPrivileges=yes' 'StateDirectory=promlet' 'CapabilityBoundingSet=CAP_NET_RAW' \
  'AmbientCapabilities=CAP_NET_RAW' 'EnvironmentFile=-/etc/default/promlet' 'ExecReload='; do
  check "unit has $key" grep -q "^$key" "$unit"
done
if command -v systemd-analyze >/dev/null; then
  # verify loads the unit as systemd would: unknown keys, bad values, missing binaries fail it
  if out=$(systemd-analyze verify "$unit" 2>&1) && ! grep -q 'promlet.service' <<<"$out"; then
    ok "systemd-analyze verify"
  else
    bad "systemd-analyze verify: $out"
  fi
else
  echo "  (systemd-analyze not installed: the unit is not verified)"
fi

echo "== run ExecStart as the promlet user"
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
ARGS=
# shellcheck disable=SC1091
. /etc/default/promlet
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# the one deviation from the unit: a free loopback port instead of :9099
ARGS="$ARGS --web.listen-address=127.0.0.1:$port"
cmd=${exec_start//\$ARGS/$ARGS}
echo "  $cmd"
# shellcheck disable=SC2086
(cd /var/lib/promlet && exec setpriv --reuid=promlet --regid=promlet --init-groups --no-new-privs \
  $cmd) >"$WORK/promlet.log" 2>&1 &
pid=$!
for _ in $(seq 100); do
  curl -fsS "http://127.0.0.1:$port/-/ready" >/dev/null 2>&1 && break
  sleep 0.1
done
metrics=$(curl -fsS "http://127.0.0.1:$port/metrics")
check "/metrics has promlet_build_info" grep -q '^promlet_build_info' <<<"$metrics"
check "/metrics has node_cpu_seconds_total" grep -q '^node_cpu_seconds_total' <<<"$metrics"
# the subshell exec's setpriv, which exec's promlet: $pid is promlet itself
check "runs as promlet" sh -c "[ \"\$(stat -c %U /proc/$pid)\" = promlet ] && grep -q promlet /proc/$pid/comm"
rules=$(curl -fsS "http://127.0.0.1:$port/api/v1/rules")
check "the installed heartbeat rule is loaded" grep -q '"Heartbeat"' <<<"$rules"
check "the installed uplink rule is loaded" grep -q '"UplinkDown"' <<<"$rules"
kill -HUP "$pid"
sleep 1
check "SIGHUP (ExecReload) reloads" grep -q '^promlet_config_last_reload_successful 1' <<<"$(curl -fsS "http://127.0.0.1:$port/metrics")"
kill -TERM "$pid"
wait "$pid"
rc=$?
pid=
[ "$rc" = 0 ] && ok "SIGTERM: clean exit" || { bad "exit status $rc"; cat "$WORK/promlet.log"; }
files=$(find /var/lib/promlet -mindepth 1 | wc -l)
foreign=$(find /var/lib/promlet -mindepth 1 ! -user promlet | wc -l)
[ "$files" -gt 0 ] && [ "$foreign" = 0 ] && ok "store written to /var/lib/promlet ($files files, all owned by promlet)" ||
  bad "/var/lib/promlet: $files files, $foreign not owned by promlet"

echo "== remove, then purge"
dpkg -r promlet >/dev/null || bad "dpkg -r"
check "remove: binary gone" test ! -e /usr/bin/promlet
check "remove: config kept" test -f /etc/promlet/promlet.yml
check "remove: user kept" getent passwd promlet
dpkg --purge promlet >/dev/null || bad "dpkg --purge"
for f in /usr/bin/promlet /etc/promlet /etc/default/promlet /var/lib/promlet /usr/lib/systemd/system/promlet.service /usr/share/doc/promlet; do
  check "purge: $f gone" test ! -e "$f"
done
check "purge: unit not enabled any more" test ! -e /etc/systemd/system/multi-user.target.wants/promlet.service
check "purge: user gone" sh -c '! getent passwd promlet'
check "purge: group gone" sh -c '! getent group promlet'
check "purge: dpkg forgot the package" sh -c "! dpkg-query -W -f='\${Status}' promlet 2>/dev/null | grep -q installed"

if [ "$fails" -gt 0 ]; then
  echo "deb test: $fails checks FAILED"
  exit 1
fi
echo "deb test: all checks passed"
