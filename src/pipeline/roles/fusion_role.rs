//! The fusion role: one thread per lane (a camera and a lidar, [`fusion_lane`]) reads both
//! rings and drives that lane's engine; a calibration listener hands it every epoch. Fused
//! frames go to the fused ring, overlays to the output directory, and the role's part of the
//! summary to `<run dir>/fusion-result.json`.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use calib::clock::PipelineClock;
use calib::{CalibFollower, CalibrationSet, FollowerWaker, StopFlag};
use crossbeam_channel::{Receiver, Sender};
use fusion::output::{FusedSink, OverlayConfig, OverlayTap, SinkError};
use fusion::summary::FusionResult;
use fusion::{CountersSnapshot, Engine, EngineChannels, EngineConfig, FusionReport, PairingConfig};
use parking_lot::Mutex;
use shared::frames::{FusedHeader, FusedPoint, PayloadSink, FUSED_HEADER_SIZE, FUSED_POINT_SIZE};
use shared::ring::{FrameMeta, RingReader, RingWriter};
use shared::scoreboard::FusedScoreboard;
use shared::{rundir, CalibEpoch, Role, StreamKind, TimestampNs};
use zerocopy::IntoBytes;

use super::fusion_lane::{self, Arrivals, LaneEnd, LaneIo, ReaderCounts, WAIT_BACKSTOP};
use super::fusion_state::{Carried, Checkpoint, StateFiles};
use super::stop_waker::StopWaker;
use super::{ready, stop_flag, STOP_NOTICE};
use crate::error::CliError;
use crate::pipeline::rig_summary::{self, Lane};
use crate::pipeline::segments::PRODUCER_SLOTS;
use crate::pipeline::spec::{RunSpec, FUSION_RESULT_FILE};
use crate::pipeline::summary::Source;

/// How often the listener looks at the calibration table (the recovery path; the socket
/// is the fast path).
const TABLE_POLL: Duration = Duration::from_millis(250);

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
/// thread, which reads the two rings (a lidar ring is read once per camera).
#[derive(Clone, Debug)]
struct LaneSpec {
    camera: calib::SensorName,
    lidar: calib::SensorName,
    /// The camera's frame rate, Hz.
    camera_hz: f64,
    /// The first lane creates the fused ring; its restart state keeps today's file names.
    first: bool,
}

impl LaneSpec {
    /// How long the lane may leave the camera's frames unread (`LaneIo::camera_patience`):
    /// half its ring's frames, at most the backstop.
    fn camera_patience(&self) -> Duration {
        let half_ring = f64::from(crate::pipeline::segments::PRODUCER_SLOTS / 2) / self.camera_hz.max(1e-3);
        Duration::from_secs_f64(half_ring.min(WAIT_BACKSTOP.as_secs_f64()))
    }

    /// Every (lidar, camera) pair of the run, the primary pair first.
    fn all(spec: &RunSpec) -> Vec<Self> {
        let (cameras, lidars) = (spec.sensors_of(StreamKind::Camera), spec.sensors_of(StreamKind::Lidar));
        let mut out = Vec::new();
        for l in &lidars {
            for c in &cameras {
                out.push(Self {
                    camera: c.name.clone(),
                    lidar: l.name.clone(),
                    camera_hz: c.rate_hz,
                    first: out.is_empty(),
                });
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

/// A lane's thread ([`fusion_lane`]) and what the rest of the role shares with it.
struct LaneThread {
    thread: JoinHandle<LaneEnd<RingSink>>,
    /// Hands the thread its engine once it is built.
    engine: Sender<Engine<RingSink>>,
    counts: [Arc<ReaderCounts>; 2],
    arrivals: Arc<Arrivals>,
    carried: Carried,
    /// This lane's restart state.
    files: StateFiles,
}

impl LaneThread {
    /// Starts the lane's thread, which attaches both rings right away and then waits for its
    /// engine ([`LaneThread::engine`]).
    fn spawn(
        run: &Path,
        lane: &LaneSpec,
        stop: &StopWaker,
        fused: &FusedRing,
        calibration: Receiver<Arc<CalibrationSet>>,
        carried: Carried,
    ) -> Self {
        let arrivals = Arc::new(Arrivals::default());
        let counts = [Arc::new(ReaderCounts::default()), Arc::new(ReaderCounts::default())];
        let io = LaneIo {
            paths: [&lane.camera, &lane.lidar].map(|n| run.join(crate::pipeline::segments::sensor_file(n))),
            counts: counts.clone(),
            arrivals: Arc::clone(&arrivals),
            resume: carried,
            backstop: WAIT_BACKSTOP,
            camera_patience: lane.camera_patience(),
            calibration,
        };
        let on_lidar: Box<dyn FnOnce(&RingReader) + Send> =
            if lane.first { Box::new(create_fused_ring(run, fused)) } else { Box::new(|_: &RingReader| {}) };
        let (engine, engine_rx) = crossbeam_channel::bounded(1);
        let thread = fusion_lane::spawn(io, stop.clone(), on_lidar, engine_rx);
        Self { thread, engine, counts, arrivals, carried, files: lane.state_files(run) }
    }

    /// Waits for the thread.
    fn join(self) -> LaneDone {
        let (error, report) = match self.thread.join() {
            Ok((r, report)) => (r.err(), report),
            Err(_) => (Some("a fusion lane thread panicked".to_string()), None),
        };
        LaneDone { error, report, counts: self.counts, carried: self.carried }
    }
}

/// A lane once its thread ended.
struct LaneDone {
    /// Why a ring failed, if one did.
    error: Option<String>,
    /// Its engine's report (none if it never got its engine).
    report: Option<FusionReport<RingSink>>,
    counts: [Arc<ReaderCounts>; 2],
    /// What the lane carried over from earlier incarnations.
    carried: Carried,
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
    /// `rings`: nudged after each epoch, so that the lanes asleep on them look at it.
    fn spawn(run: &Path, lanes: Vec<(Sender<Arc<CalibrationSet>>, LaneSpec)>, rings: StopWaker) -> Self {
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
                    let sets = follower.wait(slice);
                    for set in &sets {
                        for (tx, lane) in &lanes {
                            let view = set.pair_view(lane.camera.as_str(), lane.lidar.as_str());
                            let _ = tx.send(view.map_or_else(|| Arc::clone(set), Arc::new));
                        }
                    }
                    if !sets.is_empty() {
                        rings.nudge();
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
    thread: &'a LaneThread,
    calib: &'a CalibListener,
    counters: &'a LaneCounters,
    clock: &'a Arc<Mutex<Option<PipelineClock>>>,
    /// Where its overlays also go, for the surround mosaic.
    tap: Option<&'a OverlayTap>,
}

/// A lane's engine, wired to its lane thread, the calibration listener, the fused ring and a
/// clock set once the run starts.
fn build_engine(spec: &RunSpec, plan: &FusionPlan, w: &LaneWiring<'_>) -> Result<Engine<RingSink>, CliError> {
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
        // Below the producers' back-pressure margin (slots - 2), with room to spare: a
        // producer never waits on frames fusion merely holds.
        max_held_refs: PRODUCER_SLOTS as usize - 4,
        ..EngineConfig::default()
    };
    let engine_clock: Box<dyn Fn() -> TimestampNs + Send> = {
        let cell = Arc::clone(w.clock);
        Box::new(move || cell.lock().map_or(TimestampNs(0), |c| c.now()))
    };
    let mut engine =
        Engine::new(cfg, EngineChannels::none(), RingSink { writer: Arc::clone(w.fused) }, engine_clock)
            .map_err(|e| CliError::input(format!("{}: {e}", spec.out.display())))?;
    if !plan.live_clock {
        let arrivals = Arc::clone(&w.thread.arrivals);
        engine.set_latency_source(move |c, l| arrivals.latency_ns(c, l));
    }
    let mut board = publisher(w.fused, w.calib, w.counters, w.index);
    // A restarted fusion continues every lane from its own state (see `fusion_state`).
    let positions = w.thread.counts.each_ref().map(|c| Arc::clone(&c.position));
    let (mut checkpoint, counts) =
        (Checkpoint::new(&w.thread.files, w.thread.carried, positions), w.thread.counts.clone());
    engine.set_publisher(move |s| {
        board(s);
        checkpoint.save(s, [counts[0].summary(), counts[1].summary()]);
    });
    Ok(engine)
}

/// One lane's result: its engine's report and its rings' counters.
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
    thread: LaneThread,
    ego_feed: Option<JoinHandle<()>>,
}

/// Runs the fusion role: one engine per (lidar, camera) pair of the rig, each on its lane's
/// thread ([`fusion_lane`]).
///
/// # Errors
/// Exit 3 if a ring cannot be attached or the output cannot be written.
pub fn run(run: &Path) -> Result<(), CliError> {
    let spec = RunSpec::load(run)?;
    let stop = stop_flag()?;
    let waker = StopWaker::on_signals(&stop)?;
    let plan = FusionPlan::new(&spec);
    let fused: FusedRing = Arc::new(Mutex::new(None));
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
        let thread = LaneThread::spawn(run, lane, &waker, &fused, cal_rx, carried);
        cal_txs.push((cal_tx, lane.clone()));
        wired.push((lane.clone(), thread));
    }
    let calib = CalibListener::spawn(run, cal_txs, waker.clone());
    let clock = Arc::new(Mutex::new(None));
    let mut engines = Vec::new();
    for (index, (lane, thread)) in wired.into_iter().enumerate() {
        let w = LaneWiring {
            lane: &lane,
            index,
            fused: &fused,
            thread: &thread,
            calib: &calib,
            counters: &counters,
            clock: &clock,
            tap: mosaics.taps[index].as_ref(),
        };
        let mut engine = build_engine(&spec, &plan, &w)?;
        let ego_feed = super::vehicle::feed_deskew(run, &spec, &stop, &mut engine)?;
        engines.push((Running { lane, thread, ego_feed }, engine));
    }
    *clock.lock() = Some(ready()?);
    let running: Vec<Running> = engines
        .into_iter()
        .map(|(r, engine)| {
            // A lane whose thread already ended (its ring failed) drops its engine unused.
            let _ = r.thread.engine.send(engine);
            r
        })
        .collect();
    let mut reader_error = None;
    let mut reports = Vec::new();
    for r in running {
        let done = r.thread.join();
        reader_error = reader_error.or(done.error);
        if let Some(feed) = r.ego_feed {
            let _ = feed.join();
        }
        let report =
            done.report.ok_or_else(|| CliError::internal("a fusion lane ended without its engine"))?;
        reports.push((r.lane, (done.counts, done.carried), report));
    }
    stop.raise();
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
