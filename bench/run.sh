#!/usr/bin/env bash
# `make bench`: installs the tools it lacks, builds kapauth, then runs bench/bench.py in a
# temporary directory that is removed on exit, together with any server still running
# from the PIDs bench.py recorded there. See bench/README.md.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$root/target}
out=${BENCH_OUT:-$target_dir/bench}
cargo=${CARGO:-cargo}

log() { printf 'bench: %s\n' "$*"; }

# --- 1. tools, from Debian's packages ---------------------------------------------------
# nginx lives in /usr/sbin, which a non-root PATH may lack.
PATH=$PATH:/usr/sbin:/sbin
export PATH
declare -A package_of=(
  [nginx]=nginx
  [wrk]=wrk
  [htpasswd]=apache2-utils
  [taskset]=util-linux
  [python3]=python3
  [ss]=iproute2
)
missing=()
for cmd in nginx wrk htpasswd taskset python3 ss; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${package_of[$cmd]}")
done
if ((${#missing[@]})); then
  sudo=()
  if ((EUID != 0)); then
    command -v sudo >/dev/null 2>&1 || { log "need root or sudo to install: ${missing[*]}"; exit 1; }
    sudo=(sudo)
  fi
  log "installing with apt-get: ${missing[*]}"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive timeout 600 apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive timeout 900 \
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
  log "installed: ${missing[*]}"
fi

# --- 2. kapauth -----------------------------------------------------------------------
if [[ -n ${BENCH_KAPAUTH:-} ]]; then
  bin=$(realpath "$BENCH_KAPAUTH")
  log "using BENCH_KAPAUTH=$bin (no build)"
else
  log "building: $cargo build --release --locked"
  (cd "$root" && "$cargo" build --release --locked)
  bin=$target_dir/release/kapauth
fi
[[ -x $bin ]] || { log "no kapauth binary at $bin"; exit 1; }

# --- 3. work directory, cleaned up on every exit -------------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/kapauth-bench.XXXXXX")
cleanup() {
  local pid exe
  if [[ -f $work/pids ]]; then
    # Only PIDs bench.py started, and only while they still run nginx or kapauth.
    while read -r pid; do
      [[ $pid =~ ^[0-9]+$ ]] || continue
      exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || continue
      case ${exe##*/} in
        nginx | kapauth) kill -KILL "$pid" 2>/dev/null || true ;;
      esac
    done <"$work/pids"
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# bench.py runs in the background so that a signal to this script reaches it at once: it
# stops its servers itself; the EXIT trap above is the safety net.
start=$(date +%s)
PYTHONDONTWRITEBYTECODE=1 BENCH_WORK=$work BENCH_OUT=$out BENCH_KAPAUTH_BIN=$bin \
  python3 "$here/bench.py" &
py=$!
trap 'kill -INT "$py" 2>/dev/null || true' INT
trap 'kill -TERM "$py" 2>/dev/null || true' TERM
status=0
wait "$py" || status=$?
# A trapped signal ends `wait` early; wait again until bench.py has really finished.
while kill -0 "$py" 2>/dev/null; do
  status=0
  wait "$py" || status=$?
done
log "wall time $(($(date +%s) - start)) s (bench.py exit code $status)"
exit "$status"
