//! The pipeline clock: nanoseconds since a shared monotonic origin `t0`.
//!
//! Every role of a run uses the same `t0` (a `CLOCK_MONOTONIC` reading taken by the drive and
//! handed to each role, e.g. through [`PipelineClock::ENV`]), so that a capture time stamped
//! by the camera process and a `valid_from` announced by the calibration service are on the
//! same axis. `CLOCK_MONOTONIC` is system-wide on Linux, so the readings of two processes are
//! comparable. [`PipelineClock::pace`] is how a source (producer, replayer) keeps to it.

use std::time::Duration;

/// The workspace's one monotonic clock, [`shared::clock::monotonic_ns`], re-exported for
/// callers that already speak the pipeline clock.
pub use shared::clock::monotonic_ns;
use shared::TimestampNs;

use crate::stop::StopFlag;

/// The longest single sleep while pacing, so a raised [`StopFlag`] is seen promptly.
const PACE_SLICE: Duration = Duration::from_millis(50);

/// The pipeline's clock: [`TimestampNs`] = nanoseconds since `t0` on `CLOCK_MONOTONIC`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PipelineClock {
    t0_ns: u64,
}

impl PipelineClock {
    /// The environment variable through which the drive hands `t0` (decimal nanoseconds on
    /// `CLOCK_MONOTONIC`) to the roles it spawns. See [`PipelineClock::from_env`].
    pub const ENV: &'static str = "EPOCHFUSE_CLOCK_T0_NS";

    /// A clock whose origin is now.
    #[must_use]
    pub fn start() -> Self {
        Self { t0_ns: monotonic_ns() }
    }

    /// A clock with the given origin (nanoseconds on `CLOCK_MONOTONIC`), as handed over by the
    /// process that started the run.
    #[must_use]
    pub const fn from_t0_ns(t0_ns: u64) -> Self {
        Self { t0_ns }
    }

    /// The clock named by [`PipelineClock::ENV`], if that variable is set and parses.
    #[must_use]
    pub fn from_env() -> Option<Self> {
        std::env::var(Self::ENV).ok()?.trim().parse().ok().map(Self::from_t0_ns)
    }

    /// The origin, nanoseconds on `CLOCK_MONOTONIC` (hand this to child processes).
    #[must_use]
    pub const fn t0_ns(&self) -> u64 {
        self.t0_ns
    }

    /// Nanoseconds since `t0` (0 if `t0` is in the future).
    #[must_use]
    pub fn now(&self) -> TimestampNs {
        TimestampNs(monotonic_ns().saturating_sub(self.t0_ns))
    }

    /// How long until pipeline time `t` (zero if it has passed).
    #[must_use]
    pub fn until(&self, t: TimestampNs) -> Duration {
        Duration::from_nanos(t.0.saturating_sub(self.now().0))
    }

    /// Paces a source on this clock: sleeps until pipeline time `due` (in slices of at most
    /// 50 ms, so that `stop` is seen). Returns `true` when `due` has come, `false` if `stop`
    /// was raised first. Producers and the replayer call it before each frame in real-time
    /// runs; a frame already late goes at once (the caller counts lateness).
    pub fn pace(&self, due: TimestampNs, stop: &StopFlag) -> bool {
        loop {
            if stop.is_raised() {
                return false;
            }
            let wait = self.until(due);
            if wait.is_zero() {
                return true;
            }
            std::thread::sleep(wait.min(PACE_SLICE));
        }
    }

    /// Pipeline time `t` as a `CLOCK_MONOTONIC` reading in nanoseconds.
    #[must_use]
    pub const fn to_monotonic_ns(&self, t: TimestampNs) -> u64 {
        self.t0_ns.saturating_add(t.0)
    }
}

/// Adds a duration to a timestamp, saturating.
#[must_use]
pub fn add_duration(t: TimestampNs, d: Duration) -> TimestampNs {
    TimestampNs(t.0.saturating_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_advances_from_zero() {
        let c = PipelineClock::start();
        let a = c.now();
        std::thread::sleep(Duration::from_millis(2));
        let b = c.now();
        assert!(b.0 >= a.0 + 2_000_000, "{a:?} {b:?}");
        assert!(a.0 < 1_000_000_000);
        let shared = PipelineClock::from_t0_ns(c.t0_ns());
        assert!(shared.now() >= b);
    }

    #[test]
    fn pace_waits_for_due_time_and_sees_stop() {
        let c = PipelineClock::start();
        let stop = StopFlag::new();
        assert!(c.pace(TimestampNs(3_000_000), &stop));
        assert!(c.now() >= TimestampNs(3_000_000));
        // Already due: no sleep.
        assert!(c.pace(TimestampNs(0), &stop));
        stop.raise();
        let before = c.now();
        assert!(!c.pace(add_duration(before, Duration::from_secs(60)), &stop));
        assert!(c.now().0 - before.0 < 1_000_000_000);
    }

    #[test]
    fn future_origin_saturates() {
        let c = PipelineClock::from_t0_ns(monotonic_ns() + 10_000_000_000);
        assert_eq!(c.now(), TimestampNs(0));
        assert!(c.until(TimestampNs(5)) <= Duration::from_nanos(5));
    }
}
