//! ROS 2 bags of many shapes: point layouts, image encodings, tf chains, the epoch rule,
//! topic choice, and the errors for what is missing.

mod log_common;

use calib::Projection;
use log_common::*;
use logs::{LogError, LogFrame, LogOptions, LogSource};
use nalgebra::Point3;
use shared::frames::{camera_image, lidar_points};
use shared::{CalibEpoch, StreamKind, TimestampNs};

const MS: u64 = 1_000_000;
const T0: u64 = 5_000 * MS;

fn frames(src: &LogSource) -> Vec<LogFrame> {
    src.frames().unwrap().collect::<Result<Vec<_>, _>>().unwrap()
}

/// A bag with the given cloud and images (camera frame "cam", lidar frame "velo"; transform
/// cam ← base ← velo with the base ← cam edge stored the other way round).
fn bag_with(path: &std::path::Path, clouds: Vec<PointCloud2>, images: Vec<Image>) {
    let mut b = Bag::create(path);
    b.put(
        "/tf_static",
        TF,
        T0 - 10 * MS,
        &TfMessage {
            transforms: vec![
                // cam ← base: the optical rotation (base has lidar axes), base origin = cam origin.
                tf(0, "cam", "base", [0.0, 0.0, 0.0], LIDAR_TO_OPTICAL_Q),
                // base ← velo: velo 1 m behind base.
                tf(0, "base", "velo", [-1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]),
            ],
        },
    );
    b.put("/cam/camera_info", INFO, T0 - 10 * MS, &camera_info(T0, "cam", 4, 3, vec![], K, I3, P));
    for c in &clouds {
        let ns = c.header.stamp.sec as u64 * 1_000_000_000 + u64::from(c.header.stamp.nanosec);
        b.put("/velo/points", CLOUD, ns, c);
    }
    for i in &images {
        let ns = i.header.stamp.sec as u64 * 1_000_000_000 + u64::from(i.header.stamp.nanosec);
        b.put("/cam/image", IMAGE, ns, i);
    }
    b.finish();
}

#[test]
fn point_layouts_are_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("layouts.mcap");
    // 2×2 organised cloud, big-endian data, FLOAT64 xyz, UINT8 intensity, UINT16 ring,
    // 4 padding bytes per point and 8 per row.
    let mut data = Vec::new();
    let pts = [
        (1.0f64, 2.0, 3.0, 255u8, 7u16),
        (4.0, 5.0, 6.0, 0, 8),
        (7.0, 8.0, 9.0, 51, 9),
        (-1.0, -2.0, -3.0, 102, 10),
    ];
    for (row, chunk) in pts.chunks(2).enumerate() {
        for &(x, y, z, i, r) in chunk {
            for v in [x, y, z] {
                data.extend_from_slice(&v.to_be_bytes());
            }
            data.push(i);
            data.push(0);
            data.extend_from_slice(&r.to_be_bytes());
            data.extend_from_slice(&[0xAA; 4]);
        }
        data.extend_from_slice(&[0xBB; 8]);
        assert_eq!(data.len(), (row + 1) * (2 * 32 + 8));
    }
    let cloud = PointCloud2 {
        header: header(T0, "/velo"),
        height: 2,
        width: 2,
        fields: vec![
            field("ring", 26, 4),
            field("x", 0, 8),
            field("y", 8, 8),
            field("z", 16, 8),
            field("intensity", 24, 2),
        ],
        is_bigendian: true,
        point_step: 32,
        row_step: 72,
        data,
        is_dense: true,
    };
    bag_with(&path, vec![cloud], vec![simple_image(T0 + 5 * MS, "cam")]);
    let src = LogSource::open(&path).unwrap();
    let f = &frames(&src)[0];
    assert_eq!(f.stream, StreamKind::Lidar);
    let p = f.to_payload().unwrap();
    let got: Vec<(f32, f32, f32, f32, u16, u32)> =
        lidar_points(&p).unwrap().iter().map(|p| (p.x, p.y, p.z, p.intensity, p.ring, p.instance)).collect();
    assert_eq!(
        got,
        [
            (1.0, 2.0, 3.0, 1.0, 7, 0),
            (4.0, 5.0, 6.0, 0.0, 8, 0),
            (7.0, 8.0, 9.0, 0.2, 9, 0),
            (-1.0, -2.0, -3.0, 0.4, 10, 0)
        ]
    );
    assert_eq!(src.max_payload_len(StreamKind::Lidar), 4 * 24);
}

#[test]
fn big_endian_cdr_messages_decode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("be.mcap");
    let mut b = Bag::create(&path);
    b.put_be(
        "/tf_static",
        TF,
        T0,
        &TfMessage { transforms: vec![tf(T0, "cam", "velo", [0.0, 0.0, 0.0], LIDAR_TO_OPTICAL_Q)] },
    );
    b.put_be("/cam/camera_info", INFO, T0, &camera_info(T0, "cam", 4, 3, vec![0.0; 5], K, I3, P));
    b.put_be("/velo/points", CLOUD, T0, &simple_cloud(T0, "velo", 3));
    b.put_be("/cam/image", IMAGE, T0, &simple_image(T0, "cam"));
    b.finish();
    let src = LogSource::open(&path).unwrap();
    let fs = frames(&src);
    assert_eq!(fs.len(), 2);
    let p = fs[0].to_payload().unwrap();
    assert_eq!(lidar_points(&p).unwrap()[2].x, 7.0);
    // The point straight ahead of the camera hits the principal point.
    let hit = src.calibrations()[0].project_point(Point3::new(5.0, 0.0, 0.0)).unwrap();
    assert!(
        (hit.u - 2.0).abs() < 1e-12 && (hit.v - 1.5).abs() < 1e-12 && (hit.depth - 5.0).abs() < 1e-12,
        "{hit:?}"
    );
}

#[test]
fn image_encodings_become_rgb8() {
    let want = rgb_pixels();
    for enc in ["rgb8", "bgr8", "rgba8", "bgra8", "mono8"] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("enc.mcap");
        let bpp = if enc.ends_with('a') || enc.ends_with("a8") {
            4
        } else if enc == "mono8" {
            1
        } else {
            3
        };
        let step = 4 * bpp + 3; // padded rows
        let mut data = Vec::new();
        for y in 0..3 {
            for x in 0..4 {
                let [r, g, b] = want[y * 4 + x];
                match enc {
                    "rgb8" => data.extend_from_slice(&[r, g, b]),
                    "bgr8" => data.extend_from_slice(&[b, g, r]),
                    "rgba8" => data.extend_from_slice(&[r, g, b, 255]),
                    "bgra8" => data.extend_from_slice(&[b, g, r, 255]),
                    _ => data.push(r),
                }
            }
            data.extend_from_slice(&[9, 9, 9]);
        }
        data.truncate(data.len() - 3); // the last row need not be padded
        let img = Image {
            header: header(T0 + 5 * MS, "cam"),
            height: 3,
            width: 4,
            encoding: enc.into(),
            is_bigendian: 0,
            step: step as u32,
            data,
        };
        bag_with(&path, vec![simple_cloud(T0, "velo", 2)], vec![img]);
        let src = LogSource::open(&path).unwrap();
        let fs = frames(&src);
        let p = fs[1].to_payload().unwrap();
        let v = camera_image(&p).unwrap();
        assert_eq!((v.header.width, v.header.height, v.header.has_labels), (4, 3, 0));
        for y in 0..3 {
            for x in 0..4 {
                let [r, g, b] = want[(y * 4 + x) as usize];
                let expect = if enc == "mono8" { [r, r, r] } else { [r, g, b] };
                assert_eq!(v.rgb_at(x, y), Some(expect), "{enc} at {x},{y}");
            }
        }
    }
}

#[test]
fn unsupported_encoding_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("yuv.mcap");
    let mut img = simple_image(T0, "cam");
    img.encoding = "yuv422".into();
    bag_with(&path, vec![simple_cloud(T0, "velo", 2)], vec![img]);
    let e = LogSource::open(&path).unwrap_err().to_string();
    assert!(e.contains("yuv422") && e.contains("/cam/image") && e.contains("yuv.mcap"), "{e}");
    assert!(!e.contains('\n'));
}

#[test]
fn tf_chain_is_composed_through_the_tree() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chain.mcap");
    bag_with(&path, vec![simple_cloud(T0, "velo", 2)], vec![simple_image(T0, "cam")]);
    let src = LogSource::open(&path).unwrap();
    let set = &src.calibrations()[0];
    // velo (x fwd) is 1 m behind the camera: a point 6 m ahead of velo is 5 m ahead of cam.
    let hit = set.project_point(Point3::new(6.0, 0.0, 0.0)).unwrap();
    assert!(
        (hit.u - 2.0).abs() < 1e-12 && (hit.v - 1.5).abs() < 1e-12 && (hit.depth - 5.0).abs() < 1e-12,
        "{hit:?}"
    );
    // A point to the left (+y) lands left of centre; above (+z) lands above.
    let hit = set.project_point(Point3::new(6.0, 0.05, 0.05)).unwrap();
    assert!(hit.u < 2.0 && hit.v < 1.5, "{hit:?}");
    assert!(matches!(set.camera(), Projection::Pinhole(_)));
}

#[test]
fn distorted_camera_info_gives_a_pinhole_with_k_and_d() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("raw.mcap");
    // Raw images: D non-zero; R and P (of the rectified image) differ from I and [K|0].
    let r = [0.99, 0.0, 0.141, 0.0, 1.0, 0.0, -0.141, 0.0, 0.99];
    let p = [9.0, 0.0, 2.1, 0.0, 0.0, 9.0, 1.4, 0.0, 0.0, 0.0, 1.0, 0.0];
    Bag::one_frame(&path, T0, &camera_info(T0, "cam", 4, 3, vec![-0.2, 0.05, 0.001, -0.001, 0.0], K, r, p));
    let src = LogSource::open(&path).unwrap();
    let Projection::Pinhole(k) = *src.calibrations()[0].camera() else {
        panic!("{:?}", src.calibrations()[0].camera())
    };
    assert_eq!((k.fx, k.fy, k.cx, k.cy, k.width, k.height), (10.0, 10.0, 2.0, 1.5, 4, 3));
    assert_eq!(
        (k.distortion.k1, k.distortion.k2, k.distortion.p1, k.distortion.p2, k.distortion.k3),
        (-0.2, 0.05, 0.001, -0.001, 0.0)
    );
}

#[test]
fn rectified_camera_info_folds_r_into_p() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rect.mcap");
    let (c, s) = (0.1f64.cos(), 0.1f64.sin());
    let r = [c, 0.0, s, 0.0, 1.0, 0.0, -s, 0.0, c];
    let p = [10.0, 0.0, 2.0, -3.0, 0.0, 10.0, 1.5, 0.0, 0.0, 0.0, 1.0, 0.0];
    Bag::one_frame(&path, T0, &camera_info(T0, "cam", 0, 0, vec![0.0; 5], K, r, p));
    let src = LogSource::open(&path).unwrap();
    let set = &src.calibrations()[0];
    let Projection::Rectified { p: folded, width, height } = *set.camera() else { panic!() };
    // CameraInfo size 0: the image's size is used.
    assert_eq!((width, height), (4, 3));
    // pixel = P · [R|0] · X for X in the camera frame.
    let x = nalgebra::Vector3::new(0.1, -0.05, 5.0);
    let rx = nalgebra::Matrix3::from_row_slice(&r) * x;
    let h = nalgebra::Matrix3x4::from_row_slice(&p) * rx.push(1.0);
    let hf = folded * x.push(1.0);
    assert!((h - hf).norm() < 1e-12);
}

/// Camera at 20 Hz and lidar at 10 Hz; CameraInfo with every image; a /tf recalibration.
#[test]
fn epochs_follow_tf_and_camera_info_by_value() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("epochs.mcap");
    let mut b = Bag::create(&path);
    let q = LIDAR_TO_OPTICAL_Q;
    // The static transform is logged only after the first sweep: before the first one, the
    // first one applies.
    for i in 0..10u64 {
        let t = T0 + i * 100 * MS;
        b.put("/velo/points", CLOUD, t, &simple_cloud(t, "velo", 3));
        if i == 0 {
            b.put(
                "/tf_static",
                TF,
                t + 2 * MS,
                &TfMessage { transforms: vec![tf(0, "cam", "velo", [0.0; 3], q)] },
            );
        }
        for j in 0..2 {
            let tc = t + 5 * MS + j * 50 * MS;
            // Intrinsics change at 0.6 s, carried by the CameraInfo of the image at 605 ms.
            let fx = if tc >= T0 + 600 * MS { 11.0 } else { 10.0 };
            let k = [fx, 0.0, 2.0, 0.0, fx, 1.5, 0.0, 0.0, 1.0];
            let p = [fx, 0.0, 2.0, 0.0, 0.0, fx, 1.5, 0.0, 0.0, 0.0, 1.0, 0.0];
            // The CameraInfo is logged 1 ms after its image but stamped like it.
            b.put("/cam/camera_info", INFO, tc + MS, &camera_info(tc, "cam", 4, 3, vec![0.0; 5], k, I3, p));
            b.put("/cam/image", IMAGE, tc, &simple_image(tc, "cam"));
        }
        if i == 2 {
            // A recalibration on /tf at 0.3 s − 1 ms (stamp 0 for static style: log time counts).
            b.put(
                "/tf",
                TF,
                T0 + 299 * MS,
                &TfMessage { transforms: vec![tf(0, "cam", "velo", [0.0, 0.1, 0.0], q)] },
            );
        }
    }
    b.finish();
    let src = LogSource::open(&path).unwrap();
    let sets = src.calibrations();
    let valid: Vec<u64> = sets.iter().map(|s| (s.valid_from.0 - T0) / MS).collect();
    assert_eq!(valid, [0, 299, 605]);
    let fs = frames(&src);
    assert_eq!(fs.len(), 30);
    for f in &fs {
        let t = (f.stamp.0 - T0) / MS;
        let want = if t >= 605 {
            3
        } else if t >= 299 {
            2
        } else {
            1
        };
        assert_eq!(f.epoch, CalibEpoch(want), "{} at {t} ms", f.name);
        assert_eq!(f.recorded_epoch, None);
    }
    // Frames are in time order, sweep first on equal stamps.
    assert!(fs.windows(2).all(|w| (w[0].stamp, w[0].stream) <= (w[1].stamp, w[1].stream)));
    assert_eq!(src.camera_period().as_millis(), 50);
    assert_eq!(src.start(), TimestampNs(T0));
    assert_eq!(src.duration().as_millis(), 955);
}

#[test]
fn missing_pieces_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let q = LIDAR_TO_OPTICAL_Q;
    type Fill = Box<dyn Fn(&mut Bag)>;
    let cases: Vec<(&str, Fill, Vec<&str>)> = vec![
        (
            "nocam",
            Box::new(|b: &mut Bag| b.put("/velo/points", CLOUD, T0, &simple_cloud(T0, "velo", 1))),
            vec!["no camera topic", "sensor_msgs/msg/Image"],
        ),
        (
            "nocloud",
            Box::new(|b: &mut Bag| b.put("/cam/image", IMAGE, T0, &simple_image(T0, "cam"))),
            vec!["no lidar topic", "sensor_msgs/msg/PointCloud2"],
        ),
        (
            "noinfo",
            Box::new(|b: &mut Bag| {
                b.put("/velo/points", CLOUD, T0, &simple_cloud(T0, "velo", 1));
                b.put("/cam/image", IMAGE, T0, &simple_image(T0, "cam"));
            }),
            vec!["no camera_info topic", "CameraInfo"],
        ),
        (
            "notf",
            Box::new(move |b: &mut Bag| {
                b.put(
                    "/tf_static",
                    TF,
                    T0,
                    &TfMessage {
                        transforms: vec![
                            tf(0, "cam", "base", [0.0; 3], q),
                            tf(0, "odom", "velo", [0.0; 3], q),
                        ],
                    },
                );
                b.put("/cam/camera_info", INFO, T0, &camera_info(T0, "cam", 4, 3, vec![], K, I3, P));
                b.put("/velo/points", CLOUD, T0, &simple_cloud(T0, "velo", 1));
                b.put("/cam/image", IMAGE, T0, &simple_image(T0, "cam"));
            }),
            vec!["no transform between camera frame 'cam' and lidar frame 'velo'"],
        ),
        (
            "twoclouds",
            Box::new(move |b: &mut Bag| {
                b.put(
                    "/tf_static",
                    TF,
                    T0,
                    &TfMessage { transforms: vec![tf(0, "cam", "velo", [0.0; 3], q)] },
                );
                b.put("/cam/camera_info", INFO, T0, &camera_info(T0, "cam", 4, 3, vec![], K, I3, P));
                b.put("/velo/points", CLOUD, T0, &simple_cloud(T0, "velo", 1));
                b.put("/velo/points2", CLOUD, T0, &simple_cloud(T0, "velo", 1));
                b.put("/cam/image", IMAGE, T0, &simple_image(T0, "cam"));
            }),
            vec!["several lidar topics", "/velo/points, /velo/points2", "lidar_topic"],
        ),
    ];
    for (name, fill, needles) in cases {
        let path = dir.path().join(format!("{name}.mcap"));
        let mut b = Bag::create(&path);
        fill(&mut b);
        b.finish();
        let e = LogSource::open(&path).unwrap_err();
        let s = e.to_string();
        assert!(!s.contains('\n'), "{s}");
        assert!(s.starts_with(&path.display().to_string()), "{s}");
        for n in needles {
            assert!(s.contains(n), "{name}: '{s}' lacks '{n}'");
        }
        if name == "notf" {
            assert!(matches!(e, LogError::NoTransform { .. }));
        }
        if name == "twoclouds" {
            let opts = LogOptions { lidar_topic: Some("/velo/points2".into()), ..LogOptions::default() };
            let src = LogSource::open_with(&path, &opts).unwrap();
            assert_eq!(frames(&src).iter().filter(|f| f.stream == StreamKind::Lidar).count(), 1);
            let bad = LogOptions { lidar_topic: Some("/nope".into()), ..LogOptions::default() };
            let e = LogSource::open_with(&path, &bad).unwrap_err().to_string();
            assert!(e.contains("/nope") && e.contains("/velo/points2"), "{e}");
        }
    }
}

#[test]
fn not_a_log() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("notes.txt");
    std::fs::write(&f, "hello").unwrap();
    let e = LogSource::open(&f).unwrap_err().to_string();
    assert!(e.contains("notes.txt") && e.contains("not a log"), "{e}");
    let e = LogSource::open(dir.path()).unwrap_err().to_string();
    assert!(e.contains("not a log"), "{e}");
    let e = LogSource::open(dir.path().join("absent")).unwrap_err().to_string();
    assert!(e.contains("absent") && e.contains("cannot open"), "{e}");
}
