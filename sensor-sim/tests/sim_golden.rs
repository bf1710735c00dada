//! Golden bytes: camera frames and lidar sweeps of the shipped drives, hashed (FNV-1a 64)
//! and compared with constants recorded from the renderer before its speed-ups. Every
//! test downstream compares fusion results across runs, recordings and replays, so a
//! faster renderer must give the very same bytes; this test says so directly, for one and
//! several camera threads, one and several lidar threads, several times along each drive
//! (across a recalibration too) and the rectified (export) camera.

use sensor_sim::{CameraOptions, CameraRenderer, LidarRenderer, Scenario};
use shared::TimestampNs;
use std::path::Path;

/// FNV-1a, 64 bit: every byte counts, and order matters.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

fn load(name: &str) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/drives").join(name);
    Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

/// Capture times spread along the drive (seconds), the last one near its end.
fn times(s: &Scenario, n: usize) -> Vec<TimestampNs> {
    let lap = s.trajectory().length() / s.trajectory().speed();
    (0..n).map(|i| TimestampNs(((0.37 + lap * i as f64 / n as f64) * 1e9) as u64)).collect()
}

/// The hashes `frames(n)` gives for each thread count `n` of `threads`, which must agree.
fn same_on_any_threads(what: &str, threads: &[usize], mut frames: impl FnMut(usize) -> Vec<u64>) -> Vec<u64> {
    let per_count: Vec<Vec<u64>> = threads.iter().map(|&n| frames(n)).collect();
    for (n, h) in threads.iter().zip(&per_count) {
        assert_eq!(h, &per_count[0], "{what} bytes differ on {n} threads");
    }
    per_count[0].clone()
}

/// Hashes of camera frames at `ts`, drawn on each thread count of `threads` (all equal).
fn camera_hashes(s: &Scenario, options: CameraOptions, ts: &[TimestampNs], threads: &[usize]) -> Vec<u64> {
    let mut cam = CameraRenderer::with_options(s, options);
    same_on_any_threads("camera", threads, |n| {
        cam.set_threads(n);
        let mut buf = Vec::new();
        ts.iter()
            .map(|&t| {
                buf.clear();
                cam.render(t, &mut buf).unwrap();
                fnv(&buf)
            })
            .collect()
    })
}

/// Hashes of lidar sweeps at `ts` (sweep index from the position), on each of `threads`
/// (all equal).
fn lidar_hashes(s: &Scenario, ts: &[TimestampNs], threads: &[usize]) -> Vec<u64> {
    let mut lidar = LidarRenderer::new(s);
    same_on_any_threads("lidar", threads, |n| {
        lidar.set_threads(n);
        let mut buf = Vec::new();
        (0u64..)
            .zip(ts)
            .map(|(i, &t)| {
                buf.clear();
                lidar.render(t, i * 7 + 3, &mut buf).unwrap();
                fnv(&buf)
            })
            .collect()
    })
}

fn check(what: &str, got: &[u64], want: &[u64]) {
    assert_eq!(got, want, "{what}: hashes changed; got {got:#018x?}");
}

#[test]
fn default_drive_bytes_unchanged() {
    let s = load("default.ron");
    let ts = times(&s, 6);
    let cam = camera_hashes(&s, CameraOptions::default(), &ts, &[1, 2, 3]);
    check(
        "default camera",
        &cam,
        &[
            0x6bfa0f51ec9e8c06,
            0x26a0edb8a45deecd,
            0xa6443fe50a432659,
            0xff67d321c29e0153,
            0x1a72de66e03c6fe8,
            0x31c2535148f87531,
        ],
    );
    let rect = camera_hashes(&s, CameraOptions { distortion: false }, &ts[..2], &[2]);
    check("default rectified camera", &rect, &[0xfbbd9cccbec0a972, 0xc65dd1332681882b]);
    let lidar = lidar_hashes(&s, &ts, &[1, 2]);
    check(
        "default lidar",
        &lidar,
        &[
            0xd6c3128f557a5f53,
            0xe70940d07da31b7c,
            0x5230b092f2f4464b,
            0xa61c164e20d48e81,
            0xced0a2459b60e7c5,
            0x8e6574c8624ab3fd,
        ],
    );
}

#[test]
fn full_drive_bytes_unchanged() {
    let s = load("full.ron");
    let ts = times(&s, 4);
    let cam = camera_hashes(&s, CameraOptions::default(), &ts, &[1, 2]);
    check(
        "full camera",
        &cam,
        &[0xc596dd65aeae0f60, 0x0b58d07881955e4f, 0xace257d8bb747212, 0xce56921e645b2fa6],
    );
    let lidar = lidar_hashes(&s, &ts[..3], &[1, 2]);
    check("full lidar", &lidar, &[0xea485ca73974b039, 0x7ba365f588196c98, 0xf29083619dbf0aaa]);
}

#[test]
fn recalibration_drive_bytes_unchanged() {
    let s = load("recalibration.ron");
    let d = s.duration_s();
    let ts: Vec<TimestampNs> =
        (0..6).map(|i| TimestampNs((d * (0.05 + 0.18 * f64::from(i)) * 1e9) as u64)).collect();
    let epochs: std::collections::BTreeSet<_> = ts.iter().map(|&t| s.truth_epoch_at(t)).collect();
    assert!(epochs.len() > 1, "the times should span a recalibration");
    let cam = camera_hashes(&s, CameraOptions::default(), &ts, &[2]);
    check(
        "recalibration camera",
        &cam,
        &[
            0xba3d2c44daba7871,
            0x1c0c807b6bc87da6,
            0x4669df8a36a134b7,
            0x3a5797cee1cd8996,
            0x510c1101790abc0a,
            0xcae8730b507dd4ea,
        ],
    );
    let lidar = lidar_hashes(&s, &ts, &[2]);
    check(
        "recalibration lidar",
        &lidar,
        &[
            0x812cb1f4bc28103a,
            0x13a19ce1c6bf4218,
            0xb6d259c3b6da7644,
            0x32ceac346562debc,
            0xf1d119da2fad3e81,
            0xd3c553bb0830b78a,
        ],
    );
}
