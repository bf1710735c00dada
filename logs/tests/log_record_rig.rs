//! A rig's recording (issue 18 §3): every camera and lidar on its own topics, read back as a
//! rig under the same names, with rig-wide epochs, and `LogOptions::cameras` choosing some.

use std::path::Path;

use calib::{CalibrationSet, CameraIntrinsics, CameraMount, Distortion, LidarMount, Projection, SensorName};
use logs::{bag_cameras, LogOptions, LogSource, McapRecorder, RecorderTopics};
use nalgebra::{Isometry3, Translation3, UnitQuaternion, Vector3};
use shared::frames::{ImageHeader, ImageView, PointRecord};
use shared::{CalibEpoch, FrameSeq, StreamKind, TimestampNs};

const MS: u64 = 1_000_000;

fn name(s: &str) -> SensorName {
    SensorName::new(s).unwrap()
}

fn camera(n: &str, fx: f64, yaw: f64) -> CameraMount {
    let optical = UnitQuaternion::from_rotation_matrix(&nalgebra::Rotation3::from_matrix_unchecked(
        nalgebra::Matrix3::new(0.0, 0.0, 1.0, -1.0, 0.0, 0.0, 0.0, -1.0, 0.0),
    ));
    CameraMount {
        name: name(n),
        projection: Projection::Pinhole(CameraIntrinsics {
            fx,
            fy: fx,
            cx: 8.0,
            cy: 6.0,
            width: 16,
            height: 12,
            distortion: Distortion::default(),
        }),
        to_vehicle: Isometry3::from_parts(
            Translation3::new(1.0, 0.0, 1.5),
            UnitQuaternion::from_axis_angle(&Vector3::z_axis(), yaw) * optical,
        ),
    }
}

/// Two epochs of a rig of `front` and `back` around `roof`: epoch 2 re-aims `back` only.
fn sets() -> Vec<CalibrationSet> {
    let lidar = LidarMount { name: name("roof"), to_vehicle: Isometry3::translation(0.5, 0.0, 2.0) };
    (1..=2u64)
        .map(|e| CalibrationSet {
            epoch: CalibEpoch(e),
            valid_from: TimestampNs(if e == 1 { 0 } else { 1200 * MS }),
            cameras: vec![camera("front", 20.0, 0.0), camera("back", 22.0, 3.1 + 0.01 * e as f64)],
            lidars: vec![lidar.clone()],
        })
        .collect()
}

fn record(path: &Path) {
    let cams = [name("front"), name("back")];
    let mut rec = McapRecorder::create_rig(path, &cams, &[name("roof")]).unwrap();
    for s in sets() {
        rec.write_calibration(&s, s.valid_from).unwrap();
    }
    let points: Vec<PointRecord> = (0..50u16)
        .map(|i| PointRecord {
            x: 5.0,
            y: f32::from(i) * 0.1 - 2.5,
            z: 0.0,
            intensity: 0.5,
            ring: 0,
            reserved: 0,
            instance: 0,
        })
        .collect();
    let rgb = vec![7u8; 16 * 12 * 3];
    let view = ImageView {
        header: ImageHeader { width: 16, height: 12, format: 1, has_labels: 0 },
        rgb: &rgb,
        labels: None,
    };
    for i in 0..4u64 {
        let t = TimestampNs(1000 * MS + i * 100 * MS);
        let epoch = CalibEpoch(if t.0 >= 1200 * MS { 2 } else { 1 });
        let lidar = rec.sensor_index("roof").unwrap();
        rec.write_lidar_of(lidar, t, epoch, FrameSeq(i), &points).unwrap();
        for c in ["front", "back"] {
            let k = rec.sensor_index(c).unwrap();
            rec.write_camera_of(k, TimestampNs(t.0 + 5 * MS), epoch, FrameSeq(i), &view).unwrap();
        }
    }
    assert!(rec.sensor_index("nope").is_err());
    rec.finish().unwrap();
}

#[test]
fn a_rig_recording_replays_every_camera_under_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rig.mcap");
    record(&path);
    let rig = bag_cameras(&path, None).unwrap();
    let topics: Vec<&str> = rig.cameras.iter().map(|c| c.image_topic.as_str()).collect();
    assert_eq!(topics, [RecorderTopics::camera_image("back"), RecorderTopics::camera_image("front")]);
    assert_eq!(rig.lidar_topic, RecorderTopics::lidar_points("roof"));

    let log = LogSource::open(&path).unwrap();
    let sensors: Vec<(String, StreamKind)> =
        log.sensors().iter().map(|s| (s.name.to_string(), s.kind)).collect();
    assert_eq!(
        sensors,
        [
            ("back".to_string(), StreamKind::Camera),
            ("front".to_string(), StreamKind::Camera),
            ("roof".to_string(), StreamKind::Lidar)
        ]
    );
    // Re-aiming one camera is a new epoch for the rig, and each mount is as recorded.
    let want = sets();
    let got = log.calibrations();
    assert_eq!(got.len(), 2);
    for (g, w) in got.iter().zip(&want) {
        for c in &w.cameras {
            let gc = g.camera_named(c.name.as_str()).unwrap();
            assert_eq!(gc.projection, c.projection);
            assert!((gc.to_vehicle.to_homogeneous() - c.to_vehicle.to_homogeneous()).norm() < 1e-12);
        }
        let lidar = g.lidar_named("roof").unwrap();
        assert!((lidar.to_vehicle.to_homogeneous() - w.lidars[0].to_vehicle.to_homogeneous()).norm() < 1e-12);
    }
    let frames: Vec<(String, u64, u64)> = log
        .frames()
        .unwrap()
        .map(|f| f.unwrap())
        .map(|f| (f.sensor.to_string(), f.index, f.epoch.0))
        .collect();
    assert_eq!(frames.len(), 12);
    // Images of one stamp come in file order (front was recorded first).
    assert_eq!(frames[..3], [("roof".into(), 0, 1), ("front".into(), 0, 1), ("back".into(), 0, 1)]);
    assert_eq!(frames[11], ("back".into(), 3, 2));
}

#[test]
fn cameras_option_chooses_by_name_or_topic_and_names_what_is_there() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rig.mcap");
    record(&path);
    let opts = |v: &[&str]| LogOptions {
        cameras: Some(v.iter().map(|s| (*s).to_string()).collect()),
        ..LogOptions::default()
    };
    let log = LogSource::open_with(&path, &opts(&["/front/image_raw"])).unwrap();
    let names: Vec<String> = log.sensors().iter().map(|s| s.name.to_string()).collect();
    assert_eq!(names, ["front", "roof"]);
    // Epochs cover the whole rig chosen: front never changed, so one epoch.
    assert_eq!(log.calibrations().len(), 1);
    let log = LogSource::open_with(&path, &opts(&["front", "back"])).unwrap();
    let names: Vec<String> = log.sensors().iter().map(|s| s.name.to_string()).collect();
    assert_eq!(names, ["front", "back", "roof"]);
    let e = LogSource::open_with(&path, &opts(&["front", "side"])).unwrap_err().to_string();
    assert!(
        e.contains("--cameras: no camera side in the bag; its cameras: back (/back/image_raw), front (/front/image_raw)")
            && !e.contains('\n'),
        "{e}"
    );
}
