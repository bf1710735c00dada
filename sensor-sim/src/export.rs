//! `sim export --format kitti`: writes a scenario's frames as a KITTI object-detection style
//! folder.
//!
//! ```text
//! DIR/velodyne/NNNNNN.bin   float32 x, y, z, intensity per point (lidar frame)
//! DIR/image_2/NNNNNN.png    rgb8, RECTIFIED: rendered with the epoch's fx, fy, cx, cy and
//!                           zero distortion, as KITTI images are rectified
//! DIR/calib/NNNNNN.txt      P0..P3 = [K | 0], R0_rect = I, Tr_velo_to_cam = lidar → camera
//!                           optical transform of the epoch in force, Tr_imu_to_velo = [I | 0]
//!                           (the simulation has no IMU), in KITTI's "%.12e" text format
//! DIR/timestamps.txt        capture time of each frame, seconds from the start of the drive
//! ```
//!
//! Frame `i` is lidar sweep `i`, captured at `i / lidar.rate_hz`; its image is rendered at
//! the same instant. A recalibration in the scenario shows as a change in the calib files.

use crate::camera::{CameraOptions, CameraRenderer};
use crate::lidar::LidarRenderer;
use crate::scenario::Scenario;
use nalgebra::Matrix3x4;
use shared::frames::{camera_image, lidar_points};
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Why an export failed.
#[derive(Debug)]
pub enum ExportError {
    /// The output directory exists and is not empty.
    NotEmpty(PathBuf),
    /// The output path exists and is not a directory.
    NotADirectory(PathBuf),
    /// Reading or writing a file failed.
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// PNG encoding failed.
    Png {
        /// The file.
        path: PathBuf,
        /// The encoder's message.
        message: String,
    },
}

impl fmt::Display for ExportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotEmpty(p) => write!(f, "{}: refusing to export into a non-empty directory", p.display()),
            Self::NotADirectory(p) => write!(f, "{}: exists and is not a directory", p.display()),
            Self::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Self::Png { path, message } => write!(f, "{}: cannot encode PNG: {message}", path.display()),
        }
    }
}

impl std::error::Error for ExportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ExportError + '_ {
    move |source| ExportError::Io { path: path.to_path_buf(), source }
}

/// Formats like C's `%.12e` (what KITTI's calib files use): `7.215377000000e+02`.
#[must_use]
pub fn fmt_e12(v: f64) -> String {
    let v = if v == 0.0 { 0.0 } else { v }; // no "-0"
    let s = format!("{v:.12e}");
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mant}e{sign}{:02}", exp.abs())
}

fn line(name: &str, values: &[f64]) -> String {
    let mut s = format!("{name}:");
    for v in values {
        s.push(' ');
        s.push_str(&fmt_e12(*v));
    }
    s.push('\n');
    s
}

fn row_major(m: &Matrix3x4<f64>) -> Vec<f64> {
    (0..3).flat_map(|r| (0..4).map(move |c| m[(r, c)])).collect()
}

/// The text of a KITTI calib file for one epoch's calibration.
#[must_use]
pub fn kitti_calib_text(set: &calib::CalibrationSet) -> String {
    let calib::Projection::Pinhole(k) = set.camera else {
        unreachable!("the simulation's camera is a pinhole")
    };
    let p = Matrix3x4::new(k.fx, 0.0, k.cx, 0.0, 0.0, k.fy, k.cy, 0.0, 0.0, 0.0, 1.0, 0.0);
    let tr = set.lidar_to_camera().to_homogeneous();
    let tr34: Matrix3x4<f64> = tr.fixed_view::<3, 4>(0, 0).into_owned();
    let ident = Matrix3x4::new(1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0);
    let mut s = String::new();
    for name in ["P0", "P1", "P2", "P3"] {
        s.push_str(&line(name, &row_major(&p)));
    }
    s.push_str(&line("R0_rect", &[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]));
    s.push_str(&line("Tr_velo_to_cam", &row_major(&tr34)));
    s.push_str(&line("Tr_imu_to_velo", &row_major(&ident)));
    s.push('\n');
    s
}

/// Writes `frames` frames of `scenario` into `dir` in the KITTI layout (see the module docs).
/// `dir` is created if missing and must be empty if present. `progress` is called with the
/// number of frames written after each frame.
///
/// # Errors
/// [`ExportError`] naming the path.
pub fn export_kitti(
    scenario: &Scenario,
    frames: usize,
    dir: &Path,
    progress: &mut dyn FnMut(usize),
) -> Result<(), ExportError> {
    match std::fs::metadata(dir) {
        Ok(m) if !m.is_dir() => return Err(ExportError::NotADirectory(dir.to_path_buf())),
        Ok(_) => {
            if std::fs::read_dir(dir).map_err(io(dir))?.next().is_some() {
                return Err(ExportError::NotEmpty(dir.to_path_buf()));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(io(dir))?
        }
        Err(e) => return Err(ExportError::Io { path: dir.to_path_buf(), source: e }),
    }
    for sub in ["velodyne", "image_2", "calib"] {
        let p = dir.join(sub);
        std::fs::create_dir_all(&p).map_err(io(&p))?;
    }
    let schedule = scenario.calibration_schedule();
    let mut lidar = LidarRenderer::new(scenario);
    let mut camera = CameraRenderer::with_options(scenario, CameraOptions { distortion: false });
    let mut lidar_buf: Vec<u8> = Vec::with_capacity(lidar.max_payload_len());
    let mut cam_buf: Vec<u8> = Vec::with_capacity(camera.payload_len());
    let mut bin: Vec<u8> = Vec::new();
    let mut stamps = String::new();
    for i in 0..frames {
        let t = scenario.lidar_frame_time(i as u64);
        let name = format!("{i:06}");

        lidar_buf.clear();
        let sweep = lidar.render(t, i as u64, &mut lidar_buf).expect("a Vec sink never fills");
        bin.clear();
        for p in lidar_points(&lidar_buf).expect("whole points") {
            for v in [p.x, p.y, p.z, p.intensity] {
                bin.extend_from_slice(&v.to_le_bytes());
            }
        }
        let path = dir.join("velodyne").join(format!("{name}.bin"));
        std::fs::write(&path, &bin).map_err(io(&path))?;

        cam_buf.clear();
        camera.render(t, &mut cam_buf).expect("a Vec sink never fills");
        let view = camera_image(&cam_buf).expect("own payload parses");
        let path = dir.join("image_2").join(format!("{name}.png"));
        image::save_buffer_with_format(
            &path,
            view.rgb,
            view.header.width,
            view.header.height,
            image::ColorType::Rgb8,
            image::ImageFormat::Png,
        )
        .map_err(|e| ExportError::Png { path: path.clone(), message: e.to_string() })?;

        let set = &schedule[(sweep.epoch.0 - 1) as usize];
        let path = dir.join("calib").join(format!("{name}.txt"));
        std::fs::write(&path, kitti_calib_text(set)).map_err(io(&path))?;

        stamps.push_str(&format!("{:.9}\n", t.0 as f64 * 1e-9));
        progress(i + 1);
    }
    let path = dir.join("timestamps.txt");
    let mut f = std::fs::File::create(&path).map_err(io(&path))?;
    f.write_all(stamps.as_bytes()).map_err(io(&path))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_style_exponents() {
        assert_eq!(fmt_e12(721.5377), "7.215377000000e+02");
        assert_eq!(fmt_e12(-0.004069766), "-4.069766000000e-03");
        assert_eq!(fmt_e12(0.0), "0.000000000000e+00");
        assert_eq!(fmt_e12(-0.0), "0.000000000000e+00");
        assert_eq!(fmt_e12(1.0), "1.000000000000e+00");
        assert_eq!(fmt_e12(1e-120), "1.000000000000e-120");
    }
}
