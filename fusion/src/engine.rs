//! The fusion engine: receives frames and calibrations from channels, pairs them
//! ([`crate::pairing`]), projects ([`crate::project`]), and hands fused frames to a
//! [`FusedSink`].
//!
//! ```text
//!  camera reader ──InFrame──►┐                          ┌──► FusedSink (fused ring)
//!  lidar reader  ──InFrame──►├─► Engine::run (select!) ─┼──► OverlayWriter (PNG thread)
//!  calibration   ──Arc<CalibrationSet>──►┤              └──► FusionStats / StatsHandle
//!  stop          ──()──────►┘
//!  payload Vecs go back to each reader on its recycle channel; the overlay thread's to
//!  the engine, for the next overlay's copy
//! ```
//!
//! The engine is single-threaded and synchronous at its core ([`Engine::handle_frame`],
//! [`Engine::handle_calibration`], [`Engine::tick`], [`Engine::finish`]); [`Engine::run`] is
//! the channel loop around it. A caller that reads the rings itself (fusion's lane threads)
//! drives the core directly, with [`EngineChannels::none`], [`Engine::time_to_deadline`] and
//! [`Engine::conclude`], and pays no hand-over between threads. Every payload `Vec` handed
//! in is returned on its stream's recycle channel once the engine is done with it (with
//! `try_send`: a full or closed recycle channel just drops the buffer), so readers need not
//! allocate in steady state. A frame drawn as an overlay is copied into a buffer the overlay
//! thread handed back, for the same reason.

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use calib::CalibrationSet;
use crossbeam_channel::{never, select, Receiver, Sender};
use shared::frames::{camera_image, FusedHeader, FusedPoint, POINT_RECORD_SIZE};
use shared::{CalibEpoch, FrameSeq, StreamKind, TimestampNs};

use crate::deskew::SweepDeskew;
use crate::output::{FusedSink, OverlayConfig, OverlayJob, OverlayWriter};
use crate::pairing::{FrameMeta, Held, Output, Pairer, PairingConfig, SeenWindow};
use crate::payload::{Payload, PointScratch, UseError};
use crate::project::SweepProjection;
use crate::rig::RigProjector;
use crate::sample::{colour_points, PixelSamples};
use crate::stats::{CountersSnapshot, FusionStats, LatencyRecorder, PairMetrics, StatsHandle};

/// A frame handed to the engine: its header fields and its payload (copied, or a versioned
/// reference into its ring, read in place only if the frame is used).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InFrame {
    /// Camera or lidar, as the channel it is sent on (else it is counted invalid there).
    pub stream: StreamKind,
    /// Sequence number in its ring.
    pub seq: FrameSeq,
    /// Capture time.
    pub capture: TimestampNs,
    /// The epoch the producer tagged it with.
    pub epoch: CalibEpoch,
    /// When the producer published it (CLOCK_MONOTONIC ns, 0 if unknown): splits latency.
    pub published: TimestampNs,
    /// The payload (camera: `ImageHeader | rgb | labels`; lidar: `PointRecord[n]`).
    pub payload: Payload,
}

/// The engine's channels.
#[derive(Debug)]
pub struct EngineChannels {
    /// Camera frames.
    pub camera: Receiver<InFrame>,
    /// Lidar sweeps.
    pub lidar: Receiver<InFrame>,
    /// Calibration epochs as they become known (from the subscriber and the table).
    pub calibration: Receiver<Arc<CalibrationSet>>,
    /// A message, or the sender's drop, stops the engine: it drains what is already queued,
    /// decides what it can, and returns.
    pub stop: Receiver<()>,
    /// Camera payload buffers go back here.
    pub recycle_camera: Sender<Vec<u8>>,
    /// Lidar payload buffers go back here.
    pub recycle_lidar: Sender<Vec<u8>>,
}

impl EngineChannels {
    /// Channels that carry nothing, for an engine driven through its synchronous API
    /// ([`Engine::handle_frame`], [`Engine::handle_calibration`], [`Engine::tick`],
    /// [`Engine::conclude`]) by a caller that reads the rings itself.
    #[must_use]
    pub fn none() -> Self {
        Self {
            camera: never(),
            lidar: never(),
            calibration: never(),
            stop: never(),
            recycle_camera: crossbeam_channel::bounded(0).0,
            recycle_lidar: crossbeam_channel::bounded(0).0,
        }
    }
}

/// Engine settings.
#[derive(Clone, Debug, PartialEq)]
pub struct EngineConfig {
    /// Pairing rules.
    pub pairing: PairingConfig,
    /// Keep per-pair metrics ([`FusionStats::frames`]); needed for a replay and `--per-pair`.
    pub keep_frames: bool,
    /// PNG overlays, if wanted.
    pub overlay: Option<OverlayConfig>,
    /// Bound on latency samples kept (percentiles stay representative past it).
    pub latency_samples: usize,
    /// Time is the data's: "now" is the newest capture time the engine has handled on the
    /// slower of the two streams, not the clock. For runs whose capture times are not on the
    /// wall clock (`--max-rate`, replays): timeouts then advance only with the frames the
    /// engine has seen, so thread scheduling cannot change which frames pair.
    pub clock_follows_data: bool,
    /// At most this many frames per stream are held by reference into their ring; older
    /// ones are copied out, so that a producer waiting for fusion (`--max-rate`) is never
    /// kept waiting by frames fusion holds, and a slow calibration never lets a held frame
    /// be overwritten. Keep it below the ring's back-pressure margin.
    pub max_held_refs: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            pairing: PairingConfig::default(),
            keep_frames: false,
            overlay: None,
            latency_samples: 1 << 20,
            clock_follows_data: false,
            max_held_refs: 4,
        }
    }
}

/// What [`Engine::run`] returns.
#[derive(Debug)]
pub struct FusionReport<S> {
    /// Everything counted.
    pub stats: FusionStats,
    /// The sink, handed back.
    pub sink: S,
}

type Clock = Box<dyn Fn() -> TimestampNs + Send>;
type Publisher = Box<dyn FnMut(&CountersSnapshot) + Send>;
type LatencySource = Box<dyn FnMut(FrameSeq, FrameSeq) -> Option<u64> + Send>;
type Deskewer = Box<dyn FnMut(TimestampNs, &CalibrationSet) -> Option<SweepDeskew> + Send>;

/// The projector of `calib`'s epoch, built once per epoch (its wedge culls the points
/// outside the camera's view) and kept in `cache`.
fn projector_for<'a>(
    cache: &'a mut Option<(CalibEpoch, RigProjector)>,
    calib: &CalibrationSet,
) -> &'a RigProjector {
    if cache.as_ref().is_none_or(|(e, _)| *e != calib.epoch) {
        *cache = Some((calib.epoch, RigProjector::new(std::slice::from_ref(calib))));
    }
    &cache.as_ref().expect("set above").1
}

/// The fusion engine. See the module docs.
pub struct Engine<S> {
    cfg: EngineConfig,
    channels: EngineChannels,
    sink: S,
    clock: Clock,
    publisher: Option<Publisher>,
    latency_source: Option<LatencySource>,
    deskew: Option<Deskewer>,
    data_now: [Option<u64>; 2],
    pairer: Pairer<Payload>,
    calibs: BTreeMap<CalibEpoch, Arc<CalibrationSet>>,
    stats: FusionStats,
    handle: StatsHandle,
    outbox: Vec<Output<Payload>>,
    /// The sweep projected into camera 0 (reused).
    sweep: SweepProjection,
    /// The projector of the last epoch fused (built once per epoch, not per pair).
    projector: Option<(CalibEpoch, RigProjector)>,
    fused_points: Vec<FusedPoint>,
    point_scratch: PointScratch,
    /// The camera pixels under the projected points (reused).
    pixel_samples: PixelSamples,
    released: ReleasedEpochs,
    overlay: Option<OverlayWriter>,
    overlay_buffers: OverlayBuffers,
    fused_camera: SeenWindow,
    fused_lidar: SeenWindow,
    raw_camera: u64,
    raw_lidar: u64,
    last_latency_ns: u64,
    last_pipeline_ns: u64,
}

impl<S> std::fmt::Debug for Engine<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("cfg", &self.cfg).field("stats", &self.stats).finish_non_exhaustive()
    }
}

impl<S: FusedSink> Engine<S> {
    /// A new engine. `clock` gives "now" on the same clock as the frames' capture times
    /// (CLOCK_MONOTONIC nanoseconds in a live run); it must advance with real time, since it
    /// drives both the latency samples and the pairing timeouts.
    ///
    /// # Errors
    /// If the overlay directory cannot be created or its thread cannot start.
    pub fn new(
        cfg: EngineConfig,
        channels: EngineChannels,
        sink: S,
        clock: impl Fn() -> TimestampNs + Send + 'static,
    ) -> io::Result<Self> {
        let (spare, back) = crossbeam_channel::bounded(8);
        let overlay = match &cfg.overlay {
            Some(o) if o.every > 0 => {
                Some(OverlayWriter::spawn(&o.dir, o.style, Some(spare), o.tap.clone())?)
            }
            _ => None,
        };
        let stats = FusionStats {
            mode: cfg.pairing.mode,
            latency: LatencyRecorder::new(cfg.latency_samples),
            latency_render: LatencyRecorder::new(cfg.latency_samples),
            latency_pipeline: LatencyRecorder::new(cfg.latency_samples),
            ..FusionStats::default()
        };
        Ok(Self {
            pairer: Pairer::new(cfg.pairing),
            fused_camera: SeenWindow::new(cfg.pairing.duplicate_window),
            fused_lidar: SeenWindow::new(cfg.pairing.duplicate_window),
            cfg,
            channels,
            sink,
            clock: Box::new(clock),
            publisher: None,
            latency_source: None,
            deskew: None,
            data_now: [None, None],
            calibs: BTreeMap::new(),
            stats,
            handle: StatsHandle::default(),
            outbox: Vec::with_capacity(64),
            sweep: SweepProjection::default(),
            projector: None,
            fused_points: Vec::new(),
            point_scratch: PointScratch::default(),
            pixel_samples: PixelSamples::default(),
            released: ReleasedEpochs::default(),
            overlay,
            overlay_buffers: OverlayBuffers { back, spare: None },
            raw_camera: 0,
            raw_lidar: 0,
            last_latency_ns: 0,
            last_pipeline_ns: 0,
        })
    }

    /// A handle to the live counters, readable from any thread.
    #[must_use]
    pub fn stats_handle(&self) -> StatsHandle {
        self.handle.clone()
    }

    /// Motion-compensates every sweep before it is projected: `f(capture, calibration)` gives
    /// the compensation of the sweep captured then ([`crate::deskew`]; `None` leaves the points
    /// as they are), which moves each chunk's copy of the points as the sweep streams from its
    /// slot (the slot stays as received).
    pub fn set_deskew(
        &mut self,
        f: impl FnMut(TimestampNs, &CalibrationSet) -> Option<SweepDeskew> + Send + 'static,
    ) {
        self.deskew = Some(Box::new(f));
    }

    /// Calls `f` with the live counters after every event that the engine handled (on the
    /// engine's thread: keep it cheap, e.g. a few stores into a scoreboard).
    pub fn set_publisher(&mut self, f: impl FnMut(&CountersSnapshot) + Send + 'static) {
        self.publisher = Some(Box::new(f));
    }

    /// Measures latency another way than "clock now − later capture": `f(camera_seq,
    /// lidar_seq)` gives the pair's latency in ns. For runs whose capture times are not on
    /// the wall clock (`--max-rate`, replays), where the caller measures from each frame's
    /// arrival instead.
    pub fn set_latency_source(&mut self, f: impl FnMut(FrameSeq, FrameSeq) -> Option<u64> + Send + 'static) {
        self.latency_source = Some(Box::new(f));
    }

    /// The statistics so far.
    #[must_use]
    pub const fn stats(&self) -> &FusionStats {
        &self.stats
    }

    /// The sink.
    pub fn sink_mut(&mut self) -> &mut S {
        &mut self.sink
    }

    /// Runs the channel loop until stopped, or until both frame channels are closed; then
    /// decides what is left ([`Engine::finish`]) and returns the statistics and the sink.
    pub fn run(mut self) -> FusionReport<S> {
        let mut camera = self.channels.camera.clone();
        let mut lidar = self.channels.lidar.clone();
        let mut calibration = self.channels.calibration.clone();
        let stop = self.channels.stop.clone();
        let (mut camera_open, mut lidar_open) = (true, true);
        while camera_open || lidar_open {
            let timeout = self
                .time_to_deadline()
                .map_or(Duration::from_secs(3600), |d| d.max(Duration::from_micros(50)));
            select! {
                recv(stop) -> _ => break,
                recv(calibration) -> m => match m {
                    Ok(c) => self.handle_calibration(c),
                    Err(_) => calibration = never(),
                },
                recv(camera) -> m => match m {
                    Ok(f) => self.handle_frame_on(StreamKind::Camera, f),
                    Err(_) => { camera = never(); camera_open = false; }
                },
                recv(lidar) -> m => match m {
                    Ok(f) => self.handle_frame_on(StreamKind::Lidar, f),
                    Err(_) => { lidar = never(); lidar_open = false; }
                },
                default(timeout) => self.tick(),
            }
        }
        // Drain what is already queued, calibrations first.
        while let Ok(c) = calibration.try_recv() {
            self.handle_calibration(c);
        }
        loop {
            let mut any = false;
            if let Ok(f) = camera.try_recv() {
                self.handle_frame_on(StreamKind::Camera, f);
                any = true;
            }
            if let Ok(f) = lidar.try_recv() {
                self.handle_frame_on(StreamKind::Lidar, f);
                any = true;
            }
            if !any {
                break;
            }
        }
        self.conclude()
    }

    /// Whether a sweep is held undecided (then its camera frame may be the next to come).
    #[must_use]
    pub fn sweep_pending(&self) -> bool {
        self.pairer.held().1 > 0
    }

    /// How long until the pairer's next timeout is due ([`Engine::tick`] applies it), on the
    /// engine's clock; zero if it is due, `None` if nothing waits for one.
    #[must_use]
    pub fn time_to_deadline(&self) -> Option<Duration> {
        let d = self.pairer.next_deadline()?;
        Some(Duration::from_nanos(d.0.saturating_sub(self.now().0)))
    }

    /// Decides what is left ([`Engine::finish`]) and returns the statistics and the sink.
    pub fn conclude(mut self) -> FusionReport<S> {
        self.finish();
        FusionReport { stats: self.stats.clone(), sink: self.sink }
    }

    /// Handles one calibration epoch. Epoch 0 is ignored (counted); an epoch already known
    /// with other contents is a conflict (counted): the first one stays.
    pub fn handle_calibration(&mut self, c: Arc<CalibrationSet>) {
        self.stats.calibration_updates += 1;
        let epoch = c.epoch;
        if !epoch.is_some() {
            self.stats.calibration_invalid += 1;
        } else if let Some(old) = self.calibs.get(&epoch) {
            if **old != *c {
                self.stats.calibration_conflicts += 1;
            }
        } else {
            self.calibs.insert(epoch, c);
            self.stats.epochs = self.calibs.keys().copied().collect();
            let now = self.now();
            self.pairer.add_calibration(epoch, now, &mut self.outbox);
        }
        self.drain();
    }

    /// Handles one frame, routed by its `stream` field, which must be a sensor kind
    /// ([`StreamKind::is_sensor`]): any other is a caller bug (debug builds panic, release
    /// builds drop the frame).
    pub fn handle_frame(&mut self, f: InFrame) {
        if !f.stream.is_sensor() {
            debug_assert!(false, "the engine was handed a {} frame", f.stream);
            return;
        }
        self.handle_frame_on(f.stream, f);
    }

    fn handle_frame_on(&mut self, channel: StreamKind, f: InFrame) {
        match channel {
            StreamKind::Camera => self.raw_camera += 1,
            _ => self.raw_lidar += 1,
        }
        let valid = f.stream == channel
            && match (&f.payload, channel) {
                (Payload::Owned(b), StreamKind::Camera) => camera_image(b).is_ok(),
                (Payload::Owned(b), _) => b.len() % POINT_RECORD_SIZE == 0,
                // A reference is checked when it is used.
                _ => true,
            };
        if !valid {
            match channel {
                StreamKind::Camera => self.stats.invalid_camera += 1,
                _ => self.stats.invalid_lidar += 1,
            }
            self.recycle(channel, f.payload);
            self.publish();
            return;
        }
        let meta = FrameMeta { seq: f.seq, capture: f.capture, epoch: f.epoch, published: f.published };
        let slot = &mut self.data_now[usize::from(channel == StreamKind::Lidar)];
        *slot = Some(slot.map_or(f.capture.0, |c| c.max(f.capture.0)));
        let now = self.now();
        self.pairer.push(channel, meta, f.payload, now, &mut self.outbox);
        self.drain();
    }

    /// "Now" for pairing: the clock, or the data's time (see
    /// [`EngineConfig::clock_follows_data`]).
    fn now(&self) -> TimestampNs {
        if self.cfg.clock_follows_data {
            TimestampNs(self.data_now.iter().flatten().copied().min().unwrap_or(0))
        } else {
            (self.clock)()
        }
    }

    /// Applies timeouts.
    pub fn tick(&mut self) {
        let now = self.now();
        self.pairer.tick(now, &mut self.outbox);
        self.drain();
    }

    /// Decides every pending sweep with what is held, releases the rest, and waits for the
    /// overlay thread. Call once, at the end ([`Engine::run`] does).
    pub fn finish(&mut self) {
        let now = self.now();
        self.pairer.finish(now, &mut self.outbox);
        self.drain();
        self.stats.unknown_epoch = self.released.never_published(&self.calibs);
        if let Some(o) = self.overlay.take() {
            let c = o.finish();
            self.stats.overlays_written = c.written;
            self.stats.overlay_errors = c.errors;
            self.overlay_buffers.give_all_back(&self.channels.recycle_camera);
        }
        self.publish();
    }

    /// A frame leaves unused: owned bytes go back to their reader, a reference is
    /// accounted for in its ring.
    fn recycle(&self, stream: StreamKind, payload: Payload) {
        self.give_back(stream, payload.let_go());
    }

    /// Owned bytes go back to their reader for reuse.
    fn give_back(&self, stream: StreamKind, buf: Option<Vec<u8>>) {
        let tx = match stream {
            StreamKind::Camera => &self.channels.recycle_camera,
            _ => &self.channels.recycle_lidar,
        };
        if let Some(buf) = buf {
            let _ = tx.try_send(buf);
        }
    }

    /// Whether the next fused pair gets an overlay.
    fn overlay_due(&self) -> bool {
        let every = self.cfg.overlay.as_ref().map_or(0, |o| o.every);
        self.overlay.is_some() && every > 0 && self.stats.fused.is_multiple_of(every)
    }

    fn drain(&mut self) {
        // A pair that fails at use makes the pairer decide again: new outputs may appear
        // while the batch is handled.
        let mut batch = std::mem::take(&mut self.outbox);
        loop {
            for o in batch.drain(..) {
                match o {
                    Output::Fuse { camera, lidar, calib, .. } => self.fuse(camera, lidar, calib),
                    Output::Release { stream, frame, .. } => {
                        self.released.note(stream, frame.meta.epoch, &self.calibs);
                        self.recycle(stream, frame.payload);
                    }
                }
            }
            if self.outbox.is_empty() {
                break;
            }
            std::mem::swap(&mut batch, &mut self.outbox);
        }
        self.outbox = batch;
        self.copy_out_old_refs();
        self.stats.pairer = *self.pairer.counters();
        let (hc, hl) = self.pairer.held();
        self.stats.held_camera = hc as u64;
        self.stats.held_lidar = hl as u64;
        self.publish();
    }

    /// Keeps at most [`EngineConfig::max_held_refs`] references per stream: the oldest held
    /// frames beyond it are copied out of their ring.
    fn copy_out_old_refs(&mut self) {
        for stream in [StreamKind::Camera, StreamKind::Lidar] {
            let refs = self.pairer.payloads_mut(stream).filter(|p| p.is_ref()).count();
            let excess = refs.saturating_sub(self.cfg.max_held_refs);
            if excess == 0 {
                continue;
            }
            for p in self.pairer.payloads_mut(stream).filter(|p| p.is_ref()).take(excess) {
                p.copy_out(Vec::new());
            }
        }
    }

    /// Splits a pair's latency at the moment its last frame was published (`published`, 0 if
    /// unknown): pipeline = published → now; render = the rest (capture → published), kept
    /// only where latency is measured from capture (live runs).
    fn split_latency(&mut self, latency: u64, published: TimestampNs) {
        if published.0 == 0 {
            return;
        }
        let pipeline = shared::clock::monotonic_ns().saturating_sub(published.0);
        self.stats.latency_pipeline.record(pipeline);
        self.last_pipeline_ns = pipeline;
        if self.latency_source.is_none() {
            self.stats.latency_render.record(latency.saturating_sub(pipeline));
        }
    }

    /// The sweep projected into camera 0, streamed straight from its slot; when the run
    /// deskews, each chunk's points are moved first.
    fn project_sweep(
        &mut self,
        payload: &Payload,
        sweep: &FrameMeta,
        calib: &CalibrationSet,
    ) -> Result<SweepProjection, UseError> {
        let out = std::mem::take(&mut self.sweep);
        let deskew = self.deskew.as_mut().and_then(|d| d(sweep.capture, calib));
        let rig = projector_for(&mut self.projector, calib);
        payload.project((rig, 0), deskew.as_ref(), &mut self.point_scratch, out)
    }

    /// Counts a payload that failed at use.
    fn count_use_error(&mut self, stream: StreamKind, e: UseError) {
        let i = usize::from(stream == StreamKind::Lidar);
        match e {
            UseError::Overrun => self.stats.overrun_before_use[i] += 1,
            UseError::Invalid => self.stats.invalid_at_use[i] += 1,
        }
    }

    fn fuse(&mut self, mut camera: Held<Payload>, lidar: Held<Payload>, epoch: CalibEpoch) {
        let Some(calib) = self.calibs.get(&epoch).cloned() else {
            // The pairer only decides with a known epoch: this would be a bug.
            self.stats.missing_calibration += 1;
            self.recycle(StreamKind::Camera, camera.payload);
            self.recycle(StreamKind::Lidar, lidar.payload);
            return;
        };
        // A camera frame to be drawn is copied out (once, validated) and coloured from the
        // copy: the overlay keeps it.
        if self.overlay_due() && camera.payload.is_ref() {
            camera.payload.copy_out(self.overlay_buffers.take(&self.channels.recycle_camera));
        }
        // The sweep first, projected straight from its slot; then the camera frame, coloured
        // straight from its slot. Each is verified at use: one that is gone or forged is
        // counted, and the pairer falls back (the sweep to its next candidate).
        let sweep = match self.project_sweep(&lidar.payload, &lidar.meta, &calib) {
            Ok(s) => s,
            Err(e) => {
                self.count_use_error(StreamKind::Lidar, e);
                self.pairer.sweep_lost(camera, lidar.meta, epoch);
                return;
            }
        };
        let pr = sweep.projected();
        let samples = camera.payload.samples(pr.u(), pr.v(), std::mem::take(&mut self.pixel_samples));
        let (matches, labelled) = match samples {
            Ok(s) => {
                let matches = colour_points(pr, sweep.kept(), &s, &mut self.fused_points);
                let labelled = s.labelled();
                self.pixel_samples = s;
                (matches, labelled)
            }
            Err(e) => {
                self.sweep = sweep;
                self.count_use_error(StreamKind::Camera, e);
                let mut out = std::mem::take(&mut self.outbox);
                self.pairer.camera_lost(camera.meta, lidar, epoch, &mut out);
                self.outbox = out;
                return;
            }
        };
        if !self.fused_camera.insert(camera.meta.seq) {
            self.stats.fused_twice += 1;
        }
        if !self.fused_lidar.insert(lidar.meta.seq) {
            self.stats.fused_twice += 1;
        }
        let (n_points, n_in) = (pr.total() as u64, pr.len() as u64);
        let consistency = (labelled && n_in > 0).then(|| matches as f64 / n_in as f64);
        let (mean_u, mean_v, mean_depth) = pr.means();
        self.sweep = sweep;
        let projector = projector_for(&mut self.projector, &calib).camera(0);

        let header = FusedHeader {
            camera_seq: camera.meta.seq.0,
            lidar_seq: lidar.meta.seq.0,
            epoch: calib.epoch.0,
            points: self.fused_points.len() as u32,
            width: projector.width(),
            height: projector.height(),
            reserved: 0,
        };
        if self.sink.write(&header, &self.fused_points).is_err() {
            self.stats.sink_errors += 1;
        }
        let latency = match self.latency_source.as_mut() {
            Some(f) => f(camera.meta.seq, lidar.meta.seq).unwrap_or(0),
            None => {
                let captured = camera.meta.capture.max(lidar.meta.capture);
                (self.clock)().0.saturating_sub(captured.0)
            }
        };
        self.last_latency_ns = latency;
        self.stats.latency.record(latency);
        self.split_latency(latency, camera.meta.published.max(lidar.meta.published));

        // The honest check: the epochs of the two frames and of the calibration actually used.
        let (ce, le, ae) = (camera.meta.epoch, lidar.meta.epoch, calib.epoch);
        self.stats.fused += 1;
        if ce != le || ae != le || ae != ce {
            self.stats.fused_epoch_mismatch += 1;
        }
        self.stats.points_total += n_points;
        self.stats.points_in_image_total += n_in;
        if let Some(c) = consistency {
            self.stats.consistency_sum += c;
            self.stats.consistency_pairs += 1;
            self.stats.consistency_min = Some(self.stats.consistency_min.map_or(c, |m| m.min(c)));
        }
        if self.cfg.keep_frames {
            self.stats.frames.push(PairMetrics {
                camera_seq: camera.meta.seq.0,
                lidar_seq: lidar.meta.seq.0,
                epoch: ae.0,
                points: n_points,
                points_in_image: n_in,
                mean_u,
                mean_v,
                mean_depth,
                consistency,
                camera_epoch: ce.0,
                lidar_epoch: le.0,
                latency_ms: latency as f64 / 1e6,
                camera_capture_ns: camera.meta.capture.0,
                lidar_capture_ns: lidar.meta.capture.0,
            });
        }
        self.overlay(camera, lidar.meta.seq, ae);
        self.give_back(StreamKind::Lidar, lidar.payload.used());
    }

    /// Hands every `every`-th pair's camera frame to the overlay thread: the one frame
    /// copied out of its ring (before it was used), and only when drawn.
    fn overlay(&mut self, camera: Held<Payload>, lidar_seq: FrameSeq, epoch: CalibEpoch) {
        let pair_index = self.stats.fused - 1;
        let every = self.cfg.overlay.as_ref().map_or(0, |o| o.every);
        let Some(w) = self.overlay.as_ref().filter(|_| every > 0 && pair_index.is_multiple_of(every)) else {
            self.give_back(StreamKind::Camera, camera.payload.used());
            return;
        };
        match camera.payload.into_bytes(Vec::new()) {
            Ok(camera_payload) => {
                let pts = self.fused_points.iter().map(|p| [p.u, p.v, p.depth]).collect();
                w.submit(OverlayJob {
                    pair_index,
                    camera_seq: camera.meta.seq.0,
                    lidar_seq: lidar_seq.0,
                    epoch: epoch.0,
                    camera_payload,
                    points: pts,
                });
            }
            // Coloured a moment ago, overwritten since: no overlay for this pair.
            Err(_) => self.stats.overlay_errors += 1,
        }
    }

    fn publish(&mut self) {
        let p = &self.stats.pairer;
        let snap = CountersSnapshot {
            camera_frames: self.raw_camera,
            lidar_frames: self.raw_lidar,
            fused: self.stats.fused,
            fused_epoch_mismatch: self.stats.fused_epoch_mismatch,
            rejected_epoch_mismatch: p.rejected_epoch_mismatch,
            dropped_no_calibration: p.dropped_no_calibration(),
            unpaired_camera: p.unpaired_camera,
            unpaired_lidar: p.unpaired_lidar,
            duplicates: p.duplicates(),
            invalid: self.stats.invalid_camera + self.stats.invalid_lidar,
            held_camera: self.stats.held_camera,
            held_lidar: self.stats.held_lidar,
            latest_epoch: self.stats.latest_epoch().map_or(0, |e| e.0),
            last_latency_ns: self.last_latency_ns,
            last_pipeline_ns: self.last_pipeline_ns,
            max_latency_ns: self.stats.latency.max_ns(),
        };
        self.handle.store(&snap);
        if let Some(f) = &mut self.publisher {
            f(&snap);
        }
    }
}

/// Camera-frame buffers the overlay thread is done with. One is kept for the next overlay's
/// copy of a frame read in place (a fresh one costs that pair its page faults and zeroing:
/// a camera frame is a few MB); the others, payloads a reader handed in, go back to it.
#[derive(Debug)]
struct OverlayBuffers {
    back: Receiver<Vec<u8>>,
    spare: Option<Vec<u8>>,
}

impl OverlayBuffers {
    /// A buffer for the next copy (empty if none came back), after handing every other
    /// buffer that came back to the camera reader (`readers`, with `try_send` as every
    /// buffer goes back).
    fn take(&mut self, readers: &Sender<Vec<u8>>) -> Vec<u8> {
        for buf in self.back.try_iter() {
            match self.spare {
                None => self.spare = Some(buf),
                Some(_) => {
                    let _ = readers.try_send(buf);
                }
            }
        }
        self.spare.take().unwrap_or_default()
    }

    /// At the end: every buffer, the spare too, back to the camera reader.
    fn give_all_back(&mut self, readers: &Sender<Vec<u8>>) {
        for buf in self.back.try_iter().chain(self.spare.take()) {
            let _ = readers.try_send(buf);
        }
    }
}

/// The epochs of frames released unfused, counted per stream, to tell at the end which
/// were never published. Bounded: past [`ReleasedEpochs::CAP`] distinct epochs (only a
/// forger makes so many), a frame is judged against the epochs known when it left.
#[derive(Debug, Default)]
struct ReleasedEpochs {
    counts: BTreeMap<(bool, CalibEpoch), u64>,
    /// Judged on release (camera, lidar), once the map is full.
    overflow: [u64; 2],
}

impl ReleasedEpochs {
    const CAP: usize = 4096;

    fn note<V>(&mut self, stream: StreamKind, epoch: CalibEpoch, known: &BTreeMap<CalibEpoch, V>) {
        if !epoch.is_some() {
            return;
        }
        let lidar = stream == StreamKind::Lidar;
        if self.counts.len() < Self::CAP || self.counts.contains_key(&(lidar, epoch)) {
            *self.counts.entry((lidar, epoch)).or_default() += 1;
        } else if !known.contains_key(&epoch) {
            self.overflow[usize::from(lidar)] += 1;
        }
    }

    /// Frames per stream whose epoch is not among `calibs`.
    fn never_published<V>(&self, calibs: &BTreeMap<CalibEpoch, V>) -> [u64; 2] {
        let mut out = self.overflow;
        for (&(lidar, epoch), &n) in &self.counts {
            if !calibs.contains_key(&epoch) {
                out[usize::from(lidar)] += n;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_overlay_buffer_is_kept_for_the_next_copy_and_the_rest_go_back_to_the_reader() {
        let (back_tx, back) = crossbeam_channel::bounded(8);
        let (readers, from_engine) = crossbeam_channel::bounded(8);
        let mut bufs = OverlayBuffers { back, spare: None };
        assert_eq!(bufs.take(&readers).capacity(), 0, "none came back: a fresh one");
        for n in [10, 20, 30] {
            back_tx.send(Vec::with_capacity(n)).unwrap();
        }
        let first = bufs.take(&readers);
        assert_eq!(first.capacity(), 10, "the first that came back is reused");
        let back_to_reader: Vec<usize> = from_engine.try_iter().map(|b| b.capacity()).collect();
        assert_eq!(back_to_reader, [20, 30]);
        assert_eq!(bufs.take(&readers).capacity(), 0, "the spare was taken");
    }
}
