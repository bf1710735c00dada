//! Surround rigs in scenarios: the list form, its views, its schedule and its errors.

use sensor_sim::scenario::Scenario;
use shared::{CalibEpoch, TimestampNs};

const SURROUND: &str = include_str!("../../configs/drives/surround.ron");

#[test]
fn the_surround_drive_has_four_named_cameras_and_a_rig_wide_remount() {
    let s = Scenario::from_ron_str(SURROUND, "surround.ron").unwrap();
    let names: Vec<String> = s.cameras().iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(names, ["front", "left", "rear", "right"]);
    assert_eq!(s.lidars()[0].0.as_str(), "lidar");
    assert!(s.is_multi_sensor());
    let schedule = s.calibration_schedule();
    assert_eq!(schedule.len(), 2);
    // Only the left camera moved, but the new epoch is the whole rig's.
    let (a, b) = (&schedule[0], &schedule[1]);
    assert_eq!(b.epoch, CalibEpoch(2));
    for (ca, cb) in a.cameras.iter().zip(&b.cameras) {
        assert_eq!(ca.to_vehicle == cb.to_vehicle, ca.name.as_str() != "left", "{}", ca.name);
    }
    // A camera's view renders with that camera's mount and lens in each epoch.
    let left = s.for_sensor("left").unwrap();
    assert_eq!(left.camera().width, 640);
    let late = left.rig_at(TimestampNs(7_000_000_000));
    assert_eq!(late.camera_to_vehicle(), b.camera_named("left").unwrap().to_vehicle);
    assert!(s.for_sensor("nope").is_none());
}

#[test]
fn one_camera_scenarios_are_their_own_view() {
    let s = Scenario::builtin_default();
    assert!(!s.is_multi_sensor());
    let v = s.for_sensor("camera").unwrap();
    assert_eq!(v.epochs()[..], s.epochs()[..]);
    assert_eq!(v.camera(), s.camera());
    assert_eq!(s.calibration_schedule()[0].cameras[0].name.as_str(), "camera");
}

fn error_of(text: &str) -> String {
    Scenario::from_ron_str(text, "s.ron").unwrap_err().to_string()
}

#[test]
fn bad_surround_scenarios_name_their_field() {
    let unknown = SURROUND.replace("SensorYawDeg(\"left\"", "SensorYawDeg(\"port\"");
    let e = error_of(&unknown);
    assert!(e.contains("s.ron") && e.contains("calibration[0].changes[0]") && e.contains("port"), "{e}");
    let upper = SURROUND.replace("name: \"rear\"", "name: \"Rear\"");
    assert!(error_of(&upper).contains("cameras[2].name"), "{}", error_of(&upper));
    let twice = SURROUND.replace("name: \"rear\"", "name: \"front\"");
    assert!(error_of(&twice).contains("names"), "{}", error_of(&twice));
    let both = SURROUND.replace("    lidar: (\n", "    camera: (width: 320, height: 240),\n    lidar: (\n");
    assert!(error_of(&both).contains("cameras"), "{}", error_of(&both));
    let fov = SURROUND.replacen("hfov_deg: 100.0", "hfov_deg: 179.0", 1);
    assert!(error_of(&fov).contains("cameras[0].hfov_deg"), "{}", error_of(&fov));
    for e in [error_of(&unknown), error_of(&upper)] {
        assert_eq!(e.lines().count(), 1, "{e}");
    }
}
