//! The fusion role: one reader thread per ring and a calibration listener feed the fusion
//! engine through crossbeam channels; fused frames go to the fused ring, overlays to the
//! output directory, and the role's part of the summary to `<run dir>/fusion-result.json`.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use calib::clock::PipelineClock;
use calib::{CalibFollower, CalibrationSet, FollowerWaker, StopFlag};
use crossbeam_channel::{Receiver, Sender};
use fusion::output::{FusedSink, OverlayConfig, OverlayTap, SinkError};
use fusion::summary::{FusionResult, StreamSummary};
use fusion::{
    CountersSnapshot, Engine, EngineChannels, EngineConfig, FusionReport, InFrame, PairingConfig, Payload,
    RingFrame,
};
use parking_lot::Mutex;
use shared::clock::monotonic_ns;
use shared::frames::{
    FusedHeader, FusedPoint, PayloadSink, FUSED_HEADER_SIZE, FUSED_POINT_SIZE, POINT_RECORD_SIZE,
};
use shared::ring::{FrameMeta, RingReader, RingWriter};
use shared::scoreboard::FusedScoreboard;
use shared::{rundir, CalibEpoch, Role, StreamKind, TimestampNs};
use zerocopy::IntoBytes;

use super::fusion_state::{Carried, Checkpoint, ReaderPosition, StateFiles};
use super::stop_waker::StopWaker;
use super::{attach_when_ready, ready, stop_flag, STOP_NOTICE};
use crate::error::CliError;
use crate::pipeline::rig_summary::{self, Lane};
use crate::pipeline::segments::PRODUCER_SLOTS;
use crate::pipeline::spec::{RunSpec, FUSION_RESULT_FILE};
use crate::pipeline::summary::Source;

/// How long fusion waits for a producer's ring to appear.
const ATTACH_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the listener looks at the calibration table (the recovery path; the socket
/// is the fast path).
const TABLE_POLL: Duration = Duration::from_millis(250);

/// The longest a ring reader sleeps with no frame: a backstop only, since the stop ends its
/// wait ([`StopWaker`]), so a slow stream costs no wake-ups between its frames.
const WAIT_BACKSTOP: Duration = Duration::from_secs(1);

/// Counts of one reader thread.
#[derive(Debug, Default)]
struct ReaderCounts {
    read: AtomicU64,
    torn: AtomicU64,
    overruns: AtomicU64,
    stale: AtomicU64,
    invalid: AtomicU64,
    /// Where the reader stands, for a restarted fusion ([`super::fusion_state`]).
    position: Arc<ReaderPosition>,
}

impl ReaderCounts {
    fn summary(&self) -> StreamSummary {
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
struct Arrivals {
    recent: Mutex<[std::collections::VecDeque<(u64, u64)>; 2]>,
}

impl Arrivals {
    /// Frames remembered per stream; more than a ring and fusion's buffers hold.
    const KEEP: usize = 512;

    fn record(&self, kind: StreamKind, seq: shared::FrameSeq) {
        let stream = usize::from(kind == StreamKind::Lidar);
        let mut g = self.recent.lock();
        if g[stream].len() == Self::KEEP {
            g[stream].pop_front();
        }
        g[stream].push_back((seq.0, monotonic_ns()));
    }

    fn latency_ns(&self, camera: shared::FrameSeq, lidar: shared::FrameSeq) -> Option<u64> {
        let g = self.recent.lock();
        let find = |i: usize, seq: u64| g[i].iter().rev().find(|(s, _)| *s == seq).map(|(_, t)| *t);
        let later = find(0, camera.0)?.max(find(1, lidar.0)?);
        Some(monotonic_ns().saturating_sub(later))
    }
}

/// Writes fused frames into the fused ring.
struct RingSink {
    writer: Arc<Mutex<Option<RingWriter>>>,
}

impl FusedSink for RingSink {
    fn write(&mut self, header: &FusedHeader, points: &[FusedPoint]) -> Result<(), SinkError> {
        let mut guard = self.writer.lock();
        let Some(w) = guard.as_mut() else { return Err("fused ring not created".into()) };
        let mut loan = w.loan();
        let keep = ((loan.capacity() - FUSED_HEADER_SIZE) / FUSED_POINT_SIZE).min(points.len());
        let mut h = *header;
        h.points = u32::try_from(keep).unwrap_or(u32::MAX);
        loan.push(h.as_bytes())?;
        loan.push(points[..keep].as_bytes())?;
        loan.commit(FrameMeta { capture: TimestampNs(0), epoch: CalibEpoch(header.epoch) });
        Ok(())
    }
}

/// The fused ring's writer: created when the lidar ring appears (its size follows from the
/// lidar ring's), shared by the sink and the scoreboard publisher.
type FusedRing = Arc<Mutex<Option<RingWriter>>>;

/// What one reader thread reads and where its frames go.
struct ReaderIo {
    kind: StreamKind,
    /// The sensor's segment.
    path: std::path::PathBuf,
    tx: Sender<InFrame>,
    counts: Arc<ReaderCounts>,
    /// Where a restarted fusion's reader resumes.
    resume: Carried,
    /// The longest wait for a frame ([`WAIT_BACKSTOP`]).
    backstop: Duration,
}

fn reader_thread(
    io: ReaderIo,
    stop: StopWaker,
    arrivals: Arc<Arrivals>,
    on_attach: impl FnOnce(&RingReader) + Send + 'static,
) -> JoinHandle<Result<(), String>> {
    let path = io.path.clone();
    std::thread::spawn(move || {
        let attached = attach_when_ready(&path, io.kind, stop.flag(), ATTACH_TIMEOUT).and_then(|r| match r {
            // A second attachment for the engine's in-place reads at use (`&self`), beside
            // this thread's, which moves through the ring (`&mut self`).
            Some(r) => Ok(Some((r, RingReader::attach(&path, io.kind)?))),
            None => Ok(None),
        });
        let (mut reader, ring) = match attached {
            Ok(Some((r, ring))) => (r, Arc::new(ring)),
            Ok(None) => return Ok(()),
            Err(e) => {
                // Without this stream fusion cannot work: stop the other reader too, so the
                // role ends and the supervisor reports it, rather than waiting forever.
                stop.raise();
                return Err(format!("{}: {e}", path.display()));
            }
        };
        // Learn of what the producer wrote before we attached too (it waits for us, but a
        // restarted fusion picks up where the ring stands).
        io.resume.seek(&mut reader, io.kind);
        on_attach(&reader);
        // Both attachments map the same futex word: waking one wakes this thread's waits.
        stop.watch(&ring);
        learn_frames(&mut reader, &ring, &io, stop.flag(), &arrivals).map_err(|why| {
            stop.raise();
            format!("{}: {why}", path.display())
        })
    })
}

/// Whether a payload of `len` bytes can be a frame of `kind` at all (the full check is at use).
fn plausible(kind: StreamKind, len: usize) -> bool {
    match kind {
        StreamKind::Camera => len >= shared::frames::IMAGE_HEADER_SIZE,
        _ => len % POINT_RECORD_SIZE == 0,
    }
}

/// Learns of new frames from their headers alone and hands the engine versioned references
/// ("frame #17 at slot X"), until `stop` is raised and nothing written is left unread, or the
/// engine is gone; counts every outcome. Payloads are read in place by the engine, only for
/// the frames it uses. A truncated segment ends it with an error.
fn learn_frames(
    reader: &mut RingReader,
    ring: &Arc<RingReader>,
    io: &ReaderIo,
    stop: &StopFlag,
    arrivals: &Arrivals,
) -> Result<(), shared::ring::InvalidFrame> {
    let counts = &io.counts;
    loop {
        if reader.truncated() {
            counts.invalid.fetch_add(1, Ordering::Relaxed);
            return Err(shared::ring::InvalidFrame::SegmentTruncated);
        }
        let before = reader.next_seq();
        let peeked = reader.peek_next();
        // Before the frame is counted or sent: a restarted fusion never learns of it twice.
        counts.position.set(reader);
        let delivered = match peeked {
            Some((frame, info)) => {
                if frame.seq() != before {
                    // Lapped: the reader moved to the oldest frame held.
                    counts.overruns.fetch_add(1, Ordering::Relaxed);
                }
                counts.read.fetch_add(1, Ordering::Relaxed);
                arrivals.record(io.kind, info.seq);
                if plausible(io.kind, info.len) {
                    let payload = Payload::Ring(RingFrame::new(Arc::clone(ring), frame, &info));
                    let f = InFrame {
                        stream: io.kind,
                        seq: info.seq,
                        capture: info.capture,
                        epoch: info.epoch,
                        published: info.published,
                        payload,
                    };
                    if io.tx.send(f).is_err() {
                        return Ok(());
                    }
                } else {
                    counts.invalid.fetch_add(1, Ordering::Relaxed);
                    ring.let_go(frame);
                }
                true
            }
            None if reader.next_seq() != before => {
                // Moved past a stale slot: progress, so look again before any stop.
                counts.stale.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            None if reader.lag() == 0 => {
                if stop.is_raised() {
                    return Ok(());
                }
                // Look again after the wait, stop or not: a producer's last frames and its
                // end (the stop) can both arrive during one wait, and they must be read.
                reader.wait_until(io.backstop, || stop.is_raised());
                continue;
            }
            None => {
                counts.torn.fetch_add(1, Ordering::Relaxed);
                std::thread::yield_now();
                false
            }
        };
        // A turn that found a torn slot checks the stop flag: a slot that stays torn (a
        // writer killed mid-frame, a scribbled sequence word) must not keep fusion alive.
        if !delivered && stop.is_raised() {
            return Ok(());
        }
    }
}

/// Creates the fused ring once the lidar ring is attached: a fused frame holds at most every
/// point of one sweep.
fn create_fused_ring(run: &Path, fused: &FusedRing) -> impl FnOnce(&RingReader) + Send + 'static {
    let fused = Arc::clone(fused);
    let path = run.join(rundir::segment_file(StreamKind::Fused));
    move |r: &RingReader| {
        let spec = crate::pipeline::segments::fused(r.slot_capacity());
        match RingWriter::create_or_takeover(&path, &spec) {
            Ok((w, _)) => *fused.lock() = Some(w),
            Err(e) => eprintln!("fusion: {}: {e}; fused frames will not be published", path.display()),
        }
    }
}

/// One (lidar, camera) pair of the rig: fusion runs one engine per pair, each with its own
/// readers of the two rings (a lidar ring is read once per camera).
#[derive(Clone, Debug)]
struct LaneSpec {
    camera: calib::SensorName,
    lidar: calib::SensorName,
    /// The first lane creates the fused ring; its restart state keeps today's file names.
    first: bool,
}

impl LaneSpec {
    /// Every (lidar, camera) pair of the run, the primary pair first.
    fn all(spec: &RunSpec) -> Vec<Self> {
        let (cameras, lidars) = (spec.sensors_of(StreamKind::Camera), spec.sensors_of(StreamKind::Lidar));
        let mut out = Vec::new();
        for l in &lidars {
            for c in &cameras {
                out.push(Self { camera: c.name.clone(), lidar: l.name.clone(), first: out.is_empty() });
            }
        }
        out
    }

    /// Where this lane's restart state is kept ([`super::fusion_state`]).
    fn state_files(&self, run: &Path) -> StateFiles {
        StateFiles::of(run, self.camera.as_str(), self.lidar.as_str(), self.first)
    }

    /// Where this camera's overlays go: today's folder for a camera named `camera`, a
    /// folder per camera otherwise.
    fn overlay_dir(&self, out: &Path) -> std::path::PathBuf {
        let dir = out.join("overlays");
        if self.camera == calib::SensorName::camera() && self.lidar == calib::SensorName::lidar() {
            dir
        } else {
            dir.join(if self.lidar == calib::SensorName::lidar() {
                self.camera.to_string()
            } else {
                format!("{}-{}", self.camera, self.lidar)
            })
        }
    }
}

/// The camera and lidar reader threads.
struct Readers {
    threads: [JoinHandle<Result<(), String>>; 2],
    counts: [Arc<ReaderCounts>; 2],
    arrivals: Arc<Arrivals>,
    carried: Carried,
    /// This lane's restart state.
    files: StateFiles,
}

impl Readers {
    /// Starts both threads; returns them and the engine's channels (the engine holds the
    /// only receivers, so a reader whose engine is gone stops).
    fn spawn(
        run: &Path,
        lane: &LaneSpec,
        stop: &StopWaker,
        fused: &FusedRing,
        calibration: Receiver<Arc<CalibrationSet>>,
        engine_stop: Receiver<()>,
        carried: Carried,
    ) -> (Self, EngineChannels) {
        let arrivals = Arc::new(Arrivals::default());
        let counts = [Arc::new(ReaderCounts::default()), Arc::new(ReaderCounts::default())];
        let (cam_tx, cam_rx) = crossbeam_channel::bounded(4);
        let (lid_tx, lid_rx) = crossbeam_channel::bounded(4);
        // The readers hand the engine references, not buffers: what the engine copied out
        // (frames it held long, overlays) is simply dropped when it is done.
        let (rc_tx, _) = crossbeam_channel::bounded(0);
        let (rl_tx, _) = crossbeam_channel::bounded(0);
        let io = |kind, name: &calib::SensorName, tx, counts: &Arc<ReaderCounts>| ReaderIo {
            kind,
            path: run.join(crate::pipeline::segments::sensor_file(name)),
            tx,
            counts: Arc::clone(counts),
            resume: carried,
            backstop: WAIT_BACKSTOP,
        };
        let on_lidar: Box<dyn FnOnce(&RingReader) + Send> =
            if lane.first { Box::new(create_fused_ring(run, fused)) } else { Box::new(|_: &RingReader| {}) };
        let threads = [
            reader_thread(
                io(StreamKind::Camera, &lane.camera, cam_tx, &counts[0]),
                stop.clone(),
                Arc::clone(&arrivals),
                |_| {},
            ),
            reader_thread(
                io(StreamKind::Lidar, &lane.lidar, lid_tx, &counts[1]),
                stop.clone(),
                Arc::clone(&arrivals),
                on_lidar,
            ),
        ];
        let channels = EngineChannels {
            camera: cam_rx,
            lidar: lid_rx,
            calibration,
            stop: engine_stop,
            recycle_camera: rc_tx,
            recycle_lidar: rl_tx,
        };
        (Self { threads, counts, arrivals, carried, files: lane.state_files(run) }, channels)
    }

    /// Waits for both threads; the last error, if any, their counts and the state the lane
    /// carried over from earlier incarnations.
    fn join(self) -> (Option<String>, [Arc<ReaderCounts>; 2], Carried) {
        let mut error = None;
        for r in self.threads {
            match r.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => error = Some(e),
                Err(_) => error = Some("a reader thread panicked".to_string()),
            }
        }
        (error, self.counts, self.carried)
    }
}

/// Follows the run's calibration on its own thread and hands every new epoch to the engine
/// once; publishes the subscriber's counters for the scoreboard and the summary.
struct CalibListener {
    stop: StopFlag,
    /// Ends the thread's wait on the socket at once when it stops (set once it connected).
    waker: Arc<Mutex<Option<FollowerWaker>>>,
    thread: JoinHandle<()>,
    updates: Arc<AtomicU64>,
    rejected: Arc<AtomicU64>,
}

impl CalibListener {
    /// `lanes`: each engine's channel and the (camera, lidar) whose view of each epoch it
    /// gets ([`CalibrationSet::pair_view`]).
    fn spawn(run: &Path, lanes: Vec<(Sender<Arc<CalibrationSet>>, LaneSpec)>) -> Self {
        let stop = StopFlag::new();
        let waker = Arc::new(Mutex::new(None));
        let updates = Arc::new(AtomicU64::new(0));
        let rejected = Arc::new(AtomicU64::new(0));
        let thread = {
            let (run, stop, waker, updates, rejected) = (
                run.to_path_buf(),
                stop.clone(),
                Arc::clone(&waker),
                Arc::clone(&updates),
                Arc::clone(&rejected),
            );
            std::thread::spawn(move || {
                // Without the service, the table alone.
                let follower =
                    CalibFollower::connect(&run, Role::Fusion, Duration::from_secs(10), Some(&stop))
                        .unwrap_or_else(|_| CalibFollower::table_only(&CalibFollower::table_in(&run)));
                let mut follower = follower.table_every(TABLE_POLL);
                *waker.lock() = Some(follower.waker());
                while !stop.is_raised() {
                    // A wait on the socket is woken by `stop`; one on the table alone is a
                    // sleep, so it looks at the stop flag often.
                    let slice = if follower.is_subscribed() { TABLE_POLL } else { STOP_NOTICE };
                    for set in follower.wait(slice) {
                        for (tx, lane) in &lanes {
                            let view = set.pair_view(lane.camera.as_str(), lane.lidar.as_str());
                            let _ = tx.send(view.map_or_else(|| Arc::clone(&set), Arc::new));
                        }
                    }
                    updates.store(follower.stats().updates_received, Ordering::Relaxed);
                    rejected.store(follower.stats().rejected_messages, Ordering::Relaxed);
                }
            })
        };
        Self { stop, waker, thread, updates, rejected }
    }

    /// Stops the thread; the final (updates received, messages rejected).
    fn stop(self) -> (u64, u64) {
        self.stop.raise();
        // A waker set after this look was set after the flag was raised (the mutex orders the
        // two), so that thread sees the flag before it waits.
        if let Some(w) = self.waker.lock().as_ref() {
            w.wake();
        }
        let _ = self.thread.join();
        (self.updates.load(Ordering::Relaxed), self.rejected.load(Ordering::Relaxed))
    }
}

/// Every lane's latest counters, summed into the one scoreboard of the fused ring.
type LaneCounters = Arc<Mutex<Vec<CountersSnapshot>>>;

fn sum_counters(all: &[CountersSnapshot]) -> CountersSnapshot {
    let mut t = all.first().copied().unwrap_or_default();
    for s in all.iter().skip(1) {
        t.fused += s.fused;
        t.held_camera += s.held_camera;
        t.held_lidar += s.held_lidar;
        t.dropped_no_calibration += s.dropped_no_calibration;
        t.rejected_epoch_mismatch += s.rejected_epoch_mismatch;
        t.fused_epoch_mismatch += s.fused_epoch_mismatch;
        t.unpaired_camera += s.unpaired_camera;
        t.unpaired_lidar += s.unpaired_lidar;
        t.latest_epoch = t.latest_epoch.max(s.latest_epoch);
    }
    t
}

/// The scoreboard publisher of lane `lane`: the lanes' counters, summed, into the fused
/// ring's aux words.
fn publisher(
    fused: &FusedRing,
    calib: &CalibListener,
    lanes: &LaneCounters,
    lane: usize,
) -> impl FnMut(&CountersSnapshot) + Send + 'static {
    let (fused, updates, rejected) =
        (Arc::clone(fused), Arc::clone(&calib.updates), Arc::clone(&calib.rejected));
    let lanes = Arc::clone(lanes);
    move |s| {
        let s = {
            let mut all = lanes.lock();
            if let Some(slot) = all.get_mut(lane) {
                *slot = *s;
            }
            sum_counters(&all)
        };
        let s = &s;
        if let Some(w) = fused.lock().as_ref() {
            FusedScoreboard {
                pairs: s.fused,
                held: s.held_camera + s.held_lidar,
                dropped_no_calib: s.dropped_no_calibration,
                rejected_mismatch: s.rejected_epoch_mismatch,
                epoch_mismatch: s.fused_epoch_mismatch,
                latest_epoch: CalibEpoch(s.latest_epoch),
                unpaired: s.unpaired_camera + s.unpaired_lidar,
                last_latency_us: s.last_latency_ns / 1000,
                last_pipeline_us: s.last_pipeline_ns / 1000,
                calib_updates: updates.load(Ordering::Relaxed),
                calib_rejected: rejected.load(Ordering::Relaxed),
            }
            .store(w);
        }
    }
}

/// What the run asks of fusion.
struct FusionPlan {
    pairing: PairingConfig,
    /// Keep per-pair records for the result.
    keep_frames: bool,
    /// Pair on the pipeline clock (live drives) rather than on the data's own time.
    live_clock: bool,
}

impl FusionPlan {
    fn new(spec: &RunSpec) -> Self {
        let source = spec.source_kind();
        Self {
            pairing: PairingConfig::for_camera_rate(spec.camera_hz).with_mode(spec.pairing),
            keep_frames: spec.per_pair || source == Source::Replay,
            // Runs at max rate and replays pair on the data's own time (reproducible), with
            // latency measured from each frame's arrival.
            live_clock: !spec.max_rate && source == Source::Sim,
        }
    }
}

/// What one lane's engine is wired to.
struct LaneWiring<'a> {
    lane: &'a LaneSpec,
    index: usize,
    fused: &'a FusedRing,
    readers: &'a Readers,
    calib: &'a CalibListener,
    counters: &'a LaneCounters,
    clock: &'a Arc<Mutex<Option<PipelineClock>>>,
    /// Where its overlays also go, for the surround mosaic.
    tap: Option<&'a OverlayTap>,
}

/// A lane's engine, wired to its readers, the calibration listener, the fused ring and a
/// clock set once the run starts.
fn build_engine(
    spec: &RunSpec,
    plan: &FusionPlan,
    channels: EngineChannels,
    w: &LaneWiring<'_>,
) -> Result<Engine<RingSink>, CliError> {
    let overlay = (spec.overlay_every > 0).then(|| {
        let c = OverlayConfig::new(w.lane.overlay_dir(&spec.out), spec.overlay_every);
        match w.tap {
            Some(t) => c.with_tap(t.clone()),
            None => c,
        }
    });
    let cfg = EngineConfig {
        pairing: plan.pairing,
        keep_frames: plan.keep_frames,
        overlay,
        clock_follows_data: !plan.live_clock,
        // Below the producers' back-pressure margin (slots - 2), with room for the frames
        // in the channels: a producer never waits on frames fusion merely holds.
        max_held_refs: PRODUCER_SLOTS as usize - 4,
        ..EngineConfig::default()
    };
    let engine_clock: Box<dyn Fn() -> TimestampNs + Send> = {
        let cell = Arc::clone(w.clock);
        Box::new(move || cell.lock().map_or(TimestampNs(0), |c| c.now()))
    };
    let mut engine = Engine::new(cfg, channels, RingSink { writer: Arc::clone(w.fused) }, engine_clock)
        .map_err(|e| CliError::input(format!("{}: {e}", spec.out.display())))?;
    if !plan.live_clock {
        let arrivals = Arc::clone(&w.readers.arrivals);
        engine.set_latency_source(move |c, l| arrivals.latency_ns(c, l));
    }
    let mut board = publisher(w.fused, w.calib, w.counters, w.index);
    // A restarted fusion continues every lane from its own state (see `fusion_state`).
    let positions = w.readers.counts.each_ref().map(|c| Arc::clone(&c.position));
    let (mut checkpoint, counts) =
        (Checkpoint::new(&w.readers.files, w.readers.carried, positions), w.readers.counts.clone());
    engine.set_publisher(move |s| {
        board(s);
        checkpoint.save(s, [counts[0].summary(), counts[1].summary()]);
    });
    Ok(engine)
}

/// One lane's result: its engine's report and its readers' counters.
fn lane_result(
    plan: &FusionPlan,
    report: &FusionReport<RingSink>,
    counts: &[Arc<ReaderCounts>; 2],
    (updates, rejected): (u64, u64),
    carried: &Carried,
) -> FusionResult {
    let mut result = FusionResult::from_stats(&report.stats, plan.keep_frames);
    let received = &mut result.calibration.updates_received;
    *received = (*received).max(updates);
    result.calibration.rejected_messages = rejected;
    result.streams.camera = counts[0].summary();
    result.streams.lidar = counts[1].summary();
    for (i, stream) in [&mut result.streams.camera, &mut result.streams.lidar].into_iter().enumerate() {
        stream.overrun_before_use = report.stats.overrun_before_use[i];
        stream.unknown_epoch = report.stats.unknown_epoch[i];
        stream.invalid += report.stats.invalid_at_use[i];
    }
    carried.add_to(&mut result);
    result
}

/// Writes fusion's result (its part of the run summary) to `<run dir>/fusion-result.json`
/// (the totals) and the rig's part to `<run dir>/fusion-rig.json`.
fn write_results(run: &Path, plan: &FusionPlan, lanes: &[Lane]) -> Result<(), CliError> {
    let path = run.join(FUSION_RESULT_FILE);
    rig_summary::totals(lanes)
        .write(&path)
        .map_err(|e| CliError::internal(format!("{}: {e}", path.display())))?;
    let path = run.join(rig_summary::RIG_RESULT_FILE);
    let text = serde_json::to_string(&rig_summary::rig_result(lanes, plan.keep_frames))
        .map_err(|e| CliError::internal(e.to_string()))?;
    std::fs::write(&path, text).map_err(|e| CliError::internal(format!("{}: {e}", path.display())))
}

/// A lane while it runs.
struct Running {
    lane: LaneSpec,
    readers: Readers,
    engine: JoinHandle<FusionReport<RingSink>>,
    ego_feed: Option<JoinHandle<()>>,
}

/// Runs the fusion role: one engine per (lidar, camera) pair of the rig.
///
/// # Errors
/// Exit 3 if a ring cannot be attached or the output cannot be written.
pub fn run(run: &Path) -> Result<(), CliError> {
    let spec = RunSpec::load(run)?;
    let stop = stop_flag()?;
    let waker = StopWaker::on_signals(&stop)?;
    let plan = FusionPlan::new(&spec);
    let fused: FusedRing = Arc::new(Mutex::new(None));
    let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(1);
    let lanes = LaneSpec::all(&spec);
    let names: Vec<(String, String)> =
        lanes.iter().map(|l| (l.camera.to_string(), l.lidar.to_string())).collect();
    let mosaics = super::surround::Mosaics::start(&spec, &names)?;
    let counters: LaneCounters = Arc::new(Mutex::new(vec![CountersSnapshot::default(); lanes.len()]));
    let mut wired = Vec::new();
    let mut cal_txs = Vec::new();
    for lane in &lanes {
        let (cal_tx, cal_rx) = crossbeam_channel::unbounded();
        let carried = Carried::load(&lane.state_files(run));
        let (readers, channels) = Readers::spawn(run, lane, &waker, &fused, cal_rx, stop_rx.clone(), carried);
        cal_txs.push((cal_tx, lane.clone()));
        wired.push((lane.clone(), readers, channels));
    }
    let calib = CalibListener::spawn(run, cal_txs);
    let clock = Arc::new(Mutex::new(None));
    let mut engines = Vec::new();
    for (index, (lane, readers, channels)) in wired.into_iter().enumerate() {
        let w = LaneWiring {
            lane: &lane,
            index,
            fused: &fused,
            readers: &readers,
            calib: &calib,
            counters: &counters,
            clock: &clock,
            tap: mosaics.taps[index].as_ref(),
        };
        let mut engine = build_engine(&spec, &plan, channels, &w)?;
        let ego_feed = super::vehicle::feed_deskew(run, &spec, &stop, &mut engine)?;
        engines.push((lane, readers, engine, ego_feed));
    }
    *clock.lock() = Some(ready()?);
    let running: Vec<Running> = engines
        .into_iter()
        .map(|(lane, readers, engine, ego_feed)| {
            let engine = engine;
            Running { lane, readers, engine: std::thread::spawn(move || engine.run()), ego_feed }
        })
        .collect();
    let mut reader_error = None;
    let mut joined = Vec::new();
    for r in running {
        let (error, counts, carried) = r.readers.join();
        reader_error = reader_error.or(error);
        joined.push((r.lane, (counts, carried), r.engine, r.ego_feed));
    }
    stop.raise();
    // Every frame sender is gone now; the engines drain, decide, and return. Calibrations
    // still queued are handled first, so the listener stops only after the engines are done.
    drop(stop_tx);
    let mut reports = Vec::new();
    for (lane, counts, engine, ego_feed) in joined {
        if let Some(feed) = ego_feed {
            let _ = feed.join();
        }
        let report = engine.join().map_err(|_| CliError::internal("the fusion engine panicked"))?;
        reports.push((lane, counts, report));
    }
    mosaics.finish();
    let calib_counts = calib.stop();
    let results: Vec<Lane> = reports
        .iter()
        .map(|(lane, (counts, carried), report)| Lane {
            camera: lane.camera.to_string(),
            lidar: lane.lidar.to_string(),
            result: lane_result(&plan, report, counts, calib_counts, carried),
        })
        .collect();
    write_results(run, &plan, &results)?;
    reader_error.map_or(Ok(()), |e| Err(CliError::internal(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A lidar reader's plumbing for the ring at `path`, and the engine's end of it.
    fn lidar_io(path: &Path, backstop: Duration) -> (ReaderIo, Receiver<InFrame>) {
        let (tx, rx) = crossbeam_channel::unbounded();
        let io = ReaderIo {
            kind: StreamKind::Lidar,
            path: path.to_path_buf(),
            tx,
            counts: Arc::default(),
            resume: Carried::default(),
            backstop,
        };
        (io, rx)
    }

    /// A slot that stays torn (its writer stopped mid-frame) must not keep the reader from
    /// seeing the stop flag.
    #[test]
    fn a_reader_on_a_torn_slot_still_stops() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lidar.seg");
        let spec = shared::segment::SegmentSpec::new(StreamKind::Lidar, 2, 64);
        let (mut w, _) = RingWriter::create_or_takeover(&path, &spec).unwrap();
        for _ in 0..2 {
            let mut loan = w.loan();
            loan.push(&[1u8; 16]).unwrap();
            loan.commit(FrameMeta { capture: TimestampNs(1), epoch: CalibEpoch(1) });
        }
        let mut reader = RingReader::attach(&path, StreamKind::Lidar).unwrap();
        let ring = Arc::new(RingReader::attach(&path, StreamKind::Lidar).unwrap());
        reader.seek(shared::FrameSeq(0));
        // The third frame reuses the reader's next slot and is never finished.
        let loan = w.loan();
        let (io, _rx) = lidar_io(&path, STOP_NOTICE);
        let stop = StopFlag::new();
        stop.raise();
        let (done_tx, done_rx) = crossbeam_channel::bounded(1);
        let counts = Arc::clone(&io.counts);
        std::thread::spawn(move || {
            let _ = learn_frames(&mut reader, &ring, &io, &stop, &Arrivals::default());
            let _ = done_tx.send(());
        });
        let stopped = done_rx.recv_timeout(Duration::from_secs(5)).is_ok();
        drop(loan);
        assert!(stopped, "the reader ignored the stop flag on a torn slot");
        assert!(counts.torn.load(Ordering::Relaxed) > 0, "the slot was not torn");
    }

    /// A reader waiting for a frame that never comes ends its wait when the stop is raised,
    /// long before its backstop (the wait is woken, not polled).
    #[test]
    fn an_idle_reader_is_woken_by_the_stop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lidar.seg");
        let spec = shared::segment::SegmentSpec::new(StreamKind::Lidar, 2, 64);
        let (_w, _) = RingWriter::create_or_takeover(&path, &spec).unwrap();
        let waiters = || {
            let mut b = [0u8; 8];
            let f = std::fs::File::open(&path).unwrap();
            std::os::unix::fs::FileExt::read_exact_at(&f, &mut b, shared::layout::OFF_WAITERS as u64)
                .unwrap();
            u64::from_le_bytes(b)
        };
        // A backstop far beyond what the test waits for: only a wake can end the wait in time.
        let (io, _rx) = lidar_io(&path, Duration::from_secs(120));
        let waker = StopWaker::new(&StopFlag::new());
        let reader = reader_thread(io, waker.clone(), Arc::default(), |_| {});
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while waiters() == 0 {
            assert!(std::time::Instant::now() < deadline, "the reader never parked");
            std::thread::sleep(Duration::from_millis(5));
        }
        waker.raise();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !reader.is_finished() {
            assert!(std::time::Instant::now() < deadline, "the stop did not end the reader's wait");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(reader.join().unwrap(), Ok(()));
    }
}
