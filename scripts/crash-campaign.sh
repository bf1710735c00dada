#!/usr/bin/env bash
# Crash campaign (not CI): N random SIGKILLs of random roles at random times, spread over many
# short drives. Each drive is a scenario with K `Kill(role, at_s, restart: true)` faults drawn
# at random (camera, lidar, fusion or calib; any time in the drive), which the supervisor
# delivers with SIGKILL and answers with a restart. Every tenth drive the supervisor itself is
# also SIGKILLed from outside at a random time (then its roles must die with it).
# After each drive it checks:
#   - exit 0 (or, for a killed supervisor, no role process left within --grace s, default 10);
#   - nothing left behind: no run directory under the shm root once the next drive started
#     (stale runs are cleaned at start), no process naming the shm root;
#   - no epoch mismatch: invariants.cross_epoch_fused, fused_twice, missing_calibration,
#     mistagged_frames and torn_frames_accepted all 0;
#   - every surviving frame accounted for: invariants.lidar_accounted and camera_accounted,
#     and no stream reporting more frames read than written.
# Prints one line per failed check and a final tally.
#
#   scripts/crash-campaign.sh [--kills N] [--per-drive K] [--seconds S] [--seed X] [--grace S]
#
# Defaults: 1000 kills, 10 per drive, 8 s drives. The binary is $EPOCHFUSE, else
# target/release/epochfuse (built if missing). Exit 0 if every check held, 1 otherwise.
set -u
cd "$(dirname "$0")/.."
root=$(pwd)

kills=1000
per=10
secs=8
seed=$$
grace=10
while [ $# -gt 0 ]; do
  case "$1" in
    --kills) kills="${2:?--kills needs a number}"; shift 2 ;;
    --per-drive) per="${2:?--per-drive needs a number}"; shift 2 ;;
    --seconds) secs="${2:?--seconds needs a number}"; shift 2 ;;
    --seed) seed="${2:?--seed needs a number}"; shift 2 ;;
    --grace) grace="${2:?--grace needs seconds}"; shift 2 ;;
    *) echo "usage: $0 [--kills N] [--per-drive K] [--seconds S] [--seed X] [--grace S]" >&2; exit 2 ;;
  esac
done
RANDOM=$seed

. "$root/scripts/campaign-common.sh"
campaign_setup crash
cleanup() { rm -rf "$scratch"; [ "$shm" != "$scratch/shm" ] && rm -rf "$shm"; }
trap cleanup EXIT

roles=(Camera Lidar Fusion Calib)
declare -A by_role=([Camera]=0 [Lidar]=0 [Fusion]=0 [Calib]=0)
done_kills=0 drives=0 sup_kills=0 failures=0 pairs=0 crashes=0 restarts=0 orphans=0 leftovers=0

fail() { failures=$((failures + 1)); echo "crash-campaign: drive $drives: $*"; }

# A scenario of $secs s with $per random kills; small frames, so many drives fit.
scenario() {
  local faults="" i role at
  for ((i = 0; i < per; i++)); do
    role=${roles[$((RANDOM % 4))]}
    at=$(printf '%d.%03d' $((RANDOM % (secs - 1))) $((RANDOM % 1000)))
    by_role[$role]=$((by_role[$role] + 1))
    faults="$faults        Kill(role: $role, at_s: $at, restart: true),
"
  done
  cat <<RON
Scenario(
    name: "crash-campaign",
    seed: $RANDOM,
    duration_s: $secs.0,
    world: (generate: Urban(blocks_x: 2, blocks_y: 2, block_m: 50.0)),
    trajectory: Road(speed_mps: 10.0),
    camera: (width: 320, height: 180, rate_hz: 30.0),
    lidar: (beams: 16, azimuth_steps: 512, rate_hz: 10.0, range_noise_m: 0.01),
    calibration: [(at_s: $((secs / 2)).0, changes: [LidarYawDeg(-1.0)])],
    faults: [
$faults    ],
)
RON
}

check_summary() {
  python3 - "$1" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
inv, bad = s["invariants"], []
for k in ["cross_epoch_fused", "fused_twice", "missing_calibration", "mistagged_frames", "torn_frames_accepted"]:
    if inv.get(k, 0):
        bad.append(f"{k}={inv[k]}")
for k in ["lidar_accounted", "camera_accounted"]:
    if not inv.get(k):
        bad.append(f"{k}=false")
for st, v in s["streams"].items():
    if v["frames_read"] > v["frames_written"]:
        bad.append(f"{st}: read {v['frames_read']} > written {v['frames_written']}")
print(s["pairs"]["fused"], s["faults"]["crashes"], s["faults"]["restarts"], ";".join(bad) or "-")
PY
}

while [ "$done_kills" -lt "$kills" ]; do
  drives=$((drives + 1))
  scenario >"$scratch/drive.ron"
  done_kills=$((done_kills + per))
  rm -f "$scratch/summary.json"
  "$bin" drive "$scratch/drive.ron" --quiet --overlay-every 0 --out "$scratch/out" \
    --summary "$scratch/summary.json" --shm-root "$shm" >"$scratch/out.log" 2>&1 &
  sup=$!
  if [ $((drives % 10)) -eq 0 ]; then
    sleep "$((RANDOM % secs)).$((RANDOM % 10))"
    kill -KILL "$sup" 2>/dev/null && sup_kills=$((sup_kills + 1))
    wait "$sup" 2>/dev/null
    # The roles get SIGTERM from their parent-death signal and stop cleanly: give them
    # $grace s (a loaded machine is slow), then anything left is an orphan.
    for ((t = 0; t < grace * 10; t++)); do
      pgrep -f -- "$shm" >/dev/null || break
      sleep 0.1
    done
    if pgrep -f -- "$shm" >/dev/null; then
      orphans=$((orphans + 1))
      fail "roles outlived the SIGKILLed supervisor: $(pgrep -f -- "$shm" | tr '\n' ' ')"
    fi
    continue
  fi
  wait "$sup"
  status=$?
  if [ "$status" -ne 0 ]; then
    fail "exit $status: $(tail -n 2 "$scratch/out.log" | tr '\n' ' ')"
  fi
  if [ -f "$scratch/summary.json" ]; then
    read -r p c r bad < <(check_summary "$scratch/summary.json")
    pairs=$((pairs + p)) crashes=$((crashes + c)) restarts=$((restarts + r))
    [ "$bad" = "-" ] || fail "$bad"
  else
    fail "no summary"
  fi
  # A stale run of a killed supervisor is removed by this drive's start; nothing else may stay.
  if [ "$status" -eq 0 ] && [ -n "$(ls -A "$shm" 2>/dev/null)" ]; then
    leftovers=$((leftovers + 1))
    fail "left behind under the shm root: $(ls -A "$shm" | tr '\n' ' ')"
  fi
  if pgrep -f -- "$shm" >/dev/null; then
    orphans=$((orphans + 1))
    fail "processes left: $(pgrep -f -- "$shm" | tr '\n' ' ')"
  fi
  rm -rf "$scratch/out"
done

echo "crash-campaign: $done_kills planned SIGKILLs (camera ${by_role[Camera]}, lidar ${by_role[Lidar]}," \
  "fusion ${by_role[Fusion]}, calib ${by_role[Calib]}) over $drives drives, plus $sup_kills of the supervisor"
echo "crash-campaign: crashes seen $crashes, restarts $restarts, pairs fused $pairs," \
  "processes left $orphans, runs left $leftovers, failed checks $failures"
[ "$failures" -eq 0 ]
