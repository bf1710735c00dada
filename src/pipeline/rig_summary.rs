//! A rig's part of the run summary: the streams keyed by sensor name, the per-camera
//! breakdown of pairs and consistency, and fusion's per-(lidar, camera) results merged into
//! the totals the summary has always had.
//!
//! A one-camera run has one result, taken as it is, so its totals are exactly what they
//! were before rigs had names.

use std::collections::BTreeMap;

use fusion::summary::{ConsistencySummary, FusionResult, PairsSummary, StreamSummary};
use fusion::PairMetrics;
use serde::{Deserialize, Serialize};
use shared::StreamKind;

/// File name of fusion's per-sensor result in the run directory.
pub const RIG_RESULT_FILE: &str = "fusion-rig.json";

/// One sensor's ring counters, with its kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SensorStream {
    /// `camera` or `lidar`.
    pub kind: StreamKind,
    /// The reader's and the writer's counters.
    #[serde(flatten)]
    pub counters: StreamSummary,
}

/// The summary's `streams`: every sensor's ring by sensor name.
pub type Streams = BTreeMap<String, SensorStream>;

/// One camera's share of the pairs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CameraBreakdown {
    /// Pairing outcomes of this camera's (lidar, camera) pairs.
    pub pairs: PairsSummary,
    /// Consistency of this camera's pairs.
    pub consistency: ConsistencySummary,
}

/// A fused pair, with the sensors that made it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NamedPair {
    /// The camera's name.
    pub camera: String,
    /// The lidar's name.
    pub lidar: String,
    /// The pair's figures.
    #[serde(flatten)]
    pub pair: PairMetrics,
}

/// What fusion adds for a rig (`fusion-rig.json`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RigResult {
    /// Fusion's readers' counters per sensor (a lidar read once per camera counts once).
    pub streams: Streams,
    /// Pairs and consistency per camera.
    pub per_camera: BTreeMap<String, CameraBreakdown>,
    /// Per-pair entries with their sensors, when kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frames: Option<Vec<NamedPair>>,
}

/// One (lidar, camera) pair's fusion result.
#[derive(Debug)]
pub struct Lane {
    /// The camera.
    pub camera: String,
    /// The lidar.
    pub lidar: String,
    /// What its engine reported.
    pub result: FusionResult,
}

fn add_pairs(t: &mut PairsSummary, p: &PairsSummary) {
    t.fused += p.fused;
    t.fused_epoch_mismatch += p.fused_epoch_mismatch;
    t.rejected_epoch_mismatch += p.rejected_epoch_mismatch;
    t.dropped_no_calibration += p.dropped_no_calibration;
    t.unpaired_camera += p.unpaired_camera;
    t.unpaired_lidar += p.unpaired_lidar;
    t.duplicates += p.duplicates;
    t.dropped_no_calibration_camera += p.dropped_no_calibration_camera;
    t.dropped_no_calibration_lidar += p.dropped_no_calibration_lidar;
    t.camera_frames += p.camera_frames;
    t.lidar_frames += p.lidar_frames;
    t.invalid_payloads += p.invalid_payloads;
    t.forced_decisions += p.forced_decisions;
    t.sink_errors += p.sink_errors;
}

fn add_consistency(t: &mut ConsistencySummary, c: &ConsistencySummary) {
    let n = t.pairs + c.pairs;
    if let Some(m) = c.mean {
        let sum = t.mean.unwrap_or(0.0) * t.pairs as f64 + m * c.pairs as f64;
        t.mean = (n > 0).then(|| sum / n as f64);
    }
    t.min = match (t.min, c.min) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    t.pairs = n;
}

/// The totals of every lane: counters summed, consistency weighted by pairs, the latency
/// the worst lane's (quantiles do not add up), the invariants of all. One lane: itself.
#[must_use]
pub fn totals(lanes: &[Lane]) -> FusionResult {
    let Some((first, rest)) = lanes.split_first() else { return FusionResult::default() };
    let mut t = first.result.clone();
    for lane in rest {
        let r = &lane.result;
        add_pairs(&mut t.pairs, &r.pairs);
        add_consistency(&mut t.consistency, &r.consistency);
        let (a, b) = (&mut t.latency_ms, &r.latency_ms);
        (a.p50, a.p99, a.max, a.samples) =
            (a.p50.max(b.p50), a.p99.max(b.p99), a.max.max(b.max), a.samples + b.samples);
        let (a, b) = (&mut t.checks, &r.checks);
        a.cross_epoch_fused += b.cross_epoch_fused;
        a.fused_twice += b.fused_twice;
        a.missing_calibration += b.missing_calibration;
        a.lidar_accounted &= b.lidar_accounted;
        a.camera_accounted &= b.camera_accounted;
        if let (Some(f), Some(g)) = (t.frames.as_mut(), r.frames.as_ref()) {
            f.extend(g.iter().cloned());
        }
    }
    t
}

/// The rig's part: each sensor's counters (a lidar's from its first lane), each camera's
/// pairs, the named pairs.
#[must_use]
pub fn rig_result(lanes: &[Lane], keep_frames: bool) -> RigResult {
    let mut out = RigResult::default();
    for lane in lanes {
        let r = &lane.result;
        out.streams
            .entry(lane.camera.clone())
            .or_insert(SensorStream { kind: StreamKind::Camera, counters: r.streams.camera });
        out.streams
            .entry(lane.lidar.clone())
            .or_insert(SensorStream { kind: StreamKind::Lidar, counters: r.streams.lidar });
        let b = out.per_camera.entry(lane.camera.clone()).or_default();
        add_pairs(&mut b.pairs, &r.pairs);
        add_consistency(&mut b.consistency, &r.consistency);
    }
    if keep_frames {
        let named = lanes.iter().flat_map(|l| {
            l.result.frames.iter().flatten().map(|p| NamedPair {
                camera: l.camera.clone(),
                lidar: l.lidar.clone(),
                pair: p.clone(),
            })
        });
        out.frames = Some(named.collect());
    }
    out
}
