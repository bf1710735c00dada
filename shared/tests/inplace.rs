//! The in-place read path: every outcome, counted as the copy-out path counts it, and a
//! closure's result never escaping a read whose slot was overwritten while it ran.
#![cfg(not(loom))]

mod common;

use common::{copy_all, pattern, tempdir, write_frame};
use shared::frames::PayloadSink;
use shared::ring::{InPlace, InvalidFrame, ReadOutcome, RingReader, RingWriter, SlotView};
use shared::segment::{Segment, SegmentSpec};
use shared::{layout, FrameSeq, StreamKind};

fn ring(slots: u32) -> (tempfile::TempDir, std::path::PathBuf, RingWriter, RingReader) {
    let dir = tempdir();
    let path = dir.path().join("lidar.seg");
    let spec = SegmentSpec::new(StreamKind::Lidar, slots, 256);
    let (w, _) = RingWriter::create_or_takeover(&path, &spec).unwrap();
    let r = RingReader::attach(&path, StreamKind::Lidar).unwrap();
    (dir, path, w, r)
}

/// A consumer that computes from the slot without copying: a sum of the payload words.
fn word_sum(v: SlotView<'_>) -> u64 {
    let mut s = 0u64;
    v.for_each_word(|_, w| s = s.wrapping_add(w));
    s
}

fn expected_sum(seq: u64, len: usize) -> u64 {
    (0..len.div_ceil(8)).map(|i| common_word(&pattern(seq, len), i)).fold(0, u64::wrapping_add)
}

/// Flips a bit of frame `seq`'s second payload word, under its checksum.
fn scribble(path: &std::path::Path, seq: FrameSeq) {
    let seg = Segment::attach(path, Some(StreamKind::Lidar)).unwrap();
    let off = seg.slot_offset_for(seq) + layout::SLOT_OFF_PAYLOAD;
    seg.map.word(off + 8).fetch_xor(1 << 7, std::sync::atomic::Ordering::Relaxed);
}

fn common_word(b: &[u8], i: usize) -> u64 {
    shared::checksum::word_at(b, i)
}

#[test]
fn a_committed_frame_is_read_in_place_and_counted() {
    let (_d, _p, mut w, mut r) = ring(4);
    let seq = write_frame(&mut w, 77);
    let res = r.read_next_in_place(|v| {
        assert_eq!((v.seq(), v.len()), (seq, 77));
        assert_eq!(
            v.read_u32_at(73),
            Some(u32::from_le_bytes(pattern(seq.0, 77)[73..77].try_into().unwrap()))
        );
        assert_eq!(v.read_u32_at(74), None, "past the end");
        assert_eq!(v.load_words::<2>(9), None, "past the last word");
        (word_sum(v), copy_all(v))
    });
    let (info, (sum, bytes)) = res.frame().expect("a committed frame");
    assert_eq!((info.seq, info.len), (seq, 77));
    assert_eq!(sum, expected_sum(seq.0, 77));
    assert_eq!(bytes, pattern(seq.0, 77));
    assert_eq!(r.next_seq(), seq.next());
    assert!(matches!(r.read_next_in_place(word_sum), InPlace::Rejected(ReadOutcome::Empty)));
    assert_eq!(r.scoreboard().frames_read, 1);
}

#[test]
fn a_lapped_reader_gets_a_counted_overrun_before_the_closure_runs() {
    let (_d, path, mut w, mut r) = ring(2);
    let mut copy_out = RingReader::attach(&path, StreamKind::Lidar).unwrap();
    for _ in 0..5 {
        write_frame(&mut w, 16);
    }
    let res = r.read_next_in_place(|_| -> u64 { panic!("must not run on a lapped slot") });
    assert!(matches!(res, InPlace::Rejected(ReadOutcome::Overrun { .. })), "{res:?}");
    assert_eq!(r.scoreboard().overruns, 1);
    // Counted and moved exactly as a copy-out reader in the same place.
    assert_eq!(copy_out.read_next(&mut Vec::new()), res.outcome());
    assert_eq!(copy_out.next_seq(), r.next_seq());
    let board = r.scoreboard();
    assert_eq!((board.overruns, board.overrun_frames_lost), (2, 2 * 4));
}

/// The closure itself commits frames through the writer until the slot it is reading is
/// reused: whatever it computed must be dropped, and the read counted as an overrun.
#[test]
fn an_overwrite_during_the_closure_is_rejected_and_counted() {
    for (laps, open_loan) in [(2usize, false), (1, true), (3, false)] {
        let (_d, _p, mut w, mut r) = ring(2);
        let seq = write_frame(&mut w, 64);
        let res = r.read_next_in_place(|v| {
            let before = word_sum(v);
            for _ in 0..laps {
                write_frame(&mut w, 64);
            }
            let mut loan = open_loan.then(|| w.loan());
            if let Some(l) = loan.as_mut() {
                l.push(&[0xAB; 64]).unwrap();
            }
            let after = word_sum(v);
            drop(loan);
            (before, after)
        });
        assert!(
            matches!(res, InPlace::Rejected(ReadOutcome::Overrun { .. })),
            "laps {laps}, open loan {open_loan}: {res:?}"
        );
        let board = r.scoreboard();
        assert_eq!((board.overruns, board.frames_read), (1, 0));
        assert_ne!(r.next_seq(), seq, "the reader moved on");
    }
}

#[test]
fn a_slot_being_written_is_torn_and_the_closure_does_not_run() {
    let (_d, _p, mut w, r) = ring(2);
    let first = write_frame(&mut w, 8);
    write_frame(&mut w, 8);
    let _loan = w.loan(); // slot of `first` now odd
    let res = r.read_at_in_place(first, |_| -> u8 { panic!("must not run on an odd slot") });
    assert_eq!(res, InPlace::Rejected(ReadOutcome::Torn));
    assert!(r.scoreboard().torn_retries > 0);
}

#[test]
fn an_abandoned_slot_is_stale() {
    let (_d, _p, mut w, r) = ring(2);
    for _ in 0..4 {
        write_frame(&mut w, 8);
    }
    drop(w.loan()); // slot 0 now holds no frame (frame seq 0, incarnation 0)
    let res = r.read_at_in_place(FrameSeq(2), word_sum);
    assert_eq!(res, InPlace::Rejected(ReadOutcome::Stale { expected: FrameSeq(2), found: FrameSeq(0) }));
    assert_eq!(r.scoreboard().stale, 1);
}

#[test]
fn a_scribbled_payload_is_invalid_whatever_the_closure_computed() {
    let (_d, path, mut w, r) = ring(2);
    let seq = write_frame(&mut w, 40);
    let seg = Segment::attach(&path, Some(StreamKind::Lidar)).unwrap();
    let off = seg.slot_offset_for(seq) + layout::SLOT_OFF_PAYLOAD;
    seg.map.word(off + 8).fetch_xor(1, std::sync::atomic::Ordering::Relaxed);
    let res = r.read_at_in_place(seq, copy_all);
    assert_eq!(res, InPlace::Rejected(ReadOutcome::Invalid(InvalidFrame::ChecksumMismatch)));
    assert_eq!(r.scoreboard().invalid, 1);
}

/// Fusion's form: learn of frames from their headers, use one later, by reference.
#[test]
fn a_versioned_reference_is_checked_at_use() {
    let (_d, _p, mut w, mut r) = ring(2);
    let a = write_frame(&mut w, 24);
    let b = write_frame(&mut w, 32);
    let (ra, ia) = r.peek_next().expect("frame a");
    let (rb, ib) = r.peek_next().expect("frame b");
    assert_eq!((ra.seq(), ia.len, rb.seq(), ib.len), (a, 24, b, 32));
    assert_eq!((ra.slot(), rb.slot()), (0, 1));
    assert_eq!(r.peek_next(), None);
    assert_eq!(r.scoreboard().frames_read, 0, "peeking reads no payload");
    let (_, bytes) = r.read_ref_in_place(rb, copy_all).frame().expect("b is still in slot 1");
    assert_eq!(bytes, pattern(b.0, 32));
    write_frame(&mut w, 8); // frame #2 reuses slot 0: "frame a at slot 0" is gone
    let res = r.read_ref_in_place(ra, |_| -> u8 { panic!("must not run on another frame") });
    assert_eq!(res, InPlace::Rejected(ReadOutcome::Overrun { lost: 1 }));
    assert_eq!((r.scoreboard().frames_read, r.scoreboard().overruns), (1, 1));
}

/// The one-pass form: the checksum folded into the consumer's loads must judge exactly as
/// the second pass does (a frame, a scribble, an overwrite while the consumer reads).
#[test]
fn a_streaming_read_validates_with_the_checksum_folded_in() {
    for len in [0usize, 5, 32, 77, 200] {
        let (_d, path, mut w, r) = ring(2);
        let seq = write_frame(&mut w, len);
        let res = r.read_at_streaming(seq, 0u64, |s, _, word| *s = s.wrapping_add(word));
        assert_eq!(res.frame().map(|(i, s)| (i.len, s)), Some((len, expected_sum(seq.0, len))), "len {len}");
        if len > 8 {
            scribble(&path, seq);
            let res = r.read_at_streaming(seq, (), |_, _, _| {});
            assert_eq!(res, InPlace::Rejected(ReadOutcome::Invalid(InvalidFrame::ChecksumMismatch)));
        }
    }
    let (_d, _p, mut w, r) = ring(2);
    let seq = write_frame(&mut w, 64);
    let res = r.read_at_streaming(seq, 0u64, |s, i, word| {
        if i == 0 {
            write_frame(&mut w, 64);
            write_frame(&mut w, 64);
        }
        *s ^= word;
    });
    assert!(matches!(res, InPlace::Rejected(ReadOutcome::Overrun { .. })), "{res:?}");
}

/// For payloads of several lengths: `read` of a fresh frame comes back as `want(seq, len)`,
/// and after a scribble under its checksum it is refused as the second pass refuses it.
fn judged_like_the_second_pass<T: PartialEq + std::fmt::Debug>(
    read: impl Fn(&RingReader, FrameSeq) -> InPlace<T>,
    want: impl Fn(FrameSeq, usize) -> T,
) {
    for len in [0usize, 5, 32, 77, 200, 256] {
        let (_d, path, mut w, r) = ring(2);
        let seq = write_frame(&mut w, len);
        assert_eq!(read(&r, seq).frame().map(|(i, t)| (i.len, t)), Some((len, want(seq, len))), "len {len}");
        if len > 8 {
            scribble(&path, seq);
            assert_eq!(read(&r, seq).outcome(), ReadOutcome::Invalid(InvalidFrame::ChecksumMismatch));
        }
    }
}

/// The one-copy form: `read_at_words` hands back exactly the payload's words (the last one
/// zero-padded, whatever the buffer held) and judges as the second pass does (a scribble, a
/// lapped slot).
#[test]
fn words_read_into_a_buffer_are_the_frame_or_nothing() {
    judged_like_the_second_pass(
        |r, seq| r.read_at_words(seq, vec![7; 1000]),
        |seq, len| (0..len.div_ceil(8)).map(|i| common_word(&pattern(seq.0, len), i)).collect::<Vec<u64>>(),
    );
    let (_d, _p, mut w, r) = ring(2);
    let seq = write_frame(&mut w, 64);
    write_frame(&mut w, 64);
    write_frame(&mut w, 64); // frame `seq`'s slot now holds a later frame
    let res = r.read_at_words(seq, Vec::new());
    assert!(matches!(res, InPlace::Rejected(ReadOutcome::Overrun { .. })), "{res:?}");
}

/// The block form: the consumer is handed every word index once, in order, in blocks of at
/// most `BLOCK_WORDS`, and loads them through the view; judged as the second pass judges.
#[test]
fn blocks_cover_the_payload_in_order_and_are_judged() {
    judged_like_the_second_pass(
        |r, seq| {
            r.read_at_blocks(seq, (0usize, 0u64), |(next, sum), v, words| {
                assert!(words.start == *next && words.len() <= shared::ring::BLOCK_WORDS, "{words:?}");
                *next = words.end;
                *sum = words.fold(*sum, |s, i| s.wrapping_add(v.load_word(i).unwrap()));
            })
        },
        |seq, len| (len.div_ceil(8), expected_sum(seq.0, len)),
    );
}

/// Chunks of a chosen size (`read_at_chunks_of`): every word once, in order, in chunks of
/// exactly `N` words but the last of the whole quads and the part quad after them; judged
/// as the second pass judges.
#[test]
fn chunks_of_a_chosen_size_cover_the_payload_in_order_and_are_judged() {
    judged_like_the_second_pass(
        |r, seq| {
            r.read_at_chunks_of::<12, _>(
                seq,
                (0usize, 0u64, Vec::new()),
                |(next, sum, sizes), first, words| {
                    assert_eq!(first, *next);
                    *next += words.len();
                    sizes.push(words.len());
                    *sum = words.iter().fold(*sum, |s, w| s.wrapping_add(*w));
                },
            )
        },
        |seq, len| {
            let quads = len / 32 * 4;
            let mut sizes: Vec<usize> = (0..quads).step_by(12).map(|f| 12.min(quads - f)).collect();
            sizes.extend((len.div_ceil(8) > quads).then(|| len.div_ceil(8) - quads));
            (len.div_ceil(8), expected_sum(seq.0, len), sizes)
        },
    );
}

/// The quad form (`read_at_quads`): every word once, in order, four at a time (the words
/// past the last whole quad alone, last), each from the one load that also fed the
/// checksum; judged as the second pass judges, and a slot lapped while the consumer reads
/// gives nothing back.
#[test]
fn quads_cover_the_payload_in_order_and_are_judged() {
    judged_like_the_second_pass(
        |r, seq| {
            r.read_at_quads(seq, (0usize, 0u64, Vec::new()), |(next, sum, sizes), first, words| {
                assert_eq!(first, *next);
                *next += words.len();
                sizes.push(words.len());
                *sum = words.iter().fold(*sum, |s, w| s.wrapping_add(*w));
            })
        },
        |seq, len| {
            let quads = len / 32;
            let mut sizes = vec![4; quads];
            sizes.extend((len.div_ceil(8) > 4 * quads).then(|| len.div_ceil(8) - 4 * quads));
            (len.div_ceil(8), expected_sum(seq.0, len), sizes)
        },
    );
    let (_d, _p, mut w, r) = ring(2);
    let seq = write_frame(&mut w, 256);
    let res = r.read_at_quads(seq, 0u64, |s, first, words| {
        if first == 0 {
            write_frame(&mut w, 64);
            write_frame(&mut w, 64);
        }
        *s = words.iter().fold(*s, |s, w| s ^ w);
    });
    assert!(matches!(res, InPlace::Rejected(ReadOutcome::Overrun { .. })), "{res:?}");
}
