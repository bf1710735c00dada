//! The engine end to end through its channels, with the Vec sink.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;

use calib::{CalibrationSet, CameraIntrinsics, Distortion, Projection};
use crossbeam_channel::{bounded, unbounded, Receiver, Sender};
use fusion::{
    Engine, EngineChannels, EngineConfig, FusionResult, InFrame, OverlayConfig, PairingConfig, PairingMode,
    VecSink,
};
use nalgebra::{Isometry3, Matrix3, Rotation3, Translation3, UnitQuaternion};
use shared::frames::{ImageHeader, PointRecord};
use shared::{CalibEpoch, FrameSeq, StreamKind, TimestampNs};
use zerocopy::IntoBytes;

const MS: u64 = 1_000_000;
const W: u32 = 160;
const H: u32 = 120;

fn rig(epoch: u64) -> CalibrationSet {
    let optical = UnitQuaternion::from_rotation_matrix(&Rotation3::from_matrix_unchecked(Matrix3::new(
        0.0, 0.0, 1.0, -1.0, 0.0, 0.0, 0.0, -1.0, 0.0,
    )));
    CalibrationSet::single(
        CalibEpoch(epoch),
        TimestampNs(0),
        Projection::Pinhole(CameraIntrinsics {
            fx: 150.0,
            fy: 150.0,
            cx: 80.0,
            cy: 60.0,
            width: W,
            height: H,
            distortion: Distortion::default(),
        }),
        Isometry3::from_parts(
            Translation3::new(1.5, 0.0, 1.5),
            UnitQuaternion::from_euler_angles(0.0, 0.0, 0.01 * epoch as f64) * optical,
        ),
        Isometry3::translation(1.0, 0.0, 1.8),
    )
}

fn camera_payload() -> Vec<u8> {
    let mut p = ImageHeader { width: W, height: H, format: 1, has_labels: 0 }.as_bytes().to_vec();
    p.extend(std::iter::repeat_n(200u8, (W * H * 3) as usize));
    p
}

fn lidar_payload() -> Vec<u8> {
    let pts: Vec<PointRecord> = (0..400)
        .map(|i| PointRecord {
            x: 10.0,
            y: -2.0 + (i % 40) as f32 * 0.1,
            z: -1.0 + (i / 40) as f32 * 0.2,
            intensity: 0.25,
            ..PointRecord::default()
        })
        .collect();
    pts.as_bytes().to_vec()
}

struct Rig {
    camera: Sender<InFrame>,
    lidar: Sender<InFrame>,
    calib: Sender<Arc<CalibrationSet>>,
    stop: Sender<()>,
    recycled_camera: Receiver<Vec<u8>>,
    recycled_lidar: Receiver<Vec<u8>>,
    clock: Arc<AtomicU64>,
    engine: thread::JoinHandle<fusion::FusionReport<VecSink>>,
    handle: fusion::StatsHandle,
}

fn start(cfg: EngineConfig) -> Rig {
    let (camera, crx) = bounded(8);
    let (lidar, lrx) = bounded(8);
    let (calib, qrx) = unbounded();
    let (stop, srx) = bounded(1);
    let (rc, recycled_camera) = unbounded();
    let (rl, recycled_lidar) = unbounded();
    let clock = Arc::new(AtomicU64::new(0));
    let c = clock.clone();
    let channels = EngineChannels {
        camera: crx,
        lidar: lrx,
        calibration: qrx,
        stop: srx,
        recycle_camera: rc,
        recycle_lidar: rl,
    };
    let engine =
        Engine::new(cfg, channels, VecSink::new(), move || TimestampNs(c.load(Ordering::Relaxed))).unwrap();
    let handle = engine.stats_handle();
    let engine = thread::spawn(move || engine.run());
    Rig { camera, lidar, calib, stop, recycled_camera, recycled_lidar, clock, engine, handle }
}

fn frame(stream: StreamKind, seq: u64, t_ms: u64, epoch: u64, payload: Vec<u8>) -> InFrame {
    InFrame {
        stream,
        seq: FrameSeq(seq),
        capture: TimestampNs(t_ms * MS),
        epoch: CalibEpoch(epoch),
        published: TimestampNs(0),
        payload: payload.into(),
    }
}

/// One second: camera 30 Hz, lidar 10 Hz; epoch 2 from 500 ms on. Calibration 1 comes first,
/// calibration 2 only after every frame was sent (a delayed message).
fn drive(r: &Rig) -> (u64, u64) {
    r.calib.send(Arc::new(rig(1))).unwrap();
    let (mut cams, mut sweeps) = (0, 0);
    for i in 0..30u64 {
        let t = i * 100 / 3;
        let e = if t >= 500 { 2 } else { 1 };
        r.clock.store(t * MS + MS, Ordering::Relaxed);
        r.camera.send(frame(StreamKind::Camera, 1000 + i, t, e, camera_payload())).unwrap();
        cams += 1;
        if i % 3 == 0 {
            r.lidar.send(frame(StreamKind::Lidar, 5000 + i / 3, t, e, lidar_payload())).unwrap();
            sweeps += 1;
        }
    }
    // A duplicate sweep and a malformed camera frame.
    r.lidar.send(frame(StreamKind::Lidar, 5000, 0, 1, lidar_payload())).unwrap();
    r.camera.send(frame(StreamKind::Camera, 999, 10, 1, vec![1, 2, 3])).unwrap();
    r.calib.send(Arc::new(rig(2))).unwrap();
    (cams + 1, sweeps + 1)
}

#[test]
fn end_to_end_through_channels() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = EngineConfig {
        pairing: PairingConfig::for_camera_rate(30.0),
        keep_frames: true,
        overlay: Some(OverlayConfig::new(dir.path().join("overlays"), 4)),
        ..EngineConfig::default()
    };
    let r = start(cfg);
    let (cams, sweeps) = drive(&r);
    // Closing the frame channels ends the run once everything queued is handled.
    drop(r.camera);
    drop(r.lidar);
    let report = r.engine.join().unwrap();
    let s = &report.stats;

    assert_eq!(s.fused, 10, "{s:#?}");
    assert_eq!(s.fused_epoch_mismatch, 0);
    assert_eq!(s.pairer.duplicate_lidar, 1);
    assert_eq!(s.invalid_camera, 1);
    assert_eq!(s.pairer.unpaired_camera, 20);
    assert_eq!(s.epochs, vec![CalibEpoch(1), CalibEpoch(2)]);
    assert!(!s.invariant_broken());
    assert_eq!(s.latency.count(), 10);
    assert_eq!(s.overlays_written, 3, "pairs 0, 4 and 8");
    assert_eq!(std::fs::read_dir(dir.path().join("overlays")).unwrap().count(), 3);

    // The sink got one fused frame per pair, in the header format, coloured from the image.
    assert_eq!(report.sink.frames.len(), 10);
    let mut lidar_seqs = Vec::new();
    for i in 0..10 {
        let f = report.sink.frame(i).unwrap();
        let m = &s.frames[i];
        assert_eq!(
            (f.header.camera_seq, f.header.lidar_seq, f.header.epoch),
            (m.camera_seq, m.lidar_seq, m.epoch)
        );
        assert_eq!(u64::from(f.header.points), m.points_in_image);
        assert!(m.points_in_image > 100 && m.points == 400);
        assert_eq!((f.header.width, f.header.height), (W, H));
        assert_eq!(f.points[0].rgbi, [200, 200, 200, 64]);
        assert_eq!(m.camera_epoch, m.lidar_epoch);
        assert_eq!(m.epoch, m.lidar_epoch);
        assert_eq!(m.camera_seq - 1000, (m.lidar_seq - 5000) * 3);
        lidar_seqs.push(m.lidar_seq);
    }
    lidar_seqs.sort_unstable();
    assert_eq!(lidar_seqs, (5000..5010).collect::<Vec<_>>());

    // Every payload came back for reuse.
    assert_eq!(r.recycled_camera.try_iter().count() as u64, cams);
    assert_eq!(r.recycled_lidar.try_iter().count() as u64, sweeps);

    // The live handle agrees with the final stats.
    let snap = r.handle.snapshot();
    assert_eq!((snap.fused, snap.duplicates, snap.invalid, snap.latest_epoch), (10, 1, 1, 2));
    assert_eq!((snap.camera_frames, snap.lidar_frames), (cams, sweeps));

    // And fusion's report carries it.
    let sum = FusionResult::from_stats(s, true);
    assert_eq!(sum.pairs.fused, 10);
    assert_eq!(sum.frames.as_ref().map(Vec::len), Some(10));
    assert_eq!(sum.calibration.epochs, vec![1, 2]);
    assert_eq!(sum.checks, fusion::summary::FusionChecks::default());
    drop(r.stop);
}

#[test]
fn latest_mode_counts_mismatches_from_the_calibration_used() {
    let cfg = EngineConfig {
        pairing: PairingConfig::for_camera_rate(30.0).with_mode(PairingMode::Latest),
        keep_frames: true,
        ..EngineConfig::default()
    };
    let r = start(cfg);
    // Both calibrations known up front: every pair is projected with epoch 2.
    r.calib.send(Arc::new(rig(2))).unwrap();
    drive(&r);
    drop(r.camera);
    drop(r.lidar);
    let s = r.engine.join().unwrap().stats;
    assert_eq!(s.fused, 10);
    // Sweeps at 0..=400 ms carry epoch 1 but are projected with epoch 2.
    assert_eq!(s.fused_epoch_mismatch, 5);
    assert!(s.frames.iter().all(|m| m.epoch == 2));
    assert!(!s.invariant_broken(), "mismatches are the expected damage under latest");
}

#[test]
fn stop_signal_ends_the_run_and_accounts_for_everything() {
    let r = start(EngineConfig::default());
    r.calib.send(Arc::new(rig(1))).unwrap();
    // A sweep whose epoch never becomes known, and one that waits for a later camera frame.
    r.lidar.send(frame(StreamKind::Lidar, 1, 0, 7, lidar_payload())).unwrap();
    r.camera.send(frame(StreamKind::Camera, 1, 100, 1, camera_payload())).unwrap();
    r.lidar.send(frame(StreamKind::Lidar, 2, 101, 1, lidar_payload())).unwrap();
    r.stop.send(()).unwrap();
    let s = r.engine.join().unwrap().stats;
    assert_eq!(s.fused, 1, "finish decides what it can: {s:#?}");
    assert_eq!(s.pairer.dropped_no_calibration_lidar, 1);
    assert!(s.lidar_accounted() && s.camera_accounted());
    assert_eq!((s.held_camera, s.held_lidar), (0, 0));
    assert_eq!(r.recycled_lidar.try_iter().count(), 2);
    assert_eq!(r.recycled_camera.try_iter().count(), 1);
}

#[test]
fn timeouts_fire_without_new_frames() {
    let mut cfg = EngineConfig::default();
    cfg.pairing.lidar_timeout_ns = 20 * MS;
    let r = start(cfg);
    r.calib.send(Arc::new(rig(1))).unwrap();
    r.camera.send(frame(StreamKind::Camera, 1, 0, 1, camera_payload())).unwrap();
    r.clock.store(5 * MS, Ordering::Relaxed);
    r.lidar.send(frame(StreamKind::Lidar, 1, 5, 1, lidar_payload())).unwrap();
    // No later camera frame: the sweep is decided at its timeout, driven by the clock.
    let t0 = std::time::Instant::now();
    while r.handle.snapshot().lidar_frames < 1 || r.handle.snapshot().camera_frames < 1 {
        assert!(t0.elapsed().as_secs() < 5);
        thread::yield_now();
    }
    r.clock.store(100 * MS, Ordering::Relaxed);
    while r.handle.snapshot().fused + r.handle.snapshot().unpaired_lidar < 1 {
        assert!(t0.elapsed().as_secs() < 5, "the timeout never fired");
        thread::sleep(std::time::Duration::from_millis(1));
    }
    r.stop.send(()).unwrap();
    let s = r.engine.join().unwrap().stats;
    assert_eq!((s.fused, s.pairer.forced_decisions), (1, 1));
}
