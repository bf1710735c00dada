//! # calib: calibration epochs for epochfuse
//!
//! Types ([`CalibrationSet`] and its parts), the projection fusion applies, RON files, the
//! calibration service's wire format, the service itself and its subscribers.
#![forbid(unsafe_code)]

pub mod types;

pub use types::{project_camera_point, CalibrationSet, CameraIntrinsics, Distortion, PixelHit, Projection};
