//! Back-pressure for runs at full speed: a producer that must not lap its readers waits for
//! them, but never forever.
//!
//! The readers' progress comes from the segment's reader counters, which any process of
//! the run could scribble, so the wait trusts only what it must: the number of frames
//! written is the writer's own count (not the shared `frames_written` word), and the readers'
//! counters must be monotonic and within the writer's head: counters that claim more than
//! was written, or that go backwards, end the wait at once as [`BackPressure::Invalid`]
//! (so a scribbler that keeps rewriting them cannot keep the wait alive by "moving" them),
//! and counters that stop moving end it after `stall`. A scribbled or stuck counter costs
//! back-pressure (the producer may then lap a reader, which is counted as an overrun), never
//! a hang.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::RingWriter;

/// How a [`RingWriter::wait_for_readers`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackPressure {
    /// The readers are within the margin of the writer.
    CaughtUp,
    /// The stop flag was raised.
    Stopped,
    /// The readers' counters did not move for the stall time.
    Stalled,
    /// The readers' counters claimed more frames than were written, or went backwards:
    /// scribbled; the caller reports it and stops trusting them.
    Invalid,
}

impl RingWriter {
    /// Frames this segment's writers have committed, from the writer's own sequence (the
    /// segment's first frame has the header's base sequence number).
    #[must_use]
    pub fn frames_committed(&self) -> u64 {
        self.next.distance_from(crate::FrameSeq(self.seg.header.base_seq))
    }

    /// Waits until the ring's `readers` readers have between them read (or lost) all but
    /// `margin` of the frames committed, the stop flag is raised, or their counters have not
    /// moved for `stall`. The counters are summed over readers, so the slack is shared: even
    /// if all others are caught up, the slowest one is at most `margin` frames behind.
    /// Counters beyond `readers` times the frames written, or lower than before, end the
    /// wait at once with [`BackPressure::Invalid`].
    pub fn wait_for_readers(
        &self,
        readers: u64,
        margin: u64,
        stall: Duration,
        stop: &AtomicBool,
    ) -> BackPressure {
        let owed = readers.saturating_mul(self.frames_committed());
        let (mut best, mut since) = (None, Instant::now());
        loop {
            if stop.load(Ordering::Relaxed) {
                return BackPressure::Stopped;
            }
            let consumed = super::place::consumed(&self.seg);
            // Beyond the writer's head, or backwards: no reader did that.
            if consumed > owed || best.is_some_and(|b| consumed < b) {
                return BackPressure::Invalid;
            }
            if consumed.saturating_add(margin) >= owed {
                return BackPressure::CaughtUp;
            }
            if best.is_none_or(|b| consumed > b) {
                (best, since) = (Some(consumed), Instant::now());
            } else if since.elapsed() >= stall {
                return BackPressure::Stalled;
            }
            // The readers publish progress only through counters: poll them briefly.
            std::thread::sleep(Duration::from_micros(500));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{reader_counter_offset, writer_counter_offset, ReaderCounter, WriterCounter};
    use crate::ring::{FrameMeta, RingReader};
    use crate::segment::SegmentSpec;
    use crate::{CalibEpoch, StreamKind, TimestampNs};

    fn ring(dir: &std::path::Path) -> (RingWriter, RingReader) {
        let path = dir.join("camera.seg");
        let (mut w, _) =
            RingWriter::create_or_takeover(&path, &SegmentSpec::new(StreamKind::Camera, 8, 64)).unwrap();
        let r = RingReader::attach(&path, StreamKind::Camera).unwrap();
        for _ in 0..6 {
            let mut loan = w.loan();
            crate::frames::PayloadSink::push(&mut loan, &[1; 8]).unwrap();
            loan.commit(FrameMeta { capture: TimestampNs(0), epoch: CalibEpoch(1) });
        }
        (w, r)
    }

    #[test]
    fn a_caught_up_reader_ends_the_wait_and_a_stuck_one_does_too_after_the_stall() {
        let dir = tempfile::tempdir().unwrap();
        let (w, mut r) = ring(dir.path());
        let stop = AtomicBool::new(false);
        let stall = Duration::from_millis(50);
        assert_eq!(w.frames_committed(), 6);
        assert_eq!(w.wait_for_readers(1, 2, stall, &stop), BackPressure::Stalled);
        let mut buf = Vec::new();
        while !matches!(r.read_next(&mut buf), crate::ring::ReadOutcome::Empty) {}
        assert_eq!(w.wait_for_readers(1, 2, stall, &stop), BackPressure::CaughtUp);
        stop.store(true, Ordering::Relaxed);
        assert_eq!(w.wait_for_readers(2, 0, Duration::from_secs(3600), &stop), BackPressure::Stopped);
    }

    #[test]
    fn scribbled_counters_never_hang_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let (w, _r) = ring(dir.path());
        let stop = AtomicBool::new(false);
        // A huge frames_written word is ignored: the writer counts its own frames.
        w.seg
            .map
            .word(writer_counter_offset(WriterCounter::FramesWritten))
            .store(u64::MAX / 2, Ordering::Relaxed);
        let hour = Duration::from_secs(3600);
        w.seg.map.word(reader_counter_offset(ReaderCounter::FramesRead)).store(6, Ordering::Relaxed);
        assert_eq!(w.wait_for_readers(1, 0, hour, &stop), BackPressure::CaughtUp);
        // Reader counters that claim more than was written end the wait at once.
        w.seg.map.word(reader_counter_offset(ReaderCounter::FramesRead)).store(u64::MAX, Ordering::Relaxed);
        assert_eq!(w.wait_for_readers(3, 0, hour, &stop), BackPressure::Invalid);
    }

    /// A scribbler that keeps rewriting a reader counter in a live segment (up and down,
    /// never reaching the writer) cannot keep the writer waiting: a counter that goes
    /// backwards is reported at once. Before the check, every change counted as progress
    /// and the wait outlived any stall time.
    #[test]
    fn a_scribbler_rewriting_a_counter_up_and_down_ends_the_wait_as_invalid() {
        use std::sync::atomic::AtomicBool as Flag;
        let dir = tempfile::tempdir().unwrap();
        let (w, _r) = ring(dir.path());
        let path = dir.path().join("camera.seg");
        let done = std::sync::Arc::new(Flag::new(false));
        let scribbler = {
            let done = std::sync::Arc::clone(&done);
            // Another mapping of the same live segment, as another process would have.
            let seg =
                crate::segment::Segment::<crate::mapping::ReadWrite>::attach(&path, Some(StreamKind::Camera))
                    .unwrap();
            std::thread::spawn(move || {
                let word = seg.map.word(reader_counter_offset(ReaderCounter::FramesRead));
                let mut v = 0;
                while !done.load(Ordering::Relaxed) {
                    word.store(v % 3, Ordering::Relaxed);
                    v += 1;
                    std::thread::sleep(Duration::from_micros(200));
                }
            })
        };
        let stop = AtomicBool::new(false);
        let t = Instant::now();
        let ended = w.wait_for_readers(1, 0, Duration::from_secs(2), &stop);
        done.store(true, Ordering::Relaxed);
        scribbler.join().unwrap();
        assert_eq!(ended, BackPressure::Invalid);
        assert!(t.elapsed() < Duration::from_secs(1), "waited {:?}", t.elapsed());
    }
}
