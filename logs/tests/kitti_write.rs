//! The KITTI writer and the KITTI reader agree: what `KittiWriter` writes, `LogSource` reads
//! back with the same points, pixels, epochs and projection.

use calib::{CalibrationSet, CameraIntrinsics, Distortion, Projection};
use logs::{KittiWriteError, KittiWriter, LogFormat, LogSource};
use nalgebra::{Isometry3, Point3, Translation3, UnitQuaternion};
use shared::frames::{camera_image, lidar_points, ImageHeader, ImageView, PixelFormat, PointRecord};
use shared::{CalibEpoch, StreamKind, TimestampNs};

const W: u32 = 8;
const H: u32 = 6;

fn set(epoch: u64, x: f64) -> CalibrationSet {
    // Lidar axes (x fwd, y left, z up) to camera optical axes (x right, y down, z fwd).
    let optical = UnitQuaternion::from_quaternion(nalgebra::Quaternion::new(0.5, 0.5, -0.5, 0.5));
    CalibrationSet::single(
        CalibEpoch(epoch),
        TimestampNs(0),
        Projection::Pinhole(CameraIntrinsics {
            fx: 7.5,
            fy: 7.0,
            cx: 4.0,
            cy: 3.0,
            width: W,
            height: H,
            distortion: Distortion::default(),
        }),
        Isometry3::identity(),
        Isometry3::from_parts(Translation3::new(x, -0.1, 0.2), optical),
    )
}

fn points(i: u32) -> Vec<PointRecord> {
    (0..5)
        .map(|k| PointRecord {
            x: 5.0 + k as f32,
            y: 0.25 * k as f32 - 0.5,
            z: 0.125 * i as f32,
            intensity: 0.1 * k as f32,
            ring: 0,
            reserved: 0,
            instance: 0,
        })
        .collect()
}

fn rgb(i: u8) -> Vec<u8> {
    (0..W * H * 3).map(|k| (k as u8).wrapping_mul(7).wrapping_add(i)).collect()
}

#[test]
fn written_folders_read_back() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("kitti");
    let sets = [set(1, 0.0), set(2, 0.3)];
    let mut w = KittiWriter::create(&dir).unwrap();
    for i in 0..3u32 {
        let pixels = rgb(i as u8);
        let header = ImageHeader { width: W, height: H, format: PixelFormat::Rgb8 as u32, has_labels: 0 };
        let image = ImageView { header, rgb: &pixels, labels: None };
        let calibration = &sets[usize::from(i > 0)];
        w.write_frame(
            TimestampNs(u64::from(i) * 50_000_000),
            &points(i),
            std::slice::from_ref(&image),
            calibration,
        )
        .unwrap();
    }
    assert_eq!(w.frames(), 3);
    w.finish().unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.join("timestamps.txt")).unwrap(),
        "0.000000000\n0.050000000\n0.100000000\n"
    );

    let src = LogSource::open(&dir).unwrap();
    assert_eq!(src.format(), LogFormat::Kitti);
    assert_eq!(src.frame_count(StreamKind::Lidar), 3);
    let read = src.calibrations();
    assert_eq!(read.len(), 2, "{read:?}");
    // The reader's projection (rectified, camera frame = vehicle frame) gives the writer's
    // pixels for points in front of the camera.
    for (written, read) in sets.iter().zip(read) {
        for p in [Point3::new(6.0, 0.2, -0.1), Point3::new(9.0, -0.4, 0.3), Point3::new(4.0, 0.0, 0.0)] {
            let (a, b) = (written.project_point(p).unwrap(), read.project_point(p).unwrap());
            assert!((a.u - b.u).abs() < 1e-9 && (a.v - b.v).abs() < 1e-9, "{a:?} vs {b:?}");
            assert!((a.depth - b.depth).abs() < 1e-9);
        }
        let moved = written.lidar_to_camera().translation.vector - read.lidar_to_camera().translation.vector;
        assert!(moved.norm() < 1e-9, "{moved}");
        assert!((read.lidar_to_camera().rotation.angle_to(&written.lidar_to_camera().rotation)) < 1e-9);
    }

    let frames: Vec<_> = src.frames().unwrap().collect::<Result<_, _>>().unwrap();
    assert_eq!(frames.len(), 6);
    // Decoded ahead on a pool, round-robin: the same frames in the same order, whatever the
    // number of threads and the depth.
    for (threads, depth) in [(1, 1), (2, 1), (3, 2), (8, 4)] {
        let ahead: Vec<_> =
            src.frames().unwrap().prefetch(threads, depth, &dir).unwrap().collect::<Result<_, _>>().unwrap();
        let key = |f: &logs::LogFrame| {
            (f.stream, f.stamp, f.epoch, f.index, f.name.clone(), f.to_payload().unwrap())
        };
        assert_eq!(ahead.iter().map(key).collect::<Vec<_>>(), frames.iter().map(key).collect::<Vec<_>>());
    }
    // A broken image yields the frames before it, then its error once, then ends.
    std::fs::write(dir.join("image_2").join("000001.png"), b"not a png").unwrap();
    let items: Vec<_> = src.frames().unwrap().prefetch(2, 1, &dir).unwrap().collect();
    assert_eq!(items.len(), 4, "{items:?}");
    assert!(items[..3].iter().all(Result::is_ok) && items[3].is_err(), "{items:?}");
    for (k, f) in frames.iter().enumerate() {
        let i = (k / 2) as u32;
        assert_eq!(f.epoch, CalibEpoch(1 + u64::from(i > 0)), "{}", f.name);
        let payload = f.to_payload().unwrap();
        if f.stream == StreamKind::Lidar {
            assert_eq!(lidar_points(&payload).unwrap(), points(i).as_slice());
        } else {
            assert_eq!(camera_image(&payload).unwrap().rgb, rgb(i as u8).as_slice());
        }
    }
}

#[test]
fn refuses_a_non_empty_directory_and_a_file() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("x"), b"x").unwrap();
    let e = KittiWriter::create(tmp.path()).unwrap_err();
    assert!(matches!(e, KittiWriteError::NotEmpty(_)), "{e}");
    assert!(e.to_string().contains("non-empty") && !e.to_string().contains('\n'), "{e}");
    let e = KittiWriter::create(&tmp.path().join("x")).unwrap_err();
    assert!(matches!(e, KittiWriteError::NotADirectory(_)), "{e}");
}

/// A rig of two cameras: the second is written as `image_3` with its `P3`, and reads back as
/// camera `camera_3` projecting the lidar as the written rig's second camera does.
#[test]
fn a_second_camera_reads_back_as_camera_3() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("kitti");
    let mut rig = set(1, 0.0);
    let mut second = rig.cameras[0].clone();
    second.name = calib::SensorName::new("left").unwrap();
    if let Projection::Pinhole(k) = &mut second.projection {
        (k.fx, k.cx) = (6.0, 3.5);
    }
    // Turned 0.3 rad about the first camera's vertical axis, 0.5 m to its right.
    second.to_vehicle = Isometry3::from_parts(
        Translation3::new(0.5, 0.0, 0.05),
        UnitQuaternion::from_axis_angle(&nalgebra::Vector3::y_axis(), 0.3),
    );
    rig.cameras.push(second);
    let mut w = KittiWriter::create(&dir).unwrap();
    let header = ImageHeader { width: W, height: H, format: PixelFormat::Rgb8 as u32, has_labels: 0 };
    let (first_rgb, second_rgb) = (rgb(1), rgb(2));
    let images = [
        ImageView { header, rgb: &first_rgb, labels: None },
        ImageView { header, rgb: &second_rgb, labels: None },
    ];
    w.write_frame(TimestampNs(0), &points(0), &images, &rig).unwrap();
    w.finish().unwrap();
    assert_eq!(std::fs::read_dir(dir.join("image_3")).unwrap().count(), 1);

    let src = LogSource::open(&dir).unwrap();
    let names: Vec<String> = src.sensors().iter().map(|s| s.name.to_string()).collect();
    assert_eq!(names, ["camera", "camera_3", "lidar"], "{names:?}");
    let read = &src.calibrations()[0];
    for (written, read_as) in [("camera", "camera"), ("left", "camera_3")] {
        let a = rig.pair_view(written, "lidar").unwrap();
        let b = read.pair_view(read_as, "lidar").unwrap();
        for p in [Point3::new(6.0, 0.2, -0.1), Point3::new(9.0, -0.4, 0.3), Point3::new(7.0, -1.0, 0.0)] {
            let (a, b) = (a.project_point(p), b.project_point(p));
            match (a, b) {
                (Some(a), Some(b)) => {
                    assert!(
                        (a.u - b.u).abs() < 1e-9 && (a.v - b.v).abs() < 1e-9,
                        "{read_as}: {a:?} vs {b:?}"
                    );
                    assert!((a.depth - b.depth).abs() < 1e-9, "{read_as}");
                }
                (a, b) => assert_eq!(a.is_some(), b.is_some(), "{read_as}: {a:?} vs {b:?}"),
            }
        }
    }
    // Each camera's pixels under its own name.
    for f in src.frames().unwrap().map(Result::unwrap).filter(|f| f.stream == StreamKind::Camera) {
        let want = if f.sensor.as_str() == "camera" { &first_rgb } else { &second_rgb };
        assert_eq!(
            camera_image(&f.to_payload().unwrap()).unwrap().rgb,
            want.as_slice(),
            "{}",
            f.sensor.as_str()
        );
    }
}
