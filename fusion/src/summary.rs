//! What fusion reports at the end of a run (its part of the run summary, DESIGN.md §8), as
//! serde types.
//!
//! [`FusionResult`] holds what fusion itself knows: its readers' counters, the epochs and
//! calibration messages it saw, the pairing outcomes, consistency, latency, the per-pair
//! entries and the invariants it can check. The run summary (the supervisor's, in the
//! binary) is built from it, the rings' scoreboards, faults and CPU; the section types here
//! serialise to the summary's keys unchanged.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::pairing::PairingMode;
use crate::stats::{FusionStats, LatencyRecorder, PairMetrics};

/// Reader and writer counters of one ring (fusion fills the reader side).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamSummary {
    /// Frames the producer committed.
    pub frames_written: u64,
    /// Frames the reader accepted.
    pub frames_read: u64,
    /// Torn reads retried.
    pub torn_retries: u64,
    /// Times the writer lapped the reader.
    pub overruns: u64,
    /// Slots that no longer held the announced frame.
    pub stale: u64,
    /// Frames rejected by validation (checksum, header, length): the reader's `Invalid`.
    #[serde(default)]
    pub invalid: u64,
    /// Frames fusion held by reference whose slot was overwritten before it used them (the
    /// pairer fell back to the next candidate).
    #[serde(default)]
    pub overrun_before_use: u64,
    /// Frames tagged with an epoch that no calibration ever published (forged or corrupt
    /// tags): never fused.
    #[serde(default)]
    pub unknown_epoch: u64,
}

/// Both input rings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamsSummary {
    /// The camera ring.
    pub camera: StreamSummary,
    /// The lidar ring.
    pub lidar: StreamSummary,
}

/// Calibration epochs seen by fusion.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CalibrationSummary {
    /// Known epochs, ascending.
    pub epochs: Vec<u64>,
    /// Calibration updates received (fusion fills the count it got on its channel; the
    /// caller may overwrite it with the subscriber's count).
    pub updates_received: u64,
    /// Messages rejected by validation (caller).
    pub rejected_messages: u64,
    /// Peers and messages the calibration service's gatekeeper refused, by reason (filled
    /// by the run's supervisor from the service's report).
    #[serde(default)]
    pub refused: calib::service::RefusalStats,
}

/// Pairing outcome counters. See [`crate::pairing`] for the exact definitions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairsSummary {
    /// Pairs fused.
    pub fused: u64,
    /// Fused pairs whose frames, or whose applied calibration, differ in epoch.
    pub fused_epoch_mismatch: u64,
    /// Sweeps whose nearest in-skew camera frame carried another epoch.
    pub rejected_epoch_mismatch: u64,
    /// Frames (both streams) dropped because their calibration never came in time.
    pub dropped_no_calibration: u64,
    /// Camera frames that left unfused (not counting drops).
    pub unpaired_camera: u64,
    /// Sweeps that left unfused (not counting drops).
    pub unpaired_lidar: u64,
    /// Extra: duplicate frames ignored (both streams).
    #[serde(default)]
    pub duplicates: u64,
    /// Extra: camera share of `dropped_no_calibration`.
    #[serde(default)]
    pub dropped_no_calibration_camera: u64,
    /// Extra: lidar share of `dropped_no_calibration`.
    #[serde(default)]
    pub dropped_no_calibration_lidar: u64,
    /// Extra: camera frames accepted by pairing.
    #[serde(default)]
    pub camera_frames: u64,
    /// Extra: sweeps accepted by pairing.
    #[serde(default)]
    pub lidar_frames: u64,
    /// Extra: frames rejected before pairing (unparsable payload).
    #[serde(default)]
    pub invalid_payloads: u64,
    /// Extra: sweeps decided at their timeout rather than when safe.
    #[serde(default)]
    pub forced_decisions: u64,
    /// Extra: fused frames the output sink refused.
    #[serde(default)]
    pub sink_errors: u64,
}

/// Projection consistency against ground-truth labels (simulation only).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ConsistencySummary {
    /// Mean of the per-pair consistencies; null without labels.
    pub mean: Option<f64>,
    /// Smallest per-pair consistency; null without labels.
    pub min: Option<f64>,
    /// Extra: pairs that had labels.
    #[serde(default)]
    pub pairs: u64,
}

/// Capture → fused latency, milliseconds (0 when nothing was fused).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Maximum.
    pub max: f64,
    /// Extra: latencies measured.
    #[serde(default)]
    pub samples: u64,
    /// Capture → published (the pair's last frame): the simulator's or replayer's part.
    /// Zero where latency is not measured from capture (`--max-rate`, replays).
    #[serde(default)]
    pub render: LatencyPart,
    /// Published (the pair's last frame) → fused: the pipeline's part.
    #[serde(default)]
    pub pipeline: LatencyPart,
}

/// One part of the latency, milliseconds (0 without samples).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyPart {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Maximum.
    pub max: f64,
}

impl LatencyPart {
    /// The part's figures from its recorder.
    #[must_use]
    pub fn of(r: &LatencyRecorder) -> Self {
        let ms = |ns: u64| ns as f64 / 1e6;
        Self {
            p50: r.quantile_ns(0.5).map_or(0.0, ms),
            p99: r.quantile_ns(0.99).map_or(0.0, ms),
            max: ms(r.max_ns()),
        }
    }
}

/// The invariants fusion checks (the run summary adds the ones only the supervisor sees).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FusionChecks {
    /// Cross-epoch pairs fused under `epoch` pairing (must be 0).
    pub cross_epoch_fused: u64,
    /// Frames fused more than once (must be 0).
    pub fused_twice: u64,
    /// Fusions whose calibration was missing (must be 0).
    pub missing_calibration: u64,
    /// Every sweep ended fused, dropped or unpaired.
    pub lidar_accounted: bool,
    /// Every camera frame ended fused, dropped or unpaired.
    pub camera_accounted: bool,
}

impl Default for FusionChecks {
    /// Nothing seen, so nothing broken.
    fn default() -> Self {
        Self {
            cross_epoch_fused: 0,
            fused_twice: 0,
            missing_calibration: 0,
            lidar_accounted: true,
            camera_accounted: true,
        }
    }
}

/// Fusion's report of a run (`fusion-result.json` in the run directory).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FusionResult {
    /// `epoch` or `latest`.
    pub pairing: PairingMode,
    /// Fusion's readers' counters (`frames_written` is the writers' to tell).
    pub streams: StreamsSummary,
    /// Calibration epochs and messages.
    pub calibration: CalibrationSummary,
    /// Pairing outcomes.
    pub pairs: PairsSummary,
    /// Consistency against labels.
    pub consistency: ConsistencySummary,
    /// Capture → fused latency.
    pub latency_ms: LatencySummary,
    /// One entry per fused pair: present for a replay and for `--per-pair`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frames: Option<Vec<PairMetrics>>,
    /// The invariants fusion checks.
    pub checks: FusionChecks,
}

impl FusionResult {
    /// An empty report: nothing received, nothing broken.
    #[must_use]
    pub fn new(pairing: PairingMode) -> Self {
        Self { pairing, ..Self::default() }
    }

    /// The report of `stats`. `frames`: whether to include the per-pair entries (always for
    /// a replay, for a drive with `--per-pair`). The stream counters and the calibration
    /// message counts are the caller's to fill (its readers and subscriber saw them).
    #[must_use]
    pub fn from_stats(stats: &FusionStats, frames: bool) -> Self {
        let p = &stats.pairer;
        Self {
            pairing: stats.mode,
            streams: StreamsSummary::default(),
            calibration: CalibrationSummary {
                epochs: stats.epochs.iter().map(|e| e.0).collect(),
                updates_received: stats.calibration_updates,
                rejected_messages: 0,
                refused: calib::service::RefusalStats::default(),
            },
            pairs: PairsSummary {
                fused: stats.fused,
                fused_epoch_mismatch: stats.fused_epoch_mismatch,
                rejected_epoch_mismatch: p.rejected_epoch_mismatch,
                dropped_no_calibration: p.dropped_no_calibration(),
                unpaired_camera: p.unpaired_camera,
                unpaired_lidar: p.unpaired_lidar,
                duplicates: p.duplicates(),
                dropped_no_calibration_camera: p.dropped_no_calibration_camera,
                dropped_no_calibration_lidar: p.dropped_no_calibration_lidar,
                camera_frames: p.camera_accepted,
                lidar_frames: p.lidar_accepted,
                invalid_payloads: stats.invalid_camera + stats.invalid_lidar,
                forced_decisions: p.forced_decisions,
                sink_errors: stats.sink_errors,
            },
            consistency: ConsistencySummary {
                mean: stats.consistency_mean(),
                min: stats.consistency_min,
                pairs: stats.consistency_pairs,
            },
            latency_ms: {
                let all = LatencyPart::of(&stats.latency);
                LatencySummary {
                    p50: all.p50,
                    p99: all.p99,
                    max: all.max,
                    samples: stats.latency.count(),
                    render: LatencyPart::of(&stats.latency_render),
                    pipeline: LatencyPart::of(&stats.latency_pipeline),
                }
            },
            frames: frames.then(|| stats.frames.clone()),
            checks: FusionChecks {
                cross_epoch_fused: if stats.mode == PairingMode::Epoch {
                    stats.fused_epoch_mismatch
                } else {
                    0
                },
                fused_twice: stats.fused_twice,
                missing_calibration: stats.missing_calibration,
                lidar_accounted: stats.lidar_accounted(),
                camera_accounted: stats.camera_accounted(),
            },
        }
    }

    /// Writes the JSON to `path` (through a temporary file and a rename, so a reader never
    /// sees half a report).
    ///
    /// # Errors
    /// Any I/O error.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, text + "\n")?;
        std::fs::rename(&tmp, path)
    }

    /// Reads a report [`FusionResult::write`] wrote.
    ///
    /// # Errors
    /// An I/O error, or `InvalidData` for text that is not a report.
    pub fn read(path: &Path) -> std::io::Result<Self> {
        let text = std::fs::read_to_string(path)?;
        serde_json::from_str(&text).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fusion_keys_are_present_and_round_trip() {
        let mut s = FusionResult::new(PairingMode::Latest);
        s.frames = Some(vec![PairMetrics {
            camera_seq: 1,
            lidar_seq: 2,
            epoch: 1,
            points: 10,
            points_in_image: 5,
            mean_u: 1.0,
            mean_v: 2.0,
            mean_depth: 3.0,
            consistency: None,
            camera_epoch: 1,
            lidar_epoch: 1,
            latency_ms: 0.5,
            camera_capture_ns: 0,
            lidar_capture_ns: 0,
        }]);
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["pairing"], "latest");
        for st in ["camera", "lidar"] {
            for k in ["frames_written", "frames_read", "torn_retries", "overruns", "stale"] {
                assert!(v["streams"][st][k].is_u64(), "{st}.{k}");
            }
        }
        assert!(v["calibration"]["epochs"].is_array());
        for k in ["updates_received", "rejected_messages"] {
            assert!(v["calibration"][k].is_u64(), "{k}");
        }
        for k in [
            "fused",
            "fused_epoch_mismatch",
            "rejected_epoch_mismatch",
            "dropped_no_calibration",
            "unpaired_camera",
            "unpaired_lidar",
        ] {
            assert!(v["pairs"][k].is_u64(), "{k}");
        }
        assert!(v["consistency"]["mean"].is_null() && v["consistency"]["min"].is_null());
        for k in ["p50", "p99", "max"] {
            assert!(v["latency_ms"][k].is_number(), "{k}");
        }
        let f = &v["frames"][0];
        for k in ["camera_seq", "lidar_seq", "epoch", "points", "points_in_image"] {
            assert!(f[k].is_u64(), "{k}");
        }
        for k in ["mean_u", "mean_v", "mean_depth"] {
            assert!(f[k].is_number(), "{k}");
        }
        assert!(f["consistency"].is_null());
        assert!(v["checks"]["lidar_accounted"].as_bool().unwrap());
        let back: FusionResult = serde_json::from_value(v).unwrap();
        assert_eq!(back, s);
        s.frames = None;
        assert!(!serde_json::to_string(&s).unwrap().contains("\"frames\""));
    }

    #[test]
    fn reports_fusion_stats() {
        let mut stats =
            FusionStats { fused: 2, consistency_pairs: 2, consistency_sum: 1.5, ..Default::default() };
        stats.pairer.fused = 2;
        stats.pairer.lidar_accepted = 3;
        stats.pairer.unpaired_lidar = 1;
        stats.pairer.camera_accepted = 2;
        stats.consistency_min = Some(0.5);
        stats.latency.record(2_000_000);
        let s = FusionResult::from_stats(&stats, false);
        assert_eq!(s.pairs.fused, 2);
        assert_eq!(s.consistency.mean, Some(0.75));
        assert_eq!(s.latency_ms.p99, 2.0);
        assert_eq!(s.checks, FusionChecks::default());
        assert!(s.frames.is_none());
    }
}
