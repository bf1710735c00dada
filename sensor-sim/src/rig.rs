//! The simulated sensor rig: camera intrinsics and the mounts of the camera and the lidar.
//!
//! Frames (as in `calib`): the vehicle frame is x forward, y left, z up, origin on the ground
//! under the rear axle. A mount places a sensor's BODY in the vehicle frame: translation
//! `xyz` in metres, then rotation roll (about x), pitch (about y), yaw (about z) in degrees,
//! composed as `R = Rz(yaw) · Ry(pitch) · Rx(roll)` (ROS REP 103 fixed-axis roll-pitch-yaw).
//! With y pointing left, a positive pitch tips the sensor's nose DOWN and a positive yaw turns
//! it LEFT.
//!
//! The lidar's frame is its body frame. The camera's optical frame (x right, y down, z forward,
//! as `calib` expects) is derived from the camera body: optical z = body x, optical x =
//! -body y, optical y = -body z.

use calib::{CalibrationSet, CameraIntrinsics, Distortion, Projection};
use nalgebra::{Isometry3, Matrix3, Rotation3, Translation3, UnitQuaternion};
use serde::{Deserialize, Serialize};
use shared::{CalibEpoch, TimestampNs};

/// Pinhole intrinsics with plumb-bob distortion, in pixels. The image size comes from the
/// scenario's camera config.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Intrinsics {
    /// Focal length, x, pixels.
    pub fx: f64,
    /// Focal length, y, pixels.
    pub fy: f64,
    /// Principal point, x, pixels.
    pub cx: f64,
    /// Principal point, y, pixels.
    pub cy: f64,
    /// Radial r².
    #[serde(default)]
    pub k1: f64,
    /// Radial r⁴.
    #[serde(default)]
    pub k2: f64,
    /// Tangential.
    #[serde(default)]
    pub p1: f64,
    /// Tangential.
    #[serde(default)]
    pub p2: f64,
    /// Radial r⁶.
    #[serde(default)]
    pub k3: f64,
}

impl Intrinsics {
    /// The default lens for an image of `width × height`: the default rig's field of view
    /// (fx = fy = 1000 at 1280 px wide), principal point at the centre, k1 = -0.05, k2 = 0.01.
    /// At 1280×720 this is exactly the default rig of `configs/calib/default.ron`.
    #[must_use]
    pub fn default_for(width: u32, height: u32) -> Self {
        let f = 1000.0 * f64::from(width) / 1280.0;
        Self {
            fx: f,
            fy: f,
            cx: f64::from(width) / 2.0,
            cy: f64::from(height) / 2.0,
            k1: -0.05,
            k2: 0.01,
            p1: 0.0,
            p2: 0.0,
            k3: 0.0,
        }
    }

    /// The distortion coefficients in `calib`'s type.
    #[must_use]
    pub fn distortion(&self) -> Distortion {
        Distortion { k1: self.k1, k2: self.k2, p1: self.p1, p2: self.p2, k3: self.k3 }
    }

    /// These intrinsics for an image of `width × height`, in `calib`'s type.
    #[must_use]
    pub fn to_calib(&self, width: u32, height: u32) -> CameraIntrinsics {
        CameraIntrinsics {
            fx: self.fx,
            fy: self.fy,
            cx: self.cx,
            cy: self.cy,
            width,
            height,
            distortion: self.distortion(),
        }
    }

    /// The same lens with zero distortion (what a rectified KITTI image shows).
    #[must_use]
    pub fn undistorted(&self) -> Self {
        Self { k1: 0.0, k2: 0.0, p1: 0.0, p2: 0.0, k3: 0.0, ..*self }
    }
}

/// Where a sensor body sits on the vehicle.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mount {
    /// Position of the sensor's origin in the vehicle frame, metres.
    pub xyz: (f64, f64, f64),
    /// Roll, pitch, yaw of the sensor body, degrees (see the module docs for the convention).
    #[serde(default)]
    pub rpy_deg: (f64, f64, f64),
}

impl Mount {
    /// A mount at `xyz` with no rotation.
    #[must_use]
    pub const fn at(x: f64, y: f64, z: f64) -> Self {
        Self { xyz: (x, y, z), rpy_deg: (0.0, 0.0, 0.0) }
    }

    /// The body's rotation in the vehicle frame.
    #[must_use]
    pub fn rotation(&self) -> UnitQuaternion<f64> {
        let (r, p, y) = self.rpy_deg;
        UnitQuaternion::from_euler_angles(r.to_radians(), p.to_radians(), y.to_radians())
    }

    /// Sensor body → vehicle.
    #[must_use]
    pub fn body_to_vehicle(&self) -> Isometry3<f64> {
        Isometry3::from_parts(Translation3::new(self.xyz.0, self.xyz.1, self.xyz.2), self.rotation())
    }

    /// A camera mounted here: its optical frame → vehicle.
    #[must_use]
    pub fn optical_to_vehicle(&self) -> Isometry3<f64> {
        self.body_to_vehicle() * Isometry3::from_parts(Translation3::identity(), optical_to_body())
    }
}

/// The rotation taking camera-optical coordinates (x right, y down, z forward) into camera-body
/// coordinates (x forward, y left, z up).
#[must_use]
pub fn optical_to_body() -> UnitQuaternion<f64> {
    UnitQuaternion::from_rotation_matrix(&Rotation3::from_matrix_unchecked(Matrix3::new(
        0.0, 0.0, 1.0, //
        -1.0, 0.0, 0.0, //
        0.0, -1.0, 0.0,
    )))
}

/// A complete rig: what one calibration epoch describes.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rig {
    /// Camera lens.
    pub intrinsics: Intrinsics,
    /// Camera body mount.
    pub camera: Mount,
    /// Lidar mount.
    pub lidar: Mount,
}

impl Rig {
    /// The default rig for an image of `width × height`: camera body at (1.6, 0, 1.5), lidar at
    /// (1.2, 0, 1.9), both level and facing forward; lens from [`Intrinsics::default_for`].
    #[must_use]
    pub fn default_for(width: u32, height: u32) -> Self {
        Self {
            intrinsics: Intrinsics::default_for(width, height),
            camera: Mount::at(1.6, 0.0, 1.5),
            lidar: Mount::at(1.2, 0.0, 1.9),
        }
    }

    /// Camera optical frame → vehicle frame.
    #[must_use]
    pub fn camera_to_vehicle(&self) -> Isometry3<f64> {
        self.camera.optical_to_vehicle()
    }

    /// Lidar frame → vehicle frame.
    #[must_use]
    pub fn lidar_to_vehicle(&self) -> Isometry3<f64> {
        self.lidar.body_to_vehicle()
    }

    /// This rig as calibration epoch `epoch`, valid from `valid_from`, for an image of
    /// `width × height`.
    #[must_use]
    pub fn to_calibration_set(
        &self,
        epoch: CalibEpoch,
        valid_from: TimestampNs,
        width: u32,
        height: u32,
    ) -> CalibrationSet {
        CalibrationSet::single(
            epoch,
            valid_from,
            Projection::Pinhole(self.intrinsics.to_calib(width, height)),
            self.camera_to_vehicle(),
            self.lidar_to_vehicle(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nalgebra::{Point3, Vector3};

    #[test]
    fn optical_axes() {
        let rig = Rig::default_for(1280, 720);
        let c = rig.camera_to_vehicle();
        // Optical z is vehicle forward, optical x is vehicle right, optical y is down.
        assert!((c.rotation * Vector3::z() - Vector3::x()).norm() < 1e-12);
        assert!((c.rotation * Vector3::x() + Vector3::y()).norm() < 1e-12);
        assert!((c.rotation * Vector3::y() + Vector3::z()).norm() < 1e-12);
        assert!((c * Point3::origin() - Point3::new(1.6, 0.0, 1.5)).norm() < 1e-12);
    }

    #[test]
    fn yaw_left_and_pitch_down() {
        let m = Mount { xyz: (0.0, 0.0, 0.0), rpy_deg: (0.0, 0.0, 90.0) };
        assert!((m.rotation() * Vector3::x() - Vector3::y()).norm() < 1e-12);
        let m = Mount { xyz: (0.0, 0.0, 0.0), rpy_deg: (0.0, 10.0, 0.0) };
        assert!((m.rotation() * Vector3::x()).z < 0.0);
    }
}
