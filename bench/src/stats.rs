//! Percentiles of one phase, and min/median/max across repeats.

use crate::transports::Transport;

/// Nearest-rank percentile `q` (0..=1) of sorted samples.
#[must_use]
pub fn percentile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64
}

/// min, median and max of some values (NaN-free); NaNs if empty.
#[must_use]
pub fn spread(values: &[f64]) -> Spread {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return Spread { min: f64::NAN, median: f64::NAN, max: f64::NAN };
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 };
    Spread { min: v[0], median, max: v[n - 1] }
}

/// min/median/max across repeats.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spread {
    /// Smallest.
    pub min: f64,
    /// Median.
    pub median: f64,
    /// Largest.
    pub max: f64,
}

/// One repeat of one (transport, size): a latency phase and a throughput phase.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Repeat {
    /// One-way latency (round trip / 2) percentiles, ns.
    pub p50_ns: f64,
    /// 99th percentile, ns.
    pub p99_ns: f64,
    /// 99.9th percentile, ns (with fewer than 1000 round trips this is close to the max).
    pub p999_ns: f64,
    /// Round trips measured.
    pub lat_samples: u64,
    /// One-way p50 with an idle reader (a pause between round trips long enough for a blocking
    /// reader to go to sleep), ns; NaN for polling transports.
    pub idle_p50_ns: f64,
    /// The same, 99th percentile.
    pub idle_p99_ns: f64,
    /// Round trips measured with an idle reader.
    pub idle_samples: u64,
    /// Streaming throughput, messages per second.
    pub msgs_per_s: f64,
    /// Streaming throughput, 10^9 payload bytes per second.
    pub gb_per_s: f64,
    /// Messages streamed.
    pub thr_msgs: u64,
    /// Messages the consumer saw lost or out of order (must be 0).
    pub lost: u64,
}

impl Repeat {
    /// From one latency phase's round trips (ns), those of an idle-reader phase, and one
    /// throughput phase.
    #[must_use]
    pub fn new(
        mut rtts: Vec<u64>,
        mut idle: Vec<u64>,
        thr_msgs: u64,
        thr_secs: f64,
        size: usize,
        lost: u64,
    ) -> Self {
        rtts.sort_unstable();
        idle.sort_unstable();
        let half = |q| percentile(&rtts, q) / 2.0;
        Self {
            p50_ns: half(0.50),
            p99_ns: half(0.99),
            p999_ns: half(0.999),
            lat_samples: rtts.len() as u64,
            idle_p50_ns: percentile(&idle, 0.5) / 2.0,
            idle_p99_ns: percentile(&idle, 0.99) / 2.0,
            idle_samples: idle.len() as u64,
            msgs_per_s: thr_msgs as f64 / thr_secs,
            gb_per_s: thr_msgs as f64 * size as f64 / thr_secs / 1e9,
            thr_msgs,
            lost,
        }
    }
}

/// Every repeat of one (transport, size), or why it has none.
#[derive(Clone, Debug, PartialEq)]
pub struct Cell {
    /// The transport.
    pub transport: Transport,
    /// Payload bytes.
    pub size: usize,
    /// The repeats.
    pub repeats: Vec<Repeat>,
    /// Why the run failed, if it did.
    pub error: Option<String>,
    /// A remark for the table (e.g. seqpacket chunking).
    pub note: Option<String>,
}

impl Cell {
    /// min/median/max of a field over the repeats.
    #[must_use]
    pub fn spread(&self, field: impl Fn(&Repeat) -> f64) -> Spread {
        spread(&self.repeats.iter().map(field).collect::<Vec<_>>())
    }

    /// Median one-way p50 latency, ns.
    #[must_use]
    pub fn p50(&self) -> f64 {
        self.spread(|r| r.p50_ns).median
    }

    /// Median one-way p50 latency with an idle reader, ns.
    #[must_use]
    pub fn idle_p50(&self) -> f64 {
        self.spread(|r| r.idle_p50_ns).median
    }

    /// Median throughput, GB/s.
    #[must_use]
    pub fn gbps(&self) -> f64 {
        self.spread(|r| r.gb_per_s).median
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let v: Vec<u64> = (1..=1000).collect();
        assert_eq!(percentile(&v, 0.5), 500.0);
        assert_eq!(percentile(&v, 0.99), 990.0);
        assert_eq!(percentile(&v, 0.999), 999.0);
        assert_eq!(percentile(&[7], 0.999), 7.0);
    }

    #[test]
    fn spreads() {
        let s = spread(&[3.0, 1.0, 2.0, f64::NAN]);
        assert_eq!((s.min, s.median, s.max), (1.0, 2.0, 3.0));
        assert_eq!(spread(&[1.0, 2.0]).median, 1.5);
    }
}
