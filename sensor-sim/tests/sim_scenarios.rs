//! Scenario files: every shipped drive parses and validates; bad files give one-line errors
//! naming the file, the field and (for syntax) the line:column.

use sensor_sim::scenario::{Fault, ScenarioError};
use sensor_sim::{Rig, Scenario};
use shared::Role;
use shared::{CalibEpoch, TimestampNs};
use std::path::{Path, PathBuf};

fn drives() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/drives")
}

fn load(name: &str) -> Scenario {
    Scenario::load(&drives().join(name)).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn every_shipped_scenario_parses_and_validates() {
    let mut n = 0;
    for entry in std::fs::read_dir(drives()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "ron") {
            let s = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
            assert!(!s.world().prims().is_empty(), "{}", path.display());
            assert!(s.trajectory().length() > 100.0);
            n += 1;
        }
    }
    assert!(n >= 4, "expected default, recalibration, faults and full; found {n}");
}

#[test]
fn builtin_default_is_the_default_file_and_rig() {
    let builtin = Scenario::builtin_default();
    let file = load("default.ron");
    assert_eq!(builtin.spec(), file.spec());
    assert_eq!(builtin.name(), "default");
    assert_eq!(builtin.camera().width, 1280);
    assert_eq!(builtin.camera().height, 720);
    assert!((builtin.camera().rate_hz - 30.0).abs() < 1e-12);
    assert_eq!((builtin.lidar().beams, builtin.lidar().azimuth_steps), (64, 1024));
    assert!((builtin.lidar().rate_hz - 10.0).abs() < 1e-12);
    // The default rig of configs/calib/default.ron.
    let rig = builtin.rig_at(TimestampNs(0));
    assert_eq!(rig, &Rig::default_for(1280, 720));
    let k = rig.intrinsics;
    assert_eq!(
        (k.fx, k.fy, k.cx, k.cy, k.k1, k.k2, k.p1, k.p2, k.k3),
        (1000.0, 1000.0, 640.0, 360.0, -0.05, 0.01, 0.0, 0.0, 0.0)
    );
    assert_eq!(rig.camera.xyz, (1.6, 0.0, 1.5));
    assert_eq!(rig.lidar.xyz, (1.2, 0.0, 1.9));
    assert_eq!(builtin.calibration_schedule().len(), 1);
    assert!(builtin.faults().is_empty());
}

#[test]
fn recalibration_schedule_and_faults() {
    let s = load("recalibration.ron");
    let sched = s.calibration_schedule();
    assert_eq!(sched.len(), 4);
    let from: Vec<u64> = sched.iter().map(|c| c.valid_from.0).collect();
    assert_eq!(from, vec![0, 1_500_000_000, 3_000_000_000, 4_500_000_000]);
    for (i, c) in sched.iter().enumerate() {
        assert_eq!(c.epoch, CalibEpoch(i as u64 + 1));
    }
    assert_eq!(s.faults(), &[Fault::DelayCalib { epoch: 3, to: Role::Fusion, ms: 400 }]);
    // Shifting the schedule to a clock origin.
    let shifted = s.calibration_schedule_from(TimestampNs(1000));
    assert_eq!(shifted[1].valid_from, TimestampNs(1_500_001_000));

    let f = load("faults.ron");
    assert_eq!(f.calibration_schedule().len(), 2);
    assert_eq!(
        f.faults(),
        &[
            Fault::Kill { role: Role::Camera, at_s: 2.0, restart: true },
            Fault::Kill { role: Role::Lidar, at_s: 3.5, restart: true },
            Fault::DropCalib { epoch: 2, to: Role::Fusion },
        ]
    );

    let full = load("full.ron");
    assert_eq!((full.camera().width, full.camera().height), (1920, 1080));
    assert_eq!((full.lidar().beams, full.lidar().azimuth_steps), (128, 2048));
}

const GOOD: &str = r#"Scenario(
    name: "t",
    world: (generate: Urban(blocks_x: 2, blocks_y: 2)),
    trajectory: Road(speed_mps: 8.0),
    calibration: [(at_s: 1.0, changes: [LidarYawDeg(1.0)])],
    faults: [DropCalib(epoch: 2, to: Fusion)],
)"#;

fn err(text: &str) -> ScenarioError {
    match Scenario::from_ron_str(text, "bad.ron") {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => {
            let line = e.to_string();
            assert!(!line.contains('\n'), "not one line: {line}");
            assert!(line.starts_with("bad.ron"), "{line}");
            e
        }
    }
}

#[test]
fn minimal_scenario_takes_defaults() {
    let s = Scenario::from_ron_str(GOOD, "good.ron").unwrap();
    assert_eq!(s.camera().width, 1280);
    assert_eq!(s.lidar().beams, 64);
    assert!((s.duration_s() - 60.0).abs() < 1e-12);
    assert_eq!(s.truth_epoch_at(TimestampNs(999_999_999)), CalibEpoch(1));
    assert_eq!(s.truth_epoch_at(TimestampNs(1_000_000_000)), CalibEpoch(2));
}

#[test]
fn syntax_errors_name_line_column_and_field() {
    // A string where a number belongs: the field path and the position.
    let e = err(&GOOD.replace("speed_mps: 8.0", "speed_mps: \"fast\""));
    let ScenarioError::Syntax { line, col, field, .. } = &e else { panic!("{e:?}") };
    assert_eq!(*line, 4);
    assert!(*col > 20, "{e}");
    assert_eq!(field.as_deref(), Some("trajectory.speed_mps"), "{e}");
    assert!(e.to_string().starts_with("bad.ron:4:"), "{e}");

    // Unknown field (a typo).
    let e = err(&GOOD.replace("blocks_x", "blokcs_x"));
    assert!(e.to_string().contains("blokcs_x"), "{e}");
    assert!(e.to_string().contains("bad.ron:3:"), "{e}");

    // Missing required field.
    let e = err(&GOOD.replace("name: \"t\",", ""));
    assert!(e.to_string().contains("name"), "{e}");

    // Unknown variant.
    let e = err(&GOOD.replace("Fusion", "Fuson"));
    assert!(e.to_string().contains("Fuson"), "{e}");
    let ScenarioError::Syntax { field, .. } = &e else { panic!("{e:?}") };
    assert_eq!(field.as_deref(), Some("faults[0].to"), "{e}");

    // Unbalanced parenthesis.
    let e = err(&GOOD[..GOOD.len() - 1]);
    assert!(matches!(e, ScenarioError::Syntax { .. }), "{e}");
}

#[test]
fn semantic_errors_name_the_field() {
    let cases: &[(&str, &str, &str)] = &[
        ("trajectory: Road(speed_mps: 8.0),", "trajectory: Road(speed_mps: -8.0),", "trajectory.speed_mps"),
        ("faults: [", "lidar: (beams: 0), faults: [", "lidar.beams"),
        ("faults: [", "camera: (width: 8), faults: [", "camera.width"),
        // Sizes that would need gigabytes of ring slot: refused at the door, naming the field.
        ("faults: [", "camera: (width: 16384, height: 16384), faults: [", "camera.width"),
        ("faults: [", "lidar: (beams: 1024, azimuth_steps: 65536), faults: [", "lidar.azimuth_steps"),
        ("faults: [", "camera: (rate_hz: 0.0), faults: [", "camera.rate_hz"),
        ("faults: [", "lidar: (vertical_fov_deg: (10.0, -10.0)), faults: [", "lidar.vertical_fov_deg"),
        ("DropCalib(epoch: 2, to: Fusion)", "DropCalib(epoch: 3, to: Fusion)", "faults[0].epoch"),
        ("DropCalib(epoch: 2, to: Fusion)", "DropCalib(epoch: 2, to: Calib)", "faults[0].to"),
        ("DropCalib(epoch: 2, to: Fusion)", "DelayCalib(epoch: 1, to: Lidar, ms: 0)", "faults[0].ms"),
        (
            "DropCalib(epoch: 2, to: Fusion)",
            "Kill(role: Camera, at_s: -1.0, restart: true)",
            "faults[0].at_s",
        ),
        ("(at_s: 1.0, changes: [LidarYawDeg(1.0)])", "(at_s: 1.0, changes: [])", "calibration[0].changes"),
        (
            "(at_s: 1.0, changes: [LidarYawDeg(1.0)])",
            "(at_s: 1.0, changes: [LidarYawDeg(1.0)]), (at_s: 0.5, changes: [FocalScale(1.1)])",
            "calibration[1].at_s",
        ),
        (
            "(at_s: 1.0, changes: [LidarYawDeg(1.0)])",
            "(at_s: 1.0, changes: [FocalScale(-2.0)])",
            "calibration[0].changes[0]",
        ),
        ("blocks_x: 2", "blocks_x: 0", "world.generate.blocks_x"),
        ("world: (generate: Urban(blocks_x: 2, blocks_y: 2)),", "world: (),", "trajectory"),
        (
            "world: (generate: Urban(blocks_x: 2, blocks_y: 2)),",
            "world: (generate: Urban(), boxes: [(position: (5.0, 0.0, 0.0), size: (1.0, 1.0, 1.0), id: 1)]),",
            "world.boxes[0].id",
        ),
        (
            "trajectory: Road(speed_mps: 8.0),",
            "rig: (intrinsics: (fx: 0.0, fy: 1.0, cx: 1.0, cy: 1.0)), trajectory: Road(speed_mps: 8.0),",
            "rig.intrinsics.fx",
        ),
        // Finite but absurd: the plausible ranges of calib::validate apply to scenario rigs.
        (
            "trajectory: Road(speed_mps: 8.0),",
            "rig: (intrinsics: (fx: 1e308, fy: 1000.0, cx: 640.0, cy: 360.0)), trajectory: Road(speed_mps: 8.0),",
            "rig: camera.fx",
        ),
        (
            "trajectory: Road(speed_mps: 8.0),",
            "trajectory: Waypoints(points: [(0.0, 0.0), (1.0, 0.0)], speed_mps: 1.0),",
            "trajectory.points",
        ),
    ];
    for (from, to, field) in cases {
        assert!(GOOD.contains(from), "{from}");
        let e = err(&GOOD.replace(from, to));
        match &e {
            ScenarioError::Invalid { field: f, .. } => assert_eq!(f, field, "{e}"),
            other => panic!("expected a semantic error naming {field}, got {other}"),
        }
        assert!(e.to_string().contains(&format!("`{field}`")), "{e}");
    }
}

#[test]
fn faults_name_roles_that_can_take_them() {
    // A kill names a process of the drive; the error lists them.
    let e = err(&GOOD.replace("DropCalib(epoch: 2, to: Fusion)", "Kill(role: Monitor, at_s: 1.0)"));
    assert!(matches!(&e, ScenarioError::Invalid { field, .. } if field == "faults[0].role"), "{e}");
    assert!(e.to_string().contains("camera, lidar, fusion or calib (got monitor)"), "{e}");
    // A delivery fault names a subscriber of the calibration service.
    let e = err(&GOOD.replace("DropCalib(epoch: 2, to: Fusion)", "DelayCalib(epoch: 1, to: calib, ms: 5)"));
    assert!(matches!(&e, ScenarioError::Invalid { field, .. } if field == "faults[0].to"), "{e}");
    assert!(e.to_string().contains("subscribers, camera, lidar, fusion"), "{e}");
    // Lower-case names parse as well as the capitalised ones.
    let s = Scenario::from_ron_str(&GOOD.replace("to: Fusion", "to: fusion"), "ok.ron").unwrap();
    assert_eq!(s.faults(), &[Fault::DropCalib { epoch: 2, to: Role::Fusion }]);
}

#[test]
fn missing_file_is_one_line() {
    let e = Scenario::load(Path::new("/nonexistent/drive.ron")).unwrap_err();
    assert!(matches!(e, ScenarioError::Io { .. }));
    assert!(e.to_string().starts_with("/nonexistent/drive.ron: "), "{e}");
}
