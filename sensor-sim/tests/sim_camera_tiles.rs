//! The camera renders the same bytes however it is split over threads, and the same bytes as
//! before it was split: pinned FNV-1a hashes of frames across the lap, for the raw
//! (distorted) and the rectified image, at the default and the full resolution and across a
//! recalibration; and the same bytes on any number of threads.

use sensor_sim::{CameraOptions, CameraRenderer, Scenario};
use shared::TimestampNs;
use std::path::Path;

fn load(name: &str) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/drives").join(name);
    Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

/// FNV-1a, 64 bits.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// Capture times spread over the scenario (`n` of them, the first at 0).
fn times(s: &Scenario, n: u64) -> Vec<TimestampNs> {
    (0..n).map(|i| TimestampNs((s.duration_s() * 1e9) as u64 / n * i)).collect()
}

fn frame(cam: &mut CameraRenderer, t: TimestampNs) -> Vec<u8> {
    let mut buf = Vec::new();
    cam.render(t, &mut buf).unwrap();
    buf
}

fn hashes(s: &Scenario, options: CameraOptions, n: u64) -> Vec<u64> {
    let mut cam = CameraRenderer::with_options(s, options);
    times(s, n).into_iter().map(|t| fnv(&frame(&mut cam, t))).collect()
}

const RAW: CameraOptions = CameraOptions { distortion: true };
const RECTIFIED: CameraOptions = CameraOptions { distortion: false };

#[test]
fn pinned_default_raw() {
    let got = hashes(&load("default.ron"), RAW, 6);
    assert_eq!(
        got,
        [
            0xee8a_ed2c_3297_5fcd,
            0xf7ff_8bbd_d13f_a837,
            0xef93_b286_bb2f_11b9,
            0x72bd_46c7_4a97_81b6,
            0x5310_372a_ce36_b7a3,
            0x2762_4bce_4d95_70c0,
        ]
    );
}

#[test]
fn pinned_default_rectified() {
    let got = hashes(&load("default.ron"), RECTIFIED, 4);
    assert_eq!(
        got,
        [0x65b4_30c0_3a60_9fc0, 0xbe2e_4fc7_361f_2f00, 0x1b5f_4bf7_c946_3d06, 0x840d_8a6f_b642_5aca,]
    );
}

#[test]
fn pinned_full_raw() {
    let got = hashes(&load("full.ron"), RAW, 3);
    assert_eq!(got, [0x15e7_0a7c_3fb9_0ad3, 0xa2f0_3651_4456_69d3, 0xa691_3421_dac7_1f2d,]);
}

#[test]
fn pinned_recalibration_raw() {
    let got = hashes(&load("recalibration.ron"), RAW, 6);
    assert_eq!(
        got,
        [
            0xf5e0_ddeb_f076_86aa,
            0x6758_049a_1351_e038,
            0xd5dd_b207_b23f_164f,
            0x7f80_e0a9_db94_04b2,
            0xfe6f_18a6_863b_6a39,
            0xc5f1_3055_919e_0860,
        ]
    );
}

/// Frames drawn on 1, 2 and 3 threads, raw and rectified, default and full resolution.
#[test]
fn threads_do_not_change_the_bytes() {
    for (name, options) in [("default.ron", RAW), ("default.ron", RECTIFIED), ("full.ron", RAW)] {
        let s = load(name);
        let mut cams: Vec<CameraRenderer> = (1..=3)
            .map(|n| {
                let mut c = CameraRenderer::with_options(&s, options);
                c.set_threads(n);
                assert_eq!(c.threads(), n);
                c
            })
            .collect();
        for t in times(&s, 3) {
            let single = frame(&mut cams[0], t);
            for cam in &mut cams[1..] {
                // Twice: the second frame reuses the band buffers the first one left.
                for _ in 0..2 {
                    assert!(frame(cam, t) == single, "{name} at {t:?} on {} threads", cam.threads());
                }
            }
        }
    }
}
