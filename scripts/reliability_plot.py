#!/usr/bin/env python3
"""Draws the soak CSV of scripts/soak.sh as an SVG (stdlib only) and prints its figures.

    reliability_plot.py SOAK.csv OUT.svg [--title TEXT]

The CSV: t_s, then one column per series in KiB (empty where that process was not running).
Two panels share the time axis: resident memory per process, and the run directory's shared
memory. Figures per series: median of the first and of the last tenth of the samples, the
largest value, and the drift (last median minus first, in percent of the first).
"""
import csv
import statistics
import sys
from xml.sax.saxutils import escape

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#7f7f7f"]


def load(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    series = {}
    for name in rows[0].keys() if rows else []:
        if name == "t_s":
            continue
        pts = [(float(r["t_s"]) / 60.0, float(r[name]) / 1024.0) for r in rows if r.get(name)]
        if pts:
            series[name[:-3] if name.endswith("_kb") else name] = pts
    return series


def figures(series):
    out = []
    for name, pts in series.items():
        vals = [v for _, v in pts]
        k = max(1, len(vals) // 10)
        first, last = statistics.median(vals[:k]), statistics.median(vals[-k:])
        drift = 100.0 * (last - first) / first if first else 0.0
        out.append((name, len(vals), first, last, max(vals), drift))
    return out


def panel(series, x0, y0, w, h, tmax, label):
    vmax = max((v for pts in series.values() for _, v in pts), default=1.0) * 1.1 or 1.0
    parts = [f'<rect x="{x0}" y="{y0}" width="{w}" height="{h}" fill="none" stroke="#888"/>']
    for i in range(5):
        v = vmax * i / 4
        y = y0 + h - h * i / 4
        parts.append(f'<line x1="{x0}" y1="{y:.1f}" x2="{x0 + w}" y2="{y:.1f}" stroke="#eee"/>')
        parts.append(f'<text x="{x0 - 6}" y="{y + 4:.1f}" text-anchor="end">{v:.0f}</text>')
    for i in range(6):
        t = tmax * i / 5
        x = x0 + w * i / 5
        parts.append(f'<text x="{x:.1f}" y="{y0 + h + 16}" text-anchor="middle">{t:.0f}</text>')
    parts.append(f'<text x="{x0 - 44}" y="{y0 + h / 2}" transform="rotate(-90 {x0 - 44} {y0 + h / 2})" '
                 f'text-anchor="middle">{escape(label)}</text>')
    for i, (name, pts) in enumerate(series.items()):
        c = COLOURS[i % len(COLOURS)]
        d = " ".join(f"{x0 + w * t / tmax:.1f},{y0 + h - h * v / vmax:.1f}" for t, v in pts)
        parts.append(f'<polyline points="{d}" fill="none" stroke="{c}" stroke-width="1.5"/>')
        parts.append(f'<text x="{x0 + w + 8}" y="{y0 + 14 + 16 * i}" fill="{c}">{escape(name)}</text>')
    return parts


def main(argv):
    if len(argv) < 3:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    src, dst = argv[1], argv[2]
    title = argv[argv.index("--title") + 1] if "--title" in argv else "Soak"
    series = load(src)
    if not series:
        print(f"{src}: no samples", file=sys.stderr)
        return 2
    tmax = max(t for pts in series.values() for t, _ in pts) or 1.0
    rss = {k: v for k, v in series.items() if k != "shm"}
    shm = {k: v for k, v in series.items() if k == "shm"}
    w, h = 900, 560
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
             'font-family="sans-serif" font-size="12">',
             f'<rect width="{w}" height="{h}" fill="white"/>',
             f'<text x="{w / 2}" y="22" text-anchor="middle" font-size="15">{escape(title)}</text>']
    parts += panel(rss, 80, 40, 700, 300, tmax, "RSS (MiB)")
    parts += panel(shm, 80, 390, 700, 120, tmax, "shm (MiB)")
    parts.append(f'<text x="{80 + 350}" y="{h - 14}" text-anchor="middle">minutes</text>')
    parts.append("</svg>")
    with open(dst, "w") as f:
        f.write("\n".join(parts) + "\n")
    print(f"{'series':<12}{'samples':>8}{'first MiB':>11}{'last MiB':>10}{'max MiB':>9}{'drift':>8}")
    for name, n, first, last, top, drift in figures(series):
        print(f"{name:<12}{n:>8}{first:>11.1f}{last:>10.1f}{top:>9.1f}{drift:>7.1f}%")
    print(f"wrote {dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
