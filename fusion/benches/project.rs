//! Projection throughput on one core: `cargo bench -p fusion --bench project`.
//!
//! A 120k-point sweep (KITTI 000001 from `../shared/data` when present, else synthetic) into
//! a 1280×720 pinhole camera with plumb-bob distortion, and with a rectified 3×4 projection.
//! Baseline in the same run: a plain `for` loop over `nalgebra::Vector3` calling
//! `calib::project_camera_point`. Target: ≥ 30 M points/s.

mod sweep;

use std::hint::black_box;
use std::time::{Duration, Instant};

use calib::{project_camera_point, CalibrationSet, CameraIntrinsics, Distortion, PixelHit, Projection};
use fusion::{Projected, Projector};
use nalgebra::{Isometry3, Matrix3, Matrix3x4, Point3, Rotation3, Translation3, UnitQuaternion, Vector3};
use shared::frames::PointRecord;
use shared::{CalibEpoch, TimestampNs};

fn rig(camera: Projection) -> CalibrationSet {
    let optical = UnitQuaternion::from_rotation_matrix(&Rotation3::from_matrix_unchecked(Matrix3::new(
        0.0, 0.0, 1.0, -1.0, 0.0, 0.0, 0.0, -1.0, 0.0,
    )));
    CalibrationSet::single(
        CalibEpoch(1),
        TimestampNs(0),
        camera,
        Isometry3::from_parts(Translation3::new(1.5, 0.0, 1.5), optical),
        Isometry3::translation(1.0, 0.0, 1.8),
    )
}

/// Best of `reps` timings of `f`, after one warm-up.
fn best(reps: usize, mut f: impl FnMut() -> usize) -> (Duration, usize) {
    let kept = f();
    let mut best = Duration::MAX;
    for _ in 0..reps {
        let t = Instant::now();
        black_box(f());
        best = best.min(t.elapsed());
    }
    (best, kept)
}

fn run(name: &str, calib: &CalibrationSet, pts: &[PointRecord], vecs: &[Vector3<f64>]) {
    let mut out = Projected::new();
    let (ours, kept_ours) = best(60, || {
        Projector::new(black_box(calib)).project(black_box(pts), &mut out);
        out.len()
    });
    let mut hits: Vec<(usize, PixelHit)> = Vec::with_capacity(pts.len());
    let (base, kept_base) = best(60, || {
        hits.clear();
        let iso = calib.lidar_to_camera();
        for (i, v) in black_box(vecs).iter().enumerate() {
            if let Some(h) = project_camera_point(calib.camera(), iso * Point3::from(*v)) {
                hits.push((i, h));
            }
        }
        hits.len()
    });
    assert_eq!(kept_ours, kept_base, "both keep the same points");
    let rate = |d: Duration| pts.len() as f64 / d.as_secs_f64() / 1e6;
    println!(
        "{name:<28} fusion::Projector {:>8.1} M points/s   baseline project_camera_point {:>7.1} M points/s   ratio {:.2}x   ({} of {} in image)",
        rate(ours),
        rate(base),
        base.as_secs_f64() / ours.as_secs_f64(),
        kept_ours,
        pts.len()
    );
}

fn main() {
    let (pts, source) = sweep::sweep();
    let vecs: Vec<Vector3<f64>> =
        pts.iter().map(|p| Vector3::new(f64::from(p.x), f64::from(p.y), f64::from(p.z))).collect();
    println!("projection benchmark: {} points ({source}), one core, best of 60", pts.len());
    let k = |distortion| CameraIntrinsics {
        fx: 1000.0,
        fy: 1000.0,
        cx: 640.0,
        cy: 360.0,
        width: 1280,
        height: 720,
        distortion,
    };
    run(
        "pinhole+plumb-bob 1280x720",
        &rig(Projection::Pinhole(k(Distortion { k1: -0.1, k2: 0.02, p1: 0.001, p2: -0.0005, k3: 0.0 }))),
        &pts,
        &vecs,
    );
    run("pinhole 1280x720", &rig(Projection::Pinhole(k(Distortion::default()))), &pts, &vecs);
    // Worst case for branch prediction: the same points in random order.
    let mut shuffled = pts.clone();
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    for i in (1..shuffled.len()).rev() {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        shuffled.swap(i, (s % (i as u64 + 1)) as usize);
    }
    let svecs: Vec<Vector3<f64>> =
        shuffled.iter().map(|p| Vector3::new(f64::from(p.x), f64::from(p.y), f64::from(p.z))).collect();
    run(
        "pinhole+plumb-bob, shuffled",
        &rig(Projection::Pinhole(k(Distortion { k1: -0.1, k2: 0.02, p1: 0.001, p2: -0.0005, k3: 0.0 }))),
        &shuffled,
        &svecs,
    );
    let p = Matrix3x4::new(1000.0, 0.0, 640.0, 40.0, 0.0, 1000.0, 360.0, 0.2, 0.0, 0.0, 1.0, 0.003);
    run("rectified 1280x720", &rig(Projection::Rectified { p, width: 1280, height: 720 }), &pts, &vecs);
}
