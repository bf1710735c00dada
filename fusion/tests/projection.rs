//! Projection against the KITTI reference (when `../shared/data` is present), and
//! consistency against ground-truth labels on a synthetic scene.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use calib::{CalibrationSet, CameraIntrinsics, Distortion, Projection};
use fusion::{Engine, EngineChannels, EngineConfig, InFrame, Projected, Projector, VecSink};
use nalgebra::{Isometry3, Matrix3, Matrix3x4, Matrix4, Point3, Rotation3, Translation3, UnitQuaternion};
use shared::frames::{ImageHeader, PointRecord};
use shared::{CalibEpoch, FrameSeq, StreamKind, TimestampNs};
use zerocopy::IntoBytes;

fn data_dir() -> Option<PathBuf> {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data");
    if d.join("kitti/calib/000001.txt").is_file() {
        Some(d)
    } else {
        eprintln!("notice: {} is absent; skipping the KITTI reference test", d.display());
        None
    }
}

/// Test-only parser of a KITTI calib file: `KEY: v v v ...` per line.
fn kitti_calib(path: &Path) -> std::collections::HashMap<String, Vec<f64>> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            Some((k.trim().to_owned(), v.split_whitespace().map(|x| x.parse().unwrap()).collect()))
        })
        .collect()
}

/// The KITTI calibration as a `CalibrationSet`: `p = P2·[R0_rect|0]`, lidar → vehicle =
/// `Tr_velo_to_cam` (as an isometry: its rotation part orthonormalised), camera → vehicle =
/// identity. With `fold_residual`, what the isometry cannot hold of `Tr_velo_to_cam` (it is
/// orthonormal only to ~1e-7) is folded into `p`, so that `p · T = P2 · R0 · Tr` exactly.
fn kitti_set(path: &Path, width: u32, height: u32, fold_residual: bool) -> CalibrationSet {
    let c = kitti_calib(path);
    let p2 = Matrix3x4::from_row_slice(&c["P2"]);
    let r0 = Matrix3::from_row_slice(&c["R0_rect"]);
    let mut r0h = Matrix4::identity();
    r0h.fixed_view_mut::<3, 3>(0, 0).copy_from(&r0);
    let tr = Matrix3x4::from_row_slice(&c["Tr_velo_to_cam"]);
    let rot = Rotation3::from_matrix(&tr.fixed_view::<3, 3>(0, 0).into_owned());
    let t = tr.column(3);
    let iso = Isometry3::from_parts(
        Translation3::new(t[0], t[1], t[2]),
        UnitQuaternion::from_rotation_matrix(&rot),
    );
    let mut p = p2 * r0h;
    if fold_residual {
        let mut trh = Matrix4::identity();
        trh.fixed_view_mut::<3, 4>(0, 0).copy_from(&tr);
        p = p * trh * iso.inverse().to_homogeneous();
    }
    CalibrationSet::single(
        CalibEpoch(1),
        TimestampNs(0),
        Projection::Rectified { p, width, height },
        Isometry3::identity(),
        iso,
    )
}

fn kitti_points(path: &Path) -> Vec<PointRecord> {
    let bytes = std::fs::read(path).unwrap();
    bytes
        .chunks_exact(16)
        .map(|c| {
            let f = |i: usize| f32::from_le_bytes([c[i], c[i + 1], c[i + 2], c[i + 3]]);
            PointRecord { x: f(0), y: f(4), z: f(8), intensity: f(12), ..PointRecord::default() }
        })
        .collect()
}

#[test]
fn kitti_000001_matches_the_reference() {
    let Some(d) = data_dir() else { return };
    let pts = kitti_points(&d.join("kitti/velodyne/000001.bin"));
    // Orthonormalising Tr_velo_to_cam alone moves the first point by ~3e-5 px: counts and
    // means still match the reference.
    let plain = kitti_set(&d.join("kitti/calib/000001.txt"), 1242, 375, false);
    let mut out = Projected::new();
    Projector::new(&plain).project(&pts, &mut out);
    assert_eq!(out.len(), 18_630);
    let (mu, mv, md) = out.means();
    assert!(
        (mu - 631.863_492).abs() < 1e-3 && (mv - 257.150_175).abs() < 1e-3 && (md - 16.530_317).abs() < 1e-3
    );
    assert!((out.u()[0] - 278.317_887).abs() < 1e-4 && (out.v()[0] - 152.802_221).abs() < 1e-4);

    // With the residual folded into p: the reference to 1e-5.
    let calib = kitti_set(&d.join("kitti/calib/000001.txt"), 1242, 375, true);
    assert_eq!(pts.len(), 120_268);
    let mut out = Projected::new();
    Projector::new(&calib).project(&pts, &mut out);
    assert_eq!(out.len(), 18_630);
    let (mu, mv, md) = out.means();
    assert!((mu - 631.863_492).abs() < 1e-3, "mean u {mu}");
    assert!((mv - 257.150_175).abs() < 1e-3, "mean v {mv}");
    assert!((md - 16.530_317).abs() < 1e-3, "mean depth {md}");
    assert_eq!(out.index()[0], 0);
    let p0 = pts[0];
    assert!((f64::from(p0.x) - 49.52).abs() < 1e-5 && (f64::from(p0.y) - 22.667_999).abs() < 1e-5);
    assert!((out.u()[0] - 278.317_887).abs() < 1e-5, "u {}", out.u()[0]);
    assert!((out.v()[0] - 152.802_221).abs() < 1e-5, "v {}", out.v()[0]);
    assert!((out.depth()[0] - 49.272_164).abs() < 1e-5, "depth {}", out.depth()[0]);

    // Point for point, the same as calib's reference projection.
    let mut j = 0;
    for (i, p) in pts.iter().enumerate() {
        let r = calib.project_point(Point3::new(f64::from(p.x), f64::from(p.y), f64::from(p.z)));
        if let Some(h) = r {
            assert_eq!(out.index()[j] as usize, i);
            assert!((h.u - out.u()[j]).abs() < 1e-9 && (h.v - out.v()[j]).abs() < 1e-9);
            j += 1;
        }
    }
    assert_eq!(j, out.len());

    // The wrong epoch (000000's rig) moves points by only a few pixels.
    let wrong = kitti_set(&d.join("kitti/calib/000000.txt"), 1242, 375, true);
    let mut out2 = Projected::new();
    Projector::new(&wrong).project(&pts, &mut out2);
    let (mu2, mv2, _) = out2.means();
    let shift = (mu2 - mu).hypot(mv2 - mv);
    assert!(shift > 0.1 && shift < 10.0, "shift {shift}");
}

// ---------------------------------------------------------------------------------------
// Consistency on a synthetic scene.

const W: u32 = 320;
const H: u32 = 240;

fn optical() -> UnitQuaternion<f64> {
    UnitQuaternion::from_rotation_matrix(&Rotation3::from_matrix_unchecked(Matrix3::new(
        0.0, 0.0, 1.0, -1.0, 0.0, 0.0, 0.0, -1.0, 0.0,
    )))
}

fn rig(epoch: u64, yaw: f64) -> CalibrationSet {
    CalibrationSet::single(
        CalibEpoch(epoch),
        TimestampNs(0),
        Projection::Pinhole(CameraIntrinsics {
            fx: 300.0,
            fy: 300.0,
            cx: 160.0,
            cy: 120.0,
            width: W,
            height: H,
            distortion: Distortion { k1: -0.05, k2: 0.01, ..Distortion::default() },
        }),
        Isometry3::from_parts(
            Translation3::new(1.5, 0.0, 1.5),
            UnitQuaternion::from_euler_angles(0.0, 0.0, yaw) * optical(),
        ),
        Isometry3::translation(1.0, 0.0, 1.8),
    )
}

/// Walls facing the vehicle, made of 0.5 m vertical strips of alternating instances,
/// sampled every 0.1 m.
fn scene() -> Vec<PointRecord> {
    let walls = [(8.0f32, -3.0f32, 10u32), (12.0, 0.5, 20), (18.0, 3.0, 30), (15.0, -6.0, 40)];
    let mut pts = Vec::new();
    for &(x, y0, base) in &walls {
        for i in 0..40 {
            let strip = i / 5;
            for k in 0..20 {
                pts.push(PointRecord {
                    x,
                    y: y0 + i as f32 * 0.1,
                    z: -1.6 + k as f32 * 0.1,
                    intensity: 0.5,
                    instance: base + strip,
                    ..PointRecord::default()
                });
            }
        }
    }
    pts
}

/// A camera payload whose label plane is the scene's points splatted with the true
/// calibration: 3×3 dots far to near, then each point's own pixel.
fn camera_payload(truth: &CalibrationSet, pts: &[PointRecord]) -> Vec<u8> {
    let mut out = Projected::new();
    Projector::new(truth).project(pts, &mut out);
    let mut labels = vec![0u16; (W * H) as usize];
    let mut order: Vec<usize> = (0..out.len()).collect();
    order.sort_by(|&a, &b| out.depth()[b].total_cmp(&out.depth()[a]));
    for r in [1i64, 0] {
        for &j in &order {
            let (cx, cy) = (out.u()[j] as i64, out.v()[j] as i64);
            for dy in -r..=r {
                for dx in -r..=r {
                    let (x, y) = (cx + dx, cy + dy);
                    if (0..i64::from(W)).contains(&x) && (0..i64::from(H)).contains(&y) {
                        labels[(y * i64::from(W) + x) as usize] =
                            pts[out.index()[j] as usize].instance as u16;
                    }
                }
            }
        }
    }
    let mut p = ImageHeader { width: W, height: H, format: 1, has_labels: 1 }.as_bytes().to_vec();
    p.extend((0..W * H * 3).map(|i| (i % 251) as u8));
    p.extend(labels.iter().flat_map(|l| l.to_le_bytes()));
    p
}

fn lidar_payload(pts: &[PointRecord]) -> Vec<u8> {
    pts.as_bytes().to_vec()
}

/// Runs one pair through the engine's synchronous core and returns the pair's consistency.
fn engine_consistency(applied: CalibrationSet, truth: &CalibrationSet, labels: bool) -> Option<f64> {
    let (_ctx, crx) = crossbeam_channel::unbounded();
    let (_ltx, lrx) = crossbeam_channel::unbounded();
    let (_qtx, qrx) = crossbeam_channel::unbounded();
    let (_stx, srx) = crossbeam_channel::unbounded();
    let (rc, _rcr) = crossbeam_channel::unbounded();
    let (rl, _rlr) = crossbeam_channel::unbounded();
    let channels = EngineChannels {
        camera: crx,
        lidar: lrx,
        calibration: qrx,
        stop: srx,
        recycle_camera: rc,
        recycle_lidar: rl,
    };
    let cfg = EngineConfig { keep_frames: true, ..EngineConfig::default() };
    let mut e = Engine::new(cfg, channels, VecSink::new(), || TimestampNs(5_000_000)).unwrap();
    let pts = scene();
    let mut cam = camera_payload(truth, &pts);
    if !labels {
        cam.truncate(16 + (W * H * 3) as usize);
        cam[12] = 0;
    }
    e.handle_calibration(Arc::new(applied));
    e.handle_frame(InFrame {
        stream: StreamKind::Camera,
        seq: FrameSeq(1),
        capture: TimestampNs(1_000_000),
        epoch: CalibEpoch(1),
        published: TimestampNs(0),
        payload: cam.into(),
    });
    e.handle_frame(InFrame {
        stream: StreamKind::Lidar,
        seq: FrameSeq(1),
        capture: TimestampNs(1_000_000),
        epoch: CalibEpoch(1),
        published: TimestampNs(0),
        payload: lidar_payload(&pts).into(),
    });
    e.finish();
    let s = e.stats().clone();
    assert_eq!(s.fused, 1);
    assert!(s.frames[0].points_in_image > 1000, "{:?}", s.frames[0]);
    let f = e.sink_mut().frame(0).unwrap();
    assert_eq!(f.header.points as u64, s.frames[0].points_in_image);
    s.frames[0].consistency
}

#[test]
fn consistency_separates_right_from_wrong_calibration() {
    let truth = rig(1, 0.0);
    let right = engine_consistency(truth.clone(), &truth, true).unwrap();
    // A 3° yaw error: the error one would make with a stale epoch after a recalibration.
    let wrong = engine_consistency(rig(1, 3f64.to_radians()), &truth, true).unwrap();
    eprintln!("consistency: right calibration {right:.4}, wrong {wrong:.4}");
    assert!(right > 0.93, "right calibration: {right}");
    assert!(wrong < 0.5, "wrong calibration: {wrong}");
    assert_eq!(engine_consistency(truth.clone(), &truth, false), None, "no label plane: null");
}
