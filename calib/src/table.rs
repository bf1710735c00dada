//! The calibration table: every announced epoch, in shared memory, for late joiners.
//!
//! The table is a [`shared::ring`] segment of kind [`StreamKind::CalibTable`]
//! (`calib.seg` in the run directory): [`TABLE_SLOTS`] slots of [`TABLE_SLOT_CAPACITY`]
//! bytes. Each slot holds one calibration epoch encoded exactly as a `CalibUpdate` message
//! of [`crate::wire`] (header + 320-byte body); the slot's frame header carries the
//! calibration epoch as its `epoch` and `valid_from` as its capture time.
//!
//! **Copy-on-write.** The service never edits a published slot. To publish an epoch it fills
//! the next free slot (the ring's seqlock marks it busy meanwhile) and then publishes the
//! ring's write cursor with one Release store: that store is the swing of the "current"
//! index. A reader copies slots out through the seqlock, checks the ring's checksum, then
//! decodes and checks the calibration like a socket message, and checks that the decoded
//! epoch equals the slot's frame epoch. A reader therefore never sees a torn calibration:
//! a slot being rewritten reads as torn (retried) or overrun (skipped), never as data.
//!
//! The table keeps the newest [`TABLE_SLOTS`] publications; the service publishes each epoch
//! once when it announces it (a restarted service publishes its epochs again, and readers
//! deduplicate by epoch).

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use shared::frames::PayloadSink;
use shared::ring::{FrameMeta, ReadOutcome, RingReader, RingWriter, WriterStart};
use shared::segment::{AttachError, SegmentSpec};
use shared::{CalibEpoch, FrameSeq, StreamKind};

use crate::types::CalibrationSet;
use crate::wire;

/// Slots in the table: the most epochs it keeps.
pub const TABLE_SLOTS: u32 = 64;
/// Payload bytes per slot (an encoded update is at most [`wire::MAX_MESSAGE_LEN`] bytes).
pub const TABLE_SLOT_CAPACITY: u64 = 4096;
const _: () = assert!(wire::MAX_MESSAGE_LEN as u64 <= TABLE_SLOT_CAPACITY);

/// How often a read of one slot is retried while the writer is rewriting it.
const TORN_ATTEMPTS: usize = 64;

/// The segment geometry of the table.
#[must_use]
pub fn table_spec() -> SegmentSpec {
    SegmentSpec::new(StreamKind::CalibTable, TABLE_SLOTS, TABLE_SLOT_CAPACITY)
}

/// The table could not be created or attached.
#[derive(Debug)]
pub struct TableError {
    /// The segment path.
    pub path: PathBuf,
    /// Why.
    pub source: AttachError,
}

impl fmt::Display for TableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "calibration table {}: {}", self.path.display(), self.source)
    }
}

impl std::error::Error for TableError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// The service's side of the table: the sole writer.
#[derive(Debug)]
pub struct CalibTableWriter {
    ring: RingWriter,
    start: WriterStart,
}

impl CalibTableWriter {
    /// Creates the table at `path` (mode 0600), or takes it over from a service that died.
    ///
    /// # Errors
    /// [`TableError`], e.g. if a live service holds it.
    pub fn create(path: &Path) -> Result<Self, TableError> {
        let (ring, start) = RingWriter::create_or_takeover(path, &table_spec())
            .map_err(|source| TableError { path: path.to_path_buf(), source })?;
        Ok(Self { ring, start })
    }

    /// Whether it created the table or took one over.
    #[must_use]
    pub fn start(&self) -> WriterStart {
        self.start
    }

    /// Publishes one epoch: fills a free slot, then swings the cursor (Release) to it.
    /// The caller has checked the set. Returns the slot's frame seq.
    pub fn publish(&mut self, set: &CalibrationSet) -> FrameSeq {
        self.publish_encoded(set, &wire::encode_update(set))
    }

    /// [`publish`](Self::publish) with `set`'s update message as already encoded: an epoch
    /// relayed from another host is stored as its source encoded it, bit for bit (encoding
    /// a decoded set again need not give the same rotation bits).
    pub fn publish_encoded(&mut self, set: &CalibrationSet, bytes: &[u8]) -> FrameSeq {
        let mut loan = self.ring.loan();
        // A slot holds TABLE_SLOT_CAPACITY ≥ MAX_MESSAGE_LEN bytes (asserted above): cannot fail.
        let _ = loan.push(bytes);
        loan.commit(FrameMeta { capture: set.valid_from, epoch: set.epoch })
    }

    /// Records that the service is alive while it has nothing to publish.
    pub fn heartbeat(&self) {
        self.ring.heartbeat();
    }

    /// The segment path.
    #[must_use]
    pub fn path(&self) -> &Path {
        self.ring.path()
    }
}

/// A reader of the table (a late joiner, a restarted fusion, a monitor).
#[derive(Debug)]
pub struct CalibTableReader {
    ring: RingReader,
    buf: Vec<u8>,
    rejected: u64,
    /// The cursor at the last `read_changed` that read anything.
    seen: Option<FrameSeq>,
}

impl CalibTableReader {
    /// Attaches to the table at `path`, checking the segment before trusting it.
    ///
    /// # Errors
    /// [`TableError`] with the failed attach check.
    pub fn attach(path: &Path) -> Result<Self, TableError> {
        let ring = RingReader::attach(path, StreamKind::CalibTable)
            .map_err(|source| TableError { path: path.to_path_buf(), source })?;
        Ok(Self { ring, buf: Vec::with_capacity(TABLE_SLOT_CAPACITY as usize), rejected: 0, seen: None })
    }

    /// Every epoch the table holds, checked, ascending by epoch, one per epoch.
    pub fn read_all(&mut self) -> Vec<CalibrationSet> {
        // One snapshot of both ends: at most a table's worth of slots to walk.
        let (mut seq, cursor) = self.ring.held();
        let mut out: Vec<CalibrationSet> = Vec::new();
        while seq != cursor {
            if let Some(set) = self.read_slot(seq) {
                out.push(set);
            }
            seq = seq.next();
        }
        out.sort_by_key(|s| s.epoch);
        out.dedup_by_key(|s| s.epoch);
        out
    }

    /// Like [`CalibTableReader::read_all`], but empty (one atomic load, nothing decoded) when
    /// nothing was published since the last call: for callers that look every frame.
    pub fn read_changed(&mut self) -> Vec<CalibrationSet> {
        let cursor = self.ring.cursor();
        if self.seen == Some(cursor) {
            return Vec::new();
        }
        self.seen = Some(cursor);
        self.read_all()
    }

    /// The most recently published epoch (the "current" one), if the table holds any.
    pub fn current(&mut self) -> Option<CalibrationSet> {
        // One snapshot of both ends (see `read_all`).
        let (oldest, cursor) = self.ring.held();
        let mut seq = cursor;
        while seq != oldest {
            seq = FrameSeq(seq.0.wrapping_sub(1));
            if let Some(set) = self.read_slot(seq) {
                return Some(set);
            }
        }
        None
    }

    /// Reads one slot; `None` if it is being rewritten, was overwritten, or fails a check
    /// (counted in [`CalibTableReader::rejected`] when its contents are wrong).
    fn read_slot(&mut self, seq: FrameSeq) -> Option<CalibrationSet> {
        for _ in 0..TORN_ATTEMPTS {
            match self.ring.read_at(seq, &mut self.buf) {
                ReadOutcome::Frame(info) => {
                    return match wire::decode_update(&self.buf[..info.len.min(self.buf.len())]) {
                        Ok(set) if set.epoch == info.epoch => Some(set),
                        Ok(set) => {
                            tracing::warn!(slot_epoch = %info.epoch, epoch = %set.epoch, "calibration table slot disagrees with its frame epoch");
                            self.rejected += 1;
                            None
                        }
                        Err(e) => {
                            tracing::warn!("calibration table slot rejected: {e}");
                            self.rejected += 1;
                            None
                        }
                    };
                }
                ReadOutcome::Torn => std::thread::yield_now(),
                ReadOutcome::Invalid(_) => {
                    self.rejected += 1;
                    return None;
                }
                ReadOutcome::Empty | ReadOutcome::Overrun { .. } | ReadOutcome::Stale { .. } => return None,
            }
        }
        None
    }

    /// Slots whose contents failed a check.
    #[must_use]
    pub const fn rejected(&self) -> u64 {
        self.rejected
    }

    /// Waits until the service publishes another epoch after this call, or `timeout` passes
    /// (spin, then futex: no CPU while waiting). Returns whether one was published.
    pub fn wait(&mut self, timeout: Duration) -> bool {
        self.ring.seek(self.ring.cursor());
        self.ring.wait(timeout)
    }

    /// The latest epoch the table holds (`NONE` if empty).
    pub fn current_epoch(&mut self) -> CalibEpoch {
        self.current().map_or(CalibEpoch::NONE, |s| s.epoch)
    }
}

/// Every epoch the table at `path` holds, checked, ascending.
///
/// # Errors
/// [`TableError`] if it cannot be attached.
pub fn read_table(path: &Path) -> Result<Vec<CalibrationSet>, TableError> {
    Ok(CalibTableReader::attach(path)?.read_all())
}
