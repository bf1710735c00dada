//! Scenario files: the world, the drive, the sensors, the rig, its recalibrations and the
//! faults to inject.
//!
//! A scenario is a RON file (see `configs/drives/*.ron` for commented examples):
//!
//! ```ron
//! Scenario(
//!     name: "default",
//!     seed: 7,
//!     duration_s: 60.0,
//!     world: (generate: Urban(blocks_x: 3, blocks_y: 2, block_m: 60.0)),
//!     trajectory: Road(speed_mps: 10.0),
//!     camera: (width: 1280, height: 720, rate_hz: 30.0),
//!     lidar: (beams: 64, azimuth_steps: 1024, rate_hz: 10.0),
//!     calibration: [
//!         (at_s: 1.5, changes: [LidarYawDeg(2.0)]),
//!     ],
//!     faults: [Kill(role: Camera, at_s: 2.0, restart: true)],
//! )
//! ```
//!
//! Every field but `name`, `world` and `trajectory` has a default. `Option` fields may be
//! written without `Some(..)`, and an enum variant wrapping a struct may be written with the
//! struct's fields directly (`Urban(blocks_x: 3)`): the parser enables ron's `implicit_some`
//! and `unwrap_variant_newtypes` extensions.
//!
//! **Calibration events.** Each event `(at_s, changes)` starts a new epoch: epoch 1 is the
//! initial `rig`, valid from t = 0; epoch k+1 is valid from the k-th event's `at_s`, and is
//! the previous epoch's rig with the event's changes applied in order. A change is either a
//! new absolute value (`CameraMount(..)`, `LidarMount(..)`, `Intrinsics(..)`) or a delta
//! (`CameraRollDeg`, `CameraPitchDeg`, `CameraYawDeg`, `CameraOffsetM(dx, dy, dz)`, the same
//! for `Lidar…`, `FocalScale(k)` multiplying fx and fy, `PrincipalPointShift(dx, dy)`).
//! Angle deltas add to the mount's roll/pitch/yaw in degrees. The simulated sensor is
//! physically moved at the event time, so the epoch in force at a capture time is the truth.
//!
//! **Times.** Scenario time is nanoseconds since the start of the drive ([`TimestampNs`]);
//! the producers add their clock's origin.

use crate::rig::{Intrinsics, Mount, Rig};
use crate::trajectory::{Pose2, Trajectory};
use crate::urban::{self, Ids, UrbanSpec};
use crate::world::{Prim, Road, Shape, World, FIRST_OBJECT_ID};
use calib::CalibrationSet;
use nalgebra::Isometry3;
use serde::{Deserialize, Serialize};
use shared::{CalibEpoch, TimestampNs};
use std::fmt;
use std::path::Path;
use std::sync::Arc;

/// The built-in default scenario, compiled in.
pub const DEFAULT_RON: &str = include_str!("../../configs/drives/default.ron");

// ---------------------------------------------------------------------------------------
// The file format.
// ---------------------------------------------------------------------------------------

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
    /// Recalibration events, in time order.
    #[serde(default)]
    pub calibration: Vec<CalibrationEvent>,
    /// Faults for the supervisor to inject.
    #[serde(default)]
    pub faults: Vec<Fault>,
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

fn corner_radius() -> f64 {
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
}

impl RigChange {
    fn apply(&self, rig: &mut Rig) {
        let add = |m: &mut Mount, i: usize, v: f64| match i {
            0 => m.rpy_deg.0 += v,
            1 => m.rpy_deg.1 += v,
            _ => m.rpy_deg.2 += v,
        };
        let offset = |m: &mut Mount, d: (f64, f64, f64)| {
            m.xyz = (m.xyz.0 + d.0, m.xyz.1 + d.1, m.xyz.2 + d.2);
        };
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
        }
    }
}

/// A pipeline role a fault targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    /// The camera producer.
    Camera,
    /// The lidar producer.
    Lidar,
    /// The fusion process.
    Fusion,
    /// The calibration service.
    Calib,
}

impl Role {
    /// Lower-case name, as used on the command line and in the run directory.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Camera => "camera",
            Self::Lidar => "lidar",
            Self::Fusion => "fusion",
            Self::Calib => "calib",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A fault for the supervisor to inject. Parsed and validated here; acted on by `drive`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum Fault {
    /// SIGKILL the role's process at `at_s`; restart it if `restart`.
    Kill {
        /// Which process.
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
        /// Which subscriber (camera, lidar or fusion).
        to: Role,
        /// Delay, milliseconds (1..=60000).
        ms: u64,
    },
    /// The calibration service never sends `epoch` to `to` (the calibration table segment
    /// still holds it).
    DropCalib {
        /// Which epoch.
        epoch: u64,
        /// Which subscriber (camera, lidar or fusion).
        to: Role,
    },
}

fn yes() -> bool {
    true
}

// ---------------------------------------------------------------------------------------
// Errors.
// ---------------------------------------------------------------------------------------

/// Why a scenario could not be loaded. Displays as one line naming the file, the field and,
/// for syntax errors, the line:column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScenarioError {
    /// The file could not be read.
    Io {
        /// The file.
        file: String,
        /// The OS error.
        message: String,
    },
    /// RON syntax or type error.
    Syntax {
        /// The file.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        col: usize,
        /// The field being read at the error, as a path (`lidar.beams`, `faults[1].epoch`).
        field: Option<String>,
        /// ron's message.
        message: String,
    },
    /// Well-formed, but a value is out of range or inconsistent.
    Invalid {
        /// The file.
        file: String,
        /// The field, as a path.
        field: String,
        /// What is wrong.
        message: String,
    },
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io { file, message } => write!(f, "{file}: cannot read scenario: {message}"),
            Self::Syntax { file, line, col, field: Some(field), message } => {
                write!(f, "{file}:{line}:{col}: field `{field}`: {message}")
            }
            Self::Syntax { file, line, col, field: None, message } => {
                write!(f, "{file}:{line}:{col}: {message}")
            }
            Self::Invalid { file, field, message } => write!(f, "{file}: field `{field}`: {message}"),
        }
    }
}

impl std::error::Error for ScenarioError {}

/// The path of fields enclosing byte `offset` of a RON text: `world.boxes[2].size`.
fn field_path_at(text: &str, offset: usize) -> Option<String> {
    #[derive(Debug)]
    struct Frame {
        list: bool,
        field: Option<String>,
        index: usize,
    }
    let bytes = text.as_bytes();
    let end = offset.min(bytes.len());
    let mut stack: Vec<Frame> = Vec::new();
    let mut i = 0;
    let mut last_ident: Option<(usize, usize)> = None;
    while i < end {
        let c = bytes[i];
        match c {
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < end && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < end && !(bytes[i] == b'*' && bytes[i + 1] == b'/') {
                    i += 1;
                }
                i += 2;
                continue;
            }
            b'"' => {
                i += 1;
                while i < end && bytes[i] != b'"' {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                last_ident = None;
            }
            b'(' | b'{' => stack.push(Frame { list: false, field: None, index: 0 }),
            b'[' => stack.push(Frame { list: true, field: None, index: 0 }),
            b')' | b'}' | b']' => {
                stack.pop();
            }
            b',' => {
                if let Some(f) = stack.last_mut() {
                    if f.list {
                        f.index += 1;
                    }
                }
            }
            b':' => {
                if let (Some((a, b)), Some(f)) = (last_ident, stack.last_mut()) {
                    if !f.list {
                        f.field = Some(text[a..b].to_string());
                    }
                }
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let a = i;
                while i < end && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                last_ident = Some((a, i));
                continue;
            }
            c if c.is_ascii_whitespace() => {
                i += 1;
                continue;
            }
            _ => {}
        }
        if c != b':' && !(c.is_ascii_alphanumeric() || c == b'_') {
            last_ident = None;
        }
        i += 1;
    }
    let mut path = String::new();
    for f in &stack {
        if f.list {
            path.push_str(&format!("[{}]", f.index));
        } else if let Some(name) = &f.field {
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(name);
        }
    }
    (!path.is_empty()).then_some(path)
}

fn byte_offset(text: &str, line: usize, col: usize) -> usize {
    let mut off = 0;
    for (n, l) in text.split_inclusive('\n').enumerate() {
        if n + 1 == line {
            return off + l.char_indices().nth(col.saturating_sub(1)).map_or(l.len(), |(i, _)| i);
        }
        off += l.len();
    }
    text.len()
}

// ---------------------------------------------------------------------------------------
// The validated scenario.
// ---------------------------------------------------------------------------------------

/// The rig of one calibration epoch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpochRig {
    /// The epoch (1, 2, ...).
    pub epoch: CalibEpoch,
    /// When the sensors took this rig (scenario time).
    pub valid_from: TimestampNs,
    /// The rig.
    pub rig: Rig,
}

/// A loaded, validated scenario with its world built.
#[derive(Clone, Debug)]
pub struct Scenario {
    spec: ScenarioSpec,
    source: String,
    world: Arc<World>,
    trajectory: Arc<Trajectory>,
    epochs: Arc<[EpochRig]>,
}

fn secs_to_ns(s: f64) -> TimestampNs {
    TimestampNs((s * 1e9).round() as u64)
}

fn ns_to_secs(t: TimestampNs) -> f64 {
    t.0 as f64 * 1e-9
}

type Check = Result<(), (String, String)>;

fn bad<T>(field: impl Into<String>, message: impl Into<String>) -> Result<T, (String, String)> {
    Err((field.into(), message.into()))
}

fn check_finite(field: &str, v: f64) -> Check {
    if v.is_finite() {
        Ok(())
    } else {
        bad(field, format!("must be a finite number (got {v})"))
    }
}

fn check_range(field: &str, v: f64, lo: f64, hi: f64) -> Check {
    if v.is_finite() && v >= lo && v <= hi {
        Ok(())
    } else {
        bad(field, format!("must be in {lo}..={hi} (got {v})"))
    }
}

fn check_positive(field: &str, v: f64) -> Check {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        bad(field, format!("must be a positive finite number (got {v})"))
    }
}

fn check_mount(field: &str, m: &Mount) -> Check {
    for (name, v) in [("x", m.xyz.0), ("y", m.xyz.1), ("z", m.xyz.2)] {
        check_range(&format!("{field}.xyz.{name}"), v, -100.0, 100.0)?;
    }
    for (name, v) in [("roll", m.rpy_deg.0), ("pitch", m.rpy_deg.1), ("yaw", m.rpy_deg.2)] {
        check_range(&format!("{field}.rpy_deg.{name}"), v, -360.0, 360.0)?;
    }
    Ok(())
}

/// Checks a lens for an image of `w × h`: positive focal lengths, principal point inside
/// the image, and a distortion that stays invertible (monotonic) out to the image corners
/// and edge midpoints.
fn check_intrinsics(field: &str, k: &Intrinsics, w: u32, h: u32) -> Check {
    check_positive(&format!("{field}.fx"), k.fx)?;
    check_positive(&format!("{field}.fy"), k.fy)?;
    check_range(&format!("{field}.cx"), k.cx, 0.0, f64::from(w))?;
    check_range(&format!("{field}.cy"), k.cy, 0.0, f64::from(h))?;
    for (name, v) in [("k1", k.k1), ("k2", k.k2), ("p1", k.p1), ("p2", k.p2), ("k3", k.k3)] {
        check_range(&format!("{field}.{name}"), v, -10.0, 10.0)?;
    }
    let (wf, hf) = (f64::from(w), f64::from(h));
    let corners = [
        (0.0, 0.0),
        (wf, 0.0),
        (0.0, hf),
        (wf, hf),
        (wf / 2.0, 0.0),
        (wf / 2.0, hf),
        (0.0, hf / 2.0),
        (wf, hf / 2.0),
    ];
    let dist = k.distortion();
    for (u, v) in corners {
        let xd = (u - k.cx) / k.fx;
        let yd = (v - k.cy) / k.fy;
        match crate::camera::undistort(&dist, xd, yd) {
            Some((x, y)) => {
                // Monotonic along the ray through the corner: a slightly bigger undistorted
                // radius must give a bigger distorted radius.
                let (a, b) = dist.apply(x, y);
                let (c, d) = dist.apply(x * 1.01, y * 1.01);
                if c.hypot(d) <= a.hypot(b) {
                    return bad(field, "distortion folds over inside the image");
                }
            }
            None => return bad(field, "distortion cannot be inverted out to the image corners"),
        }
    }
    Ok(())
}

fn check_colour_id(field: &str, id: u16, refl: f32) -> Check {
    if id < FIRST_OBJECT_ID {
        return bad(
            format!("{field}.id"),
            format!("must be at least {FIRST_OBJECT_ID} (0 is the sky, 1 the ground)"),
        );
    }
    if !(refl.is_finite() && (0.0..=1.0).contains(&refl)) {
        return bad(format!("{field}.reflectivity"), format!("must be in 0..=1 (got {refl})"));
    }
    Ok(())
}

impl Scenario {
    /// Reads and validates a scenario file.
    ///
    /// # Errors
    /// [`ScenarioError`], one line naming the file and the field (and line:column for syntax).
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ScenarioError::Io { file: file.clone(), message: e.to_string() })?;
        Self::from_ron_str(&text, &file)
    }

    /// The built-in default scenario (`configs/drives/default.ron`, compiled in).
    ///
    /// # Panics
    /// Never in a tested build: a unit test parses the embedded file.
    #[must_use]
    pub fn builtin_default() -> Self {
        Self::from_ron_str(DEFAULT_RON, "<builtin>/configs/drives/default.ron")
            .unwrap_or_else(|e| panic!("the built-in default scenario is broken: {e}"))
    }

    /// Parses and validates RON text; `file` names it in errors.
    ///
    /// # Errors
    /// [`ScenarioError::Syntax`] or [`ScenarioError::Invalid`].
    pub fn from_ron_str(text: &str, file: &str) -> Result<Self, ScenarioError> {
        let options = ron::Options::default()
            .with_default_extension(ron::extensions::Extensions::IMPLICIT_SOME)
            .with_default_extension(ron::extensions::Extensions::UNWRAP_VARIANT_NEWTYPES);
        let spec: ScenarioSpec = options.from_str(text).map_err(|e| {
            let offset = byte_offset(text, e.position.line, e.position.col);
            let mut field = field_path_at(text, offset);
            if let ron::Error::MissingStructField { field: missing, .. } = &e.code {
                field = Some(match field {
                    Some(p) => format!("{p}.{missing}"),
                    None => (*missing).to_string(),
                });
            }
            ScenarioError::Syntax {
                file: file.to_string(),
                line: e.position.line,
                col: e.position.col,
                field,
                message: e.code.to_string(),
            }
        })?;
        Self::from_spec(spec, file)
    }

    /// Validates a spec and builds its world.
    ///
    /// # Errors
    /// [`ScenarioError::Invalid`] naming the field.
    pub fn from_spec(spec: ScenarioSpec, file: &str) -> Result<Self, ScenarioError> {
        Self::build(spec, file).map_err(|(field, message)| ScenarioError::Invalid {
            file: file.to_string(),
            field,
            message,
        })
    }

    fn build(spec: ScenarioSpec, file: &str) -> Result<Self, (String, String)> {
        if spec.name.trim().is_empty() {
            return bad("name", "must not be empty");
        }
        check_range("duration_s", spec.duration_s, 1e-3, 1e6)?;

        let cam = spec.camera;
        if !(16..=shared::frames::MAX_IMAGE_SIDE).contains(&cam.width) {
            return bad(
                "camera.width",
                format!("must be 16..={} (got {})", shared::frames::MAX_IMAGE_SIDE, cam.width),
            );
        }
        if !(16..=shared::frames::MAX_IMAGE_SIDE).contains(&cam.height) {
            return bad(
                "camera.height",
                format!("must be 16..={} (got {})", shared::frames::MAX_IMAGE_SIDE, cam.height),
            );
        }
        check_range("camera.rate_hz", cam.rate_hz, 0.1, 1000.0)?;

        let l = spec.lidar;
        if !(1..=1024).contains(&l.beams) {
            return bad("lidar.beams", format!("must be 1..=1024 (got {})", l.beams));
        }
        if !(1..=1 << 16).contains(&l.azimuth_steps) {
            return bad("lidar.azimuth_steps", format!("must be 1..=65536 (got {})", l.azimuth_steps));
        }
        let (lo, hi) = l.vertical_fov_deg;
        check_range("lidar.vertical_fov_deg", lo, -90.0, 90.0)?;
        check_range("lidar.vertical_fov_deg", hi, -90.0, 90.0)?;
        if hi < lo || (hi == lo && l.beams > 1) {
            return bad(
                "lidar.vertical_fov_deg",
                format!("must be (lowest, highest) with lowest < highest (got ({lo}, {hi}))"),
            );
        }
        check_range("lidar.max_range_m", l.max_range_m, 0.1, 2000.0)?;
        check_range("lidar.rate_hz", l.rate_hz, 0.1, 100.0)?;
        check_range("lidar.range_noise_m", l.range_noise_m, 0.0, 10.0)?;

        // Rig and epochs.
        let def = Rig::default_for(cam.width, cam.height);
        let rig = Rig {
            intrinsics: spec.rig.intrinsics.unwrap_or(def.intrinsics),
            camera: spec.rig.camera.unwrap_or(def.camera),
            lidar: spec.rig.lidar.unwrap_or(def.lidar),
        };
        check_intrinsics("rig.intrinsics", &rig.intrinsics, cam.width, cam.height)?;
        check_mount("rig.camera", &rig.camera)?;
        check_mount("rig.lidar", &rig.lidar)?;
        let mut epochs = vec![EpochRig { epoch: CalibEpoch(1), valid_from: TimestampNs(0), rig }];
        let mut current = rig;
        let mut last_at = 0.0;
        for (i, ev) in spec.calibration.iter().enumerate() {
            let f = format!("calibration[{i}]");
            check_range(&format!("{f}.at_s"), ev.at_s, 1e-6, 1e6)?;
            if ev.at_s <= last_at {
                return bad(
                    format!("{f}.at_s"),
                    format!("must be after the previous event ({last_at} s) and after 0 (got {})", ev.at_s),
                );
            }
            if secs_to_ns(ev.at_s) <= secs_to_ns(last_at) {
                return bad(format!("{f}.at_s"), "must be at least 1 ns after the previous event");
            }
            last_at = ev.at_s;
            if ev.changes.is_empty() {
                return bad(format!("{f}.changes"), "must list at least one change");
            }
            for (j, ch) in ev.changes.iter().enumerate() {
                let fc = format!("{f}.changes[{j}]");
                match *ch {
                    RigChange::FocalScale(k) => check_range(&fc, k, 0.1, 10.0)?,
                    RigChange::CameraRollDeg(v)
                    | RigChange::CameraPitchDeg(v)
                    | RigChange::CameraYawDeg(v)
                    | RigChange::LidarRollDeg(v)
                    | RigChange::LidarPitchDeg(v)
                    | RigChange::LidarYawDeg(v) => check_range(&fc, v, -180.0, 180.0)?,
                    RigChange::CameraOffsetM(x, y, z) | RigChange::LidarOffsetM(x, y, z) => {
                        for v in [x, y, z] {
                            check_range(&fc, v, -10.0, 10.0)?;
                        }
                    }
                    RigChange::PrincipalPointShift(dx, dy) => {
                        check_finite(&fc, dx)?;
                        check_finite(&fc, dy)?;
                    }
                    RigChange::CameraMount(_) | RigChange::LidarMount(_) | RigChange::Intrinsics(_) => {}
                }
                ch.apply(&mut current);
                check_intrinsics(&fc, &current.intrinsics, cam.width, cam.height)?;
                check_mount(&fc, &current.camera)?;
                check_mount(&fc, &current.lidar)?;
            }
            epochs.push(EpochRig {
                epoch: CalibEpoch(i as u64 + 2),
                valid_from: secs_to_ns(ev.at_s),
                rig: current,
            });
        }

        for (i, fault) in spec.faults.iter().enumerate() {
            let f = format!("faults[{i}]");
            match *fault {
                Fault::Kill { at_s, .. } => check_range(&format!("{f}.at_s"), at_s, 0.0, 1e6)?,
                Fault::DelayCalib { epoch, to, ms } => {
                    check_epoch(&f, epoch, epochs.len())?;
                    check_subscriber(&f, to)?;
                    if !(1..=60_000).contains(&ms) {
                        return bad(format!("{f}.ms"), format!("must be 1..=60000 (got {ms})"));
                    }
                }
                Fault::DropCalib { epoch, to } => {
                    check_epoch(&f, epoch, epochs.len())?;
                    check_subscriber(&f, to)?;
                }
            }
        }

        // World.
        let mut prims = Vec::new();
        let mut roads = Vec::new();
        for (i, b) in spec.world.boxes.iter().enumerate() {
            let f = format!("world.boxes[{i}]");
            for v in [b.position.0, b.position.1] {
                check_range(&format!("{f}.position"), v, -1e5, 1e5)?;
            }
            check_range(&format!("{f}.position"), b.position.2, 0.0, 1e4)
                .map_err(|(f, m)| (f, format!("{m}: z is the bottom and must not be below the ground")))?;
            for v in [b.size.0, b.size.1, b.size.2] {
                check_range(&format!("{f}.size"), v, 1e-3, 1e4)?;
            }
            check_finite(&format!("{f}.yaw_deg"), b.yaw_deg)?;
            check_colour_id(&f, b.id, b.reflectivity)?;
            prims.push(Prim {
                shape: Shape::Box {
                    centre: [b.position.0, b.position.1, b.position.2 + b.size.2 / 2.0],
                    half: [b.size.0 / 2.0, b.size.1 / 2.0, b.size.2 / 2.0],
                    yaw: b.yaw_deg.to_radians(),
                },
                instance: b.id,
                colour: [b.colour.0, b.colour.1, b.colour.2],
                reflectivity: b.reflectivity,
            });
        }
        for (i, c) in spec.world.cylinders.iter().enumerate() {
            let f = format!("world.cylinders[{i}]");
            for v in [c.position.0, c.position.1] {
                check_range(&format!("{f}.position"), v, -1e5, 1e5)?;
            }
            check_range(&format!("{f}.position"), c.position.2, 0.0, 1e4)?;
            check_range(&format!("{f}.radius"), c.radius, 1e-3, 1e3)?;
            check_range(&format!("{f}.height"), c.height, 1e-3, 1e4)?;
            check_colour_id(&f, c.id, c.reflectivity)?;
            prims.push(Prim {
                shape: Shape::Cylinder {
                    x: c.position.0,
                    y: c.position.1,
                    z0: c.position.2,
                    z1: c.position.2 + c.height,
                    r: c.radius,
                },
                instance: c.id,
                colour: [c.colour.0, c.colour.1, c.colour.2],
                reflectivity: c.reflectivity,
            });
        }
        for (i, r) in spec.world.roads.iter().enumerate() {
            let f = format!("world.roads[{i}]");
            for v in [r.from.0, r.from.1, r.to.0, r.to.1] {
                check_range(&format!("{f}.from"), v, -1e5, 1e5)?;
            }
            if (r.to.0 - r.from.0).hypot(r.to.1 - r.from.1) < 0.1 {
                return bad(format!("{f}.to"), "must be at least 0.1 m from `from`");
            }
            check_range(&format!("{f}.width_m"), r.width_m, 0.1, 100.0)?;
            check_range(&format!("{f}.sidewalk_m"), r.sidewalk_m, 0.0, 100.0)?;
            roads.push(Road {
                from: [r.from.0, r.from.1],
                to: [r.to.0, r.to.1],
                width: r.width_m,
                sidewalk: r.sidewalk_m,
            });
        }
        let first_free =
            prims.iter().map(|p| p.instance).max().map_or(FIRST_OBJECT_ID, |m| m.saturating_add(1));
        let mut ids = Ids::new(first_free.max(FIRST_OBJECT_ID));
        let urban = match &spec.world.generate {
            Some(Generator::Urban(u)) => {
                u.validate().map_err(|(f, m)| (format!("world.generate.{f}"), m))?;
                urban::generate(u, spec.seed, &mut ids, &mut prims, &mut roads);
                if ids.overflowed() {
                    return bad("world.generate", "the world needs more than 65535 instance ids");
                }
                Some(u)
            }
            None => None,
        };
        if prims.len() > 2_000_000 {
            return bad("world", "more than 2 000 000 primitives");
        }

        // Trajectory.
        let trajectory = match &spec.trajectory {
            TrajectorySpec::Road { speed_mps, lane_offset_m } => {
                check_range("trajectory.speed_mps", *speed_mps, 0.0, 100.0)?;
                let Some(u) = urban else {
                    return bad(
                        "trajectory",
                        "`Road` follows the generated loop road: the world needs `generate: Urban(..)`",
                    );
                };
                check_range(
                    "trajectory.lane_offset_m",
                    *lane_offset_m,
                    -u.road_width_m / 2.0,
                    u.road_width_m / 2.0,
                )?;
                Trajectory::new(&u.lane_waypoints(*lane_offset_m), *speed_mps, corner_radius())
            }
            TrajectorySpec::Waypoints { points, speed_mps, corner_radius_m } => {
                check_range("trajectory.speed_mps", *speed_mps, 0.0, 100.0)?;
                check_range("trajectory.corner_radius_m", *corner_radius_m, 0.0, 1e4)?;
                if points.len() < 3 {
                    return bad(
                        "trajectory.points",
                        format!("a loop needs at least 3 points (got {})", points.len()),
                    );
                }
                for (i, p) in points.iter().enumerate() {
                    check_range(&format!("trajectory.points[{i}]"), p.0, -1e5, 1e5)?;
                    check_range(&format!("trajectory.points[{i}]"), p.1, -1e5, 1e5)?;
                    let q = points[(i + 1) % points.len()];
                    if (q.0 - p.0).hypot(q.1 - p.1) < 0.01 {
                        return bad(format!("trajectory.points[{i}]"), "consecutive points must be distinct");
                    }
                }
                Trajectory::new(points, *speed_mps, *corner_radius_m)
            }
        };

        let world = World::new(prims, roads);
        Ok(Self {
            spec,
            source: file.to_string(),
            world: Arc::new(world),
            trajectory: Arc::new(trajectory),
            epochs: epochs.into(),
        })
    }

    /// The parsed file.
    #[must_use]
    pub fn spec(&self) -> &ScenarioSpec {
        &self.spec
    }

    /// Where it was loaded from.
    #[must_use]
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The scenario's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// The seed.
    #[must_use]
    pub fn seed(&self) -> u64 {
        self.spec.seed
    }

    /// Default drive length, seconds.
    #[must_use]
    pub fn duration_s(&self) -> f64 {
        self.spec.duration_s
    }

    /// The camera's size and rate.
    #[must_use]
    pub fn camera(&self) -> &CameraConfig {
        &self.spec.camera
    }

    /// The lidar's configuration.
    #[must_use]
    pub fn lidar(&self) -> &LidarConfig {
        &self.spec.lidar
    }

    /// The faults to inject.
    #[must_use]
    pub fn faults(&self) -> &[Fault] {
        &self.spec.faults
    }

    /// The built world (shared by the renderers).
    #[must_use]
    pub fn world(&self) -> &Arc<World> {
        &self.world
    }

    /// The ego path.
    #[must_use]
    pub fn trajectory(&self) -> &Arc<Trajectory> {
        &self.trajectory
    }

    /// Every epoch's rig, in order (epoch 1 first).
    #[must_use]
    pub fn epochs(&self) -> &Arc<[EpochRig]> {
        &self.epochs
    }

    /// The calibration epochs the calibration service announces: epoch 1 valid from 0, then
    /// epoch k+1 valid from the k-th calibration event. `valid_from` is scenario time: add the
    /// run's clock origin ([`Scenario::calibration_schedule_from`]).
    #[must_use]
    pub fn calibration_schedule(&self) -> Vec<CalibrationSet> {
        self.calibration_schedule_from(TimestampNs(0))
    }

    /// [`Scenario::calibration_schedule`] with every `valid_from` shifted by `origin`.
    #[must_use]
    pub fn calibration_schedule_from(&self, origin: TimestampNs) -> Vec<CalibrationSet> {
        let cam = self.spec.camera;
        self.epochs
            .iter()
            .map(|e| {
                e.rig.to_calibration_set(
                    e.epoch,
                    TimestampNs(origin.0 + e.valid_from.0),
                    cam.width,
                    cam.height,
                )
            })
            .collect()
    }

    /// The epoch in force at scenario time `t`: the newest with `valid_from ≤ t`.
    #[must_use]
    pub fn truth_epoch_at(&self, t: TimestampNs) -> CalibEpoch {
        self.epoch_rig_at(t).epoch
    }

    /// The epoch and rig in force at scenario time `t`.
    #[must_use]
    pub fn epoch_rig_at(&self, t: TimestampNs) -> &EpochRig {
        epoch_rig_at(&self.epochs, t)
    }

    /// The rig in force at scenario time `t`.
    #[must_use]
    pub fn rig_at(&self, t: TimestampNs) -> &Rig {
        &self.epoch_rig_at(t).rig
    }

    /// The ego pose at scenario time `t`.
    #[must_use]
    pub fn ego_pose_at(&self, t: TimestampNs) -> Pose2 {
        self.trajectory.pose_at(ns_to_secs(t))
    }

    /// Vehicle → world at scenario time `t`.
    #[must_use]
    pub fn vehicle_to_world_at(&self, t: TimestampNs) -> Isometry3<f64> {
        self.ego_pose_at(t).to_isometry()
    }

    /// Bytes of every camera payload (header, rgb plane, label plane): the ring slot size.
    #[must_use]
    pub fn camera_payload_len(&self) -> usize {
        crate::camera::payload_header(self.spec.camera.width, self.spec.camera.height).payload_len()
    }

    /// Bytes of the largest lidar payload (every ray returning): the ring slot size.
    #[must_use]
    pub fn lidar_max_payload_len(&self) -> usize {
        self.spec.lidar.beams as usize
            * self.spec.lidar.azimuth_steps as usize
            * shared::frames::POINT_RECORD_SIZE
    }

    /// Capture time of camera frame `i` (scenario time).
    #[must_use]
    pub fn camera_frame_time(&self, i: u64) -> TimestampNs {
        frame_time(i, self.spec.camera.rate_hz)
    }

    /// Capture time of lidar sweep `i` (scenario time).
    #[must_use]
    pub fn lidar_frame_time(&self, i: u64) -> TimestampNs {
        frame_time(i, self.spec.lidar.rate_hz)
    }
}

/// Capture time of frame `i` at `rate_hz`, rounded to the nanosecond.
#[must_use]
pub fn frame_time(i: u64, rate_hz: f64) -> TimestampNs {
    TimestampNs((i as f64 * 1e9 / rate_hz).round() as u64)
}

/// The newest epoch in `epochs` (ordered, non-empty) with `valid_from ≤ t`.
#[must_use]
pub fn epoch_rig_at(epochs: &[EpochRig], t: TimestampNs) -> &EpochRig {
    let k = epochs.partition_point(|e| e.valid_from <= t);
    &epochs[k.saturating_sub(1)]
}

fn check_epoch(f: &str, epoch: u64, n: usize) -> Check {
    if epoch == 0 || epoch > n as u64 {
        return bad(
            format!("{f}.epoch"),
            format!("must name an epoch of this scenario, 1..={n} (got {epoch})"),
        );
    }
    Ok(())
}

fn check_subscriber(f: &str, to: Role) -> Check {
    if to == Role::Calib {
        return bad(
            format!("{f}.to"),
            "must be Camera, Lidar or Fusion (the calibration service's subscribers)",
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_default_parses() {
        let s = Scenario::builtin_default();
        assert_eq!(s.epochs().len(), 1);
        assert_eq!(s.camera().width, 1280);
        assert_eq!(s.rig_at(TimestampNs(0)), &Rig::default_for(1280, 720));
    }

    #[test]
    fn field_paths() {
        let text = "Scenario(\n  name: \"x\",\n  world: (boxes: [(position: (1, 2, 0)), (size: \"no\"";
        assert_eq!(field_path_at(text, text.len()).as_deref(), Some("world.boxes[1].size"));
        let text = "Scenario(lidar: (beams: 3, rate_hz: ";
        assert_eq!(field_path_at(text, text.len()).as_deref(), Some("lidar.rate_hz"));
        let text = "Scenario(faults: [Kill(role: Camera), DropCalib(epoch: // c\n 3";
        assert_eq!(field_path_at(text, text.len()).as_deref(), Some("faults[1].epoch"));
    }
}
