//! Calibration types and the projection that fusion applies.
//!
//! Frames: the lidar's own frame (x forward, y left, z up), the vehicle frame (same axes, on
//! the ground under the rear axle), and the camera's optical frame (x right, y down, z
//! forward). Extrinsics map a sensor's frame into the vehicle frame.

use nalgebra::{Isometry3, Matrix3x4, Point3, Vector3};
use serde::{Deserialize, Serialize};
use shared::{CalibEpoch, TimestampNs};

use crate::name::SensorName;

/// Plumb-bob (Brown–Conrady) distortion coefficients, as in ROS `CameraInfo` and OpenCV.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Distortion {
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

impl Distortion {
    /// Whether every coefficient is zero (the projection can skip the polynomial).
    #[must_use]
    pub fn is_zero(&self) -> bool {
        self.k1 == 0.0 && self.k2 == 0.0 && self.p1 == 0.0 && self.p2 == 0.0 && self.k3 == 0.0
    }

    /// Distorts normalised image coordinates (x/z, y/z).
    #[must_use]
    #[inline]
    pub fn apply(&self, x: f64, y: f64) -> (f64, f64) {
        let r2 = x * x + y * y;
        let radial = 1.0 + r2 * (self.k1 + r2 * (self.k2 + r2 * self.k3));
        let xd = x * radial + 2.0 * self.p1 * x * y + self.p2 * (r2 + 2.0 * x * x);
        let yd = y * radial + self.p1 * (r2 + 2.0 * y * y) + 2.0 * self.p2 * x * y;
        (xd, yd)
    }

    /// Inverts plumb-bob distortion: the normalised undistorted point whose distortion is
    /// (xd, yd). Newton's method; `None` if it does not converge or the lens folds over there.
    #[must_use]
    pub fn undistort(&self, xd: f64, yd: f64) -> Option<(f64, f64)> {
        self.undistort_from(xd, yd, (xd, yd), 1e-13)
    }

    /// [`Distortion::undistort`] starting Newton's method from `guess` (a neighbouring pixel's
    /// solution converges in one or two steps), stopping when the residual is below `tol`.
    #[must_use]
    pub fn undistort_from(&self, xd: f64, yd: f64, guess: (f64, f64), tol: f64) -> Option<(f64, f64)> {
        let d = self;
        if d.is_zero() {
            return Some((xd, yd));
        }
        let (mut x, mut y) = guess;
        for _ in 0..50 {
            let r2 = x * x + y * y;
            let radial = 1.0 + r2 * (d.k1 + r2 * (d.k2 + r2 * d.k3));
            let dr = d.k1 + r2 * (2.0 * d.k2 + 3.0 * d.k3 * r2);
            let (fx, fy) = d.apply(x, y);
            let (ex, ey) = (fx - xd, fy - yd);
            if ex.abs() < tol && ey.abs() < tol {
                return Some((x, y));
            }
            let j00 = radial + 2.0 * x * x * dr + 2.0 * d.p1 * y + 6.0 * d.p2 * x;
            let j01 = 2.0 * x * y * dr + 2.0 * d.p1 * x + 2.0 * d.p2 * y;
            let j10 = 2.0 * x * y * dr + 2.0 * d.p1 * x + 2.0 * d.p2 * y;
            let j11 = radial + 2.0 * y * y * dr + 6.0 * d.p1 * y + 2.0 * d.p2 * x;
            let det = j00 * j11 - j01 * j10;
            if det <= 1e-12 {
                return None;
            }
            x -= (j11 * ex - j01 * ey) / det;
            y -= (-j10 * ex + j00 * ey) / det;
            if !x.is_finite() || !y.is_finite() {
                return None;
            }
        }
        let (fx, fy) = d.apply(x, y);
        ((fx - xd).abs() < 1e-9 && (fy - yd).abs() < 1e-9).then_some((x, y))
    }
}

/// Pinhole intrinsics with plumb-bob distortion.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CameraIntrinsics {
    /// Focal length in pixels, x.
    pub fx: f64,
    /// Focal length in pixels, y.
    pub fy: f64,
    /// Principal point, x (pixels).
    pub cx: f64,
    /// Principal point, y (pixels).
    pub cy: f64,
    /// Image width in pixels.
    pub width: u32,
    /// Image height in pixels.
    pub height: u32,
    /// Distortion of the lens.
    pub distortion: Distortion,
}

/// How camera-frame points become pixels.
///
/// Simulated rigs and ROS logs use a pinhole with distortion. KITTI and ROS `CameraInfo.P`
/// give a rectified 3×4 projection `P` applied after a rectifying rotation; that is
/// [`Projection::Rectified`], where `pixel = P · [R|0] · X_cam`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Projection {
    /// `pixel = K · distort(X/Z)`.
    Pinhole(CameraIntrinsics),
    /// `pixel = P · [R|0] · X`, with `R` folded into `p` (`p = P · [R|0]`).
    Rectified {
        /// The folded 3×4 matrix.
        p: Matrix3x4<f64>,
        /// Image width in pixels.
        width: u32,
        /// Image height in pixels.
        height: u32,
    },
}

impl Projection {
    /// Image width in pixels.
    #[must_use]
    pub fn width(&self) -> u32 {
        match self {
            Self::Pinhole(k) => k.width,
            Self::Rectified { width, .. } => *width,
        }
    }

    /// Image height in pixels.
    #[must_use]
    pub fn height(&self) -> u32 {
        match self {
            Self::Pinhole(k) => k.height,
            Self::Rectified { height, .. } => *height,
        }
    }
}

/// A pixel hit: column, row, depth along the optical axis.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PixelHit {
    /// Column, pixels.
    pub u: f64,
    /// Row, pixels.
    pub v: f64,
    /// Depth, metres (> 0).
    pub depth: f64,
}

/// One camera of a rig: its name, its model and its mount.
#[derive(Clone, Debug, PartialEq)]
pub struct CameraMount {
    /// The camera's name (its segment, producer and summary key).
    pub name: SensorName,
    /// The camera model.
    pub projection: Projection,
    /// Camera optical frame → vehicle frame.
    pub to_vehicle: Isometry3<f64>,
}

/// One lidar of a rig: its name and its mount.
#[derive(Clone, Debug, PartialEq)]
pub struct LidarMount {
    /// The lidar's name.
    pub name: SensorName,
    /// Lidar frame → vehicle frame.
    pub to_vehicle: Isometry3<f64>,
}

/// One calibration epoch of a whole rig: every camera's model and mount and every lidar's
/// mount. Epochs are rig-wide (DESIGN.md §6): re-mounting one sensor is a new epoch for all.
///
/// `cameras` and `lidars` are non-empty with unique names ([`crate::validate::check_set`]);
/// the first of each is the rig's primary camera and lidar, which the one-camera helpers
/// ([`CalibrationSet::camera`], ...) name.
///
/// Serialised (the run spec, tools) in its wire encoding ([`crate::wire::EncodedSet`]):
/// lossless, and checked again like any message when read back.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(into = "crate::wire::EncodedSet", try_from = "crate::wire::EncodedSet")]
pub struct CalibrationSet {
    /// The epoch number (≥ 1).
    pub epoch: CalibEpoch,
    /// Frames captured at or after this time (and before the next epoch's) carry this epoch.
    pub valid_from: TimestampNs,
    /// The cameras, the primary one first.
    pub cameras: Vec<CameraMount>,
    /// The lidars, the primary one first.
    pub lidars: Vec<LidarMount>,
}

impl CalibrationSet {
    /// A one-camera, one-lidar rig with today's names `camera` and `lidar`.
    #[must_use]
    pub fn single(
        epoch: CalibEpoch,
        valid_from: TimestampNs,
        camera: Projection,
        camera_to_vehicle: Isometry3<f64>,
        lidar_to_vehicle: Isometry3<f64>,
    ) -> Self {
        Self {
            epoch,
            valid_from,
            cameras: vec![CameraMount {
                name: SensorName::camera(),
                projection: camera,
                to_vehicle: camera_to_vehicle,
            }],
            lidars: vec![LidarMount { name: SensorName::lidar(), to_vehicle: lidar_to_vehicle }],
        }
    }

    /// The primary camera's model.
    ///
    /// # Panics
    /// On a set without cameras, which no check lets through.
    #[must_use]
    pub fn camera(&self) -> &Projection {
        &self.cameras[0].projection
    }

    /// The primary camera's model, to change.
    pub fn camera_mut(&mut self) -> &mut Projection {
        &mut self.cameras[0].projection
    }

    /// The primary camera's optical frame → vehicle frame.
    #[must_use]
    pub fn camera_to_vehicle(&self) -> Isometry3<f64> {
        self.cameras[0].to_vehicle
    }

    /// The primary camera's mount, to change.
    pub fn camera_to_vehicle_mut(&mut self) -> &mut Isometry3<f64> {
        &mut self.cameras[0].to_vehicle
    }

    /// The primary lidar's frame → vehicle frame.
    #[must_use]
    pub fn lidar_to_vehicle(&self) -> Isometry3<f64> {
        self.lidars[0].to_vehicle
    }

    /// The primary lidar's mount, to change.
    pub fn lidar_to_vehicle_mut(&mut self) -> &mut Isometry3<f64> {
        &mut self.lidars[0].to_vehicle
    }

    /// The camera named `name`.
    #[must_use]
    pub fn camera_named(&self, name: &str) -> Option<&CameraMount> {
        self.cameras.iter().find(|c| c.name.as_str() == name)
    }

    /// The lidar named `name`.
    #[must_use]
    pub fn lidar_named(&self, name: &str) -> Option<&LidarMount> {
        self.lidars.iter().find(|l| l.name.as_str() == name)
    }

    /// The transform taking the primary lidar's points into the primary camera's optical
    /// frame.
    #[must_use]
    pub fn lidar_to_camera(&self) -> Isometry3<f64> {
        self.camera_to_vehicle().inverse() * self.lidar_to_vehicle()
    }

    /// The transform taking `lidar`'s points into `camera`'s optical frame.
    #[must_use]
    pub fn lidar_to_camera_of(lidar: &LidarMount, camera: &CameraMount) -> Isometry3<f64> {
        camera.to_vehicle.inverse() * lidar.to_vehicle
    }

    /// This epoch seen by one (camera, lidar) pair: a one-camera, one-lidar set with their
    /// names, what a per-camera fusion works with. `None` if either name is unknown.
    #[must_use]
    pub fn pair_view(&self, camera: &str, lidar: &str) -> Option<Self> {
        Some(Self {
            epoch: self.epoch,
            valid_from: self.valid_from,
            cameras: vec![self.camera_named(camera)?.clone()],
            lidars: vec![self.lidar_named(lidar)?.clone()],
        })
    }

    /// Projects one lidar-frame point (primary lidar into the primary camera). `None`
    /// unless depth > 0 and the pixel is inside the image (0 ≤ u < width, 0 ≤ v < height).
    #[must_use]
    pub fn project_point(&self, p: Point3<f64>) -> Option<PixelHit> {
        project_camera_point(self.camera(), self.lidar_to_camera() * p)
    }
}

/// Projects a point already in the camera's optical frame.
#[must_use]
#[inline]
pub fn project_camera_point(camera: &Projection, pc: Point3<f64>) -> Option<PixelHit> {
    let (u, v, depth) = match camera {
        Projection::Pinhole(k) => {
            if pc.z <= 0.0 {
                return None;
            }
            let (x, y) = (pc.x / pc.z, pc.y / pc.z);
            let (xd, yd) = if k.distortion.is_zero() { (x, y) } else { k.distortion.apply(x, y) };
            (k.fx * xd + k.cx, k.fy * yd + k.cy, pc.z)
        }
        Projection::Rectified { p, .. } => {
            let h = p * Vector3::new(pc.x, pc.y, pc.z).push(1.0);
            if h.z <= 0.0 {
                return None;
            }
            (h.x / h.z, h.y / h.z, h.z)
        }
    };
    let (w, h) = (f64::from(camera.width()), f64::from(camera.height()));
    (depth > 0.0 && (0.0..w).contains(&u) && (0.0..h).contains(&v)).then_some(PixelHit { u, v, depth })
}

#[cfg(test)]
mod tests {
    use super::*;
    use nalgebra::{Translation3, UnitQuaternion};

    fn rig() -> CalibrationSet {
        // Camera optical frame: x right, y down, z forward; vehicle: x forward, y left, z up.
        let cam_rot = UnitQuaternion::from_rotation_matrix(&nalgebra::Rotation3::from_matrix_unchecked(
            nalgebra::Matrix3::new(0.0, 0.0, 1.0, -1.0, 0.0, 0.0, 0.0, -1.0, 0.0),
        ));
        CalibrationSet::single(
            CalibEpoch(1),
            TimestampNs(0),
            Projection::Pinhole(CameraIntrinsics {
                fx: 1000.0,
                fy: 1000.0,
                cx: 640.0,
                cy: 360.0,
                width: 1280,
                height: 720,
                distortion: Distortion::default(),
            }),
            Isometry3::from_parts(Translation3::new(1.5, 0.0, 1.5), cam_rot),
            Isometry3::translation(1.0, 0.0, 1.8),
        )
    }

    #[test]
    fn point_straight_ahead_hits_principal_point() {
        let c = rig();
        // Straight ahead of the camera at its height: lidar z is 0.3 m above the camera.
        let hit = c.project_point(Point3::new(9.5, 0.0, -0.3)).unwrap();
        assert!((hit.u - 640.0).abs() < 1e-9 && (hit.v - 360.0).abs() < 1e-9);
        assert!((hit.depth - 9.0).abs() < 1e-9);
    }

    #[test]
    fn behind_and_outside_are_dropped() {
        let c = rig();
        assert!(c.project_point(Point3::new(-5.0, 0.0, 0.0)).is_none());
        assert!(c.project_point(Point3::new(2.0, 50.0, 0.0)).is_none());
    }

    #[test]
    fn undistort_inverts_apply() {
        let d = Distortion { k1: -0.05, k2: 0.01, p1: 0.001, p2: -0.002, k3: 0.0 };
        for (x, y) in [(0.0, 0.0), (0.3, -0.2), (-0.6, 0.35)] {
            let (xd, yd) = d.apply(x, y);
            let (ux, uy) = d.undistort(xd, yd).unwrap();
            assert!((ux - x).abs() < 1e-9 && (uy - y).abs() < 1e-9, "({x}, {y}) -> ({ux}, {uy})");
        }
        // A lens that folds over: no inverse out there.
        let fold = Distortion { k1: -1.0, ..Distortion::default() };
        assert!(fold.undistort(2.0, 0.0).is_none());
    }

    #[test]
    fn left_of_camera_is_left_in_image() {
        let c = rig();
        let hit = c.project_point(Point3::new(10.0, 1.0, -0.3)).unwrap();
        assert!(hit.u < 640.0);
    }
}
