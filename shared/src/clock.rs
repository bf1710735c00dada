//! The workspace's one monotonic clock: `CLOCK_MONOTONIC` in nanoseconds.
//!
//! Segment heartbeats, the pipeline clock (`calib::clock::PipelineClock`, whose origin is a
//! reading of this clock) and latency measurements all read it, so their readings compare
//! across processes: `CLOCK_MONOTONIC` is system-wide on Linux.

/// The current `CLOCK_MONOTONIC` reading, nanoseconds.
#[must_use]
pub fn monotonic_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    // CLOCK_MONOTONIC is never negative.
    u64::try_from(t.tv_sec)
        .unwrap_or(0)
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::try_from(t.tv_nsec).unwrap_or(0))
}
