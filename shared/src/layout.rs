//! The shared-memory segment layout: the one place where every offset is defined.
//!
//! A segment is one file per stream (camera, lidar, fused, calibration table) in a run
//! directory. Every word is a little-endian `u64` accessed only through `AtomicU64`: no
//! process ever holds a plain reference into the mapping, and no two accesses to the same
//! bytes use different sizes.
//!
//! ```text
//!  offset ┌─────────────────────────── segment header: 4096 bytes ───────────────────────────┐
//!       0 │ MAGIC            "EFSEGv01"                               static, zerocopy         │
//!       8 │ LAYOUT_VERSION   written LAST by the creator (Release)    ─┐  [`SegmentHeader`]    │
//!      16 │ STREAM_KIND      camera=1 lidar=2 fused=3 calib=4          │                       │
//!      24 │ SLOT_COUNT       power of two                              │                       │
//!      32 │ SLOT_CAPACITY    payload bytes per slot                    │                       │
//!      40 │ SLOT_STRIDE      bytes from one slot to the next           │                       │
//!      48 │ BASE_SEQ         frame seq of the very first frame         │                       │
//!      56 │ CREATED_NS       CLOCK_REALTIME at creation               ─┘                       │
//!     ─── │ writer line (64) ──────────────────────────────────────────────────────────────── │
//!      64 │ INCARNATION      1 at creation, +1 per takeover                                   │
//!      72 │ WRITER_PID       pid of the current writer (informational; the flock is the truth)│
//!      80 │ HEARTBEAT_NS     writer's CLOCK_MONOTONIC at its last commit or idle tick         │
//!     ─── │ cursor line (128) ─────────────────────────────────────────────────────────────── │
//!     128 │ WRITE_CURSOR     seq of the next frame to commit; stored with Release             │
//!     136 │ NOTIFY           low 32 bits: futex word, bumped on each commit that has waiters  │
//!     144 │ WAITERS          readers parked (or about to park) on NOTIFY                      │
//!     ─── │ writer counters (192) ─────────────────────────────────────────────────────────── │
//!     192 │ FRAMES_WRITTEN · BYTES_WRITTEN · SLOTS_REPAIRED · LOANS_ABORTED · SLOTS_REUSED    │
//!     ─── │ reader counters (256), fetch_add by every reader ──────────────────────────────── │
//!     256 │ FRAMES_READ · TORN_RETRIES · OVERRUNS · STALE · INVALID · OVERRUN_FRAMES_LOST     │
//!     ─── │ aux (320): 16 words whose meaning depends on the stream kind (scoreboard) ─────── │
//!     320 │ AUX[0..16]                                                                        │
//!     ─── │ slot map (2048), v4: 256 words, rings of at most 256 slots ─────────────────────── │
//!    2048 │ SLOT_MAP[r]      slot of the newest frame seq ≡ r (mod SLOT_COUNT), XOR r         │
//!         │                  (0 = slot r: a fresh file needs no init; readers mask it)        │
//!    4096 ├──────────────── slot 0 (SLOT_STRIDE bytes) ──────────────────────────────────────┤
//!   +   0 │ SEQ              seqlock word: odd while a write is in progress                    │
//!   +   8 │ FRAME_SEQ        ─┐                                                                │
//!   +  16 │ CAPTURE_NS        │ [`FrameHeader`], written inside the seqlock                   │
//!   +  24 │ EPOCH             │                                                                │
//!   +  32 │ PAYLOAD_LEN       │                                                                │
//!   +  40 │ INCARNATION       │ 0 = slot holds no valid frame                                  │
//!   +  48 │ CHECKSUM          │ over the other six header words AND the payload bytes,        │
//!         │                   │ see [`crate::checksum::seal`]                                  │
//!   +  56 │ PUBLISH_NS       ─┘ writer's CLOCK_MONOTONIC at commit (v3)                        │
//!   +  64 │ PAYLOAD          SLOT_CAPACITY bytes, rounded up to a multiple of 64              │
//!         ├──────────────── slot 1 … slot SLOT_COUNT-1 ───────────────────────────────────────┤
//!         └────────────────────────────────────────────────────────────────────────────────────┘
//!  file size = HEADER_SIZE + SLOT_COUNT × SLOT_STRIDE
//! ```
//!
//! The static header (offsets 0..64) and the frame header are read by copying their words
//! out with atomic loads into a local buffer and parsing that buffer with zerocopy.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// "EFSEGv01", little-endian.
pub const MAGIC: u64 = u64::from_le_bytes(*b"EFSEGv01");
/// The layout version this build writes and accepts. Version 2: the slot checksum covers
/// the frame header words as well as the payload (version 1 covered the payload only).
/// Version 3: the frame header carries the publish time (`PUBLISH_NS`, under the checksum).
/// Version 4: the slot map (`SLOT_MAP`): a frame's slot is looked up, not `seq % slots`, so a
/// writer may put the next frame into the slot its readers have just released.
pub const LAYOUT_VERSION: u64 = 4;

/// Bytes of the segment header; slots start here (page aligned).
pub const HEADER_SIZE: usize = 4096;

/// Offset of the magic word.
pub const OFF_MAGIC: usize = 0;
/// Offset of the layout version, the last word the creator writes.
pub const OFF_LAYOUT_VERSION: usize = 8;
/// Offset of the stream kind.
pub const OFF_STREAM_KIND: usize = 16;
/// Offset of the slot count.
pub const OFF_SLOT_COUNT: usize = 24;
/// Offset of the slot payload capacity.
pub const OFF_SLOT_CAPACITY: usize = 32;
/// Offset of the slot stride.
pub const OFF_SLOT_STRIDE: usize = 40;
/// Offset of the base sequence number.
pub const OFF_BASE_SEQ: usize = 48;
/// Offset of the creation time.
pub const OFF_CREATED_NS: usize = 56;
/// Bytes of the static header part.
pub const STATIC_HEADER_SIZE: usize = 64;

/// Offset of the writer incarnation.
pub const OFF_INCARNATION: usize = 64;
/// Offset of the writer's pid.
pub const OFF_WRITER_PID: usize = 72;
/// Offset of the writer heartbeat.
pub const OFF_HEARTBEAT_NS: usize = 80;

/// Offset of the write cursor.
pub const OFF_WRITE_CURSOR: usize = 128;
/// Offset of the futex word (its low 32 bits on little-endian).
pub const OFF_NOTIFY: usize = 136;
/// Offset of the parked-reader count.
pub const OFF_WAITERS: usize = 144;

/// Offset of the writer counters.
pub const OFF_WRITER_COUNTERS: usize = 192;
/// Offset of the reader counters.
pub const OFF_READER_COUNTERS: usize = 256;
/// Offset of the kind-specific aux words.
pub const OFF_AUX: usize = 320;
/// Number of aux words.
pub const AUX_WORDS: usize = 16;

/// Offset of the slot map: word `r` holds, XORed with `r`, the slot of the newest frame whose
/// seq is `r` modulo the slot count. Written only by the writer (Relaxed, before the slot's
/// `seqlock::write_begin`, whose Release fence orders the cursor store that announces the
/// frame); untrusted by readers, who mask it into range and check the slot's frame header
/// as always.
pub const OFF_SLOT_MAP: usize = 2048;
/// Rings of at most this many slots have a slot map; larger ones place frame `seq` in slot
/// `seq % slots` always.
pub const SLOT_MAP_MAX: u64 = 256;

/// Offset of slot-map word `r`.
#[must_use]
pub const fn slot_map_offset(r: u64) -> usize {
    OFF_SLOT_MAP + 8 * r as usize
}

/// Bytes of a slot header; the payload starts here within the slot.
pub const SLOT_HEADER_SIZE: usize = 64;
/// Offset of the seqlock word within a slot.
pub const SLOT_OFF_SEQ: usize = 0;
/// Offset of the [`FrameHeader`] within a slot.
pub const SLOT_OFF_FRAME_HEADER: usize = 8;
/// Offset of the payload within a slot.
pub const SLOT_OFF_PAYLOAD: usize = SLOT_HEADER_SIZE;

/// Slots hold at most this many payload bytes (bounds allocations driven by a segment).
pub const MAX_SLOT_CAPACITY: u64 = 256 << 20;
/// A segment holds at most this many slots.
pub const MAX_SLOT_COUNT: u64 = 1 << 16;

/// The immutable part of the segment header, as parsed from a copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct SegmentHeader {
    /// [`MAGIC`].
    pub magic: u64,
    /// [`LAYOUT_VERSION`].
    pub layout_version: u64,
    /// [`crate::StreamKind`] as a number.
    pub stream_kind: u64,
    /// Number of slots, a power of two.
    pub slot_count: u64,
    /// Payload bytes per slot.
    pub slot_capacity: u64,
    /// Bytes from one slot to the next.
    pub slot_stride: u64,
    /// Sequence number of the first frame ever committed.
    pub base_seq: u64,
    /// CLOCK_REALTIME nanoseconds at creation.
    pub created_ns: u64,
}

/// The frame header inside a slot, as parsed from a copy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct FrameHeader {
    /// The frame's sequence number.
    pub frame_seq: u64,
    /// Capture time, ns.
    pub capture_ns: u64,
    /// Calibration epoch the frame was captured under.
    pub epoch: u64,
    /// Payload bytes.
    pub payload_len: u64,
    /// Writer incarnation that produced the frame; 0 means "no valid frame".
    pub incarnation: u64,
    /// Checksum of the other header words and the payload bytes ([`FrameHeader::seal`]).
    pub checksum: u64,
    /// The writer's CLOCK_MONOTONIC nanoseconds when it committed the frame (the end of
    /// "capture → published", the start of "published → fused").
    pub publish_ns: u64,
}

impl FrameHeader {
    /// The header words the slot checksum covers (all but the checksum), in layout order.
    #[must_use]
    pub fn sealed_words(&self) -> [u64; 6] {
        [self.frame_seq, self.capture_ns, self.epoch, self.payload_len, self.incarnation, self.publish_ns]
    }

    /// The checksum this header must carry for a payload whose own checksum is `payload_sum`.
    #[must_use]
    pub fn seal(&self, payload_sum: u64) -> u64 {
        crate::checksum::seal(self.sealed_words(), payload_sum)
    }
}

/// Words in a [`FrameHeader`].
pub const FRAME_HEADER_WORDS: usize = size_of::<FrameHeader>() / 8;

/// Writer counters, in order from [`OFF_WRITER_COUNTERS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum WriterCounter {
    /// Frames committed.
    FramesWritten = 0,
    /// Payload bytes committed.
    BytesWritten = 1,
    /// Odd slots repaired at takeover.
    SlotsRepaired = 2,
    /// Loans dropped without commit.
    LoansAborted = 3,
    /// Loans given the slot of the frame before, released by every reader (v4).
    SlotsReused = 4,
}

/// Reader counters, in order from [`OFF_READER_COUNTERS`]; every reader adds to them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum ReaderCounter {
    /// Frames read and validated.
    FramesRead = 0,
    /// Reads that saw a write in progress or a changed sequence word, and retried.
    TornRetries = 1,
    /// Times a reader was lapped by the writer.
    Overruns = 2,
    /// Slots that no longer held the announced frame seq.
    Stale = 3,
    /// Frames rejected by validation (bounds, incarnation, checksum).
    Invalid = 4,
    /// Frames lost to overruns.
    OverrunFramesLost = 5,
}

/// Offset of a writer counter.
#[must_use]
pub const fn writer_counter_offset(c: WriterCounter) -> usize {
    OFF_WRITER_COUNTERS + 8 * c as usize
}

/// Offset of a reader counter.
#[must_use]
pub const fn reader_counter_offset(c: ReaderCounter) -> usize {
    OFF_READER_COUNTERS + 8 * c as usize
}

/// Offset of aux word `i` (`i < AUX_WORDS`).
#[must_use]
pub const fn aux_offset(i: usize) -> usize {
    OFF_AUX + 8 * i
}

/// Slot stride for a payload capacity: header plus payload, rounded up to 64 bytes.
#[must_use]
pub const fn slot_stride(capacity: u64) -> u64 {
    (SLOT_HEADER_SIZE as u64 + capacity).div_ceil(64) * 64
}

/// File size of a segment with this geometry, or `None` on overflow.
#[must_use]
pub fn segment_size(slot_count: u64, slot_stride: u64) -> Option<u64> {
    slot_count.checked_mul(slot_stride)?.checked_add(HEADER_SIZE as u64)
}

/// Offset of slot `index`'s first byte.
#[must_use]
pub const fn slot_offset(index: u64, stride: u64) -> u64 {
    HEADER_SIZE as u64 + index * stride
}

const _: () = {
    assert!(size_of::<SegmentHeader>() == STATIC_HEADER_SIZE);
    assert!(size_of::<FrameHeader>() == 56);
    assert!(SLOT_OFF_FRAME_HEADER + size_of::<FrameHeader>() <= SLOT_HEADER_SIZE);
    assert!(OFF_HEARTBEAT_NS + 8 <= OFF_WRITE_CURSOR);
    assert!(OFF_WAITERS + 8 <= OFF_WRITER_COUNTERS);
    assert!(writer_counter_offset(WriterCounter::SlotsReused) + 8 <= OFF_READER_COUNTERS);
    assert!(reader_counter_offset(ReaderCounter::OverrunFramesLost) + 8 <= OFF_AUX);
    assert!(aux_offset(AUX_WORDS - 1) + 8 <= OFF_SLOT_MAP);
    assert!(slot_map_offset(SLOT_MAP_MAX - 1) + 8 <= HEADER_SIZE);
    assert!(HEADER_SIZE.is_multiple_of(4096));
    assert!(SLOT_HEADER_SIZE.is_multiple_of(64));
    // Every word offset is 8-aligned, so each one can be an AtomicU64.
    assert!(OFF_NOTIFY.is_multiple_of(8) && OFF_WRITE_CURSOR.is_multiple_of(8) && OFF_AUX.is_multiple_of(8));
    assert!(slot_stride(1) == 128 && slot_stride(0) == 64 && slot_stride(64) == 128);
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_offsets() {
        assert_eq!(segment_size(4, slot_stride(1000)), Some(4096 + 4 * 1088));
        assert_eq!(segment_size(u64::MAX, 128), None);
        assert_eq!(slot_offset(2, 128), 4096 + 256);
        assert_eq!(MAGIC.to_le_bytes(), *b"EFSEGv01");
    }
}

/// Meaning of the aux words, by stream kind: the scoreboard `epochfuse top` shows. Read and
/// write them through the typed views in [`crate::scoreboard`], not by index.
pub mod aux {
    /// Camera and lidar rings: the epoch the producer tags frames with now.
    pub const PRODUCER_EPOCH: usize = 0;
    /// Camera and lidar rings: frames the producer rendered late (behind real time).
    pub const PRODUCER_LATE: usize = 1;
    /// Camera and lidar rings: frames tagged with another epoch than the one the sensor was
    /// physically in (simulation only, where the truth is known; must stay 0).
    pub const PRODUCER_MISTAGGED: usize = 2;
    /// Camera and lidar rings: capture time of the producer's newest frame, ns (`u64::MAX`
    /// once it has produced its last one). Producers at `--max-rate` keep in step by it.
    pub const PRODUCER_SIM_TIME: usize = 3;

    /// Fused ring: pairs fused.
    pub const FUSED_PAIRS: usize = 0;
    /// Fused ring: frames held waiting for a partner or a calibration.
    pub const FUSED_HELD: usize = 1;
    /// Fused ring: frames dropped because their calibration never came.
    pub const FUSED_DROPPED_NO_CALIB: usize = 2;
    /// Fused ring: sweeps whose nearest camera frame had another epoch.
    pub const FUSED_REJECTED_MISMATCH: usize = 3;
    /// Fused ring: fused pairs whose epochs differ (only `--pairing latest` makes them).
    pub const FUSED_EPOCH_MISMATCH: usize = 4;
    /// Fused ring: newest calibration epoch fusion knows.
    pub const FUSED_LATEST_EPOCH: usize = 5;
    /// Fused ring: frames left unpaired (camera + lidar).
    pub const FUSED_UNPAIRED: usize = 6;
    /// Fused ring: last capture → fused latency, microseconds.
    pub const FUSED_LAST_LATENCY_US: usize = 7;
    /// Fused ring: calibration updates received.
    pub const FUSED_CALIB_UPDATES: usize = 8;
    /// Fused ring: calibration messages rejected.
    pub const FUSED_CALIB_REJECTED: usize = 9;
    /// Fused ring: last published → fused latency (the pipeline's part of the last
    /// latency), microseconds.
    pub const FUSED_LAST_PIPELINE_US: usize = 10;

    /// CAN ring: share of time the bus was busy, parts per million.
    pub const CAN_BUS_LOAD_PPM: usize = 0;
    /// CAN ring: largest response time seen on the bus, ns.
    pub const CAN_WORST_RESPONSE_NS: usize = 1;
    /// CAN ring: the identifier with that response time (bit 31: extended).
    pub const CAN_WORST_ID: usize = 2;
}
