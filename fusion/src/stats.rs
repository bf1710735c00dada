//! Fusion statistics: counters, per-pair metrics, latency samples, and a lock-free handle the
//! lead can read from another thread to publish a scoreboard.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use shared::CalibEpoch;

use crate::pairing::{PairCounters, PairingMode};

/// Metrics of one fused pair (one entry of the summary's `frames`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PairMetrics {
    /// Camera frame sequence number.
    pub camera_seq: u64,
    /// Lidar sweep sequence number.
    pub lidar_seq: u64,
    /// The epoch of the calibration applied.
    pub epoch: u64,
    /// Points in the sweep.
    pub points: u64,
    /// Points that projected into the image.
    pub points_in_image: u64,
    /// Mean column of the in-image points (0 if none).
    pub mean_u: f64,
    /// Mean row of the in-image points (0 if none).
    pub mean_v: f64,
    /// Mean depth of the in-image points (0 if none).
    pub mean_depth: f64,
    /// Fraction of in-image points whose instance id equals the camera's label at the pixel;
    /// `None` if the camera frame has no label plane or no point is in the image.
    pub consistency: Option<f64>,
    /// The camera frame's epoch (extra key).
    #[serde(default)]
    pub camera_epoch: u64,
    /// The sweep's epoch (extra key).
    #[serde(default)]
    pub lidar_epoch: u64,
    /// Capture → fused latency of this pair, milliseconds (extra key).
    #[serde(default)]
    pub latency_ms: f64,
    /// The camera frame's capture time on the source's pipeline clock, ns (extra key): with
    /// [`PairMetrics::lidar_capture_ns`] the pair's identity across hosts, where ring
    /// sequence numbers are each host's own.
    #[serde(default)]
    pub camera_capture_ns: u64,
    /// The sweep's capture time on the source's pipeline clock, ns (extra key).
    #[serde(default)]
    pub lidar_capture_ns: u64,
}

/// Capture → fused latency samples, in nanoseconds. Bounded: past `cap` samples it keeps
/// every second one and halves its intake rate, so percentiles stay representative of the
/// whole run in bounded memory.
#[derive(Clone, Debug)]
pub struct LatencyRecorder {
    samples: Vec<u64>,
    cap: usize,
    stride: u64,
    seen: u64,
    max: u64,
}

impl Default for LatencyRecorder {
    /// Up to 2^20 samples.
    fn default() -> Self {
        Self::new(1 << 20)
    }
}

impl LatencyRecorder {
    /// A recorder that keeps at most `cap` samples (at least 2).
    #[must_use]
    pub fn new(cap: usize) -> Self {
        Self { samples: Vec::new(), cap: cap.max(2), stride: 1, seen: 0, max: 0 }
    }

    /// Records one latency.
    pub fn record(&mut self, ns: u64) {
        self.max = self.max.max(ns);
        self.seen += 1;
        if !self.seen.is_multiple_of(self.stride) {
            return;
        }
        if self.samples.len() >= self.cap {
            let mut i = 0;
            self.samples.retain(|_| {
                i += 1;
                i % 2 == 0
            });
            self.stride *= 2;
        }
        self.samples.push(ns);
    }

    /// Latencies recorded (not only kept).
    #[must_use]
    pub const fn count(&self) -> u64 {
        self.seen
    }

    /// The largest latency recorded, ns.
    #[must_use]
    pub const fn max_ns(&self) -> u64 {
        self.max
    }

    /// The `q` quantile (0..=1, nearest rank) of the kept samples, ns; `None` if empty.
    #[must_use]
    pub fn quantile_ns(&self, q: f64) -> Option<u64> {
        if self.samples.is_empty() {
            return None;
        }
        let mut s = self.samples.clone();
        s.sort_unstable();
        let rank = (q.clamp(0.0, 1.0) * s.len() as f64).ceil() as usize;
        Some(s[rank.clamp(1, s.len()) - 1])
    }

    /// The kept samples, ns, in arrival order.
    #[must_use]
    pub fn samples(&self) -> &[u64] {
        &self.samples
    }
}

/// Everything the engine counted. Returned by [`crate::Engine::run`] and by
/// [`crate::Engine::stats`].
#[derive(Clone, Debug, Default)]
pub struct FusionStats {
    /// The pairing mode.
    pub mode: PairingMode,
    /// The pairer's counters (decisions and fates).
    pub pairer: PairCounters,
    /// Pairs actually projected and handed to the sink.
    pub fused: u64,
    /// Of those, pairs whose camera epoch, lidar epoch and the applied calibration's epoch
    /// (read from the `CalibrationSet` actually used) are not all equal.
    pub fused_epoch_mismatch: u64,
    /// Frames whose sequence number had already been fused (must stay 0).
    pub fused_twice: u64,
    /// Decisions whose calibration the engine did not have (must stay 0).
    pub missing_calibration: u64,
    /// Camera frames rejected before pairing: unparsable payload or wrong stream.
    pub invalid_camera: u64,
    /// Lidar sweeps rejected before pairing: unparsable payload or wrong stream.
    pub invalid_lidar: u64,
    /// The sink refused a fused frame.
    pub sink_errors: u64,
    /// Frames (camera, lidar) held by reference whose slot held another frame by the time
    /// they were used: the pairer fell back to the next candidate.
    pub overrun_before_use: [u64; 2],
    /// Frames (camera, lidar) held by reference that failed validation when used (checksum,
    /// header or payload layout): never fused.
    pub invalid_at_use: [u64; 2],
    /// Frames (camera, lidar) tagged with an epoch that no calibration ever published (as
    /// of the end of the run; epoch 0 aside): a forged or corrupt tag. Never fused; released
    /// at the latest after the calibration wait ([`crate::PairingConfig::calib_timeout_ns`]).
    pub unknown_epoch: [u64; 2],
    /// Calibration sets received on the channel.
    pub calibration_updates: u64,
    /// Calibration sets for an already known epoch with different contents (the first wins).
    pub calibration_conflicts: u64,
    /// Calibration sets with epoch 0 (ignored).
    pub calibration_invalid: u64,
    /// Known epochs, ascending.
    pub epochs: Vec<CalibEpoch>,
    /// Camera frames held now.
    pub held_camera: u64,
    /// Sweeps held now.
    pub held_lidar: u64,
    /// Per-pair metrics (kept if [`crate::EngineConfig::keep_frames`]).
    pub frames: Vec<PairMetrics>,
    /// Capture → fused latency.
    pub latency: LatencyRecorder,
    /// Capture → published (the pair's last frame): the producers' part of `latency`.
    pub latency_render: LatencyRecorder,
    /// Published (the pair's last frame) → fused: the pipeline's part of `latency`.
    pub latency_pipeline: LatencyRecorder,
    /// Sum of per-pair consistency over the pairs that had labels.
    pub consistency_sum: f64,
    /// Pairs that had a consistency value.
    pub consistency_pairs: u64,
    /// Smallest per-pair consistency.
    pub consistency_min: Option<f64>,
    /// Points of all fused sweeps.
    pub points_total: u64,
    /// In-image points of all fused pairs.
    pub points_in_image_total: u64,
    /// Overlay PNGs written.
    pub overlays_written: u64,
    /// Overlay PNGs that failed.
    pub overlay_errors: u64,
}

impl FusionStats {
    /// The newest known epoch.
    #[must_use]
    pub fn latest_epoch(&self) -> Option<CalibEpoch> {
        self.epochs.last().copied()
    }

    /// Mean per-pair consistency, if any pair had labels.
    #[must_use]
    pub fn consistency_mean(&self) -> Option<f64> {
        (self.consistency_pairs > 0).then(|| self.consistency_sum / self.consistency_pairs as f64)
    }

    /// Every sweep accounted for: accepted = fused + dropped + unpaired + held.
    #[must_use]
    pub const fn lidar_accounted(&self) -> bool {
        let p = &self.pairer;
        p.lidar_accepted == p.fused + p.dropped_no_calibration_lidar + p.unpaired_lidar + self.held_lidar
    }

    /// Every camera frame accounted for: accepted = fused + dropped + unpaired + held.
    #[must_use]
    pub const fn camera_accounted(&self) -> bool {
        let p = &self.pairer;
        p.camera_accepted == p.fused + p.dropped_no_calibration_camera + p.unpaired_camera + self.held_camera
    }

    /// Whether fusion broke one of its invariants: a frame fused twice, a fusion without its
    /// calibration, counters that do not add up, or (under `epoch` pairing) a cross-epoch pair
    /// fused. Under `latest`, cross-epoch pairs are the expected damage, not a broken
    /// invariant.
    #[must_use]
    pub const fn invariant_broken(&self) -> bool {
        self.fused_twice != 0
            || self.missing_calibration != 0
            || !self.lidar_accounted()
            || !self.camera_accounted()
            || (matches!(self.mode, PairingMode::Epoch) && self.fused_epoch_mismatch != 0)
    }
}

/// A plain copy of the live counters, for a scoreboard.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountersSnapshot {
    /// Camera frames received (all, before validation and duplicate checks).
    pub camera_frames: u64,
    /// Sweeps received (all).
    pub lidar_frames: u64,
    /// Pairs fused.
    pub fused: u64,
    /// Fused pairs with differing epochs.
    pub fused_epoch_mismatch: u64,
    /// See [`PairCounters::rejected_epoch_mismatch`].
    pub rejected_epoch_mismatch: u64,
    /// Frames dropped for want of calibration (both streams).
    pub dropped_no_calibration: u64,
    /// Camera frames left unfused.
    pub unpaired_camera: u64,
    /// Sweeps left unfused.
    pub unpaired_lidar: u64,
    /// Duplicates ignored (both streams).
    pub duplicates: u64,
    /// Invalid payloads rejected (both streams).
    pub invalid: u64,
    /// Camera frames held.
    pub held_camera: u64,
    /// Sweeps held.
    pub held_lidar: u64,
    /// Newest known epoch (0: none).
    pub latest_epoch: u64,
    /// Latency of the last fused pair, ns.
    pub last_latency_ns: u64,
    /// Published → fused latency of the last fused pair, ns.
    pub last_pipeline_ns: u64,
    /// Largest latency so far, ns.
    pub max_latency_ns: u64,
}

#[derive(Debug, Default)]
struct Atomics {
    camera_frames: AtomicU64,
    lidar_frames: AtomicU64,
    fused: AtomicU64,
    fused_epoch_mismatch: AtomicU64,
    rejected_epoch_mismatch: AtomicU64,
    dropped_no_calibration: AtomicU64,
    unpaired_camera: AtomicU64,
    unpaired_lidar: AtomicU64,
    duplicates: AtomicU64,
    invalid: AtomicU64,
    held_camera: AtomicU64,
    held_lidar: AtomicU64,
    latest_epoch: AtomicU64,
    last_latency_ns: AtomicU64,
    last_pipeline_ns: AtomicU64,
    max_latency_ns: AtomicU64,
}

/// A cheap, cloneable, thread-safe view of the engine's live counters (relaxed atomics,
/// updated by the engine after every event). Each field is exact; fields may be mutually a
/// few events apart while the engine runs.
#[derive(Clone, Debug, Default)]
pub struct StatsHandle(Arc<Atomics>);

impl StatsHandle {
    /// Reads every counter.
    #[must_use]
    pub fn snapshot(&self) -> CountersSnapshot {
        let a = &*self.0;
        CountersSnapshot {
            camera_frames: a.camera_frames.load(Relaxed),
            lidar_frames: a.lidar_frames.load(Relaxed),
            fused: a.fused.load(Relaxed),
            fused_epoch_mismatch: a.fused_epoch_mismatch.load(Relaxed),
            rejected_epoch_mismatch: a.rejected_epoch_mismatch.load(Relaxed),
            dropped_no_calibration: a.dropped_no_calibration.load(Relaxed),
            unpaired_camera: a.unpaired_camera.load(Relaxed),
            unpaired_lidar: a.unpaired_lidar.load(Relaxed),
            duplicates: a.duplicates.load(Relaxed),
            invalid: a.invalid.load(Relaxed),
            held_camera: a.held_camera.load(Relaxed),
            held_lidar: a.held_lidar.load(Relaxed),
            latest_epoch: a.latest_epoch.load(Relaxed),
            last_latency_ns: a.last_latency_ns.load(Relaxed),
            last_pipeline_ns: a.last_pipeline_ns.load(Relaxed),
            max_latency_ns: a.max_latency_ns.load(Relaxed),
        }
    }

    pub(crate) fn store(&self, s: &CountersSnapshot) {
        let a = &*self.0;
        a.camera_frames.store(s.camera_frames, Relaxed);
        a.lidar_frames.store(s.lidar_frames, Relaxed);
        a.fused.store(s.fused, Relaxed);
        a.fused_epoch_mismatch.store(s.fused_epoch_mismatch, Relaxed);
        a.rejected_epoch_mismatch.store(s.rejected_epoch_mismatch, Relaxed);
        a.dropped_no_calibration.store(s.dropped_no_calibration, Relaxed);
        a.unpaired_camera.store(s.unpaired_camera, Relaxed);
        a.unpaired_lidar.store(s.unpaired_lidar, Relaxed);
        a.duplicates.store(s.duplicates, Relaxed);
        a.invalid.store(s.invalid, Relaxed);
        a.held_camera.store(s.held_camera, Relaxed);
        a.held_lidar.store(s.held_lidar, Relaxed);
        a.latest_epoch.store(s.latest_epoch, Relaxed);
        a.last_latency_ns.store(s.last_latency_ns, Relaxed);
        a.last_pipeline_ns.store(s.last_pipeline_ns, Relaxed);
        a.max_latency_ns.store(s.max_latency_ns, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_nearest_rank() {
        let mut r = LatencyRecorder::new(1000);
        for i in 1..=100 {
            r.record(i);
        }
        assert_eq!(r.quantile_ns(0.5), Some(50));
        assert_eq!(r.quantile_ns(0.99), Some(99));
        assert_eq!(r.quantile_ns(1.0), Some(100));
        assert_eq!(r.max_ns(), 100);
        assert_eq!(LatencyRecorder::new(4).quantile_ns(0.5), None);
    }

    #[test]
    fn recorder_stays_bounded() {
        let mut r = LatencyRecorder::new(64);
        for i in 0..10_000 {
            r.record(i);
        }
        assert!(r.samples().len() <= 64);
        assert_eq!(r.count(), 10_000);
        let p50 = r.quantile_ns(0.5).unwrap();
        assert!((4000..6000).contains(&p50), "{p50}");
    }

    #[test]
    fn handle_round_trips() {
        let h = StatsHandle::default();
        let s = CountersSnapshot { fused: 3, latest_epoch: 2, ..CountersSnapshot::default() };
        h.store(&s);
        assert_eq!(h.clone().snapshot(), s);
    }
}
