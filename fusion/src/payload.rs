//! A frame's payload as the engine holds it: copied bytes, or a versioned reference into its
//! ring ("frame #17 at slot X") that is read in place only when the frame is used, and
//! verified then (seqlock, header and checksum; see `shared::ring::inplace`).
//!
//! A reference that fails at use (the slot was overwritten, torn or forged meanwhile) yields
//! a [`UseError`]; what was computed from the slot is dropped, never used.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use shared::frames::{camera_image, PointRecord, POINT_RECORD_SIZE};
use shared::ring::{FrameInfo, FrameRef, InPlace, ReadOutcome, RingReader, SlotView};
use shared::{CalibEpoch, TimestampNs};
use zerocopy::{FromBytes, IntoBytes};

use crate::project::points_from_payload;
use crate::sample::{PixelSamples, Streamed};

/// Why a payload could not be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UseError {
    /// The slot no longer held the frame (overwritten or being rewritten): it was overrun
    /// before use.
    Overrun,
    /// The frame failed validation (checksum, header) or its payload is malformed.
    Invalid,
}

/// A frame in its ring, held by reference, with the header fields it was paired on.
#[derive(Clone)]
pub struct RingFrame {
    ring: Arc<RingReader>,
    frame: FrameRef,
    capture: TimestampNs,
    epoch: CalibEpoch,
}

impl RingFrame {
    /// Frame `frame` of `ring` as its header announced it (`RingReader::peek_next`). At use
    /// the validated header must still say the same capture time and epoch.
    #[must_use]
    pub fn new(ring: Arc<RingReader>, frame: FrameRef, info: &FrameInfo) -> Self {
        Self { ring, frame, capture: info.capture, epoch: info.epoch }
    }

    /// Whether a validated read saw the frame this reference was paired on (a header
    /// rewritten after it was peeked, even under a valid checksum, is not that frame).
    fn same(&self, info: &FrameInfo) -> bool {
        info.capture == self.capture && info.epoch == self.epoch
    }

    /// The reference.
    #[must_use]
    pub fn frame(&self) -> FrameRef {
        self.frame
    }
}

impl fmt::Debug for RingFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RingFrame").field("frame", &self.frame).finish_non_exhaustive()
    }
}

impl PartialEq for RingFrame {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.ring, &other.ring) && self.frame == other.frame
    }
}

impl Eq for RingFrame {}

/// A frame's payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload {
    /// Bytes owned by the engine (camera: `ImageHeader | rgb | labels`; lidar:
    /// `PointRecord[n]`).
    Owned(Vec<u8>),
    /// A reference into the ring, read in place at use.
    Ring(RingFrame),
    /// A reference that already failed (when it was to be copied out).
    Lost(UseError),
}

impl From<Vec<u8>> for Payload {
    fn from(v: Vec<u8>) -> Self {
        Self::Owned(v)
    }
}

/// What a read that did not deliver the frame means for its use.
fn use_error(o: ReadOutcome) -> UseError {
    match o {
        ReadOutcome::Invalid(_) => UseError::Invalid,
        // Overrun, stale, torn (a write holds the slot: it is being reused).
        _ => UseError::Overrun,
    }
}

impl Payload {
    /// Whether it refers into a ring.
    #[must_use]
    pub const fn is_ref(&self) -> bool {
        matches!(self, Self::Ring(_))
    }

    /// The lidar sweep's points: borrowed from owned bytes, or decoded from the slot into
    /// `scratch` in one pass with the checksum folded in.
    ///
    /// # Errors
    /// [`UseError`] if the frame is gone or malformed.
    pub fn points<'a>(&'a self, scratch: &'a mut PointScratch) -> Result<&'a [PointRecord], UseError> {
        match self {
            Self::Owned(bytes) => {
                points_from_payload(bytes, &mut scratch.records).map_err(|_| UseError::Invalid)
            }
            Self::Lost(e) => Err(*e),
            Self::Ring(r) => {
                // Words straight from the slot into the buffer, checksum folded into the same
                // loads (one copy); then viewed as records (u64 alignment covers theirs).
                let words = std::mem::take(&mut scratch.words);
                match r.ring.read_at_words(r.frame.seq(), words) {
                    InPlace::Frame(info, out) if info.len % POINT_RECORD_SIZE == 0 && r.same(&info) => {
                        scratch.words = out;
                        let bytes = &scratch.words.as_bytes()[..info.len];
                        <[PointRecord]>::ref_from_bytes(bytes).map_err(|_| UseError::Invalid)
                    }
                    InPlace::Frame(..) => Err(UseError::Invalid),
                    InPlace::Rejected(o) => Err(use_error(o)),
                }
            }
        }
    }

    /// The camera pixels under the points `(u, v)` (see [`PixelSamples`]): from owned bytes,
    /// or from the slot during the one pass that verifies it (the checksum's); the
    /// samples come back only if the frame was still there, untorn, when the pass was done
    /// (a failed read drops them).
    ///
    /// # Errors
    /// [`UseError`] if the frame is gone or malformed.
    pub fn samples(&self, u: &[f64], v: &[f64], mut samples: PixelSamples) -> Result<PixelSamples, UseError> {
        match self {
            Self::Owned(bytes) => {
                let img = camera_image(bytes).map_err(|_| UseError::Invalid)?;
                samples.fill_owned(&img, u, v);
                Ok(samples)
            }
            Self::Lost(e) => Err(*e),
            Self::Ring(r) => {
                let state = Streamed::new(samples, u, v);
                let take = |st: &mut Streamed<'_>, view: &SlotView<'_>, words: Range<usize>| {
                    st.take(words.end, |i| view.load_word(i).unwrap_or(0));
                };
                match r.ring.read_at_blocks(r.frame.seq(), state, take) {
                    InPlace::Frame(info, st) if r.same(&info) => st.finish(info.len).ok_or(UseError::Invalid),
                    InPlace::Frame(..) => Err(UseError::Invalid),
                    InPlace::Rejected(o) => Err(use_error(o)),
                }
            }
        }
    }

    /// The payload bytes, copied (validated) into `buf` for a consumer that keeps the frame
    /// (an overlay); owned bytes are moved.
    ///
    /// # Errors
    /// [`UseError`] if the frame is gone or malformed.
    pub fn into_bytes(self, mut buf: Vec<u8>) -> Result<Vec<u8>, UseError> {
        match self {
            Self::Owned(bytes) => Ok(bytes),
            Self::Lost(e) => Err(e),
            Self::Ring(r) => match r.ring.read_at(r.frame.seq(), &mut buf) {
                ReadOutcome::Frame(info) if r.same(&info) => Ok(buf),
                ReadOutcome::Frame(_) => Err(UseError::Invalid),
                o => Err(use_error(o)),
            },
        }
    }

    /// A reference becomes owned bytes (copied and validated into `buf`), so that its slot
    /// may be reused; a failed copy leaves [`Payload::Lost`].
    pub fn copy_out(&mut self, buf: Vec<u8>) {
        if self.is_ref() {
            let me = std::mem::replace(self, Self::Lost(UseError::Overrun));
            *self = me.into_bytes(buf).map_or_else(Self::Lost, Self::Owned);
        }
    }

    /// The frame leaves unused: a reference is accounted for in its ring (see
    /// `RingReader::let_go`); owned bytes are handed back for reuse.
    #[must_use]
    pub fn let_go(self) -> Option<Vec<u8>> {
        match self {
            Self::Owned(bytes) => Some(bytes),
            Self::Ring(r) => {
                r.ring.let_go(r.frame);
                None
            }
            Self::Lost(_) => None,
        }
    }

    /// The frame leaves after it was used: a reference was accounted for by the read that
    /// used it (counting it again would let a producer at full speed lap a held frame);
    /// owned bytes are handed back for reuse.
    #[must_use]
    pub fn used(self) -> Option<Vec<u8>> {
        match self {
            Self::Owned(bytes) => Some(bytes),
            Self::Ring(_) | Self::Lost(_) => None,
        }
    }
}

/// Buffers for a sweep's points: decoded from owned bytes that are not aligned, or the
/// words read from a slot.
#[derive(Debug, Default)]
pub struct PointScratch {
    records: Vec<PointRecord>,
    words: Vec<u64>,
}
