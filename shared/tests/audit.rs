//! Regression tests of the memory-model audit of issue 14: header words under the checksum,
//! waking every parked reader, resynchronising behind the writer, checked access ranges and
//! space reserved at creation.
#![cfg(not(loom))]

mod common;

use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use common::{tempdir, write_frame};
use shared::layout;
use shared::ring::{ReadOutcome, RingReader, RingWriter};
use shared::segment::SegmentSpec;
use shared::{FrameSeq, StreamKind};

fn spec(slot_count: u32) -> SegmentSpec {
    SegmentSpec { kind: StreamKind::Lidar, slot_count, slot_capacity: 256, base_seq: FrameSeq(0) }
}

/// Byte offset in the file of word `word` of the frame header of the slot that holds `seq`.
fn header_word_offset(seq: FrameSeq, slot_count: u32, word: usize) -> u64 {
    let index = seq.0 % u64::from(slot_count);
    layout::slot_offset(index, layout::slot_stride(256)) + (layout::SLOT_OFF_FRAME_HEADER + 8 * word) as u64
}

#[test]
fn every_scribbled_header_word_of_a_committed_slot_is_refused() {
    let dir = tempdir();
    let path = dir.path().join("lidar.seg");
    // A takeover first, so that incarnation 1 is an old but plausible value to forge.
    drop(RingWriter::create_or_takeover(&path, &spec(8)).unwrap());
    let (mut w, _) = RingWriter::create_or_takeover(&path, &spec(8)).unwrap();
    let mut r = RingReader::attach(&path, StreamKind::Lidar).unwrap();
    let file = std::fs::OpenOptions::new().read(true).write(true).open(&path).unwrap();
    let names = ["frame_seq", "capture_ns", "epoch", "payload_len", "incarnation", "checksum"];
    let mut buf = Vec::new();
    for (word, name) in names.iter().enumerate() {
        let seq = write_frame(&mut w, 100);
        let off = header_word_offset(seq, 8, word);
        let mut old = [0u8; 8];
        file.read_exact_at(&mut old, off).unwrap();
        let old = u64::from_le_bytes(old);
        let forged = match *name {
            "frame_seq" => old + 8, // a later frame of the same slot
            "payload_len" => old - 1,
            "incarnation" => 1, // the previous writer's
            _ => old ^ 1,
        };
        file.write_all_at(&forged.to_le_bytes(), off).unwrap();
        let outcome = r.read_next(&mut buf);
        assert!(matches!(outcome, ReadOutcome::Invalid(_)), "forged {name}: {outcome:?}");
        // Past the forged slot, frames read again.
        let seq = write_frame(&mut w, 100);
        assert!(matches!(r.read_next(&mut buf), ReadOutcome::Frame(f) if f.seq == seq), "after {name}");
    }
    assert_eq!(r.scoreboard().invalid, names.len() as u64);
}

/// A reader's own process ends its parked readers' waits without a frame: `wake_waiters`
/// after the stop their `give_up` reads, whether a reader is asleep then or about to sleep.
#[test]
fn wake_waiters_ends_the_waits_whose_give_up_says_stop() {
    const READERS: usize = 3;
    let dir = tempdir();
    let path = dir.path().join("lidar.seg");
    let (_w, _) = RingWriter::create_or_takeover(&path, &spec(8)).unwrap();
    let file = std::fs::File::open(&path).unwrap();
    let waiters = || {
        let mut b = [0u8; 8];
        file.read_exact_at(&mut b, layout::OFF_WAITERS as u64).unwrap();
        u64::from_le_bytes(b)
    };
    let stop = std::sync::atomic::AtomicBool::new(false);
    // Far longer than the test waits: a wait that only its timeout ends fails the test.
    let timeout = Duration::from_secs(120);
    let waker = RingReader::attach(&path, StreamKind::Lidar).unwrap();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..READERS)
            .map(|_| {
                let r = RingReader::attach(&path, StreamKind::Lidar).unwrap();
                let stop = &stop;
                s.spawn(move || r.wait_until(timeout, || stop.load(std::sync::atomic::Ordering::Acquire)))
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(10);
        while waiters() < READERS as u64 {
            assert!(Instant::now() < deadline, "readers never parked");
            std::thread::sleep(Duration::from_millis(5));
        }
        // A wake with `give_up` still false: every reader parks again.
        waker.wake_waiters();
        std::thread::sleep(Duration::from_millis(200));
        assert!(handles.iter().all(|h| !h.is_finished()), "a wake alone ended a wait");
        stop.store(true, std::sync::atomic::Ordering::Release);
        waker.wake_waiters();
        let woken = Instant::now();
        for h in handles {
            assert!(!h.join().unwrap(), "no frame was published");
        }
        assert!(woken.elapsed() < timeout / 4, "a parked reader slept through the stop");
    });
    assert_eq!(waiters(), 0);
}

/// One thread parked on two rings at once wakes for a frame on either, counts itself in both
/// rings' waiters while asleep and in neither after, and ends on `give_up` plus a wake.
#[test]
fn a_wait_on_two_rings_wakes_for_a_frame_on_either() {
    let dir = tempdir();
    let paths = ["camera", "lidar"].map(|n| dir.path().join(format!("{n}.seg")));
    let mut writers = paths.each_ref().map(|p| RingWriter::create_or_takeover(p, &spec(8)).unwrap().0);
    let files = paths.each_ref().map(|p| std::fs::File::open(p).unwrap());
    let waiters = |i: usize| {
        let mut b = [0u8; 8];
        files[i].read_exact_at(&mut b, layout::OFF_WAITERS as u64).unwrap();
        u64::from_le_bytes(b)
    };
    let timeout = Duration::from_secs(120);
    let stop = std::sync::atomic::AtomicBool::new(false);
    // Frames written so far on each ring: a reader placed there waits for the next.
    let mut written = [0u64; 2];
    let at_the_end = |written: [u64; 2]| {
        [0, 1].map(|i| {
            let mut r = RingReader::attach(&paths[i], StreamKind::Lidar).unwrap();
            r.seek(FrameSeq(written[i]));
            r
        })
    };
    for ring in [1, 0] {
        let readers = at_the_end(written);
        std::thread::scope(|s| {
            let h = s.spawn(|| RingReader::wait_any([&readers[0], &readers[1]], timeout, || false));
            let deadline = Instant::now() + Duration::from_secs(10);
            while waiters(0) == 0 || waiters(1) == 0 {
                assert!(Instant::now() < deadline, "the reader never parked on both rings");
                std::thread::sleep(Duration::from_millis(5));
            }
            write_frame(&mut writers[ring], 16);
            written[ring] += 1;
            let published = Instant::now();
            assert!(h.join().unwrap(), "a frame on ring {ring} did not end the wait");
            assert!(published.elapsed() < timeout / 4, "the reader slept through the frame on ring {ring}");
        });
        assert_eq!((waiters(0), waiters(1)), (0, 0), "a woken reader stayed counted");
    }
    // No frame: `give_up` and a wake on either ring end the wait.
    let readers = at_the_end(written);
    std::thread::scope(|s| {
        let h = s.spawn(|| {
            RingReader::wait_any([&readers[0], &readers[1]], timeout, || {
                stop.load(std::sync::atomic::Ordering::Acquire)
            })
        });
        while waiters(0) == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
        stop.store(true, std::sync::atomic::Ordering::Release);
        readers[1].wake_waiters();
        let woken = Instant::now();
        assert!(!h.join().unwrap(), "no frame was published");
        assert!(woken.elapsed() < timeout / 4, "the wait slept through the wake");
    });
}

#[test]
fn one_commit_wakes_every_parked_reader() {
    const READERS: usize = 4;
    let dir = tempdir();
    let path = dir.path().join("lidar.seg");
    let (mut w, _) = RingWriter::create_or_takeover(&path, &spec(8)).unwrap();
    let file = std::fs::File::open(&path).unwrap();
    let waiters = || {
        let mut b = [0u8; 8];
        file.read_exact_at(&mut b, layout::OFF_WAITERS as u64).unwrap();
        u64::from_le_bytes(b)
    };
    let timeout = Duration::from_secs(20);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..READERS)
            .map(|_| {
                let r = RingReader::attach(&path, StreamKind::Lidar).unwrap();
                s.spawn(move || {
                    let moved = r.wait(timeout);
                    (moved, Instant::now())
                })
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(10);
        while waiters() < READERS as u64 {
            assert!(Instant::now() < deadline, "readers never parked");
            std::thread::sleep(Duration::from_millis(5));
        }
        // Let every reader get from the WAITERS increment into the futex wait.
        std::thread::sleep(Duration::from_millis(200));
        write_frame(&mut w, 8);
        let committed = Instant::now();
        for h in handles {
            let (moved, at) = h.join().unwrap();
            assert!(moved);
            let late = at.saturating_duration_since(committed);
            assert!(late < timeout / 4, "a parked reader slept through the commit ({late:?})");
        }
    });
    assert_eq!(waiters(), 0);
}

#[test]
fn a_lapped_reader_resyncs_behind_the_writer_and_makes_progress() {
    let dir = tempdir();
    let path = dir.path().join("lidar.seg");
    let (mut w, _) = RingWriter::create_or_takeover(&path, &spec(8)).unwrap();
    let mut r = RingReader::attach(&path, StreamKind::Lidar).unwrap();
    let mut buf = Vec::new();
    for _ in 0..30 {
        write_frame(&mut w, 64);
    }
    // The writer commits one frame for every read the reader makes (and two for every
    // third): the reader falls behind, is lapped, resyncs, and must keep reading frames
    // instead of chasing the slot being overwritten.
    let (mut frames, mut overruns) = (0, 0);
    for step in 0..300 {
        write_frame(&mut w, 64);
        if step % 3 == 0 {
            write_frame(&mut w, 64);
        }
        match r.read_next(&mut buf) {
            ReadOutcome::Frame(f) => {
                assert_eq!(buf, common::pattern(f.seq.0, 64));
                frames += 1;
            }
            ReadOutcome::Overrun { lost } => {
                assert!(lost > 0);
                overruns += 1;
            }
            other => panic!("step {step}: {other:?}"),
        }
    }
    assert!(overruns > 0, "the reader was never lapped");
    assert!(frames > 200, "the reader chased the writer: {frames} frames, {overruns} overruns");
    let board = r.scoreboard();
    assert_eq!(board.overruns, overruns);
    assert_eq!(board.frames_read, frames);
}

#[test]
fn huge_ranges_are_refused_not_read_out_of_bounds() {
    let dir = tempdir();
    let path = dir.path().join("lidar.seg");
    let (_w, _) = RingWriter::create_or_takeover(&path, &spec(8)).unwrap();
    let seg = shared::segment::Segment::<shared::mapping::ReadWrite>::attach(&path, Some(StreamKind::Lidar))
        .unwrap();
    for len in [usize::MAX, usize::MAX - 7, usize::MAX / 8 + 1, 1 << 62] {
        let mut buf = Vec::new();
        for what in ["copy_out", "checksum"] {
            let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match what {
                "copy_out" => seg.map.copy_out(64, len, &mut buf),
                _ => seg.map.checksum(64, len),
            }))
            .expect_err("a huge range must be refused");
            let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
            assert!(msg.contains("out of bounds"), "{what}({len}): {msg}");
        }
    }
}

#[test]
fn creation_reserves_the_space_up_front() {
    let dir = tempdir();
    let path = dir.path().join("lidar.seg");
    // 65536 slots of 128 MiB: 8 TiB, more than any test machine has free, though a sparse
    // file of that size is fine (so without the reservation creation succeeds, and the first
    // touch of an unbacked page later raises SIGBUS).
    let huge = SegmentSpec {
        kind: StreamKind::Lidar,
        slot_count: 1 << 16,
        slot_capacity: layout::MAX_SLOT_CAPACITY / 2,
        base_seq: FrameSeq(0),
    };
    let needed = huge.file_size().unwrap();
    match RingWriter::create_or_takeover(&path, &huge) {
        Err(shared::segment::AttachError::NoSpace { needed: n }) => assert_eq!(n, needed),
        other => panic!("expected NoSpace, got {:?}", other.map(|_| ())),
    }
    assert!(!path.exists(), "a segment that could not be reserved is removed");
}
