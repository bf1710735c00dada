//! Seqlocked frame rings: one writer, any number of readers, across processes.
//!
//! # Contract
//!
//! - **One writer per segment**, enforced with `flock` on `<segment>.lock`. The lock is the
//!   liveness signal: the kernel drops it when the writer dies, however it dies.
//! - **Writing never waits for readers.** [`RingWriter::loan`] takes the slot of the next
//!   frame, overwriting the oldest frame (or, with [`RingWriter::reuse_released`], the frame
//!   before once every reader is done with it; the slot map says which); the caller writes
//!   the payload straight into the slot through the [`Loan`] (a [`PayloadSink`]); [`Loan::commit`]
//!   writes the frame header, closes the seqlock and publishes the cursor.
//! - **Readers detect, never block the writer.** [`RingReader::read_next`] copies the next
//!   frame into the caller's buffer with the seqlock recipe of [`crate::seqlock`], then
//!   validates it (sequence, incarnation, bounds, checksum);
//!   [`RingReader::read_next_in_place`] instead runs the consumer's closure on the slot
//!   itself and validates afterwards (see [`InPlace`]: nothing a torn read computed escapes).
//!   Every outcome is counted in the segment's scoreboard:
//!   [`ReadOutcome::Frame`], [`ReadOutcome::Torn`] (a write was in progress: call again),
//!   [`ReadOutcome::Overrun`] (the writer lapped the reader; it skips to the oldest frame
//!   still held), [`ReadOutcome::Stale`] (the slot no longer holds the announced frame
//!   seq), [`ReadOutcome::Invalid`] (the slot's contents fail validation).
//! - **Takeover.** A writer that finds the segment existing and its lock free takes over:
//!   it bumps the incarnation, repairs slots left odd by a writer that died mid-write
//!   (marking them invalid), and continues the sequence from the published cursor.
//! - **Untrusted memory.** Readers trust nothing read from the segment after attach: the
//!   geometry is a private copy taken at attach; every length is checked against it.

use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use rustix::fs::{FlockOperation, Mode, OFlags};
use zerocopy::{FromBytes, IntoBytes};

use crate::clock::monotonic_ns;
use crate::frames::{PayloadSink, SinkFull};
use crate::layout::{self, FrameHeader, ReaderCounter, WriterCounter};
use crate::segment::{AttachError, Segment, SegmentSpec};
use crate::{cursor, seqlock, sync, wait, CalibEpoch, FrameSeq, Incarnation, StreamKind, TimestampNs};

mod backpressure;
mod board;
mod inplace;
mod inspect;
mod park;
mod place;
mod runs;
pub use backpressure::BackPressure;
pub use board::Scoreboard;
pub use inplace::{FrameRef, InPlace, SlotView, BLOCK_WORDS, CHUNK_WORDS};
pub use inspect::{inspect, slot_map, SlotState};

/// How many times [`RingReader::read_next`] retries a slot a write is in progress on before
/// returning [`ReadOutcome::Torn`].
const TORN_RETRIES: u32 = 8;

/// The lock file path that goes with a segment path.
#[must_use]
pub fn lock_path(segment: &Path) -> PathBuf {
    let mut p = segment.as_os_str().to_owned();
    p.push(".lock");
    PathBuf::from(p)
}

/// Opens (creating if needed) a lock file without following links, mode 0600.
fn open_lock(path: &Path) -> Result<File, AttachError> {
    let fd = rustix::fs::open(
        path,
        OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .map_err(|e| match e {
        rustix::io::Errno::LOOP => AttachError::SymbolicLink,
        e => AttachError::Io { op: "open lock file", source: e.into() },
    })?;
    Ok(File::from(fd))
}

/// Whether a live process holds the writer lock of `segment`.
#[must_use]
pub fn writer_alive(segment: &Path) -> bool {
    lock_held(&lock_path(segment))
}

/// Whether some live process holds an exclusive `flock` on `lock_file`. The kernel drops
/// such a lock when its holder dies, so this is a liveness test that cannot go stale.
#[must_use]
pub fn lock_held(lock_file: &Path) -> bool {
    let Ok(fd) =
        rustix::fs::open(lock_file, OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())
    else {
        return false;
    };
    match rustix::fs::flock(&fd, FlockOperation::NonBlockingLockShared) {
        Ok(()) => {
            let _ = rustix::fs::flock(&fd, FlockOperation::Unlock);
            false
        }
        Err(_) => true,
    }
}

/// Metadata the producer gives a frame at commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameMeta {
    /// Capture time.
    pub capture: TimestampNs,
    /// Calibration epoch the frame was captured under.
    pub epoch: CalibEpoch,
}

/// The sole writer of one segment.
#[derive(Debug)]
pub struct RingWriter {
    seg: Segment,
    _lock: File,
    next: FrameSeq,
    incarnation: Incarnation,
    path: PathBuf,
    /// What the current loan has written, with its folded checksums.
    runs: runs::Runs,
    /// The slot map, as this writer keeps it.
    place: place::Placement,
}

/// What a writer found when it started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriterStart {
    /// It created the segment.
    Created,
    /// It took over a segment whose writer had died.
    TookOver {
        /// The new incarnation.
        incarnation: Incarnation,
        /// Slots left mid-write by the dead writer, now marked invalid.
        repaired: u64,
    },
}

impl RingWriter {
    /// Creates the segment at `path`, or takes it over if it exists and its writer is dead.
    ///
    /// # Errors
    /// [`AttachError::WriterLocked`] if a live writer holds it; any attach check failure of
    /// an existing file; [`AttachError::GeometryMismatch`] if it exists with another
    /// geometry; I/O errors.
    pub fn create_or_takeover(path: &Path, spec: &SegmentSpec) -> Result<(Self, WriterStart), AttachError> {
        let lock = open_lock(&lock_path(path))?;
        rustix::fs::flock(&lock, FlockOperation::NonBlockingLockExclusive).map_err(|e| match e {
            rustix::io::Errno::WOULDBLOCK => AttachError::WriterLocked,
            e => AttachError::Io { op: "lock", source: e.into() },
        })?;
        match Segment::create(path, spec) {
            Ok(seg) => {
                let place = place::Placement::identity(&seg);
                let w = Self::start(seg, lock, path, Incarnation(1), spec.base_seq, place);
                Ok((w, WriterStart::Created))
            }
            Err(AttachError::Io { source, .. }) if source.kind() == std::io::ErrorKind::AlreadyExists => {
                let seg = match Segment::attach(path, Some(spec.kind)) {
                    // Its creator died before finishing the header: we hold the lock, so
                    // nobody else can be writing it; start afresh.
                    Err(AttachError::NotInitialized) => {
                        std::fs::remove_file(path)
                            .map_err(|e| AttachError::Io { op: "remove", source: e })?;
                        let seg = Segment::create(path, spec)?;
                        let place = place::Placement::identity(&seg);
                        return Ok((
                            Self::start(seg, lock, path, Incarnation(1), spec.base_seq, place),
                            WriterStart::Created,
                        ));
                    }
                    other => other?,
                };
                for (field, found, wanted) in [
                    ("slot_count", seg.header.slot_count, u64::from(spec.slot_count)),
                    ("slot_capacity", seg.header.slot_capacity, spec.slot_capacity),
                ] {
                    if found != wanted {
                        return Err(AttachError::GeometryMismatch { field, found, wanted });
                    }
                }
                let inc =
                    seg.map.word(layout::OFF_INCARNATION).fetch_add(1, Ordering::Relaxed).wrapping_add(1);
                let mut repaired = 0;
                for index in 0..seg.slot_count() {
                    let off = seg.slot_offset(index);
                    let seq_word = seg.map.word(off + layout::SLOT_OFF_SEQ);
                    if seq_word.load(Ordering::Relaxed) & 1 == 1 {
                        // Mark the half-written frame invalid inside a write, then settle
                        // the word: readers see incarnation 0 and refuse the slot.
                        seg.map.store_words(
                            off + layout::SLOT_OFF_FRAME_HEADER,
                            FrameHeader::default().as_bytes_words(),
                        );
                        seqlock::repair(seq_word);
                        repaired += 1;
                    }
                }
                seg.map
                    .word(layout::writer_counter_offset(WriterCounter::SlotsRepaired))
                    .fetch_add(repaired, Ordering::Relaxed);
                // Relaxed: we hold the writer lock the dead writer held, and the kernel's lock
                // handoff orders its last publish before our lock; nothing it wrote is read
                // on the strength of this load (its slots are re-validated by the seqlock).
                let next = FrameSeq(seg.map.word(layout::OFF_WRITE_CURSOR).load(Ordering::Relaxed));
                // After the repair: a slot left mid-write holds no frame now.
                let place = place::Placement::rebuild(&seg);
                let w = Self::start(seg, lock, path, Incarnation(inc), next, place);
                Ok((w, WriterStart::TookOver { incarnation: Incarnation(inc), repaired }))
            }
            Err(e) => Err(e),
        }
    }

    fn start(
        seg: Segment,
        lock: File,
        path: &Path,
        incarnation: Incarnation,
        next: FrameSeq,
        place: place::Placement,
    ) -> Self {
        seg.map.word(layout::OFF_WRITER_PID).store(u64::from(std::process::id()), Ordering::Relaxed);
        seg.map.word(layout::OFF_HEARTBEAT_NS).store(monotonic_ns(), Ordering::Relaxed);
        let runs = runs::Runs::default();
        Self { seg, _lock: lock, next, incarnation, path: path.to_owned(), runs, place }
    }

    /// Puts each next frame into the slot of the frame before it, instead of the oldest
    /// frame's, whenever the counters of `readers` readers say each of them is done with
    /// every frame committed (read, let go or lost): that slot is still in cache, as the
    /// sample a subscriber releases is for an iceoryx2 publisher. `None` (the default)
    /// turns it off. Only for a writer that knows its readers: an uncounted reader loses
    /// frame `seq - 1` early (counted as `Stale` or `Overrun`, never read wrong), and too
    /// high a count only turns the reuse off. Rings of more than
    /// [`layout::SLOT_MAP_MAX`] slots never reuse.
    pub fn reuse_released(&mut self, readers: Option<u64>) {
        self.place.set_readers(readers);
    }

    /// Takes the slot of the next frame for writing. The frame is published only by
    /// [`Loan::commit`]; dropping the loan abandons it (the slot is marked invalid).
    pub fn loan(&mut self) -> Loan<'_> {
        let place = self.place.place(&self.seg, self.next, self.frames_committed());
        let off = self.seg.slot_offset(place.index);
        let s = seqlock::write_begin(self.seg.map.word(off + layout::SLOT_OFF_SEQ));
        let capacity = self.seg.slot_capacity() as usize;
        self.runs.clear();
        Loan {
            writer: self,
            slot: off,
            seq_word: s,
            len: 0,
            capacity,
            done: false,
            reused: place.reused,
            announced: false,
        }
    }

    /// The sequence number the next committed frame will get.
    #[must_use]
    pub fn next_seq(&self) -> FrameSeq {
        self.next
    }

    /// This writer's incarnation.
    #[must_use]
    pub fn incarnation(&self) -> Incarnation {
        self.incarnation
    }

    /// Payload bytes a slot holds.
    #[must_use]
    pub fn slot_capacity(&self) -> usize {
        self.seg.slot_capacity() as usize
    }

    /// The segment's path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records that the writer is alive while it has nothing to commit.
    pub fn heartbeat(&self) {
        self.seg.map.word(layout::OFF_HEARTBEAT_NS).store(monotonic_ns(), Ordering::Relaxed);
    }

    /// Sets kind-specific scoreboard word `i` (e.g. fusion's counters in the fused ring).
    pub fn set_aux(&self, i: usize, value: u64) {
        if i < layout::AUX_WORDS {
            self.seg.map.word(layout::aux_offset(i)).store(value, Ordering::Relaxed);
        }
    }

    /// The segment's scoreboard (the readers' counters included).
    #[must_use]
    pub fn scoreboard(&self) -> Scoreboard {
        Scoreboard::load(&self.seg)
    }

    /// Kind-specific scoreboard word `i` as it stands (a restarted writer continues its
    /// predecessor's counts).
    #[must_use]
    pub fn aux(&self, i: usize) -> u64 {
        if i < layout::AUX_WORDS {
            self.seg.map.word(layout::aux_offset(i)).load(Ordering::Relaxed)
        } else {
            0
        }
    }

    /// Whether the segment file was truncated under us; frames committed since are lost.
    #[must_use]
    pub fn truncated(&self) -> bool {
        self.seg.map.truncated()
    }
}

/// The slot of one frame being written in place. Implements [`PayloadSink`]: producers
/// append the payload with `push` or fill it with `write_at`, then [`commit`](Loan::commit).
#[derive(Debug)]
pub struct Loan<'w> {
    writer: &'w mut RingWriter,
    slot: usize,
    seq_word: u64,
    len: usize,
    capacity: usize,
    done: bool,
    /// The slot is the previous frame's, still in the caches: streamed into only when huge.
    reused: bool,
    /// Parked readers were woken ahead of this frame by a long `push` (`wait::announce`):
    /// once per frame.
    announced: bool,
}

impl Loan<'_> {
    /// Payload bytes the slot holds.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The sequence number this frame will get.
    #[must_use]
    pub fn seq(&self) -> FrameSeq {
        self.writer.next
    }

    /// Publishes the frame: writes its header, closes the seqlock, advances the cursor and
    /// wakes waiting readers. Returns the frame's sequence number.
    pub fn commit(mut self, meta: FrameMeta) -> FrameSeq {
        let map = &self.writer.seg.map;
        let payload = self.slot + layout::SLOT_OFF_PAYLOAD;
        let seq = self.writer.next;
        // Every word was folded while it was copied in, but those a write covered only in
        // part or a later write touched again: those are read back here.
        let payload_sum = self.writer.runs.finish(map, payload, self.len);
        let now = monotonic_ns();
        let mut header = FrameHeader {
            frame_seq: seq.0,
            capture_ns: meta.capture.0,
            epoch: meta.epoch.0,
            payload_len: self.len as u64,
            incarnation: self.writer.incarnation.0,
            checksum: 0,
            publish_ns: now,
        };
        header.checksum = header.seal(payload_sum);
        map.store_words(self.slot + layout::SLOT_OFF_FRAME_HEADER, header.as_bytes_words());
        seqlock::write_end(map.word(self.slot + layout::SLOT_OFF_SEQ), self.seq_word);
        let next = seq.next();
        self.writer.next = next;
        map.word(layout::writer_counter_offset(WriterCounter::FramesWritten)).fetch_add(1, Ordering::Relaxed);
        map.word(layout::writer_counter_offset(WriterCounter::BytesWritten))
            .fetch_add(self.len as u64, Ordering::Relaxed);
        map.word(layout::OFF_HEARTBEAT_NS).store(now, Ordering::Relaxed);
        wait::publish(
            map.word(layout::OFF_WRITE_CURSOR),
            map.word32(layout::OFF_NOTIFY),
            map.word(layout::OFF_WAITERS),
            next.0,
        );
        self.done = true;
        seq
    }
}

impl PayloadSink for Loan<'_> {
    fn push(&mut self, bytes: &[u8]) -> Result<(), SinkFull> {
        // A long append is a copy whose commit is in sight: parked readers wake during it, not
        // after the commit. (A writer that fills its slot in place with `write_at`, as the
        // simulated camera renders, may take its time, so that is not announced.)
        if bytes.len() >= wait::ANNOUNCE_MIN && !self.announced && self.len + bytes.len() <= self.capacity {
            self.announced = true;
            let m = &self.writer.seg.map;
            wait::announce(m.word32(layout::OFF_NOTIFY), m.word(layout::OFF_WAITERS));
        }
        self.write_at(self.len, bytes)
    }

    fn write_at(&mut self, offset: usize, bytes: &[u8]) -> Result<(), SinkFull> {
        let end = offset.checked_add(bytes.len()).filter(|e| *e <= self.capacity);
        let Some(end) = end else {
            return Err(SinkFull { needed: offset.saturating_add(bytes.len()), capacity: self.capacity });
        };
        // One pass, in or out of order: the checksum is folded while the bytes are copied in.
        let w = &mut *self.writer;
        w.runs.write(&w.seg.map, self.slot + layout::SLOT_OFF_PAYLOAD, offset, bytes, self.reused);
        self.len = self.len.max(end);
        Ok(())
    }

    fn len(&self) -> usize {
        self.len
    }
}

impl Drop for Loan<'_> {
    fn drop(&mut self) {
        if !self.done {
            // Abandoned: mark the slot as holding no frame, and close the seqlock.
            let map = &self.writer.seg.map;
            map.store_words(
                self.slot + layout::SLOT_OFF_FRAME_HEADER,
                FrameHeader::default().as_bytes_words(),
            );
            seqlock::write_end(map.word(self.slot + layout::SLOT_OFF_SEQ), self.seq_word);
            map.word(layout::writer_counter_offset(WriterCounter::LoansAborted))
                .fetch_add(1, Ordering::Relaxed);
        }
    }
}

trait AsWords {
    fn as_bytes_words(&self) -> &[u64];
}

impl AsWords for FrameHeader {
    fn as_bytes_words(&self) -> &[u64] {
        // FrameHeader is seven u64 fields, repr(C): it is exactly a [u64; 7].
        <[u64]>::ref_from_bytes(self.as_bytes()).unwrap_or(&[])
    }
}

/// A frame that was read and validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameInfo {
    /// Its sequence number.
    pub seq: FrameSeq,
    /// Capture time.
    pub capture: TimestampNs,
    /// Calibration epoch it was captured under.
    pub epoch: CalibEpoch,
    /// The writer incarnation that produced it.
    pub incarnation: Incarnation,
    /// Payload bytes (now in the caller's buffer).
    pub len: usize,
    /// When the writer committed it (its CLOCK_MONOTONIC, the pipeline's clock).
    pub published: TimestampNs,
}

/// Why a slot's contents were refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvalidFrame {
    /// The payload length exceeds the slot capacity.
    LengthOutOfBounds {
        /// The length claimed.
        len: u64,
    },
    /// An incarnation newer than the segment's (0, a slot holding no frame, is `Stale`).
    BadIncarnation {
        /// The incarnation claimed.
        incarnation: u64,
    },
    /// The payload does not match its checksum.
    ChecksumMismatch,
    /// The segment file was truncated under the reader; give it up.
    SegmentTruncated,
}

impl fmt::Display for InvalidFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LengthOutOfBounds { len } => write!(f, "payload length {len} exceeds the slot"),
            Self::BadIncarnation { incarnation } => write!(f, "bad incarnation {incarnation}"),
            Self::ChecksumMismatch => write!(f, "checksum mismatch"),
            Self::SegmentTruncated => write!(f, "segment truncated under the reader"),
        }
    }
}

/// The outcome of one read attempt. Every outcome but `Empty` is counted in the scoreboard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    /// A validated frame is in the buffer.
    Frame(FrameInfo),
    /// No new frame yet.
    Empty,
    /// A write was in progress on the slot through every retry; call again.
    Torn,
    /// The writer lapped the reader; `lost` frames were skipped.
    Overrun {
        /// Frames lost.
        lost: u64,
    },
    /// The slot no longer holds the announced frame seq; the reader moved past it.
    Stale {
        /// The frame seq the reader expected.
        expected: FrameSeq,
        /// The frame seq the slot held.
        found: FrameSeq,
    },
    /// The slot's contents failed validation; the reader moved past it.
    Invalid(InvalidFrame),
}

/// A reader of one segment. Cheap: many may read the same segment.
#[derive(Debug)]
pub struct RingReader {
    seg: Segment,
    next: FrameSeq,
    path: PathBuf,
}

impl RingReader {
    /// Attaches to the segment at `path`, which must carry `kind`. The reader starts at the
    /// write cursor: it reads frames committed from now on (see [`RingReader::seek_oldest`]).
    ///
    /// # Errors
    /// The first failed attach check ([`AttachError`]).
    pub fn attach(path: &Path, kind: StreamKind) -> Result<Self, AttachError> {
        let seg = Segment::attach(path, Some(kind))?;
        // Acquire (in `observe`): partners with the writer's Release fence before its cursor
        // store (see `wait::publish_with`).
        let next = FrameSeq(sync::observe(seg.map.word(layout::OFF_WRITE_CURSOR)));
        Ok(Self { seg, next, path: path.to_owned() })
    }

    /// The segment's path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The published write cursor: the seq the next committed frame will get.
    #[must_use]
    pub fn cursor(&self) -> FrameSeq {
        // Acquire (in `observe`): partners with the writer's Release fence before its cursor
        // store (see `wait::publish_with`); a reader that sees `c` finds frame `c - 1` in its
        // slot, being written or written (or a later one), never an older one.
        FrameSeq(sync::observe(self.seg.map.word(layout::OFF_WRITE_CURSOR)))
    }

    /// The oldest frame the ring may still hold.
    #[must_use]
    pub fn oldest(&self) -> FrameSeq {
        self.held().0
    }

    /// The frames the ring may still hold, `(oldest, cursor)`, from one load of the cursor:
    /// `oldest` is at most the slot count behind `cursor`, never past it. Walk from one to the
    /// other with this, not with [`oldest`](Self::oldest) and [`cursor`](Self::cursor)
    /// called one after the other: the writer can commit more than a ring's worth between
    /// the two loads, and then that `oldest` lies past that `cursor`, and a walk from one
    /// to the other never meets its end.
    #[must_use]
    pub fn held(&self) -> (FrameSeq, FrameSeq) {
        let cursor = self.cursor();
        let base = FrameSeq(self.seg.header.base_seq);
        let written = cursor.distance_from(base);
        let oldest = if written < self.seg.slot_count() {
            base
        } else {
            FrameSeq(cursor.0.wrapping_sub(self.seg.slot_count()))
        };
        (oldest, cursor)
    }

    /// The seq the next [`read_next`](Self::read_next) reads.
    #[must_use]
    pub fn next_seq(&self) -> FrameSeq {
        self.next
    }

    /// Moves to the oldest frame still held, to read everything retained.
    pub fn seek_oldest(&mut self) {
        self.next = self.oldest();
    }

    /// Moves to `seq`.
    pub fn seek(&mut self, seq: FrameSeq) {
        self.next = seq;
    }

    /// Frames committed but not yet read by this reader (its lag).
    #[must_use]
    pub fn lag(&self) -> u64 {
        self.cursor().distance_from(self.next)
    }

    /// The segment's scoreboard.
    #[must_use]
    pub fn scoreboard(&self) -> Scoreboard {
        Scoreboard::load(&self.seg)
    }

    /// Payload bytes a slot holds.
    #[must_use]
    pub fn slot_capacity(&self) -> usize {
        self.seg.slot_capacity() as usize
    }

    /// Whether the segment file was truncated under us (every later read is `Invalid`).
    #[must_use]
    pub fn truncated(&self) -> bool {
        self.seg.map.truncated()
    }

    /// Whether a live process holds the writer lock.
    #[must_use]
    pub fn writer_alive(&self) -> bool {
        writer_alive(&self.path)
    }

    fn count(&self, c: ReaderCounter, n: u64) {
        self.seg.map.word(layout::reader_counter_offset(c)).fetch_add(n, Ordering::Relaxed);
    }

    /// Reads the next frame into `buf` (resized to the payload; its capacity is reused).
    /// Never blocks; see [`wait`](Self::wait).
    pub fn read_next(&mut self, buf: &mut Vec<u8>) -> ReadOutcome {
        if let Some(early) = self.before_next() {
            return early;
        }
        let outcome = self.read_seq(self.next, buf);
        self.after_next(outcome)
    }

    /// `Empty` or a counted `Overrun` (moving the reader) when the next frame cannot be read.
    fn before_next(&mut self) -> Option<ReadOutcome> {
        let cursor = self.cursor();
        if cursor == self.next {
            return Some(ReadOutcome::Empty);
        }
        let (at, lost) = cursor::lapped(cursor, self.next, self.seg.slot_count())?;
        self.next = at;
        self.count(ReaderCounter::Overruns, 1);
        self.count(ReaderCounter::OverrunFramesLost, lost);
        Some(ReadOutcome::Overrun { lost })
    }

    /// Moves the reader past the frame `outcome` was read for, as that outcome requires.
    fn after_next(&mut self, outcome: ReadOutcome) -> ReadOutcome {
        match outcome {
            ReadOutcome::Frame(_) | ReadOutcome::Stale { .. } | ReadOutcome::Invalid(_) => {
                self.next = self.next.next();
            }
            ReadOutcome::Overrun { .. } => {
                // The slot was reused while we looked: resume behind the writer, not on the
                // next slot it is about to take (see `crate::cursor`).
                let at = cursor::resume_at(self.cursor(), self.seg.slot_count());
                let skip = at.distance_from(self.next);
                if skip > 1 && skip < u64::MAX / 2 {
                    self.count(ReaderCounter::OverrunFramesLost, skip - 1);
                    self.next = at;
                    return ReadOutcome::Overrun { lost: skip };
                }
                self.next = self.next.next();
            }
            ReadOutcome::Empty | ReadOutcome::Torn => {}
        }
        outcome
    }

    /// Reads frame `seq` into `buf` without moving the reader (random access, as the
    /// calibration table needs). Counts its outcome like `read_next`.
    pub fn read_at(&self, seq: FrameSeq, buf: &mut Vec<u8>) -> ReadOutcome {
        match self.before_at(seq) {
            Some(early) => early,
            None => self.read_seq(seq, buf),
        }
    }

    /// `Empty` or a counted `Overrun` when frame `seq` is not (or no longer) in the ring.
    fn before_at(&self, seq: FrameSeq) -> Option<ReadOutcome> {
        let ahead = self.cursor().distance_from(seq);
        if ahead == 0 || ahead > u64::MAX / 2 {
            return Some(ReadOutcome::Empty);
        }
        if ahead > self.seg.slot_count() {
            self.count(ReaderCounter::Overruns, 1);
            return Some(ReadOutcome::Overrun { lost: ahead - self.seg.slot_count() });
        }
        None
    }

    fn read_seq(&self, seq: FrameSeq, buf: &mut Vec<u8>) -> ReadOutcome {
        let m = &self.seg.map;
        let off = self.seg.slot_offset_for(seq);
        let seq_word = m.word(off + layout::SLOT_OFF_SEQ);
        let capacity = self.seg.slot_capacity();
        for _ in 0..TORN_RETRIES {
            if m.truncated() {
                return self.invalid(InvalidFrame::SegmentTruncated);
            }
            let Some(s1) = seqlock::read_begin(seq_word) else {
                self.count(ReaderCounter::TornRetries, 1);
                std::hint::spin_loop();
                continue;
            };
            let words = m.load_words::<{ layout::FRAME_HEADER_WORDS }>(off + layout::SLOT_OFF_FRAME_HEADER);
            let Ok(header) = FrameHeader::read_from_bytes(words.as_bytes()) else {
                return self.invalid(InvalidFrame::LengthOutOfBounds { len: 0 });
            };
            let len_ok = header.payload_len <= capacity;
            // Copy only what the slot can hold; a bad length is refused after the check
            // below tells us whether we saw a consistent header. A slot holding another frame
            // is copied too, so that its checksum tells a lapped slot from a scribbled seq.
            let sum = if len_ok && header.incarnation != 0 {
                m.copy_out(off + layout::SLOT_OFF_PAYLOAD, header.payload_len as usize, buf)
            } else {
                0
            };
            if !seqlock::read_end(seq_word, s1) {
                self.count(ReaderCounter::TornRetries, 1);
                std::hint::spin_loop();
                continue;
            }
            return self.judge(seq, &header, sum);
        }
        ReadOutcome::Torn
    }

    /// Judges a frame header and payload checksum that were read consistently (inside one
    /// seqlock read) as frame `seq`, and counts the outcome.
    fn judge(&self, seq: FrameSeq, header: &FrameHeader, sum: u64) -> ReadOutcome {
        let m = &self.seg.map;
        let capacity = self.seg.slot_capacity();
        let len_ok = header.payload_len <= capacity;
        if m.truncated() {
            return self.invalid(InvalidFrame::SegmentTruncated);
        }
        if header.incarnation == 0 {
            // Marked as holding no frame (abandoned loan, repaired slot, never written: a
            // slot the map names for a frame whose own slot was reused, say, whose zeroed
            // header claims frame 0).
            self.count(ReaderCounter::Stale, 1);
            return ReadOutcome::Stale { expected: seq, found: FrameSeq(header.frame_seq) };
        }
        if !len_ok {
            return self.invalid(InvalidFrame::LengthOutOfBounds { len: header.payload_len });
        }
        let current = m.word(layout::OFF_INCARNATION).load(Ordering::Relaxed);
        if header.incarnation > current {
            return self.invalid(InvalidFrame::BadIncarnation { incarnation: header.incarnation });
        }
        // The checksum covers every header word: a scribbled seq, capture time, epoch,
        // length or incarnation is refused here like a scribbled payload byte.
        if header.seal(sum) != header.checksum {
            return self.invalid(InvalidFrame::ChecksumMismatch);
        }
        if header.frame_seq != seq.0 {
            let found = FrameSeq(header.frame_seq);
            let newer = found.distance_from(seq);
            if newer > 0 && newer < u64::MAX / 2 {
                // The writer reused the slot for a later frame: we were lapped.
                self.count(ReaderCounter::Overruns, 1);
                self.count(ReaderCounter::OverrunFramesLost, 1);
                return ReadOutcome::Overrun { lost: 1 };
            }
            self.count(ReaderCounter::Stale, 1);
            return ReadOutcome::Stale { expected: seq, found };
        }
        self.count(ReaderCounter::FramesRead, 1);
        ReadOutcome::Frame(FrameInfo {
            seq,
            capture: TimestampNs(header.capture_ns),
            epoch: CalibEpoch(header.epoch),
            incarnation: Incarnation(header.incarnation),
            len: header.payload_len as usize,
            published: TimestampNs(header.publish_ns),
        })
    }

    fn invalid(&self, why: InvalidFrame) -> ReadOutcome {
        self.count(ReaderCounter::Invalid, 1);
        ReadOutcome::Invalid(why)
    }
}
