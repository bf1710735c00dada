//! The command line: every subcommand, option and default, with help that explains.

use std::path::PathBuf;

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand, ValueEnum};
use fusion::PairingMode;
use shared::Role;

/// Sensor fusion across processes: camera and lidar frames through shared-memory rings,
/// tagged with calibration epochs, fused only when their epochs match.
#[derive(Debug, Parser)]
#[command(name = "epochfuse", version, about, long_about = None, propagate_version = true)]
#[command(
    after_help = "Start with `epochfuse drive`: a 20 s simulated drive with every role in its own process.\n\
Exit codes: 0 success; 1 the run broke an invariant (a cross-epoch pair fused, a torn frame accepted);\n\
2 bad usage or bad input."
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a simulated drive: calibration service, camera, lidar and fusion as supervised
    /// processes, with a progress bar and a JSON summary.
    Drive(DriveArgs),
    /// Replay a recorded log (ROS 2 bag as .mcap or rosbag2 folder, or a KITTI folder)
    /// through the same pipeline.
    Replay(ReplayArgs),
    /// Live scoreboard of a running pipeline (frames/s, MB/s, epochs, torn, overruns, drops).
    Top(TopArgs),
    /// Show a segment's header and per-slot state.
    Inspect(InspectArgs),
    /// Calibration files.
    #[command(subcommand)]
    Calib(CalibCommand),
    /// Simulation utilities.
    #[command(subcommand)]
    Sim(SimCommand),
    /// Fuse another host's run (published with `--zenoh`): connect to ENDPOINT, mirror its
    /// streams and calibration epochs into local rings, run the same calibration and fusion
    /// roles, write the same summary; exits 0 when the source run ends. Needs the `zenoh`
    /// build feature.
    Remote(RemoteArgs),
    /// The vehicle bus (CAN): worst-case response-time analysis of a DBC file.
    #[command(subcommand)]
    Can(crate::can_cmd::CanCommand),
    /// Internal: run one role of a pipeline (spawned by `drive` and `replay`).
    #[command(hide = true)]
    Role(RoleArgs),
    /// Internal: sandbox this process as ROLE of the run at --run would be, then try to
    /// open files and connect to a TCP port, and print what happened (JSON). For tests and
    /// for checking a sandbox by hand.
    #[command(hide = true)]
    SandboxProbe(SandboxProbeArgs),
}

/// A switch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Default)]
pub enum OnOff {
    /// On.
    #[default]
    On,
    /// Off.
    Off,
}

/// How a run on this host runs and where its results go: shared by `drive`, `replay` and
/// `remote`.
#[derive(Debug, Args)]
pub struct LocalRunArgs {
    /// Output directory: summary.json and PNG overlays (lidar points coloured by depth).
    #[arg(long, value_name = "DIR", default_value = "out")]
    pub out: PathBuf,
    /// Where to write the summary JSON [default: summary.json in the --out directory].
    #[arg(long, value_name = "FILE")]
    pub summary: Option<PathBuf>,
    /// Pairing policy.
    #[arg(long, value_parser = pairing_parser(), default_value = "epoch")]
    pub pairing: PairingMode,
    /// Directory for the run's shared-memory segments [env: EPOCHFUSE_SHM_ROOT; default: /dev/shm/epochfuse].
    #[arg(long, value_name = "DIR")]
    pub shm_root: Option<PathBuf>,
    /// Write an overlay PNG every N fused pairs (0: none); a rig of several cameras also
    /// gets a surround mosaic of each round of overlays (overlays/mosaic_PAIR.png).
    #[arg(long, value_name = "N", default_value_t = 30)]
    pub overlay_every: u64,
    /// Hide the progress bar.
    #[arg(long, short)]
    pub quiet: bool,
    /// Sandbox every role: no-new-privileges, Landlock (only its run directory and outputs;
    /// no TCP), its own network, IPC and mount namespaces where the privileges allow. What
    /// each role got is in the summary's `sandbox` key; a refused step is one warning line.
    #[arg(long, value_enum, value_name = "on|off", default_value_t = OnOff::On)]
    pub sandbox: OnOff,
}

/// Options shared by `drive` and `replay`.
#[derive(Debug, Args)]
pub struct PipelineArgs {
    #[command(flatten)]
    pub local: LocalRunArgs,
    /// Run as fast as possible instead of in real time.
    #[arg(long)]
    pub max_rate: bool,
    /// Also record the camera, lidar and calibration streams (and the vehicle bus's CAN
    /// frames, in drives with one) to this MCAP file (ROS 2 schemas), created new: a file
    /// (or link) already there is never replaced.
    #[arg(long, value_name = "FILE.mcap")]
    pub record: Option<PathBuf>,
    /// The calibration socket's gatekeeper policy: who may subscribe, as which role, who
    /// may publish [default: configs/calib/socket-policy.ron, built in: our own user, every
    /// subscribing role, nobody publishes].
    #[arg(long, value_name = "FILE.ron")]
    pub socket_policy: Option<PathBuf>,
    /// Motion-compensate every lidar sweep with the ego-motion from the vehicle bus before
    /// projecting [default: on when the drive has a vehicle bus, else off].
    #[arg(long, value_enum, value_name = "on|off")]
    pub deskew: Option<OnOff>,
    /// Publish the run over Zenoh: listen on ENDPOINT (e.g. tcp/127.0.0.1:7447) and publish
    /// frames, calibration epochs and the run's start and end under `epochfuse/<run-id>/`.
    /// Needs the `zenoh` build feature.
    #[arg(long, value_name = "ENDPOINT")]
    pub zenoh: Option<String>,
    /// Seconds the run waits for its first subscriber before it starts anyway (at most 15).
    #[arg(long, value_name = "S", default_value_t = 10.0, requires = "zenoh")]
    pub zenoh_wait: f64,
    /// A Zenoh config file (JSON5); multicast scouting stays off unless it says otherwise.
    #[arg(long, value_name = "FILE", requires = "zenoh")]
    pub zenoh_config: Option<PathBuf>,
}

/// `epochfuse remote`.
#[derive(Debug, Args)]
pub struct RemoteArgs {
    /// The publishing run's endpoint (e.g. tcp/127.0.0.1:7447).
    #[arg(value_name = "ENDPOINT")]
    pub endpoint: String,
    #[command(flatten)]
    pub local: LocalRunArgs,
    /// Put one entry per fused pair in the summary's `frames` list.
    #[arg(long)]
    pub per_pair: bool,
    /// A Zenoh config file (JSON5).
    #[arg(long, value_name = "FILE")]
    pub zenoh_config: Option<PathBuf>,
    /// Seconds to wait for a run to appear at ENDPOINT.
    #[arg(long, value_name = "S", default_value_t = 30.0)]
    pub wait: f64,
}

/// `epochfuse drive`.
#[derive(Debug, Args)]
pub struct DriveArgs {
    /// Scenario file (RON). Without one, the built-in default urban loop runs.
    #[arg(value_name = "SCENARIO.ron")]
    pub scenario: Option<PathBuf>,
    /// Seconds of simulated driving [default: the scenario's].
    #[arg(long, value_name = "S")]
    pub duration: Option<f64>,
    /// Put one entry per fused pair in the summary's `frames` list.
    #[arg(long)]
    pub per_pair: bool,
    /// Pipeline options.
    #[command(flatten)]
    pub pipeline: PipelineArgs,
}

/// `epochfuse replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// A ROS 2 bag (.mcap file, or a rosbag2 folder with metadata.yaml) or a KITTI folder
    /// (velodyne/, image_2/, calib/).
    #[arg(value_name = "SOURCE")]
    pub source: PathBuf,
    /// Playback speed relative to the log's own timing.
    #[arg(long, value_name = "X", default_value_t = 1.0, conflicts_with = "max_rate")]
    pub rate: f64,
    /// Lidar topic (PointCloud2) [default: the only one].
    #[arg(long, value_name = "TOPIC")]
    pub lidar_topic: Option<String>,
    /// Camera topic (Image) [default: the only one]: replays that one camera, named
    /// `camera`.
    #[arg(long, value_name = "TOPIC", conflicts_with = "cameras")]
    pub camera_topic: Option<String>,
    /// The cameras of a bag to replay, by name or image topic, comma-separated (`front,left`
    /// or `/front/image_raw`) [default: every Image topic with a CameraInfo and a transform to
    /// the lidar]. With several cameras each is named by its topic's namespace
    /// (`/front/image_raw` → `front`; `_2`, `_3` added to repeats); a bag of one camera
    /// replays it as `camera`.
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    pub cameras: Option<Vec<String>>,
    /// Pipeline options.
    #[command(flatten)]
    pub pipeline: PipelineArgs,
}

/// `epochfuse top`.
#[derive(Debug, Args)]
pub struct TopArgs {
    /// Run directory [default: the only live run under the shm root].
    #[arg(value_name = "RUN")]
    pub run: Option<PathBuf>,
    /// Directory holding run directories [env: EPOCHFUSE_SHM_ROOT; default: /dev/shm/epochfuse].
    #[arg(long, value_name = "DIR")]
    pub shm_root: Option<PathBuf>,
    /// Print one snapshot and exit.
    #[arg(long)]
    pub once: bool,
    /// Refresh interval in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 500)]
    pub interval_ms: u64,
}

/// `epochfuse inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// A segment file (e.g. /dev/shm/epochfuse/run-*/camera.seg).
    #[arg(value_name = "SEGMENT")]
    pub segment: PathBuf,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// `epochfuse calib ...`.
#[derive(Debug, Subcommand)]
pub enum CalibCommand {
    /// Validate a calibration file (finite numbers, orthonormal rotations, positive focal
    /// lengths, principal point inside the image) or a socket policy file (known roles that
    /// subscribe, somebody admitted).
    Check {
        /// The calibration or policy file (RON), e.g. configs/calib/default.ron or
        /// configs/calib/socket-policy.ron.
        #[arg(value_name = "FILE.ron")]
        file: PathBuf,
    },
}

/// Export formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// KITTI object layout: velodyne/*.bin, image_2/*.png (and image_3/*.png for a rig of two
    /// or more cameras: its second camera), calib/*.txt.
    Kitti,
}

/// `epochfuse sim ...`.
#[derive(Debug, Subcommand)]
pub enum SimCommand {
    /// Render a simulated drive to files, for replay tests and other tools.
    Export {
        /// Output format.
        #[arg(long, value_enum, default_value_t = ExportFormat::Kitti)]
        format: ExportFormat,
        /// Number of frames (lidar sweeps, each with the camera image taken with it); at
        /// least 1 (an export without frames is no log to replay).
        #[arg(long, value_name = "N", default_value_t = 10, value_parser = parse_frames)]
        frames: usize,
        /// Output directory (must be empty or absent).
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// Scenario file [default: the built-in default].
        #[arg(value_name = "SCENARIO.ron")]
        scenario: Option<PathBuf>,
    },
}

/// Internal role invocation.
#[derive(Debug, Args)]
pub struct RoleArgs {
    /// Which role (its lower-case name: `calib`, `camera`, `lidar`, `fusion`, `replayer`,
    /// `recorder`).
    #[arg(value_parser = parse_role)]
    pub role: Role,
    /// The run directory.
    #[arg(long)]
    pub run: PathBuf,
    /// A producer's sensor, by name (default: the primary camera or lidar).
    #[arg(long)]
    pub sensor: Option<calib::SensorName>,
}

/// `epochfuse sandbox-probe`.
#[derive(Debug, Args)]
pub struct SandboxProbeArgs {
    /// Which role's sandbox.
    #[arg(value_parser = parse_role)]
    pub role: Role,
    /// The run directory whose spec decides the sandbox.
    #[arg(long)]
    pub run: PathBuf,
    /// Files to try to open for reading once sandboxed.
    #[arg(long)]
    pub open: Vec<PathBuf>,
    /// A TCP port on 127.0.0.1 to try to connect to once sandboxed.
    #[arg(long)]
    pub connect: Option<u16>,
}

/// `--frames`: a whole number, at least 1.
fn parse_frames(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("{s} is not a number of frames (at least 1)")),
    }
}

/// Parses a role by its one name ([`Role`]'s `FromStr`).
fn parse_role(s: &str) -> Result<Role, shared::ids::UnknownName> {
    s.parse()
}

/// Parses `--pairing` into fusion's own [`PairingMode`], listing and explaining both values
/// in the help.
fn pairing_parser() -> impl TypedValueParser<Value = PairingMode> {
    PossibleValuesParser::new([
        PossibleValue::new(PairingMode::Epoch.name())
            .help("Only frames with the same calibration epoch, projected with that epoch (correct)"),
        PossibleValue::new(PairingMode::Latest.name())
            .help("Naive baseline: nearest in time, newest calibration, epochs ignored (shows the damage)"),
    ])
    .try_map(|s| s.parse::<PairingMode>())
}
