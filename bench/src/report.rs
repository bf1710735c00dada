//! Turning cells into tables (markdown, CSV), break-even sizes and a log-log SVG plot.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::stats::{Cell, Spread};
use crate::transports::Transport;

/// Everything a report needs besides the cells.
#[derive(Clone, Debug)]
pub struct Context {
    /// The command that produced the run.
    pub command: String,
    /// When (UTC).
    pub date: String,
    /// CPU, cores, kernel.
    pub machine: String,
    /// Repeats, bounds, pinning, seqpacket limit.
    pub settings: Vec<String>,
}

/// The cells of a run, by transport and size.
#[derive(Clone, Debug, Default)]
pub struct Results {
    cells: BTreeMap<(Transport, usize), Cell>,
    sizes: Vec<usize>,
    transports: Vec<Transport>,
}

/// A transport the ring is compared with for x*.
pub const MESSAGE_TRANSPORTS: [Transport; 4] =
    [Transport::UdsStream, Transport::UdsSeqpacket, Transport::Pipe, Transport::Iox2Block];

/// What x* compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// p50 one-way latency, back-to-back round trips.
    Latency,
    /// p50 one-way latency with an idle (sleeping) reader.
    IdleLatency,
    /// Streaming throughput.
    Throughput,
}

impl Metric {
    const ALL: [Self; 3] = [Self::Latency, Self::IdleLatency, Self::Throughput];

    fn label(self) -> &'static str {
        match self {
            Self::Latency => "by p50 latency",
            Self::IdleLatency => "by p50 latency, idle reader",
            Self::Throughput => "by throughput",
        }
    }

    /// Whether `ring` beats `other`; `None` if either lacks the number.
    fn wins(self, ring: &Cell, other: &Cell) -> Option<bool> {
        let (r, o, lower_is_better) = match self {
            Self::Latency => (ring.p50(), other.p50(), true),
            Self::IdleLatency => (ring.idle_p50(), other.idle_p50(), true),
            Self::Throughput => (ring.gbps(), other.gbps(), false),
        };
        if !(r.is_finite() && o.is_finite()) {
            return None;
        }
        Some(if lower_is_better { r < o } else { r > o })
    }
}

/// The break-even size against one transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakEven {
    /// The ring wins at every measured size from this one up (the smallest measured size if it
    /// wins everywhere).
    From(usize),
    /// The ring does not win at the largest measured size.
    Never,
    /// A side has no data.
    Unknown,
}

impl Results {
    /// Collects cells.
    #[must_use]
    pub fn new(cells: Vec<Cell>) -> Self {
        let mut sizes: Vec<usize> = cells.iter().map(|c| c.size).collect();
        sizes.sort_unstable();
        sizes.dedup();
        let mut transports: Vec<Transport> = cells.iter().map(|c| c.transport).collect();
        transports.sort_unstable();
        transports.dedup();
        let cells = cells.into_iter().map(|c| ((c.transport, c.size), c)).collect();
        Self { cells, sizes, transports }
    }

    fn get(&self, t: Transport, size: usize) -> Option<&Cell> {
        self.cells.get(&(t, size)).filter(|c| !c.repeats.is_empty())
    }

    /// x*: the smallest measured size from which `ring` beats `other` at every larger measured
    /// size, by `metric`.
    #[must_use]
    pub fn break_even(&self, ring: Transport, other: Transport, metric: Metric) -> BreakEven {
        let mut from = None;
        for &size in self.sizes.iter().rev() {
            let wins = match (self.get(ring, size), self.get(other, size)) {
                (Some(r), Some(o)) => metric.wins(r, o),
                _ => None,
            };
            match wins {
                Some(true) => from = Some(size),
                Some(false) => break,
                None if from.is_none() => return BreakEven::Unknown,
                None => break,
            }
        }
        from.map_or(BreakEven::Never, BreakEven::From)
    }

    /// Sizes at which `ring` beats `other` by `metric`, as labels.
    fn wins_at(&self, other: Transport, metric: Metric) -> Vec<String> {
        self.sizes
            .iter()
            .filter(|&&size| match (self.get(Transport::RingBlock, size), self.get(other, size)) {
                (Some(r), Some(o)) => metric.wins(r, o) == Some(true),
                _ => false,
            })
            .map(|&s| size_label(s))
            .collect()
    }

    fn break_even_text(&self, other: Transport, metric: Metric) -> String {
        match self.break_even(Transport::RingBlock, other, metric) {
            BreakEven::From(s) if Some(&s) == self.sizes.first() => {
                format!("≤ {} (every size)", size_label(s))
            }
            BreakEven::From(s) => size_label(s),
            BreakEven::Never => {
                format!("none ≤ {}", self.sizes.last().map_or(String::new(), |s| size_label(*s)))
            }
            BreakEven::Unknown => "n/a".into(),
        }
    }

    /// The x* lines printed at the end of a run.
    #[must_use]
    pub fn break_even_lines(&self) -> Vec<String> {
        MESSAGE_TRANSPORTS
            .iter()
            .filter(|t| self.transports.contains(t))
            .map(|&t| {
                format!(
                    "x* ring-block vs {:<13} by latency: {:<18} idle reader: {:<18} by throughput: {}",
                    t.name(),
                    self.break_even_text(t, Metric::Latency),
                    self.break_even_text(t, Metric::IdleLatency),
                    self.break_even_text(t, Metric::Throughput)
                )
            })
            .collect()
    }

    fn table(&self, out: &mut String, title: &str, cell: impl Fn(&Cell) -> String) {
        let _ = writeln!(out, "\n#### {title}\n");
        let _ = write!(out, "| size |");
        for t in &self.transports {
            let _ = write!(out, " {t} |");
        }
        let _ = write!(out, "\n|---:|");
        for _ in &self.transports {
            let _ = write!(out, "---:|");
        }
        out.push('\n');
        for &size in &self.sizes {
            let _ = write!(out, "| {} |", size_label(size));
            for &t in &self.transports {
                let text = match self.cells.get(&(t, size)) {
                    Some(c) if !c.repeats.is_empty() => {
                        let mark = if c.note.is_some() { "¹" } else { "" };
                        format!("{}{mark}", cell(c))
                    }
                    Some(c) => format!("n/a ({})", c.error.as_deref().unwrap_or("no data")),
                    None => "–".into(),
                };
                let _ = write!(out, " {text} |");
            }
            out.push('\n');
        }
    }

    fn ratio_row(&self, size: usize, ring: Transport, base: Transport, metric: Metric) -> String {
        let (Some(r), Some(b)) = (self.get(ring, size), self.get(base, size)) else {
            return "–".into();
        };
        let (x, met) = match metric {
            Metric::Latency => (r.p50() / b.p50(), r.p50() <= b.p50()),
            Metric::IdleLatency => (r.idle_p50() / b.idle_p50(), r.idle_p50() <= b.idle_p50()),
            Metric::Throughput => (r.gbps() / b.gbps(), r.gbps() > b.gbps()),
        };
        if x.is_finite() {
            format!("{x:.2} {}", if met { "met" } else { "**missed**" })
        } else {
            "–".into()
        }
    }

    /// The markdown report.
    #[must_use]
    pub fn markdown(&self, ctx: &Context) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "### Transport benchmark run, {}\n", ctx.date);
        let _ = writeln!(out, "Machine: {}\n", ctx.machine);
        let _ = writeln!(out, "Command (from the workspace root):\n\n```\n{}\n```\n", ctx.command);
        for s in &ctx.settings {
            let _ = writeln!(out, "- {s}");
        }
        self.table(
            &mut out,
            "One-way latency p50, µs (round trip / 2): median of repeats [min–max]",
            |c| {
                let s = c.spread(|r| r.p50_ns);
                format!("{} [{}–{}]", us(s.median), us(s.min), us(s.max))
            },
        );
        self.table(&mut out, "One-way latency p99 / p99.9, µs: median of repeats", |c| {
            format!("{} / {}", us(c.spread(|r| r.p99_ns).median), us(c.spread(|r| r.p999_ns).median))
        });
        self.table(&mut out, "Round trips per repeat (p99.9 of fewer than 1000 is close to the max)", |c| {
            format!("{:.0}", c.spread(|r| r.lat_samples as f64).median)
        });
        self.table(
            &mut out,
            "One-way latency with an idle reader, µs: p50 median of repeats [min–max] / p99 median \
             (blocking transports only; round trips per repeat in parentheses)",
            |c| {
                let s = c.spread(|r| r.idle_p50_ns);
                if s.median.is_finite() {
                    format!(
                        "{} [{}–{}] / {} ({:.0})",
                        us(s.median),
                        us(s.min),
                        us(s.max),
                        us(c.spread(|r| r.idle_p99_ns).median),
                        c.spread(|r| r.idle_samples as f64).median
                    )
                } else {
                    "–".into()
                }
            },
        );
        self.table(&mut out, "Streaming throughput, GB/s (10⁹ payload bytes/s): median [min–max]", |c| {
            let s = c.spread(|r| r.gb_per_s);
            format!("{} [{}–{}]", sig3(s.median), sig3(s.min), sig3(s.max))
        });
        self.table(&mut out, "Streaming throughput, messages/s: median", |c| {
            human(c.spread(|r| r.msgs_per_s).median)
        });
        let notes: Vec<String> = self
            .cells
            .values()
            .filter_map(|c| c.note.as_ref().map(|n| format!("{} {}: {n}", c.transport, size_label(c.size))))
            .collect();
        if !notes.is_empty() {
            let _ = writeln!(out, "\n¹ {}", notes.join("; "));
        }
        let lost: u64 = self.cells.values().flat_map(|c| c.repeats.iter().map(|r| r.lost)).sum();
        let _ = writeln!(out, "\nMessages lost or out of order across the whole run: {lost}.");

        let _ = writeln!(out, "\n#### Against the baselines of this run (ratios of medians)\n");
        let _ = writeln!(
            out,
            "Latency ratios are ring p50 ÷ baseline p50 (target ≤ 1); throughput ratios are ring GB/s ÷ \
             baseline GB/s (ring faster when > 1).\n"
        );
        let _ = writeln!(
            out,
            "| size | ring-block ÷ iox2-block p50 | ring-poll ÷ iox2-poll p50 | ring-block ÷ iox2-block p50, idle \
             reader | ring-block ÷ uds-stream p50 | ring-block ÷ uds-stream p50, idle reader | ring-block ÷ \
             uds-stream GB/s |\n|---:|---:|---:|---:|---:|---:|---:|"
        );
        for &size in &self.sizes {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} |",
                size_label(size),
                self.ratio_row(size, Transport::RingBlock, Transport::Iox2Block, Metric::Latency),
                self.ratio_row(size, Transport::RingPoll, Transport::Iox2Poll, Metric::Latency),
                self.ratio_row(size, Transport::RingBlock, Transport::Iox2Block, Metric::IdleLatency),
                self.ratio_row(size, Transport::RingBlock, Transport::UdsStream, Metric::Latency),
                self.ratio_row(size, Transport::RingBlock, Transport::UdsStream, Metric::IdleLatency),
                self.ratio_row(size, Transport::RingBlock, Transport::UdsStream, Metric::Throughput),
            );
        }
        let _ = writeln!(out, "\n#### Break-even size x* (blocking ring vs each message transport)\n");
        let _ = writeln!(
            out,
            "The smallest measured size from which ring-block beats the transport at every larger measured \
             size (\"none\": it does not win at the largest); the sizes where it wins at all follow.\n"
        );
        let _ = write!(out, "| vs |");
        for m in Metric::ALL {
            let _ = write!(out, " {} | ring wins at |", m.label());
        }
        let _ = writeln!(out, "\n|---|---:|---|---:|---|---:|---|");
        for t in MESSAGE_TRANSPORTS.iter().filter(|t| self.transports.contains(t)) {
            let _ = write!(out, "| {t} |");
            for m in Metric::ALL {
                let wins = self.wins_at(*t, m);
                let wins = if wins.is_empty() { "–".to_owned() } else { wins.join(", ") };
                let _ = write!(out, " {} | {wins} |", self.break_even_text(*t, m));
            }
            out.push('\n');
        }
        out
    }

    /// One CSV row per repeat.
    #[must_use]
    pub fn csv(&self) -> String {
        let mut out = String::from(
            "transport,size,repeat,p50_ns,p99_ns,p999_ns,lat_samples,idle_p50_ns,idle_p99_ns,idle_samples,\
             msgs_per_s,gb_per_s,thr_msgs,lost,error\n",
        );
        for c in self.cells.values() {
            if c.repeats.is_empty() {
                let _ =
                    writeln!(out, "{},{},,,,,,,,,,{}", c.transport, c.size, c.error.as_deref().unwrap_or(""));
            }
            for (i, r) in c.repeats.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "{},{},{i},{:.0},{:.0},{:.0},{},{},{},{},{:.0},{:.4},{},{},",
                    c.transport,
                    c.size,
                    r.p50_ns,
                    r.p99_ns,
                    r.p999_ns,
                    r.lat_samples,
                    num(r.idle_p50_ns),
                    num(r.idle_p99_ns),
                    r.idle_samples,
                    r.msgs_per_s,
                    r.gb_per_s,
                    r.thr_msgs,
                    r.lost
                );
            }
        }
        out
    }

    /// The plot: latency and throughput against payload size, log-log, one line per transport,
    /// min–max whiskers over the repeats, x* marked.
    #[must_use]
    pub fn svg(&self, ctx: &Context) -> String {
        let (w, h) = (1560.0, 560.0);
        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
        let _ = writeln!(
            s,
            r#"<text x="{}" y="22" text-anchor="middle" font-size="15">epochfuse transport benchmark — {} — {}</text>"#,
            w / 2.0,
            esc(&ctx.date),
            esc(&ctx.machine)
        );
        let lat: Vec<Series> = self.series(|c| c.spread(|r| r.p50_ns / 1000.0));
        let idle: Vec<Series> = self.series(|c| c.spread(|r| r.idle_p50_ns / 1000.0));
        let thr: Vec<Series> = self.series(|c| c.spread(|r| r.gb_per_s));
        let plot_w = 430.0;
        let panels = [
            ("one-way latency p50, back to back (µs, RTT/2)", &lat, Metric::Latency),
            ("one-way latency p50, idle reader (µs, RTT/2)", &idle, Metric::IdleLatency),
            ("streaming throughput (GB/s)", &thr, Metric::Throughput),
        ];
        for (i, (title, series, metric)) in panels.into_iter().enumerate() {
            let x0 = 70.0 + 510.0 * i as f64;
            self.panel(&mut s, x0, 60.0, plot_w, 400.0, title, series, &self.marks(metric));
        }
        // Legend.
        let mut x = 70.0;
        for t in &self.transports {
            let (color, dash, width) = style(*t);
            let y = 530.0;
            let _ = writeln!(
                s,
                r#"<line x1="{x}" y1="{y}" x2="{}" y2="{y}" stroke="{color}" stroke-width="{width}" stroke-dasharray="{dash}"/><text x="{}" y="{}">{t}</text>"#,
                x + 24.0,
                x + 28.0,
                y + 4.0
            );
            x += 190.0;
        }
        let _ = writeln!(
            s,
            r##"<text x="70" y="552" font-size="11" fill="#555">payload size (bytes), log scale; whiskers: min–max of repeats; dashed verticals: x* of ring-block against the transport of that colour (the ring wins from there up)</text>"##
        );
        s.push_str("</svg>\n");
        s
    }

    fn series(&self, value: impl Fn(&Cell) -> Spread) -> Vec<Series> {
        self.transports
            .iter()
            .map(|&t| Series {
                transport: t,
                points: self
                    .sizes
                    .iter()
                    .filter_map(|&size| self.get(t, size).map(|c| (size, value(c))))
                    .collect(),
            })
            .collect()
    }

    fn marks(&self, metric: Metric) -> Vec<(usize, Transport)> {
        MESSAGE_TRANSPORTS
            .iter()
            .filter(|t| self.transports.contains(t))
            .filter_map(|&t| match self.break_even(Transport::RingBlock, t, metric) {
                BreakEven::From(size) => Some((size, t)),
                _ => None,
            })
            .collect()
    }

    #[allow(clippy::too_many_arguments)]
    fn panel(
        &self,
        s: &mut String,
        x0: f64,
        y0: f64,
        pw: f64,
        ph: f64,
        title: &str,
        series: &[Series],
        marks: &[(usize, Transport)],
    ) {
        let (Some(&xmin), Some(&xmax)) = (self.sizes.first(), self.sizes.last()) else {
            return;
        };
        let values = series.iter().flat_map(|se| se.points.iter().flat_map(|(_, p)| [p.min, p.max]));
        let (lo, hi) = values
            .filter(|v| v.is_finite() && *v > 0.0)
            .fold((f64::INFINITY, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
        if !lo.is_finite() {
            return;
        }
        let (dlo, dhi) = (lo.log10().floor(), hi.log10().ceil().max(lo.log10().floor() + 1.0));
        let lx = |size: usize| {
            let (a, b) = ((xmin as f64).log2(), (xmax as f64).log2());
            let f = if b > a { ((size as f64).log2() - a) / (b - a) } else { 0.5 };
            x0 + f * pw
        };
        let ly = |v: f64| y0 + ph - (v.log10() - dlo) / (dhi - dlo) * ph;
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle" font-size="13">{}</text>"#,
            x0 + pw / 2.0,
            y0 - 10.0,
            esc(title)
        );
        let _ = writeln!(
            s,
            r##"<rect x="{x0}" y="{y0}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>"##
        );
        let mut d = dlo;
        while d <= dhi + 1e-9 {
            let y = ly(10f64.powf(d));
            let _ = writeln!(
                s,
                r##"<line x1="{x0}" y1="{y}" x2="{}" y2="{y}" stroke="#ddd"/><text x="{}" y="{}" text-anchor="end">{}</text>"##,
                x0 + pw,
                x0 - 6.0,
                y + 4.0,
                decade(d)
            );
            for k in 2..10 {
                let v = 10f64.powf(d) * f64::from(k);
                if v.log10() < dhi {
                    let y = ly(v);
                    let _ = writeln!(
                        s,
                        r##"<line x1="{x0}" y1="{y}" x2="{}" y2="{y}" stroke="#f2f2f2"/>"##,
                        x0 + pw
                    );
                }
            }
            d += 1.0;
        }
        for &size in &self.sizes {
            let x = lx(size);
            let _ = writeln!(
                s,
                r##"<line x1="{x}" y1="{y0}" x2="{x}" y2="{}" stroke="#eee"/><text x="{x}" y="{}" text-anchor="middle">{}</text>"##,
                y0 + ph,
                y0 + ph + 16.0,
                size_label(size)
            );
        }
        for (i, (size, t)) in marks.iter().enumerate() {
            let (color, _, _) = style(*t);
            let x = lx(*size) + (i as f64 - 1.5) * 3.0;
            // Labels of marks in the right part of the panel go to the left of their line.
            let (tx, anchor) = if x > x0 + 0.6 * pw { (x - 4.0, "end") } else { (x + 4.0, "start") };
            let _ = writeln!(
                s,
                r#"<line x1="{x}" y1="{y0}" x2="{x}" y2="{}" stroke="{color}" stroke-width="1.5" stroke-dasharray="6,4"/><text x="{tx}" y="{}" fill="{color}" font-size="11" text-anchor="{anchor}">x* vs {t}</text>"#,
                y0 + ph,
                y0 + 14.0 + 13.0 * i as f64
            );
        }
        for se in series {
            let (color, dash, width) = style(se.transport);
            let pts: Vec<String> = se
                .points
                .iter()
                .filter(|(_, p)| p.median.is_finite() && p.median > 0.0)
                .map(|(size, p)| format!("{:.1},{:.1}", lx(*size), ly(p.median)))
                .collect();
            let _ = writeln!(
                s,
                r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="{width}" stroke-dasharray="{dash}"/>"#,
                pts.join(" ")
            );
            for (size, p) in &se.points {
                if p.min > 0.0 && p.max.is_finite() {
                    let x = lx(*size);
                    let _ = writeln!(
                        s,
                        r#"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="{color}"/><circle cx="{x:.1}" cy="{:.1}" r="2.5" fill="{color}"/>"#,
                        ly(p.min),
                        ly(p.max),
                        ly(p.median)
                    );
                }
            }
        }
    }
}

fn num(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.0}")
    } else {
        String::new()
    }
}

#[derive(Debug)]
struct Series {
    transport: Transport,
    points: Vec<(usize, Spread)>,
}

fn style(t: Transport) -> (&'static str, &'static str, f64) {
    match t {
        Transport::RingBlock => ("#d62728", "none", 3.0),
        Transport::RingPoll => ("#ff7f0e", "8,4", 2.0),
        Transport::UdsStream => ("#1f77b4", "none", 2.0),
        Transport::UdsSeqpacket => ("#17becf", "none", 2.0),
        Transport::Pipe => ("#2ca02c", "none", 2.0),
        Transport::Iox2Block => ("#9467bd", "none", 2.0),
        Transport::Iox2Poll => ("#9467bd", "8,4", 2.0),
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn decade(d: f64) -> String {
    let v = 10f64.powf(d);
    if v >= 1.0 {
        format!("{v:.0}")
    } else {
        let digits = (-d) as usize;
        format!("{v:.digits$}")
    }
}

/// "64 B", "4 KiB", "16 MiB".
#[must_use]
pub fn size_label(size: usize) -> String {
    if size >= 1 << 20 && size.is_multiple_of(1 << 20) {
        format!("{} MiB", size >> 20)
    } else if size >= 1 << 10 && size.is_multiple_of(1 << 10) {
        format!("{} KiB", size >> 10)
    } else {
        format!("{size} B")
    }
}

/// Nanoseconds as microseconds, three significant digits.
#[must_use]
pub fn us(ns: f64) -> String {
    sig3(ns / 1000.0)
}

/// Three significant digits (no exponent).
#[must_use]
pub fn sig3(v: f64) -> String {
    if !v.is_finite() {
        return "–".into();
    }
    let a = v.abs();
    if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// 1234567 → "1.23 M".
#[must_use]
pub fn human(v: f64) -> String {
    if !v.is_finite() {
        "–".into()
    } else if v >= 1e6 {
        format!("{} M", sig3(v / 1e6))
    } else if v >= 1e3 {
        format!("{} k", sig3(v / 1e3))
    } else {
        sig3(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Repeat;

    fn cell(t: Transport, size: usize, p50: f64, gbps: f64) -> Cell {
        let r = Repeat {
            p50_ns: p50,
            p99_ns: p50,
            p999_ns: p50,
            lat_samples: 1,
            idle_p50_ns: p50,
            idle_p99_ns: p50,
            idle_samples: 1,
            msgs_per_s: 1.0,
            gb_per_s: gbps,
            thr_msgs: 1,
            lost: 0,
        };
        Cell { transport: t, size, repeats: vec![r], error: None, note: None }
    }

    #[test]
    fn break_even_is_the_start_of_the_winning_tail() {
        let r = Results::new(vec![
            cell(Transport::RingBlock, 64, 5.0, 1.0),
            cell(Transport::RingBlock, 256, 3.0, 1.0),
            cell(Transport::RingBlock, 1024, 5.0, 1.0),
            cell(Transport::RingBlock, 4096, 5.0, 9.0),
            cell(Transport::Pipe, 64, 4.0, 2.0),
            cell(Transport::Pipe, 256, 4.0, 2.0),
            cell(Transport::Pipe, 1024, 6.0, 2.0),
            cell(Transport::Pipe, 4096, 6.0, 2.0),
        ]);
        assert_eq!(
            r.break_even(Transport::RingBlock, Transport::Pipe, Metric::Latency),
            BreakEven::From(256)
        );
        assert_eq!(
            r.break_even(Transport::RingBlock, Transport::Pipe, Metric::Throughput),
            BreakEven::From(4096)
        );
        assert_eq!(
            r.break_even(Transport::RingBlock, Transport::UdsStream, Metric::Latency),
            BreakEven::Unknown
        );
        assert_eq!(
            r.break_even(Transport::RingBlock, Transport::Pipe, Metric::IdleLatency),
            BreakEven::From(256)
        );
        assert_eq!(r.wins_at(Transport::Pipe, Metric::Latency), ["256 B", "1 KiB", "4 KiB"]);
        let svg = r.svg(&Context {
            command: String::new(),
            date: String::new(),
            machine: String::new(),
            settings: vec![],
        });
        assert!(svg.contains("x* vs pipe"));
    }

    #[test]
    fn labels() {
        assert_eq!(size_label(64), "64 B");
        assert_eq!(size_label(4096), "4 KiB");
        assert_eq!(size_label(16 << 20), "16 MiB");
        assert_eq!(human(1_234_567.0), "1.23 M");
    }
}
