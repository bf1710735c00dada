//! Stress and adversarial tests of the seqlock ring with real threads.
#![cfg(not(loom))]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{pattern, read_via, tempdir, write_frame, ReadPath};
use shared::ring::{ReadOutcome, RingReader, RingWriter};
use shared::segment::SegmentSpec;
use shared::{FrameSeq, StreamKind};

/// One writer, three readers, a small ring so readers are lapped and see writes in
/// progress all the time. Every accepted frame must match its self-checking pattern. The
/// readers take one path each: copy-out, in place, and peek then in place by reference.
#[test]
fn one_writer_three_readers_accept_no_torn_frame() {
    let board = stress(None);
    assert_eq!(board.slots_reused, 0);
}

/// The same with a writer that reuses the slot of the frame before whenever the readers'
/// counters cover one reader's worth of frames: as they race, the slot the writer takes is
/// often one a reader is still reading, or one it is about to read. Nothing torn or mixed
/// is accepted.
#[test]
fn a_writer_reusing_released_slots_never_gets_a_torn_frame_accepted() {
    let board = stress(Some(1));
    eprintln!(
        "stress with reuse: {} of {} frames into a released slot",
        board.slots_reused, board.frames_written
    );
    assert!(board.slots_reused > 0, "the writer never reused a slot");
}

fn stress(reuse: Option<u64>) -> shared::ring::Scoreboard {
    let dir = tempdir();
    let path = dir.path().join("lidar.seg");
    let spec = SegmentSpec {
        kind: StreamKind::Lidar,
        slot_count: 16,
        // Frames up to 16 KiB: pushes from 4 KiB take the string stores (`mapping/wide.rs`).
        slot_capacity: 16384,
        base_seq: FrameSeq(u64::MAX - 1000),
    };
    let (mut w, _) = RingWriter::create_or_takeover(&path, &spec).unwrap();
    w.reuse_released(reuse);
    let done = AtomicBool::new(false);
    const FRAMES: u64 = 60_000;
    let totals = std::thread::scope(|s| {
        let readers: Vec<_> = ReadPath::ALL
            .into_iter()
            .map(|via| {
                let path = &path;
                let done = &done;
                s.spawn(move || {
                    let mut r = RingReader::attach(path, StreamKind::Lidar).unwrap();
                    let mut buf = Vec::new();
                    let (mut frames, mut torn, mut overruns) = (0u64, 0u64, 0u64);
                    loop {
                        match read_via(&mut r, via, &mut buf) {
                            ReadOutcome::Frame(info) => {
                                assert_eq!(
                                    buf,
                                    pattern(info.seq.0, info.len),
                                    "torn frame {:?} accepted via {via:?}",
                                    info.seq
                                );
                                frames += 1;
                            }
                            ReadOutcome::Empty => {
                                if done.load(Ordering::Acquire) {
                                    break;
                                }
                                r.wait(Duration::from_millis(10));
                            }
                            ReadOutcome::Torn => torn += 1,
                            ReadOutcome::Overrun { .. } | ReadOutcome::Stale { .. } => overruns += 1,
                            ReadOutcome::Invalid(why) => panic!("writer is honest, yet: {why}"),
                        }
                    }
                    (frames, torn, overruns)
                })
            })
            .collect();
        for k in 0..FRAMES {
            write_frame(&mut w, common::len_for(k, 16384));
            // Give readers a chance to keep up now and then, so the test sees both clean
            // reads and reads racing the writer (on 2 cores, 4 threads contend).
            if k % 16 == 0 {
                std::thread::yield_now();
            }
        }
        done.store(true, Ordering::Release);
        readers.into_iter().map(|h| h.join().unwrap()).collect::<Vec<_>>()
    });
    let read: u64 = totals.iter().map(|t| t.0).sum();
    eprintln!("stress: per reader (frames, torn outcomes, overrun/stale) = {totals:?}");
    assert!(totals.iter().all(|t| t.0 > 0), "a reader read nothing");
    let board = RingReader::attach(&path, StreamKind::Lidar).unwrap().scoreboard();
    assert_eq!(board.frames_written, FRAMES);
    assert_eq!(board.frames_read, read);
    assert_eq!(board.invalid, 0);
    board
}

/// A thread scribbles random bytes over the whole segment (header included) while a
/// reader reads: the reader must not panic, hang, or return a frame that is not exactly
/// what an honest writer would have written.
#[test]
fn random_bytes_over_the_segment_never_yield_an_invalid_frame() {
    let dir = tempdir();
    let path = dir.path().join("lidar.seg");
    let spec =
        SegmentSpec { kind: StreamKind::Lidar, slot_count: 8, slot_capacity: 512, base_seq: FrameSeq(0) };
    let (mut w, _) = RingWriter::create_or_takeover(&path, &spec).unwrap();
    for k in 0..8 {
        write_frame(&mut w, common::len_for(k, 512));
    }
    let size = std::fs::metadata(&path).unwrap().len();
    // Attach before the scribbling starts: attach checks the header, which is about to be
    // garbage; what is under test is a reader that already trusts the segment's geometry.
    let mut r = RingReader::attach(&path, StreamKind::Lidar).unwrap();
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            let mut x = 0x1234_5678_9ABC_DEF0u64;
            let mut rng = move || {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x
            };
            for _ in 0..200_000 {
                let off = rng() % size;
                let n = (rng() % 16) as usize + 1;
                let bytes: Vec<u8> = (0..n).map(|_| rng() as u8).collect();
                std::os::unix::fs::FileExt::write_at(&f, &bytes, off).unwrap();
            }
            done.store(true, Ordering::Release);
        });
        let mut buf = Vec::new();
        let mut outcomes = [0u64; 6];
        while !done.load(Ordering::Acquire) {
            // The scribbler moves the cursor anywhere: jump around to read what slots hold.
            r.seek(FrameSeq(r.cursor().0.wrapping_sub(1 + outcomes.iter().sum::<u64>() % 8)));
            let via = ReadPath::ALL[(outcomes.iter().sum::<u64>() as usize) % ReadPath::ALL.len()];
            let o = read_via(&mut r, via, &mut buf);
            let i = match o {
                ReadOutcome::Frame(info) => {
                    assert!(info.len <= 512);
                    assert_eq!(
                        buf,
                        pattern(info.seq.0, info.len),
                        "a scribbled frame was accepted via {via:?}"
                    );
                    0
                }
                ReadOutcome::Empty => 1,
                ReadOutcome::Torn => 2,
                ReadOutcome::Overrun { .. } => 3,
                ReadOutcome::Stale { .. } => 4,
                ReadOutcome::Invalid(_) => 5,
            };
            outcomes[i] += 1;
            let _ = r.wait(Duration::from_micros(1));
        }
        eprintln!("adversarial outcomes [frame, empty, torn, overrun, stale, invalid] = {outcomes:?}");
        assert!(outcomes[5] + outcomes[4] + outcomes[3] > 0, "the scribbler never disturbed the reader");
    });
}
