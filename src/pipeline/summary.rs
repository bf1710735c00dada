//! The run summary JSON (DESIGN.md §8): the supervisor's, built at the end of a run from
//! fusion's report ([`FusionResult`]), the rings' scoreboards, the faults it injected and
//! saw, and the CPU its roles used.
//!
//! Every key of the contract is a field here, in the contract's order; extra keys are
//! marked. The sections fusion knows are fusion's own types, serialised unchanged.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use fusion::summary::{
    CalibrationSummary, ConsistencySummary, FusionChecks, FusionResult, LatencySummary, PairsSummary,
    StreamSummary,
};
use fusion::PairingMode;
use shared::StreamKind;

use super::rig_summary::{CameraBreakdown, NamedPair, RigResult, SensorStream, Streams};
use serde::{Deserialize, Serialize};
use shared::ring::Scoreboard;
use shared::scoreboard::ProducerScoreboard;

use super::sandbox::SandboxSummary;

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

/// Process faults.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FaultsSummary {
    /// Role processes that died: killed, or exited with a failure other than bad input (a
    /// role that reports its input, such as a log's break, in one line did not crash).
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
    /// Torn frames accepted by a reader (must be 0): frames that passed the ring's seqlock
    /// and checksum but whose payload did not parse.
    pub torn_frames_accepted: u64,
    /// Frames a producer tagged with another epoch than the one its sensor was physically in
    /// (simulation only, where the truth is known; must be 0).
    #[serde(default)]
    pub mistagged_frames: u64,
    /// All of the above hold.
    pub ok: bool,
}

impl InvariantsSummary {
    /// Fusion's checks plus the supervisor's counts, with `ok` computed.
    #[must_use]
    pub const fn new(f: FusionChecks, torn_frames_accepted: u64, mistagged_frames: u64) -> Self {
        let ok = f.cross_epoch_fused == 0
            && f.fused_twice == 0
            && f.missing_calibration == 0
            && f.lidar_accounted
            && f.camera_accounted
            && torn_frames_accepted == 0
            && mistagged_frames == 0;
        Self {
            cross_epoch_fused: f.cross_epoch_fused,
            fused_twice: f.fused_twice,
            missing_calibration: f.missing_calibration,
            lidar_accounted: f.lidar_accounted,
            camera_accounted: f.camera_accounted,
            torn_frames_accepted,
            mistagged_frames,
            ok,
        }
    }
}

/// The run summary.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// `sim` or `replay`.
    pub source: Source,
    /// `epoch` or `latest`.
    pub pairing: PairingMode,
    /// Sensor seconds covered.
    pub duration_s: f64,
    /// Sensor time covered / wall time.
    pub realtime_factor: f64,
    /// Ring counters, by sensor name, each with its `kind`.
    pub streams: Streams,
    /// Calibration epochs and messages.
    pub calibration: CalibrationSummary,
    /// Pairing outcomes.
    pub pairs: PairsSummary,
    /// Consistency against labels.
    pub consistency: ConsistencySummary,
    /// Extra: `pairs` and `consistency` of each camera (with every lidar), by camera name.
    #[serde(default)]
    pub per_camera: BTreeMap<String, CameraBreakdown>,
    /// Capture → fused latency.
    pub latency_ms: LatencySummary,
    /// Process faults.
    pub faults: FaultsSummary,
    /// One entry per fused pair, naming its `camera` and `lidar`: present for a replay and
    /// for `--per-pair`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frames: Option<Vec<NamedPair>>,
    /// Extra: invariants.
    #[serde(default)]
    pub invariants: InvariantsSummary,
    /// Extra: CPU seconds (user + system) each role's processes used, all incarnations
    /// (sampled from /proc while they run).
    #[serde(default)]
    pub cpu_s: BTreeMap<String, f64>,
    /// Extra: wall-clock seconds from the start of the run to its end.
    #[serde(default)]
    pub wall_s: f64,
    /// What sandbox each role ran in.
    #[serde(default)]
    pub sandbox: SandboxSummary,
    /// Extra: the vehicle bus (frames, load, deadline misses, observed and analysed response
    /// times per identifier); only in runs with a bus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub can: Option<can::vehicle::BusSummary>,
}

/// What the supervisor itself knows at the end of a run.
#[derive(Clone, Debug, Default)]
pub struct RunFacts {
    /// `sim` or `replay`.
    pub source: Source,
    /// The camera ring's scoreboard.
    pub camera: Scoreboard,
    /// The lidar ring's scoreboard.
    pub lidar: Scoreboard,
    /// Every sensor ring's scoreboard by sensor name (empty: `camera` and `lidar` above).
    pub sensors: BTreeMap<String, (StreamKind, Scoreboard)>,
    /// Faults injected and seen.
    pub faults: FaultsSummary,
    /// CPU seconds per role.
    pub cpu_s: BTreeMap<String, f64>,
    /// Sensor seconds covered.
    pub duration_s: f64,
    /// Sensor time covered / wall time while producing.
    pub realtime_factor: f64,
    /// Wall-clock seconds of the whole run.
    pub wall_s: f64,
    /// What sandbox each role ran in.
    pub sandbox: SandboxSummary,
}

impl Summary {
    /// The summary of a run: fusion's report (an empty one if fusion wrote none) and the
    /// supervisor's facts.
    #[must_use]
    pub fn build(fusion: FusionResult, rig: RigResult, facts: RunFacts) -> Self {
        let boards = if facts.sensors.is_empty() {
            BTreeMap::from([
                ("camera".to_string(), (StreamKind::Camera, facts.camera)),
                ("lidar".to_string(), (StreamKind::Lidar, facts.lidar)),
            ])
        } else {
            facts.sensors.clone()
        };
        // frames_read and the retry counters come from fusion's own readers when it reported
        // them (the recorder reads the same rings); the writers' counts from the scoreboards.
        let mut streams = rig.streams;
        if streams.values().all(|s| s.counters.frames_read == 0) {
            streams = boards
                .iter()
                .map(|(n, (kind, b))| (n.clone(), SensorStream { kind: *kind, counters: stream_of(b) }))
                .collect();
        }
        let mut mistagged = 0;
        for (name, (kind, b)) in &boards {
            let entry =
                streams.entry(name.clone()).or_insert(SensorStream { kind: *kind, counters: stream_of(b) });
            entry.counters.frames_written = b.frames_written;
            mistagged += producer_mistagged(b, name);
        }
        let frames = match (rig.frames, fusion.frames) {
            (Some(named), Some(_)) => Some(named),
            (_, frames) => frames.map(|f| {
                let name =
                    |kind: StreamKind| boards.iter().find(|(_, (k, _))| *k == kind).map(|(n, _)| n.clone());
                let (camera, lidar) = (
                    name(StreamKind::Camera).unwrap_or_default(),
                    name(StreamKind::Lidar).unwrap_or_default(),
                );
                f.into_iter()
                    .map(|pair| NamedPair { camera: camera.clone(), lidar: lidar.clone(), pair })
                    .collect()
            }),
        };
        Self {
            source: facts.source,
            pairing: fusion.pairing,
            duration_s: facts.duration_s,
            realtime_factor: facts.realtime_factor,
            streams,
            calibration: fusion.calibration,
            pairs: fusion.pairs,
            consistency: fusion.consistency,
            per_camera: rig.per_camera,
            latency_ms: fusion.latency_ms,
            faults: facts.faults,
            frames,
            invariants: InvariantsSummary::new(fusion.checks, fusion.pairs.invalid_payloads, mistagged),
            cpu_s: facts.cpu_s,
            wall_s: facts.wall_s,
            sandbox: facts.sandbox,
            can: None,
        }
    }

    /// Pretty JSON.
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

/// The producer's count of mistagged frames, checked before use: it is copied out of shared
/// memory that any same-uid process can write, so a count above the frames written is a
/// forged or scribbled counter. It is then bounded by the frames written (still > 0, so the
/// invariants break) and named in a warning.
fn producer_mistagged(b: &Scoreboard, stream: &str) -> u64 {
    let mistagged = ProducerScoreboard::of(b).mistagged;
    if mistagged > b.frames_written {
        tracing::warn!(
            stream,
            mistagged,
            frames_written = b.frames_written,
            "producer counter out of range (more than the frames written); bounded"
        );
        return b.frames_written.max(1);
    }
    mistagged
}

fn stream_of(b: &Scoreboard) -> StreamSummary {
    StreamSummary {
        frames_written: b.frames_written,
        frames_read: b.frames_read,
        torn_retries: b.torn_retries,
        overruns: b.overruns,
        stale: b.stale,
        invalid: b.invalid,
        overrun_before_use: 0,
        unknown_epoch: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_contract_key_is_present() {
        let mut fusion = FusionResult::new(PairingMode::Latest);
        fusion.frames = Some(Vec::new());
        let s = Summary::build(
            fusion,
            RigResult::default(),
            RunFacts { source: Source::Replay, ..RunFacts::default() },
        );
        let v: serde_json::Value = serde_json::from_str(&s.to_json()).unwrap();
        assert_eq!(v["source"], "replay");
        assert_eq!(
            (v["streams"]["camera"]["kind"].as_str(), v["streams"]["lidar"]["kind"].as_str()),
            (Some("camera"), Some("lidar"))
        );
        assert!(v["per_camera"].is_object());
        assert_eq!(v["pairing"], "latest");
        for k in ["duration_s", "realtime_factor", "wall_s"] {
            assert!(v[k].is_number(), "{k}");
        }
        for st in ["camera", "lidar"] {
            for k in ["frames_written", "frames_read", "torn_retries", "overruns", "stale", "invalid"] {
                assert!(v["streams"][st][k].is_u64(), "{st}.{k}");
            }
        }
        assert!(v["calibration"]["epochs"].is_array() && v["pairs"]["fused"].is_u64());
        assert!(v["latency_ms"]["p99"].is_number() && v["consistency"]["mean"].is_null());
        assert!(v["faults"]["crashes"].is_u64() && v["faults"]["restarts"].is_u64());
        assert!(v["faults"]["recovery_ms_max"].is_null());
        assert!(v["frames"].is_array() && v["cpu_s"].is_object());
        assert_eq!(v["invariants"]["ok"], true);
        let back: Summary = serde_json::from_value(v).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn supervisor_counts_break_the_invariants() {
        let mut camera = Scoreboard { frames_written: 5, ..Scoreboard::default() };
        camera.aux[shared::layout::aux::PRODUCER_MISTAGGED] = 2;
        let mut fusion = FusionResult::new(PairingMode::Epoch);
        fusion.pairs.invalid_payloads = 1;
        let s = Summary::build(fusion, RigResult::default(), RunFacts { camera, ..RunFacts::default() });
        assert_eq!((s.invariants.mistagged_frames, s.invariants.torn_frames_accepted), (2, 1));
        assert!(!s.invariants.ok);
    }

    /// A producer counter scribbled in shared memory is checked, not copied: it cannot claim
    /// more frames than were written, and it still breaks the invariants.
    #[test]
    fn forged_producer_counters_are_bounded_by_frames_written() {
        let mut lidar = Scoreboard { frames_written: 10, ..Scoreboard::default() };
        lidar.aux[shared::layout::aux::PRODUCER_MISTAGGED] = u64::MAX;
        let mut camera = Scoreboard { frames_written: 10, ..Scoreboard::default() };
        camera.aux[shared::layout::aux::PRODUCER_MISTAGGED] = u64::MAX;
        let s = Summary::build(
            FusionResult::new(PairingMode::Epoch),
            RigResult::default(),
            RunFacts { camera, lidar, ..RunFacts::default() },
        );
        assert_eq!(s.invariants.mistagged_frames, 20);
        assert!(!s.invariants.ok);
    }
}
