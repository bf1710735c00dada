//! Cross-process test: a child process writes frames, the parent reads them, and the child
//! is SIGKILLed at random points, often in the middle of a frame. Nothing torn is ever
//! accepted, and each restarted writer takes over (new incarnation, odd slots repaired, the
//! slot map rebuilt: every other child reuses the slots its reader releases, so kills land
//! between the two stores of a swap too).
#![cfg(not(loom))]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{pattern, read_via, tempdir, ReadPath};
use shared::frames::PayloadSink;
use shared::ring::{FrameMeta, ReadOutcome, RingReader, RingWriter, WriterStart};
use shared::segment::SegmentSpec;
use shared::{CalibEpoch, FrameSeq, StreamKind, TimestampNs};

const CHILD_ENV: &str = "EPOCHFUSE_TEST_CHILD_SEGMENT";
const REUSE_ENV: &str = "EPOCHFUSE_TEST_CHILD_REUSE";
const CAPACITY: u64 = 256 * 1024;

fn spec() -> SegmentSpec {
    SegmentSpec {
        kind: StreamKind::Camera,
        slot_count: 8,
        slot_capacity: CAPACITY,
        base_seq: FrameSeq(u64::MAX - 50),
    }
}

/// The child's body: takes the segment over and writes large frames forever, in many
/// small pushes so that a kill lands mid-frame most of the time.
#[test]
#[ignore = "entry point of the child process spawned by kill_writer_mid_frame_many_times"]
fn child_writer_entry() {
    let Some(path) = std::env::var_os(CHILD_ENV) else { return };
    let (mut w, _) = RingWriter::create_or_takeover(std::path::Path::new(&path), &spec()).unwrap();
    if std::env::var_os(REUSE_ENV).is_some() {
        w.reuse_released(Some(1));
    }
    loop {
        let mut loan = w.loan();
        let seq = loan.seq().0;
        let len = common::len_for(seq, CAPACITY as usize);
        // Every other frame in 8 KiB pushes, which take the string stores (`mapping/wide.rs`).
        let push = if seq % 2 == 0 { 1024 } else { 8192 };
        for chunk in pattern(seq, len).chunks(push) {
            loan.push(chunk).unwrap();
        }
        loan.commit(FrameMeta { capture: TimestampNs(seq), epoch: CalibEpoch(1) });
    }
}

/// A child writer that is killed and reaped when dropped, also when an assertion fails
/// first: a child left running keeps the test's output pipe open, and the run would hang.
struct ChildWriter(Child);

impl Drop for ChildWriter {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_child(path: &std::path::Path, reuse: bool) -> ChildWriter {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    if reuse {
        cmd.env(REUSE_ENV, "1");
    }
    cmd.args(["--ignored", "--exact", "child_writer_entry", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, path)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map(ChildWriter)
        .unwrap()
}

#[test]
fn kill_writer_mid_frame_many_times() {
    let dir = tempdir();
    let path = dir.path().join("camera.seg");
    // Create it first so the reader can attach before the first child runs.
    drop(RingWriter::create_or_takeover(&path, &spec()).unwrap());
    let mut r = RingReader::attach(&path, StreamKind::Camera).unwrap();
    let mut buf = Vec::new();
    let mut x = 0xDEAD_BEEFu64;
    let (mut frames, mut incarnations) = (0u64, std::collections::BTreeSet::new());
    const KILLS: u32 = 25;
    for round in 0..KILLS {
        let child = spawn_child(&path, round % 2 == 1);
        // Read until the child has produced a random number of frames, then kill it.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let target = 1 + x % 40;
        let start = r.scoreboard().frames_written;
        let deadline = Instant::now() + Duration::from_secs(60);
        while r.scoreboard().frames_written < start + target {
            assert!(Instant::now() < deadline, "round {round}: child wrote nothing for 60 s");
            // Each round reads by another path: copy-out, in place, peek then by reference, into words or by blocks.
            let via = ReadPath::ALL[round as usize % ReadPath::ALL.len()];
            match read_via(&mut r, via, &mut buf) {
                ReadOutcome::Frame(info) => {
                    assert_eq!(
                        buf,
                        pattern(info.seq.0, info.len),
                        "round {round}: torn frame accepted via {via:?}"
                    );
                    incarnations.insert(info.incarnation.0);
                    frames += 1;
                }
                ReadOutcome::Empty => {
                    r.wait(Duration::from_millis(50));
                }
                ReadOutcome::Invalid(why) => panic!("round {round}: {why}"),
                _ => {}
            }
        }
        drop(child);
    }
    // A final takeover in this process shows the repair and the sequence continuing.
    let (mut w, start) = RingWriter::create_or_takeover(&path, &spec()).unwrap();
    let WriterStart::TookOver { incarnation, .. } = start else {
        panic!("expected a takeover, got {start:?}")
    };
    assert_eq!(incarnation.0, u64::from(KILLS) + 2);
    let mut loan = w.loan();
    let seq = loan.seq();
    loan.push(&pattern(seq.0, 100)).unwrap();
    loan.commit(FrameMeta { capture: TimestampNs(0), epoch: CalibEpoch(1) });
    r.seek(seq);
    assert!(
        matches!(r.read_next(&mut buf), ReadOutcome::Frame(i) if i.seq == seq && buf == pattern(seq.0, 100))
    );
    let board = r.scoreboard();
    eprintln!(
        "kill test: {frames} frames read, {} incarnations seen, {} slots repaired, {} torn retries, {} frames into a released slot",
        incarnations.len(),
        board.slots_repaired,
        board.torn_retries,
        board.slots_reused
    );
    assert!(frames > 0);
    assert!(board.slots_repaired > 0, "no kill landed mid-frame in {KILLS} tries");
    assert_eq!(board.invalid, 0);
    assert!(board.slots_reused > 0, "no child writer reused a slot");
}
