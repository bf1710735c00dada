//! # sensor-sim: simulated sensors for epochfuse
//!
//! Only simulates: a scenario in, rendered frames and the calibration truth out. Recorded
//! logs (KITTI, MCAP: reading, recording, KITTI export) live in the `logs` crate, which this
//! crate does not depend on; `sim export` renders here and writes there.
//!
//! The simulation, in the order a producer uses it:
//!
//! - [`Scenario::load`] / [`Scenario::builtin_default`] read and validate a scenario (RON:
//!   world, ego path, camera and lidar configs, rig, recalibration events, faults) and build
//!   its [`world::World`]. Errors are one line naming the file, the field and, for syntax,
//!   the line:column ([`ScenarioError`]).
//! - [`Scenario::calibration_schedule`] gives the calibration epochs (`calib::CalibrationSet`)
//!   the calibration service announces; [`Scenario::truth_epoch_at`] and
//!   [`Scenario::rig_at`] give the truth at a capture time; [`Scenario::faults`] the faults
//!   the supervisor injects.
//! - [`CameraRenderer`] and [`LidarRenderer`] render the frame captured at a time straight
//!   into a [`shared::frames::PayloadSink`] (a ring slot), with the rig of the epoch in force
//!   then, and report that epoch.
//! - [`CameraOptions`] `{ distortion: false }` renders rectified images (what `sim export`
//!   writes, as KITTI images are rectified).
//!
//! Times are scenario time: nanoseconds since the start of the drive.
//! Ground-truth instance ids: 0 sky, 1 ground, 2.. objects (see [`world`]).
#![forbid(unsafe_code)]

mod apart;
pub mod camera;
pub mod lidar;
pub mod rig;
pub mod rng;
pub mod scenario;
pub mod trajectory;
pub mod urban;
mod workers;
pub mod world;

pub use camera::{CameraFrame, CameraOptions, CameraRenderer};
pub use lidar::{LidarRenderer, LidarSweep};
pub use rig::{Intrinsics, Mount, Rig};
pub use scenario::{Fault, Scenario, ScenarioError};
