//! The fusion role: one reader thread per ring and a calibration listener feed the fusion
//! engine through crossbeam channels; fused frames go to the fused ring, overlays to the
//! output directory, and the role's part of the summary to `<run dir>/fusion-result.json`.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::pipeline::summary::Source;
use calib::subscriber::CalibSubscriber;
use calib::table::CalibTableReader;
use calib::wire::Role;
use calib::CalibrationSet;
use crossbeam_channel::{Receiver, Sender};
use fusion::output::{FusedSink, OverlayConfig, SinkError};
use fusion::summary::{FusionResult, StreamSummary};
use fusion::{Engine, EngineChannels, EngineConfig, InFrame, PairingConfig, Stream};
use parking_lot::Mutex;
use shared::frames::{
    FusedHeader, FusedPoint, PayloadSink, FUSED_HEADER_SIZE, FUSED_POINT_SIZE, POINT_RECORD_SIZE,
};
use shared::ring::{FrameMeta, ReadOutcome, RingReader, RingWriter};
use shared::scoreboard::FusedScoreboard;
use shared::segment::SegmentSpec;
use shared::{rundir, CalibEpoch, StreamKind, TimestampNs};
use zerocopy::IntoBytes;

use super::{attach_when_ready, ready, stop_flag};
use crate::error::CliError;
use crate::pipeline::spec::{RunSpec, FUSION_RESULT_FILE};

/// How long fusion waits for a producer's ring to appear.
const ATTACH_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the listener looks at the calibration table (the recovery path; the socket
/// is the fast path).
const TABLE_POLL: Duration = Duration::from_millis(250);

/// Counts of one reader thread.
#[derive(Debug, Default)]
struct ReaderCounts {
    read: AtomicU64,
    torn: AtomicU64,
    overruns: AtomicU64,
    stale: AtomicU64,
    invalid: AtomicU64,
}

impl ReaderCounts {
    fn summary(&self) -> StreamSummary {
        StreamSummary {
            frames_written: 0,
            frames_read: self.read.load(Ordering::Relaxed),
            torn_retries: self.torn.load(Ordering::Relaxed),
            overruns: self.overruns.load(Ordering::Relaxed),
            stale: self.stale.load(Ordering::Relaxed),
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

    fn record(&self, stream: usize, seq: shared::FrameSeq) {
        let mut g = self.recent.lock();
        if g[stream].len() == Self::KEEP {
            g[stream].pop_front();
        }
        g[stream].push_back((seq.0, shared::ring::monotonic_ns()));
    }

    fn latency_ns(&self, camera: shared::FrameSeq, lidar: shared::FrameSeq) -> Option<u64> {
        let g = self.recent.lock();
        let find = |i: usize, seq: u64| g[i].iter().rev().find(|(s, _)| *s == seq).map(|(_, t)| *t);
        let later = find(0, camera.0)?.max(find(1, lidar.0)?);
        Some(shared::ring::monotonic_ns().saturating_sub(later))
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

#[allow(clippy::too_many_arguments)]
fn reader_thread(
    path: std::path::PathBuf,
    kind: StreamKind,
    tx: Sender<InFrame>,
    recycle: Receiver<Vec<u8>>,
    stop: Arc<AtomicBool>,
    counts: Arc<ReaderCounts>,
    arrivals: Arc<Arrivals>,
    on_attach: impl FnOnce(&RingReader) + Send + 'static,
) -> std::thread::JoinHandle<Result<(), String>> {
    std::thread::spawn(move || {
        let mut reader = match attach_when_ready(&path, kind, &stop, ATTACH_TIMEOUT) {
            Ok(Some(r)) => r,
            Ok(None) => return Ok(()),
            Err(e) => {
                // Without this stream fusion cannot work: stop the other reader too, so the
                // role ends and the supervisor reports it, rather than waiting forever.
                stop.store(true, Ordering::Relaxed);
                return Err(format!("{}: {e}", path.display()));
            }
        };
        // Read what the producer wrote before we attached too (it waits for us, but a
        // restarted fusion picks up where the ring stands).
        reader.seek_oldest();
        on_attach(&reader);
        let stream = if kind == StreamKind::Camera { Stream::Camera } else { Stream::Lidar };
        let mut buf = Vec::new();
        loop {
            match reader.read_next(&mut buf) {
                ReadOutcome::Frame(info) => {
                    counts.read.fetch_add(1, Ordering::Relaxed);
                    arrivals.record(usize::from(kind == StreamKind::Lidar), info.seq);
                    let payload = std::mem::replace(&mut buf, recycle.try_recv().unwrap_or_default());
                    let frame =
                        InFrame { stream, seq: info.seq, capture: info.capture, epoch: info.epoch, payload };
                    if tx.send(frame).is_err() {
                        return Ok(());
                    }
                }
                ReadOutcome::Empty => {
                    if stop.load(Ordering::Relaxed) {
                        return Ok(());
                    }
                    reader.wait(Duration::from_millis(100));
                }
                ReadOutcome::Torn => {
                    counts.torn.fetch_add(1, Ordering::Relaxed);
                    std::thread::yield_now();
                }
                ReadOutcome::Overrun { .. } => {
                    counts.overruns.fetch_add(1, Ordering::Relaxed);
                }
                ReadOutcome::Stale { .. } => {
                    counts.stale.fetch_add(1, Ordering::Relaxed);
                }
                ReadOutcome::Invalid(why) => {
                    counts.invalid.fetch_add(1, Ordering::Relaxed);
                    if why == shared::ring::InvalidFrame::SegmentTruncated {
                        stop.store(true, Ordering::Relaxed);
                        return Err(format!("{}: {why}", path.display()));
                    }
                }
            }
        }
    })
}

/// Listens to the calibration service and the table; sends every new epoch once.
fn listener_thread(
    run: std::path::PathBuf,
    tx: Sender<Arc<CalibrationSet>>,
    stop: Arc<AtomicBool>,
    updates: Arc<AtomicU64>,
    rejected: Arc<AtomicU64>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let socket = run.join(rundir::CALIB_SOCKET);
        let table_path = run.join(rundir::segment_file(StreamKind::CalibTable));
        let mut sub =
            CalibSubscriber::connect_retry(&socket, Role::Fusion, Duration::from_secs(10), Some(&stop)).ok();
        let mut table = CalibTableReader::attach(&table_path).ok();
        let mut sent: BTreeSet<CalibEpoch> = BTreeSet::new();
        let send_new = |set: CalibrationSet, sent: &mut BTreeSet<CalibEpoch>| {
            if sent.insert(set.epoch) {
                let _ = tx.send(Arc::new(set));
            }
        };
        let mut since_table = std::time::Instant::now() - TABLE_POLL;
        while !stop.load(Ordering::Relaxed) {
            if since_table.elapsed() >= TABLE_POLL {
                if table.is_none() {
                    table = CalibTableReader::attach(&table_path).ok();
                }
                if let Some(t) = table.as_mut() {
                    for set in t.read_changed() {
                        send_new(set, &mut sent);
                    }
                }
                since_table = std::time::Instant::now();
            }
            match sub.as_mut() {
                Some(s) => {
                    match s.recv_timeout(TABLE_POLL) {
                        Ok(Some(set)) => send_new(set, &mut sent),
                        Ok(None) => {}
                        Err(_) => {
                            if s.is_disconnected() {
                                sub = None;
                            }
                        }
                    }
                    updates.store(s_updates(sub.as_ref(), &updates), Ordering::Relaxed);
                    if let Some(s) = sub.as_ref() {
                        rejected.store(s.rejected_messages(), Ordering::Relaxed);
                    }
                }
                None => std::thread::sleep(TABLE_POLL),
            }
        }
    })
}

fn s_updates(sub: Option<&CalibSubscriber>, last: &AtomicU64) -> u64 {
    sub.map_or_else(|| last.load(Ordering::Relaxed), CalibSubscriber::updates_received)
}

/// Runs the fusion role.
///
/// # Errors
/// Exit 3 if a ring cannot be attached or the output cannot be written.
pub fn run(run: &Path) -> Result<(), CliError> {
    let spec = RunSpec::load(run)?;
    let stop = stop_flag()?;
    let (mode, source) = (spec.pairing, spec.source_kind());
    let pairing = PairingConfig::for_camera_rate(spec.camera_hz).with_mode(mode);

    let (cam_tx, cam_rx) = crossbeam_channel::bounded(4);
    let (lid_tx, lid_rx) = crossbeam_channel::bounded(4);
    let (cal_tx, cal_rx) = crossbeam_channel::unbounded();
    let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(1);
    let (rc_tx, rc_rx) = crossbeam_channel::bounded(8);
    let (rl_tx, rl_rx) = crossbeam_channel::bounded(8);

    let writer: Arc<Mutex<Option<RingWriter>>> = Arc::new(Mutex::new(None));
    let fused_path = run.join(rundir::segment_file(StreamKind::Fused));
    // The fused ring is sized from the lidar ring: a fused frame holds at most every point
    // of one sweep.
    let on_lidar_attach = {
        let writer = Arc::clone(&writer);
        move |r: &RingReader| {
            let max_points = r.slot_capacity() / POINT_RECORD_SIZE;
            let cap = (FUSED_HEADER_SIZE + max_points * FUSED_POINT_SIZE) as u64;
            let spec = SegmentSpec::new(StreamKind::Fused, 8, cap);
            match RingWriter::create_or_takeover(&fused_path, &spec) {
                Ok((w, _)) => *writer.lock() = Some(w),
                Err(e) => {
                    eprintln!("fusion: {}: {e}; fused frames will not be published", fused_path.display())
                }
            }
        }
    };

    let arrivals = Arc::new(Arrivals::default());
    let cam_counts = Arc::new(ReaderCounts::default());
    let lid_counts = Arc::new(ReaderCounts::default());
    let readers = [
        reader_thread(
            run.join(rundir::segment_file(StreamKind::Camera)),
            StreamKind::Camera,
            cam_tx,
            rc_rx,
            Arc::clone(&stop),
            Arc::clone(&cam_counts),
            Arc::clone(&arrivals),
            |_| {},
        ),
        reader_thread(
            run.join(rundir::segment_file(StreamKind::Lidar)),
            StreamKind::Lidar,
            lid_tx,
            rl_rx,
            Arc::clone(&stop),
            Arc::clone(&lid_counts),
            Arc::clone(&arrivals),
            on_lidar_attach,
        ),
    ];
    let updates = Arc::new(AtomicU64::new(0));
    let rejected = Arc::new(AtomicU64::new(0));
    let listen_stop = Arc::new(AtomicBool::new(false));
    let listener = listener_thread(
        run.to_path_buf(),
        cal_tx,
        Arc::clone(&listen_stop),
        Arc::clone(&updates),
        Arc::clone(&rejected),
    );

    let overlay =
        (spec.overlay_every > 0).then(|| OverlayConfig::new(spec.out.join("overlays"), spec.overlay_every));
    let keep_frames = spec.per_pair || source == Source::Replay;
    // Live drives pair on the pipeline clock; runs at max rate and replays on the data's
    // own time (reproducible), with latency measured from each frame's arrival.
    let live_clock = !spec.max_rate && source == Source::Sim;
    let cfg = EngineConfig {
        pairing,
        keep_frames,
        overlay,
        clock_follows_data: !live_clock,
        ..EngineConfig::default()
    };
    let channels = EngineChannels {
        camera: cam_rx,
        lidar: lid_rx,
        calibration: cal_rx,
        stop: stop_rx,
        recycle_camera: rc_tx,
        recycle_lidar: rl_tx,
    };
    let clock_cell: Arc<Mutex<Option<calib::clock::PipelineClock>>> = Arc::new(Mutex::new(None));
    let engine_clock: Box<dyn Fn() -> TimestampNs + Send> = {
        let cell = Arc::clone(&clock_cell);
        Box::new(move || cell.lock().map_or(TimestampNs(0), |c| c.now()))
    };
    let mut engine = Engine::new(cfg, channels, RingSink { writer: Arc::clone(&writer) }, engine_clock)
        .map_err(|e| CliError::input(format!("{}: {e}", spec.out.display())))?;
    if !live_clock {
        engine.set_latency_source(move |c, l| arrivals.latency_ns(c, l));
    }
    {
        let writer = Arc::clone(&writer);
        let updates = Arc::clone(&updates);
        let rejected = Arc::clone(&rejected);
        engine.set_publisher(move |s| {
            if let Some(w) = writer.lock().as_ref() {
                FusedScoreboard {
                    pairs: s.fused,
                    held: s.held_camera + s.held_lidar,
                    dropped_no_calib: s.dropped_no_calibration,
                    rejected_mismatch: s.rejected_epoch_mismatch,
                    epoch_mismatch: s.fused_epoch_mismatch,
                    latest_epoch: CalibEpoch(s.latest_epoch),
                    unpaired: s.unpaired_camera + s.unpaired_lidar,
                    last_latency_us: s.last_latency_ns / 1000,
                    calib_updates: updates.load(Ordering::Relaxed),
                    calib_rejected: rejected.load(Ordering::Relaxed),
                }
                .store(w);
            }
        });
    }
    *clock_cell.lock() = Some(ready()?);
    let engine_thread = std::thread::spawn(move || engine.run());
    let mut reader_error = None;
    for r in readers {
        match r.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => reader_error = Some(e),
            Err(_) => reader_error = Some("a reader thread panicked".to_string()),
        }
    }
    // Both frame senders are gone now; the engine drains, decides, and returns. Calibrations
    // still queued are handled first, so the listener stops only after the engine is done.
    drop(stop_tx);
    let report = engine_thread.join().map_err(|_| CliError::internal("the fusion engine panicked"))?;
    listen_stop.store(true, Ordering::Relaxed);
    let _ = listener.join();

    let mut result = FusionResult::from_stats(&report.stats, keep_frames);
    let received = &mut result.calibration.updates_received;
    *received = (*received).max(updates.load(Ordering::Relaxed));
    result.calibration.rejected_messages = rejected.load(Ordering::Relaxed);
    result.streams.camera = cam_counts.summary();
    result.streams.lidar = lid_counts.summary();
    let path = run.join(FUSION_RESULT_FILE);
    result.write(&path).map_err(|e| CliError::internal(format!("{}: {e}", path.display())))?;
    if let Some(e) = reader_error {
        return Err(CliError::internal(e));
    }
    Ok(())
}
