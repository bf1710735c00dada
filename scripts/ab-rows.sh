#!/usr/bin/env bash
# Two builds of `epochfuse`, measured on the pipeline's whole-process rows, runs alternated in
# one window so that the machine's drift hits both alike (docs/benchmarks.md reports ratios
# only from such runs).
#
#   scripts/ab-rows.sh BASE NEW            # from the repository root; BASE and NEW: binaries
#   ROUNDS=5 ROWS="drive full" scripts/ab-rows.sh BASE NEW
#
# Rows (ROWS, default all four):
#   drive  a real-time default drive of DURATION s (default 60): capture → fused p50/p99,
#          published → fused p99 (`latency_ms.pipeline`), fusion CPU per fused pair
#   full   the `full` scenario, 10 s at --max-rate: real-time factor
#   mcap   replay at --max-rate of a 20 s default drive recorded once with NEW
#   kitti  replay at --max-rate of a 200-frame `sim export` made once with NEW
# Every run's line is printed as it ends; a table of medians and NEW ÷ BASE closes.
# Nothing is timed against a threshold: this measures, it does not judge.
set -euo pipefail

usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
[ $# -eq 2 ] || usage
base=$(realpath "$1") new=$(realpath "$2")
for b in "$base" "$new"; do
    [ -x "$b" ] || { echo "ab-rows: $b: not an executable" >&2; exit 2; }
done
[ -f configs/drives/full.ron ] || { echo "ab-rows: run from the repository root" >&2; exit 2; }
rounds=${ROUNDS:-3} duration=${DURATION:-60} rows=${ROWS:-drive full mcap kitti}
work=$(mktemp -d "${TMPDIR:-/tmp}/ab-rows.XXXXXX")
trap 'rm -rf "$work"' EXIT
results="$work/results.tsv"
: >"$results"

# run ROW NAME BIN OUT ARGS...: one run; its summary's numbers appended to the results.
run() {
    local row=$1 name=$2 bin=$3 out=$4
    shift 4
    rm -rf "$out"
    if ! "$bin" "$@" -q --out "$out" >"$out.log" 2>&1; then
        echo "ab-rows: $name $row failed: $bin $* (log: $(tail -1 "$out.log"))" >&2
        return 1
    fi
    python3 - "$out/summary.json" "$row" "$name" "$results" <<'PY'
import json, sys
path, row, name, results = sys.argv[1:]
s = json.load(open(path))
fused = s["pairs"]["fused"]
if row == "drive":
    lat, cpu = s["latency_ms"], s["cpu_s"]
    vals = {
        "p50_ms": lat["p50"],
        "p99_ms": lat["p99"],
        "pipeline_p99_ms": lat["pipeline"]["p99"],
        "fusion_cpu_ms_per_pair": 1000 * cpu["fusion"] / max(fused, 1),
    }
else:
    vals = {"realtime_x": s["realtime_factor"]}
line = "  ".join(f"{k} {v:.2f}" for k, v in vals.items())
print(f"{row:6} {name:5} {line}  (fused {fused})", flush=True)
with open(results, "a") as f:
    for k, v in vals.items():
        f.write(f"{row}\t{k}\t{name}\t{v}\n")
PY
}

inputs() {
    case " $rows " in *" mcap "*)
        echo "recording a 20 s default drive with NEW for the mcap row…"
        "$new" drive --duration 20 --max-rate -q --record "$work/rec.mcap" --out "$work/rec" >/dev/null
    esac
    case " $rows " in *" kitti "*)
        echo "exporting 200 frames with NEW for the kitti row…"
        "$new" sim export --frames 200 "$work/kitti" >/dev/null
    esac
}

inputs
for i in $(seq "$rounds"); do
    for row in $rows; do
        for pair in "base:$base" "new:$new"; do
            name=${pair%%:*} bin=${pair#*:} out="$work/$row-$name-$i"
            case $row in
                drive) run drive "$name" "$bin" "$out" drive --duration "$duration" ;;
                full) run full "$name" "$bin" "$out" drive configs/drives/full.ron --duration 10 --max-rate ;;
                mcap) run mcap "$name" "$bin" "$out" replay "$work/rec.mcap" --max-rate ;;
                kitti) run kitti "$name" "$bin" "$out" replay "$work/kitti" --max-rate ;;
                *) echo "ab-rows: unknown row $row (drive, full, mcap, kitti)" >&2; exit 2 ;;
            esac
        done
    done
done

python3 - "$results" <<'PY'
import statistics, sys
from collections import defaultdict
runs = defaultdict(list)
for line in open(sys.argv[1]):
    row, key, name, v = line.split("\t")
    runs[(row, key, name)].append(float(v))
print("\n| row | measure | base (each run) | new (each run) | new ÷ base, medians |")
print("|---|---|---|---|---|")
for row, key in dict.fromkeys((r, k) for r, k, _ in runs):
    b, n = runs[(row, key, "base")], runs[(row, key, "new")]
    each = lambda xs: " / ".join(f"{x:.2f}" for x in xs)
    ratio = statistics.median(n) / statistics.median(b) if b and statistics.median(b) else float("nan")
    print(f"| {row} | {key} | {each(b)} | {each(n)} | {ratio:.2f} |")
PY
