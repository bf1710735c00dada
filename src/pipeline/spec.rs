//! The run specification every role of a pipeline reads from `<run dir>/pipeline.json`.
//!
//! The supervisor writes it once before spawning anything; roles never take configuration
//! from anywhere else (no long argument lists to get out of step), so a restarted role runs
//! exactly as its first incarnation did.

use std::path::{Path, PathBuf};

use super::summary::Source;
use fusion::PairingMode;
use serde::{Deserialize, Serialize};
use shared::StreamKind;

use crate::error::CliError;

/// File name of the spec in the run directory.
pub const SPEC_FILE: &str = "pipeline.json";
/// File name of the scenario copy in the run directory (simulated drives).
pub const SCENARIO_FILE: &str = "scenario.ron";
/// File name of a replayed bag's index, saved at the door for the replayer
/// (`logs::LogSource::save_index`): the bag is indexed once per run.
pub const LOG_INDEX_FILE: &str = "log-index.json";
/// File name of a replayed bag's CAN frames, read at the door for the vehicle role
/// (`logs::can::save_frames`): the bag's bus is read once per run.
pub const CAN_FRAMES_FILE: &str = "can-frames.bin";
/// File name of fusion's result (its part of the summary).
pub const FUSION_RESULT_FILE: &str = "fusion-result.json";
/// File name of the calibration service's counters (its part of the summary).
pub const CALIB_RESULT_FILE: &str = "calib-result.json";
/// File name of the vehicle bus's database copy in the run directory (drives with a bus).
pub const VEHICLE_DBC_FILE: &str = "vehicle.dbc";
/// File name of the vehicle bus's summary (its part of the run summary).
pub const VEHICLE_RESULT_FILE: &str = "vehicle-result.json";

/// The ego car's bus of a drive; its database is `<run dir>/vehicle.dbc`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VehicleRun {
    /// Bit rate, bit/s (checked at the door).
    pub bitrate_bps: u32,
    /// Seed of the release jitter.
    pub seed: u64,
    /// A replay: the recorded frames are sent again, their stamps moved by the log's start
    /// (ns) onto the pipeline clock, instead of simulating the bus.
    #[serde(default)]
    pub replay_start_ns: Option<u64>,
    /// A replay: the lidar's mount on the vehicle from the log (translation x, y, z, then the
    /// rotation quaternion i, j, k, w); a replay's calibration has the lidar relative to the
    /// camera only. `None`: deskew with the calibration's `lidar_to_vehicle`.
    #[serde(default)]
    pub lidar_mount: Option<[f64; 7]>,
}

/// Where frames come from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum SourceSpec {
    /// A simulated drive; the scenario is `<run dir>/scenario.ron`.
    Sim,
    /// A recorded log.
    Replay {
        /// The log (MCAP file, rosbag2 folder, KITTI folder), absolute.
        path: PathBuf,
        /// Chosen lidar topic.
        lidar_topic: Option<String>,
        /// Chosen camera topic.
        camera_topic: Option<String>,
        /// The bag's cameras to replay, by sensor name or image topic (`--cameras`); `None`:
        /// every camera.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cameras: Option<Vec<String>>,
    },
    /// Another host's run, mirrored over Zenoh (`epochfuse remote`): the bridge role takes
    /// the producers' place.
    Remote(RemoteSpec),
}

/// Where a remote run comes from and how its rings are laid out (from its start message).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RemoteSpec {
    /// The Zenoh session: endpoint, config file, run id.
    pub net: ZenohSpec,
    /// What the publishing run is (`sim` or `replay`).
    pub source: Source,
}

/// A run's Zenoh bridge: where it listens (publishing) or connects (remote).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ZenohSpec {
    /// The endpoint (`tcp/127.0.0.1:7447`).
    pub endpoint: String,
    /// A Zenoh config file (JSON5), read by the bridge role.
    pub config: Option<PathBuf>,
    /// The run id of the key prefix.
    pub run_id: String,
    /// Seconds the publishing run waits for its first subscriber.
    pub wait_s: f64,
    /// Largest camera payload (bytes).
    pub camera_capacity: u64,
    /// Largest lidar payload (bytes).
    pub lidar_capacity: u64,
    /// Lidar frames the source writes (progress, start message).
    pub expected_lidar_frames: u64,
    /// The run's epochs as the bridge publishes them (`bridge::epochs::encode`, exact
    /// rotations), made from the schedule before this spec's own encoding rounds them.
    #[serde(default)]
    pub epochs: Vec<(u64, Vec<u8>)>,
}

/// One sensor of the run: a producer, its segment `<name>.seg` and fusion's reader of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SensorRun {
    /// Its name (`camera` and `lidar` in a one-camera run).
    pub name: calib::SensorName,
    /// Camera or lidar.
    pub kind: StreamKind,
    /// Frames per second.
    pub rate_hz: f64,
}

/// Everything a role needs to know about its run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSpec {
    /// Frame source.
    pub source: SourceSpec,
    /// How fusion pairs frames (`--pairing`).
    pub pairing: PairingMode,
    /// Camera frames per second: the scenario's camera rate, or the log's real one.
    pub camera_hz: f64,
    /// Lidar sweeps per second: the scenario's lidar rate, or the log's real one.
    pub lidar_hz: f64,
    /// Render or replay as fast as possible.
    pub max_rate: bool,
    /// Replay speed (1.0 = the log's timing).
    pub rate: f64,
    /// Seconds of data to produce (sim: simulated seconds).
    pub duration_s: f64,
    /// Output directory (absolute).
    pub out: PathBuf,
    /// Overlay PNG every N pairs (0: none).
    pub overlay_every: u64,
    /// Include per-pair entries in the summary.
    pub per_pair: bool,
    /// MCAP file to record to (absolute).
    pub record: Option<PathBuf>,
    /// Sandbox every role (Landlock, no-new-privileges, namespaces), see
    /// [`super::sandbox`].
    pub sandbox: bool,
    /// The calibration socket's gatekeeper policy (checked at the door).
    #[serde(default)]
    pub socket_policy: calib::policy::SocketPolicy,
    /// The run's calibration epochs, on the pipeline clock: the scenario's schedule, or the
    /// log's epochs (found once, by the supervisor). The calib role announces these.
    pub epochs: Vec<calib::CalibrationSet>,
    /// Delivery faults of the calibration socket (simulated drives).
    pub delivery: calib::DeliveryPlan,
    /// The vehicle bus, if the run has one.
    #[serde(default)]
    pub vehicle: Option<VehicleRun>,
    /// Fusion deskews sweeps with the bus's ego-motion (`--deskew`).
    #[serde(default)]
    pub deskew: bool,
    /// Publish the run over Zenoh (`--zenoh`): the bridge role's settings.
    #[serde(default)]
    pub zenoh: Option<ZenohSpec>,
    /// The rig's sensors, cameras first (the primary camera, then the primary lidar, lead
    /// their kinds). Empty: one camera `camera` at `camera_hz` and one lidar `lidar` at
    /// `lidar_hz` (replays, remote runs).
    #[serde(default)]
    pub sensors: Vec<SensorRun>,
}

impl RunSpec {
    /// `sim` or `replay`, as the summary names it.
    #[must_use]
    pub const fn source_kind(&self) -> Source {
        match self.source {
            SourceSpec::Sim => Source::Sim,
            SourceSpec::Replay { .. } => Source::Replay,
            SourceSpec::Remote(RemoteSpec { source, .. }) => source,
        }
    }

    /// Readers of each sensor ring that a producer at `--max-rate` waits for: fusion, the
    /// recorder, the Zenoh bridge.
    #[must_use]
    pub const fn ring_readers(&self) -> u64 {
        1 + self.record.is_some() as u64 + self.zenoh.is_some() as u64
    }

    /// Frames per second of a sensor stream (`camera_hz` or `lidar_hz`).
    #[must_use]
    pub const fn rate_hz(&self, kind: StreamKind) -> f64 {
        match kind {
            StreamKind::Camera => self.camera_hz,
            _ => self.lidar_hz,
        }
    }

    /// The run's sensors ([`RunSpec::sensors`], or the one-camera default).
    #[must_use]
    pub fn sensor_list(&self) -> Vec<SensorRun> {
        if !self.sensors.is_empty() {
            return self.sensors.clone();
        }
        vec![
            SensorRun {
                name: calib::SensorName::camera(),
                kind: StreamKind::Camera,
                rate_hz: self.camera_hz,
            },
            SensorRun { name: calib::SensorName::lidar(), kind: StreamKind::Lidar, rate_hz: self.lidar_hz },
        ]
    }

    /// The sensors of one kind, the primary first.
    #[must_use]
    pub fn sensors_of(&self, kind: StreamKind) -> Vec<SensorRun> {
        self.sensor_list().into_iter().filter(|s| s.kind == kind).collect()
    }

    /// The sensor named `name`.
    ///
    /// # Errors
    /// Exit 3: a role started for a sensor its run does not have was started wrongly.
    pub fn sensor(&self, name: &str) -> Result<SensorRun, CliError> {
        self.sensor_list()
            .into_iter()
            .find(|s| s.name.as_str() == name)
            .ok_or_else(|| CliError::internal(format!("the run has no sensor named {name:?}")))
    }

    /// Readers of a `kind` sensor's ring a producer at `--max-rate` waits for: fusion reads
    /// each lidar once per camera and each camera once per lidar.
    #[must_use]
    pub fn sensor_ring_readers(&self, kind: StreamKind) -> u64 {
        let other = if kind == StreamKind::Camera { StreamKind::Lidar } else { StreamKind::Camera };
        let partners = self.sensors_of(other).len().max(1) as u64;
        self.ring_readers() + partners - 1
    }

    /// Reads the spec of the run at `run`.
    ///
    /// # Errors
    /// Exit 3: a role that cannot read its run's spec was started wrongly.
    pub fn load(run: &Path) -> Result<Self, CliError> {
        let path = run.join(SPEC_FILE);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| CliError::internal(format!("{}: {e}", path.display())))?;
        serde_json::from_str(&text).map_err(|e| CliError::internal(format!("{}: {e}", path.display())))
    }

    /// Writes the spec into the run directory.
    ///
    /// # Errors
    /// Exit 3 on an I/O error.
    pub fn store(&self, run: &Path) -> Result<(), CliError> {
        let path = run.join(SPEC_FILE);
        let text = serde_json::to_string_pretty(self).map_err(|e| CliError::internal(e.to_string()))?;
        write_private(&path, text.as_bytes())
            .map_err(|e| CliError::internal(format!("{}: {e}", path.display())))
    }
}

/// Writes a file of the run directory readable by its owner only (mode 0600, like the
/// segments): the spec and the scenario say what the run does.
///
/// # Errors
/// Any I/O error.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?
        .write_all(bytes)
}
