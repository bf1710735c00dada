//! `sim export --format kitti`: layout, contents, and calib files that parse back.

use epochfuse::export::export_kitti;
use logs::KittiWriteError;
use nalgebra::{Matrix3x4, Matrix4, Point3, Vector4};
use sensor_sim::{CameraOptions, CameraRenderer, LidarRenderer, Scenario};
use shared::frames::{camera_image, lidar_points};
use std::collections::BTreeMap;

const SMALL: &str = r#"Scenario(
    name: "export",
    seed: 3,
    world: (generate: Urban(blocks_x: 2, blocks_y: 1)),
    trajectory: Road(speed_mps: 10.0),
    camera: (width: 320, height: 180),
    lidar: (beams: 16, azimuth_steps: 256),
    rig: (intrinsics: (fx: 250.0, fy: 250.0, cx: 160.0, cy: 90.0, k1: -0.05, k2: 0.01)),
    calibration: [(at_s: 0.25, changes: [LidarYawDeg(1.0), LidarOffsetM(0.0, 0.1, 0.0)])],
)"#;

/// A small KITTI calib reader: `KEY: floats` per line, in file order.
fn read_calib(text: &str) -> Vec<(String, Vec<f64>)> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (key, rest) = l.split_once(':').expect("KEY: values");
            let values = rest.split_whitespace().map(|v| v.parse::<f64>().expect("a float")).collect();
            (key.to_string(), values)
        })
        .collect()
}

fn mat34(v: &[f64]) -> Matrix3x4<f64> {
    assert_eq!(v.len(), 12);
    Matrix3x4::from_row_slice(v)
}

#[test]
fn exports_the_kitti_layout() {
    let s = Scenario::from_ron_str(SMALL, "export.ron").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("kitti");
    let mut calls = Vec::new();
    export_kitti(&s, 4, &dir, &mut |n| calls.push(n)).unwrap();
    assert_eq!(calls, vec![1, 2, 3, 4]);

    let schedule = s.calibration_schedule();
    let mut lidar = LidarRenderer::new(&s);
    let mut camera = CameraRenderer::with_options(&s, CameraOptions { distortion: false });
    let mut calibs = Vec::new();
    for i in 0..4u64 {
        let name = format!("{i:06}");
        let t = s.lidar_frame_time(i);

        // velodyne: float32 x, y, z, intensity, the sweep the lidar renders at t.
        let bin = std::fs::read(dir.join("velodyne").join(format!("{name}.bin"))).unwrap();
        assert_eq!(bin.len() % 16, 0);
        let mut sweep = Vec::new();
        lidar.render(t, i, &mut sweep).unwrap();
        let pts = lidar_points(&sweep).unwrap();
        assert_eq!(bin.len() / 16, pts.len());
        let f = |k: usize| f32::from_le_bytes(bin[k * 4..k * 4 + 4].try_into().unwrap());
        for (k, p) in pts.iter().enumerate().step_by(97) {
            assert_eq!([f(4 * k), f(4 * k + 1), f(4 * k + 2), f(4 * k + 3)], [p.x, p.y, p.z, p.intensity]);
        }

        // image_2: PNG of the rectified (undistorted) render.
        let png = image::open(dir.join("image_2").join(format!("{name}.png"))).unwrap().to_rgb8();
        assert_eq!(png.dimensions(), (320, 180));
        let mut frame = Vec::new();
        camera.render(t, &mut frame).unwrap();
        assert_eq!(png.as_raw().as_slice(), camera_image(&frame).unwrap().rgb);

        // calib: KITTI's keys, order and number format.
        let text = std::fs::read_to_string(dir.join("calib").join(format!("{name}.txt"))).unwrap();
        for word in text.split_whitespace().filter(|w| !w.ends_with(':')) {
            let (mant, exp) = word.split_once('e').unwrap();
            assert!(mant.trim_start_matches('-').len() == 14 && mant.contains('.'), "{word}");
            assert!(exp.len() == 3 && (exp.starts_with('+') || exp.starts_with('-')), "{word}");
        }
        let calib = read_calib(&text);
        let keys: Vec<&str> = calib.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["P0", "P1", "P2", "P3", "R0_rect", "Tr_velo_to_cam", "Tr_imu_to_velo"]);
        let map: BTreeMap<&str, &Vec<f64>> = calib.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let p2 = mat34(map["P2"]);
        assert_eq!(p2, Matrix3x4::new(250.0, 0.0, 160.0, 0.0, 0.0, 250.0, 90.0, 0.0, 0.0, 0.0, 1.0, 0.0));
        assert_eq!(map["R0_rect"].as_slice(), &[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]);
        let tr = mat34(map["Tr_velo_to_cam"]);
        let set = &schedule[(s.truth_epoch_at(t).0 - 1) as usize];
        let truth = set.lidar_to_camera().to_homogeneous();
        assert!((tr - truth.fixed_view::<3, 4>(0, 0)).abs().max() < 1e-11, "{tr} vs {truth}");

        // pixel = P2 · R0_rect · Tr_velo_to_cam · X agrees with the pinhole projection.
        let mut tr4 = Matrix4::identity();
        tr4.fixed_view_mut::<3, 4>(0, 0).copy_from(&tr);
        let undistorted = {
            let mut c = set.clone();
            if let calib::Projection::Pinhole(k) = &mut c.camera_mut() {
                k.distortion = calib::Distortion::default();
            }
            c
        };
        let mut projected = 0;
        for p in pts.iter().step_by(11) {
            let x = Vector4::new(f64::from(p.x), f64::from(p.y), f64::from(p.z), 1.0);
            let h = p2 * (tr4 * x);
            if let Some(hit) = undistorted.project_point(Point3::new(x.x, x.y, x.z)) {
                assert!((h.x / h.z - hit.u).abs() < 1e-6 && (h.y / h.z - hit.v).abs() < 1e-6);
                assert!((h.z - hit.depth).abs() < 1e-9);
                projected += 1;
            }
        }
        assert!(projected > 50, "{projected}");
        calibs.push(text);
    }
    // The recalibration at 0.25 s shows in frame 3 (0.3 s) and not before.
    assert_eq!(calibs[0], calibs[2]);
    assert_ne!(calibs[2], calibs[3]);

    let stamps = std::fs::read_to_string(dir.join("timestamps.txt")).unwrap();
    assert_eq!(stamps, "0.000000000\n0.100000000\n0.200000000\n0.300000000\n");

    // A second export into the now non-empty directory is refused.
    let e = export_kitti(&s, 1, &dir, &mut |_| {}).unwrap_err();
    assert!(matches!(e, KittiWriteError::NotEmpty(_)), "{e}");
    assert!(e.to_string().contains("non-empty"), "{e}");
    // And a file in the way is not a directory.
    let file = tmp.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    assert!(matches!(export_kitti(&s, 1, &file, &mut |_| {}), Err(KittiWriteError::NotADirectory(_))));
}

/// A surround rig exports its first two cameras as KITTI's image_2 and image_3 (KITTI has no
/// place for more), and reads back as two cameras: each image is its own camera's rectified
/// render, and `camera_3` projects the lidar as the scenario's second camera does.
#[test]
fn a_surround_rig_exports_its_first_two_cameras() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/drives/surround.ron");
    let s = Scenario::load(&path).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("kitti");
    let names = export_kitti(&s, 3, &dir, &mut |_| {}).unwrap();
    assert_eq!(names, ["front", "left"]);
    assert_eq!(std::fs::read_dir(dir.join("image_3")).unwrap().count(), 3);
    let left = s.for_sensor("left").unwrap();
    let mut camera = CameraRenderer::with_options(&left, CameraOptions { distortion: false });
    let t = s.lidar_frame_time(2);
    let mut frame = Vec::new();
    camera.render(t, &mut frame).unwrap();
    let png = image::open(dir.join("image_3").join("000002.png")).unwrap().to_rgb8();
    assert_eq!(png.as_raw().as_slice(), camera_image(&frame).unwrap().rgb);

    let src = logs::LogSource::open(&dir).unwrap();
    let read = &src.calibrations()[0];
    let truth = &s.calibration_schedule()[0];
    // The export is rectified: the truth without its lens distortion.
    let mut a = truth.pair_view("left", "lidar").unwrap();
    if let calib::Projection::Pinhole(k) = a.camera_mut() {
        k.distortion = calib::Distortion::default();
    }
    let b = read.pair_view("camera_3", "lidar").unwrap();
    let mut seen = 0;
    for k in 0..64 {
        let az = std::f64::consts::TAU * f64::from(k) / 64.0;
        let p = Point3::new(12.0 * az.cos(), 12.0 * az.sin(), -0.5);
        match (a.project_point(p), b.project_point(p)) {
            (Some(a), Some(b)) => {
                seen += 1;
                assert!((a.u - b.u).abs() < 1e-6 && (a.v - b.v).abs() < 1e-6, "{a:?} vs {b:?}");
            }
            (a, b) => assert_eq!(a.is_some(), b.is_some(), "azimuth {az}: {a:?} vs {b:?}"),
        }
    }
    assert!(seen > 4, "the left camera saw {seen} of 64 directions");
}
