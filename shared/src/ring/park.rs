//! A reader's waits: parked on the ring's futex word until a frame is published, the
//! timeout passes or the reader's own process ends the wait (`wait.rs` has the protocol).

use std::time::Duration;

use super::RingReader;
use crate::{layout, wait};

impl RingReader {
    /// Waits until a frame past the reader's position is published, or `timeout` passes
    /// (spin, then futex: no CPU while idle). Returns whether one is available.
    pub fn wait(&self, timeout: Duration) -> bool {
        self.wait_until(timeout, || false)
    }

    /// [`wait`](Self::wait), also ended when `give_up` says so: it is asked before each sleep
    /// and after each wake, so a [`wake_waiters`](Self::wake_waiters) from another thread
    /// after `give_up` turned true ends the wait at once.
    pub fn wait_until(&self, timeout: Duration, give_up: impl Fn() -> bool) -> bool {
        let m = &self.seg.map;
        wait::park(
            m.word(layout::OFF_WRITE_CURSOR),
            m.word32(layout::OFF_NOTIFY),
            m.word(layout::OFF_WAITERS),
            self.next.0,
            timeout,
            give_up,
        )
    }

    /// [`wait_until`](Self::wait_until) on several rings at once (at most 4): until a frame
    /// past some reader's position is published on its ring, `timeout` passes or `give_up`
    /// says so. One thread then reads several rings with one wake-up per frame, not one per
    /// reader thread and another to hand the frame on. Returns whether a frame is available
    /// on some ring.
    pub fn wait_any<const N: usize>(
        readers: [&Self; N],
        timeout: Duration,
        give_up: impl Fn() -> bool,
    ) -> bool {
        let rings = readers.map(|r| {
            let m = &r.seg.map;
            wait::Watched {
                cursor: m.word(layout::OFF_WRITE_CURSOR),
                notify: m.word32(layout::OFF_NOTIFY),
                waiters: m.word(layout::OFF_WAITERS),
                seen: r.next.0,
            }
        });
        wait::park_any(&rings, timeout, give_up)
    }

    /// Wakes every reader parked on this ring (in any process) without a frame: each asks
    /// its `give_up` ([`wait_until`](Self::wait_until)) and parks again unless it says stop.
    /// It bumps the ring's notify word, as a publish does; no frame, cursor or counter
    /// changes.
    pub fn wake_waiters(&self) {
        wait::wake_parked(self.seg.map.word32(layout::OFF_NOTIFY));
    }
}
