//! McapRecorder → LogSource round trip on a synthetic drive: points with instance ids, rgb
//! images with labels, and a recalibration between frames.

use std::path::Path;

use calib::{CalibrationSet, CameraIntrinsics, Distortion, Projection};
use logs::{replay_rank, LogFormat, LogFrame, LogFrames, LogSource, McapRecorder, RecorderTopics};
use nalgebra::{Isometry3, Matrix3x4, Point3, Translation3, UnitQuaternion, Vector3};
use shared::frames::{camera_image, lidar_points, ImageHeader, ImageView, PointRecord};
use shared::{CalibEpoch, FrameSeq, StreamKind, TimestampNs};

const MS: u64 = 1_000_000;

fn rig(epoch: u64, valid_from: u64, yaw: f64, camera: Projection) -> CalibrationSet {
    // Camera optical frame (x right, y down, z forward) in a vehicle frame (x fwd, y left, z up).
    let optical = UnitQuaternion::from_rotation_matrix(&nalgebra::Rotation3::from_matrix_unchecked(
        nalgebra::Matrix3::new(0.0, 0.0, 1.0, -1.0, 0.0, 0.0, 0.0, -1.0, 0.0),
    ));
    CalibrationSet::single(
        CalibEpoch(epoch),
        TimestampNs(valid_from),
        camera,
        Isometry3::from_parts(Translation3::new(1.5, 0.1, 1.4), optical),
        Isometry3::from_parts(
            Translation3::new(1.0, 0.0, 1.8),
            UnitQuaternion::from_axis_angle(&Vector3::z_axis(), yaw),
        ),
    )
}

fn pinhole(k1: f64) -> Projection {
    Projection::Pinhole(CameraIntrinsics {
        fx: 20.0,
        fy: 21.0,
        cx: 8.0,
        cy: 6.0,
        width: 16,
        height: 12,
        distortion: Distortion { k1, k2: 0.01, p1: 0.001, p2: -0.002, k3: 0.0005 },
    })
}

fn points(seed: u32) -> Vec<PointRecord> {
    (0..300u32)
        .map(|i| {
            let a = f32::from(u16::try_from(i).unwrap()) * 0.05 + f32::from(u16::try_from(seed).unwrap());
            PointRecord {
                x: 5.0 + (a * 0.7).sin() * 3.0,
                y: (a * 1.3).cos() * 4.0,
                z: (a * 0.2).sin(),
                intensity: (i % 100) as f32 / 100.0,
                ring: (i % 64) as u16,
                reserved: 0,
                instance: i * 7 + seed,
            }
        })
        .collect()
}

struct Image {
    rgb: Vec<u8>,
    labels: Option<Vec<u8>>,
}

fn image(seed: u8, labels: bool) -> Image {
    let rgb = (0..16 * 12 * 3).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect();
    let labels =
        labels.then(|| (0..16 * 12u16).flat_map(|i| (i * 3 + u16::from(seed)).to_le_bytes()).collect());
    Image { rgb, labels }
}

fn view(img: &Image) -> ImageView<'_> {
    ImageView {
        header: ImageHeader { width: 16, height: 12, format: 1, has_labels: u32::from(img.labels.is_some()) },
        rgb: &img.rgb,
        labels: img.labels.as_deref(),
    }
}

/// What was recorded, in stamp order: (stream, stamp, epoch, payload).
type Expected = Vec<(StreamKind, u64, u64, Vec<u8>)>;

/// A 1 s drive: lidar at 10 Hz, camera at 20 Hz (stamps offset 5 ms), epoch 2 from 1.52 s.
/// Frames are written in arrival order, which is not stamp order across streams.
fn record(path: &Path, sets: &[CalibrationSet], labels: bool) -> Expected {
    let mut rec = McapRecorder::create(path).unwrap();
    // Announced ahead of use: the recorder holds each set until its first frame.
    for s in sets {
        rec.write_calibration(s, s.valid_from).unwrap();
    }
    let epoch_at =
        |t: u64| sets.iter().rev().find(|s| s.valid_from.0 <= t).map_or(sets[0].epoch, |s| s.epoch);
    let mut expected = Vec::new();
    let mut events: Vec<(u64, StreamKind, u64)> = Vec::new();
    for i in 0..10u64 {
        events.push((1000 * MS + i * 100 * MS, StreamKind::Lidar, i));
    }
    for i in 0..20u64 {
        events.push((1005 * MS + i * 50 * MS, StreamKind::Camera, i));
    }
    // Time order, a sweep before an image of the same stamp (the replay's order).
    events.sort_by_key(|e| (e.0, replay_rank(e.1), e.2));
    // Deliver each sweep after the image that follows it (a big frame arrives late).
    for i in (0..events.len() - 1).rev() {
        if events[i].1 == StreamKind::Lidar {
            events.swap(i, i + 1);
        }
    }
    for (stamp, stream, i) in events {
        let epoch = epoch_at(stamp);
        match stream {
            StreamKind::Lidar => {
                let pts = points(i as u32);
                rec.write_lidar(TimestampNs(stamp), epoch, FrameSeq(i), &pts).unwrap();
                let mut payload = Vec::new();
                for p in &pts {
                    payload.extend_from_slice(zerocopy::IntoBytes::as_bytes(p));
                }
                expected.push((stream, stamp, epoch.0, payload));
            }
            StreamKind::Camera => {
                let img = image(i as u8, labels);
                let v = view(&img);
                rec.write_camera(TimestampNs(stamp), epoch, FrameSeq(i), &v).unwrap();
                let mut payload = zerocopy::IntoBytes::as_bytes(&v.header).to_vec();
                payload.extend_from_slice(&img.rgb);
                if let Some(l) = &img.labels {
                    payload.extend_from_slice(l);
                }
                expected.push((stream, stamp, epoch.0, payload));
            }
            other => unreachable!("no {other} events"),
        }
    }
    rec.finish().unwrap();
    expected.sort_by_key(|e| (e.1, replay_rank(e.0)));
    expected
}

fn replay(path: &Path) -> (LogSource, Vec<LogFrame>) {
    let src = LogSource::open(path).unwrap();
    let frames = src.frames().unwrap().collect::<Result<Vec<_>, _>>().unwrap();
    // The prefetch thread hands out exactly the same frames.
    let ahead = src.frames().unwrap().prefetch(2, 1, path).unwrap().collect::<Result<Vec<_>, _>>().unwrap();
    let key = |f: &LogFrame| (f.stream, f.stamp, f.epoch, f.index, f.name.clone(), f.to_payload().unwrap());
    assert_eq!(ahead.iter().map(key).collect::<Vec<_>>(), frames.iter().map(key).collect::<Vec<_>>());
    (src, frames)
}

fn same_projection(a: &CalibrationSet, b: &CalibrationSet) {
    for p in [Point3::new(6.0, 0.5, 0.2), Point3::new(9.0, -1.0, -0.4), Point3::new(4.0, 1.2, 0.6)] {
        match (a.project_point(p), b.project_point(p)) {
            (Some(x), Some(y)) => {
                assert!(
                    (x.u - y.u).abs() < 1e-9 && (x.v - y.v).abs() < 1e-9 && (x.depth - y.depth).abs() < 1e-9
                );
            }
            (None, None) => {}
            other => panic!("{other:?}"),
        }
    }
    let d = a.lidar_to_camera().inverse() * b.lidar_to_camera();
    assert!(d.translation.vector.norm() < 1e-12 && d.rotation.angle() < 1e-12);
}

#[test]
fn pinhole_drive_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("drive.mcap");
    let sets = [rig(1, 0, 0.0, pinhole(-0.1)), rig(2, 1520 * MS, 0.02, pinhole(-0.12))];
    let expected = record(&path, &sets, true);

    let (src, frames) = replay(&path);
    let LogFormat::Mcap { lidar_topic, camera_topic, labels_topic, .. } = src.format() else { panic!() };
    assert_eq!(lidar_topic, RecorderTopics::LIDAR);
    assert_eq!(camera_topic, RecorderTopics::CAMERA);
    assert_eq!(labels_topic.as_deref(), Some(RecorderTopics::LABELS));
    assert!(src.index_error().is_none());
    assert_eq!(src.camera_period().as_millis(), 50);

    // Same epochs, same calibration: K and D exactly, lidar→camera to rounding.
    let got = src.calibrations();
    assert_eq!(got.len(), 2);
    for (g, s) in got.iter().zip(&sets) {
        assert_eq!(g.epoch, s.epoch);
        assert_eq!(g.camera(), s.camera(), "camera model round trip");
        assert_eq!(g.camera_to_vehicle(), Isometry3::identity());
        same_projection(g, s);
    }
    assert_eq!(got[1].valid_from, sets[1].valid_from);

    // Same frames, stamps, epochs and payloads (points with ring and instance; rgb and labels).
    assert_eq!(frames.len(), expected.len());
    for (f, (stream, stamp, epoch, payload)) in frames.iter().zip(&expected) {
        assert_eq!((f.stream, f.stamp.0, f.epoch.0), (*stream, *stamp, *epoch), "{}", f.name);
        assert_eq!(f.recorded_epoch, Some(f.epoch));
        assert_eq!(f.payload_len(), payload.len());
        assert!(f.to_payload().unwrap() == *payload, "payload of {} differs", f.name);
        if f.stream == StreamKind::Camera {
            assert!(f.has_labels());
            let p = f.to_payload().unwrap();
            let v = camera_image(&p).unwrap();
            assert_eq!(v.label_at(3, 0), Some(9 + (f.index as u16)));
        } else {
            let p = f.to_payload().unwrap();
            assert_eq!(lidar_points(&p).unwrap()[5].instance, 35 + f.index as u32);
        }
    }
    assert_eq!(src.max_payload_len(StreamKind::Camera), 16 + 16 * 12 * 5);
    assert_eq!(src.max_payload_len(StreamKind::Lidar), 300 * 24);
}

#[test]
fn rectified_camera_round_trips_without_labels() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rect.mcap");
    let p1 = Matrix3x4::new(20.0, 0.1, 8.0, 0.5, 0.2, 21.0, 6.0, -0.3, 0.001, 0.002, 1.0, 0.003);
    let mut p2 = p1;
    p2[(0, 3)] = 0.9;
    let sets = [
        rig(1, 0, 0.0, Projection::Rectified { p: p1, width: 16, height: 12 }),
        rig(2, 1400 * MS, 0.0, Projection::Rectified { p: p2, width: 16, height: 12 }),
    ];
    let expected = record(&path, &sets, false);
    let (src, frames) = replay(&path);
    let got = src.calibrations();
    assert_eq!(got.len(), 2);
    for (g, s) in got.iter().zip(&sets) {
        assert_eq!(g.camera(), s.camera());
        same_projection(g, s);
    }
    let epochs: Vec<(u64, u64)> = frames.iter().map(|f| (f.stamp.0, f.epoch.0)).collect();
    let want: Vec<(u64, u64)> = expected.iter().map(|e| (e.1, e.2)).collect();
    assert_eq!(epochs, want);
    assert!(frames.iter().all(|f| !f.has_labels()));
    for (f, e) in frames.iter().zip(&expected) {
        assert!(f.to_payload().unwrap() == e.3);
    }
}

#[test]
fn late_calibration_and_unchanged_epoch() {
    // Epoch 2's calibration arrives after its first frames; epoch 3 repeats epoch 2's values.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("late.mcap");
    let a = rig(1, 0, 0.0, pinhole(-0.1));
    let b = rig(2, 1200 * MS, 0.05, pinhole(-0.1));
    let mut c = b.clone();
    c.epoch = CalibEpoch(3);
    c.valid_from = TimestampNs(1400 * MS);
    let mut rec = McapRecorder::create(&path).unwrap();
    rec.write_calibration(&a, a.valid_from).unwrap();
    let img = image(1, false);
    for i in 0..6u64 {
        let t = 1000 * MS + i * 100 * MS;
        let e = if t >= 1400 * MS {
            3
        } else if t >= 1200 * MS {
            2
        } else {
            1
        };
        rec.write_lidar(TimestampNs(t), CalibEpoch(e), FrameSeq(i), &points(1)).unwrap();
        rec.write_camera(TimestampNs(t + MS), CalibEpoch(e), FrameSeq(i), &view(&img)).unwrap();
        if i == 3 {
            rec.write_calibration(&b, b.valid_from).unwrap();
            rec.write_calibration(&c, c.valid_from).unwrap();
        }
    }
    rec.finish().unwrap();
    let (src, frames) = replay(&path);
    // Replayed by the rule: epoch 3 did not change the calibration, so it merges into 2;
    // the recorded numbers are still there.
    assert_eq!(src.calibrations().len(), 2);
    assert_eq!(src.calibrations()[1].valid_from, TimestampNs(1200 * MS));
    let got: Vec<(u64, u64)> = frames.iter().map(|f| (f.epoch.0, f.recorded_epoch.unwrap().0)).collect();
    assert_eq!(
        got,
        [(1, 1), (1, 1), (1, 1), (1, 1), (2, 2), (2, 2), (2, 2), (2, 2), (2, 3), (2, 3), (2, 3), (2, 3)]
    );
}

#[test]
fn sources_frames_and_recorders_can_move_to_a_thread() {
    fn send<T: Send>() {}
    send::<LogSource>();
    send::<LogFrames>();
    send::<LogFrame>();
    send::<McapRecorder>();
}
