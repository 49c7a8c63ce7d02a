#!/usr/bin/env bash
# install-stack.sh [--refresh] [DEST]
#
# Installs the real Prometheus stack that promlet's interop tests run against — Prometheus 3.5,
# promtool, node_exporter 1.11, Pushgateway 1.11, Alertmanager 0.33, blackbox_exporter — into
# DEST/bin (default: <repo>/.stack/bin, which is where the tests look unless PROMLET_STACK_DIR
# says otherwise). Nothing is installed system-wide and the system's apt state is not touched.
#
# Why this way: Debian bookworm ships Prometheus 2.42 and node_exporter 1.5; users run the 3.x LTS
# line. Debian's unstable suite has the current releases, and they are Go programs that need only
# libc, so they run on bookworm. We take them from there with a private apt configuration (own
# sources list, lists, cache and an empty dpkg status), `apt-get download` the .debs (apt checks
# their signatures against debian-archive-keyring) and `dpkg -x` them; usr/bin/* goes to DEST/bin.
#
# Idempotent: when DEST/bin/.versions lists every binary and they are all there, the script exits
# at once without touching the network. --refresh (or PROMLET_STACK_REFRESH=1) re-checks unstable
# and updates what changed; if unstable cannot be reached, a complete earlier install is kept.
# Downloaded .debs are kept in ${XDG_CACHE_HOME:-~/.cache}/promlet/debs, so a fresh clone on the
# same machine extracts them again without downloading.
#
# Env: DEBIAN_MIRROR (default: the first Debian archive in /etc/apt sources), DEBIAN_SUITE
#      (default: unstable), PROMLET_DEB_CACHE (the .deb cache dir).
set -euo pipefail
export LC_ALL=C

REPO=$(cd "$(dirname "$0")/.." && pwd)
REFRESH=${PROMLET_STACK_REFRESH:-0}
if [ "${1:-}" = --refresh ]; then REFRESH=1; shift; fi
[ $# -le 1 ] || { echo "usage: $0 [--refresh] [DEST]" >&2; exit 2; }
DEST=${1:-$REPO/.stack}

# package → the version line the tests are written against (a different one is only a warning:
# unstable moves, and an older pin cannot be fetched from it)
PKGS=(prometheus promtool prometheus-node-exporter prometheus-pushgateway prometheus-alertmanager
      prometheus-blackbox-exporter)
declare -A EXPECT=([prometheus]=3.5 [promtool]=3.5 [prometheus-node-exporter]=1.11
                   [prometheus-pushgateway]=1.11 [prometheus-alertmanager]=0.33
                   [prometheus-blackbox-exporter]=0.28)
MAIN_BINS=("${PKGS[@]}")

log() { echo "install-stack: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

mkdir -p "$DEST/bin"
DEST=$(cd "$DEST" && pwd)
BIN=$DEST/bin
STAMP=$BIN/.versions

complete() {  # every binary named in the stamp (and every main binary) is present
  [ -f "$STAMP" ] || return 1
  [ -f "$DEST/share/prometheus/alertmanager/default.tmpl" ] || return 1
  local b bins
  for b in "${MAIN_BINS[@]}"; do [ -x "$BIN/$b" ] || return 1; done
  while read -r _ _ _ bins; do
    for b in ${bins//,/ }; do [ -x "$BIN/$b" ] || return 1; done
  done < <(grep -v '^#' "$STAMP")
}
show() {
  log "installed in $BIN:"
  grep -v '^#' "$STAMP" | awk '{ printf "  %-30s %s\n", $1, $2 }' >&2
}

if [ "$REFRESH" != 1 ] && complete; then
  show
  exit 0
fi

command -v apt-get >/dev/null || die "apt-get not found (this installer needs Debian or a derivative)"
command -v dpkg-deb >/dev/null || die "dpkg-deb not found"
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
[ -r "$KEYRING" ] || die "$KEYRING missing (package debian-archive-keyring)"

if [ -z "${DEBIAN_MIRROR:-}" ]; then
  # the machine's own Debian archive (one-line .list or deb822 .sources), not the security one
  DEBIAN_MIRROR=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
      /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v '^[[:space:]]*#' \
    | grep -oE 'https?://[^ ]+/debian/?( |$)' | tr -d ' ' | sed 's#/$##' | head -n1 || true)
fi
[ -n "${DEBIAN_MIRROR:-}" ] || die "no Debian archive in /etc/apt sources; set DEBIAN_MIRROR"
SUITE=${DEBIAN_SUITE:-unstable}
CACHE=${PROMLET_DEB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/promlet/debs}
mkdir -p "$CACHE"

TMP=$(mktemp -d /tmp/promlet-stack.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

# ---------------------------------------------------------------- private apt configuration
mkdir -p "$TMP/lists/partial" "$TMP/cache/archives/partial" "$TMP/none.d" "$TMP/dl" "$TMP/x"
: >"$TMP/status"
echo "deb [signed-by=$KEYRING] $DEBIAN_MIRROR $SUITE main" >"$TMP/sources.list"
cat >"$TMP/apt.conf" <<EOF
Dir::Etc::SourceList "$TMP/sources.list";
Dir::Etc::SourceParts "$TMP/none.d";
Dir::Etc::Preferences "$TMP/none";
Dir::Etc::PreferencesParts "$TMP/none.d";
Dir::State::Lists "$TMP/lists";
Dir::State::status "$TMP/status";
Dir::State::extended_states "$TMP/extended_states";
Dir::Cache "$TMP/cache";
Acquire::Languages "none";
Acquire::IndexTargets::deb::DEP-11::DefaultEnabled "false";
APT::Get::List-Cleanup "false";
#clear APT::Update::Pre-Invoke;
#clear APT::Update::Post-Invoke;
#clear APT::Update::Post-Invoke-Success;
EOF
if [ "$(id -u)" = 0 ] && id _apt >/dev/null 2>&1; then
  # as root apt downloads as the sandbox user _apt
  chmod 0755 "$TMP"
  chown _apt "$TMP/dl" "$TMP/lists/partial" "$TMP/cache/archives/partial"
fi
APT=(apt-get -c "$TMP/apt.conf" -q)

log "reading the $SUITE index from $DEBIAN_MIRROR (private lists; system apt untouched)"
# apt-get update may exit 0 yet report a signature problem as W:, which must not pass
if ! "${APT[@]}" update >"$TMP/update.log" 2>&1 \
   || grep -qE '^E: |^W: .*(GPG|[Ss]ignature|NO_PUBKEY|EXPKEYSIG|Release file|Failed to fetch)' "$TMP/update.log"; then
  sed 's/^/  /' "$TMP/update.log" >&2
  if complete; then
    log "WARNING: $SUITE unreachable; keeping the installed binaries"
    show
    exit 0
  fi
  die "apt-get update of the private $SUITE index failed"
fi

declare -A WANT
while read -r p v; do WANT[$p]=$v; done < <(apt-cache -c "$TMP/apt.conf" policy "${PKGS[@]}" 2>/dev/null \
  | awk '/^[^ ].*:$/ { sub(/:$/, ""); p = $0 } /^  Candidate:/ { print p, $2 }')
for p in "${PKGS[@]}"; do
  v=${WANT[$p]:-}
  [ -n "$v" ] && [ "$v" != "(none)" ] || die "package $p not found in $SUITE main"
  upstream=${v#*:}
  case $upstream in
    "${EXPECT[$p]}".*) ;;
    *) log "WARNING: $p is $v in $SUITE; the tests were written against ${EXPECT[$p]}.x" ;;
  esac
done

if complete; then
  same=1
  for p in "${PKGS[@]}"; do
    [ "$(awk -v p="$p" '$1 == p { print $2 }' "$STAMP")" = "${WANT[$p]}" ] || same=0
  done
  if [ $same = 1 ]; then
    log "up to date with $SUITE"
    show
    exit 0
  fi
fi

# ---------------------------------------------------------------- download (or reuse) + extract
ARCH=$(dpkg --print-architecture)
debfile() {  # the file name apt-get download gives: name_version_arch.deb, epoch colon as %3a
  local p=$1 v=${WANT[$1]} a
  a=$(apt-cache -c "$TMP/apt.conf" show "$p=$v" 2>/dev/null | awk '/^Architecture:/ { print $2; exit }')
  echo "${p}_${v//:/%3a}_${a:-$ARCH}.deb"
}
fetch=()
for p in "${PKGS[@]}"; do
  f=$(debfile "$p")
  if [ -s "$CACHE/$f" ] && dpkg-deb -f "$CACHE/$f" Package >/dev/null 2>&1; then
    cp "$CACHE/$f" "$TMP/dl/"
  else
    fetch+=("$p=${WANT[$p]}")
  fi
done
if [ ${#fetch[@]} -gt 0 ]; then
  log "downloading ${fetch[*]}"
  (cd "$TMP/dl" && "${APT[@]}" download "${fetch[@]}" >"$TMP/download.log" 2>&1) \
    || { sed 's/^/  /' "$TMP/download.log" >&2; die "apt-get download failed"; }
  for s in "${fetch[@]}"; do cp -f "$TMP/dl/${s%%=*}"_*.deb "$CACHE/" 2>/dev/null || true; done
else
  log "all .debs found in $CACHE"
fi

new_stamp=$TMP/versions
{
  echo "# written by scripts/install-stack.sh $(date -u +%Y-%m-%dT%H:%M:%SZ) from $SUITE main"
  echo "# package version arch binaries"
} >"$new_stamp"
for p in "${PKGS[@]}"; do
  deb=$(ls "$TMP/dl/${p}"_*.deb 2>/dev/null | head -n1)
  [ -n "$deb" ] || die "no .deb for $p"
  ver=$(dpkg-deb -f "$deb" Version)
  [ "$ver" = "${WANT[$p]}" ] || die "$deb is version $ver, wanted ${WANT[$p]}"
  rm -rf "$TMP/x" && mkdir "$TMP/x"
  dpkg -x "$deb" "$TMP/x"
  bins=()
  for f in "$TMP"/x/usr/bin/*; do
    [ -f "$f" ] || continue
    n=${f##*/}
    # write beside, then rename: a running old binary is never overwritten in place
    cp -f "$f" "$BIN/.$n.new" && chmod 0755 "$BIN/.$n.new" && mv -f "$BIN/.$n.new" "$BIN/$n"
    bins+=("$n")
  done
  [ ${#bins[@]} -gt 0 ] || die "$p has no usr/bin"
  # Debian's Alertmanager reads its default templates from /usr/share/prometheus/alertmanager
  # (a path compiled in); tests overlay DEST/share onto /usr/share in a user namespace.
  if [ -d "$TMP/x/usr/share/prometheus" ]; then
    mkdir -p "$DEST/share" && rm -rf "$DEST/share/prometheus.new" \
      && cp -r "$TMP/x/usr/share/prometheus" "$DEST/share/prometheus.new" \
      && rm -rf "$DEST/share/prometheus" && mv "$DEST/share/prometheus.new" "$DEST/share/prometheus"
  fi
  echo "$p $ver $(dpkg-deb -f "$deb" Architecture) $(IFS=,; echo "${bins[*]}")" >>"$new_stamp"
done
for b in "${MAIN_BINS[@]}"; do
  "$BIN/$b" --version >/dev/null 2>&1 || die "$BIN/$b --version failed (missing libraries?)"
done
mv -f "$new_stamp" "$STAMP"
show
