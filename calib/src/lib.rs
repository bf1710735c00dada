//! # calib: calibration epochs for epochfuse
//!
//! - [`types`]: [`CalibrationSet`] and its parts, and the projection fusion applies.
//! - [`validate`]: the checks every calibration passes (finite, orthonormal, positive focal
//!   lengths, principal point inside the image, known epoch).
//! - [`mod@file`]: RON rig files, [`check_file`] (`epochfuse calib check`), the default rig.
//! - [`ron_path`]: which field a RON error is about, and where a field is written (shared
//!   with the scenario files of `sensor-sim`).
//! - [`wire`]: the versioned binary message format (also a table slot's contents).
//! - [`service`]: the calibration service (the `calib` role): schedule, fault injection,
//!   peer credentials.
//! - [`subscriber`]: [`CalibSubscriber`], the receiving end.
//! - [`follower`]: [`CalibFollower`], how a role follows a run's epochs (socket, table,
//!   tagging frames).
//! - [`store`]: [`CalibStore`], epoch → calibration.
//! - [`table`]: the copy-on-write calibration table in shared memory, for late joiners.
//! - [`clock`]: [`PipelineClock`], the run's shared time axis, and pacing on it.
//! - [`stop`]: [`StopFlag`], a process's one stop signal.
#![forbid(unsafe_code)]

pub mod clock;
pub mod file;
pub mod follower;
pub mod name;
pub mod policy;
pub mod ron_path;
pub mod service;
pub mod stop;
pub mod store;
pub mod subscriber;
pub mod table;
pub mod types;
pub mod validate;
pub mod wire;

pub use clock::PipelineClock;
pub use file::{check_file, default_rig, CalibFileError, RigFile, RotationSpec};
pub use follower::{CalibFollower, FollowerWaker};
pub use name::{BadName, SensorName};
pub use service::{
    CalibService, DeliveryAction, DeliveryPlan, Schedule, ServiceConfig, ServiceError, ServiceStats,
};
pub use stop::StopFlag;
pub use store::{CalibStore, Inserted};
pub use subscriber::{CalibSubscriber, RecvError, SubscribeError, SubscriberStats};
pub use table::{CalibTableReader, CalibTableWriter, TableError};
pub use types::{
    project_camera_point, CalibrationSet, CameraIntrinsics, CameraMount, Distortion, LidarMount, PixelHit,
    Projection,
};
pub use validate::Invalid;
