//! Helpers shared by the ring tests.
#![allow(dead_code)]

use shared::frames::PayloadSink;
use shared::ring::{FrameMeta, InPlace, ReadOutcome, RingReader, RingWriter, SlotView};
use shared::{CalibEpoch, FrameSeq, TimestampNs};

/// The self-checking payload of frame `seq`: `len` bytes, every 8-byte word derived from
/// the sequence number and its position, so a reader can tell a torn or mixed frame.
pub fn pattern(seq: u64, len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len + 8);
    let mut i = 0u64;
    while v.len() < len {
        let w =
            seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ i.wrapping_mul(0xC2B2_AE3D_27D4_EB4F) ^ (len as u64);
        v.extend_from_slice(&w.to_le_bytes());
        i += 1;
    }
    v.truncate(len);
    v
}

/// Length of frame `seq`'s payload in the tests: varies so lengths are checked too.
pub fn len_for(seq: u64, max: usize) -> usize {
    (seq as usize).wrapping_mul(7919) % max + 1
}

/// Writes frame `seq` in two pushes and commits it.
pub fn write_frame(w: &mut RingWriter, len: usize) -> FrameSeq {
    let mut loan = w.loan();
    let seq = loan.seq().0;
    let p = pattern(seq, len);
    let half = len / 2;
    loan.push(&p[..half]).unwrap();
    loan.push(&p[half..]).unwrap();
    loan.commit(FrameMeta { capture: TimestampNs(seq.wrapping_mul(10)), epoch: CalibEpoch(seq % 5 + 1) })
}

/// A fresh directory for one test.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("epochfuse-test-").tempdir().unwrap()
}

/// How a test reads frames: the copy-out path or one of the in-place paths.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadPath {
    /// `read_next` into a buffer.
    CopyOut,
    /// `read_next_in_place`, the closure copying the payload out of the view.
    InPlace,
    /// `peek_next` for the header, then `read_ref_in_place` on the reference.
    PeekThenRef,
    /// `peek_next` for the header, then `read_at_words`: the payload's words straight into a
    /// buffer, the checksum folded into the same loads.
    PeekThenWords,
    /// `peek_next` for the header, then `read_at_blocks`, the consumer loading every word of
    /// each block through the view.
    PeekThenBlocks,
    /// `peek_next` for the header, then `read_at_quads`, the consumer keeping every word it
    /// is handed (one load per word for the checksum and the consumer).
    PeekThenQuads,
}

impl ReadPath {
    /// Every path, for tests that spread their readers or rounds over them.
    pub const ALL: [Self; 6] = [
        Self::CopyOut,
        Self::InPlace,
        Self::PeekThenRef,
        Self::PeekThenWords,
        Self::PeekThenBlocks,
        Self::PeekThenQuads,
    ];
}

/// What the in-place closure computes in the tests: the payload, copied word by word out of
/// the view. On `InPlace::Frame` it must be exactly the frame's pattern.
pub fn copy_all(v: SlotView<'_>) -> Vec<u8> {
    let mut b = Vec::new();
    assert!(v.copy_range_into(0..v.len(), &mut b));
    b
}

/// Frame `seq`'s payload words by `read_at_blocks` (loaded through the view),
/// `read_at_quads` or `read_at_words` (any other `path`).
pub fn words_of(r: &RingReader, seq: FrameSeq, path: ReadPath) -> InPlace<Vec<u64>> {
    match path {
        ReadPath::PeekThenBlocks => r.read_at_blocks(seq, Vec::new(), |out, v, words| {
            out.extend(words.map(|i| v.load_word(i).unwrap_or(0)))
        }),
        ReadPath::PeekThenQuads => {
            r.read_at_quads(seq, Vec::new(), |out, _, words| out.extend_from_slice(words))
        }
        _ => r.read_at_words(seq, Vec::new()),
    }
}

/// Reads the next frame by `path`. On `Frame`, `buf` holds the payload: for the in-place
/// paths, what the closure computed, which only a validated read hands back.
pub fn read_via(r: &mut RingReader, path: ReadPath, buf: &mut Vec<u8>) -> ReadOutcome {
    let res = match path {
        ReadPath::CopyOut => return r.read_next(buf),
        ReadPath::InPlace => r.read_next_in_place(copy_all),
        _ => match r.peek_next() {
            Some((frame, _)) if path == ReadPath::PeekThenRef => r.read_ref_in_place(frame, copy_all),
            Some((frame, _)) => match words_of(r, frame.seq(), path) {
                InPlace::Frame(info, words) => {
                    let bytes = words.iter().flat_map(|w| w.to_le_bytes()).take(info.len).collect();
                    InPlace::Frame(info, bytes)
                }
                InPlace::Rejected(o) => InPlace::Rejected(o),
            },
            None if r.lag() == 0 => return ReadOutcome::Empty,
            None => return ReadOutcome::Torn,
        },
    };
    let outcome = res.outcome();
    if let Some((_, bytes)) = res.frame() {
        *buf = bytes;
    }
    outcome
}
