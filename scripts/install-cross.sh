#!/usr/bin/env bash
# install-cross.sh — installs what cross-building and cross-testing promlet needs on Debian
# (bookworm or later), without Docker. Each step is skipped when its result is already there, so a
# second run takes about a second.
#
#   apt:    qemu-user (the test runner), musl-tools, gcc cross compilers + libc for the two
#           glibc ARM targets (aarch64-unknown-linux-gnu, armv7-unknown-linux-gnueabihf);
#           busybox, systemd, curl for the packaging tests
#   rustup: stable std for x86_64/aarch64 musl and the two gnu ARM targets; nightly rust-src
#           (ARMv6, armv7-musl and mips have no prebuilt std: they build with -Zbuild-std)
#   PyPI:   ziglang (zig is the C compiler and linker cargo-zigbuild drives)
#   cargo:  cargo-zigbuild (cargo install --locked)
#
# Needs root for apt (as root it runs apt-get directly; otherwise through sudo if present).
# Env: SKIP_APT=1 skips the apt step (e.g. when the packages come from elsewhere).
set -euo pipefail
export LC_ALL=C

log() { echo "install-cross: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# busybox: OpenWrt's shell for the init-script check; systemd: systemd-analyze verifies the
# .deb's unit; curl: the packaging tests (packaging/*/test.sh)
APT_PKGS=(qemu-user musl-tools gcc-aarch64-linux-gnu gcc-arm-linux-gnueabihf
          libc6-dev-arm64-cross libc6-dev-armhf-cross busybox systemd curl)
STABLE_TARGETS=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl
                aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf)

# ---------------------------------------------------------------- apt
if [ "${SKIP_APT:-0}" != 1 ]; then
  missing=()
  for p in "${APT_PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    SUDO=()
    [ "$(id -u)" = 0 ] || SUDO=(sudo)
    log "apt: installing ${missing[*]}"
    "${SUDO[@]}" apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -q --no-install-recommends \
      "${missing[@]}" >/dev/null
  fi
fi
command -v qemu-aarch64 >/dev/null || die "qemu-aarch64 not found (package qemu-user)"

# ---------------------------------------------------------------- rustup
installed=$(rustup target list --installed --toolchain stable)
for t in "${STABLE_TARGETS[@]}"; do
  grep -qx "$t" <<<"$installed" || { log "rustup: adding $t"; rustup target add --toolchain stable "$t"; }
done
# Every release build uses nightly -Zbuild-std (std without backtrace and unwind tables:
# scripts/cross-test.sh release_build), so nightly with rust-src is installed when missing.
if ! rustup toolchain list | grep -q '^nightly'; then
  log "rustup: installing nightly (minimal)"
  rustup toolchain install nightly --profile minimal || die "rustup could not install nightly"
fi
if ! rustup component list --installed --toolchain nightly | grep -q '^rust-src'; then
  log "rustup: adding rust-src to nightly"
  rustup component add rust-src --toolchain nightly
fi

# ---------------------------------------------------------------- zig (PyPI)
# cargo-zigbuild finds zig as `zig` on PATH or as `python3 -m ziglang`.
if ! command -v zig >/dev/null && ! python3 -m ziglang version >/dev/null 2>&1; then
  log "pip: installing ziglang"
  python3 -m pip install -q ziglang \
    || python3 -m pip install -q --break-system-packages ziglang \
    || die "pip install ziglang failed"
fi

# ---------------------------------------------------------------- cargo-zigbuild
if ! cargo-zigbuild --version >/dev/null 2>&1; then
  log "cargo: installing cargo-zigbuild (takes ~2 minutes)"
  cargo +stable install --locked -q cargo-zigbuild
fi

log "ready: $(qemu-aarch64 --version | head -1); zig $(python3 -m ziglang version 2>/dev/null || zig version);" \
    "$(cargo-zigbuild --version)"
