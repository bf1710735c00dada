//! The epoch gate: a receiver passes on a frame only once it knows the frame's calibration
//! epoch. Frames of an epoch not yet known wait in a bounded FIFO (later frames wait behind
//! them, so a stream stays in capture order); when the FIFO is full its oldest frame is
//! dropped and counted. Nothing is ever passed on with a guessed epoch.

use std::collections::{BTreeSet, VecDeque};

use shared::CalibEpoch;

/// What the gate did with frames, for the summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GateCounts {
    /// Frames that had to wait for their epoch.
    pub held: u64,
    /// Frames dropped because their epoch never became known in time (FIFO full, or the
    /// run ended first).
    pub dropped_unknown_epoch: u64,
}

/// The gate of one stream; `F` is whatever the receiver keeps of a frame.
#[derive(Debug)]
pub struct EpochGate<F> {
    known: BTreeSet<CalibEpoch>,
    waiting: VecDeque<(CalibEpoch, F)>,
    capacity: usize,
    counts: GateCounts,
}

impl<F> EpochGate<F> {
    /// A gate that holds at most `capacity` frames (at least one).
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        Self {
            known: BTreeSet::new(),
            waiting: VecDeque::new(),
            capacity: capacity.max(1),
            counts: GateCounts::default(),
        }
    }

    /// Whether `epoch` is known ([`CalibEpoch::NONE`] always is: a frame captured before any
    /// calibration goes on as such, and fusion counts it as having none).
    #[must_use]
    pub fn knows(&self, epoch: CalibEpoch) -> bool {
        !epoch.is_some() || self.known.contains(&epoch)
    }

    /// Offers a frame; returns the frames that may go on now, in arrival order.
    pub fn offer(&mut self, epoch: CalibEpoch, frame: F) -> Vec<F> {
        if self.waiting.is_empty() && self.knows(epoch) {
            return vec![frame];
        }
        if !self.knows(epoch) {
            self.counts.held += 1;
        }
        self.waiting.push_back((epoch, frame));
        let mut out = self.release();
        while self.waiting.len() > self.capacity {
            // Full: the oldest frame goes (its epoch is unknown, or it would have been
            // released), then whatever became releasable behind it.
            self.waiting.pop_front();
            self.counts.dropped_unknown_epoch += 1;
            out.extend(self.release());
        }
        out
    }

    /// Learns an epoch; returns the frames it releases, in arrival order.
    pub fn learn(&mut self, epoch: CalibEpoch) -> Vec<F> {
        self.known.insert(epoch);
        self.release()
    }

    /// The run is over: frames still waiting are dropped and counted.
    pub fn finish(&mut self) -> GateCounts {
        self.counts.dropped_unknown_epoch += self.waiting.len() as u64;
        self.waiting.clear();
        self.counts
    }

    /// Frames waiting now.
    #[must_use]
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// The counters so far.
    #[must_use]
    pub const fn counts(&self) -> GateCounts {
        self.counts
    }

    fn release(&mut self) -> Vec<F> {
        let mut out = Vec::new();
        while self.waiting.front().is_some_and(|(e, _)| self.knows(*e)) {
            if let Some((_, f)) = self.waiting.pop_front() {
                out.push(f);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const E1: CalibEpoch = CalibEpoch(1);
    const E2: CalibEpoch = CalibEpoch(2);

    #[test]
    fn known_epochs_pass_unknown_ones_wait_in_order() {
        let mut g = EpochGate::new(8);
        g.learn(E1);
        assert_eq!(g.offer(E1, 'a'), vec!['a']);
        assert!(g.offer(E2, 'b').is_empty());
        // Known, but behind a waiting frame: waits too, so the stream stays in order.
        assert!(g.offer(E1, 'c').is_empty());
        assert_eq!(g.learn(E2), vec!['b', 'c']);
        assert_eq!(g.offer(E2, 'd'), vec!['d']);
        assert_eq!(g.finish(), GateCounts { held: 1, dropped_unknown_epoch: 0 });
    }

    #[test]
    fn a_full_gate_drops_its_oldest_and_counts_it() {
        let mut g = EpochGate::new(2);
        g.learn(E1);
        assert!(g.offer(E2, 'a').is_empty());
        assert!(g.offer(E2, 'b').is_empty());
        // 'a' is dropped; 'b' still waits for epoch 2, and so does 'c' behind it.
        assert!(g.offer(E1, 'c').is_empty());
        assert_eq!(g.counts().dropped_unknown_epoch, 1);
        // 'b' dropped: 'c' and 'd' are known and go.
        assert_eq!(g.offer(E1, 'd'), vec!['c', 'd']);
        assert_eq!(g.counts().dropped_unknown_epoch, 2);
        assert_eq!(g.finish(), GateCounts { held: 2, dropped_unknown_epoch: 2 });
    }

    #[test]
    fn no_frame_ever_leaves_with_an_epoch_the_gate_does_not_know() {
        // Every frame is tagged with its epoch; whatever the interleaving, what leaves is known.
        let mut g = EpochGate::new(3);
        let mut seen = Vec::new();
        for i in 0..200u64 {
            let e = CalibEpoch(1 + (i / 7) % 5);
            seen.extend(g.offer(e, e));
            if i % 11 == 0 {
                seen.extend(g.learn(CalibEpoch(1 + (i / 13) % 5)));
            }
            for f in &seen {
                assert!(g.knows(*f));
            }
        }
        let c = g.finish();
        assert_eq!(seen.len() as u64 + c.dropped_unknown_epoch, 200);
    }

    #[test]
    fn frames_without_calibration_pass_as_such() {
        let mut g = EpochGate::new(1);
        assert_eq!(g.offer(CalibEpoch::NONE, 1), vec![1]);
    }
}
