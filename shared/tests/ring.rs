//! Unit-level tests of rings: wrap-around, outcomes, takeover, attach errors, truncation.
#![cfg(not(loom))]

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{pattern, tempdir, write_frame};
use shared::frames::PayloadSink;
use shared::ring::{FrameMeta, InvalidFrame, ReadOutcome, RingReader, RingWriter, WriterStart};
use shared::segment::{AttachError, SegmentSpec};
use shared::{CalibEpoch, FrameSeq, StreamKind, TimestampNs};

fn spec(base: u64) -> SegmentSpec {
    SegmentSpec { kind: StreamKind::Lidar, slot_count: 4, slot_capacity: 256, base_seq: FrameSeq(base) }
}

#[test]
fn frames_round_trip_across_u64_wrap() {
    let dir = tempdir();
    let path = dir.path().join("lidar.seg");
    let base = u64::MAX - 5;
    let (mut w, start) = RingWriter::create_or_takeover(&path, &spec(base)).unwrap();
    assert_eq!(start, WriterStart::Created);
    let mut r = RingReader::attach(&path, StreamKind::Lidar).unwrap();
    let mut buf = Vec::new();
    assert_eq!(r.read_next(&mut buf), ReadOutcome::Empty);
    for k in 0..20u64 {
        let len = common::len_for(k, 256);
        let seq = write_frame(&mut w, len);
        assert_eq!(seq, FrameSeq(base.wrapping_add(k)));
        match r.read_next(&mut buf) {
            ReadOutcome::Frame(info) => {
                assert_eq!(info.seq, seq);
                assert_eq!(info.len, len);
                assert_eq!(info.epoch, CalibEpoch(seq.0 % 5 + 1));
                assert_eq!(buf, pattern(seq.0, len));
            }
            other => panic!("frame {k}: {other:?}"),
        }
    }
    let board = r.scoreboard();
    assert_eq!(board.frames_written, 20);
    assert_eq!(board.frames_read, 20);
}

#[test]
fn lapped_reader_reports_overrun_then_reads_behind_the_writer() {
    let dir = tempdir();
    let path = dir.path().join("lidar.seg");
    let (mut w, _) = RingWriter::create_or_takeover(&path, &spec(u64::MAX - 2)).unwrap();
    let mut r = RingReader::attach(&path, StreamKind::Lidar).unwrap();
    for _ in 0..10 {
        write_frame(&mut w, 64);
    }
    let mut buf = Vec::new();
    // Lapped: it resumes behind the writer (one slot of margin in a ring of 4), not on the
    // slot the writer takes next.
    assert_eq!(r.read_next(&mut buf), ReadOutcome::Overrun { lost: 7 });
    let mut seqs = Vec::new();
    while let ReadOutcome::Frame(info) = r.read_next(&mut buf) {
        seqs.push(info.seq);
        assert_eq!(buf, pattern(info.seq.0, 64));
    }
    let base = u64::MAX - 2;
    assert_eq!(seqs, (7..10).map(|k| FrameSeq(base.wrapping_add(k))).collect::<Vec<_>>());
    assert_eq!(r.scoreboard().overruns, 1);
}

/// `held` is one snapshot: its oldest never lies past its cursor, however far the writer
/// runs between two calls, while `cursor` and then `oldest` can straddle a lap (a walk from
/// the second to the first would never meet its end: the calibration table's readers once
/// hung so).
#[test]
fn held_is_one_snapshot_of_both_ends_across_the_wrap() {
    let dir = tempdir();
    let path = dir.path().join("lidar.seg");
    let base = u64::MAX - 3;
    let (mut w, _) = RingWriter::create_or_takeover(&path, &spec(base)).unwrap();
    let r = RingReader::attach(&path, StreamKind::Lidar).unwrap();
    assert_eq!(r.held(), (FrameSeq(base), FrameSeq(base)));
    write_frame(&mut w, 64);
    write_frame(&mut w, 64);
    assert_eq!(r.held(), (FrameSeq(base), FrameSeq(base.wrapping_add(2))));
    let cursor = r.cursor();
    for _ in 0..7 {
        write_frame(&mut w, 64);
    }
    // Two loads with a lap between them: the oldest is past the cursor read first.
    let oldest = r.oldest();
    assert_eq!(oldest.distance_from(cursor), 3);
    let (oldest, cursor) = r.held();
    assert_eq!((oldest, cursor), (FrameSeq(base.wrapping_add(5)), FrameSeq(base.wrapping_add(9))));
    assert_eq!(cursor.distance_from(oldest), 4, "a ring's worth, across u64's wrap");
}

#[test]
fn abandoned_loan_is_never_read_and_read_at_sees_slot_reuse() {
    let dir = tempdir();
    let path = dir.path().join("lidar.seg");
    let (mut w, _) = RingWriter::create_or_takeover(&path, &spec(0)).unwrap();
    let mut r = RingReader::attach(&path, StreamKind::Lidar).unwrap();
    {
        let mut loan = w.loan();
        loan.push(&[1; 32]).unwrap();
        // Dropped without commit.
    }
    let mut buf = Vec::new();
    assert_eq!(r.read_next(&mut buf), ReadOutcome::Empty, "an abandoned loan publishes nothing");
    let s0 = write_frame(&mut w, 16);
    assert!(matches!(r.read_at(s0, &mut buf), ReadOutcome::Frame(_)));
    for _ in 0..4 {
        write_frame(&mut w, 16);
    }
    assert!(matches!(r.read_at(s0, &mut buf), ReadOutcome::Overrun { .. }));
    assert!(matches!(r.read_at(FrameSeq(100), &mut buf), ReadOutcome::Empty));
}

#[test]
fn loan_refuses_oversized_payload() {
    let dir = tempdir();
    let path = dir.path().join("lidar.seg");
    let (mut w, _) = RingWriter::create_or_takeover(&path, &spec(0)).unwrap();
    let mut loan = w.loan();
    loan.push(&[0; 200]).unwrap();
    let err = loan.push(&[0; 100]).unwrap_err();
    assert_eq!((err.needed, err.capacity), (300, 256));
    assert!(loan.write_at(usize::MAX, &[1]).is_err());
    assert_eq!(loan.len(), 200);
}

#[test]
fn second_writer_is_refused_and_takeover_continues_the_sequence() {
    let dir = tempdir();
    let path = dir.path().join("lidar.seg");
    let (mut w, _) = RingWriter::create_or_takeover(&path, &spec(0)).unwrap();
    assert!(matches!(RingWriter::create_or_takeover(&path, &spec(0)), Err(AttachError::WriterLocked)));
    write_frame(&mut w, 32);
    write_frame(&mut w, 32);
    // Leave a write in progress, as a writer killed mid-frame would.
    let loan = w.loan();
    std::mem::forget(loan);
    assert!(shared::ring::writer_alive(&path));
    drop(w);
    assert!(!shared::ring::writer_alive(&path));
    let mut r = RingReader::attach(&path, StreamKind::Lidar).unwrap();
    r.seek_oldest();
    let (mut w2, start) = RingWriter::create_or_takeover(&path, &spec(0)).unwrap();
    assert_eq!(start, WriterStart::TookOver { incarnation: shared::Incarnation(2), repaired: 1 });
    assert_eq!(w2.next_seq(), FrameSeq(2));
    write_frame(&mut w2, 32);
    let mut buf = Vec::new();
    let mut got = Vec::new();
    while let ReadOutcome::Frame(info) = r.read_next(&mut buf) {
        got.push((info.seq.0, info.incarnation.0));
    }
    assert_eq!(got, vec![(0, 1), (1, 1), (2, 2)]);
    assert!(!path.with_extension("seg.lock").exists() || shared::ring::writer_alive(&path));
    let mismatch = SegmentSpec { slot_capacity: 512, ..spec(0) };
    drop(w2);
    assert!(matches!(
        RingWriter::create_or_takeover(&path, &mismatch),
        Err(AttachError::GeometryMismatch { field: "slot_capacity", .. })
    ));
}

#[test]
fn corrupt_payload_is_refused_by_checksum() {
    let dir = tempdir();
    let path = dir.path().join("lidar.seg");
    let (mut w, _) = RingWriter::create_or_takeover(&path, &spec(0)).unwrap();
    let mut r = RingReader::attach(&path, StreamKind::Lidar).unwrap();
    write_frame(&mut w, 100);
    // Flip a payload byte of slot 0 behind the writer's back.
    let file = std::fs::OpenOptions::new().read(true).write(true).open(&path).unwrap();
    let off = shared::layout::HEADER_SIZE as u64 + shared::layout::SLOT_OFF_PAYLOAD as u64 + 10;
    std::os::unix::fs::FileExt::write_at(&file, &[0xFF], off).unwrap();
    let mut buf = Vec::new();
    assert_eq!(r.read_next(&mut buf), ReadOutcome::Invalid(InvalidFrame::ChecksumMismatch));
    assert_eq!(r.scoreboard().invalid, 1);
}

#[test]
fn attach_refuses_what_it_cannot_trust() {
    let dir = tempdir();
    let d = dir.path();
    let attach = |p: &std::path::Path| RingReader::attach(p, StreamKind::Camera).map(|_| ());
    assert!(matches!(attach(&d.join("missing")), Err(AttachError::NotFound)));
    assert!(matches!(attach(d), Err(AttachError::NotRegularFile { file_type: "directory" })));
    let fifo = d.join("fifo");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    assert!(matches!(attach(&fifo), Err(AttachError::NotRegularFile { file_type: "fifo" })));
    let small = d.join("small");
    std::fs::write(&small, b"tiny").unwrap();
    std::fs::set_permissions(&small, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(matches!(attach(&small), Err(AttachError::TooSmall { size: 4, .. })));
    let garbage = d.join("garbage");
    std::fs::write(&garbage, vec![0xA5; 8192]).unwrap();
    std::fs::set_permissions(&garbage, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(matches!(attach(&garbage), Err(AttachError::BadMagic { .. })));
    let good = d.join("lidar.seg");
    let (_w, _) = RingWriter::create_or_takeover(&good, &spec(0)).unwrap();
    assert!(matches!(attach(&good), Err(AttachError::WrongKind { expected: StreamKind::Camera, found: 2 })));
    let link = d.join("link");
    std::os::unix::fs::symlink(&good, &link).unwrap();
    assert!(matches!(RingReader::attach(&link, StreamKind::Lidar), Err(AttachError::SymbolicLink)));
    std::fs::set_permissions(&good, std::fs::Permissions::from_mode(0o666)).unwrap();
    assert!(matches!(
        RingReader::attach(&good, StreamKind::Lidar),
        Err(AttachError::WritableByOthers { .. })
    ));
    std::fs::set_permissions(&good, std::fs::Permissions::from_mode(0o600)).unwrap();
    // Declared geometry larger than the file.
    let cut = d.join("cut.seg");
    std::fs::copy(&good, &cut).unwrap();
    std::fs::set_permissions(&cut, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::OpenOptions::new().write(true).open(&cut).unwrap().set_len(5000).unwrap();
    assert!(matches!(
        RingReader::attach(&cut, StreamKind::Lidar),
        Err(AttachError::TooSmall { size: 5000, .. })
    ));
    // Bad geometry word.
    let geo = d.join("geo.seg");
    std::fs::copy(&good, &geo).unwrap();
    std::fs::set_permissions(&geo, std::fs::Permissions::from_mode(0o600)).unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(&geo).unwrap();
    std::os::unix::fs::FileExt::write_at(&f, &3u64.to_le_bytes(), shared::layout::OFF_SLOT_COUNT as u64)
        .unwrap();
    assert!(matches!(
        RingReader::attach(&geo, StreamKind::Lidar),
        Err(AttachError::BadGeometry { field: "slot_count", value: 3 })
    ));
    // Every error prints as one line.
    for e in [attach(&garbage).unwrap_err(), attach(&fifo).unwrap_err()] {
        assert!(!e.to_string().contains('\n'));
    }
}

#[test]
fn truncation_under_a_live_reader_does_not_kill_it() {
    let dir = tempdir();
    let path = dir.path().join("lidar.seg");
    let big = SegmentSpec {
        kind: StreamKind::Lidar,
        slot_count: 4,
        slot_capacity: 64 * 1024,
        base_seq: FrameSeq(0),
    };
    let (mut w, _) = RingWriter::create_or_takeover(&path, &big).unwrap();
    let mut r = RingReader::attach(&path, StreamKind::Lidar).unwrap();
    write_frame(&mut w, 60_000);
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(4096).unwrap();
    let mut buf = Vec::new();
    // Without the guard this read dies of SIGBUS.
    assert_eq!(r.read_next(&mut buf), ReadOutcome::Invalid(InvalidFrame::SegmentTruncated));
    // The writer survives too, and learns that its frames go nowhere.
    write_frame(&mut w, 60_000);
    assert!(w.truncated());
}

#[test]
fn wait_times_out_when_idle_and_wakes_on_commit() {
    let dir = tempdir();
    let path = dir.path().join("lidar.seg");
    let (mut w, _) = RingWriter::create_or_takeover(&path, &spec(0)).unwrap();
    let r = RingReader::attach(&path, StreamKind::Lidar).unwrap();
    assert!(!r.wait(std::time::Duration::from_millis(20)));
    std::thread::scope(|s| {
        let h = s.spawn(|| r.wait(std::time::Duration::from_secs(30)));
        // The reader may or may not be parked yet; either way it must see the commit.
        let mut loan = w.loan();
        loan.push(&[7; 8]).unwrap();
        loan.commit(FrameMeta { capture: TimestampNs(1), epoch: CalibEpoch(1) });
        assert!(h.join().unwrap());
    });
}

mod out_of_order {
    use super::*;
    use proptest::prelude::*;

    /// A two-slot ring of `kind` with slots of `capacity` bytes: its directory, its writer
    /// and a reader.
    fn ring(kind: StreamKind, capacity: u64) -> (tempfile::TempDir, RingWriter, RingReader) {
        let dir = tempdir();
        let path = dir.path().join("ring.seg");
        let (w, _) = RingWriter::create_or_takeover(&path, &SegmentSpec::new(kind, 2, capacity)).unwrap();
        let r = RingReader::attach(&path, kind).unwrap();
        (dir, w, r)
    }

    /// A write: `push` when `at` is `None`, else `write_at(at, ..)`; `n` bytes of `fill`.
    fn write() -> impl Strategy<Value = (Option<usize>, usize, u8)> {
        (prop::option::weighted(0.8, 0usize..1900), 0usize..300, any::<u8>())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        /// However a frame is written (in order, out of order, over itself, at any
        /// alignment), the committed checksum is the one of what the slot holds: the frame is
        /// accepted, and holds every byte as last written.
        #[test]
        fn any_order_of_writes_commits_a_frame_that_validates(
            frames in prop::collection::vec(prop::collection::vec(write(), 0..24), 1..6),
        ) {
            let (_dir, mut w, mut r) = ring(StreamKind::Lidar, 2200);
            let mut buf = Vec::new();
            for writes in frames {
                let mut loan = w.loan();
                // Which bytes were written, with what: the rest holds an older frame's bytes.
                let mut model: Vec<Option<u8>> = Vec::new();
                for (k, (at, n, fill)) in writes.into_iter().enumerate() {
                    let bytes: Vec<u8> = (0..n).map(|i| fill.wrapping_add((i * 7 + k) as u8)).collect();
                    let at = at.unwrap_or(loan.len());
                    if at + n > loan.capacity() {
                        continue;
                    }
                    if at == loan.len() && k % 2 == 0 { loan.push(&bytes) } else { loan.write_at(at, &bytes) }.unwrap();
                    if model.len() < at + n {
                        model.resize(at + n, None);
                    }
                    for (m, b) in model[at..at + n].iter_mut().zip(&bytes) {
                        *m = Some(*b);
                    }
                }
                let seq = loan.commit(FrameMeta { capture: TimestampNs(1), epoch: CalibEpoch(1) });
                match r.read_next(&mut buf) {
                    ReadOutcome::Frame(info) => {
                        prop_assert_eq!(info.seq, seq);
                        prop_assert_eq!(buf.len(), model.len());
                        for (i, (got, want)) in buf.iter().zip(&model).enumerate() {
                            prop_assert!(want.is_none_or(|w| w == *got), "byte {}: {} vs {:?}", i, got, want);
                        }
                    }
                    other => prop_assert!(false, "frame {:?}: {:?}", seq, other),
                }
            }
        }
    }

    /// The camera's way: a header, then bands of two planes in whatever order they finish.
    #[test]
    fn bands_written_out_of_order_commit_a_frame_that_validates() {
        let (_dir, mut w, mut r) = ring(StreamKind::Camera, 64_000);
        let (header, band, bands) = (40usize, 1000usize, 12usize);
        let total = header + 5 * band * bands;
        let mut want = vec![0u8; total];
        let mut loan = w.loan();
        loan.write_at(total - 1, &[0]).unwrap();
        loan.write_at(0, &[9; 40]).unwrap();
        want[..header].fill(9);
        for b in [3, 0, 11, 1, 2, 7, 4, 5, 10, 6, 9, 8] {
            let rgb = vec![b as u8 + 1; 3 * band];
            let label = vec![b as u8 + 100; 2 * band];
            let (o3, o2) = (header + 3 * band * b, header + 3 * band * bands + 2 * band * b);
            loan.write_at(o3, &rgb).unwrap();
            loan.write_at(o2, &label).unwrap();
            want[o3..o3 + rgb.len()].copy_from_slice(&rgb);
            want[o2..o2 + label.len()].copy_from_slice(&label);
        }
        loan.commit(FrameMeta { capture: TimestampNs(1), epoch: CalibEpoch(1) });
        let mut buf = Vec::new();
        assert!(matches!(r.read_next(&mut buf), ReadOutcome::Frame(_)));
        assert_eq!(buf, want);
    }
}
