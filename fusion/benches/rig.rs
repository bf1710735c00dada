//! Fusion's projection with 1, 2, 4 and 8 cameras around one lidar (issue 18 §5):
//! `cargo bench -p fusion --bench rig [-- ROUNDS]`.
//!
//! The sweep is KITTI 000001 (120k points, HDL-64) when `../shared/data` is present, else a
//! synthetic 120k-point cloud. The cameras are nuScenes-like (1600×900, f = 1266 px, 64°
//! across, no distortion), spread evenly over 360° on a 1 m circle around the lidar, pitched
//! 3° down. Each configuration is timed both ways on one core: N separate single-camera
//! projections (`Projector::project` per camera, today's path) and one
//! `RigProjector::project`. Times are the thread's CPU time (a loaded machine preempts the
//! benchmark; wall time would count that). A round takes the median of 25 sweeps per cell; the table gives
//! the median over the rounds (default 5), so a loaded machine shows in the spread, not in
//! the figures. A second table does the same with plumb-bob distortion, where the rig
//! cannot cull and only shares the chunk loop.

mod sweep;

use std::hint::black_box;

use calib::{CalibrationSet, CameraIntrinsics, Distortion, Projection};
use fusion::{Projected, Projector, RigProjected, RigProjector};
use nalgebra::{Isometry3, Matrix3, Rotation3, Translation3, UnitQuaternion};
use shared::frames::PointRecord;
use shared::{CalibEpoch, TimestampNs};

const COUNTS: [usize; 4] = [1, 2, 4, 8];
const SWEEPS: usize = 25;

fn cameras(n: usize, distortion: Distortion) -> Vec<CalibrationSet> {
    let optical = UnitQuaternion::from_rotation_matrix(&Rotation3::from_matrix_unchecked(Matrix3::new(
        0.0, 0.0, 1.0, -1.0, 0.0, 0.0, 0.0, -1.0, 0.0,
    )));
    (0..n)
        .map(|i| {
            let yaw = std::f64::consts::TAU * i as f64 / n as f64;
            CalibrationSet::single(
                CalibEpoch(1),
                TimestampNs(0),
                Projection::Pinhole(CameraIntrinsics {
                    fx: 1266.0,
                    fy: 1266.0,
                    cx: 816.0,
                    cy: 491.0,
                    width: 1600,
                    height: 900,
                    distortion,
                }),
                Isometry3::from_parts(
                    Translation3::new(1.0 + yaw.cos(), yaw.sin(), 1.6),
                    UnitQuaternion::from_euler_angles(0.0, 0.05, yaw) * optical,
                ),
                Isometry3::translation(1.0, 0.0, 1.8),
            )
        })
        .collect()
}

/// This thread's CPU time, ms: on a shared machine, time spent preempted is not counted.
fn cpu_ms() -> f64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    t.tv_sec as f64 * 1e3 + t.tv_nsec as f64 / 1e6
}

/// Median of `SWEEPS` timings (thread CPU time) of `f`, in milliseconds, after one warm-up;
/// and `f`'s result.
fn median_ms(mut f: impl FnMut() -> usize) -> (f64, usize) {
    let kept = f();
    let mut t: Vec<f64> = (0..SWEEPS)
        .map(|_| {
            let s = cpu_ms();
            black_box(f());
            cpu_ms() - s
        })
        .collect();
    t.sort_by(f64::total_cmp);
    (t[SWEEPS / 2], kept)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One table: for each camera count, (separate ms, rig ms, points kept over all cameras).
fn table(pts: &[PointRecord], distortion: Distortion, rounds: usize) -> Vec<(f64, f64, usize)> {
    let mut cells = vec![(Vec::new(), Vec::new(), 0usize); COUNTS.len()];
    for _ in 0..rounds {
        for (cell, &n) in cells.iter_mut().zip(&COUNTS) {
            let sets = cameras(n, distortion);
            let singles: Vec<Projector> = sets.iter().map(Projector::new).collect();
            let mut outs = vec![Projected::new(); n];
            let (sep, kept_sep) = median_ms(|| {
                singles
                    .iter()
                    .zip(&mut outs)
                    .map(|(p, o)| {
                        p.project(black_box(pts), o);
                        o.len()
                    })
                    .sum()
            });
            let rig = RigProjector::new(&sets);
            let mut out = RigProjected::new();
            let (joint, kept_rig) = median_ms(|| {
                rig.project(black_box(pts), &mut out);
                out.total_kept()
            });
            assert_eq!(kept_sep, kept_rig, "both paths keep the same points");
            cell.0.push(sep);
            cell.1.push(joint);
            cell.2 = kept_rig;
        }
    }
    cells.into_iter().map(|(s, r, k)| (median(s), median(r), k)).collect()
}

fn print(title: &str, rows: &[(f64, f64, usize)]) {
    println!("\n{title}");
    println!("| cameras | separate, ms/sweep | ratio to 1 | rig, ms/sweep | ratio to 1 | points kept |");
    println!("|---:|---:|---:|---:|---:|---:|");
    let (s1, r1) = (rows[0].0, rows[0].1);
    for (&n, &(s, r, k)) in COUNTS.iter().zip(rows) {
        println!("| {n} | {s:.3} | {:.2}× | {r:.3} | {:.2}× | {k} |", s / s1, r / r1);
    }
}

fn main() {
    let rounds = std::env::args().skip(1).find_map(|a| a.parse::<usize>().ok()).unwrap_or(5).max(1);
    let (pts, source) = sweep::sweep();
    println!(
        "camera-count benchmark: {} points ({source}), 1600×900 cameras over 360°, one core, \
         median of {SWEEPS} sweeps, median over {rounds} rounds",
        pts.len()
    );
    print("no distortion (the rig culls by horizontal frustum)", &table(&pts, Distortion::default(), rounds));
    let d = Distortion { k1: -0.1, k2: 0.02, p1: 0.001, p2: -0.0005, k3: 0.0 };
    print("plumb-bob distortion (no culling: every camera tests every point)", &table(&pts, d, rounds));
}
