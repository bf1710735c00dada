//! One lane of fusion (a camera and a lidar) on one thread: it reads both rings' headers,
//! hands the engine versioned references ("frame #17 at slot X") and calibrations, and sleeps
//! on its rings ([`RingReader::wait_any`]) until a frame, a calibration, a pairing timeout or
//! the stop. A frame costs at most one wake-up: no reader thread wakes to hand it on.
//!
//! Two of a default camera's three frames are never paired, so a lane whose camera is
//! streaming and that holds no undecided sweep sleeps on the lidar ring alone: it learns of
//! the camera's frames in a batch when the next sweep wakes it, which is when they can be
//! paired anyway. So that a stalled lidar does not leave them to be lapped, that sleep lasts at
//! most `LaneIo::camera_patience` (half the camera ring). With a sweep waiting for its
//! camera frame, or a camera that has gone quiet, the lane sleeps on both rings.
//!
//! ```text
//!  camera ring ─┐
//!  lidar ring  ─┼─► lane thread: look at each ring ─► Engine (pair, project, publish)
//!  calibration ─┘      sleep on both rings' futex words (woken by a frame, a calibration
//!                      listener's nudge, the stop) or until the next pairing timeout
//! ```

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use calib::{CalibrationSet, StopFlag};
use crossbeam_channel::Receiver;
use fusion::summary::StreamSummary;
use fusion::{Engine, FusionReport, InFrame, Payload, RingFrame};
use parking_lot::Mutex;
use shared::clock::monotonic_ns;
use shared::frames::POINT_RECORD_SIZE;
use shared::ring::{InvalidFrame, RingReader};
use shared::{FrameSeq, StreamKind};

use super::attach_when_ready;
use super::fusion_state::{Carried, ReaderPosition};
use super::stop_waker::StopWaker;

/// How long fusion waits for a producer's ring to appear.
const ATTACH_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest a lane sleeps with nothing to do: a backstop only, since frames, calibrations
/// and the stop end its wait, so a slow stream costs no wake-ups between its frames.
pub(super) const WAIT_BACKSTOP: Duration = Duration::from_secs(1);

/// Counts of one stream's reader.
#[derive(Debug, Default)]
pub(super) struct ReaderCounts {
    read: AtomicU64,
    torn: AtomicU64,
    overruns: AtomicU64,
    stale: AtomicU64,
    invalid: AtomicU64,
    /// Where the reader stands, for a restarted fusion ([`super::fusion_state`]).
    pub(super) position: Arc<ReaderPosition>,
}

impl ReaderCounts {
    pub(super) fn summary(&self) -> StreamSummary {
        StreamSummary {
            frames_written: 0,
            frames_read: self.read.load(Ordering::Relaxed),
            torn_retries: self.torn.load(Ordering::Relaxed),
            overruns: self.overruns.load(Ordering::Relaxed),
            stale: self.stale.load(Ordering::Relaxed),
            invalid: self.invalid.load(Ordering::Relaxed),
            overrun_before_use: 0,
            unknown_epoch: 0,
        }
    }
}

/// When each recent frame arrived (monotonic ns), per stream, to measure "later frame of
/// the pair in → fused" where capture times are not on the wall clock.
#[derive(Debug, Default)]
pub(super) struct Arrivals {
    recent: Mutex<[std::collections::VecDeque<(u64, u64)>; 2]>,
}

impl Arrivals {
    /// Frames remembered per stream; more than a ring and fusion's buffers hold.
    const KEEP: usize = 512;

    fn record(&self, kind: StreamKind, seq: FrameSeq) {
        let stream = usize::from(kind == StreamKind::Lidar);
        let mut g = self.recent.lock();
        if g[stream].len() == Self::KEEP {
            g[stream].pop_front();
        }
        g[stream].push_back((seq.0, monotonic_ns()));
    }

    pub(super) fn latency_ns(&self, camera: FrameSeq, lidar: FrameSeq) -> Option<u64> {
        let g = self.recent.lock();
        let find = |i: usize, seq: u64| g[i].iter().rev().find(|(s, _)| *s == seq).map(|(_, t)| *t);
        let later = find(0, camera.0)?.max(find(1, lidar.0)?);
        Some(monotonic_ns().saturating_sub(later))
    }
}

/// What a lane reads and where it learns of calibrations.
pub(super) struct LaneIo {
    /// The camera's and the lidar's segment, in that order.
    pub(super) paths: [PathBuf; 2],
    pub(super) counts: [Arc<ReaderCounts>; 2],
    pub(super) arrivals: Arc<Arrivals>,
    /// Where a restarted fusion's readers resume.
    pub(super) resume: Carried,
    /// The longest wait with nothing to do ([`WAIT_BACKSTOP`]).
    pub(super) backstop: Duration,
    /// The longest the lane sleeps on the lidar ring alone while its camera streams (module
    /// docs): half the camera ring's frames, so that none is lapped unread.
    pub(super) camera_patience: Duration,
    /// Epochs from the calibration listener, which nudges the lane's rings after each.
    pub(super) calibration: Receiver<Arc<CalibrationSet>>,
}

/// The stream kinds of a lane's two rings, in [`LaneIo::paths`] order.
const KINDS: [StreamKind; 2] = [StreamKind::Camera, StreamKind::Lidar];

/// How a lane ended: its error, if a ring failed, and its engine's report, unless the run
/// ended before it handed the lane its engine.
pub(super) type LaneEnd<S> = (Result<(), String>, Option<FusionReport<S>>);

/// Starts a lane: the thread attaches both rings right away (so the producers need not wait for
/// the rest of fusion's set-up), runs `on_lidar` on the lidar ring, then waits for its engine
/// on `engine` and serves it until the stop. A failed ring raises the stop, so the other
/// lanes end too.
pub(super) fn spawn<S: fusion::output::FusedSink + Send + 'static>(
    io: LaneIo,
    stop: StopWaker,
    on_lidar: impl FnOnce(&RingReader) + Send + 'static,
    engine: Receiver<Engine<S>>,
) -> JoinHandle<LaneEnd<S>> {
    std::thread::spawn(move || {
        let rings = match attach(&io, &stop, on_lidar) {
            Ok(Some(rings)) => rings,
            Ok(None) => return (Ok(()), engine.recv().ok().map(Engine::conclude)),
            Err(e) => {
                stop.raise();
                return (Err(e), engine.recv().ok().map(Engine::conclude));
            }
        };
        let Ok(mut engine) = engine.recv() else { return (Ok(()), None) };
        let mut lane = Lane { rings, io: &io, camera_seen: None };
        let served = lane.serve(&mut engine, stop.flag());
        if served.is_err() {
            stop.raise();
        }
        // What the listener sent before the end, then what is left to decide.
        while let Ok(c) = io.calibration.try_recv() {
            engine.handle_calibration(c);
        }
        (served, Some(engine.conclude()))
    })
}

/// A ring as a lane reads it: a reader that moves through the ring (`&mut`) and a second
/// attachment for the engine's in-place reads at use (`&self`).
struct Ring {
    reader: RingReader,
    shared: Arc<RingReader>,
}

/// Attaches both rings (`None`: the stop came first), resumes where a restarted fusion
/// stood, and registers them with the stop.
fn attach(
    io: &LaneIo,
    stop: &StopWaker,
    on_lidar: impl FnOnce(&RingReader),
) -> Result<Option<[Ring; 2]>, String> {
    let Some(camera) = attach_one(io, 0, stop)? else { return Ok(None) };
    let Some(lidar) = attach_one(io, 1, stop)? else { return Ok(None) };
    on_lidar(&lidar.reader);
    // Both attachments map the same futex word: waking one wakes the lane's waits.
    for r in [&camera, &lidar] {
        stop.watch(&r.shared);
    }
    Ok(Some([camera, lidar]))
}

/// Attaches ring `i` of the lane, once it appears (`None`: the stop came first).
fn attach_one(io: &LaneIo, i: usize, stop: &StopWaker) -> Result<Option<Ring>, String> {
    let (path, kind) = (&io.paths[i], KINDS[i]);
    let fail = |e: shared::segment::AttachError| format!("{}: {e}", path.display());
    let Some(mut reader) = attach_when_ready(path, kind, stop.flag(), ATTACH_TIMEOUT).map_err(fail)? else {
        return Ok(None);
    };
    let shared = Arc::new(RingReader::attach(path, kind).map_err(fail)?);
    // Learn of what the producer wrote before we attached too (it waits for us, but a
    // restarted fusion picks up where the ring stands).
    io.resume.seek(&mut reader, kind);
    Ok(Some(Ring { reader, shared }))
}

/// What one look at a ring found.
enum Look {
    /// A frame for the engine.
    Frame(InFrame),
    /// The reader moved without a frame for the engine (a stale slot, an implausible frame).
    Moved,
    /// Nothing new.
    Idle,
    /// The next slot is being written (or stays torn: a writer killed mid-frame).
    Torn,
}

/// Whether a payload of `len` bytes can be a frame of `kind` at all (the full check is at use).
fn plausible(kind: StreamKind, len: usize) -> bool {
    match kind {
        StreamKind::Camera => len >= shared::frames::IMAGE_HEADER_SIZE,
        _ => len.is_multiple_of(POINT_RECORD_SIZE),
    }
}

struct Lane<'a> {
    rings: [Ring; 2],
    io: &'a LaneIo,
    /// When the lane last learnt of a camera frame.
    camera_seen: Option<Instant>,
}

impl Lane<'_> {
    /// Feeds `engine` until `stop` is raised and nothing written is left to read on either
    /// ring; counts every outcome. A truncated segment ends it with an error.
    fn serve<S: fusion::output::FusedSink>(
        &mut self,
        engine: &mut Engine<S>,
        stop: &StopFlag,
    ) -> Result<(), String> {
        loop {
            while let Ok(c) = self.io.calibration.try_recv() {
                engine.handle_calibration(c);
            }
            let (mut moved, mut torn) = (false, false);
            for i in 0..2 {
                match self.look(i)? {
                    Look::Frame(f) => {
                        if i == 0 {
                            self.camera_seen = Some(Instant::now());
                        }
                        engine.handle_frame(f);
                        moved = true;
                    }
                    Look::Moved => moved = true,
                    Look::Idle => {}
                    Look::Torn => torn = true,
                }
            }
            if engine.time_to_deadline().is_some_and(|d| d.is_zero()) {
                engine.tick();
            }
            if moved {
                continue;
            }
            // Nothing readable is left on either ring (a slot that stays torn must not keep
            // fusion alive either).
            if stop.is_raised() {
                return Ok(());
            }
            if torn {
                std::thread::yield_now();
                continue;
            }
            // Look again after the wait, stop or not: a producer's last frames and its end
            // (the stop) can both arrive during one wait, and they must be read.
            // At least 50 µs: a timeout the tick left due must not make this a busy loop.
            let timeout = engine
                .time_to_deadline()
                .map_or(self.io.backstop, |d| d.max(Duration::from_micros(50)).min(self.io.backstop));
            self.sleep(engine.sweep_pending(), timeout, stop);
        }
    }

    /// Sleeps for at most `timeout` until a frame on a watched ring, a calibration or the
    /// stop: on the lidar ring alone while the camera streams and no sweep is `pending`, else
    /// on both (module docs).
    fn sleep(&self, pending: bool, timeout: Duration, stop: &StopFlag) {
        let patience = self.io.camera_patience;
        let calibration = &self.io.calibration;
        let give_up = || stop.is_raised() || !calibration.is_empty();
        let [camera, lidar] = [&self.rings[0].reader, &self.rings[1].reader];
        if !pending && self.camera_seen.is_some_and(|t| t.elapsed() < patience) {
            RingReader::wait_any([lidar], timeout.min(patience), give_up);
        } else {
            RingReader::wait_any([camera, lidar], timeout, give_up);
        }
    }

    /// Looks at ring `i` once: learns of its next frame from the header alone and makes a
    /// versioned reference of it. Payloads are read in place by the engine, only for the
    /// frames it uses.
    fn look(&mut self, i: usize) -> Result<Look, String> {
        let (kind, counts) = (KINDS[i], &self.io.counts[i]);
        let Ring { reader, shared } = &mut self.rings[i];
        if reader.truncated() {
            counts.invalid.fetch_add(1, Ordering::Relaxed);
            return Err(format!("{}: {}", self.io.paths[i].display(), InvalidFrame::SegmentTruncated));
        }
        let before = reader.next_seq();
        let peeked = reader.peek_next();
        // Before the frame is counted or used: a restarted fusion never learns of it twice.
        counts.position.set(reader);
        let Some((frame, info)) = peeked else {
            return Ok(if reader.next_seq() != before {
                counts.stale.fetch_add(1, Ordering::Relaxed);
                Look::Moved
            } else if reader.lag() == 0 {
                Look::Idle
            } else {
                counts.torn.fetch_add(1, Ordering::Relaxed);
                Look::Torn
            });
        };
        if frame.seq() != before {
            // Lapped: the reader moved to the oldest frame held.
            counts.overruns.fetch_add(1, Ordering::Relaxed);
        }
        counts.read.fetch_add(1, Ordering::Relaxed);
        self.io.arrivals.record(kind, info.seq);
        if !plausible(kind, info.len) {
            counts.invalid.fetch_add(1, Ordering::Relaxed);
            shared.let_go(frame);
            return Ok(Look::Moved);
        }
        let payload = Payload::Ring(RingFrame::new(Arc::clone(shared), frame, &info));
        Ok(Look::Frame(InFrame {
            stream: kind,
            seq: info.seq,
            capture: info.capture,
            epoch: info.epoch,
            published: info.published,
            payload,
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use fusion::output::{FusedSink, SinkError};
    use fusion::{EngineChannels, EngineConfig};
    use shared::frames::{FusedHeader, FusedPoint, PayloadSink as _};
    use shared::ring::{FrameMeta, RingWriter};
    use shared::segment::SegmentSpec;
    use shared::{CalibEpoch, TimestampNs};

    use super::*;

    /// A sink that keeps nothing (these lanes fuse nothing).
    struct Nowhere;

    impl FusedSink for Nowhere {
        fn write(&mut self, _: &FusedHeader, _: &[FusedPoint]) -> Result<(), SinkError> {
            Ok(())
        }
    }

    fn engine() -> Engine<Nowhere> {
        Engine::new(EngineConfig::default(), EngineChannels::none(), Nowhere, Box::new(|| TimestampNs(0)))
            .unwrap()
    }

    /// A lane on two fresh rings in `dir` (camera, lidar), with `backstop`; the rings'
    /// writers and the calibration channel's sending end.
    fn lane_io(
        dir: &std::path::Path,
        backstop: Duration,
    ) -> (LaneIo, [RingWriter; 2], crossbeam_channel::Sender<Arc<CalibrationSet>>) {
        let paths = KINDS.map(|k| dir.join(format!("{k}.seg")));
        let writers = [0, 1].map(|i| {
            let spec = SegmentSpec::new(KINDS[i], 2, 64);
            RingWriter::create_or_takeover(&paths[i], &spec).unwrap().0
        });
        let (tx, calibration) = crossbeam_channel::unbounded();
        let io = LaneIo {
            paths,
            counts: Default::default(),
            arrivals: Arc::default(),
            resume: Carried::default(),
            backstop,
            camera_patience: backstop,
            calibration,
        };
        (io, writers, tx)
    }

    /// Parked readers counted in `path`'s ring.
    fn waiters(path: &std::path::Path) -> u64 {
        let mut b = [0u8; 8];
        let mut f = std::fs::File::open(path).unwrap();
        std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(shared::layout::OFF_WAITERS as u64)).unwrap();
        f.read_exact(&mut b).unwrap();
        u64::from_le_bytes(b)
    }

    /// Waits (bounded) until the lane sleeps on both rings.
    fn until_parked(io_paths: &[PathBuf; 2]) {
        until_parked_on(io_paths, [1, 1]);
    }

    /// Waits (bounded) until `waiting[i]` lanes are parked on ring `i` (camera, lidar).
    fn until_parked_on(io_paths: &[PathBuf; 2], waiting: [u64; 2]) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while io_paths.iter().zip(waiting).any(|(p, n)| waiters(p) != n) {
            assert!(Instant::now() < deadline, "the lane never slept on the rings {waiting:?}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn publish(writer: &mut RingWriter, payload: &[u8]) {
        let mut loan = writer.loan();
        loan.push(payload).unwrap();
        loan.commit(FrameMeta { capture: TimestampNs(1), epoch: CalibEpoch(1) });
    }

    /// A lane that learnt of a camera frame and holds no sweep sleeps on the lidar ring alone:
    /// the camera's next frame does not wake it, the next sweep does and the lane learns of
    /// both. That sweep then waits for its calibration (none is known), so the lane watches
    /// both rings again.
    #[test]
    fn a_streaming_camera_is_read_when_the_lidar_wakes_the_lane() {
        let dir = tempfile::tempdir().unwrap();
        let (io, [mut camera, mut lidar], _tx) = lane_io(dir.path(), Duration::from_secs(120));
        let (paths, counts) = (io.paths.clone(), io.counts.clone());
        let read = |i: usize| counts[i].read.load(Ordering::Relaxed);
        let stop = StopWaker::new(&StopFlag::new());
        let (engine_tx, engine_rx) = crossbeam_channel::bounded(1);
        let lane = spawn(io, stop.clone(), |_: &RingReader| {}, engine_rx);
        engine_tx.send(engine()).unwrap();
        until_parked(&paths);
        let image = [0u8; shared::frames::IMAGE_HEADER_SIZE];
        publish(&mut camera, &image);
        until_parked_on(&paths, [0, 1]);
        assert_eq!((read(0), read(1)), (1, 0));
        publish(&mut camera, &image);
        assert_eq!(read(0), 1, "a camera frame woke a lane that was not watching the camera");
        publish(&mut lidar, &[0u8; POINT_RECORD_SIZE]);
        until_parked_on(&paths, [1, 1]);
        assert_eq!((read(0), read(1)), (2, 1));
        stop.raise();
        until_finished(&lane, "the stop did not end the lane's wait");
        assert_eq!(lane.join().unwrap().0, Ok(()));
    }

    fn until_finished<T>(h: &JoinHandle<T>, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !h.is_finished() {
            assert!(Instant::now() < deadline, "{what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// A slot that stays torn (its writer stopped mid-frame) must not keep the lane from
    /// seeing the stop flag.
    #[test]
    fn a_lane_on_a_torn_slot_still_stops() {
        let dir = tempfile::tempdir().unwrap();
        let (io, [_camera, mut lidar], _tx) = lane_io(dir.path(), Duration::from_millis(50));
        for _ in 0..2 {
            let mut loan = lidar.loan();
            loan.push(&[1u8; 16]).unwrap();
            loan.commit(FrameMeta { capture: TimestampNs(1), epoch: CalibEpoch(1) });
        }
        let stop = StopWaker::new(&StopFlag::new());
        let (engine_tx, engine_rx) = crossbeam_channel::bounded(1);
        let counts = Arc::clone(&io.counts[1]);
        let lane = spawn(io, stop.clone(), |_: &RingReader| {}, engine_rx);
        engine_tx.send(engine()).unwrap();
        // The third frame reuses a slot the lane has not read yet (it read from the oldest)
        // and is never finished.
        let loan = lidar.loan();
        stop.raise();
        until_finished(&lane, "the lane ignored the stop flag on a torn slot");
        drop(loan);
        let (ended, report) = lane.join().unwrap();
        assert_eq!(ended, Ok(()));
        assert!(report.is_some());
        assert!(
            counts.torn.load(Ordering::Relaxed) + counts.overruns.load(Ordering::Relaxed) > 0,
            "no torn slot"
        );
    }

    /// A lane on two idle rings with a 120 s backstop, asleep on both.
    struct SleepingLane {
        thread: JoinHandle<LaneEnd<Nowhere>>,
        stop: StopWaker,
        calibration: crossbeam_channel::Sender<Arc<CalibrationSet>>,
        /// Its engine's live counters.
        stats: fusion::StatsHandle,
        paths: [PathBuf; 2],
        _writers: [RingWriter; 2],
    }

    fn sleeping_lane(dir: &std::path::Path) -> SleepingLane {
        let (io, _writers, calibration) = lane_io(dir, Duration::from_secs(120));
        let paths = io.paths.clone();
        let stop = StopWaker::new(&StopFlag::new());
        let (engine_tx, engine_rx) = crossbeam_channel::bounded(1);
        let thread = spawn(io, stop.clone(), |_: &RingReader| {}, engine_rx);
        let engine = engine();
        let stats = engine.stats_handle();
        engine_tx.send(engine).unwrap();
        until_parked(&paths);
        SleepingLane { thread, stop, calibration, stats, paths, _writers }
    }

    /// A lane asleep on two idle rings ends its wait when the stop is raised, long before
    /// its backstop (the wait is woken, not polled).
    #[test]
    fn an_idle_lane_is_woken_by_the_stop() {
        let dir = tempfile::tempdir().unwrap();
        let lane = sleeping_lane(dir.path());
        lane.stop.raise();
        until_finished(&lane.thread, "the stop did not end the lane's wait");
        assert_eq!(lane.thread.join().unwrap().0, Ok(()));
    }

    /// A calibration sent while the lane sleeps reaches its engine at once (the listener's
    /// nudge), long before the backstop; the lane then sleeps again.
    #[test]
    fn a_calibration_wakes_a_sleeping_lane() {
        let dir = tempfile::tempdir().unwrap();
        let lane = sleeping_lane(dir.path());
        let mut set = calib::file::default_rig();
        set.epoch = CalibEpoch(7);
        lane.calibration.send(Arc::new(set)).unwrap();
        lane.stop.nudge();
        let deadline = Instant::now() + Duration::from_secs(30);
        while lane.stats.snapshot().latest_epoch != 7 {
            assert!(Instant::now() < deadline, "the lane slept through the calibration");
            std::thread::sleep(Duration::from_millis(5));
        }
        until_parked(&lane.paths);
        assert!(!lane.thread.is_finished());
        lane.stop.raise();
        until_finished(&lane.thread, "the stop did not end the lane's wait");
    }
}
