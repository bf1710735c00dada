//! The lidar renders the same bytes however its rays are split over threads, and the same
//! bytes as before it was split: pinned FNV-1a hashes of sweeps across the drive (the
//! default and the full scenario, and the scanning lidar of the highway), and the same bytes
//! on 1, 2 and 3 threads.

use sensor_sim::{LidarRenderer, Scenario};
use shared::TimestampNs;
use std::path::Path;

mod sim_common;

fn load(name: &str) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/drives").join(name);
    Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

/// FNV-1a, 64 bits.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// Sweep `i` of `n` spread over the scenario: its capture time.
fn time(s: &Scenario, n: u64, i: u64) -> TimestampNs {
    TimestampNs((s.duration_s() * 1e9) as u64 / n * i)
}

fn sweep(lidar: &mut LidarRenderer, t: TimestampNs, index: u64) -> Vec<u8> {
    let mut buf = Vec::new();
    lidar.render(t, index, &mut buf).unwrap();
    buf
}

fn hashes(s: &Scenario, n: u64) -> Vec<u64> {
    let mut lidar = LidarRenderer::new(s);
    (0..n).map(|i| fnv(&sweep(&mut lidar, time(s, n, i), i))).collect()
}

#[test]
fn pinned_default() {
    let got = hashes(&load("default.ron"), 4);
    assert_eq!(
        got,
        [0x7afc_716e_2148_3f63, 0x2a4f_39d1_b376_722b, 0x63d8_7fb5_d545_d855, 0x683f_8dd2_c4a1_47ad],
        "{got:#x?}"
    );
}

#[test]
fn pinned_full() {
    let got = hashes(&load("full.ron"), 2);
    assert_eq!(got, [0x902e_bb20_23e3_4391, 0x1add_b2c7_cd44_6af5], "{got:#x?}");
}

#[test]
fn pinned_scanning_highway() {
    let got = hashes(&load("highway.ron"), 3);
    assert_eq!(got, [0xe0d8_4a0b_d97e_b187, 0xa90a_756b_bbe8_29bd, 0x6932_1083_778b_d107], "{got:#x?}");
}

/// Sweeps cast on 1, 2 and 3 threads, default, full and scanning.
#[test]
fn threads_do_not_change_the_bytes() {
    for name in ["default.ron", "full.ron", "highway.ron"] {
        let s = load(name);
        let mut lidars: Vec<LidarRenderer> = (1..=3)
            .map(|n| {
                let mut l = LidarRenderer::new(&s);
                l.set_threads(n);
                assert_eq!(l.threads(), n);
                l
            })
            .collect();
        for i in 0..2 {
            let t = time(&s, 2, i);
            let single = sweep(&mut lidars[0], t, i);
            for lidar in &mut lidars[1..] {
                assert!(sweep(lidar, t, i) == single, "{name} at {t:?} on {} threads", lidar.threads());
            }
        }
    }
}

/// More threads than the machine has cores (workers that start late find the blocks
/// taken), one renderer reused sweep after sweep, and sweeps out of order: the same bytes
/// as one thread, noise on (every shipped lidar has range noise) and the scanning highway.
#[test]
fn late_workers_and_reused_buffers_do_not_change_the_bytes() {
    for name in ["default.ron", "highway.ron"] {
        let s = load(name);
        let mut one = LidarRenderer::new(&s);
        one.set_threads(1);
        let mut many = LidarRenderer::new(&s);
        many.set_threads(8);
        assert_eq!(many.threads(), 8);
        for i in [3, 0, 3, 1] {
            let t = time(&s, 4, i);
            assert!(sweep(&mut many, t, i) == sweep(&mut one, t, i), "{name} sweep {i} on 8 threads");
        }
    }
}

/// A sweep that did not fit its slot leaves nothing behind: the next sweep's bytes are
/// whole and right.
#[test]
fn a_full_sink_leaves_the_renderer_whole() {
    let s = load("default.ron");
    let mut lidar = LidarRenderer::new(&s);
    let t = time(&s, 4, 1);
    let want = sweep(&mut LidarRenderer::new(&s), t, 1);
    let mut small = sim_common::Slot::new(vec![0; want.len() / 3]);
    assert!(lidar.render(t, 1, &mut small).is_err());
    assert!(small.len <= want.len() / 3 && small.buf[..small.len] == want[..small.len]);
    assert!(sweep(&mut lidar, t, 1) == want);
}
