//! # shared: epochfuse's shared-memory core
//!
//! Segments, seqlocked rings, frame layouts and scoreboards. This crate holds all of the
//! workspace's `unsafe` code: [`mapping`] (with its wide-copy kernels, `mapping/wide.rs` and
//! `mapping/wide/avx2.rs`), [`sigbus`], one call into a function compiled for AVX2 in
//! [`simd`] and one `unshare` in [`sandbox`]; every other crate is `#![forbid(unsafe_code)]`.
//!
//! - [`layout`]: the segment layout, drawn once, every offset a named const.
//! - [`seqlock`]: the per-slot seqlock protocol (also checked by the loom model).
//! - [`segment`]: creating segment files and checking them before trusting them.
//! - [`ring`]: [`ring::RingWriter`] (loan, write in place, commit) and [`ring::RingReader`]
//!   (wait, copy out or read in place, validate), with the outcome of every read counted.
//! - [`scoreboard`]: typed views of the per-kind scoreboard words producers and fusion publish.
//! - [`frames`]: payload layouts of camera, lidar and fused frames.
//! - [`clock`]: [`clock::monotonic_ns`], the one monotonic clock (heartbeats, pipeline time).
//! - [`rundir`]: the run directory under the shm root, and cleaning up after crashed runs.
//! - [`bench_timer`]: the timer the benchmarks share.
//!
//! Under `--cfg loom` only the seqlock protocol and its atomics are built.
//!
//! # Examples
//!
//! A ring is one file: one process creates it with a [`segment::SegmentSpec`] (what it
//! carries, how many slots, how many payload bytes per slot) and is its only writer; any
//! number of readers, in this process or others, attach to the same path. A producer
//! borrows the next slot with [`ring::RingWriter::loan`], writes the payload straight into
//! shared memory through [`frames::PayloadSink`], and publishes it with
//! [`ring::Loan::commit`]. A reader copies the frame out and checks it before handing it on.
//!
//! ```
//! use shared::frames::PayloadSink;
//! use shared::ring::{FrameMeta, ReadOutcome, RingReader, RingWriter, WriterStart};
//! use shared::segment::SegmentSpec;
//! use shared::{CalibEpoch, FrameSeq, StreamKind, TimestampNs};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // In a run, this is the run directory under the shm root (`rundir::RunDir`).
//! let run = tempfile::tempdir()?;
//! let path = run.path().join(shared::rundir::segment_file(StreamKind::Lidar));
//!
//! // 4 slots of 1 KiB. `Created` the first time; `TookOver` if a dead writer left it.
//! let spec = SegmentSpec::new(StreamKind::Lidar, 4, 1024);
//! let (mut writer, start) = RingWriter::create_or_takeover(&path, &spec)?;
//! assert_eq!(start, WriterStart::Created);
//!
//! // The reader checks the file (magic, version, stream kind, geometry) before trusting it,
//! // and starts at the write cursor: it sees frames committed from now on.
//! let mut reader = RingReader::attach(&path, StreamKind::Lidar)?;
//!
//! let mut loan = writer.loan();
//! loan.push(b"a lidar sweep")?;
//! let seq = loan.commit(FrameMeta { capture: TimestampNs(1_000), epoch: CalibEpoch(1) });
//! assert_eq!(seq, FrameSeq(0));
//!
//! let mut buf = Vec::new();
//! match reader.read_next(&mut buf) {
//!     ReadOutcome::Frame(info) => {
//!         assert_eq!(buf, b"a lidar sweep");
//!         assert_eq!((info.seq, info.capture, info.epoch), (seq, TimestampNs(1_000), CalibEpoch(1)));
//!     }
//!     other => panic!("expected a frame, got {other:?}"),
//! }
//! // Nothing new: `Empty` is the only outcome that does not move the reader or count.
//! assert_eq!(reader.read_next(&mut buf), ReadOutcome::Empty);
//! assert_eq!(reader.scoreboard().frames_read, 1);
//! # Ok(())
//! # }
//! ```
//!
//! ## Reading in place
//!
//! A consumer that needs only something computed from a frame (a sum, a projection, a few
//! samples) reads it straight from the slot, without copying it out:
//! [`ring::RingReader::read_next_in_place`] runs a closure on a [`ring::SlotView`] (atomic
//! word loads only), then checks the seqlock, header and checksum. The closure's result comes
//! back only with [`ring::InPlace::Frame`]; if the slot was torn or overwritten meanwhile the
//! outcome is counted as for a copy-out read and the result is dropped. Fusion's form learns
//! of frames from their headers ([`ring::RingReader::peek_next`], a [`ring::FrameRef`]:
//! "frame #17 at slot 1") and checks at use that the slot still holds it
//! ([`ring::RingReader::read_ref_in_place`]).
//!
//! ```
//! use shared::frames::PayloadSink;
//! use shared::ring::{FrameMeta, InPlace, ReadOutcome, RingReader, RingWriter};
//! use shared::segment::SegmentSpec;
//! use shared::{CalibEpoch, StreamKind, TimestampNs};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let run = tempfile::tempdir()?;
//! let path = run.path().join("lidar.seg");
//! let (mut writer, _) = RingWriter::create_or_takeover(&path, &SegmentSpec::new(StreamKind::Lidar, 2, 64))?;
//! let mut reader = RingReader::attach(&path, StreamKind::Lidar)?;
//! let meta = FrameMeta { capture: TimestampNs(5), epoch: CalibEpoch(1) };
//!
//! let mut loan = writer.loan();
//! loan.push(&[1, 0, 0, 0, 2, 0, 0, 0])?;
//! loan.commit(meta);
//! // Sum the little-endian u32s straight from the slot.
//! let read = reader.read_next_in_place(|view| {
//!     (0..view.len() / 4).filter_map(|i| view.read_u32_at(4 * i)).sum::<u32>()
//! });
//! let (info, sum) = read.frame().expect("nothing overwrote the slot");
//! assert_eq!((info.capture, sum), (TimestampNs(5), 3));
//!
//! // By reference: peek at the header now, read later. Two more frames lap the 2-slot ring,
//! // so at use the slot holds another frame; what the closure computed never comes back.
//! let (frame, header) = {
//!     let mut loan = writer.loan();
//!     loan.push(b"late")?;
//!     loan.commit(meta);
//!     reader.peek_next().expect("a new header")
//! };
//! assert_eq!(header.len, 4);
//! for _ in 0..2 {
//!     writer.loan().commit(meta);
//! }
//! let late = reader.read_ref_in_place(frame, |view| view.len());
//! assert!(matches!(late, InPlace::Rejected(ReadOutcome::Overrun { .. })));
//! assert_eq!(reader.scoreboard().overruns, 1);
//! # Ok(())
//! # }
//! ```
//!
//! ## What a read can return
//!
//! The writer never waits for its readers, so a read reports what happened rather than
//! blocking or failing. [`ring::ReadOutcome`]:
//!
//! - `Frame(info)`: a validated frame is in the buffer; the reader moved to the next seq.
//! - `Empty`: nothing committed past the reader yet; wait ([`ring::RingReader::wait`]) and
//!   call again.
//! - `Torn`: the writer was rewriting the slot through every retry; call again.
//! - `Overrun { lost }`: the writer lapped the reader; it skipped `lost` frames and now
//!   stands at the oldest frame the ring still holds.
//! - `Stale { expected, found }`: the slot was reused for a newer frame while it was read;
//!   the reader moved past it.
//! - `Invalid(why)`: the slot's contents failed validation (length, incarnation, checksum,
//!   or the file was truncated); the frame is refused and the reader moved past it.
//!
//! Every outcome but `Empty` is counted in the segment's [`ring::Scoreboard`], which `top`
//! and the run summary read. A reader that falls behind, and a frame damaged behind the
//! writer's back:
//!
//! ```
//! use shared::frames::PayloadSink;
//! use shared::ring::{FrameMeta, InvalidFrame, ReadOutcome, RingReader, RingWriter};
//! use shared::segment::SegmentSpec;
//! use shared::{layout, CalibEpoch, StreamKind, TimestampNs};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let run = tempfile::tempdir()?;
//! let path = run.path().join("camera.seg");
//! let spec = SegmentSpec::new(StreamKind::Camera, 4, 256);
//! let (mut writer, _) = RingWriter::create_or_takeover(&path, &spec)?;
//! let mut reader = RingReader::attach(&path, StreamKind::Camera)?;
//! let meta = FrameMeta { capture: TimestampNs(0), epoch: CalibEpoch(1) };
//!
//! // Six frames into four slots: the first two are gone before the reader looks, and the
//! // lapped reader resumes a margin (a quarter of the ring) ahead of the oldest slot, so it
//! // does not land on the slot the writer reuses next: three frames lost, three read.
//! for i in 0..6u8 {
//!     let mut loan = writer.loan();
//!     loan.push(&[i; 64])?;
//!     loan.commit(meta);
//! }
//! let mut buf = Vec::new();
//! assert_eq!(reader.read_next(&mut buf), ReadOutcome::Overrun { lost: 3 });
//! let mut first = Vec::new();
//! while let ReadOutcome::Frame(info) = reader.read_next(&mut buf) {
//!     first.push(buf[0]);
//!     assert_eq!(info.len, 64);
//! }
//! assert_eq!(first, [3, 4, 5]);
//!
//! // Flip one payload byte of the next frame in the file: the checksum refuses it.
//! let mut loan = writer.loan();
//! loan.push(&[9; 64])?;
//! let seq = loan.commit(meta);
//! // A writer that does not reuse released slots puts frame `seq` in slot `seq % slots`.
//! let slot = seq.0 % u64::from(spec.slot_count);
//! let off = layout::slot_offset(slot, layout::slot_stride(spec.slot_capacity))
//!     + layout::SLOT_OFF_PAYLOAD as u64;
//! let file = std::fs::OpenOptions::new().write(true).open(&path)?;
//! std::os::unix::fs::FileExt::write_at(&file, &[0xFF], off)?;
//! assert_eq!(reader.read_next(&mut buf), ReadOutcome::Invalid(InvalidFrame::ChecksumMismatch));
//!
//! let board = reader.scoreboard();
//! assert_eq!((board.overruns, board.invalid, board.frames_read), (1, 1, 3));
//! # Ok(())
//! # }
//! ```
//!
//! ## A consumer on another thread (or process)
//!
//! [`ring::RingReader::wait`] spins briefly, then sleeps on a futex in the segment until the
//! writer commits past the reader: an idle consumer uses no CPU. A second process would
//! attach to the same path exactly as this thread does. [`ring::RingReader::wait_any`] sleeps
//! on several rings at once (`futex_waitv`), so one thread can serve a camera and a lidar.
//!
//! ```
//! use std::time::Duration;
//!
//! use shared::frames::PayloadSink;
//! use shared::ring::{FrameMeta, ReadOutcome, RingReader, RingWriter};
//! use shared::segment::SegmentSpec;
//! use shared::{CalibEpoch, StreamKind, TimestampNs};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let run = tempfile::tempdir()?;
//! let path = run.path().join("lidar.seg");
//! let spec = SegmentSpec::new(StreamKind::Lidar, 64, 4096);
//! let (mut writer, _) = RingWriter::create_or_takeover(&path, &spec)?;
//! // Attach before the first commit so that no frame is missed.
//! let mut reader = RingReader::attach(&path, StreamKind::Lidar)?;
//!
//! let consumer = std::thread::spawn(move || {
//!     let mut buf = Vec::new();
//!     let mut sum = 0u64;
//!     for _ in 0..10 {
//!         loop {
//!             assert!(reader.wait(Duration::from_secs(10)), "no frame within 10 s");
//!             match reader.read_next(&mut buf) {
//!                 ReadOutcome::Frame(info) => {
//!                     sum += info.capture.0;
//!                     break;
//!                 }
//!                 ReadOutcome::Empty | ReadOutcome::Torn => continue,
//!                 other => panic!("64 slots cannot be lapped by 10 frames: {other:?}"),
//!             }
//!         }
//!     }
//!     sum
//! });
//!
//! for t in 1..=10 {
//!     let mut loan = writer.loan();
//!     // A loan is a `PayloadSink`: a renderer may also fill it out of order with `write_at`.
//!     loan.write_at(8, &[0xAB; 8])?;
//!     loan.write_at(0, &u64::to_le_bytes(t))?;
//!     loan.commit(FrameMeta { capture: TimestampNs(t), epoch: CalibEpoch(1) });
//! }
//! assert_eq!(consumer.join().expect("consumer panicked"), 55);
//! # Ok(())
//! # }
//! ```

pub mod bench_timer;
#[cfg(not(loom))]
pub mod checkpoint;
pub mod checksum;
pub mod cursor;
pub mod frames;
pub mod ids;
#[cfg(not(loom))]
pub mod input;
pub mod registry;
pub mod seqlock;
pub mod simd;
pub mod sync;
pub mod wait;

#[cfg(not(loom))]
pub mod clock;
#[cfg(not(loom))]
pub mod layout;
#[cfg(not(loom))]
pub mod mapping;
#[cfg(not(loom))]
pub mod ring;
#[cfg(not(loom))]
pub mod rundir;
#[cfg(not(loom))]
pub mod sandbox;
#[cfg(not(loom))]
pub mod scoreboard;
#[cfg(not(loom))]
pub mod segment;
#[cfg(not(loom))]
pub mod sigbus;

pub use ids::{CalibEpoch, FrameSeq, Incarnation, Role, StreamKind, TimestampNs};
