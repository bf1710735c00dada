//! Helpers shared by the ring tests.
#![allow(dead_code)]

use shared::frames::PayloadSink;
use shared::ring::{FrameMeta, RingWriter};
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
