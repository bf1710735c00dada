//! The slot map (layout version 4): a writer that reuses the slot its readers released puts
//! every frame into one slot while they keep up, falls back to the oldest frame's slot when
//! they do not, and whatever the map words hold (a reader not counted, a scribbler, a writer
//! that died between the two stores of a swap) no reader accepts a wrong frame.
#![cfg(not(loom))]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::{len_for, pattern, read_via, tempdir, write_frame, ReadPath};
use shared::ring::{ReadOutcome, RingReader, RingWriter};
use shared::segment::{Segment, SegmentSpec};
use shared::{layout, FrameSeq, StreamKind};

const SLOTS: u32 = 8;
const MAX_LEN: usize = 300;

fn ring() -> (tempfile::TempDir, std::path::PathBuf, RingWriter) {
    let dir = tempdir();
    let path = dir.path().join("camera.seg");
    let (w, _) =
        RingWriter::create_or_takeover(&path, &SegmentSpec::new(StreamKind::Camera, SLOTS, 512)).unwrap();
    (dir, path, w)
}

/// Peeks the next frame and reads it through its reference; the slot it was in, if valid.
fn read_slot(r: &mut RingReader) -> Option<u64> {
    let (frame, _) = r.peek_next()?;
    let got = r.read_ref_in_place(frame, common::copy_all).frame()?;
    assert_eq!(got.1, pattern(frame.seq().0, got.0.len), "frame {} read wrong", frame.seq().0);
    Some(frame.slot())
}

#[test]
fn a_reader_that_keeps_up_gets_every_frame_from_one_slot() {
    let (_d, path, mut w) = ring();
    w.reuse_released(Some(1));
    let mut r = RingReader::attach(&path, StreamKind::Camera).unwrap();
    let mut slots = Vec::new();
    for seq in 0..40 {
        write_frame(&mut w, len_for(seq, MAX_LEN));
        slots.push(read_slot(&mut r).expect("a frame read in step is valid"));
    }
    // The first frame takes slot 0; every later one the slot its predecessor was read from.
    assert!(slots.iter().all(|s| *s == slots[0]), "slots used: {slots:?}");
    let board = r.scoreboard();
    assert_eq!((board.frames_read, board.stale, board.overruns), (40, 0, 0));
    assert_eq!(board.slots_reused, 39);
}

#[test]
fn without_reuse_or_with_a_reader_behind_the_writer_takes_the_oldest_slot() {
    for reuse in [None, Some(1)] {
        let (_d, path, mut w) = ring();
        w.reuse_released(reuse);
        let mut r = RingReader::attach(&path, StreamKind::Camera).unwrap();
        // Two frames ahead of the reader: it is never done with every frame.
        write_frame(&mut w, 10);
        let mut slots = Vec::new();
        for seq in 1..30 {
            write_frame(&mut w, len_for(seq, MAX_LEN));
            slots.push(read_slot(&mut r).expect("a frame one behind is still held"));
        }
        let want: Vec<u64> = (0..29).map(|s| s % u64::from(SLOTS)).collect();
        assert_eq!(slots, want, "reuse {reuse:?}");
    }
}

/// Two readers while the writer counts one: the second loses frames (the slot of the frame
/// before is reused as soon as the counters cover it), but every frame it accepts is right,
/// on every read path.
#[test]
fn a_reader_not_counted_loses_frames_and_never_reads_a_wrong_one() {
    for path_kind in ReadPath::ALL {
        let (_d, path, mut w) = ring();
        w.reuse_released(Some(1));
        let mut a = RingReader::attach(&path, StreamKind::Camera).unwrap();
        let mut b = RingReader::attach(&path, StreamKind::Camera).unwrap();
        let (mut buf, mut got) = (Vec::new(), 0);
        for seq in 0..200u64 {
            write_frame(&mut w, len_for(seq, MAX_LEN));
            assert!(matches!(read_via(&mut a, path_kind, &mut buf), ReadOutcome::Frame(_)));
            if seq % 3 == 2 {
                // `b` reads in bursts, behind the writer.
                loop {
                    match read_via(&mut b, path_kind, &mut buf) {
                        ReadOutcome::Frame(info) => {
                            assert_eq!(
                                buf,
                                pattern(info.seq.0, info.len),
                                "{path_kind:?}: frame {}",
                                info.seq.0
                            );
                            got += 1;
                        }
                        ReadOutcome::Empty => break,
                        ReadOutcome::Invalid(why) => panic!("{path_kind:?}: {why}"),
                        // Lost (a peek that finds another frame passes over it as `Torn`).
                        ReadOutcome::Torn | ReadOutcome::Overrun { .. } | ReadOutcome::Stale { .. } => {}
                    }
                }
            }
        }
        // `b`'s last burst went through frames 0..=197: it read some and lost the others
        // (it reads all 198 from a writer that does not reuse).
        assert!(got > 0 && got < 198, "{path_kind:?}: {got} of 198 read");
    }
}

/// A scribbler rewrites the map words with random values while the writer reuses slots and
/// a reader reads every frame: frames are lost (counted), none is accepted wrong, and once
/// the scribbler stops the writer's own stores heal the map within one lap of the slots.
#[test]
fn a_scribbled_map_misdirects_readers_only_until_the_writer_comes_round() {
    let (_d, path, mut w) = ring();
    w.reuse_released(Some(1));
    let mut r = RingReader::attach(&path, StreamKind::Camera).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let scribbler = {
        let stop = Arc::clone(&stop);
        let seg = Segment::attach(&path, Some(StreamKind::Camera)).unwrap();
        std::thread::spawn(move || {
            let mut x = 0x2545_F491_4F6C_DD1Du64;
            while !stop.load(Ordering::Relaxed) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let word = layout::slot_map_offset(x % u64::from(SLOTS));
                seg.map.word(word).store(x >> 8, Ordering::Relaxed);
                std::thread::yield_now();
            }
        })
    };
    let mut buf = Vec::new();
    let (mut got, mut lost) = (0, 0);
    for seq in 0..3000u64 {
        write_frame(&mut w, len_for(seq, MAX_LEN));
        match read_via(&mut r, ReadPath::ALL[seq as usize % ReadPath::ALL.len()], &mut buf) {
            ReadOutcome::Frame(info) => {
                assert_eq!(buf, pattern(info.seq.0, info.len), "frame {} accepted wrong", info.seq.0);
                got += 1;
            }
            ReadOutcome::Invalid(why) => panic!("frame {seq}: {why}"),
            _ => lost += 1,
        }
    }
    stop.store(true, Ordering::Relaxed);
    scribbler.join().unwrap();
    assert!(got > 0, "no frame read while the map was scribbled ({lost} lost)");
    // One lap with the reader behind, so that every word is stored again; then in step.
    r.seek(w.next_seq());
    for seq in 0..u64::from(SLOTS) {
        write_frame(&mut w, len_for(seq, MAX_LEN));
    }
    r.seek(w.next_seq());
    for seq in 0..50 {
        write_frame(&mut w, len_for(seq, MAX_LEN));
        assert!(read_slot(&mut r).is_some(), "frame {seq} after the scribbler stopped");
    }
}

/// A writer that died between the two stores of a swap leaves two map words naming one
/// slot; the writer that takes over rebuilds the map from the slots' headers: the newest
/// frame is found where it is, and the next lap of frames uses every slot once.
#[test]
fn a_takeover_rebuilds_a_broken_map_from_the_headers() {
    let (_d, path, mut w) = ring();
    w.reuse_released(Some(1));
    let mut r = RingReader::attach(&path, StreamKind::Camera).unwrap();
    for seq in 0..13u64 {
        write_frame(&mut w, len_for(seq, MAX_LEN));
        assert!(read_slot(&mut r).is_some());
    }
    let last = FrameSeq(w.next_seq().0 - 1);
    let seg = Segment::attach(&path, Some(StreamKind::Camera)).unwrap();
    let n = u64::from(SLOTS);
    let held = seg.slot_index_for(last);
    // Every word now names the slot of the newest frame except its own: not a permutation,
    // and `last`'s word is wrong too.
    for r in 0..n {
        let slot = if r == last.0 % n { (held + 1) % n } else { held };
        seg.map.word(layout::slot_map_offset(r)).store(slot ^ r, Ordering::Relaxed);
    }
    drop(w);
    let (mut w, _) =
        RingWriter::create_or_takeover(&path, &SegmentSpec::new(StreamKind::Camera, SLOTS, 512)).unwrap();
    assert_eq!(seg.slot_index_for(last), held, "the newest frame's word rebuilt from its header");
    let mut buf = Vec::new();
    assert!(matches!(r.read_at(last, &mut buf), ReadOutcome::Frame(_)), "the newest frame readable");
    let mut used: Vec<u64> = (0..n)
        .map(|_| {
            let seq = write_frame(&mut w, 20);
            seg.slot_index_for(seq)
        })
        .collect();
    used.sort_unstable();
    assert_eq!(used, (0..n).collect::<Vec<_>>(), "a lap after the takeover uses every slot once");
}
