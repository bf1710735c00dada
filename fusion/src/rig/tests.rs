use super::*;
use crate::project::tests::uniform;
use calib::{CameraIntrinsics, Distortion};
use nalgebra::{Isometry3, Matrix3x4, Rotation3, Translation3, UnitQuaternion};
use proptest::prelude::*;
use shared::{CalibEpoch, TimestampNs};

/// Camera optical frame (x right, y down, z forward) in a frame with x forward, z up.
fn optical() -> UnitQuaternion<f64> {
    UnitQuaternion::from_rotation_matrix(&Rotation3::from_matrix_unchecked(Matrix3::new(
        0.0, 0.0, 1.0, -1.0, 0.0, 0.0, 0.0, -1.0, 0.0,
    )))
}

#[derive(Clone, Debug)]
struct Cam {
    yaw: f64,
    pitch: f64,
    roll: f64,
    pos: (f64, f64, f64),
    f: f64,
    size: (u32, u32),
    /// 0: pinhole, 1: pinhole with distortion, 2: rectified, 3: rectified in another
    /// vehicle frame (camera frame = vehicle frame, as the KITTI reader does), 4: pinhole
    /// with radial distortion only (barrel, a growing radius: culled by its radial bound).
    kind: u8,
}

fn cam() -> impl Strategy<Value = Cam> {
    (
        0.0..std::f64::consts::TAU,
        -0.4..0.4f64,
        -0.2..0.2f64,
        (-2.0..3.0f64, -1.5..1.5f64, 0.5..2.5f64),
        200.0..2000.0f64,
        (64u32..2000, 48u32..1200),
        0u8..5,
    )
        .prop_map(|(yaw, pitch, roll, pos, f, size, kind)| Cam { yaw, pitch, roll, pos, f, size, kind })
}

fn set(c: &Cam, lidar: &Isometry3<f64>) -> CalibrationSet {
    let (w, h) = c.size;
    let k = CameraIntrinsics {
        fx: c.f,
        fy: c.f * 1.01,
        cx: f64::from(w) / 2.0 - 0.5,
        cy: f64::from(h) / 2.0 + 0.5,
        width: w,
        height: h,
        distortion: Distortion::default(),
    };
    let camera_to_vehicle = Isometry3::from_parts(
        Translation3::new(c.pos.0, c.pos.1, c.pos.2),
        UnitQuaternion::from_euler_angles(c.roll, c.pitch, c.yaw) * optical(),
    );
    let mut s = CalibrationSet::single(
        CalibEpoch(1),
        TimestampNs(0),
        Projection::Pinhole(k),
        camera_to_vehicle,
        *lidar,
    );
    match c.kind {
        1 => {
            let d = Distortion { k1: -0.2, k2: 0.05, p1: 0.001, p2: -0.0005, k3: 0.0 };
            *s.camera_mut() = Projection::Pinhole(CameraIntrinsics { distortion: d, ..k });
        }
        4 => {
            let d = Distortion { k1: -0.2, k2: 0.05, k3: 0.001, ..Distortion::default() };
            *s.camera_mut() = Projection::Pinhole(CameraIntrinsics { distortion: d, ..k });
        }
        2 | 3 => {
            // p = P · [R0|0] with a small rectifying rotation and a stereo baseline term.
            let r0 = UnitQuaternion::from_euler_angles(0.004, -0.003, 0.002).to_rotation_matrix();
            let kk = Matrix3::new(k.fx, 0.0, k.cx, 0.0, k.fy, k.cy, 0.0, 0.0, 1.0);
            let mut p = Matrix3x4::zeros();
            p.fixed_view_mut::<3, 3>(0, 0).copy_from(&(kk * r0.matrix()));
            p.set_column(3, &Vector3::new(-0.54 * k.fx, 0.2, 0.003));
            *s.camera_mut() = Projection::Rectified { p, width: w, height: h };
            if c.kind == 3 {
                *s.lidar_to_vehicle_mut() = s.lidar_to_camera();
                *s.camera_to_vehicle_mut() = Isometry3::identity();
            }
        }
        _ => {}
    }
    s
}

/// Points on the borders of camera `calib`'s image (u = 0 or just under the width, and
/// the same for v), at depths from 0.05 to 80 m, in the lidar frame: where a wrong wedge
/// would show.
fn border_points(calib: &CalibrationSet, seed: u64, out: &mut Vec<PointRecord>) {
    let (a, b) = match *calib.camera() {
        Projection::Rectified { p, .. } => {
            (p.fixed_view::<3, 3>(0, 0).into_owned(), p.column(3).into_owned())
        }
        Projection::Pinhole(k) => {
            (Matrix3::new(k.fx, 0.0, k.cx, 0.0, k.fy, k.cy, 0.0, 0.0, 1.0), Vector3::zeros())
        }
    };
    let inv = a.try_inverse().unwrap();
    let lidar_from_camera = calib.lidar_to_camera().inverse();
    let (w, h) = (f64::from(calib.camera().width()), f64::from(calib.camera().height()));
    let mut next = uniform(seed);
    for i in 0..400 {
        let t = next();
        let (mut u, mut v) = match i % 4 {
            0 => (0.0, t * h),
            1 => (w - 1e-3, t * h),
            2 => (t * w, 0.0),
            _ => (t * w, h - 1e-3),
        };
        // A distorted lens: the undistorted pixel whose distortion lands on the border.
        if let Projection::Pinhole(k) = calib.camera() {
            if let Some((x, y)) = k.distortion.undistort((u - k.cx) / k.fx, (v - k.cy) / k.fy) {
                (u, v) = (k.fx * x + k.cx, k.fy * y + k.cy);
            }
        }
        let depth = 0.05 + 80.0 * next() * next();
        let x = lidar_from_camera * Point3::from(inv * (Vector3::new(u, v, 1.0) * depth - b));
        out.push(PointRecord { x: x.x as f32, y: x.y as f32, z: x.z as f32, ..PointRecord::default() });
    }
}

fn cloud(seed: u64, n: usize) -> Vec<PointRecord> {
    let mut next = uniform(seed);
    let mut pts: Vec<PointRecord> = (0..n)
        .map(|_| {
            let r = 0.05 + 70.0 * next() * next();
            let az = std::f64::consts::TAU * next();
            let el = -0.6 + 1.0 * next();
            PointRecord {
                x: (r * az.cos() * el.cos()) as f32,
                y: (r * az.sin() * el.cos()) as f32,
                z: (r * el.sin()) as f32,
                ..PointRecord::default()
            }
        })
        .collect();
    pts.push(PointRecord { x: f32::NAN, ..PointRecord::default() });
    pts.push(PointRecord { x: f32::INFINITY, ..PointRecord::default() });
    pts
}

fn assert_same(a: &Projected, b: &Projected, what: &str) {
    let bits = |x: &[f64]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(a.total(), b.total(), "{what}: total");
    assert_eq!(a.index(), b.index(), "{what}: indices");
    assert_eq!(bits(a.u()), bits(b.u()), "{what}: u");
    assert_eq!(bits(a.v()), bits(b.v()), "{what}: v");
    assert_eq!(bits(a.depth()), bits(b.depth()), "{what}: depth");
}

/// Projects with the rig and with each camera alone; returns the border points each kept.
fn check(sets: &[CalibrationSet], seed: u64) -> usize {
    let mut pts = cloud(seed, 4000);
    for (i, s) in sets.iter().enumerate() {
        border_points(s, seed.wrapping_add(i as u64), &mut pts);
    }
    let rig = RigProjector::new(sets);
    let mut out = RigProjected::new();
    rig.project(&pts, &mut out);
    assert_eq!(out.cameras().len(), sets.len());
    let (mut alone, mut one) = (Projected::new(), Projected::new());
    for (i, s) in sets.iter().enumerate() {
        Projector::new(s).project(&pts, &mut alone);
        assert_same(out.camera(i), &alone, &format!("camera {i}"));
        rig.project_camera(i, &pts, &mut one);
        assert_same(&one, &alone, &format!("camera {i} projected alone by the rig"));
    }
    out.total_kept()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn rig_is_each_camera_alone(
        cams in proptest::collection::vec(cam(), 1..10),
        lidar in (-0.3..0.3f64, -0.1..0.1f64, 0.0..std::f64::consts::TAU, 0.5..2.5f64),
        seed in any::<u64>(),
    ) {
        let lidar = Isometry3::from_parts(
            Translation3::new(1.0, 0.1, lidar.3),
            UnitQuaternion::from_euler_angles(lidar.0, lidar.1, lidar.2),
        );
        let sets: Vec<CalibrationSet> = cams.iter().map(|c| set(c, &lidar)).collect();
        check(&sets, seed);
    }
}

fn ring(n: usize) -> Vec<CalibrationSet> {
    let lidar = Isometry3::translation(1.0, 0.0, 1.8);
    (0..n)
        .map(|i| {
            let yaw = std::f64::consts::TAU * i as f64 / n as f64;
            let c = Cam {
                yaw,
                pitch: 0.05,
                roll: 0.0,
                pos: (1.0 + yaw.cos(), yaw.sin(), 1.6),
                f: 1266.0,
                size: (1600, 900),
                kind: 0,
            };
            set(&c, &lidar)
        })
        .collect()
}

#[test]
fn level_cameras_are_culled_and_border_points_kept() {
    let sets = ring(6);
    assert_eq!(RigProjector::new(&sets).culled_cameras(), 6);
    // Every camera keeps most of its own border points (some are hidden by nothing: all are
    // in its image) and the rig agrees with each camera alone.
    let kept = check(&sets, 7);
    assert!(kept >= 6 * 300, "border points kept: {kept}");
}

#[test]
fn distorted_and_steep_cameras_test_every_point() {
    let lidar = Isometry3::identity();
    let mut down =
        Cam { yaw: 0.0, pitch: 1.5, roll: 0.0, pos: (0.0, 0.0, 2.0), f: 300.0, size: (1280, 720), kind: 0 };
    let distorted = Cam { pitch: 0.0, kind: 1, ..down.clone() };
    let steep = set(&down, &lidar);
    down.pitch = 0.0;
    let rig = RigProjector::new(&[steep.clone(), set(&distorted, &lidar), set(&down, &lidar)]);
    assert_eq!(rig.culled_cameras(), 1);
    assert_eq!(rig.len(), 3);
    check(&[steep, set(&distorted, &lidar)], 3);
}

#[test]
fn empty_rig_and_empty_sweep() {
    let rig = RigProjector::new(&[]);
    let mut out = RigProjected::new();
    rig.project(&cloud(1, 10), &mut out);
    assert!(rig.is_empty() && out.cameras().is_empty() && out.total_kept() == 0);
    let rig = RigProjector::new(&ring(2));
    rig.project(&cloud(1, 1000), &mut out);
    assert!(out.total_kept() > 0);
    rig.project(&[], &mut out);
    assert_eq!(out.total_kept(), 0);
    assert_eq!(rig.camera(1).width(), 1600);
}

#[test]
fn the_azimuth_table_names_few_cameras_far_out_and_every_camera_near() {
    let sets = ring(8);
    let rig = RigProjector::new(&sets);
    let table = rig.table.as_ref().expect("eight wedges share a table");
    let all = (1u32 << 8) - 1;
    let named = |m: u32| m & 0xffff;
    for i in 0..8 {
        let yaw = std::f64::consts::TAU * i as f64 / 8.0;
        // 50 m out along camera i's axis (the cameras sit on a 1 m circle around the lidar).
        let (x, y) = ((50.0 * yaw.cos()) as f32, (50.0 * yaw.sin()) as f32);
        let far = named(table.mask(x, y));
        assert!(far & (1 << i) != 0, "camera {i} is not named straight ahead: {far:#b}");
        assert!(far.count_ones() <= 3, "camera {i}: too many cameras far out: {far:#b}");
        assert_eq!(table.mask(x, y) >> 16 & (1 << i), 0, "camera {i} tests its wedge straight ahead");
        assert_eq!(named(table.mask(0.3 * yaw.cos() as f32, 0.3 * yaw.sin() as f32)), all);
    }
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, f32::MAX] {
        assert_eq!(table.mask(bad, 1.0), all | all << 16, "{bad}");
        assert_eq!(table.mask(1.0, bad), all | all << 16, "{bad}");
    }
}

#[test]
fn cameras_past_the_mask_width_test_their_wedges() {
    // 18 cameras: the first 16 are named by the table, the last two test every point.
    let sets = ring(18);
    assert_eq!(RigProjector::new(&sets).culled_cameras(), 18);
    check(&sets, 11);
}

#[test]
fn few_cameras_test_their_wedges_many_share_the_table() {
    assert!(RigProjector::new(&ring(TABLE_MIN_CAMERAS - 1)).table.is_none());
    assert!(RigProjector::new(&ring(TABLE_MIN_CAMERAS)).table.is_some());
}

#[test]
fn a_growing_radial_curve_bounds_the_radius_and_a_folding_one_does_not() {
    // The simulator's default lens: f'(r) = 1 − 0.15 r² + 0.05 r⁴ > 0 everywhere.
    assert!(radius_increases(-0.05, 0.01, 0.0));
    assert!(radius_increases(0.0, 0.0, 0.0) && radius_increases(0.1, 0.0, 0.0));
    // r − 0.05 r³ turns back at r ≈ 2.58; a negative r⁶ term always does eventually.
    assert!(!radius_increases(-0.05, 0.0, 0.0));
    assert!(!radius_increases(0.0, 0.0, -1e-6));
    // A dip below the minimum slope: h(s) = 1 − 0.6 s + 0.09 s² is 0 at s = 10/3.
    assert!(!radius_increases(-0.2, 0.018, 0.0));
    assert!(!radius_increases(f64::NAN, 0.0, 0.0));

    let k = |d: Distortion| CameraIntrinsics {
        fx: 1000.0,
        fy: 1000.0,
        cx: 640.0,
        cy: 360.0,
        width: 1280,
        height: 720,
        distortion: d,
    };
    let lens = k(Distortion { k1: -0.05, k2: 0.01, ..Distortion::default() });
    let r1 = radial_bound(&lens).expect("a growing curve has a bound");
    // Past r1 the distorted radius is beyond the farthest corner (0.64, 0.36) from the axis.
    let f = |r: f64| r * (1.0 + r * r * (-0.05 + r * r * 0.01));
    assert!(f(r1) > 0.64f64.hypot(0.36) && f(r1 * 0.999) < 0.64f64.hypot(0.36), "r1 {r1}");
    assert_eq!(radial_bound(&k(Distortion { k1: -0.05, ..Distortion::default() })), None);
    assert_eq!(radial_bound(&k(Distortion { p1: 1e-4, ..Distortion::default() })), None);
}

#[test]
fn a_radially_distorted_camera_is_culled_and_keeps_its_border_points() {
    let sets: Vec<CalibrationSet> = ring(4)
        .into_iter()
        .map(|mut s| {
            let Projection::Pinhole(k) = *s.camera() else { unreachable!() };
            let d = Distortion { k1: -0.05, k2: 0.01, ..Distortion::default() };
            *s.camera_mut() = Projection::Pinhole(CameraIntrinsics { distortion: d, ..k });
            s
        })
        .collect();
    assert_eq!(RigProjector::new(&sets).culled_cameras(), 4);
    let kept = check(&sets, 5);
    assert!(kept >= 4 * 300, "border points kept: {kept}");
}
