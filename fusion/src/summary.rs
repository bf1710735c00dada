//! The run summary JSON (DESIGN.md §8), as serde types.
//!
//! Every key of the contract is a field here; extra keys are marked. Fusion fills `pairs`,
//! `consistency`, `latency_ms`, `frames`, `invariants` and the epochs of `calibration`
//! ([`Summary::apply_fusion`]); the caller fills `source`, `pairing`, `duration_s`,
//! `realtime_factor`, `streams`, the calibration message counts and `faults`.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::pairing::PairingMode;
use crate::stats::{FusionStats, PairMetrics};

/// Where the frames came from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// A simulated drive.
    #[default]
    Sim,
    /// A replayed log (MCAP or KITTI folder).
    Replay,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Sim => "sim",
            Self::Replay => "replay",
        })
    }
}

/// Reader and writer counters of one ring.
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
}

/// Process faults (caller).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FaultsSummary {
    /// Role processes that died.
    pub crashes: u64,
    /// Role processes restarted.
    pub restarts: u64,
    /// Longest recovery, milliseconds; null if none.
    pub recovery_ms_max: Option<f64>,
}

/// Extra section: the invariants a run must keep.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvariantsSummary {
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
    /// Torn frames accepted by a reader (caller; must be 0): frames that passed the ring's
    /// seqlock and checksum but whose payload did not parse.
    pub torn_frames_accepted: u64,
    /// Frames a producer tagged with another epoch than the one its sensor was physically in
    /// (caller; simulation only, where the truth is known; must be 0).
    #[serde(default)]
    pub mistagged_frames: u64,
    /// All of the above hold.
    pub ok: bool,
}

impl InvariantsSummary {
    /// Recomputes `ok` from the other fields.
    pub fn refresh(&mut self) {
        self.ok = self.cross_epoch_fused == 0
            && self.fused_twice == 0
            && self.missing_calibration == 0
            && self.lidar_accounted
            && self.camera_accounted
            && self.torn_frames_accepted == 0
            && self.mistagged_frames == 0;
    }
}

/// The run summary.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// `sim` or `replay`.
    pub source: Source,
    /// `epoch` or `latest`.
    pub pairing: PairingMode,
    /// Wall-clock run time, seconds.
    pub duration_s: f64,
    /// Sensor time covered / wall time.
    pub realtime_factor: f64,
    /// Ring counters.
    pub streams: StreamsSummary,
    /// Calibration epochs and messages.
    pub calibration: CalibrationSummary,
    /// Pairing outcomes.
    pub pairs: PairsSummary,
    /// Consistency against labels.
    pub consistency: ConsistencySummary,
    /// Capture → fused latency.
    pub latency_ms: LatencySummary,
    /// Process faults.
    pub faults: FaultsSummary,
    /// One entry per fused pair: present for a replay and for `--per-pair`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frames: Option<Vec<PairMetrics>>,
    /// Extra: invariants.
    #[serde(default)]
    pub invariants: InvariantsSummary,
    /// Extra: CPU seconds (user + system) each role's processes used, all incarnations
    /// (caller; sampled from /proc while they run).
    #[serde(default)]
    pub cpu_s: std::collections::BTreeMap<String, f64>,
    /// Extra: wall-clock seconds from the start of the run to its end (caller).
    #[serde(default)]
    pub wall_s: f64,
}

impl Summary {
    /// An all-zero summary.
    #[must_use]
    pub fn new(source: Source, pairing: PairingMode) -> Self {
        let mut s = Self { source, pairing, ..Self::default() };
        s.invariants.lidar_accounted = true;
        s.invariants.camera_accounted = true;
        s.invariants.refresh();
        s
    }

    /// Fills the fusion-owned parts from `stats`. `frames`: whether to include the per-pair
    /// entries (always for a replay, for a drive with `--per-pair`). Keeps a caller-set
    /// `calibration.updates_received` if larger than fusion's own count.
    pub fn apply_fusion(&mut self, stats: &FusionStats, frames: bool) {
        let p = &stats.pairer;
        self.pairing = stats.mode;
        self.pairs = PairsSummary {
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
        };
        self.calibration.epochs = stats.epochs.iter().map(|e| e.0).collect();
        self.calibration.updates_received = self.calibration.updates_received.max(stats.calibration_updates);
        self.consistency = ConsistencySummary {
            mean: stats.consistency_mean(),
            min: stats.consistency_min,
            pairs: stats.consistency_pairs,
        };
        let ms = |ns: u64| ns as f64 / 1e6;
        self.latency_ms = LatencySummary {
            p50: stats.latency.quantile_ns(0.5).map_or(0.0, ms),
            p99: stats.latency.quantile_ns(0.99).map_or(0.0, ms),
            max: ms(stats.latency.max_ns()),
            samples: stats.latency.count(),
        };
        self.frames = frames.then(|| stats.frames.clone());
        let torn = self.invariants.torn_frames_accepted;
        let mistagged = self.invariants.mistagged_frames;
        self.invariants = InvariantsSummary {
            cross_epoch_fused: if stats.mode == PairingMode::Epoch { stats.fused_epoch_mismatch } else { 0 },
            fused_twice: stats.fused_twice,
            missing_calibration: stats.missing_calibration,
            lidar_accounted: stats.lidar_accounted(),
            camera_accounted: stats.camera_accounted(),
            torn_frames_accepted: torn,
            mistagged_frames: mistagged,
            ok: false,
        };
        self.invariants.refresh();
    }

    /// Pretty JSON.
    ///
    /// # Panics
    /// Never: every field serialises.
    #[must_use]
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|_| String::from("{}"))
    }

    /// Writes the pretty JSON to `path` (through a temporary file and a rename, so a reader
    /// never sees half a summary).
    ///
    /// # Errors
    /// Any I/O error.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, self.to_json() + "\n")?;
        std::fs::rename(&tmp, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_contract_key_is_present() {
        let mut s = Summary::new(Source::Replay, PairingMode::Latest);
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
        }]);
        let v: serde_json::Value = serde_json::from_str(&s.to_json()).unwrap();
        assert_eq!(v["source"], "replay");
        assert_eq!(v["pairing"], "latest");
        for k in ["duration_s", "realtime_factor"] {
            assert!(v[k].is_number(), "{k}");
        }
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
        assert!(v["faults"]["crashes"].is_u64() && v["faults"]["restarts"].is_u64());
        assert!(v["faults"]["recovery_ms_max"].is_null());
        let f = &v["frames"][0];
        for k in ["camera_seq", "lidar_seq", "epoch", "points", "points_in_image"] {
            assert!(f[k].is_u64(), "{k}");
        }
        for k in ["mean_u", "mean_v", "mean_depth"] {
            assert!(f[k].is_number(), "{k}");
        }
        assert!(f["consistency"].is_null());
        let back: Summary = serde_json::from_value(v).unwrap();
        assert_eq!(back, s);
        s.frames = None;
        assert!(!s.to_json().contains("\"frames\""));
    }

    #[test]
    fn applies_fusion_stats() {
        let mut stats =
            FusionStats { fused: 2, consistency_pairs: 2, consistency_sum: 1.5, ..Default::default() };
        stats.pairer.fused = 2;
        stats.pairer.lidar_accepted = 3;
        stats.pairer.unpaired_lidar = 1;
        stats.pairer.camera_accepted = 2;
        stats.consistency_min = Some(0.5);
        stats.latency.record(2_000_000);
        let mut s = Summary::new(Source::Sim, PairingMode::Epoch);
        s.apply_fusion(&stats, false);
        assert_eq!(s.pairs.fused, 2);
        assert_eq!(s.consistency.mean, Some(0.75));
        assert_eq!(s.latency_ms.p99, 2.0);
        assert!(s.invariants.ok && s.frames.is_none());
    }
}
