//! Calibration files: one rig (one epoch) per RON file, and `epochfuse calib check`.
//!
//! # Format
//!
//! ```ron
//! Rig(
//!     epoch: 1,              // optional, default 1
//!     valid_from_ns: 0,      // optional, default 0: pipeline time from which frames carry it
//!     camera: (
//!         width: 1280, height: 720,                 // pixels, > 0
//!         fx: 1000.0, fy: 1000.0,                   // focal lengths, pixels, > 0
//!         cx: 640.0, cy: 360.0,                     // principal point, inside the image
//!         distortion: (k1: -0.05, k2: 0.01, p1: 0.0, p2: 0.0, k3: 0.0), // plumb-bob; optional
//!         translation: (1.6, 0.0, 1.5),             // camera BODY origin in the vehicle, metres
//!         rotation: Rpy(0.0, 0.0, 0.0),             // camera BODY → vehicle
//!     ),
//!     lidar: (
//!         translation: (1.2, 0.0, 1.9),             // lidar origin in the vehicle, metres
//!         rotation: Rpy(0.0, 0.0, 0.0),             // lidar → vehicle
//!     ),
//! )
//! ```
//!
//! A rig of several sensors lists them instead, each with a `name` (a
//! [`SensorName`]: 1 to 32 of `a-z 0-9 _ -`); the first of each list is
//! the primary one. The one-camera form above means a camera named `camera` and a lidar named
//! `lidar`.
//!
//! ```ron
//! Rig(
//!     cameras: [
//!         (name: "front", width: 640, height: 360, fx: 320.0, fy: 320.0, cx: 320.0, cy: 180.0,
//!          translation: (1.6, 0.0, 1.5), rotation: Rpy(0.0, 0.0, 0.0)),
//!         (name: "rear", width: 640, height: 360, fx: 320.0, fy: 320.0, cx: 320.0, cy: 180.0,
//!          translation: (-0.5, 0.0, 1.5), rotation: Rpy(0.0, 0.0, 180.0)),
//!     ],
//!     lidars: [(name: "top", translation: (1.2, 0.0, 1.9), rotation: Rpy(0.0, 0.0, 0.0))],
//! )
//! ```
//!
//! # Conventions
//!
//! - **Frames.** The vehicle frame and the lidar frame are x forward, y left, z up. A camera
//!   mount in the file describes the camera **body**, with the same axes (x forward along the
//!   optical axis, y left, z up). The loader turns it into the camera's **optical** frame
//!   (x right, y down, z forward), which is what [`CalibrationSet::camera_to_vehicle`] holds:
//!   `camera_to_vehicle = mount · R_body←optical`, where `R_body←optical` has columns
//!   `(0,−1,0)`, `(0,0,−1)`, `(1,0,0)` ([`optical_to_body`]).
//! - **Mounts.** `translation` and `rotation` map sensor coordinates into vehicle coordinates:
//!   `p_vehicle = R · p_sensor + t`.
//! - **`Rpy(roll_deg, pitch_deg, yaw_deg)`**: degrees, about the fixed x, y, z axes in that
//!   order, so `R = Rz(yaw) · Ry(pitch) · Rx(roll)` (the same as intrinsic z-y′-x″ yaw-pitch-roll;
//!   nalgebra's `Rotation3::from_euler_angles(roll, pitch, yaw)`; ROS REP 103). With y to the
//!   left, a positive yaw turns the sensor to the left and a positive pitch tips its nose down.
//! - **`Quaternion(w, x, y, z)`**: Hamilton convention, scalar first; unit norm within 1e-5
//!   (then renormalised).
//! - **`Matrix([[r00, r01, r02], [r10, r11, r12], [r20, r21, r22]])`**: row-major; must be
//!   orthonormal within 1e-5 (`max |RᵀR − I|`) with determinant +1.
//!
//! # Errors
//!
//! [`check_file`] reports the first problem as a one-line [`CalibFileError`]:
//! `FILE:LINE:COL: FIELD: what` (the position is given whenever it is known: always for RON
//! syntax and type errors, and for a failed check when the field can be found in the text).

use std::fmt;
use std::path::{Path, PathBuf};

use nalgebra::{Isometry3, Matrix3, Rotation3, Translation3, UnitQuaternion};
use serde::{Deserialize, Serialize};
use shared::{CalibEpoch, TimestampNs};

use crate::name::SensorName;
use crate::ron_path::{error_field, line_col, locate_field, PathStyle};
use crate::types::{CalibrationSet, CameraIntrinsics, CameraMount, Distortion, LidarMount, Projection};
use crate::validate::{self, finite, Invalid};

/// The default rig's RON text (`configs/calib/default.ron`), embedded at build time.
pub const DEFAULT_RIG_RON: &str = include_str!("../../configs/calib/default.ron");

/// A calibration file: one rig, one epoch. See the [module docs](self) for the format.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename = "Rig", deny_unknown_fields)]
pub struct RigFile {
    /// The epoch this rig defines (≥ 1). Default 1.
    #[serde(default = "one")]
    pub epoch: u64,
    /// Pipeline time (ns) from which frames carry this epoch. Default 0.
    #[serde(default)]
    pub valid_from_ns: u64,
    /// The camera of a one-camera rig (named `camera`): intrinsics and body mount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub camera: Option<CameraSpec>,
    /// The lidar mount of a one-lidar rig (named `lidar`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lidar: Option<MountSpec>,
    /// The cameras of a rig of several, each with its `name` (instead of `camera`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cameras: Vec<CameraSpec>,
    /// The lidars of a rig of several, each with its `name` (instead of `lidar`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lidars: Vec<MountSpec>,
}

const fn one() -> u64 {
    1
}

/// A camera in a [`RigFile`]: pinhole intrinsics, plumb-bob distortion, body mount.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraSpec {
    /// The camera's name: required in `cameras`, not given for `camera`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Image width in pixels.
    pub width: u32,
    /// Image height in pixels.
    pub height: u32,
    /// Focal length, x, pixels.
    pub fx: f64,
    /// Focal length, y, pixels.
    pub fy: f64,
    /// Principal point, x, pixels.
    pub cx: f64,
    /// Principal point, y, pixels.
    pub cy: f64,
    /// Lens distortion; all zero if left out.
    #[serde(default)]
    pub distortion: DistortionSpec,
    /// Camera body origin in the vehicle frame, metres.
    pub translation: (f64, f64, f64),
    /// Camera body → vehicle rotation.
    pub rotation: RotationSpec,
}

/// Plumb-bob coefficients in a file; each defaults to 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DistortionSpec {
    /// Radial, r².
    pub k1: f64,
    /// Radial, r⁴.
    pub k2: f64,
    /// Tangential.
    pub p1: f64,
    /// Tangential.
    pub p2: f64,
    /// Radial, r⁶.
    pub k3: f64,
}

/// A sensor mount in a file: sensor → vehicle.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MountSpec {
    /// The lidar's name: required in `lidars`, not given for `lidar`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Sensor origin in the vehicle frame, metres.
    pub translation: (f64, f64, f64),
    /// Sensor → vehicle rotation.
    pub rotation: RotationSpec,
}

/// A rotation as written in a file. See the [module docs](self) for the conventions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum RotationSpec {
    /// Roll, pitch, yaw in degrees; `R = Rz(yaw) · Ry(pitch) · Rx(roll)`.
    Rpy(f64, f64, f64),
    /// Unit quaternion `(w, x, y, z)`.
    Quaternion(f64, f64, f64, f64),
    /// Row-major 3×3 rotation matrix.
    Matrix(Vec<Vec<f64>>),
}

impl RotationSpec {
    /// Checks the rotation and converts it. `field` names it in errors.
    ///
    /// # Errors
    /// [`Invalid`] if a number is not finite, the quaternion is not unit, or the matrix is
    /// not 3×3, orthonormal and of determinant +1.
    pub fn to_unit_quaternion(&self, field: &str) -> Result<UnitQuaternion<f64>, Invalid> {
        match *self {
            Self::Rpy(r, p, y) => {
                for v in [r, p, y] {
                    finite(field, v)?;
                }
                Ok(UnitQuaternion::from_euler_angles(r.to_radians(), p.to_radians(), y.to_radians()))
            }
            Self::Quaternion(w, x, y, z) => validate::rotation_from_quaternion(field, w, x, y, z),
            Self::Matrix(ref rows) => {
                if rows.len() != 3 || rows.iter().any(|r| r.len() != 3) {
                    return Err(Invalid::new(field, "matrix must have 3 rows of 3 numbers"));
                }
                let m = Matrix3::from_fn(|i, j| rows[i][j]);
                validate::rotation_from_matrix(field, &m)
            }
        }
    }
}

/// The rotation taking camera-optical coordinates (x right, y down, z forward) to camera-body
/// coordinates (x forward, y left, z up).
#[must_use]
pub fn optical_to_body() -> UnitQuaternion<f64> {
    let m = Matrix3::new(0.0, 0.0, 1.0, -1.0, 0.0, 0.0, 0.0, -1.0, 0.0);
    UnitQuaternion::from_rotation_matrix(&Rotation3::from_matrix_unchecked(m))
}

fn translation(field: &str, t: (f64, f64, f64)) -> Result<Translation3<f64>, Invalid> {
    validate::check_translation(field, &[t.0, t.1, t.2])?;
    Ok(Translation3::new(t.0, t.1, t.2))
}

/// The sensor name of a list entry (`field` is `cameras[i]`): required, checked.
fn entry_name(field: &str, name: Option<&String>, single: Option<SensorName>) -> Result<SensorName, Invalid> {
    match (name, single) {
        (None, Some(default)) => Ok(default),
        (Some(_), Some(_)) => {
            let (list, _) = field.split_once('.').unwrap_or((field, ""));
            Err(Invalid::new(format!("{list}.name"), "only sensors in a list have names"))
        }
        (None, None) => Err(Invalid::new(format!("{field}.name"), "a sensor in a list needs a name")),
        (Some(n), None) => SensorName::new(n).map_err(|e| Invalid::new(format!("{field}.name"), e.0)),
    }
}

impl CameraSpec {
    fn to_mount(&self, field: &str, single: Option<SensorName>) -> Result<CameraMount, Invalid> {
        let d = self.distortion;
        let intrinsics = CameraIntrinsics {
            fx: self.fx,
            fy: self.fy,
            cx: self.cx,
            cy: self.cy,
            width: self.width,
            height: self.height,
            distortion: Distortion { k1: d.k1, k2: d.k2, p1: d.p1, p2: d.p2, k3: d.k3 },
        };
        let name = entry_name(field, self.name.as_ref(), single)?;
        validate::check_intrinsics(field, &intrinsics)?;
        let t = translation(&format!("{field}.translation"), self.translation)?;
        let r = self.rotation.to_unit_quaternion(&format!("{field}.rotation"))?;
        let to_vehicle = Isometry3::from_parts(t, r * optical_to_body());
        Ok(CameraMount { name, projection: Projection::Pinhole(intrinsics), to_vehicle })
    }

    fn of(c: &CameraMount, named: bool) -> Option<Self> {
        let Projection::Pinhole(k) = c.projection else { return None };
        let d = k.distortion;
        Some(Self {
            name: named.then(|| c.name.to_string()),
            width: k.width,
            height: k.height,
            fx: k.fx,
            fy: k.fy,
            cx: k.cx,
            cy: k.cy,
            distortion: DistortionSpec { k1: d.k1, k2: d.k2, p1: d.p1, p2: d.p2, k3: d.k3 },
            translation: tup(&c.to_vehicle.translation),
            rotation: quat(c.to_vehicle.rotation * optical_to_body().inverse()),
        })
    }
}

impl MountSpec {
    fn to_mount(&self, field: &str, single: Option<SensorName>) -> Result<LidarMount, Invalid> {
        let name = entry_name(field, self.name.as_ref(), single)?;
        let t = translation(&format!("{field}.translation"), self.translation)?;
        let r = self.rotation.to_unit_quaternion(&format!("{field}.rotation"))?;
        Ok(LidarMount { name, to_vehicle: Isometry3::from_parts(t, r) })
    }

    fn of(l: &LidarMount, named: bool) -> Self {
        Self {
            name: named.then(|| l.name.to_string()),
            translation: tup(&l.to_vehicle.translation),
            rotation: quat(l.to_vehicle.rotation),
        }
    }
}

fn quat(q: UnitQuaternion<f64>) -> RotationSpec {
    RotationSpec::Quaternion(q.w, q.i, q.j, q.k)
}

fn tup(t: &Translation3<f64>) -> (f64, f64, f64) {
    (t.x, t.y, t.z)
}

impl RigFile {
    /// Checks every field and builds the calibration set (camera body → optical frame).
    ///
    /// # Errors
    /// [`Invalid`] naming the first failing field with its file path (`camera.fx`,
    /// `lidar.rotation`, `cameras[1].name`, ...).
    pub fn to_calibration_set(&self) -> Result<CalibrationSet, Invalid> {
        if self.epoch == 0 {
            return Err(Invalid::new("epoch", "epoch 0 means \"none\"; epochs start at 1"));
        }
        let cameras = match (&self.camera, self.cameras.is_empty()) {
            (Some(c), true) => vec![c.to_mount("camera", Some(SensorName::camera()))?],
            (None, false) => self
                .cameras
                .iter()
                .enumerate()
                .map(|(i, c)| c.to_mount(&format!("cameras[{i}]"), None))
                .collect::<Result<_, _>>()?,
            (Some(_), false) => return Err(Invalid::new("cameras", "give `camera` or `cameras`, not both")),
            (None, true) => return Err(Invalid::new("camera", "missing: give `camera` or `cameras`")),
        };
        let lidars = match (&self.lidar, self.lidars.is_empty()) {
            (Some(l), true) => vec![l.to_mount("lidar", Some(SensorName::lidar()))?],
            (None, false) => self
                .lidars
                .iter()
                .enumerate()
                .map(|(i, l)| l.to_mount(&format!("lidars[{i}]"), None))
                .collect::<Result<_, _>>()?,
            (Some(_), false) => return Err(Invalid::new("lidars", "give `lidar` or `lidars`, not both")),
            (None, true) => return Err(Invalid::new("lidar", "missing: give `lidar` or `lidars`")),
        };
        let set = CalibrationSet {
            epoch: CalibEpoch(self.epoch),
            valid_from: TimestampNs(self.valid_from_ns),
            cameras,
            lidars,
        };
        validate::check_set(&set)?;
        Ok(set)
    }

    /// The file form of a pinhole calibration set (rotations as quaternions; the one-camera
    /// form for a rig of one camera `camera` and one lidar `lidar`, the list form
    /// otherwise); `None` for a rectified camera model, which files do not describe.
    #[must_use]
    pub fn from_calibration_set(set: &CalibrationSet) -> Option<Self> {
        let single = set.cameras.len() == 1
            && set.lidars.len() == 1
            && set.cameras[0].name == SensorName::camera()
            && set.lidars[0].name == SensorName::lidar();
        let cameras = set.cameras.iter().map(|c| CameraSpec::of(c, !single)).collect::<Option<Vec<_>>>()?;
        let lidars: Vec<MountSpec> = set.lidars.iter().map(|l| MountSpec::of(l, !single)).collect();
        let (camera, cameras, lidar, lidars) = if single {
            (cameras.into_iter().next(), Vec::new(), lidars.into_iter().next(), Vec::new())
        } else {
            (None, cameras, None, lidars)
        };
        Some(Self { epoch: set.epoch.0, valid_from_ns: set.valid_from.0, camera, lidar, cameras, lidars })
    }

    /// Pretty RON text of this rig.
    ///
    /// # Errors
    /// Only if RON serialisation fails (it does not for these types).
    pub fn to_ron(&self) -> Result<String, ron::Error> {
        ron::ser::to_string_pretty(self, ron::ser::PrettyConfig::default().struct_names(true))
    }
}

/// A calibration file is unreadable or wrong. `Display` is one line:
/// `FILE[:LINE:COL]: [FIELD: ]what`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CalibFileError {
    /// The file.
    pub path: PathBuf,
    /// The dotted field (`camera.fx`, `lidar.rotation`), when known.
    pub field: Option<String>,
    /// 1-based line and column, when known (always for RON syntax errors).
    pub position: Option<(usize, usize)>,
    /// What is wrong, one line.
    pub message: String,
}

impl CalibFileError {
    fn new(path: &Path, field: Option<String>, position: Option<(usize, usize)>, message: &str) -> Self {
        let message = message.split_whitespace().collect::<Vec<_>>().join(" ");
        Self { path: path.to_path_buf(), field: field.filter(|f| !f.is_empty()), position, message }
    }
}

impl fmt::Display for CalibFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some((line, col)) = self.position {
            write!(f, ":{line}:{col}")?;
        }
        if let Some(field) = &self.field {
            write!(f, ": {field}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for CalibFileError {}

/// Reads, parses and checks a calibration file: the library side of
/// `epochfuse calib check FILE`.
///
/// # Errors
/// [`CalibFileError`], one line naming the file, the field and (for syntax) line:column.
pub fn check_file(path: &Path) -> Result<CalibrationSet, CalibFileError> {
    parse_rig_str(&read_source(path)?, path)
}

/// Bytes a calibration or policy file may have: far more than any real one.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// Reads a RON file of this crate: a regular file (never a FIFO or a device), at most
/// [`MAX_FILE_BYTES`], UTF-8.
///
/// # Errors
/// [`CalibFileError`] naming the file and, for bad UTF-8, the line.
pub fn read_source(path: &Path) -> Result<String, CalibFileError> {
    let bytes = shared::input::read_bounded(path, MAX_FILE_BYTES)
        .map_err(|e| CalibFileError::new(path, None, None, &without_path(&e.to_string(), path)))?;
    String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let (line, col) = line_col(&String::from_utf8_lossy(valid));
        CalibFileError::new(path, None, Some((line, col)), "not valid UTF-8")
    })
}

/// The input error's text without its leading `path: ` (the error adds the path itself).
fn without_path(text: &str, path: &Path) -> String {
    let prefix = format!("{}: ", path.display());
    text.strip_prefix(&prefix).unwrap_or(text).to_string()
}

/// Parses RON text into `T`; `origin` names it in errors.
///
/// # Errors
/// A [`CalibFileError`] for RON syntax or type errors, with line:column and the field.
pub fn parse_ron<T: serde::de::DeserializeOwned>(src: &str, origin: &Path) -> Result<T, CalibFileError> {
    let options = ron::Options::default().with_default_extension(ron::extensions::Extensions::IMPLICIT_SOME);
    options.from_str::<T>(src).map_err(|e| {
        let field = error_field(src, &e, PathStyle::Keys);
        CalibFileError::new(origin, field, Some((e.position.line, e.position.col)), &e.code.to_string())
    })
}

/// Parses and checks RON text of a rig; `origin` names it in errors.
///
/// # Errors
/// As [`check_file`].
pub fn parse_rig_str(src: &str, origin: &Path) -> Result<CalibrationSet, CalibFileError> {
    let rig = parse_rig_file(src, origin)?;
    rig.to_calibration_set().map_err(|inv| {
        let position = locate_field(src, &inv.field);
        CalibFileError::new(origin, Some(inv.field), position, &inv.reason)
    })
}

/// Parses RON text into a [`RigFile`] without checking values (for tools that edit rigs).
///
/// # Errors
/// A [`CalibFileError`] for RON syntax or type errors, with line:column.
pub fn parse_rig_file(src: &str, origin: &Path) -> Result<RigFile, CalibFileError> {
    parse_ron(src, origin)
}

/// The default rig (`configs/calib/default.ron`): epoch 1 from time 0, camera 1280×720 with
/// fx = fy = 1000, cx = 640, cy = 360, k1 = −0.05, k2 = 0.01, camera body at (1.6, 0, 1.5) m
/// and lidar at (1.2, 0, 1.9) m, both level and facing forward.
#[must_use]
pub fn default_rig() -> CalibrationSet {
    #[allow(clippy::expect_used)]
    parse_rig_str(DEFAULT_RIG_RON, Path::new("configs/calib/default.ron"))
        .expect("the embedded default rig is valid")
}

#[cfg(test)]
mod tests {
    use super::*;
    use nalgebra::{Point3, Vector3};

    #[test]
    fn default_rig_matches_the_simulated_car() {
        let set = default_rig();
        assert_eq!(set.epoch, CalibEpoch(1));
        assert_eq!(set.valid_from, TimestampNs(0));
        let Projection::Pinhole(k) = *set.camera() else { panic!("pinhole expected") };
        assert_eq!((k.width, k.height, k.fx, k.fy, k.cx, k.cy), (1280, 720, 1000.0, 1000.0, 640.0, 360.0));
        assert_eq!(k.distortion, Distortion { k1: -0.05, k2: 0.01, p1: 0.0, p2: 0.0, k3: 0.0 });
        assert_eq!(set.camera_to_vehicle().translation.vector, Vector3::new(1.6, 0.0, 1.5));
        assert_eq!(set.lidar_to_vehicle().translation.vector, Vector3::new(1.2, 0.0, 1.9));
        assert!(set.lidar_to_vehicle().rotation.angle() < 1e-12);
        assert_eq!((set.cameras[0].name.as_str(), set.lidars[0].name.as_str()), ("camera", "lidar"));
        // The optical axis (z) looks along vehicle +x; image right (x) is vehicle −y; down is −z.
        let r = set.camera_to_vehicle().rotation;
        assert!((r * Vector3::z() - Vector3::x()).norm() < 1e-12);
        assert!((r * Vector3::x() + Vector3::y()).norm() < 1e-12);
        assert!((r * Vector3::y() + Vector3::z()).norm() < 1e-12);
        // A lidar point 10 m ahead at camera height lands on the principal point.
        let hit = set.project_point(Point3::new(10.0, 0.0, -0.4)).unwrap();
        assert!((hit.u - 640.0).abs() < 1e-9 && (hit.v - 360.0).abs() < 1e-9, "{hit:?}");
    }

    #[test]
    fn rotation_forms_agree() {
        let rpy = RotationSpec::Rpy(10.0, -5.0, 30.0).to_unit_quaternion("r").unwrap();
        let q = RotationSpec::Quaternion(rpy.w, rpy.i, rpy.j, rpy.k).to_unit_quaternion("r").unwrap();
        let m = rpy.to_rotation_matrix().into_inner();
        let rows = (0..3).map(|i| (0..3).map(|j| m[(i, j)]).collect()).collect();
        let mm = RotationSpec::Matrix(rows).to_unit_quaternion("r").unwrap();
        assert!(rpy.angle_to(&q) < 1e-12 && rpy.angle_to(&mm) < 1e-9);
        // Positive yaw turns the x axis towards +y (left).
        let yaw = RotationSpec::Rpy(0.0, 0.0, 90.0).to_unit_quaternion("r").unwrap();
        assert!((yaw * Vector3::x() - Vector3::y()).norm() < 1e-12);
    }

    #[test]
    fn file_round_trip() {
        let mut set = default_rig();
        set.epoch = CalibEpoch(7);
        set.camera_to_vehicle_mut().rotation =
            UnitQuaternion::from_euler_angles(0.01, 0.02, 0.03) * set.camera_to_vehicle().rotation;
        let text = RigFile::from_calibration_set(&set).unwrap().to_ron().unwrap();
        assert!(!text.contains("cameras"), "{text}");
        let back = parse_rig_str(&text, Path::new("x.ron")).unwrap();
        assert_eq!(back.epoch, CalibEpoch(7));
        assert!(back.camera_to_vehicle().rotation.angle_to(&set.camera_to_vehicle().rotation) < 1e-12);
        assert_eq!(back.camera(), set.camera());
        // A rig of several sensors writes and reads the list form.
        let mut rear = set.cameras[0].clone();
        rear.name = SensorName::new("rear").unwrap();
        set.cameras.push(rear);
        let text = RigFile::from_calibration_set(&set).unwrap().to_ron().unwrap();
        let back = parse_rig_str(&text, Path::new("x.ron")).unwrap();
        assert_eq!(back.cameras.len(), 2);
        assert_eq!(back.cameras[1].name.as_str(), "rear");
        assert_eq!(back.lidars[0].name.as_str(), "lidar");
    }

    #[test]
    fn the_list_form_names_its_bad_entries() {
        let cam = |name: &str| {
            format!(
                "(name: \"{name}\", width: 640, height: 360, fx: 320, fy: 320, cx: 320, cy: 180, \
                 translation: (1, 0, 1), rotation: Rpy(0, 0, 0))"
            )
        };
        let lidars = "lidars: [(name: \"top\", translation: (0, 0, 2), rotation: Rpy(0, 0, 0))]";
        let good = format!("Rig(cameras: [{}, {}], {lidars})", cam("front"), cam("rear"));
        let set = parse_rig_str(&good, Path::new("t.ron")).unwrap();
        assert_eq!(set.cameras.len(), 2);
        let field = |src: String| parse_rig_str(&src, Path::new("t.ron")).unwrap_err().field;
        let upper = format!("Rig(cameras: [{}, {}], {lidars})", cam("front"), cam("Rear"));
        assert_eq!(field(upper).as_deref(), Some("cameras[1].name"));
        let twice = format!("Rig(cameras: [{}, {}], {lidars})", cam("front"), cam("front"));
        assert_eq!(field(twice).as_deref(), Some("names"));
        let unnamed = format!("Rig(cameras: [{}], {lidars})", cam("front").replace("name: \"front\", ", ""));
        assert_eq!(field(unnamed).as_deref(), Some("cameras[0].name"));
        let both = format!("Rig(camera: {}, cameras: [{}], {lidars})", cam("x"), cam("front"));
        assert_eq!(field(both).as_deref(), Some("cameras"));
    }

    #[test]
    fn integers_and_every_rotation_form_parse() {
        let src = "Rig(camera: (width: 640, height: 480, fx: 500, fy: 500, cx: 320, cy: 240,
            translation: (1, 0, 1), rotation: Matrix([[1, 0, 0], [0, 1, 0], [0, 0, 1]])),
            lidar: (translation: (0, 0, 2), rotation: Quaternion(0.7071068, 0, 0, 0.7071068)))";
        let set = parse_rig_str(src, Path::new("t.ron")).unwrap();
        assert_eq!(set.epoch, CalibEpoch(1));
        assert!((set.lidar_to_vehicle().rotation * Vector3::x() - Vector3::y()).norm() < 1e-6);
        let bad = src.replace("[0, 0, 1]]", "[0, 0, 1], [0, 0, 0]]");
        let e = parse_rig_str(&bad, Path::new("t.ron")).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("camera.rotation"), "{e}");
        let huge = src.replace("[[1, 0, 0]", "[[1e300, -1e300, 0]");
        assert!(parse_rig_str(&huge, Path::new("t.ron")).is_err());
    }
}
