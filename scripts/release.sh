#!/usr/bin/env bash
# release.sh [--no-build] [--deb] [TARGET...] — release tarballs with checksums.
#
# Builds the static release binary for each target (scripts/cross-test.sh --no-tests: the same
# cargo-zigbuild + nightly -Zbuild-std setup as CI, checked static, stripped, within the size
# budget and running `--version` under qemu-user), then writes
#
#   dist/promlet-VERSION-TARGET.tar.gz    promlet-VERSION-TARGET/
#                                           promlet                 the binary
#                                           LICENSE, README.md
#                                           promlet.yml, rules/heartbeat.yml   default config
#                                           systemd/promlet.service, systemd/promlet.default
#                                           openwrt/promlet.init, openwrt/promlet.config
#                                           grafana/promlet-device.json
#   dist/promlet_VERSION-1_ARCH.deb       with --deb: amd64, arm64, armhf (packaging/deb)
#   dist/SHA256SUMS                       sha256sum of every file above
#
#   default targets  x86_64-unknown-linux-musl aarch64-unknown-linux-musl
#                    armv7-unknown-linux-musleabihf arm-unknown-linux-musleabihf (ARMv6)
#   --no-build       package the binaries already in target/<triple>/release (CI: after
#                    scripts/cross-test.sh built them)
#
# Tarballs are reproducible: sorted names, owner root, every mtime the last commit's time.
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."

BUILD=1
DEB=0
targets=()
for a in "$@"; do
  case $a in
    --no-build) BUILD=0 ;;
    --deb) DEB=1 ;;
    -*) echo "usage: $0 [--no-build] [--deb] [TARGET...]" >&2; exit 2 ;;
    *) targets+=("$a") ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl
                                     armv7-unknown-linux-musleabihf arm-unknown-linux-musleabihf)

VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
DIST=${PROMLET_DIST_DIR:-$PWD/dist}
mkdir -p "$DIST"

if [ $BUILD = 1 ]; then
  bash scripts/cross-test.sh --no-tests "${targets[@]}"
fi

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
made=()
for t in "${targets[@]}"; do
  bin=target/$t/release/promlet
  [ -x "$bin" ] || { echo "release: no $bin (run without --no-build)" >&2; exit 1; }
  name=promlet-$VERSION-$t
  d=$stage/$name
  install -D -m 0755 "$bin" "$d/promlet"
  install -D -m 0644 LICENSE "$d/LICENSE"
  install -D -m 0644 README.md "$d/README.md"
  install -D -m 0644 packaging/promlet.yml "$d/promlet.yml"
  install -D -m 0644 examples/rules/heartbeat.yml "$d/rules/heartbeat.yml"
  install -D -m 0644 packaging/systemd/promlet.service "$d/systemd/promlet.service"
  install -D -m 0644 packaging/deb/promlet.default "$d/systemd/promlet.default"
  install -D -m 0755 packaging/openwrt/promlet/files/promlet.init "$d/openwrt/promlet.init"
  install -D -m 0644 packaging/openwrt/promlet/files/promlet.config "$d/openwrt/promlet.config"
  install -D -m 0644 packaging/grafana/promlet-device.json "$d/grafana/promlet-device.json"
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$EPOCH" \
    --format=gnu -C "$stage" -cf - "$name" | gzip -9n >"$DIST/$name.tar.gz"
  made+=("$name.tar.gz")
  echo "release: $DIST/$name.tar.gz ($(stat -c %s "$DIST/$name.tar.gz") bytes; binary $(stat -c %s "$bin"))"
done

if [ $DEB = 1 ]; then
  for pair in amd64:x86_64-unknown-linux-musl arm64:aarch64-unknown-linux-musl \
    armhf:arm-unknown-linux-musleabihf; do
    arch=${pair%%:*} t=${pair#*:}
    [ -x "target/$t/release/promlet" ] || continue
    deb=$(PROMLET_DIST_DIR=$DIST bash packaging/deb/build.sh "$arch" "target/$t/release/promlet")
    made+=("$(basename "$deb")")
    echo "release: $deb"
  done
fi

(cd "$DIST" && sha256sum "${made[@]}" >SHA256SUMS && sha256sum --quiet -c SHA256SUMS)
echo "release: $DIST/SHA256SUMS (${#made[@]} files, verified)"
