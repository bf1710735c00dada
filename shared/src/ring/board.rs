//! The counters of a segment's scoreboard, as one snapshot.

use crate::layout::{self, ReaderCounter, WriterCounter};
use crate::mapping::Access;
use crate::segment::Segment;
use crate::sync::Ordering;
use crate::{FrameSeq, Incarnation};

/// Counters of a segment's scoreboard.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Scoreboard {
    /// Frames committed by the writer(s).
    pub frames_written: u64,
    /// Payload bytes committed.
    pub bytes_written: u64,
    /// Slots repaired at takeovers.
    pub slots_repaired: u64,
    /// Loans abandoned.
    pub loans_aborted: u64,
    /// Loans given the slot its readers had just released (`RingWriter::reuse_released`).
    pub slots_reused: u64,
    /// Frames read and validated (all readers).
    pub frames_read: u64,
    /// Torn retries (all readers).
    pub torn_retries: u64,
    /// Overruns (all readers).
    pub overruns: u64,
    /// Frames lost to overruns (all readers).
    pub overrun_frames_lost: u64,
    /// Stale slots (all readers).
    pub stale: u64,
    /// Frames refused by validation (all readers).
    pub invalid: u64,
    /// The published write cursor.
    pub cursor: FrameSeq,
    /// Current writer incarnation.
    pub incarnation: Incarnation,
    /// Writer's last heartbeat, monotonic ns.
    pub heartbeat_ns: u64,
    /// Writer pid (informational).
    pub writer_pid: u64,
    /// Kind-specific words.
    pub aux: [u64; layout::AUX_WORDS],
}

impl Scoreboard {
    /// Reads a segment's scoreboard (Relaxed: counters are statistics).
    #[must_use]
    pub fn load<A: Access>(seg: &Segment<A>) -> Self {
        let m = &seg.map;
        let w = |c| m.load(layout::writer_counter_offset(c), Ordering::Relaxed);
        let r = |c| m.load(layout::reader_counter_offset(c), Ordering::Relaxed);
        Self {
            frames_written: w(WriterCounter::FramesWritten),
            bytes_written: w(WriterCounter::BytesWritten),
            slots_repaired: w(WriterCounter::SlotsRepaired),
            loans_aborted: w(WriterCounter::LoansAborted),
            slots_reused: w(WriterCounter::SlotsReused),
            frames_read: r(ReaderCounter::FramesRead),
            torn_retries: r(ReaderCounter::TornRetries),
            overruns: r(ReaderCounter::Overruns),
            overrun_frames_lost: r(ReaderCounter::OverrunFramesLost),
            stale: r(ReaderCounter::Stale),
            invalid: r(ReaderCounter::Invalid),
            cursor: FrameSeq(m.load(layout::OFF_WRITE_CURSOR, Ordering::Relaxed)),
            incarnation: Incarnation(m.load(layout::OFF_INCARNATION, Ordering::Relaxed)),
            heartbeat_ns: m.load(layout::OFF_HEARTBEAT_NS, Ordering::Relaxed),
            writer_pid: m.load(layout::OFF_WRITER_PID, Ordering::Relaxed),
            aux: std::array::from_fn(|i| m.load(layout::aux_offset(i), Ordering::Relaxed)),
        }
    }
}
