#!/usr/bin/env bash
# install-test-peers.sh — the real peers the integration tests talk to, besides the Prometheus
# stack (scripts/install-stack.sh): dnsmasq for dns_sd_configs; the openssl CLI (test
# certificates) and curl for the TLS tests (tests/webauth.rs). Each is skipped when present.
# Debian packages only; `dnsmasq-base` is the binary without the system service.
set -euo pipefail
log() { echo "install-test-peers: $*" >&2; }

APT_PKGS=(dnsmasq-base openssl curl ca-certificates)
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
[ -x /usr/sbin/dnsmasq ] || { log "ERROR: /usr/sbin/dnsmasq missing after install"; exit 1; }
command -v openssl >/dev/null || { log "ERROR: openssl missing after install"; exit 1; }
log "ready: $(/usr/sbin/dnsmasq --version | head -n1); $(openssl version)"
