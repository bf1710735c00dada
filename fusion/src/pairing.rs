//! Epoch-matched pairing of lidar sweeps with camera frames.
//!
//! A pure, deterministic state machine: no channels, no clocks, no threads. Every call takes
//! the caller's `now` (any monotonic nanosecond clock, used only for timeouts) and appends
//! what it decided to an output vector. Payloads are carried as an opaque `T` (the engine uses
//! `Vec<u8>`, tests use `()`), so every frame handed in comes back out exactly once, either in
//! an [`Output::Fuse`] or an [`Output::Release`].
//!
//! # The rule
//!
//! Each lidar sweep pairs with the camera frame nearest to it in capture time, within
//! [`PairingConfig::max_skew_ns`] (inclusive). Under [`PairingMode::Epoch`] a pair is made only
//! if both frames carry the same epoch and that epoch's calibration is known; the calibration
//! applied is the frames' own epoch. Each frame is fused at most once: a fused camera frame
//! leaves the buffer and is no longer a candidate.
//!
//! *Candidates* of a sweep are the camera frames held right now (not yet fused, dropped or
//! evicted) whose capture time is within `max_skew` of the sweep's. Among them:
//! - the *nearest* is the one with the smallest time distance (ties: earlier capture, then
//!   lower sequence number);
//! - the *best* is the nearest among those *eligible*: same epoch under `Epoch`, any under
//!   `Latest`.
//!
//! The sweep is fused with the best candidate, or released as unpaired if there is none.
//!
//! # When a sweep is decided
//!
//! A sweep is *ready* when its calibration is known (`Epoch`: its own epoch; `Latest`: any
//! epoch). A ready sweep is decided as soon as it is safe, or at its timeout:
//! - safe: a camera frame with capture ≥ the sweep's capture has been seen (the camera
//!   watermark). Camera frames arrive in capture order and carry nondecreasing epochs, so a
//!   later frame is only farther, and cannot improve the choice.
//! - safe, with the optional hint [`PairingConfig::camera_min_interval_ns`]: the next camera
//!   frame cannot be captured before `watermark + min_interval`; if that bound is farther than
//!   the best candidate (or beyond `max_skew` altogether), no future frame can change the
//!   answer. This decides sweeps that fall just after a camera frame without waiting a whole
//!   camera period.
//! - timeout: [`PairingConfig::lidar_timeout_ns`] after the sweep arrived (camera stalled).
//!
//! A sweep that is not ready waits, at most [`PairingConfig::calib_timeout_ns`], and is then
//! dropped (`dropped_no_calibration`). The buffer of pending sweeps is bounded
//! ([`PairingConfig::max_pending_lidar`]): when it overflows, the oldest sweep is decided now
//! if ready, else dropped (`dropped_no_calibration`).
//!
//! # Camera frames
//!
//! Held camera frames leave unfused in these ways:
//! - *stale*: capture + `max_skew` < the oldest pending sweep's capture (or, with no pending
//!   sweep, the newest sweep capture seen): no pending or future in-order sweep can reach
//!   it. Counted `unpaired_camera`.
//! - *timeout*: [`PairingConfig::camera_timeout_ns`] after arrival, or
//!   [`PairingConfig::calib_timeout_ns`] if its epoch is still unknown (`Epoch` mode);
//! - *capacity*: more than [`PairingConfig::max_held_camera`] held: the oldest capture goes;
//! - [`Pairer::finish`].
//!
//! On timeout, capacity or finish, a frame whose epoch is unknown under `Epoch` counts
//! `dropped_no_calibration`, any other `unpaired_camera`.
//!
//! # Counting (each frame ends in exactly one fate)
//!
//! - `duplicates_*`: a frame whose sequence number was already seen on its stream (within
//!   the last [`PairingConfig::duplicate_window`] frames) is released at once and not
//!   counted as accepted.
//! - Every accepted frame ends exactly once as `fused`, `dropped_no_calibration_*` or
//!   `unpaired_*`, or is still held: `accepted = fused + dropped + unpaired + held` per
//!   stream, and `held = 0` after [`Pairer::finish`].
//! - Under `Epoch`, a frame with epoch 0 (none) can never be fused and is dropped on arrival
//!   (`dropped_no_calibration`).
//! - `rejected_epoch_mismatch` is not a fate but a mark on a decided sweep: it counts the
//!   sweeps whose *nearest* candidate (see above) carried another epoch than the sweep, at
//!   the moment the sweep was decided (`Epoch` mode only; `Latest` never rejects). Such a
//!   sweep is still fused with the nearest same-epoch candidate if there is one, or ends
//!   unpaired. Each sweep is counted at most once.
//! - `fused_epoch_mismatch` counts fused pairs where the camera's epoch, the sweep's epoch
//!   and the applied calibration's epoch are not all equal. It is computed from the epochs
//!   actually used, in both modes; under `Epoch` it is 0 by construction.
//!
//! # Out of order and duplicates
//!
//! Frames may arrive in any order. A camera frame arriving after the sweep it was nearest to
//! was decided is simply too late: it may serve a later sweep or leave stale. A sweep
//! arriving late pairs with whatever candidates are still held. Results are deterministic for
//! a given sequence of calls.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use shared::{CalibEpoch, FrameSeq, StreamKind, TimestampNs};

/// How sweeps and camera frames are paired.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PairingMode {
    /// Only same-epoch pairs, projected with that epoch's calibration (the product).
    #[default]
    Epoch,
    /// Nearest in time whatever the epochs, projected with the newest known calibration (the
    /// naive baseline, `--pairing latest`).
    Latest,
}

impl PairingMode {
    /// The name used on the command line and in the summary.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Epoch => "epoch",
            Self::Latest => "latest",
        }
    }
}

impl fmt::Display for PairingMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A pairing mode name that is neither `epoch` nor `latest`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownPairingMode(pub String);

impl fmt::Display for UnknownPairingMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown pairing mode {:?} (expected \"epoch\" or \"latest\")", self.0)
    }
}

impl std::error::Error for UnknownPairingMode {}

impl FromStr for PairingMode {
    type Err = UnknownPairingMode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "epoch" => Ok(Self::Epoch),
            "latest" => Ok(Self::Latest),
            other => Err(UnknownPairingMode(other.to_owned())),
        }
    }
}

/// Pairing parameters. All times in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PairingConfig {
    /// Epoch-matched or naive.
    pub mode: PairingMode,
    /// Largest capture-time distance of a pair (inclusive). Default: half the camera period.
    pub max_skew_ns: u64,
    /// Optional hint: consecutive camera captures are at least this far apart. Lets a sweep
    /// be decided before a later camera frame arrives (lower latency). `None`: no hint.
    pub camera_min_interval_ns: Option<u64>,
    /// How long a frame whose epoch's calibration is unknown may wait for it.
    pub calib_timeout_ns: u64,
    /// How long a ready sweep may wait for a safe decision (a camera frame at or after it).
    pub lidar_timeout_ns: u64,
    /// How long a camera frame (epoch known) is held for a sweep.
    pub camera_timeout_ns: u64,
    /// Bound on held camera frames.
    pub max_held_camera: usize,
    /// Bound on pending sweeps.
    pub max_pending_lidar: usize,
    /// How many recent sequence numbers per stream are remembered to detect duplicates.
    pub duplicate_window: usize,
}

impl PairingConfig {
    /// Defaults for a camera at `hz` frames per second: `max_skew` is half its period, the
    /// camera hold covers the calibration wait, and bounds allow about one second of frames.
    #[must_use]
    pub fn for_camera_rate(hz: f64) -> Self {
        let period = if hz.is_finite() && hz > 0.0 { (1e9 / hz).round() as u64 } else { 33_333_333 };
        Self {
            mode: PairingMode::Epoch,
            max_skew_ns: period / 2,
            camera_min_interval_ns: None,
            calib_timeout_ns: 1_000_000_000,
            lidar_timeout_ns: 250_000_000,
            camera_timeout_ns: 1_000_000_000,
            max_held_camera: 48,
            max_pending_lidar: 16,
            duplicate_window: 4096,
        }
    }

    /// The same configuration with another mode.
    #[must_use]
    pub const fn with_mode(mut self, mode: PairingMode) -> Self {
        self.mode = mode;
        self
    }
}

impl Default for PairingConfig {
    /// A 30 Hz camera.
    fn default() -> Self {
        Self::for_camera_rate(30.0)
    }
}

/// What the pairer needs to know about a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FrameMeta {
    /// Sequence number in its ring.
    pub seq: FrameSeq,
    /// Capture time.
    pub capture: TimestampNs,
    /// The calibration epoch the producer tagged it with.
    pub epoch: CalibEpoch,
    /// When its producer published it (CLOCK_MONOTONIC ns; 0 if unknown). Not used for
    /// pairing: it splits the pair's latency into render and pipeline parts.
    pub published: TimestampNs,
}

/// A frame held by the pairer, with its payload.
#[derive(Clone, Debug, PartialEq)]
pub struct Held<T> {
    /// The frame's identity.
    pub meta: FrameMeta,
    /// When it was handed in (caller's clock), or its capture time if that is later.
    pub arrived: TimestampNs,
    /// The payload, returned untouched.
    pub payload: T,
}

/// Why a frame left without being fused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fate {
    /// Its sequence number was already seen on its stream.
    Duplicate,
    /// Its epoch's calibration was not known in time (or its epoch is 0).
    DroppedNoCalibration,
    /// No partner within the rules.
    Unpaired,
}

/// A decision of the pairer.
#[derive(Debug, PartialEq)]
pub enum Output<T> {
    /// Fuse these two frames, projecting with the calibration of epoch `calib`.
    Fuse {
        /// The camera frame.
        camera: Held<T>,
        /// The lidar sweep.
        lidar: Held<T>,
        /// The epoch whose calibration to apply.
        calib: CalibEpoch,
        /// Decided at the sweep's timeout (or on overflow or finish) rather than when safe.
        forced: bool,
    },
    /// The frame leaves unfused.
    Release {
        /// Its stream.
        stream: StreamKind,
        /// The frame.
        frame: Held<T>,
        /// Why.
        fate: Fate,
    },
}

/// The pairer's counters. See the module docs for exact definitions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairCounters {
    /// Camera frames accepted (not duplicates).
    pub camera_accepted: u64,
    /// Lidar sweeps accepted (not duplicates).
    pub lidar_accepted: u64,
    /// Pairs decided for fusion.
    pub fused: u64,
    /// Fused pairs whose camera, lidar and applied epochs are not all equal.
    pub fused_epoch_mismatch: u64,
    /// Decided sweeps whose nearest in-skew candidate had another epoch (`Epoch` mode).
    pub rejected_epoch_mismatch: u64,
    /// Camera frames dropped because their epoch's calibration was unknown.
    pub dropped_no_calibration_camera: u64,
    /// Sweeps dropped because their epoch's calibration was unknown.
    pub dropped_no_calibration_lidar: u64,
    /// Camera frames that left unfused.
    pub unpaired_camera: u64,
    /// Sweeps that left unfused.
    pub unpaired_lidar: u64,
    /// Duplicate camera frames ignored.
    pub duplicate_camera: u64,
    /// Duplicate sweeps ignored.
    pub duplicate_lidar: u64,
    /// Sweeps decided at their timeout, on overflow or at finish instead of when safe.
    pub forced_decisions: u64,
}

impl PairCounters {
    /// Frames of either stream dropped for want of calibration.
    #[must_use]
    pub const fn dropped_no_calibration(&self) -> u64 {
        self.dropped_no_calibration_camera + self.dropped_no_calibration_lidar
    }

    /// Duplicates of either stream.
    #[must_use]
    pub const fn duplicates(&self) -> u64 {
        self.duplicate_camera + self.duplicate_lidar
    }
}

type Key = (TimestampNs, FrameSeq);

/// Remembers the last `cap` sequence numbers of a stream.
#[derive(Debug)]
pub(crate) struct SeenWindow {
    set: HashSet<u64>,
    order: VecDeque<u64>,
    cap: usize,
}

impl SeenWindow {
    pub(crate) fn new(cap: usize) -> Self {
        let cap = cap.max(1);
        Self { set: HashSet::with_capacity(cap + 1), order: VecDeque::with_capacity(cap + 1), cap }
    }

    /// Records `seq`; false if it was already there.
    pub(crate) fn insert(&mut self, seq: FrameSeq) -> bool {
        if !self.set.insert(seq.0) {
            return false;
        }
        self.order.push_back(seq.0);
        if self.order.len() > self.cap {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }
}

/// The nearest and best candidates of a sweep: (distance, key), plus the nearest's epoch.
#[derive(Clone, Copy, Debug, Default)]
struct Candidates {
    nearest: Option<(u64, Key, CalibEpoch)>,
    best: Option<(u64, Key)>,
}

/// The pairing state machine. See the module docs.
#[derive(Debug)]
pub struct Pairer<T> {
    cfg: PairingConfig,
    known: BTreeSet<CalibEpoch>,
    cameras: BTreeMap<Key, Held<T>>,
    sweeps: BTreeMap<Key, Held<T>>,
    camera_wm: Option<TimestampNs>,
    lidar_wm: Option<TimestampNs>,
    seen_camera: SeenWindow,
    seen_lidar: SeenWindow,
    counters: PairCounters,
    scratch: Vec<Key>,
}

impl<T> Pairer<T> {
    /// An empty pairer.
    #[must_use]
    pub fn new(cfg: PairingConfig) -> Self {
        Self {
            cfg,
            known: BTreeSet::new(),
            cameras: BTreeMap::new(),
            sweeps: BTreeMap::new(),
            camera_wm: None,
            lidar_wm: None,
            seen_camera: SeenWindow::new(cfg.duplicate_window),
            seen_lidar: SeenWindow::new(cfg.duplicate_window),
            counters: PairCounters::default(),
            scratch: Vec::with_capacity(cfg.max_pending_lidar + cfg.max_held_camera + 2),
        }
    }

    /// The configuration.
    #[must_use]
    pub const fn config(&self) -> &PairingConfig {
        &self.cfg
    }

    /// The counters so far.
    #[must_use]
    pub const fn counters(&self) -> &PairCounters {
        &self.counters
    }

    /// Frames held now: (camera frames, pending sweeps).
    #[must_use]
    pub fn held(&self) -> (usize, usize) {
        (self.cameras.len(), self.sweeps.len())
    }

    /// Whether epoch `e`'s calibration is known.
    #[must_use]
    pub fn is_known(&self, e: CalibEpoch) -> bool {
        self.known.contains(&e)
    }

    /// The newest known epoch, if any.
    #[must_use]
    pub fn newest_epoch(&self) -> Option<CalibEpoch> {
        self.known.last().copied()
    }

    /// Every known epoch, ascending.
    pub fn known_epochs(&self) -> impl Iterator<Item = CalibEpoch> + '_ {
        self.known.iter().copied()
    }

    /// Epoch `epoch`'s calibration became known. Frames waiting for it may be decided now.
    pub fn add_calibration(&mut self, epoch: CalibEpoch, now: TimestampNs, out: &mut Vec<Output<T>>) {
        if epoch.is_some() {
            self.known.insert(epoch);
        }
        self.process(now, out);
    }

    /// A frame arrived on `stream`, a sensor kind ([`StreamKind::is_sensor`]): camera frames
    /// and lidar sweeps are all the pairer knows. Any other kind is a caller bug: debug
    /// builds panic, release builds drop the frame.
    pub fn push(
        &mut self,
        stream: StreamKind,
        meta: FrameMeta,
        payload: T,
        now: TimestampNs,
        out: &mut Vec<Output<T>>,
    ) {
        if !stream.is_sensor() {
            // A caller bug: only camera frames and lidar sweeps are paired. The frame is
            // dropped, not mistaken for a sweep.
            debug_assert!(false, "the pairer was handed a {stream} frame");
            return;
        }
        // Timeouts count from arrival, but never from before the frame's own capture: on the
        // data's clock (max rate, replays) "now" is the slower stream's time, and a sweep
        // that arrived while the camera lagged must still wait its full timeout past its
        // capture time, not past the camera's.
        let frame = Held { meta, arrived: now.max(meta.capture), payload };
        let key = (meta.capture, meta.seq);
        let (seen, map, wm) = match stream {
            StreamKind::Camera => (&mut self.seen_camera, &mut self.cameras, &mut self.camera_wm),
            _ => (&mut self.seen_lidar, &mut self.sweeps, &mut self.lidar_wm),
        };
        if !seen.insert(meta.seq) || map.contains_key(&key) {
            match stream {
                StreamKind::Camera => self.counters.duplicate_camera += 1,
                _ => self.counters.duplicate_lidar += 1,
            }
            out.push(Output::Release { stream, frame, fate: Fate::Duplicate });
            return;
        }
        *wm = Some(wm.map_or(meta.capture, |w| w.max(meta.capture)));
        match stream {
            StreamKind::Camera => self.counters.camera_accepted += 1,
            _ => self.counters.lidar_accepted += 1,
        }
        if self.cfg.mode == PairingMode::Epoch && !meta.epoch.is_some() {
            self.release(stream, frame, Fate::DroppedNoCalibration, out);
        } else {
            map.insert(key, frame);
        }
        self.process(now, out);
    }

    /// Time passed: applies timeouts.
    pub fn tick(&mut self, now: TimestampNs, out: &mut Vec<Output<T>>) {
        self.process(now, out);
    }

    /// The earliest time at which [`Pairer::tick`] may change something, if any frame is held.
    #[must_use]
    pub fn next_deadline(&self) -> Option<TimestampNs> {
        let sweeps = self.sweeps.values().map(|s| {
            let wait =
                if self.ready(s.meta.epoch) { self.cfg.lidar_timeout_ns } else { self.cfg.calib_timeout_ns };
            s.arrived.0.saturating_add(wait)
        });
        let cameras =
            self.cameras.values().map(|c| c.arrived.0.saturating_add(self.camera_wait(c.meta.epoch)));
        sweeps.chain(cameras).min().map(TimestampNs)
    }

    /// End of input: decides every ready sweep with what is held, drops the rest, and
    /// releases every camera frame. Afterwards nothing is held.
    pub fn finish(&mut self, now: TimestampNs, out: &mut Vec<Output<T>>) {
        let _ = now;
        while let Some((&key, s)) = self.sweeps.iter().next() {
            if self.ready(s.meta.epoch) {
                self.decide(key, true, out);
            } else if let Some(s) = self.sweeps.remove(&key) {
                self.release(StreamKind::Lidar, s, Fate::DroppedNoCalibration, out);
            }
        }
        while let Some((_, c)) = self.cameras.pop_first() {
            let fate = self.camera_fate(c.meta.epoch);
            self.release(StreamKind::Camera, c, fate, out);
        }
    }

    fn ready(&self, epoch: CalibEpoch) -> bool {
        match self.cfg.mode {
            PairingMode::Epoch => self.known.contains(&epoch),
            PairingMode::Latest => !self.known.is_empty(),
        }
    }

    fn camera_wait(&self, epoch: CalibEpoch) -> u64 {
        if self.cfg.mode == PairingMode::Epoch && !self.known.contains(&epoch) {
            self.cfg.calib_timeout_ns
        } else {
            self.cfg.camera_timeout_ns
        }
    }

    fn camera_fate(&self, epoch: CalibEpoch) -> Fate {
        if self.cfg.mode == PairingMode::Epoch && !self.known.contains(&epoch) {
            Fate::DroppedNoCalibration
        } else {
            Fate::Unpaired
        }
    }

    fn release(&mut self, stream: StreamKind, frame: Held<T>, fate: Fate, out: &mut Vec<Output<T>>) {
        let c = &mut self.counters;
        match (stream, fate) {
            (StreamKind::Camera, Fate::DroppedNoCalibration) => c.dropped_no_calibration_camera += 1,
            (_, Fate::DroppedNoCalibration) => c.dropped_no_calibration_lidar += 1,
            (StreamKind::Camera, Fate::Unpaired) => c.unpaired_camera += 1,
            (_, Fate::Unpaired) => c.unpaired_lidar += 1,
            (StreamKind::Camera, Fate::Duplicate) => c.duplicate_camera += 1,
            (_, Fate::Duplicate) => c.duplicate_lidar += 1,
        }
        out.push(Output::Release { stream, frame, fate });
    }

    fn candidates(&self, sweep: &FrameMeta) -> Candidates {
        let s = sweep.capture.0;
        let lo = (TimestampNs(s.saturating_sub(self.cfg.max_skew_ns)), FrameSeq(0));
        let hi = (TimestampNs(s.saturating_add(self.cfg.max_skew_ns)), FrameSeq(u64::MAX));
        let mut c = Candidates::default();
        // Ascending (capture, seq): a strict `<` keeps the earlier frame on equal distance.
        for (k, cam) in self.cameras.range(lo..=hi) {
            let d = cam.meta.capture.0.abs_diff(s);
            if c.nearest.is_none_or(|(nd, ..)| d < nd) {
                c.nearest = Some((d, *k, cam.meta.epoch));
            }
            let eligible = match self.cfg.mode {
                PairingMode::Epoch => cam.meta.epoch == sweep.epoch,
                PairingMode::Latest => true,
            };
            if eligible && c.best.is_none_or(|(bd, _)| d < bd) {
                c.best = Some((d, *k));
            }
        }
        c
    }

    /// Whether no camera frame still to come can change the sweep's decision.
    fn safe(&self, sweep: &FrameMeta) -> bool {
        let Some(w) = self.camera_wm else { return false };
        let s = sweep.capture.0;
        if w.0 >= s {
            return true;
        }
        if let Some(mi) = self.cfg.camera_min_interval_ns {
            let next = w.0.saturating_add(mi);
            if next >= s {
                let bound = next - s;
                if bound > self.cfg.max_skew_ns {
                    return true;
                }
                if self.candidates(sweep).best.is_some_and(|(d, _)| d <= bound) {
                    return true;
                }
            }
        }
        false
    }

    /// Held frames of `stream` (camera frames or pending sweeps), oldest capture first, for
    /// the caller to change their payloads (e.g. copy out a frame its ring may reuse).
    pub fn payloads_mut(&mut self, stream: StreamKind) -> impl Iterator<Item = &mut T> + '_ {
        let map = if stream == StreamKind::Camera { &mut self.cameras } else { &mut self.sweeps };
        map.values_mut().map(|h| &mut h.payload)
    }

    /// The camera frame of a pair this pairer decided could not be used (overwritten or
    /// invalid at use): the pair is undone, the camera frame counted unpaired, and the sweep
    /// decided again at once among the candidates still held (the next best, if any).
    pub fn camera_lost(
        &mut self,
        camera: FrameMeta,
        sweep: Held<T>,
        calib: CalibEpoch,
        out: &mut Vec<Output<T>>,
    ) {
        self.undo_fuse(camera, sweep.meta, calib);
        self.counters.unpaired_camera += 1;
        let key = (sweep.meta.capture, sweep.meta.seq);
        self.sweeps.insert(key, sweep);
        self.pair(key, false, out);
    }

    /// The sweep of a pair this pairer decided could not be used: the pair is undone, the
    /// sweep counted unpaired, and the camera frame held again for a later sweep.
    pub fn sweep_lost(&mut self, camera: Held<T>, sweep: FrameMeta, calib: CalibEpoch) {
        self.undo_fuse(camera.meta, sweep, calib);
        self.counters.unpaired_lidar += 1;
        self.cameras.insert((camera.meta.capture, camera.meta.seq), camera);
    }

    fn undo_fuse(&mut self, camera: FrameMeta, sweep: FrameMeta, calib: CalibEpoch) {
        let c = &mut self.counters;
        c.fused = c.fused.saturating_sub(1);
        if camera.epoch != sweep.epoch || calib != sweep.epoch || calib != camera.epoch {
            c.fused_epoch_mismatch = c.fused_epoch_mismatch.saturating_sub(1);
        }
    }

    fn decide(&mut self, key: Key, forced: bool, out: &mut Vec<Output<T>>) {
        let Some(sweep) = self.sweeps.get(&key) else { return };
        let cands = self.candidates(&sweep.meta);
        if forced {
            self.counters.forced_decisions += 1;
        }
        if self.cfg.mode == PairingMode::Epoch {
            if let Some((_, _, e)) = cands.nearest {
                if e != sweep.meta.epoch {
                    self.counters.rejected_epoch_mismatch += 1;
                }
            }
        }
        self.pair(key, forced, out);
    }

    /// Fuses sweep `key` with its best candidate, or releases it unpaired (no counting of
    /// marks: [`Pairer::decide`] does that once per sweep).
    fn pair(&mut self, key: Key, forced: bool, out: &mut Vec<Output<T>>) {
        let Some(sweep) = self.sweeps.remove(&key) else { return };
        let cands = self.candidates(&sweep.meta);
        let calib = match self.cfg.mode {
            PairingMode::Epoch => Some(sweep.meta.epoch),
            PairingMode::Latest => self.newest_epoch(),
        };
        let camera = cands.best.and_then(|(_, k)| self.cameras.remove(&k));
        match (camera, calib) {
            (Some(camera), Some(calib)) => {
                self.counters.fused += 1;
                let (ce, le) = (camera.meta.epoch, sweep.meta.epoch);
                if ce != le || calib != le || calib != ce {
                    self.counters.fused_epoch_mismatch += 1;
                }
                out.push(Output::Fuse { camera, lidar: sweep, calib, forced });
            }
            (camera, _) => {
                if let Some(camera) = camera {
                    // Unreachable (a sweep is decided only when ready), kept total.
                    self.cameras.insert((camera.meta.capture, camera.meta.seq), camera);
                }
                self.release(StreamKind::Lidar, sweep, Fate::Unpaired, out);
            }
        }
    }

    fn process(&mut self, now: TimestampNs, out: &mut Vec<Output<T>>) {
        // 1. Sweeps, in capture order: decide the ready ones that are safe or timed out, drop
        //    the unready ones that waited too long.
        let mut keys = std::mem::take(&mut self.scratch);
        keys.clear();
        keys.extend(self.sweeps.keys().copied());
        for &key in &keys {
            let Some(s) = self.sweeps.get(&key) else { continue };
            if self.ready(s.meta.epoch) {
                let timed_out = now.0 >= s.arrived.0.saturating_add(self.cfg.lidar_timeout_ns);
                if self.safe(&s.meta) {
                    self.decide(key, false, out);
                } else if timed_out {
                    self.decide(key, true, out);
                }
            } else if now.0 >= s.arrived.0.saturating_add(self.cfg.calib_timeout_ns) {
                if let Some(s) = self.sweeps.remove(&key) {
                    self.release(StreamKind::Lidar, s, Fate::DroppedNoCalibration, out);
                }
            }
        }
        // 2. Too many pending sweeps: the oldest goes first.
        while self.sweeps.len() > self.cfg.max_pending_lidar {
            let Some((&key, s)) = self.sweeps.iter().next() else { break };
            if self.ready(s.meta.epoch) {
                self.decide(key, true, out);
            } else if let Some(s) = self.sweeps.remove(&key) {
                self.release(StreamKind::Lidar, s, Fate::DroppedNoCalibration, out);
            }
        }
        // 3. Camera frames: stale ones, timed-out ones, then the oldest beyond capacity.
        let reach = self.sweeps.keys().next().map(|k| k.0).or(self.lidar_wm);
        keys.clear();
        for (k, c) in &self.cameras {
            let stale = reach.is_some_and(|r| c.meta.capture.0.saturating_add(self.cfg.max_skew_ns) < r.0);
            let expired = now.0 >= c.arrived.0.saturating_add(self.camera_wait(c.meta.epoch));
            if stale || expired {
                keys.push(*k);
            }
        }
        for key in &keys {
            if let Some(c) = self.cameras.remove(key) {
                let stale =
                    reach.is_some_and(|r| c.meta.capture.0.saturating_add(self.cfg.max_skew_ns) < r.0);
                let fate = if stale { Fate::Unpaired } else { self.camera_fate(c.meta.epoch) };
                self.release(StreamKind::Camera, c, fate, out);
            }
        }
        while self.cameras.len() > self.cfg.max_held_camera {
            let Some((_, c)) = self.cameras.pop_first() else { break };
            let fate = self.camera_fate(c.meta.epoch);
            self.release(StreamKind::Camera, c, fate, out);
        }
        keys.clear();
        self.scratch = keys;
    }
}
