//! The producer's side of one phase: ping-pong latency and streaming throughput, each bounded
//! by a message count and a time.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::control::Control;
use crate::peer::Done;
use crate::proto::{self, Producer, END};

/// Bounds of one phase.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    pub duration: Duration,
    pub lat_count: u64,
    pub thr_count: u64,
    pub thr_bytes: u64,
    /// Messages every throughput phase sends at least (the warm-up: enough to fault in every
    /// ring slot and iceoryx2 sample).
    pub thr_min: u64,
}

/// At least this many round trips / messages per phase, whatever the time bound says.
pub const MIN_LAT: u64 = 20;
pub const MIN_THR: u64 = 16;

/// Ping-pong: returns the round trips in ns. With a `gap`, sleeps that long after each round
/// trip (so that a blocking reader is asleep when the next message comes).
pub fn latency_phase(p: &mut dyn Producer, b: Bounds, gap: Duration) -> io::Result<Vec<u64>> {
    let mut rtts = Vec::with_capacity(b.lat_count.min(1 << 20) as usize);
    let start = Instant::now();
    let mut i = 0;
    loop {
        let last = i + 1 >= b.lat_count || (i + 1 >= MIN_LAT && start.elapsed() >= b.duration);
        let t0 = Instant::now();
        p.send(i, if last { END } else { 0 })?;
        let ack = p.recv_ack()?;
        let rtt = t0.elapsed();
        if ack != i {
            return Err(proto::invalid(format!("ack {ack} for message {i}")));
        }
        rtts.push(u64::try_from(rtt.as_nanos()).unwrap_or(u64::MAX));
        i += 1;
        if last {
            return Ok(rtts);
        }
        if !gap.is_zero() {
            std::thread::sleep(gap);
        }
    }
}

/// Streaming: returns messages sent and the time from the first send to the final ack.
pub fn throughput_phase(p: &mut dyn Producer, b: Bounds, size: usize) -> io::Result<(u64, Duration)> {
    let window = p.window();
    let min = b.thr_min.max(MIN_THR);
    let max = b.thr_count.min(b.thr_bytes / size as u64).max(min);
    let start = Instant::now();
    let mut acked = 0;
    let mut n = 0;
    loop {
        let last = n + 1 >= max || (n + 1 >= min && n.is_multiple_of(16) && start.elapsed() >= b.duration);
        if let Some(w) = window {
            while n - acked >= w {
                acked = acked.max(p.recv_ack()?);
            }
        }
        p.send(n, if last { END } else { 0 })?;
        n += 1;
        if last {
            break;
        }
    }
    while acked < n {
        acked = acked.max(p.recv_ack()?);
    }
    Ok((n, start.elapsed()))
}

/// Runs one phase on both sides; returns the consumer's `done` numbers.
pub fn phase<T>(
    ctl: &mut Control,
    word: &str,
    run: impl FnOnce() -> io::Result<T>,
    watchdog: &AtomicU64,
) -> io::Result<(T, Done)> {
    watchdog.fetch_add(1, Ordering::Relaxed);
    ctl.send(word)?;
    ctl.expect("go")?;
    let out = run()?;
    let done = ctl.expect("done")?;
    let n: Vec<u64> = done.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    let [msgs, bytes, gaps, lost] = n[..] else {
        return Err(io::Error::other(format!("bad done line '{done}'")));
    };
    Ok((out, Done { msgs, bytes, gaps, lost }))
}
