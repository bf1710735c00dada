//! Replays the real KITTI frames and the ROS 2 bag in `../shared/data` (skipped with a notice
//! when the folder is absent) and checks them against the independent reference numbers.

use std::path::PathBuf;

use calib::{CalibrationSet, Projection};
use logs::{LogFormat, LogFrame, LogSource};
use nalgebra::Point3;
use shared::frames::{camera_image, lidar_points};
use shared::{CalibEpoch, StreamKind, TimestampNs};

fn data(sub: &str) -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data").join(sub);
    if p.exists() {
        Some(p)
    } else {
        eprintln!("NOTICE: {} is absent; skipping this test", p.display());
        None
    }
}

struct Stats {
    points: usize,
    in_image: usize,
    mean_u: f64,
    mean_v: f64,
    mean_depth: f64,
}

fn project(frame: &LogFrame, set: &CalibrationSet) -> Stats {
    let payload = frame.to_payload().unwrap();
    assert_eq!(payload.len(), frame.payload_len());
    let points = lidar_points(&payload).unwrap();
    let (mut n, mut su, mut sv, mut sd) = (0usize, 0.0, 0.0, 0.0);
    for p in points {
        if let Some(hit) = set.project_point(Point3::new(f64::from(p.x), f64::from(p.y), f64::from(p.z))) {
            n += 1;
            su += hit.u;
            sv += hit.v;
            sd += hit.depth;
        }
    }
    Stats {
        points: points.len(),
        in_image: n,
        mean_u: su / n as f64,
        mean_v: sv / n as f64,
        mean_depth: sd / n as f64,
    }
}

fn check_reference(s: &Stats) {
    assert_eq!(s.points, 120_268);
    assert_eq!(s.in_image, 18_630);
    assert!((s.mean_u - 631.863492).abs() < 1e-3, "mean u {}", s.mean_u);
    assert!((s.mean_v - 257.150175).abs() < 1e-3, "mean v {}", s.mean_v);
    assert!((s.mean_depth - 16.530317).abs() < 1e-3, "mean depth {}", s.mean_depth);
}

fn all_frames(src: &LogSource) -> Vec<LogFrame> {
    src.frames().unwrap().collect::<Result<Vec<_>, _>>().unwrap()
}

#[test]
fn kitti_folder_frames_epochs_and_reference_projection() {
    let Some(dir) = data("kitti") else { return };
    let src = LogSource::open(&dir).unwrap();
    assert_eq!(src.format(), LogFormat::Kitti);
    assert_eq!(src.frame_count(StreamKind::Lidar), 3);
    assert_eq!(src.frame_count(StreamKind::Camera), 3);
    assert_eq!(src.camera_period().as_millis(), 100);
    assert_eq!(src.duration().as_millis(), 200);

    // 000000 comes from another rig: epoch 1; 000001 and 000002 share a calibration: epoch 2.
    let sets = src.calibrations();
    assert_eq!(sets.len(), 2);
    assert_eq!(sets[0].epoch, CalibEpoch(1));
    assert_eq!(sets[1].epoch, CalibEpoch(2));
    assert_eq!(sets[0].valid_from, TimestampNs(0));
    assert_eq!(sets[1].valid_from, TimestampNs(100_000_000));
    assert_eq!((sets[0].camera().width(), sets[0].camera().height()), (1224, 370));
    assert_eq!((sets[1].camera().width(), sets[1].camera().height()), (1242, 375));
    assert!(matches!(sets[1].camera(), Projection::Rectified { .. }));

    let frames = all_frames(&src);
    let summary: Vec<(StreamKind, u64, u64, u64, &str)> = frames
        .iter()
        .map(|f| (f.stream, f.stamp.0 / 1_000_000, f.epoch.0, f.index, f.name.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            (StreamKind::Lidar, 0, 1, 0, "000000"),
            (StreamKind::Camera, 0, 1, 0, "000000"),
            (StreamKind::Lidar, 100, 2, 1, "000001"),
            (StreamKind::Camera, 100, 2, 1, "000001"),
            (StreamKind::Lidar, 200, 2, 2, "000002"),
            (StreamKind::Camera, 200, 2, 2, "000002"),
        ]
    );
    for f in &frames {
        assert_eq!(f.payload_len(), src.max_payload_len(f.stream).min(f.payload_len()));
        if f.stream == StreamKind::Camera {
            let p = f.to_payload().unwrap();
            let img = camera_image(&p).unwrap();
            let set = src.calibration(f.epoch).unwrap();
            assert_eq!((img.header.width, img.header.height), (set.camera().width(), set.camera().height()));
            assert!(img.labels.is_none());
        }
    }

    let f1 = &frames[2];
    let stats = project(f1, src.calibration(f1.epoch).unwrap());
    check_reference(&stats);

    // The first in-image point of 000001 (README).
    let payload = f1.to_payload().unwrap();
    let p0 = lidar_points(&payload).unwrap()[0];
    assert_eq!((p0.x, p0.y, p0.z), (49.52, 22.668, 2.051));
    let hit = src
        .calibration(f1.epoch)
        .unwrap()
        .project_point(Point3::new(f64::from(p0.x), f64::from(p0.y), f64::from(p0.z)))
        .unwrap();
    assert!((hit.u - 278.317887).abs() < 1e-5 && (hit.v - 152.802221).abs() < 1e-5, "{hit:?}");
    assert!((hit.depth - 49.272164).abs() < 1e-5, "{hit:?}");

    // With the wrong epoch's calibration the points move by 1–3 px (README).
    let wrong = project(f1, &sets[0]);
    assert!((wrong.mean_u - stats.mean_u).abs() > 0.5 || (wrong.mean_v - stats.mean_v).abs() > 0.5);
}

#[test]
fn rosbag_gives_the_same_projection_and_one_epoch() {
    let Some(dir) = data("rosbag/kitti_000001_000002") else { return };
    // The folder (metadata.yaml) and the file itself open alike.
    let by_file = LogSource::open(dir.join("kitti_000001_000002.mcap")).unwrap();
    let src = LogSource::open(&dir).unwrap();
    assert!(src.index_error().is_none());
    let LogFormat::Mcap { lidar_topic, camera_topic, camera_info_topic, labels_topic, files } = src.format()
    else {
        panic!("not mcap")
    };
    assert_eq!(files.len(), 1);
    assert_eq!(lidar_topic, "/kitti/velo/pointcloud");
    assert_eq!(camera_topic, "/kitti/camera_color_left/image_raw");
    assert_eq!(camera_info_topic, "/kitti/camera_color_left/camera_info");
    assert_eq!(labels_topic, None);
    assert_eq!(src.camera_period().as_millis(), 100);
    assert_eq!(src.duration().as_millis(), 105);

    // Frames 000001 and 000002 share their calibration: one epoch, from the first sweep.
    let sets = src.calibrations();
    assert_eq!(sets.len(), 1);
    assert_eq!(sets[0].epoch, CalibEpoch(1));
    assert_eq!(sets[0].valid_from, TimestampNs(1_000_000_000));
    assert_eq!(by_file.calibrations(), sets);
    let Projection::Rectified { width, height, .. } = *sets[0].camera() else {
        panic!("{:?}", sets[0].camera())
    };
    assert_eq!((width, height), (1242, 375));

    let frames = all_frames(&src);
    let summary: Vec<(StreamKind, u64, u64, u64)> =
        frames.iter().map(|f| (f.stream, f.stamp.0 / 1_000_000, f.epoch.0, f.index)).collect();
    assert_eq!(
        summary,
        [
            (StreamKind::Lidar, 1000, 1, 0),
            (StreamKind::Camera, 1005, 1, 0),
            (StreamKind::Lidar, 1100, 1, 1),
            (StreamKind::Camera, 1105, 1, 1),
        ]
    );
    check_reference(&project(&frames[0], src.calibration(frames[0].epoch).unwrap()));

    // Same points and pixels as the KITTI folder.
    let Some(kdir) = data("kitti") else { return };
    let kitti = LogSource::open(kdir).unwrap();
    let kframes = all_frames(&kitti);
    for (bag, kit) in [
        (&frames[0], &kframes[2]),
        (&frames[1], &kframes[3]),
        (&frames[2], &kframes[4]),
        (&frames[3], &kframes[5]),
    ] {
        assert_eq!(bag.stream, kit.stream);
        assert!(
            bag.to_payload().unwrap() == kit.to_payload().unwrap(),
            "{} differs from {}",
            bag.name,
            kit.name
        );
    }
    // The bag's projection equals the folder's to rounding.
    let (b, k) = (&sets[0], kitti.calibration(CalibEpoch(2)).unwrap());
    let payload = frames[2].to_payload().unwrap();
    let mut worst: f64 = 0.0;
    for p in lidar_points(&payload).unwrap() {
        let x = Point3::new(f64::from(p.x), f64::from(p.y), f64::from(p.z));
        if let (Some(a), Some(c)) = (b.project_point(x), k.project_point(x)) {
            worst = worst.max((a.u - c.u).abs()).max((a.v - c.v).abs());
        }
    }
    eprintln!("bag vs folder: worst pixel difference {worst:e}");
    assert!(worst < 1e-2, "{worst}");
}

#[test]
fn other_kitti_folders_open() {
    for (sub, w, h) in [("kitti-reduced", 1242, 375), ("argoverse-kitti", 616, 514)] {
        let Some(dir) = data(sub) else { return };
        let src = LogSource::open(&dir).unwrap();
        assert_eq!(src.calibrations().len(), 1);
        assert_eq!((src.calibrations()[0].camera().width(), src.calibrations()[0].camera().height()), (w, h));
        let frames = all_frames(&src);
        assert_eq!(frames.len(), 2);
        let s = project(&frames[0], &src.calibrations()[0]);
        assert!(s.in_image > 1000, "{sub}: {} of {} points in the image", s.in_image, s.points);
        eprintln!(
            "{sub}: {} points, {} in image, mean u {:.6} v {:.6} depth {:.6}",
            s.points, s.in_image, s.mean_u, s.mean_v, s.mean_depth
        );
    }
}
