//! The timer of the benchmarks (`shared/benches/ring.rs` and the `bench/` workspace's
//! `atomic-copy`): plain `std::time`, no harness, so that both measure the same way.

use std::time::{Duration, Instant};

/// Median nanoseconds per call of `f`: after three warm-up calls, the batch size doubles until
/// one batch takes at least 1 ms (or reaches 2^24 calls); then batches run until `budget` has
/// passed and at least five were timed.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// let mut n = 0u64;
/// let ns = shared::bench_timer::ns_per_call(Duration::from_millis(5), || n = std::hint::black_box(n + 1));
/// assert!(ns >= 0.0 && n > 0);
/// ```
pub fn ns_per_call(budget: Duration, mut f: impl FnMut()) -> f64 {
    for _ in 0..3 {
        f();
    }
    let mut batch = 1u64;
    loop {
        let t = Instant::now();
        for _ in 0..batch {
            f();
        }
        if t.elapsed() >= Duration::from_millis(1) || batch >= 1 << 24 {
            break;
        }
        batch *= 2;
    }
    let mut samples = Vec::new();
    let start = Instant::now();
    while start.elapsed() < budget || samples.len() < 5 {
        let t = Instant::now();
        for _ in 0..batch {
            f();
        }
        samples.push(t.elapsed().as_nanos() as f64 / batch as f64);
    }
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}
