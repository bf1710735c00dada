#!/usr/bin/env bash
# The default drive's streams over Zenoh on loopback against the local ring (issue 17):
# real time (does the drive stay real time with a remote attached; transport latency) and
# --max-rate (how fast frames go when the remote is the bottleneck). Prints a Markdown table.
# Needs a binary built with the feature: BIN=target/release/epochfuse after
# `cargo build --release --features zenoh`. Loopback only; scratch files are removed.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/epochfuse}
DUR=${DURATION:-10}
PORT=${PORT:-17461}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
ep="tcp/127.0.0.1:$PORT"

pair() { # NAME [drive options...]: the drive alone, then with a remote attached
  local name=$1; shift
  "$BIN" drive --duration "$DUR" -q --overlay-every 0 --out "$T/$name-local" --shm-root "$T/shm" "$@" >/dev/null
  "$BIN" drive --duration "$DUR" -q --overlay-every 0 --out "$T/$name-pub" --shm-root "$T/shm" --zenoh "$ep" "$@" >/dev/null &
  local pub=$!
  "$BIN" remote "$ep" -q --overlay-every 0 --out "$T/$name-rem" --shm-root "$T/shm-rem" >/dev/null
  wait "$pub"
}

pair rt
pair max --max-rate

python3 - "$T" "$DUR" <<'PY'
import json, sys
t, dur = sys.argv[1], sys.argv[2]
def s(name): return json.load(open(f"{t}/{name}/summary.json"))
print(f"default drive, {dur} s, loopback, one machine\n")
print("| run | mode | real-time factor | lidar sweeps/s | fused | fusion latency p50 / p99 ms | transport p50 / p99 ms | MB/s mirrored | lost |")
print("|---|---|---|---|---|---|---|---|---|")
for mode in ["rt", "max"]:
    for role in ["local", "pub", "rem"]:
        x = s(f"{mode}-{role}")
        lid = x["streams"]["lidar"]
        fps = lid["frames_written"] / max(x["wall_s"], 1e-9)
        r = x.get("remote")
        tr = f'{r["transport_ms"]["p50"]:.1f} / {r["transport_ms"]["p99"]:.1f}' if r else "-"
        mb = "-"
        lost = "-"
        if r:
            b = x["streams"]["camera"]["mirrored_bytes"] + lid["mirrored_bytes"]
            mb = f'{b / 1e6 / max(r["mirror_s"], 1e-9):.0f}'
            lost = str(x["streams"]["camera"]["network_lost"] + lid["network_lost"])
        label = {"local": "drive (ring only)", "pub": "drive --zenoh", "rem": "remote"}[role]
        print(f'| {label} | {"real time" if mode == "rt" else "--max-rate"} | {x["realtime_factor"]:.2f} | {fps:.1f} | {x["pairs"]["fused"]} | {x["latency_ms"]["p50"]:.1f} / {x["latency_ms"]["p99"]:.1f} | {tr} | {mb} | {lost} |')
PY
