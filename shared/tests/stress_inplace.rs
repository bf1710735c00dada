//! Stress of the in-place read path with a consumer that *computes* from the slot (issue 13):
//! real threads, a small ring lapped many times, and readers whose results are checked
//! against what the frame's pattern says they must be. A value computed from a torn or
//! overwritten slot must never come back as `InPlace::Frame`.
#![cfg(not(loom))]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{len_for, pattern, tempdir, write_frame, ReadPath};
use shared::ring::{InPlace, ReadOutcome, RingReader, RingWriter, SlotView};
use shared::segment::SegmentSpec;
use shared::{FrameSeq, StreamKind};

/// Up to 16 KiB: pushes from 4 KiB take the string stores (`mapping/wide.rs`).
const CAPACITY: usize = 16384;

/// What the consumers compute: a position-weighted sum of the payload words, the first and
/// the last byte, and the length as the view saw it (not a copy: a digest of it).
fn digest_words(words: impl Iterator<Item = u64>) -> u64 {
    words
        .enumerate()
        .fold(0u64, |acc, (i, w)| acc.wrapping_add(w.wrapping_mul(2 * i as u64 + 1)).rotate_left(5))
}

fn digest_view(v: SlotView<'_>) -> (u64, Option<u64>, usize) {
    let words = (0..v.word_count()).map(|i| v.load_word(i).unwrap_or(0));
    let last = v.len().checked_sub(8).and_then(|at| v.read_u64_at(at));
    (digest_words(words), last, v.len())
}

/// The same digest from the words `read_at_words` copied out, that a `read_at_blocks`
/// consumer loaded block by block, or that a `read_at_quads` consumer was handed (three of
/// every four held references).
fn digest_copied(r: &RingReader, seq: FrameSeq, path: ReadPath) -> InPlace<(u64, Option<u64>, usize)> {
    match common::words_of(r, seq, path) {
        InPlace::Frame(info, words) => {
            let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
            let last =
                info.len.checked_sub(8).map(|at| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()));
            InPlace::Frame(info, (digest_words(words.into_iter()), last, info.len))
        }
        InPlace::Rejected(o) => InPlace::Rejected(o),
    }
}

/// The digest frame `seq` must give.
fn expected(seq: u64, len: usize) -> (u64, Option<u64>, usize) {
    let p = pattern(seq, len);
    let words = p.chunks(8).map(|c| {
        let mut w = [0u8; 8];
        w[..c.len()].copy_from_slice(c);
        u64::from_le_bytes(w)
    });
    let last = len.checked_sub(8).map(|at| u64::from_le_bytes(p[at..at + 8].try_into().unwrap()));
    (digest_words(words), last, len)
}

#[derive(Debug, Default)]
struct Tally {
    frames: u64,
    rejected: u64,
}

/// Reads with `read_next_in_place` until the writer is done.
fn next_in_place(r: &mut RingReader, done: &AtomicBool) -> Tally {
    let mut t = Tally::default();
    loop {
        match r.read_next_in_place(digest_view) {
            InPlace::Frame(info, got) => {
                assert_eq!(got, expected(info.seq.0, info.len), "a torn result escaped as {:?}", info.seq);
                t.frames += 1;
            }
            InPlace::Rejected(ReadOutcome::Empty) => {
                if done.load(Ordering::Acquire) {
                    return t;
                }
                r.wait(Duration::from_millis(10));
            }
            InPlace::Rejected(ReadOutcome::Invalid(why)) => panic!("the writer is honest, yet: {why}"),
            InPlace::Rejected(_) => t.rejected += 1,
        }
    }
}

/// Peeks frames, holds each reference a while (so the writer laps many of them), then uses it
/// (in place, copied into words by `read_at_words`, loaded block by block by
/// `read_at_blocks`, or handed over a quad at a time by `read_at_quads`, in turn).
fn refs_held_a_while(r: &mut RingReader, done: &AtomicBool) -> Tally {
    let mut t = Tally::default();
    let mut held = Vec::new();
    loop {
        match r.peek_next() {
            Some((frame, _)) => held.push(frame),
            None if done.load(Ordering::Acquire) && held.is_empty() => return t,
            None => {
                let _ = r.wait(Duration::from_millis(1));
            }
        }
        // Use the references in batches of 24, older than the 16-slot ring: many are gone.
        if held.len() >= 24 || done.load(Ordering::Acquire) {
            for frame in held.drain(..) {
                let path = [
                    ReadPath::PeekThenRef,
                    ReadPath::PeekThenWords,
                    ReadPath::PeekThenBlocks,
                    ReadPath::PeekThenQuads,
                ][(frame.seq().0 % 4) as usize];
                let read = match path {
                    ReadPath::PeekThenRef => r.read_ref_in_place(frame, digest_view),
                    _ => digest_copied(r, frame.seq(), path),
                };
                match read {
                    InPlace::Frame(info, got) => {
                        assert_eq!(info.seq, frame.seq(), "a reference came back as another frame");
                        assert_eq!(got, expected(info.seq.0, info.len), "a lapped result escaped");
                        t.frames += 1;
                    }
                    InPlace::Rejected(ReadOutcome::Invalid(why)) => {
                        panic!("the writer is honest, yet: {why}")
                    }
                    InPlace::Rejected(_) => t.rejected += 1,
                }
            }
        }
    }
}

#[test]
fn computed_results_from_lapped_or_torn_slots_never_escape() {
    let dir = tempdir();
    let path = dir.path().join("lidar.seg");
    let spec = SegmentSpec {
        kind: StreamKind::Lidar,
        slot_count: 16,
        slot_capacity: CAPACITY as u64,
        base_seq: FrameSeq(u64::MAX - 500),
    };
    let (mut w, _) = RingWriter::create_or_takeover(&path, &spec).unwrap();
    let done = AtomicBool::new(false);
    const FRAMES: u64 = 40_000;
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| next_in_place(&mut RingReader::attach(&path, StreamKind::Lidar).unwrap(), &done));
        let b =
            s.spawn(|| refs_held_a_while(&mut RingReader::attach(&path, StreamKind::Lidar).unwrap(), &done));
        for k in 0..FRAMES {
            write_frame(&mut w, len_for(k, CAPACITY));
            if k % 16 == 0 {
                std::thread::yield_now();
            }
        }
        done.store(true, Ordering::Release);
        (a.join().unwrap(), b.join().unwrap())
    });
    eprintln!("in-place stress: read_next_in_place {a:?}, references held {b:?}");
    assert!(a.frames > 0 && b.frames > 0, "a reader validated nothing");
    // 40 000 frames through 16 slots: the held references are lapped, and that is seen.
    assert!(b.rejected > 0, "no held reference was ever lapped");
    let board = RingReader::attach(&path, StreamKind::Lidar).unwrap().scoreboard();
    assert_eq!(board.frames_written, FRAMES);
    assert_eq!(board.invalid, 0);
}
