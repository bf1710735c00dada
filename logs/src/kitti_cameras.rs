//! A KITTI folder as a rig of colour cameras (issue 18 §3): `image_2` with P2 and, when the
//! folder has it, `image_3` with P3, around the one velodyne.
//!
//! Both cameras are rectified into camera 0's frame, so each is a
//! [`Projection::Rectified`](calib::Projection::Rectified) with `p = Pk · [R0_rect|0]` (folded
//! as in [`super::kitti`]), the same `lidar_to_vehicle = Tr_velo_to_cam` and
//! `camera_to_vehicle = identity`. Projecting a sweep with camera k's set gives KITTI's
//! `Pk · R0_rect · Tr_velo_to_cam · X` to rounding; the two sets describe one rig frame (camera
//! 0), so a rig projector can take both.
//!
//! Epochs are rig-wide: frames in number order, stamped 100 ms apart as in the one-camera
//! reader, and a new epoch whenever any camera's calibration or image size differs from the
//! previous frame's; its `valid_from` is that frame's stamp.

use std::path::{Path, PathBuf};

use calib::{CalibrationSet, CameraMount, SensorName};
use shared::frames::PointRecord;
use shared::{CalibEpoch, TimestampNs};

use super::kitti::{
    self, list, png_size, read_velodyne, sweep_points, velodyne_point, KittiFrame, KittiImage, KittiIndex,
    KITTI_PERIOD_NS, MAX_CALIB_FILE,
};
use super::LogError;

/// The colour cameras of KITTI: folder, the calib key of its projection matrix, and the
/// sensor name a replay gives it (`camera` for image_2, as in a one-camera replay).
const CAMERAS: [(&str, &str, &str); 2] = [("image_2", "P2", "camera"), ("image_3", "P3", "camera_3")];

/// One camera's view of a frame.
#[derive(Clone, Debug, PartialEq)]
pub struct KittiCamera {
    /// The camera's folder, `image_2` or `image_3`.
    pub name: &'static str,
    /// Its sensor name in a replay: `camera` (image_2) or `camera_3` (image_3).
    pub sensor: SensorName,
    /// This frame's PNG.
    pub image: PathBuf,
    /// The camera's calibration for this frame (epoch and `valid_from` set rig-wide).
    pub calib: CalibrationSet,
}

/// One frame of a KITTI folder with every colour camera it has.
#[derive(Clone, Debug, PartialEq)]
pub struct KittiRigFrame {
    /// The frame's number as named in the folder (`000001`).
    pub name: String,
    /// The synthetic stamp (100 ms apart, the first at 0).
    pub stamp: TimestampNs,
    /// The velodyne sweep.
    pub velodyne: PathBuf,
    /// The cameras, `image_2` first.
    pub cameras: Vec<KittiCamera>,
}

impl KittiRigFrame {
    /// Reads the sweep.
    ///
    /// # Errors
    /// [`LogError`] naming the file if it cannot be read or is not whole 16-byte points.
    pub fn points(&self) -> Result<Vec<PointRecord>, LogError> {
        Ok(read_velodyne(&self.velodyne)?.chunks_exact(16).map(velodyne_point).collect())
    }
}

/// Reads a KITTI folder as a rig: `velodyne/`, `calib/`, `image_2/` and, if present,
/// `image_3/` (then every calib file must give P3). Every frame needs its file in each.
///
/// # Errors
/// [`LogError`] (one line naming the file, and the line and key for calib files) if a folder
/// cannot be listed, a frame misses a file, a PNG header or a calib file is bad, or the
/// folder has no frames.
pub fn kitti_cameras(root: &Path) -> Result<Vec<KittiRigFrame>, LogError> {
    match rig_frames(root)? {
        (_, Some(e)) => Err(e),
        (frames, None) => Ok(frames.into_iter().map(|(f, _)| f).collect()),
    }
}

/// A rig folder's whole frames, each with its sweep's point count, and its break.
type RigScan = (Vec<(KittiRigFrame, usize)>, Option<LogError>);

/// The frames of a KITTI rig folder, each with its sweep's point count, up to its break if
/// it has one: a frame after the first with a file missing or malformed (see
/// [`kitti_cameras`]; a bad first frame is an error).
fn rig_frames(root: &Path) -> Result<RigScan, LogError> {
    let velo = list(&root.join("velodyne"), "bin")?;
    let calibs = list(&root.join("calib"), "txt")?;
    let dirs: Vec<(&'static str, &str, &str)> =
        CAMERAS.into_iter().filter(|(d, _, _)| root.join(d).is_dir()).collect();
    if velo.is_empty() || dirs.is_empty() {
        return Err(LogError::missing(root, "KITTI folder has no frames (velodyne/NNNNNN.bin, image_2/)"));
    }
    let images = dirs.iter().map(|(d, _, _)| list(&root.join(d), "png")).collect::<Result<Vec<_>, _>>()?;
    let missing = |dir: &str, name: &str, ext: &str| {
        let path = root.join(dir).join(format!("{name}.{ext}"));
        LogError::kitti(&path, None, None, format!("missing: frame {name} has no {dir} file"))
    };
    let mut frames: Vec<(KittiRigFrame, usize)> = Vec::with_capacity(velo.len());
    let (mut epoch, mut valid_from) = (CalibEpoch::NONE, TimestampNs(0));
    for (i, (n, (name, velodyne))) in velo.iter().enumerate() {
        let stamp = TimestampNs(i as u64 * KITTI_PERIOD_NS);
        let scanned = (|| {
            let (_, calib_path) = calibs.get(n).ok_or_else(|| missing("calib", name, "txt"))?;
            let text = LogError::read_input_text(calib_path, MAX_CALIB_FILE)?;
            let parsed = kitti::parse_calib(calib_path, &text)?;
            let mut cameras = Vec::with_capacity(dirs.len());
            for ((dir, key, sensor), pngs) in dirs.iter().zip(&images) {
                let (_, image) = pngs.get(n).ok_or_else(|| missing(dir, name, "png"))?;
                let p = if *key == "P2" { Some(&parsed.p2) } else { parsed.p3.as_ref() };
                let p = p.ok_or_else(|| {
                    LogError::kitti(calib_path, None, Some(key), format!("missing (needed by {dir}/)"))
                })?;
                let (w, h) = png_size(image)?;
                let sensor = SensorName::new(sensor).map_err(|e| LogError::missing(root, e.0))?;
                let calib = parsed.to_set_with(p, w, h);
                cameras.push(KittiCamera { name: dir, sensor, image: image.clone(), calib });
            }
            let points = sweep_points(velodyne)?;
            Ok((KittiRigFrame { name: name.clone(), stamp, velodyne: velodyne.clone(), cameras }, points))
        })();
        // Epochs only from whole frames: a broken frame adds none.
        let scanned = scanned.map(|(mut f, points)| {
            let changed = frames.last().is_none_or(|(prev, _)| {
                prev.cameras.iter().zip(&f.cameras).any(|(a, b)| {
                    (a.calib.camera(), a.calib.camera_to_vehicle(), a.calib.lidar_to_vehicle())
                        != (b.calib.camera(), b.calib.camera_to_vehicle(), b.calib.lidar_to_vehicle())
                })
            });
            if changed {
                epoch = CalibEpoch(epoch.0 + 1);
                valid_from = stamp;
            }
            for c in &mut f.cameras {
                c.calib.epoch = epoch;
                c.calib.valid_from = valid_from;
            }
            (f, points)
        });
        if let Some(e) = kitti::until_break(&mut frames, scanned)? {
            return Ok((frames, Some(e)));
        }
    }
    Ok((frames, None))
}

/// Scans a KITTI folder with several cameras (see [`kitti_cameras`]) into the index a replay
/// uses: one rig-wide [`CalibrationSet`] per epoch, its cameras named by [`KittiCamera::sensor`].
pub(crate) fn scan_rig(root: &Path) -> Result<KittiIndex, LogError> {
    let (rig, error) = rig_frames(root)?;
    let mut sets: Vec<CalibrationSet> = Vec::new();
    let mut frames = Vec::with_capacity(rig.len());
    for (f, points) in &rig {
        let first = &f.cameras[0].calib;
        if sets.last().is_none_or(|s| s.epoch != first.epoch) {
            let cameras = f
                .cameras
                .iter()
                .map(|c| CameraMount { name: c.sensor.clone(), ..c.calib.cameras[0].clone() })
                .collect();
            sets.push(CalibrationSet { cameras, lidars: first.lidars.clone(), ..first.clone() });
        }
        let images = f
            .cameras
            .iter()
            .map(|c| KittiImage {
                path: c.image.clone(),
                width: c.calib.camera().width(),
                height: c.calib.camera().height(),
            })
            .collect();
        frames.push(KittiFrame {
            name: f.name.clone(),
            velodyne: f.velodyne.clone(),
            images,
            stamp: f.stamp,
            epoch: first.epoch,
            points: *points,
        });
    }
    let cameras =
        rig.first().map(|(f, _)| f.cameras.iter().map(|c| c.sensor.clone()).collect()).unwrap_or_default();
    Ok(KittiIndex { frames, sets, cameras, error })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CALIB: &str =
        "P2: 700 0 600 45 0 700 170 0.2 0 0 1 0.003\nP3: 700 0 600 -330 0 700 170 2 0 0 1 0.003\n\
R0_rect: 1 0 0 0 1 0 0 0 1\nTr_velo_to_cam: 0 -1 0 0 0 0 -1 -0.07 1 0 0 -0.27\n";

    fn folder(calibs: &[&str], with_image_3: bool) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let mut dirs = vec!["velodyne", "calib", "image_2"];
        if with_image_3 {
            dirs.push("image_3");
        }
        for d in &dirs {
            std::fs::create_dir(dir.path().join(d)).unwrap();
        }
        let png = image::RgbImage::new(8, 4);
        for (i, c) in calibs.iter().enumerate() {
            let name = format!("{i:06}");
            let pts: Vec<u8> = [5.0f32, 0.5, -0.2, 0.9].iter().flat_map(|v| v.to_le_bytes()).collect();
            std::fs::write(dir.path().join("velodyne").join(format!("{name}.bin")), pts).unwrap();
            std::fs::write(dir.path().join("calib").join(format!("{name}.txt")), c).unwrap();
            for d in &dirs[2..] {
                png.save(dir.path().join(d).join(format!("{name}.png"))).unwrap();
            }
        }
        dir
    }

    #[test]
    fn two_cameras_with_rig_wide_epochs() {
        let moved = CALIB.replace("-330 0 700", "-331 0 700");
        let dir = folder(&[CALIB, CALIB, &moved], true);
        let frames = kitti_cameras(dir.path()).unwrap();
        assert_eq!(frames.len(), 3);
        let names: Vec<_> = frames[0].cameras.iter().map(|c| c.name).collect();
        assert_eq!(names, ["image_2", "image_3"]);
        let epochs: Vec<_> =
            frames.iter().map(|f| (f.cameras[0].calib.epoch.0, f.cameras[1].calib.epoch.0)).collect();
        // Only P3 changed at frame 2: a new epoch for the whole rig.
        assert_eq!(epochs, [(1, 1), (1, 1), (2, 2)]);
        assert_eq!(frames[2].cameras[0].calib.valid_from, TimestampNs(2 * KITTI_PERIOD_NS));
        assert_ne!(frames[0].cameras[0].calib.camera(), frames[0].cameras[1].calib.camera());
        assert_eq!(frames[1].points().unwrap().len(), 1);
    }

    #[test]
    fn one_camera_folder_and_missing_p3() {
        let p2_only = CALIB.lines().filter(|l| !l.starts_with("P3")).collect::<Vec<_>>().join("\n");
        let dir = folder(&[&p2_only], false);
        assert_eq!(kitti_cameras(dir.path()).unwrap()[0].cameras.len(), 1);
        let dir = folder(&[&p2_only], true);
        let e = kitti_cameras(dir.path()).unwrap_err().to_string();
        assert!(e.ends_with("000000.txt: P3: missing (needed by image_3/)"), "{e}");
        let dir2 = folder(&[CALIB], true);
        std::fs::remove_file(dir2.path().join("image_3/000000.png")).unwrap();
        let e = kitti_cameras(dir2.path()).unwrap_err().to_string();
        assert!(
            e.contains("image_3/000000.png") && e.contains("missing: frame 000000 has no image_3 file"),
            "{e}"
        );
    }

    /// A rig folder whose third frame has a bad `image_3` PNG header breaks there: the scan
    /// keeps the two frames before it (and their epoch), the break names the file, and
    /// `kitti_cameras`, which reads a folder whole, refuses it with the same line.
    #[test]
    fn a_bad_header_after_the_first_frame_is_the_rig_folder_s_break() {
        let moved = CALIB.replace("-330 0 700", "-331 0 700");
        let dir = folder(&[CALIB, CALIB, &moved, CALIB], true);
        std::fs::write(dir.path().join("image_3/000002.png"), b"not a png").unwrap();
        let index = scan_rig(dir.path()).unwrap();
        assert_eq!(index.frames.len(), 2);
        assert_eq!(index.sets.len(), 1, "the broken frame's epoch is not announced");
        let e = index.error.expect("a break").to_string();
        assert!(e.contains("image_3/000002.png") && e.contains("cannot read PNG header"), "{e}");
        assert_eq!(kitti_cameras(dir.path()).unwrap_err().to_string(), e);
        std::fs::write(dir.path().join("image_2/000000.png"), b"not a png").unwrap();
        let first = scan_rig(dir.path()).unwrap_err().to_string();
        assert!(first.contains("image_2/000000.png"), "a bad first frame refuses the folder: {first}");
    }
}
