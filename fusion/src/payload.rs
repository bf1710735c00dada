//! A frame's payload as the engine holds it: copied bytes, or a versioned reference into its
//! ring ("frame #17 at slot X") that is read in place only when the frame is used, and
//! verified then (seqlock, header and checksum; see `shared::ring::inplace`).
//!
//! A reference that fails at use (the slot was overwritten, torn or forged meanwhile) yields
//! a [`UseError`]; what was computed from the slot is dropped, never used.

use std::fmt;
use std::sync::Arc;

use shared::frames::{
    camera_image, check_image_header, ImageHeader, ImageView, PointRecord, IMAGE_HEADER_SIZE,
    POINT_RECORD_SIZE,
};
use shared::ring::{FrameInfo, FrameRef, InPlace, ReadOutcome, RingReader, SlotView};
use shared::{CalibEpoch, TimestampNs};
use zerocopy::{FromBytes, IntoBytes};

use crate::project::points_from_payload;

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

/// The result of an in-place read of `r`, as a use of the payload.
fn used<T>(r: &RingFrame, read: InPlace<Option<T>>) -> Result<T, UseError> {
    match read {
        InPlace::Frame(info, Some(t)) if r.same(&info) => Ok(t),
        InPlace::Frame(..) => Err(UseError::Invalid),
        InPlace::Rejected(o) => Err(use_error(o)),
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
                // Words in a chunk at a time, checksum folded into the same loads; then viewed as records
                // (u64 alignment covers theirs).
                let mut words = std::mem::take(&mut scratch.words);
                words.clear();
                let read = r.ring.read_at_chunks(r.frame.seq(), words, |out, _, w| out.extend_from_slice(w));
                match read {
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

    /// Runs `f` on the camera image (owned, or straight from the slot); `f`'s result only if
    /// the frame was still there, untorn, when `f` was done.
    ///
    /// # Errors
    /// [`UseError`] if the frame is gone or malformed.
    pub fn with_image<R>(&self, f: impl FnOnce(&dyn Pixels) -> R) -> Result<R, UseError> {
        match self {
            Self::Owned(bytes) => camera_image(bytes).map(|img| f(&img)).map_err(|_| UseError::Invalid),
            Self::Lost(e) => Err(*e),
            Self::Ring(r) => used(
                r,
                r.ring.read_ref_in_place(r.frame, |view| {
                    let img = SlotImage::new(view)?;
                    Some(f(&img))
                }),
            ),
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

/// Pixel access to a camera image, wherever its bytes are.
pub trait Pixels {
    /// Width and height.
    fn size(&self) -> (usize, usize);
    /// Whether it has a label plane.
    fn has_labels(&self) -> bool;
    /// The colour of pixel `px` (row-major index); black outside.
    fn rgb(&self, px: usize) -> [u8; 3];
    /// The label of pixel `px`; 0 without labels or outside.
    fn label(&self, px: usize) -> u16;
}

impl Pixels for ImageView<'_> {
    fn size(&self) -> (usize, usize) {
        (self.header.width as usize, self.header.height as usize)
    }

    fn has_labels(&self) -> bool {
        self.labels.is_some()
    }

    fn rgb(&self, px: usize) -> [u8; 3] {
        match self.rgb.get(px * 3..px * 3 + 3) {
            Some(c) => [c[0], c[1], c[2]],
            None => [0; 3],
        }
    }

    fn label(&self, px: usize) -> u16 {
        self.labels.and_then(|l| l.get(px * 2..px * 2 + 2)).map_or(0, |b| u16::from_le_bytes([b[0], b[1]]))
    }
}

/// A camera image read in place through a slot view (unvalidated until the read returns).
struct SlotImage<'a> {
    view: SlotView<'a>,
    header: ImageHeader,
}

impl<'a> SlotImage<'a> {
    fn new(view: SlotView<'a>) -> Option<Self> {
        let mut bytes = Vec::with_capacity(IMAGE_HEADER_SIZE);
        if !view.copy_range_into(0..IMAGE_HEADER_SIZE, &mut bytes) {
            return None;
        }
        let header = ImageHeader::read_from_bytes(&bytes).ok()?;
        check_image_header(&header, view.len()).ok()?;
        Some(Self { view, header })
    }

    /// `N` (≤ 8) bytes from byte `at`, with one word load unless they straddle two words.
    fn bytes<const N: usize>(&self, at: usize) -> [u8; N] {
        let (i, skip) = (at / 8, at % 8);
        let lo = self.view.load_word(i).unwrap_or(0);
        let w = if skip + N <= 8 {
            lo >> (8 * skip)
        } else {
            (lo >> (8 * skip)) | (self.view.load_word(i + 1).unwrap_or(0) << (8 * (8 - skip)))
        };
        let mut out = [0; N];
        out.copy_from_slice(&w.to_le_bytes()[..N]);
        out
    }
}

impl Pixels for SlotImage<'_> {
    fn size(&self) -> (usize, usize) {
        (self.header.width as usize, self.header.height as usize)
    }

    fn has_labels(&self) -> bool {
        self.header.has_labels != 0
    }

    fn rgb(&self, px: usize) -> [u8; 3] {
        if px >= self.size().0 * self.size().1 {
            return [0; 3];
        }
        self.bytes::<3>(IMAGE_HEADER_SIZE + px * 3)
    }

    fn label(&self, px: usize) -> u16 {
        if !self.has_labels() || px >= self.size().0 * self.size().1 {
            return 0;
        }
        u16::from_le_bytes(self.bytes::<2>(IMAGE_HEADER_SIZE + self.header.rgb_len() + px * 2))
    }
}
