//! The checks every calibration passes before anyone uses it, whether it came from a RON
//! file, a socket message or the calibration table.
//!
//! - every number finite;
//! - a rotation orthonormal within [`ROTATION_TOLERANCE`] (`max |RᵀR − I| ≤ 1e-5`) with
//!   determinant +1 (within the same tolerance); a quaternion of unit norm within the same;
//! - focal lengths positive; width and height in `1..=`[`MAX_IMAGE_SIDE`]; the principal
//!   point inside the image (`0 ≤ cx ≤ width`, `0 ≤ cy ≤ height`);
//! - the epoch not [`CalibEpoch::NONE`];
//! - every value plausible, not just finite (a focal length of 1e308 would overflow a
//!   projection): focal lengths in [`FOCAL_RANGE_PX`] (1..=1e5 px), each translation
//!   component within ±[`MAX_TRANSLATION_M`] (100 m), every entry of a rectified `P`
//!   within ±[`MAX_PROJECTION_ENTRY`] (a focal length times a translation); image sides are
//!   at most [`MAX_IMAGE_SIDE`] (above).

use std::fmt;

use nalgebra::{Isometry3, Matrix3, Quaternion, Rotation3, UnitQuaternion};
use shared::frames::MAX_IMAGE_SIDE;
use shared::CalibEpoch;

use crate::types::{CalibrationSet, CameraIntrinsics, Projection};

/// Plausible focal lengths, pixels (inclusive).
pub const FOCAL_RANGE_PX: (f64, f64) = (1.0, 1e5);
/// Largest plausible translation component of a sensor mount, metres.
pub const MAX_TRANSLATION_M: f64 = 100.0;
/// Largest plausible magnitude of an entry of a rectified projection matrix.
pub const MAX_PROJECTION_ENTRY: f64 = FOCAL_RANGE_PX.1 * MAX_TRANSLATION_M;

/// Tolerance of the orthonormality, determinant and unit-quaternion checks.
pub const ROTATION_TOLERANCE: f64 = 1e-5;

/// A calibration failed a check. `field` is a dotted path such as `camera.fx` or
/// `lidar_to_vehicle.rotation`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    /// Which field, dotted.
    pub field: String,
    /// What is wrong with it, one line.
    pub reason: String,
}

impl Invalid {
    /// An error for `field`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { field: field.into(), reason: reason.into() }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

impl std::error::Error for Invalid {}

/// Checks that `v` is finite.
///
/// # Errors
/// [`Invalid`] naming `field`.
pub fn finite(field: &str, v: f64) -> Result<f64, Invalid> {
    if v.is_finite() {
        Ok(v)
    } else {
        Err(Invalid::new(field, format!("{v} is not a finite number")))
    }
}

/// Checks that a 3×3 matrix is a proper rotation: finite, orthonormal within
/// [`ROTATION_TOLERANCE`], determinant +1.
///
/// # Errors
/// [`Invalid`] naming `field`.
pub fn check_rotation_matrix(field: &str, m: &Matrix3<f64>) -> Result<(), Invalid> {
    if let Some(v) = m.iter().find(|v| !v.is_finite()) {
        return Err(Invalid::new(field, format!("matrix entry {v} is not a finite number")));
    }
    let err = (m.transpose() * m - Matrix3::identity()).amax();
    // Huge finite entries can overflow to inf or NaN: both are refused.
    if err.is_nan() || err > ROTATION_TOLERANCE {
        return Err(Invalid::new(
            field,
            format!(
                "matrix is not orthonormal (max |RᵀR − I| = {err:.3e}, tolerance {ROTATION_TOLERANCE:e})"
            ),
        ));
    }
    let det = m.determinant();
    if det.is_nan() || (det - 1.0).abs() > ROTATION_TOLERANCE {
        return Err(Invalid::new(
            field,
            format!("determinant is {det:.6}, not +1 (a reflection, not a rotation)"),
        ));
    }
    Ok(())
}

/// Checks a rotation matrix and converts it to a unit quaternion (renormalised).
///
/// # Errors
/// [`Invalid`] naming `field`.
pub fn rotation_from_matrix(field: &str, m: &Matrix3<f64>) -> Result<UnitQuaternion<f64>, Invalid> {
    check_rotation_matrix(field, m)?;
    let q = UnitQuaternion::from_rotation_matrix(&Rotation3::from_matrix_unchecked(*m));
    let q = UnitQuaternion::new_normalize(*q.quaternion());
    // Paranoia: the conversion of an almost-orthonormal matrix must stay finite.
    if q.coords.iter().all(|c| c.is_finite()) {
        Ok(q)
    } else {
        Err(Invalid::new(field, "matrix does not convert to a rotation"))
    }
}

/// Checks a quaternion `(w, x, y, z)` for finiteness and unit norm within
/// [`ROTATION_TOLERANCE`], and returns it renormalised.
///
/// # Errors
/// [`Invalid`] naming `field`.
pub fn rotation_from_quaternion(
    field: &str,
    w: f64,
    x: f64,
    y: f64,
    z: f64,
) -> Result<UnitQuaternion<f64>, Invalid> {
    for v in [w, x, y, z] {
        finite(field, v)?;
    }
    let q = Quaternion::new(w, x, y, z);
    let n = q.norm();
    if n.is_nan() || (n - 1.0).abs() > ROTATION_TOLERANCE {
        return Err(Invalid::new(
            field,
            format!("quaternion norm is {n:.6}, not 1 (tolerance {ROTATION_TOLERANCE:e})"),
        ));
    }
    Ok(UnitQuaternion::new_normalize(q))
}

/// Checks an isometry held in a [`CalibrationSet`]: finite translation, unit rotation.
///
/// # Errors
/// [`Invalid`] naming `prefix.translation` or `prefix.rotation`.
pub fn check_isometry(prefix: &str, iso: &Isometry3<f64>) -> Result<(), Invalid> {
    let t = &iso.translation.vector;
    if t.iter().any(|v| !v.is_finite()) {
        return Err(Invalid::new(format!("{prefix}.translation"), "not finite"));
    }
    check_translation(&format!("{prefix}.translation"), t.as_slice())?;
    let q = iso.rotation.quaternion();
    rotation_from_quaternion(&format!("{prefix}.rotation"), q.w, q.i, q.j, q.k).map(|_| ())
}

/// Checks a translation: every component finite and within ±[`MAX_TRANSLATION_M`].
///
/// # Errors
/// [`Invalid`] naming `field`.
pub fn check_translation(field: &str, t: &[f64]) -> Result<(), Invalid> {
    for &v in t {
        finite(field, v)?;
        if v.abs() > MAX_TRANSLATION_M {
            return Err(Invalid::new(
                field,
                format!("{v} m is not a plausible mount offset (at most ±{MAX_TRANSLATION_M} m)"),
            ));
        }
    }
    Ok(())
}

/// Checks pinhole intrinsics. Field names are `{prefix}.fx` and so on.
///
/// # Errors
/// [`Invalid`] naming the first failing field.
pub fn check_intrinsics(prefix: &str, k: &CameraIntrinsics) -> Result<(), Invalid> {
    let f = |name: &str| format!("{prefix}.{name}");
    check_size(prefix, k.width, k.height)?;
    for (name, v) in [("fx", k.fx), ("fy", k.fy)] {
        finite(&f(name), v)?;
        if v <= 0.0 {
            return Err(Invalid::new(f(name), format!("focal length {v} is not positive")));
        }
        let (lo, hi) = FOCAL_RANGE_PX;
        if !(lo..=hi).contains(&v) {
            return Err(Invalid::new(f(name), format!("focal length {v} px is not in {lo}..={hi}")));
        }
    }
    for (name, v, side) in [("cx", k.cx, k.width), ("cy", k.cy, k.height)] {
        finite(&f(name), v)?;
        if !(0.0..=f64::from(side)).contains(&v) {
            return Err(Invalid::new(
                f(name),
                format!("principal point {v} is outside the image (0..={side})"),
            ));
        }
    }
    let d = &k.distortion;
    for (name, v) in [("k1", d.k1), ("k2", d.k2), ("p1", d.p1), ("p2", d.p2), ("k3", d.k3)] {
        finite(&format!("{prefix}.distortion.{name}"), v)?;
    }
    Ok(())
}

/// Checks an image size: both sides in `1..=MAX_IMAGE_SIDE`.
///
/// # Errors
/// [`Invalid`] naming `{prefix}.width` or `{prefix}.height`.
pub fn check_size(prefix: &str, width: u32, height: u32) -> Result<(), Invalid> {
    for (name, v) in [("width", width), ("height", height)] {
        if v == 0 || v > MAX_IMAGE_SIDE {
            return Err(Invalid::new(
                format!("{prefix}.{name}"),
                format!("{v} is not in 1..={MAX_IMAGE_SIDE}"),
            ));
        }
    }
    Ok(())
}

/// Checks a camera model. A rectified `p` must be finite with a left 3×3 block of positive
/// determinant (`K·R` of a camera with positive focal lengths).
///
/// # Errors
/// [`Invalid`] naming the first failing field under `camera`.
pub fn check_projection(p: &Projection) -> Result<(), Invalid> {
    match p {
        Projection::Pinhole(k) => check_intrinsics("camera", k),
        Projection::Rectified { p, width, height } => {
            check_size("camera", *width, *height)?;
            if let Some(v) = p.iter().find(|v| !v.is_finite()) {
                return Err(Invalid::new("camera.p", format!("entry {v} is not a finite number")));
            }
            if let Some(v) = p.iter().find(|v| v.abs() > MAX_PROJECTION_ENTRY) {
                return Err(Invalid::new(
                    "camera.p",
                    format!("entry {v} is not plausible (at most ±{MAX_PROJECTION_ENTRY:e})"),
                ));
            }
            let det = p.fixed_view::<3, 3>(0, 0).determinant();
            if !(det > 0.0 && det.is_finite()) {
                return Err(Invalid::new(
                    "camera.p",
                    format!("left 3×3 block has determinant {det}, not > 0"),
                ));
            }
            Ok(())
        }
    }
}

/// Most cameras a rig may have (the wire format's bound).
pub const MAX_CAMERAS: usize = 8;
/// Most lidars a rig may have (the wire format's bound).
pub const MAX_LIDARS: usize = 4;

/// Checks a whole calibration set: epoch ≥ 1, 1..=[`MAX_CAMERAS`] cameras and
/// 1..=[`MAX_LIDARS`] lidars with unique names, every camera model and every mount. A
/// one-camera rig's fields keep their one-camera names (`camera.fx`, `lidar_to_vehicle`);
/// others are `cameras[i]…`, `lidars[i]…`.
///
/// # Errors
/// [`Invalid`] naming the first failing field.
pub fn check_set(set: &CalibrationSet) -> Result<(), Invalid> {
    if set.epoch == CalibEpoch::NONE {
        return Err(Invalid::new("epoch", "epoch 0 means \"none\"; epochs start at 1"));
    }
    let (nc, nl) = (set.cameras.len(), set.lidars.len());
    if !(1..=MAX_CAMERAS).contains(&nc) {
        return Err(Invalid::new("cameras", format!("{nc} cameras, not 1..={MAX_CAMERAS}")));
    }
    if !(1..=MAX_LIDARS).contains(&nl) {
        return Err(Invalid::new("lidars", format!("{nl} lidars, not 1..={MAX_LIDARS}")));
    }
    let mut names: Vec<&str> = set.cameras.iter().map(|c| c.name.as_str()).collect();
    names.extend(set.lidars.iter().map(|l| l.name.as_str()));
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(Invalid::new("names", format!("two sensors are named {:?}", w[0])));
    }
    let single = nc == 1 && nl == 1;
    for (i, c) in set.cameras.iter().enumerate() {
        check_projection(&c.projection).map_err(|e| {
            if single {
                e
            } else {
                Invalid::new(e.field.replacen("camera", &format!("cameras[{i}]"), 1), e.reason)
            }
        })?;
        let field = if single { "camera_to_vehicle".to_string() } else { format!("cameras[{i}].to_vehicle") };
        check_isometry(&field, &c.to_vehicle)?;
    }
    for (i, l) in set.lidars.iter().enumerate() {
        let field = if single { "lidar_to_vehicle".to_string() } else { format!("lidars[{i}].to_vehicle") };
        check_isometry(&field, &l.to_vehicle)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_checks() {
        assert!(check_rotation_matrix("r", &Matrix3::identity()).is_ok());
        let refl = Matrix3::from_diagonal(&nalgebra::Vector3::new(1.0, 1.0, -1.0));
        assert!(check_rotation_matrix("r", &refl).unwrap_err().reason.contains("determinant"));
        let skew = Matrix3::new(1.0, 0.01, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0);
        assert!(check_rotation_matrix("r", &skew).unwrap_err().reason.contains("orthonormal"));
        let mut nan = Matrix3::identity();
        nan[(1, 2)] = f64::NAN;
        assert!(check_rotation_matrix("r", &nan).is_err());
        let tiny = Matrix3::new(1.0, 1e-7, 0.0, -1e-7, 1.0, 0.0, 0.0, 0.0, 1.0);
        assert!(rotation_from_matrix("r", &tiny).is_ok());
        assert!(rotation_from_quaternion("q", 1.0, 0.0, 0.0, 0.0).is_ok());
        assert!(rotation_from_quaternion("q", 1.001, 0.0, 0.0, 0.0).is_err());
        assert!(rotation_from_quaternion("q", f64::NAN, 0.0, 0.0, 0.0).is_err());
    }
}
