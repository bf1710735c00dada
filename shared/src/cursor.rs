//! Where a lapped reader resumes: the ring's cursor arithmetic, shared by
//! [`crate::ring::RingReader`] and the loom model.
//!
//! The slot of frame `cursor - slot_count` is the one the writer loans next, so a reader
//! that resumes there races the writer for it and, if it loses, resumes one frame later on
//! the slot the writer takes after that: it chases the writer and reads nothing. A lapped
//! reader therefore resumes [`margin`] frames later than the oldest, behind the writer.

use crate::FrameSeq;

/// Frames a resynchronising reader leaves between itself and the writer's next slot: a
/// quarter of the ring, at least one.
#[must_use]
pub const fn margin(slot_count: u64) -> u64 {
    let m = slot_count / 4;
    if m == 0 {
        1
    } else {
        m
    }
}

/// The frame a reader lapped by the writer resumes at, given the write cursor.
#[must_use]
pub const fn resume_at(cursor: FrameSeq, slot_count: u64) -> FrameSeq {
    FrameSeq(cursor.0.wrapping_sub(slot_count.saturating_sub(margin(slot_count))))
}

/// Whether a reader at `next` has been lapped: more than a ring's worth behind the cursor, or
/// "behind" by more than half the sequence space (only a rewound or hostile cursor does that).
/// If so, where it resumes and how many frames it lost (0 for a rewound cursor).
#[must_use]
pub const fn lapped(cursor: FrameSeq, next: FrameSeq, slot_count: u64) -> Option<(FrameSeq, u64)> {
    let ahead = cursor.distance_from(next);
    if ahead <= slot_count {
        return None;
    }
    let at = resume_at(cursor, slot_count);
    let lost = if ahead > u64::MAX / 2 { 0 } else { at.distance_from(next) };
    Some((at, lost))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lapped_readers_resume_behind_the_writer() {
        assert_eq!(lapped(FrameSeq(8), FrameSeq(0), 8), None);
        assert_eq!(lapped(FrameSeq(10), FrameSeq(0), 8), Some((FrameSeq(4), 4)));
        assert_eq!(lapped(FrameSeq(3), FrameSeq(u64::MAX - 10), 2), Some((FrameSeq(2), 13)));
        assert_eq!(lapped(FrameSeq(0), FrameSeq(5), 8), Some((FrameSeq(u64::MAX - 5), 0)));
        assert_eq!(margin(2), 1);
        assert_eq!(margin(64), 16);
    }
}
