//! Validated in-place reads: the consumer computes straight from a committed slot, and what
//! it computed is handed back only if the slot still held that frame, untorn, throughout.
//!
//! # Contract
//!
//! - [`RingReader::read_next_in_place`] / [`RingReader::read_at_in_place`] /
//!   [`RingReader::read_ref_in_place`] run the consumer's closure on a [`SlotView`] inside one
//!   seqlock read ([`seqlock::read_validated`]): the seq word is checked first (odd: the
//!   closure does not run; retried, then `Torn`), the closure runs, then a second pass over
//!   the payload computes its checksum, then `fence(Acquire)` and the seq word is re-read.
//!   Only if it is unchanged are the header and checksum judged exactly as
//!   [`RingReader::read_next`] judges them; the closure's result is returned only with
//!   [`InPlace::Frame`].
//! - A slot rewritten while the closure ran means the writer lapped the reader there (the
//!   cursor said the frame was committed, so any later write is a later frame): counted as
//!   an overrun of one frame, like a copy-out read that finds a newer frame in the slot.
//! - The closure sees untrusted, possibly torn words: it must not panic, allocate without
//!   bound or loop on what it reads. Everything it reads goes through atomic word loads (or
//!   the wide-copy primitive, whose effect is that of such loads); a [`SlotView`] never
//!   hands out a `&[u8]` into shared memory.
//! - The checksum is a second pass, not folded into the consumer's reads: a consumer may
//!   read any subset of the payload, in any order, any number of times.
//!   A consumer that reads every word in order uses [`RingReader::read_at_quads`] (four
//!   words at a time straight from the loads, no copy: the fastest),
//!   [`RingReader::read_at_streaming`] (the same, word by word), [`RingReader::read_at_chunks`]
//!   (private chunks, for consumers whose records span quads) or [`RingReader::read_at_words`]
//!   (every word into the caller's buffer) instead: one pass, the checksum folded into its
//!   loads. A consumer that reads a sparse subset in order uses
//!   [`RingReader::read_at_blocks`]: the checksum's wide pass, 4 KiB at a time, each block
//!   handed to the consumer while it is in L1.

use std::ops::Range;

use zerocopy::{FromBytes, IntoBytes};

use super::{FrameInfo, ReadOutcome, RingReader, TORN_RETRIES};
use crate::checksum::Checksum;
use crate::layout::{self, FrameHeader, ReaderCounter};
use crate::mapping::{wide, Mapping};
use crate::seqlock::{self, Validated};
use crate::sync::{AtomicU64, Ordering};
use crate::{CalibEpoch, FrameSeq, Incarnation, TimestampNs};

/// Words per chunk of [`RingReader::read_at_chunks`] (2 KiB, a multiple of a quad).
pub const CHUNK_WORDS: usize = 256;

/// Words per block of [`RingReader::read_at_blocks`] (4 KiB, a multiple of a quad).
pub const BLOCK_WORDS: usize = 512;

/// A versioned reference to a frame: "frame #`seq` at slot `slot`", learnt from its header
/// alone ([`RingReader::peek_next`]) and checked again when it is used
/// ([`RingReader::read_ref_in_place`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FrameRef {
    seq: FrameSeq,
    slot: u64,
}

impl FrameRef {
    /// The frame's sequence number.
    #[must_use]
    pub fn seq(&self) -> FrameSeq {
        self.seq
    }

    /// The slot that held it when it was peeked.
    #[must_use]
    pub fn slot(&self) -> u64 {
        self.slot
    }
}

/// The result of an in-place read: the closure's result only with a validated frame.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InPlace<R> {
    /// The slot held this frame, untorn, while the closure ran; `R` is what it computed.
    Frame(FrameInfo, R),
    /// Anything else (never `ReadOutcome::Frame`), counted as `read_next` counts it. What the
    /// closure computed, if it ran, was dropped.
    Rejected(ReadOutcome),
}

impl<R> InPlace<R> {
    /// The outcome as a copy-out read would report it.
    pub fn outcome(&self) -> ReadOutcome {
        match self {
            Self::Frame(info, _) => ReadOutcome::Frame(*info),
            Self::Rejected(o) => *o,
        }
    }

    /// The frame and the closure's result, if the read was validated.
    pub fn frame(self) -> Option<(FrameInfo, R)> {
        match self {
            Self::Frame(info, r) => Some((info, r)),
            Self::Rejected(_) => None,
        }
    }
}

/// A committed slot seen in place, through Relaxed atomic word loads only. Its header and
/// words are *unvalidated* while the closure runs: trust what was computed from them only
/// once the read returns [`InPlace::Frame`].
#[derive(Clone, Copy, Debug)]
pub struct SlotView<'a> {
    words: &'a [AtomicU64],
    len: usize,
    info: FrameInfo,
}

impl SlotView<'_> {
    /// The frame header as read (seq, capture time, epoch, incarnation, length).
    #[must_use]
    pub fn info(&self) -> FrameInfo {
        self.info
    }

    /// The frame's sequence number.
    #[must_use]
    pub fn seq(&self) -> FrameSeq {
        self.info.seq
    }

    /// Capture time.
    #[must_use]
    pub fn capture(&self) -> TimestampNs {
        self.info.capture
    }

    /// Calibration epoch.
    #[must_use]
    pub fn epoch(&self) -> CalibEpoch {
        self.info.epoch
    }

    /// Payload bytes (the header's length, checked against the slot's capacity).
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the payload is empty (clippy's `len_without_is_empty`).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// Little-endian payload words (the last one zero-padded).
    #[must_use]
    pub fn word_count(&self) -> usize {
        self.words.len()
    }

    /// Payload word `i` (bytes `8i..8i+8`, little-endian, zero past the payload's end).
    #[must_use]
    #[inline]
    pub fn load_word(&self, i: usize) -> Option<u64> {
        let w = self.words.get(i)?.load(Ordering::Relaxed);
        let tail = self.len % 8;
        Some(if i + 1 == self.words.len() && tail != 0 { w & (u64::MAX >> (8 * (8 - tail))) } else { w })
    }

    /// `N` consecutive payload words from word `first`.
    #[must_use]
    pub fn load_words<const N: usize>(&self, first: usize) -> Option<[u64; N]> {
        if first.checked_add(N)? > self.words.len() {
            return None;
        }
        let mut out = [0; N];
        for (k, w) in out.iter_mut().enumerate() {
            *w = self.load_word(first + k)?;
        }
        Some(out)
    }

    /// Calls `f(i, word)` for every payload word in order (read in chunks through the
    /// wide-copy primitive; the checksum it folds on the way is not used here).
    #[inline]
    pub fn for_each_word(&self, mut f: impl FnMut(usize, u64)) {
        let _ = self.for_each_chunk_summed::<CHUNK_WORDS>(|first, words| {
            for (k, w) in words.iter().enumerate() {
                f(first + k, *w);
            }
        });
    }

    /// Calls `f(first, words)` for the payload in order, `words` being a private copy of at
    /// most `N` (a multiple of a quad) payload words from word `first` (the last one
    /// zero-padded), with the slot checksum folded into the same pass; returns the checksum.
    /// The chunks are read through the wide-copy primitive (`mapping::wide`) into a buffer on
    /// the stack, so they stay in L1 and the consumer's own loop over them vectorises.
    fn for_each_chunk_summed<const N: usize>(&self, mut f: impl FnMut(usize, &[u64])) -> u64 {
        const { assert!(N > 0 && N.is_multiple_of(4), "chunks of whole quads") };
        let mut sum = Checksum::new();
        let mut buf = [0u64; N];
        let full = self.len / 32 * 4;
        for first in (0..full).step_by(N) {
            let out = &mut buf[..N.min(full - first)];
            self.load_quads_summed(first, out, &mut sum);
            f(first, out);
        }
        let rest = self.words.len() - full;
        self.load_tail_summed(full, &mut buf[..rest], &mut sum);
        if rest > 0 {
            f(full, &buf[..rest]);
        }
        sum.finish(self.len as u64)
    }

    /// Calls `f(&mut state, first, words)` for the payload in order, four words at a time
    /// (`words` is a whole quad from word `first`, except a last part quad of the words past
    /// it), each quad loaded once and folded into the slot checksum on the way (no copy);
    /// returns `state` and the checksum.
    fn for_each_quad_summed<S>(&self, state: S, mut f: impl FnMut(&mut S, usize, &[u64])) -> (S, u64) {
        let mut sum = Checksum::new();
        let full = self.len / 32 * 4;
        let mut state =
            wide::for_each_quad_summed(&self.words[..full], &mut sum, state, |s, q, quad| f(s, 4 * q, &quad));
        let rest = self.words.len() - full;
        let mut tail = [0u64; 4];
        self.load_tail_summed(full, &mut tail[..rest], &mut sum);
        if rest > 0 {
            f(&mut state, full, &tail[..rest]);
        }
        (state, sum.finish(self.len as u64))
    }

    /// Calls `f(words)` for the payload in order, `words` being consecutive ranges of at most
    /// [`BLOCK_WORDS`] word indices, each just folded into the slot checksum (returned) by the
    /// wide sum, without a copy: the consumer loads what it wants of a block through
    /// [`load_word`](Self::load_word) while the block is in L1.
    fn for_each_block_summed(&self, mut f: impl FnMut(Range<usize>)) -> u64 {
        let mut sum = Checksum::new();
        let full = self.len / 32 * 4;
        let mut first = 0;
        while first < full {
            let end = (first + BLOCK_WORDS).min(full);
            wide::sum_words(&self.words[first..end], &mut sum);
            f(first..end);
            first = end;
        }
        let n = self.words.len();
        self.load_tail_summed(full, &mut [0; 4][..n - full], &mut sum);
        if n > full {
            f(full..n);
        }
        sum.finish(self.len as u64)
    }

    /// Copies every payload word into `out` (exactly [`word_count`](Self::word_count) long;
    /// the last one zero-padded) in one pass, the slot checksum folded into the same loads
    /// (the wide-copy primitive over whole quads, straight into `out`: no intermediate
    /// chunk); returns the checksum.
    fn load_summed_into(&self, out: &mut [u64]) -> u64 {
        let mut sum = Checksum::new();
        let full = self.len / 32 * 4;
        let (head, tail) = out.split_at_mut(full);
        self.load_quads_summed(0, head, &mut sum);
        self.load_tail_summed(full, tail, &mut sum);
        sum.finish(self.len as u64)
    }

    /// Payload words `first..first + out.len()` (whole quads, `first` at a quad boundary)
    /// into `out` through the wide-copy primitive, folded into `sum`.
    fn load_quads_summed(&self, first: usize, out: &mut [u64], sum: &mut Checksum) {
        wide::load_summed(&self.words[first..first + out.len()], out.as_mut_bytes(), sum);
        for w in out.iter_mut() {
            *w = u64::from_le(*w);
        }
    }

    /// The words past the last whole quad (at most four: a part quad of up to 31 bytes, from word `first`) into `out` one
    /// by one, folded into `sum`.
    fn load_tail_summed(&self, first: usize, out: &mut [u64], sum: &mut Checksum) {
        for (k, w) in out.iter_mut().enumerate() {
            *w = self.load_word(first + k).unwrap_or(0);
            sum.add_at(first + k, *w);
        }
    }

    /// Copies payload bytes `range` into `dst` (replacing its contents). `false` (and `dst`
    /// untouched) if the range is not inside the payload.
    pub fn copy_range_into(&self, range: Range<usize>, dst: &mut Vec<u8>) -> bool {
        if range.start > range.end || range.end > self.len {
            return false;
        }
        dst.clear();
        dst.reserve(range.len());
        let mut at = range.start;
        while at < range.end {
            let (i, skip) = (at / 8, at % 8);
            let take = (8 - skip).min(range.end - at);
            let w = self.load_word(i).unwrap_or(0).to_le_bytes();
            dst.extend_from_slice(&w[skip..skip + take]);
            at += take;
        }
        true
    }

    /// The little-endian `u64` at byte offset `at` (any alignment), if inside the payload.
    #[must_use]
    pub fn read_u64_at(&self, at: usize) -> Option<u64> {
        let mut b = [0u8; 8];
        self.read_bytes_at(at, &mut b).then(|| u64::from_le_bytes(b))
    }

    /// The little-endian `u32` at byte offset `at` (any alignment), if inside the payload.
    #[must_use]
    pub fn read_u32_at(&self, at: usize) -> Option<u32> {
        let mut b = [0u8; 4];
        self.read_bytes_at(at, &mut b).then(|| u32::from_le_bytes(b))
    }

    /// The little-endian `f32` at byte offset `at`, if inside the payload.
    #[must_use]
    pub fn read_f32_at(&self, at: usize) -> Option<f32> {
        self.read_u32_at(at).map(f32::from_bits)
    }

    fn read_bytes_at(&self, at: usize, out: &mut [u8]) -> bool {
        if at.checked_add(out.len()).is_none_or(|end| end > self.len) {
            return false;
        }
        for (k, b) in out.iter_mut().enumerate() {
            let p = at + k;
            *b = self.load_word(p / 8).unwrap_or(0).to_le_bytes()[p % 8];
        }
        true
    }
}

/// The frame header of the slot at byte `slot`, copied out word by word and parsed.
pub(super) fn header_at(m: &Mapping, slot: usize) -> Option<FrameHeader> {
    let words = m.load_words::<{ layout::FRAME_HEADER_WORDS }>(slot + layout::SLOT_OFF_FRAME_HEADER);
    FrameHeader::read_from_bytes(words.as_bytes()).ok()
}

fn info_of(header: &FrameHeader) -> FrameInfo {
    FrameInfo {
        seq: FrameSeq(header.frame_seq),
        capture: TimestampNs(header.capture_ns),
        epoch: CalibEpoch(header.epoch),
        incarnation: Incarnation(header.incarnation),
        len: usize::try_from(header.payload_len).unwrap_or(usize::MAX),
        published: TimestampNs(header.publish_ns),
    }
}

impl RingReader {
    /// Reads the next frame in place: runs `f` on a view of its slot and returns what it
    /// computed with the frame if, and only if, the slot held that frame, untorn, while `f`
    /// ran. Moves the reader as [`read_next`](Self::read_next) does. Never blocks.
    ///
    /// # Errors
    /// No `Result`: every failure is an [`InPlace::Rejected`] outcome, counted in the
    /// scoreboard (`Empty` aside) exactly as `read_next` counts it; `f`'s result is dropped.
    pub fn read_next_in_place<R>(&mut self, f: impl FnOnce(SlotView<'_>) -> R) -> InPlace<R> {
        if let Some(early) = self.before_next() {
            return InPlace::Rejected(early);
        }
        match self.in_place(self.next, f) {
            InPlace::Frame(info, r) => {
                let _ = self.after_next(ReadOutcome::Frame(info));
                InPlace::Frame(info, r)
            }
            InPlace::Rejected(o) => InPlace::Rejected(self.after_next(o)),
        }
    }

    /// Reads frame `seq` in place without moving the reader (see
    /// [`read_next_in_place`](Self::read_next_in_place)).
    ///
    /// # Errors
    /// As `read_next_in_place`; counted as [`read_at`](Self::read_at) counts.
    pub fn read_at_in_place<R>(&self, seq: FrameSeq, f: impl FnOnce(SlotView<'_>) -> R) -> InPlace<R> {
        self.in_place_at(seq, |v| (f(v), None))
    }

    /// Uses a versioned reference: reads in place only if slot X still holds frame #seq.
    /// A frame overwritten since it was peeked comes back as a counted `Overrun`.
    ///
    /// # Errors
    /// As [`read_at_in_place`](Self::read_at_in_place).
    pub fn read_ref_in_place<R>(&self, frame: FrameRef, f: impl FnOnce(SlotView<'_>) -> R) -> InPlace<R> {
        match self.before_at(frame.seq) {
            Some(early) => InPlace::Rejected(early),
            None => self.in_place_with(frame.seq, frame.slot, |v| (f(v), None)),
        }
    }

    /// Reads frame `seq` in place in one pass: `f(&mut state, i, word)` sees every payload
    /// word in order while the checksum is folded into the same loads (no second pass), for
    /// consumers that read the whole frame. `state` comes back only with a validated frame.
    ///
    /// # Errors
    /// As [`read_at_in_place`](Self::read_at_in_place).
    pub fn read_at_streaming<S>(
        &self,
        seq: FrameSeq,
        state: S,
        mut f: impl FnMut(&mut S, usize, u64),
    ) -> InPlace<S> {
        self.read_at_quads(seq, state, |s, first, words| {
            for (k, w) in words.iter().enumerate() {
                f(s, first + k, *w);
            }
        })
    }

    /// [`read_at_streaming`](Self::read_at_streaming) a chunk at a time: `f(&mut state,
    /// first, words)` gets the payload's words in order as private copies of at most
    /// [`CHUNK_WORDS`] words (2 KiB, on the stack: they stay in L1) starting at word `first`,
    /// so that the consumer's own loop over them vectorises; the slot checksum is folded
    /// into the same pass. `state` comes back only with a validated frame.
    ///
    /// # Errors
    /// As [`read_at_in_place`](Self::read_at_in_place).
    pub fn read_at_chunks<S>(
        &self,
        seq: FrameSeq,
        state: S,
        f: impl FnMut(&mut S, usize, &[u64]),
    ) -> InPlace<S> {
        self.read_at_chunks_of::<CHUNK_WORDS, S>(seq, state, f)
    }

    /// [`read_at_chunks`](Self::read_at_chunks) in chunks of `N` words (a multiple of a
    /// quad; on the stack), for a consumer whose records tile `N` words exactly (a lidar
    /// sweep's 24-byte points: 768 words are 256 of them), so that it can view each chunk
    /// as its records without gathering them. Only the last chunk may be shorter, and the
    /// words past the last whole quad (at most four, the last zero-padded) come as a chunk
    /// of their own.
    ///
    /// # Errors
    /// As [`read_at_in_place`](Self::read_at_in_place).
    pub fn read_at_chunks_of<const N: usize, S>(
        &self,
        seq: FrameSeq,
        state: S,
        mut f: impl FnMut(&mut S, usize, &[u64]),
    ) -> InPlace<S> {
        self.in_place_at(seq, |v| {
            let mut state = state;
            let sum = v.for_each_chunk_summed::<N>(|first, words| f(&mut state, first, words));
            (state, Some(sum))
        })
    }

    /// [`read_at_streaming`](Self::read_at_streaming) a quad at a time, with no copy:
    /// `f(&mut state, first, words)` gets the payload's words in order, four at a time from
    /// word `first` (the words past the last whole quad, at most four and the last
    /// zero-padded, come last and alone). Each quad is loaded from the slot once, the slot
    /// checksum folded into the same load while `f` works on it in registers. `state` comes
    /// back only with a validated frame.
    ///
    /// ```
    /// use shared::frames::PayloadSink;
    /// use shared::ring::{FrameMeta, RingReader, RingWriter};
    /// use shared::segment::SegmentSpec;
    /// use shared::{CalibEpoch, StreamKind, TimestampNs};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let run = tempfile::tempdir()?;
    /// let path = run.path().join("camera.seg");
    /// let (mut writer, _) =
    ///     RingWriter::create_or_takeover(&path, &SegmentSpec::new(StreamKind::Camera, 2, 4096))?;
    /// let reader = RingReader::attach(&path, StreamKind::Camera)?;
    /// let mut loan = writer.loan();
    /// loan.push(&[3u8; 100])?; // three whole quads and a part quad of one word
    /// let seq = loan.commit(FrameMeta { capture: TimestampNs(1), epoch: CalibEpoch(1) });
    ///
    /// // A histogram of the bytes, straight from the slot: no copy, one pass.
    /// let read = reader.read_at_quads(seq, [0u32; 256], |hist, _first, words| {
    ///     for w in words {
    ///         w.to_le_bytes().iter().for_each(|b| hist[usize::from(*b)] += 1);
    ///     }
    /// });
    /// let (info, hist) = read.frame().expect("nothing overwrote the slot");
    /// // The last word is zero-padded past the payload's 100 bytes.
    /// assert_eq!((info.len, hist[3], hist[0]), (100, 100, 4));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`read_at_in_place`](Self::read_at_in_place).
    pub fn read_at_quads<S>(
        &self,
        seq: FrameSeq,
        state: S,
        f: impl FnMut(&mut S, usize, &[u64]),
    ) -> InPlace<S> {
        self.in_place_at(seq, |v| {
            let (state, sum) = v.for_each_quad_summed(state, f);
            (state, Some(sum))
        })
    }

    /// One pass for a consumer that reads a sparse subset of the payload in order (samples
    /// sorted by position): `f(&mut state, &view, words)` is called for consecutive ranges of
    /// word indices (at most [`BLOCK_WORDS`], 4 KiB) right after the wide sum folded them into
    /// the checksum, and loads what it needs of them, or of earlier words, through the view
    /// (no copy; the block is in L1). `state` comes back only with a validated frame.
    ///
    /// # Errors
    /// As [`read_at_in_place`](Self::read_at_in_place).
    pub fn read_at_blocks<S>(
        &self,
        seq: FrameSeq,
        state: S,
        mut f: impl FnMut(&mut S, &SlotView<'_>, Range<usize>),
    ) -> InPlace<S> {
        self.in_place_at(seq, |v| {
            let mut state = state;
            let sum = v.for_each_block_summed(|words| f(&mut state, &v, words));
            (state, Some(sum))
        })
    }

    /// Reads frame `seq`'s payload words straight from its slot into `buf` (resized to the
    /// payload's word count, the last word zero-padded) in one pass with the checksum folded
    /// into the same loads: one copy, for consumers that keep every word a while (a lidar
    /// sweep viewed as records). `buf` comes back only with a validated frame; a rejected
    /// read drops it, with whatever torn words it held.
    ///
    /// # Errors
    /// As [`read_at_in_place`](Self::read_at_in_place).
    pub fn read_at_words(&self, seq: FrameSeq, buf: Vec<u64>) -> InPlace<Vec<u64>> {
        self.in_place_at(seq, |v| {
            let mut buf = buf;
            // Every word is overwritten below: only a grown tail is zeroed first.
            buf.truncate(v.word_count());
            buf.resize(v.word_count(), 0);
            let sum = v.load_summed_into(&mut buf);
            (buf, Some(sum))
        })
    }

    /// Learns of the next frame from its header alone (no payload read, no checksum: the
    /// header is checked again at use) and moves past it. `None` if nothing new, if a write
    /// held the slot through every retry (the reader stays), or if the slot does not hold
    /// the announced frame (the reader moves on; a read would count it). A lapped reader
    /// moves to the oldest frame held, counted as `read_next` counts it.
    pub fn peek_next(&mut self) -> Option<(FrameRef, FrameInfo)> {
        if let Some(ReadOutcome::Empty) = self.before_next() {
            return None;
        }
        let seq = self.next;
        let (frame, info) = self.peek_header(seq)?;
        self.next = seq.next();
        let held = info.seq == seq && info.incarnation.0 != 0 && info.len as u64 <= self.seg.slot_capacity();
        if !held {
            // Passed over without a read: counted (as `Stale`) so that back-pressure, which
            // waits for every frame to be accounted for, does not wait for this one.
            self.count(ReaderCounter::Stale, 1);
        }
        held.then_some((frame, info))
    }

    /// Accounts for a peeked frame that is let go without being read (an unpaired frame):
    /// counted as read, so that a producer at full speed waiting for its readers
    /// ([`RingWriter::wait_for_readers`](super::RingWriter::wait_for_readers)) sees it done.
    /// A frame read in place, or lost (overrun, invalid), is counted by that read instead.
    pub fn let_go(&self, frame: FrameRef) {
        let _ = frame;
        self.count(ReaderCounter::FramesRead, 1);
    }

    /// The header of the slot the map names for `seq`, read consistently; `None` if torn
    /// through every try.
    fn peek_header(&self, seq: FrameSeq) -> Option<(FrameRef, FrameInfo)> {
        let m = &self.seg.map;
        let slot = self.seg.slot_index_for(seq);
        let off = self.seg.slot_offset(slot);
        let seq_word = m.word(off + layout::SLOT_OFF_SEQ);
        for _ in 0..TORN_RETRIES {
            if let Validated::Valid { r: Some(h), .. } =
                seqlock::read_validated(seq_word, || header_at(m, off))
            {
                return Some((FrameRef { seq, slot }, info_of(&h)));
            }
            std::hint::spin_loop();
        }
        None
    }

    /// The protocol (see the module docs) on the slot of `seq`.
    fn in_place<R>(&self, seq: FrameSeq, f: impl FnOnce(SlotView<'_>) -> R) -> InPlace<R> {
        self.in_place_with(seq, self.seg.slot_index_for(seq), |v| (f(v), None))
    }

    /// [`in_place_with`](Self::in_place_with) for a read by sequence number (`read_at_*`):
    /// a frame not yet in the ring (`Empty`) or no longer in it (a counted `Overrun`) is
    /// refused before the slot is touched.
    fn in_place_at<R, F>(&self, seq: FrameSeq, f: F) -> InPlace<R>
    where
        F: FnOnce(SlotView<'_>) -> (R, Option<u64>),
    {
        match self.before_at(seq) {
            Some(early) => InPlace::Rejected(early),
            None => self.in_place_with(seq, self.seg.slot_index_for(seq), f),
        }
    }

    /// The protocol on `slot` (masked into range), with a closure that may hand back the
    /// payload checksum it folded into its own pass (then the second pass is skipped).
    fn in_place_with<R, F>(&self, seq: FrameSeq, slot: u64, f: F) -> InPlace<R>
    where
        F: FnOnce(SlotView<'_>) -> (R, Option<u64>),
    {
        let m = &self.seg.map;
        let off = self.seg.slot_offset(slot);
        let payload = off + layout::SLOT_OFF_PAYLOAD;
        let seq_word = m.word(off + layout::SLOT_OFF_SEQ);
        let capacity = self.seg.slot_capacity();
        let mut f = Some(f);
        for _ in 0..TORN_RETRIES {
            if m.truncated() {
                return InPlace::Rejected(self.invalid(super::InvalidFrame::SegmentTruncated));
            }
            let mut ran = false;
            let read = seqlock::read_validated(seq_word, || {
                let header = header_at(m, off)?;
                let len = header.payload_len as usize;
                let payload_ok = header.payload_len <= capacity && header.incarnation != 0;
                let (mut r, mut folded) = (None, None);
                if payload_ok && header.frame_seq == seq.0 {
                    if let Some(f) = f.take() {
                        ran = true;
                        let view = SlotView {
                            words: m.words(payload, len.div_ceil(8)),
                            len,
                            info: info_of(&header),
                        };
                        let (out, sum) = f(view);
                        (r, folded) = (Some(out), sum);
                    }
                }
                // Unless folded into the closure's pass: a second pass, inside the same seqlock
                // read, over the very words the closure saw (and over a newer frame's, to tell
                // a lap from a scribble).
                let sum = match folded {
                    Some(sum) => sum,
                    None if payload_ok => m.checksum(payload, len),
                    None => 0,
                };
                Some((header, sum, r))
            });
            match read {
                Validated::Busy => {}
                Validated::Changed if !ran => {}
                Validated::Changed => {
                    // Rewritten while the closure ran: frame `seq` is gone (see module docs).
                    self.count(ReaderCounter::Overruns, 1);
                    self.count(ReaderCounter::OverrunFramesLost, 1);
                    return InPlace::Rejected(ReadOutcome::Overrun { lost: 1 });
                }
                Validated::Valid { r: None, .. } => {
                    return InPlace::Rejected(
                        self.invalid(super::InvalidFrame::LengthOutOfBounds { len: 0 }),
                    );
                }
                Validated::Valid { r: Some((header, sum, r)), .. } => {
                    return match (self.judge(seq, &header, sum), r) {
                        (ReadOutcome::Frame(info), Some(r)) => InPlace::Frame(info, r),
                        (o, _) => InPlace::Rejected(o),
                    };
                }
            }
            self.count(ReaderCounter::TornRetries, 1);
            std::hint::spin_loop();
        }
        InPlace::Rejected(ReadOutcome::Torn)
    }
}
