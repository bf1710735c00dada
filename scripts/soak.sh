#!/usr/bin/env bash
# Soak test (not CI): one long drive, sampling the resident memory (VmRSS) of the supervisor
# and of every role, and the shared memory the run directory holds, every few seconds into a
# CSV; then draws docs/reliability.svg from it (scripts/reliability_plot.py, stdlib only) and
# prints the figures: per series, the median of the first and of the last tenth and the
# largest value. Flat lines are the pass: a leak shows as a slope, whatever the load.
#
#   scripts/soak.sh [--minutes N] [--every S] [--scenario FILE] [--csv FILE] [--svg FILE]
#
# Defaults: 30 minutes, a sample every 5 s, the built-in default drive, soak.csv in a
# scratch directory, docs/reliability.svg. The binary is $EPOCHFUSE, else target/release/
# epochfuse (built if missing). Exit status: the drive's, or 2 on a usage error.
set -u
cd "$(dirname "$0")/.."
root=$(pwd)

minutes=30
every=5
scenario=
csv=
svg="$root/docs/reliability.svg"
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes="${2:?--minutes needs a number}"; shift 2 ;;
    --every) every="${2:?--every needs seconds}"; shift 2 ;;
    --scenario) scenario="${2:?--scenario needs a file}"; shift 2 ;;
    --csv) csv="${2:?--csv needs a file}"; shift 2 ;;
    --svg) svg="${2:?--svg needs a file}"; shift 2 ;;
    *) echo "usage: $0 [--minutes N] [--every S] [--scenario FILE] [--csv FILE] [--svg FILE]" >&2; exit 2 ;;
  esac
done

. "$root/scripts/campaign-common.sh"
campaign_setup soak
[ -n "$csv" ] || csv="$scratch/soak.csv"
cleanup() { [ "$shm" != "$scratch/shm" ] && rm -rf "$shm"; }
trap cleanup EXIT

seconds=$((minutes * 60))
args=(drive)
[ -n "$scenario" ] && args+=("$scenario")
args+=(--duration "$seconds" --quiet --overlay-every 0 --out "$scratch/out"
       --summary "$scratch/summary.json" --shm-root "$shm")
"$bin" "${args[@]}" 2>"$scratch/drive.err" &
sup=$!

roles="calib camera lidar fusion recorder replayer"
echo "t_s,supervisor_kb,$(echo "$roles" | sed 's/ /_kb,/g')_kb,shm_kb" >"$csv"

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null; }

start=$(date +%s)
while kill -0 "$sup" 2>/dev/null; do
  now=$(($(date +%s) - start))
  line="$now,$(rss_kb "$sup")"
  for role in $roles; do
    kb=
    for pid in $(pgrep -P "$sup" 2>/dev/null); do
      if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q " role $role "; then
        kb=$(rss_kb "$pid")
      fi
    done
    line="$line,$kb"
  done
  shm_kb=$(du -sk "$shm" 2>/dev/null | cut -f1)
  echo "$line,${shm_kb:-0}" >>"$csv"
  sleep "$every"
done
wait "$sup"
status=$?

echo "soak: $minutes min drive exited $status; samples in $csv"
[ -s "$scratch/drive.err" ] && sed 's/^/soak: drive stderr: /' "$scratch/drive.err" | head -5
if [ -f "$scratch/summary.json" ]; then
  python3 - "$scratch/summary.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
inv = s.get("invariants", {})
pairs = s.get("pairs", {})
print(f"soak: pairs fused {pairs.get('fused')}, invariants ok {inv.get('ok')}")
PY
fi
python3 "$root/scripts/reliability_plot.py" "$csv" "$svg" --title "Soak: $minutes min drive, RSS per role and shm of the run"
rm -rf "$scratch/out"
exit "$status"
