//! The benchmarks' lidar sweep: KITTI 000001 (a real HDL-64 sweep, 120k points) from
//! `../shared/data` when present, else a synthetic 120k-point cloud.

use std::path::Path;

use shared::frames::PointRecord;

/// The sweep and where it came from.
pub fn sweep() -> (Vec<PointRecord>, &'static str) {
    let kitti = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/kitti/velodyne/000001.bin");
    if let Ok(bytes) = std::fs::read(&kitti) {
        let pts = bytes
            .chunks_exact(16)
            .map(|c| {
                let f = |i: usize| f32::from_le_bytes([c[i], c[i + 1], c[i + 2], c[i + 3]]);
                PointRecord { x: f(0), y: f(4), z: f(8), intensity: f(12), ..PointRecord::default() }
            })
            .collect();
        return (pts, "KITTI 000001");
    }
    let mut s = 0x2545_F491_4F6C_DD1Du64;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f32 / (1u64 << 53) as f32
    };
    let pts = (0..120_000)
        .map(|_| {
            let (r, az, el) = (2.0 + 70.0 * next(), std::f32::consts::TAU * next(), -0.4 + 0.45 * next());
            PointRecord {
                x: r * az.cos() * el.cos(),
                y: r * az.sin() * el.cos(),
                z: r * el.sin(),
                intensity: next(),
                ..PointRecord::default()
            }
        })
        .collect();
    (pts, "synthetic")
}
