//! Renderers: determinism, geometry against `calib`'s projection, epoch tagging across a
//! scheduled recalibration, and the scene properties fusion's tests rely on.

mod sim_common;

use calib::CalibrationSet;
use nalgebra::Point3;
use sensor_sim::world::{GROUND_ID, SKY_ID};
use sensor_sim::{CameraRenderer, LidarRenderer, Scenario};
use shared::frames::{camera_image, lidar_points, ImageView, PointRecord};
use shared::{CalibEpoch, TimestampNs};
use sim_common::Slot;
use std::path::Path;

fn default_scenario() -> Scenario {
    Scenario::builtin_default()
}

fn secs(s: f64) -> TimestampNs {
    TimestampNs((s * 1e9).round() as u64)
}

fn camera_frame(cam: &mut CameraRenderer, t: TimestampNs) -> (Vec<u8>, CalibEpoch) {
    let mut buf = Vec::new();
    let f = cam.render(t, &mut buf).unwrap();
    assert_eq!(f.bytes, buf.len());
    assert_eq!(buf.len(), cam.payload_len());
    (buf, f.epoch)
}

fn lidar_sweep(lidar: &mut LidarRenderer, t: TimestampNs, index: u64) -> (Vec<u8>, CalibEpoch) {
    let mut buf = Vec::new();
    let s = lidar.render(t, index, &mut buf).unwrap();
    assert_eq!(s.bytes, buf.len());
    assert_eq!(s.points * 24, buf.len());
    (buf, s.epoch)
}

/// Fraction of in-image lidar points whose instance equals the camera label at the pixel
/// `set` projects them to, and the number of in-image points.
fn consistency(set: &CalibrationSet, points: &[PointRecord], image: &ImageView<'_>) -> (f64, usize) {
    let (mut n, mut agree) = (0usize, 0usize);
    for p in points {
        if let Some(hit) = set.project_point(Point3::new(f64::from(p.x), f64::from(p.y), f64::from(p.z))) {
            n += 1;
            if image.label_at(hit.u as u32, hit.v as u32) == Some(p.instance as u16) {
                agree += 1;
            }
        }
    }
    (agree as f64 / n.max(1) as f64, n)
}

#[test]
fn same_seed_same_bytes() {
    let a = default_scenario();
    let b =
        Scenario::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/drives/default.ron")).unwrap();
    let (mut ca, mut cb) = (CameraRenderer::new(&a), CameraRenderer::new(&b));
    let (mut la, mut lb) = (LidarRenderer::new(&a), LidarRenderer::new(&b));
    for (i, t) in [0.0, 0.35, 7.1].into_iter().enumerate() {
        let t = secs(t);
        assert_eq!(camera_frame(&mut ca, t).0, camera_frame(&mut cb, t).0);
        let sweep = lidar_sweep(&mut la, t, i as u64).0;
        assert_eq!(sweep, lidar_sweep(&mut lb, t, i as u64).0);
        // The same renderer again (its scratch reused) gives the same bytes too.
        assert_eq!(sweep, lidar_sweep(&mut la, t, i as u64).0);
    }
    // The noise is seeded by the frame index, and the world by the scenario's seed.
    let t = secs(1.0);
    assert_ne!(lidar_sweep(&mut la, t, 1).0, lidar_sweep(&mut la, t, 2).0);
    let text = sensor_sim::scenario::DEFAULT_RON.replace("seed: 7,", "seed: 8,");
    let c = Scenario::from_ron_str(&text, "seed8.ron").unwrap();
    assert_ne!(lidar_sweep(&mut LidarRenderer::new(&c), t, 1).0, lidar_sweep(&mut la, t, 1).0);
}

const BOX_SCENARIO: &str = r#"Scenario(
    name: "box ahead",
    seed: 1,
    world: (
        boxes: [(position: (21.0, 0.0, 0.0), size: (2.0, 4.0, 3.0), colour: (200, 40, 40), id: 42)],
        cylinders: [(position: (15.0, 4.0, 0.0), radius: 0.15, height: 5.0, id: 43)],
    ),
    // Starts at the origin heading +x, and barely moves.
    trajectory: Waypoints(points: [(0.0, 0.0), (100.0, 0.0), (100.0, 100.0), (-100.0, 100.0), (-100.0, 0.0)], speed_mps: 0.0001),
    // 61 beams over ±15°: beam 30 is horizontal.
    lidar: (beams: 61, azimuth_steps: 1024, vertical_fov_deg: (-15.0, 15.0), range_noise_m: 0.0),
    calibration: [
        // 30 azimuth steps to the left.
        (at_s: 0.5, changes: [LidarYawDeg(10.546875)]),
        (at_s: 1.0, changes: [CameraYawDeg(3.0), FocalScale(1.1)]),
    ],
)"#;

#[test]
fn box_ahead_in_lidar_and_camera() {
    let s = Scenario::from_ron_str(BOX_SCENARIO, "box.ron").unwrap();
    let sched = s.calibration_schedule();
    let mut cam = CameraRenderer::new(&s);
    let mut lidar = LidarRenderer::new(&s);

    // Epoch 1: the horizontal beam's first firing looks straight at the box's front face,
    // 20 - 1.2 = 18.8 m away.
    let (sweep, epoch) = lidar_sweep(&mut lidar, secs(0.0), 0);
    assert_eq!(epoch, CalibEpoch(1));
    let pts = lidar_points(&sweep).unwrap();
    let ahead = pts
        .iter()
        .filter(|p| p.ring == 30 && p.instance == 42)
        .min_by(|a, b| a.y.abs().total_cmp(&b.y.abs()))
        .expect("the box in ring 30");
    assert!((ahead.x - 18.8).abs() < 1e-3 && ahead.y.abs() < 1e-3 && ahead.z.abs() < 1e-3, "{ahead:?}");
    assert!(ahead.intensity > 0.0 && ahead.intensity <= 1.0);
    // Every return is the box, the pole or the ground; ground points lie on z = -1.9.
    for p in pts {
        assert!([42, 43, u32::from(GROUND_ID)].contains(&p.instance), "{p:?}");
        if p.instance == u32::from(GROUND_ID) {
            assert!((p.z + 1.9).abs() < 1e-3, "{p:?}");
        }
        assert_ne!(p.instance, u32::from(SKY_ID));
    }
    assert!(pts.iter().any(|p| p.instance == 43), "the pole");

    // The camera's label plane at the projected pixel of the box's centre and the pole's axis.
    let (frame, epoch) = camera_frame(&mut cam, secs(0.0));
    assert_eq!(epoch, CalibEpoch(1));
    let image = camera_image(&frame).unwrap();
    let set = &sched[0];
    let in_lidar = |w: Point3<f64>| set.lidar_to_vehicle().inverse() * w; // vehicle = world at t = 0
    let hit = set.project_point(in_lidar(Point3::new(21.0, 0.0, 1.5))).unwrap();
    assert!((hit.u - 640.0).abs() < 1.0, "{hit:?}");
    assert_eq!(image.label_at(hit.u as u32, hit.v as u32), Some(42));
    let hit = set.project_point(in_lidar(Point3::new(15.0, 4.0, 2.5))).unwrap();
    assert_eq!(image.label_at(hit.u as u32, hit.v as u32), Some(43));
    // Sky above, ground below.
    assert_eq!(image.label_at(640, 5), Some(SKY_ID));
    assert_eq!(image.label_at(640, 715), Some(GROUND_ID));
    // The lidar point ahead lands on the box in the image.
    let hit =
        set.project_point(Point3::new(f64::from(ahead.x), f64::from(ahead.y), f64::from(ahead.z))).unwrap();
    assert_eq!(image.label_at(hit.u as u32, hit.v as u32), Some(42));
}

#[test]
fn epochs_follow_the_schedule_and_move_the_sensors() {
    let s = Scenario::from_ron_str(BOX_SCENARIO, "box.ron").unwrap();
    let sched = s.calibration_schedule();
    assert_eq!(sched.len(), 3);
    assert_eq!(s.truth_epoch_at(secs(0.0)), CalibEpoch(1));
    assert_eq!(s.truth_epoch_at(TimestampNs(499_999_999)), CalibEpoch(1));
    assert_eq!(s.truth_epoch_at(secs(0.5)), CalibEpoch(2));
    assert_eq!(s.truth_epoch_at(secs(0.99)), CalibEpoch(2));
    assert_eq!(s.truth_epoch_at(secs(1.0)), CalibEpoch(3));
    assert_eq!(s.truth_epoch_at(secs(1e4)), CalibEpoch(3));
    assert!((s.rig_at(secs(0.7)).lidar.rpy_deg.2 - 10.546875).abs() < 1e-12);
    assert!((s.rig_at(secs(1.2)).intrinsics.fx - 1100.0).abs() < 1e-9);

    let mut cam = CameraRenderer::new(&s);
    let mut lidar = LidarRenderer::new(&s);
    for (i, t) in [0.2, 0.7, 1.2].into_iter().enumerate() {
        let t = secs(t);
        let truth = s.truth_epoch_at(t);
        let (sweep, epoch) = lidar_sweep(&mut lidar, t, i as u64);
        assert_eq!(epoch, truth);
        let set = &sched[(truth.0 - 1) as usize];
        let pose = s.vehicle_to_world_at(t);
        // With the epoch's mount, every box return lies on the box's surface.
        let on_box = |set: &CalibrationSet, p: &PointRecord| {
            let w =
                pose * set.lidar_to_vehicle() * Point3::new(f64::from(p.x), f64::from(p.y), f64::from(p.z));
            let inside =
                (19.999..=22.001).contains(&w.x) && w.y.abs() <= 2.001 && (-0.001..=3.001).contains(&w.z);
            let on_face = (w.x - 20.0).abs() < 2e-3
                || (w.x - 22.0).abs() < 2e-3
                || (w.y.abs() - 2.0).abs() < 2e-3
                || (w.z - 3.0).abs() < 2e-3;
            inside && on_face
        };
        let pts = lidar_points(&sweep).unwrap();
        let boxed: Vec<&PointRecord> = pts.iter().filter(|p| p.instance == 42).collect();
        assert!(boxed.len() > 50, "{}", boxed.len());
        assert!(boxed.iter().all(|p| on_box(set, p)), "epoch {truth:?}");
        if truth == CalibEpoch(2) {
            // The old mount (10.5° off) puts most of them off the box.
            let off = boxed.iter().filter(|p| !on_box(&sched[0], p)).count();
            assert!(off > boxed.len() / 2, "{off} of {}", boxed.len());
        }

        let (frame, epoch) = camera_frame(&mut cam, t);
        assert_eq!(epoch, truth);
        let image = camera_image(&frame).unwrap();
        let in_lidar = |w: Point3<f64>| set.lidar_to_vehicle().inverse() * (pose.inverse() * w);
        let pole = in_lidar(Point3::new(15.0, 4.0, 2.5));
        let hit = set.project_point(in_lidar(Point3::new(21.0, 0.0, 1.5))).unwrap();
        assert_eq!(image.label_at(hit.u as u32, hit.v as u32), Some(42));
        let hit = set.project_point(pole).unwrap();
        assert_eq!(
            image.label_at(hit.u as u32, hit.v as u32),
            Some(43),
            "pole at {hit:?} in epoch {truth:?}"
        );
        if truth == CalibEpoch(3) {
            // Epoch 2's camera (3° to the right, shorter lens) would miss the thin pole.
            let wrong = sched[1].project_point(pole).unwrap();
            assert!((wrong.u - hit.u).abs() > 15.0, "{wrong:?} vs {hit:?}");
            assert_ne!(image.label_at(wrong.u as u32, wrong.v as u32), Some(43));
        }
    }
}

#[test]
fn default_drive_scene_properties() {
    let s = default_scenario();
    let set = &s.calibration_schedule()[0];
    let mut wrong = set.clone();
    *wrong.lidar_to_vehicle_mut() *=
        nalgebra::Isometry3::rotation(nalgebra::Vector3::z() * 2f64.to_radians());
    let mut cam = CameraRenderer::new(&s);
    let mut lidar = LidarRenderer::new(&s);
    let lap = s.trajectory().length() / s.trajectory().speed();
    let n: u32 = 12;
    let (mut right_sum, mut wrong_sum, mut frac_sum, mut ahead_frames, mut sky_frames) =
        (0.0, 0.0, 0.0, 0, 0);
    for k in 0..n {
        let t = secs(lap * f64::from(k) / f64::from(n));
        let (frame, _) = camera_frame(&mut cam, t);
        let image = camera_image(&frame).unwrap();
        let (sweep, _) = lidar_sweep(&mut lidar, t, u64::from(k));
        let pts = lidar_points(&sweep).unwrap();
        let (right, in_image) = consistency(set, pts, &image);
        let (bad, _) = consistency(&wrong, pts, &image);
        assert!(right > 0.9, "consistency {right} at {t:?}");
        assert!(in_image > 5000, "{in_image}");
        right_sum += right;
        wrong_sum += bad;
        // Lidar returns on objects (not ground) that are in the camera's view.
        let on_objects_in_view = pts
            .iter()
            .filter(|p| p.instance >= 2)
            .filter(|p| {
                set.project_point(Point3::new(f64::from(p.x), f64::from(p.y), f64::from(p.z))).is_some()
            })
            .count();
        frac_sum += on_objects_in_view as f64 / pts.len() as f64;
        // Objects ahead: at least 5 % of the image's central third shows an object.
        let (w, h) = (image.header.width, image.header.height);
        let mut objects = 0;
        for y in h / 3..2 * h / 3 {
            for x in w / 3..2 * w / 3 {
                objects += u32::from(image.label_at(x, y).unwrap() >= 2);
            }
        }
        ahead_frames += u32::from(objects * 20 >= (w / 3) * (h / 3));
        // Ground in every frame, sky in most (not when facing a building at a corner).
        let labels = image.labels.unwrap();
        sky_frames += u32::from(labels.chunks(2).any(|c| c == [0, 0]));
        assert!(labels.chunks(2).any(|c| c == [1, 0]), "ground");
    }
    assert!(sky_frames * 2 > n, "sky in {sky_frames} of {n} frames");
    let (right, bad, frac) = (right_sum / f64::from(n), wrong_sum / f64::from(n), frac_sum / f64::from(n));
    assert!(right > 0.95, "mean consistency {right}");
    assert!(right - bad > 0.05, "a 2° yaw error only lowers consistency from {right} to {bad}");
    assert!(frac >= 0.05, "only {frac} of the lidar points are on objects in view");
    assert!(ahead_frames * 10 >= 9 * n, "objects ahead in {ahead_frames} of {n} frames");
}

#[test]
fn renders_into_a_fixed_slot_and_reports_a_small_one() {
    let s = default_scenario();
    let mut cam = CameraRenderer::new(&s);
    let mut slot = Slot::new(vec![0xAA; cam.payload_len()]);
    cam.render(secs(2.0), &mut slot).unwrap();
    assert_eq!(slot.len, cam.payload_len());
    assert_eq!(camera_frame(&mut cam, secs(2.0)).0, slot.buf, "a slot and a Vec get the same bytes");

    let mut small = Slot::new(vec![0; cam.payload_len() - 1]);
    let e = cam.render(secs(2.0), &mut small).unwrap_err();
    assert_eq!(e.needed, cam.payload_len());
    assert_eq!(small.len, 0, "nothing written into a slot that is too small");

    let mut lidar = LidarRenderer::new(&s);
    let mut small = Slot::new(vec![0; 1000]);
    assert!(lidar.render(secs(2.0), 0, &mut small).is_err());
    assert_eq!(lidar.max_payload_len(), 64 * 1024 * 24);
    assert_eq!(s.lidar_max_payload_len(), lidar.max_payload_len());
    assert_eq!(s.camera_payload_len(), cam.payload_len());
}
