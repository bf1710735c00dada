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
//! **Surround rigs.** `cameras: [(name: "front", width: 640, height: 360, rate_hz: 10.0,
//! hfov_deg: 100.0, mount: (xyz: .., rpy_deg: ..)), ..]` declares several named cameras
//! (instead of `camera` and `rig.camera`/`rig.intrinsics`), `lidars: [(name, config, mount)]`
//! several lidars (instead of `lidar`/`rig.lidar`); without them the rig is one camera
//! `camera` and one lidar `lidar`, as ever. The first of each list is the primary sensor that
//! the one-camera changes (`CameraYawDeg`, ...) move; `Remount(name, mount)`,
//! `SensorRollDeg/PitchDeg/YawDeg(name, deg)` and `SensorOffsetM(name, dx, dy, dz)` move the
//! named one. Every change is a new epoch for the whole rig. [`Scenario::for_sensor`] is the
//! scenario as one sensor sees it, which its renderer takes.
//!
//! **Times.** Scenario time is nanoseconds since the start of the drive ([`TimestampNs`]);
//! the producers add their clock's origin.
//!
//! **Faults** name a [`shared::Role`] (lower-case or capitalised): `Kill` a process a drive
//! runs (camera, lidar, fusion, calib), `DelayCalib`/`DropCalib` a subscriber of the
//! calibration service ([`shared::Role::subscribes_to_calibration`]).
//!
//! **Code map.** `spec`: the file's schema and defaults; `error`: [`ScenarioError`];
//! `validate`: the range and consistency checks; `build`: the world and the trajectory. The
//! RON error positions come from [`calib::ron_path`], shared with the calibration files.

mod build;
mod error;
mod spec;
mod validate;

pub use error::ScenarioError;
pub use spec::{
    BoxSpec, CalibrationEvent, CameraConfig, CylinderSpec, Fault, Generator, LidarConfig, NamedCamera,
    NamedLidar, RigChange, RigSpec, RoadSpec, ScenarioSpec, TrajectorySpec, VehicleSpec, WorldSpec,
};

use crate::rig::{Intrinsics, Mount, Rig};
use crate::trajectory::{Pose2, Trajectory};
use crate::world::World;
use calib::{CalibrationSet, SensorName};
use nalgebra::Isometry3;
use shared::{CalibEpoch, TimestampNs};
use std::path::Path;
use std::sync::Arc;

/// The built-in default scenario, compiled in.
pub const DEFAULT_RON: &str = include_str!("../../../configs/drives/default.ron");

/// One camera of the rig in one epoch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CameraRig {
    /// Image size and rate.
    pub config: CameraConfig,
    /// Lens.
    pub intrinsics: Intrinsics,
    /// Body mount.
    pub mount: Mount,
}

/// One lidar of the rig in one epoch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LidarRig {
    /// Beams, rate, range.
    pub config: LidarConfig,
    /// Mount.
    pub mount: Mount,
}

/// Every sensor of the rig in one epoch, the primary camera and lidar first.
#[derive(Clone, Debug, PartialEq)]
pub struct SensorRig {
    /// The epoch.
    pub epoch: CalibEpoch,
    /// When the sensors took this rig (scenario time).
    pub valid_from: TimestampNs,
    /// The cameras, by name.
    pub cameras: Vec<(SensorName, CameraRig)>,
    /// The lidars, by name.
    pub lidars: Vec<(SensorName, LidarRig)>,
}

impl SensorRig {
    /// This epoch as a calibration set, valid from `valid_from + origin`.
    #[must_use]
    pub fn to_calibration_set(&self, origin: TimestampNs) -> CalibrationSet {
        CalibrationSet {
            epoch: self.epoch,
            valid_from: TimestampNs(origin.0 + self.valid_from.0),
            cameras: self
                .cameras
                .iter()
                .map(|(name, c)| calib::CameraMount {
                    name: name.clone(),
                    projection: calib::Projection::Pinhole(
                        c.intrinsics.to_calib(c.config.width, c.config.height),
                    ),
                    to_vehicle: c.mount.optical_to_vehicle(),
                })
                .collect(),
            lidars: self
                .lidars
                .iter()
                .map(|(name, l)| calib::LidarMount {
                    name: name.clone(),
                    to_vehicle: l.mount.body_to_vehicle(),
                })
                .collect(),
        }
    }

    /// The one-camera view of camera `c` and lidar `l` (indices).
    fn view(&self, c: usize, l: usize) -> EpochRig {
        let (cam, lidar) = (&self.cameras[c].1, &self.lidars[l].1);
        EpochRig {
            epoch: self.epoch,
            valid_from: self.valid_from,
            rig: Rig { intrinsics: cam.intrinsics, camera: cam.mount, lidar: lidar.mount },
        }
    }
}

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
    /// Every sensor in every epoch (`epochs` is the primary camera and lidar's view).
    sensors: Arc<[SensorRig]>,
}

fn secs_to_ns(s: f64) -> TimestampNs {
    TimestampNs((s * 1e9).round() as u64)
}

fn ns_to_secs(t: TimestampNs) -> f64 {
    t.0 as f64 * 1e-9
}

/// Largest scenario file read (a real one is a few KB).
pub const MAX_SCENARIO_BYTES: u64 = 1 << 20;

impl Scenario {
    /// Reads and validates a scenario file.
    ///
    /// # Errors
    /// [`ScenarioError`], one line naming the file and the field (and line:column for syntax).
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let file = path.display().to_string();
        // Regular files only, bounded: a FIFO or /dev/zero is refused, never read.
        let text = shared::input::read_text_bounded(path, MAX_SCENARIO_BYTES).map_err(|e| match e {
            shared::input::InputError::Io { source, .. } => {
                ScenarioError::Io { file: file.clone(), message: source.to_string() }
            }
            refused => ScenarioError::Refused { message: refused.to_string() },
        })?;
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
        let spec: ScenarioSpec = options.from_str(text).map_err(|e| ScenarioError::syntax(text, file, &e))?;
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
        self.sensors.iter().map(|e| e.to_calibration_set(origin)).collect()
    }

    /// Every sensor of every epoch, epoch 1 first.
    #[must_use]
    pub fn sensors(&self) -> &Arc<[SensorRig]> {
        &self.sensors
    }

    /// The cameras' names and configurations (the primary first).
    #[must_use]
    pub fn cameras(&self) -> Vec<(SensorName, CameraConfig)> {
        self.sensors[0].cameras.iter().map(|(n, c)| (n.clone(), c.config)).collect()
    }

    /// The lidars' names and configurations (the primary first).
    #[must_use]
    pub fn lidars(&self) -> Vec<(SensorName, LidarConfig)> {
        self.sensors[0].lidars.iter().map(|(n, l)| (n.clone(), l.config)).collect()
    }

    /// Whether the rig has more than one camera or lidar.
    #[must_use]
    pub fn is_multi_sensor(&self) -> bool {
        self.sensors[0].cameras.len() > 1 || self.sensors[0].lidars.len() > 1
    }

    /// This scenario as seen by one sensor: its configuration is `camera` and `lidar` and its
    /// mount is the rig's (the primary lidar's with a camera, the primary camera's with a
    /// lidar), so a renderer made from the view renders that sensor. The view of the
    /// primary camera or lidar is the scenario itself. `None` for an unknown name.
    #[must_use]
    pub fn for_sensor(&self, name: &str) -> Option<Self> {
        let first = &self.sensors[0];
        let (c, l) = if let Some(c) = first.cameras.iter().position(|(n, _)| n.as_str() == name) {
            (c, 0)
        } else {
            (0, first.lidars.iter().position(|(n, _)| n.as_str() == name)?)
        };
        let mut view = self.clone();
        view.spec.camera = first.cameras[c].1.config;
        view.spec.lidar = first.lidars[l].1.config;
        view.epochs = self.sensors.iter().map(|e| e.view(c, l)).collect();
        Some(view)
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
        shared::frames::ImageHeader::rgb8_labelled(self.spec.camera.width, self.spec.camera.height)
            .payload_len()
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
}
