//! Lost and reordered samples of one stream, from the source's sequence numbers.
//!
//! A late joiner starts counting at the first sample it gets. A sample older than one
//! already passed on is late: counted and not passed on (the local ring is in capture order).

/// What to do with a received sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Next in order, or after a gap (already counted as lost): pass it on.
    Accept,
    /// Older than one already passed on, or a duplicate: counted, not passed on.
    Late,
}

/// The sequence tracker of one stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeqTracker {
    next: Option<u64>,
    /// Samples never received (gaps, and trailing ones the end message revealed).
    pub lost: u64,
    /// Samples received out of order or twice (not passed on).
    pub reordered: u64,
    /// Samples accepted.
    pub accepted: u64,
}

impl SeqTracker {
    /// Looks at a received sample's sequence number.
    pub fn observe(&mut self, seq: u64) -> Verdict {
        match self.next {
            Some(next) if seq < next => {
                self.reordered += 1;
                // A sample counted lost that turns up late was not lost after all.
                self.lost = self.lost.saturating_sub(1);
                return Verdict::Late;
            }
            Some(next) => self.lost += seq - next,
            None => {}
        }
        self.next = Some(seq.saturating_add(1));
        self.accepted += 1;
        Verdict::Accept
    }

    /// The source says its last sample had sequence `next_seq - 1`: samples after the last
    /// one received are lost (none for a receiver that got nothing and joined at the end).
    pub fn finish(&mut self, next_seq: u64) {
        if let Some(next) = self.next {
            self.lost += next_seq.saturating_sub(next);
            self.next = Some(next.max(next_seq));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_are_lost_and_late_samples_reordered() {
        let mut t = SeqTracker::default();
        for s in [5, 6, 9, 10] {
            assert_eq!(t.observe(s), Verdict::Accept);
        }
        assert_eq!(t.lost, 2);
        assert_eq!(t.observe(7), Verdict::Late);
        assert_eq!(t.observe(10), Verdict::Late);
        assert_eq!((t.reordered, t.lost), (2, 0));
        t.finish(14);
        assert_eq!((t.accepted, t.lost), (4, 3));
    }

    #[test]
    fn a_receiver_that_got_nothing_lost_nothing_it_knew_of() {
        let mut t = SeqTracker::default();
        t.finish(100);
        assert_eq!(t.lost, 0);
    }
}
