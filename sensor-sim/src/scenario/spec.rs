//! The scenario file's schema: what a RON scenario may say, with its defaults.

use crate::rig::{Intrinsics, Mount, Rig};
use crate::urban::UrbanSpec;
use serde::{Deserialize, Serialize};
use shared::Role;

/// A scenario as written in its RON file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename = "Scenario", deny_unknown_fields)]
pub struct ScenarioSpec {
    /// Name, for logs and summaries.
    pub name: String,
    /// Seed for the world generator and the sensor noise.
    #[serde(default)]
    pub seed: u64,
    /// Default drive length, seconds (`drive --duration` overrides it).
    #[serde(default = "default_duration")]
    pub duration_s: f64,
    /// The world.
    pub world: WorldSpec,
    /// The ego vehicle's path.
    pub trajectory: TrajectorySpec,
    /// The camera.
    #[serde(default)]
    pub camera: CameraConfig,
    /// The lidar.
    #[serde(default)]
    pub lidar: LidarConfig,
    /// The initial rig (epoch 1).
    #[serde(default)]
    pub rig: RigSpec,
    /// A rig of several named cameras, each with its image, rate, lens and mount (instead
    /// of `camera` and the camera parts of `rig`). Empty: one camera named `camera`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cameras: Vec<NamedCamera>,
    /// Several named lidars (instead of `lidar` and `rig.lidar`). Empty: one lidar named
    /// `lidar`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lidars: Vec<NamedLidar>,
    /// Recalibration events, in time order.
    #[serde(default)]
    pub calibration: Vec<CalibrationEvent>,
    /// Faults for the supervisor to inject.
    #[serde(default)]
    pub faults: Vec<Fault>,
    /// The ego car's CAN bus, if the drive has one: a `vehicle` role puts the car's motion
    /// on it and fusion deskews sweeps with it. The DBC is checked by `drive` at the door.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vehicle: Option<VehicleSpec>,
}

/// The ego car's CAN bus.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VehicleSpec {
    /// The bus's database (DBC): relative to the scenario file's directory, else to the
    /// working directory.
    pub dbc: String,
    /// Bit rate, bit/s.
    #[serde(default = "default_bitrate")]
    pub bitrate_bps: u32,
}

fn default_bitrate() -> u32 {
    500_000
}

fn default_duration() -> f64 {
    60.0
}

/// World contents.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorldSpec {
    /// A procedural generator run from the seed, if any.
    pub generate: Option<Generator>,
    /// Extra boxes.
    pub boxes: Vec<BoxSpec>,
    /// Extra cylinders.
    pub cylinders: Vec<CylinderSpec>,
    /// Extra road strips (drawn on the ground).
    pub roads: Vec<RoadSpec>,
}

/// Procedural world generators.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum Generator {
    /// A loop road around city blocks with buildings, parked cars, poles and trees
    /// ([`crate::urban`]).
    Urban(UrbanSpec),
}

/// A box: a building, a vehicle, a wall.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoxSpec {
    /// Centre of the box's BOTTOM face, world metres (z = 0 stands on the ground).
    pub position: (f64, f64, f64),
    /// Length (along its yaw), width, height, metres.
    pub size: (f64, f64, f64),
    /// Heading of the box's length axis, degrees counter-clockwise from +x.
    #[serde(default)]
    pub yaw_deg: f64,
    /// Colour, RGB.
    #[serde(default = "grey")]
    pub colour: (u8, u8, u8),
    /// Instance id, 2..=65535 (0 is the sky, 1 the ground). Boxes may share an id.
    pub id: u16,
    /// Lidar reflectivity, 0..=1.
    #[serde(default = "half")]
    pub reflectivity: f32,
}

/// A vertical cylinder: a pole, a trunk, a bollard.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CylinderSpec {
    /// Centre of the bottom disc, world metres.
    pub position: (f64, f64, f64),
    /// Radius, metres.
    pub radius: f64,
    /// Height, metres.
    pub height: f64,
    /// Colour, RGB.
    #[serde(default = "grey")]
    pub colour: (u8, u8, u8),
    /// Instance id, 2..=65535.
    pub id: u16,
    /// Lidar reflectivity, 0..=1.
    #[serde(default = "half")]
    pub reflectivity: f32,
}

fn grey() -> (u8, u8, u8) {
    (150, 150, 150)
}

fn half() -> f32 {
    0.5
}

/// A road strip painted on the ground.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoadSpec {
    /// Start of the centre line.
    pub from: (f64, f64),
    /// End of the centre line.
    pub to: (f64, f64),
    /// Carriageway width, metres.
    pub width_m: f64,
    /// Sidewalk on each side, metres.
    #[serde(default)]
    pub sidewalk_m: f64,
}

/// The ego vehicle's path: a closed loop driven at constant speed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum TrajectorySpec {
    /// The generated loop road's right-hand lane, counter-clockwise (needs `generate: Urban`).
    Road {
        /// Speed, m/s.
        speed_mps: f64,
        /// Lane centre, metres to the right of the road's centre line.
        #[serde(default = "lane_offset")]
        lane_offset_m: f64,
    },
    /// A loop through explicit waypoints (x, y), closed back to the first one.
    Waypoints {
        /// At least three points.
        points: Vec<(f64, f64)>,
        /// Speed, m/s.
        speed_mps: f64,
        /// Corner rounding radius, metres.
        #[serde(default = "corner_radius")]
        corner_radius_m: f64,
    },
}

fn lane_offset() -> f64 {
    1.75
}

pub(super) fn corner_radius() -> f64 {
    8.0
}

/// Camera image size and frame rate.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CameraConfig {
    /// Width, pixels.
    pub width: u32,
    /// Height, pixels.
    pub height: u32,
    /// Frames per second.
    pub rate_hz: f64,
}

impl Default for CameraConfig {
    fn default() -> Self {
        Self { width: 1280, height: 720, rate_hz: 30.0 }
    }
}

/// A spinning lidar.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LidarConfig {
    /// Lasers (rings).
    pub beams: u32,
    /// Firings per revolution.
    pub azimuth_steps: u32,
    /// Elevation of the lowest and the highest beam, degrees (beams are spaced evenly).
    pub vertical_fov_deg: (f64, f64),
    /// Returns beyond this are dropped, metres.
    pub max_range_m: f64,
    /// Sweeps per second.
    pub rate_hz: f64,
    /// Standard deviation of the Gaussian range noise, metres (0: none).
    pub range_noise_m: f64,
    /// Each firing is taken at its own time while the car moves (firing i of a sweep
    /// captured at t at `t + i/azimuth_steps/rate_hz`), so a sweep is skewed as a real
    /// spinning lidar's is; off, the whole sweep is taken at t.
    pub scanning: bool,
}

impl Default for LidarConfig {
    fn default() -> Self {
        Self {
            beams: 64,
            azimuth_steps: 1024,
            vertical_fov_deg: (-20.0, 10.0),
            max_range_m: 120.0,
            rate_hz: 10.0,
            range_noise_m: 0.01,
            scanning: false,
        }
    }
}

/// The initial rig. Omitted parts take the default rig's values ([`Rig::default_for`]).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RigSpec {
    /// Camera lens.
    pub intrinsics: Option<Intrinsics>,
    /// Camera body mount.
    pub camera: Option<Mount>,
    /// Lidar mount.
    pub lidar: Option<Mount>,
}

/// One camera of a rig of several.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedCamera {
    /// Its name (`calib::SensorName`: 1 to 32 of `a-z 0-9 _ -`).
    pub name: String,
    /// Width, pixels.
    #[serde(default = "default_width")]
    pub width: u32,
    /// Height, pixels.
    #[serde(default = "default_height")]
    pub height: u32,
    /// Frames per second.
    #[serde(default = "default_camera_rate")]
    pub rate_hz: f64,
    /// Horizontal field of view, degrees: the focal length that shows it (the default
    /// lens's distortion, principal point at the centre). Not with `intrinsics`.
    #[serde(default)]
    pub hfov_deg: Option<f64>,
    /// The lens; without it (and without `hfov_deg`), the default lens for the image size.
    #[serde(default)]
    pub intrinsics: Option<Intrinsics>,
    /// Where its body sits on the vehicle.
    pub mount: Mount,
}

fn default_width() -> u32 {
    CameraConfig::default().width
}

fn default_height() -> u32 {
    CameraConfig::default().height
}

fn default_camera_rate() -> f64 {
    CameraConfig::default().rate_hz
}

impl NamedCamera {
    /// Its image size and rate.
    #[must_use]
    pub fn config(&self) -> CameraConfig {
        CameraConfig { width: self.width, height: self.height, rate_hz: self.rate_hz }
    }
}

/// One lidar of a rig of several.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedLidar {
    /// Its name.
    pub name: String,
    /// Its beams, rate, range.
    #[serde(default)]
    pub config: LidarConfig,
    /// Where it sits on the vehicle.
    pub mount: Mount,
}

/// A recalibration: the rig changes at `at_s`, and a new epoch starts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalibrationEvent {
    /// When the sensor is physically moved, seconds from the start (> 0).
    pub at_s: f64,
    /// What changes, applied in order.
    pub changes: Vec<RigChange>,
}

/// One change of the rig.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum RigChange {
    /// New camera body mount.
    CameraMount(Mount),
    /// New lidar mount.
    LidarMount(Mount),
    /// New lens.
    Intrinsics(Intrinsics),
    /// Add to the camera's roll, degrees.
    CameraRollDeg(f64),
    /// Add to the camera's pitch, degrees (positive: nose down).
    CameraPitchDeg(f64),
    /// Add to the camera's yaw, degrees (positive: left).
    CameraYawDeg(f64),
    /// Move the camera by (dx, dy, dz) metres in the vehicle frame: `CameraOffsetM(dx, dy, dz)`.
    CameraOffsetM(f64, f64, f64),
    /// Add to the lidar's roll, degrees.
    LidarRollDeg(f64),
    /// Add to the lidar's pitch, degrees.
    LidarPitchDeg(f64),
    /// Add to the lidar's yaw, degrees.
    LidarYawDeg(f64),
    /// Move the lidar by (dx, dy, dz) metres in the vehicle frame: `LidarOffsetM(dx, dy, dz)`.
    LidarOffsetM(f64, f64, f64),
    /// Multiply fx and fy.
    FocalScale(f64),
    /// Move the principal point by (dx, dy) pixels: `PrincipalPointShift(dx, dy)`.
    PrincipalPointShift(f64, f64),
    /// New mount of the sensor (camera or lidar) named so: `Remount("left", (xyz: ..))`.
    Remount(String, Mount),
    /// Add to the named sensor's roll, degrees: `SensorRollDeg("left", 1.0)`.
    SensorRollDeg(String, f64),
    /// Add to the named sensor's pitch, degrees.
    SensorPitchDeg(String, f64),
    /// Add to the named sensor's yaw, degrees.
    SensorYawDeg(String, f64),
    /// Move the named sensor by (dx, dy, dz) metres: `SensorOffsetM("left", dx, dy, dz)`.
    SensorOffsetM(String, f64, f64, f64),
}

fn add(m: &mut Mount, i: usize, v: f64) {
    match i {
        0 => m.rpy_deg.0 += v,
        1 => m.rpy_deg.1 += v,
        _ => m.rpy_deg.2 += v,
    }
}

fn offset(m: &mut Mount, d: (f64, f64, f64)) {
    m.xyz = (m.xyz.0 + d.0, m.xyz.1 + d.1, m.xyz.2 + d.2);
}

impl RigChange {
    /// The sensor a named change moves; `None` for a change of the primary camera or lidar.
    #[must_use]
    pub fn sensor(&self) -> Option<&str> {
        match self {
            Self::Remount(n, _)
            | Self::SensorRollDeg(n, _)
            | Self::SensorPitchDeg(n, _)
            | Self::SensorYawDeg(n, _)
            | Self::SensorOffsetM(n, ..) => Some(n),
            _ => None,
        }
    }

    /// Applies a named change to its sensor's mount (other changes leave it).
    pub(super) fn apply_to_mount(&self, m: &mut Mount) {
        match *self {
            Self::Remount(_, new) => *m = new,
            Self::SensorRollDeg(_, v) => add(m, 0, v),
            Self::SensorPitchDeg(_, v) => add(m, 1, v),
            Self::SensorYawDeg(_, v) => add(m, 2, v),
            Self::SensorOffsetM(_, x, y, z) => offset(m, (x, y, z)),
            _ => {}
        }
    }

    /// Applies a change of the primary camera or lidar to `rig` (a named change is
    /// [`RigChange::apply_to_mount`]'s).
    pub(super) fn apply(&self, rig: &mut Rig) {
        match *self {
            Self::CameraMount(m) => rig.camera = m,
            Self::LidarMount(m) => rig.lidar = m,
            Self::Intrinsics(k) => rig.intrinsics = k,
            Self::CameraRollDeg(v) => add(&mut rig.camera, 0, v),
            Self::CameraPitchDeg(v) => add(&mut rig.camera, 1, v),
            Self::CameraYawDeg(v) => add(&mut rig.camera, 2, v),
            Self::CameraOffsetM(x, y, z) => offset(&mut rig.camera, (x, y, z)),
            Self::LidarRollDeg(v) => add(&mut rig.lidar, 0, v),
            Self::LidarPitchDeg(v) => add(&mut rig.lidar, 1, v),
            Self::LidarYawDeg(v) => add(&mut rig.lidar, 2, v),
            Self::LidarOffsetM(x, y, z) => offset(&mut rig.lidar, (x, y, z)),
            Self::FocalScale(k) => {
                rig.intrinsics.fx *= k;
                rig.intrinsics.fy *= k;
            }
            Self::PrincipalPointShift(dx, dy) => {
                rig.intrinsics.cx += dx;
                rig.intrinsics.cy += dy;
            }
            Self::Remount(..)
            | Self::SensorRollDeg(..)
            | Self::SensorPitchDeg(..)
            | Self::SensorYawDeg(..)
            | Self::SensorOffsetM(..) => {}
        }
    }
}

/// A fault for the supervisor to inject. Parsed and validated here; acted on by `drive`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum Fault {
    /// SIGKILL the role's process at `at_s`; restart it if `restart`.
    Kill {
        /// Which process: one a drive runs (camera, lidar, fusion or calib).
        role: Role,
        /// When, seconds from the start.
        at_s: f64,
        /// Whether the supervisor restarts it.
        #[serde(default = "yes")]
        restart: bool,
    },
    /// The calibration service delays its announcement of `epoch` to `to` by `ms`.
    DelayCalib {
        /// Which epoch (≥ 1, and one the scenario has).
        epoch: u64,
        /// Which subscriber ([`Role::subscribes_to_calibration`]).
        to: Role,
        /// Delay, milliseconds (1..=60000).
        ms: u64,
    },
    /// The calibration service never sends `epoch` to `to` (the calibration table segment
    /// still holds it).
    DropCalib {
        /// Which epoch.
        epoch: u64,
        /// Which subscriber ([`Role::subscribes_to_calibration`]).
        to: Role,
    },
}

fn yes() -> bool {
    true
}
