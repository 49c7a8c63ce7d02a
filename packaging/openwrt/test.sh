#!/usr/bin/env bash
# test.sh [PROMLET] — what can be checked of the OpenWrt package without an OpenWrt SDK or router:
#
# 1. the procd init script and the shell in it parse (`sh -n`, and busybox ash when installed);
# 2. the Makefile agrees with the source tree: PKG_VERSION and PKG_LICENSE match Cargo.toml,
#    every file it copies or installs exists, every conffile is installed;
# 3. the init script's start_service, run against a shim of OpenWrt's config_* and procd_*
#    helpers with the packaged UCI file, yields a command line that starts the real promlet
#    with the packaged YAML config; /metrics answers; reload_service's SIGHUP reloads it.
#
# PROMLET: the binary to run (default target/release/promlet, built when missing).
# Not covered: the SDK build itself (rust-package.mk), procd's respawn, USERID creation.
set -uo pipefail
export LC_ALL=C
# Never probe this machine's real gateway or nameservers (the default config would):
# only loopback is ours to test against. See src/probe/mod.rs.
export PROMLET_UPLINK_PROBES=off
cd "$(dirname "$0")/../.."
REPO=$PWD
PKG=packaging/openwrt/promlet
fails=0
ok() { echo "  ok: $*"; }
bad() { echo "  FAIL: $*"; fails=$((fails + 1)); }

echo "== init script syntax"
sh -n $PKG/files/promlet.init && ok "sh -n promlet.init" || bad "sh -n promlet.init"
if command -v busybox >/dev/null && busybox sh -c true 2>/dev/null; then
  busybox sh -n $PKG/files/promlet.init && ok "busybox sh -n (OpenWrt's ash)" || bad "busybox sh -n"
fi
head -n1 $PKG/files/promlet.init | grep -qx '#!/bin/sh /etc/rc.common' && ok "rc.common shebang" || bad "shebang"
grep -q '^USE_PROCD=1' $PKG/files/promlet.init && ok "USE_PROCD=1" || bad "not a procd script"
grep -q 'procd_set_param respawn' $PKG/files/promlet.init && ok "respawn set" || bad "no respawn"
[ -x $PKG/files/promlet.init ] && ok "init script executable" || bad "init script not executable"

echo "== Makefile vs source tree"
mk=$PKG/Makefile
mkvar() { sed -n "s/^$1:=//p" "$mk" | head -n1; }
cargo_version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
cargo_license=$(sed -n 's/^license = "\(.*\)"/\1/p' Cargo.toml | head -n1)
[ "$(mkvar PKG_VERSION)" = "$cargo_version" ] && ok "PKG_VERSION = $cargo_version" ||
  bad "PKG_VERSION $(mkvar PKG_VERSION) != Cargo.toml $cargo_version"
[ "$(mkvar PKG_LICENSE)" = "$cargo_license" ] && ok "PKG_LICENSE = $cargo_license" ||
  bad "PKG_LICENSE $(mkvar PKG_LICENSE) != Cargo.toml $cargo_license"
[ -f "$(mkvar PKG_LICENSE_FILES)" ] && ok "license file $(mkvar PKG_LICENSE_FILES)" || bad "no $(mkvar PKG_LICENSE_FILES)"
[ "$(mkvar PKG_NAME)" = promlet ] && ok "PKG_NAME" || bad "PKG_NAME"
# sources: ./files/X relative to the package dir, $(PROMLET_SRC)/Y relative to the repo
for f in $(grep -o '\./files/[A-Za-z0-9._-]*' "$mk" | sort -u); do
  [ -e "$PKG/$f" ] && ok "exists: $PKG/${f#./}" || bad "Makefile names missing $PKG/${f#./}"
done
for f in $(grep -o '$(PROMLET_SRC)/[A-Za-z0-9._/-]*' "$mk" | sed 's|$(PROMLET_SRC)/||' | sort -u); do
  [ -e "$f" ] && ok "exists: $f" || bad "Makefile names missing $f"
done
# destinations of the install section vs conffiles
installed=$(sed -n '/^define Package\/promlet\/install/,/^endef/p' "$mk" |
  grep -E 'INSTALL_(BIN|CONF|DATA)' | awk '{ print $NF }' | sed 's|$(1)||')
conffiles=$(sed -n '/^define Package\/promlet\/conffiles/,/^endef/p' "$mk" | grep '^/')
for c in $conffiles; do
  grep -qx "$c" <<<"$installed" && ok "conffile installed: $c" || bad "conffile $c is not installed"
done
grep -qx /usr/bin/promlet <<<"$installed" && ok "installs /usr/bin/promlet" || bad "no /usr/bin/promlet"
grep -qx /etc/init.d/promlet <<<"$installed" && ok "installs /etc/init.d/promlet" || bad "no init script"

BIN=${1:-target/release/promlet}
if [ ! -x "$BIN" ]; then
  cargo build --release --bin promlet -q || exit 1
fi
BIN=$(realpath "$BIN")

echo "== start_service through a shim of OpenWrt's helpers"
WORK=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; rm -rf "$WORK"' EXIT
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# the packaged files, where the device would have them (under $WORK)
mkdir -p "$WORK/etc/promlet/rules"
cp packaging/promlet.yml "$WORK/etc/promlet/promlet.yml"
cp examples/rules/heartbeat.yml "$WORK/etc/promlet/rules/"
sed -e "s|'/etc/promlet/promlet.yml'|'$WORK/etc/promlet/promlet.yml'|" \
  -e "s|'/var/lib/promlet'|'$WORK/var/lib/promlet'|" \
  -e "s|':9099'|'127.0.0.1:$port'|" \
  -e "s|option extra_args ''|option extra_args '--no-collector.arp --log.level=debug'|" $PKG/files/promlet.config >"$WORK/uci-promlet"
"$BIN" check config "$WORK/etc/promlet/promlet.yml" >/dev/null && ok "packaged YAML passes check config" ||
  bad "packaged YAML fails check config"
cat >"$WORK/shim.sh" <<SHIM
# Minimal stand-ins for /lib/functions.sh and /lib/functions/procd.sh: UCI options of one file,
# and procd calls recorded as the command line and parameters procd would get.
config_load() { :; }
config_get() {  # config_get VAR SECTION OPTION DEFAULT
  local __v
  __v=\$(sed -n "s/^[[:space:]]*option \$3 '\(.*\)'\$/\1/p" "$WORK/uci-promlet" | head -n1)
  [ -n "\$__v" ] || __v=\$4
  eval "\$1=\\\$__v"
}
config_get_bool() {
  local __b; config_get __b "\$2" "\$3" "\$4"
  case "\$__b" in 1|on|true|yes|enabled) eval "\$1=1" ;; *) eval "\$1=0" ;; esac
}
chown() { echo "chown \$*" >>"$WORK/calls"; }
procd_open_instance() { : >"$WORK/command"; }
procd_set_param() {
  local k=\$1; shift
  if [ "\$k" = command ]; then printf '%s\n' "\$@" >"$WORK/command"
  else echo "\$k \$*" >>"$WORK/params"; fi
}
procd_append_param() { shift; printf '%s\n' "\$@" >>"$WORK/command"; }
procd_close_instance() { :; }
procd_send_signal() { echo "signal \$*" >>"$WORK/calls"; kill -"\$3" \$(cat "$WORK/pid"); }
start() { :; }
SHIM
# under BusyBox ash (the router's shell) when installed, else sh; not bash
SH=(sh)
command -v busybox >/dev/null && busybox sh -c true 2>/dev/null && SH=(busybox sh)
echo "  (init script functions run under: ${SH[*]})"
"${SH[@]}" -c '. "$1/shim.sh"; . "$2"; start_service' - "$WORK" $PKG/files/promlet.init || bad "start_service failed"
[ -s "$WORK/command" ] && ok "start_service set a command: $(tr '\n' ' ' <"$WORK/command")" || bad "no command"
tail -n2 "$WORK/command" | tr '\n' ' ' | grep -qx -- '--no-collector.arp --log.level=debug ' &&
  ok "extra_args appended as separate flags" || bad "extra_args not appended"
grep -qx 'user promlet' "$WORK/params" && ok "runs as user promlet" || bad "no procd user"
grep -q '^respawn ' "$WORK/params" && ok "procd respawn: $(grep '^respawn' "$WORK/params")" || bad "no respawn"
[ -d "$WORK/var/lib/promlet" ] && ok "storage dir created" || bad "storage dir not created"
mapfile -t cmd <"$WORK/command"
[ "${cmd[0]}" = /usr/bin/promlet ] || bad "command is ${cmd[0]}, not /usr/bin/promlet"
cmd[0]=$BIN
"${cmd[@]}" >"$WORK/promlet.log" 2>&1 &
pid=$!
echo $pid >"$WORK/pid"
for _ in $(seq 100); do
  curl -fsS "http://127.0.0.1:$port/-/ready" >/dev/null 2>&1 && break
  sleep 0.1
done
metrics=$(curl -fsS "http://127.0.0.1:$port/metrics")
if grep -q '^promlet_build_info' <<<"$metrics"; then
  ok "promlet started with the init script's command line serves /metrics"
else
  bad "promlet did not serve /metrics: $(cat "$WORK/promlet.log")"
fi
budget=$(sed -n 's/^promlet_tsdb_bytes_budget //p' <<<"$metrics")
# Prometheus' size units are powers of two: 4MB = 4 MiB
[ "$budget" = 4.194304e+06 ] && ok "retention_size 4MB reached the TSDB ($budget bytes)" ||
  bad "TSDB budget is '$budget', not 4MB"
rules=$(curl -fsS "http://127.0.0.1:$port/api/v1/rules")
grep -q '"Heartbeat"' <<<"$rules" && ok "packaged rules loaded" || bad "rules not loaded"
"${SH[@]}" -c '. "$1/shim.sh"; . "$2"; reload_service' - "$WORK" $PKG/files/promlet.init || bad "reload_service failed"
sleep 1
grep -q 'signal promlet \* HUP' "$WORK/calls" && ok "reload sends HUP" || bad "reload did not signal HUP"
grep -q 'reload' "$WORK/promlet.log" && ok "promlet logged the reload" || bad "no reload in the log: $(cat "$WORK/promlet.log")"
metrics=$(curl -fsS "http://127.0.0.1:$port/metrics")
grep -q '^promlet_config_last_reload_successful 1' <<<"$metrics" &&
  ok "reload successful" || bad "reload not successful"

if [ "$fails" -gt 0 ]; then
  echo "openwrt test: $fails checks FAILED"
  exit 1
fi
echo "openwrt test: all checks passed"
