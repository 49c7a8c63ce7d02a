#!/usr/bin/env bash
# build.sh ARCH [BINARY] — builds dist/promlet_VERSION_ARCH.deb from a release binary with
# dpkg-deb alone (no debhelper).
#
#   ARCH    Debian architecture: amd64, arm64, armhf or armel
#   BINARY  the promlet binary to package; default: the static musl release build for ARCH
#           (target/<triple>/release/promlet, built by scripts/cross-test.sh or scripts/release.sh)
#
# armhf and armel get the ARMv6 build (arm-unknown-linux-musleabihf): Raspberry Pi OS's 32-bit
# "armhf" also runs on the ARMv6 Pi Zero / Pi 1, and Debian's armhf (ARMv7) runs ARMv6 code.
# Pass an armv7 binary explicitly for a Debian-armhf-only package.
#
# The package: /usr/bin/promlet, /etc/promlet/promlet.yml, /etc/promlet/rules/heartbeat.yml and uplink.yml
# (conffiles), /etc/default/promlet (ARGS for the unit, conffile), the systemd unit
# packaging/systemd/promlet.service, docs in /usr/share/doc/promlet. postinst creates the
# system user `promlet` and enables + starts the unit when systemd runs; purge removes the
# user and /var/lib/promlet.
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/../.."
REPO=$PWD

ARCH=${1:?usage: packaging/deb/build.sh ARCH [BINARY]   (ARCH: amd64 arm64 armhf armel)}
case $ARCH in
  amd64) triple=x86_64-unknown-linux-musl ;;
  arm64) triple=aarch64-unknown-linux-musl ;;
  armhf | armel) triple=arm-unknown-linux-musleabihf ;;
  *) echo "build.sh: unknown architecture '$ARCH' (amd64 arm64 armhf armel)" >&2; exit 2 ;;
esac
BIN=${2:-target/$triple/release/promlet}
[ -x "$BIN" ] || { echo "build.sh: no binary at $BIN (build it: scripts/release.sh $triple)" >&2; exit 1; }

VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
DEB_VERSION=${PROMLET_DEB_REVISION:+$VERSION-$PROMLET_DEB_REVISION}
DEB_VERSION=${DEB_VERSION:-$VERSION-1}
OUT=${PROMLET_DIST_DIR:-$REPO/dist}
mkdir -p "$OUT"
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
R=$STAGE/root

install -D -m 0755 "$BIN" "$R/usr/bin/promlet"
install -D -m 0644 packaging/promlet.yml "$R/etc/promlet/promlet.yml"
install -D -m 0644 examples/rules/heartbeat.yml "$R/etc/promlet/rules/heartbeat.yml"
install -D -m 0644 examples/rules/uplink.yml "$R/etc/promlet/rules/uplink.yml"
install -D -m 0644 packaging/deb/promlet.default "$R/etc/default/promlet"
install -D -m 0644 packaging/systemd/promlet.service "$R/usr/lib/systemd/system/promlet.service"
install -D -m 0644 README.md "$R/usr/share/doc/promlet/README.md"
install -D -m 0644 packaging/grafana/promlet-device.json "$R/usr/share/doc/promlet/grafana/promlet-device.json"
cat >"$R/usr/share/doc/promlet/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: promlet
Files: *
Copyright: the promlet authors
License: Apache-2.0
 On Debian systems the full text of the Apache License 2.0 is in
 /usr/share/common-licenses/Apache-2.0.
COPYRIGHT

mkdir -p "$R/DEBIAN"
for s in postinst prerm postrm; do
  install -m 0755 "packaging/deb/$s" "$R/DEBIAN/$s"
done
printf '%s\n' /etc/promlet/promlet.yml /etc/promlet/rules/heartbeat.yml /etc/promlet/rules/uplink.yml /etc/default/promlet \
  >"$R/DEBIAN/conffiles"
installed_kib=$(du -sk --exclude=DEBIAN "$R" | cut -f1)
cat >"$R/DEBIAN/control" <<CONTROL
Package: promlet
Version: $DEB_VERSION
Architecture: $ARCH
Maintainer: promlet developers <promlet@localhost>
Installed-Size: $installed_kib
Depends: passwd
Section: net
Priority: optional
Description: Prometheus-class monitoring agent for small devices
 One static binary that reads node metrics from /proc and /sys under
 node_exporter's names, keeps them in a fixed-size ring-buffer TSDB on the
 device, evaluates PromQL and alerting rules locally, and serves /metrics,
 /federate and the Prometheus HTTP API (port 9099).
CONTROL

deb=$OUT/promlet_${DEB_VERSION}_$ARCH.deb
dpkg-deb --root-owner-group -Zxz --build "$R" "$deb" >/dev/null
echo "$deb"
