//! `drive --record` of a surround rig (issue 18 §3): every camera and the lidar recorded on
//! their own topics, the recording replayed under the same names with the same per-pair
//! results per camera; `--cameras` choosing some of them.

mod common;

use common::{camera_pairs, replay, Sandbox};

const CAMERAS: [&str; 4] = ["front", "left", "rear", "right"];

#[test]
fn a_recorded_surround_drive_replays_every_camera_with_the_same_pairs() {
    let sb = Sandbox::new();
    let mcap = sb.path("surround.mcap");
    let scenario = common::root().join("configs/drives/surround.ron");
    // 7 s: the left camera's re-mount at 6 s is in, so the recording has two epochs.
    let (run, live) = common::drive(
        &sb,
        "live",
        &[
            scenario.to_str().unwrap(),
            "--duration",
            "7",
            "--max-rate",
            "--per-pair",
            "--record",
            mcap.to_str().unwrap(),
        ],
    );
    run.expect_code(0);
    assert_eq!(live["calibration"]["epochs"], serde_json::json!([1, 2]), "{live}");

    let (run2, replayed) = replay(&sb, "replayed", &mcap, &["--max-rate"]);
    run2.expect_code(0);
    assert_eq!(replayed["calibration"]["epochs"], live["calibration"]["epochs"], "{}", run2.describe());
    let names: Vec<&String> = replayed["streams"].as_object().unwrap().keys().collect();
    let mut want: Vec<&str> = CAMERAS.to_vec();
    want.push("lidar");
    want.sort_unstable();
    assert_eq!(names, want, "{replayed}");
    for camera in CAMERAS {
        let (a, b) = (camera_pairs(&live, camera), camera_pairs(&replayed, camera));
        assert!(!a.is_empty(), "{camera}: no pairs in the drive");
        assert!(a.iter().any(|p| p.0 == 2), "{camera}: no pair of epoch 2");
        let differ: Vec<_> = a.iter().zip(&b).enumerate().filter(|(_, (x, y))| x != y).take(3).collect();
        assert!(
            a.len() == b.len() && differ.is_empty(),
            "{camera}: per-pair numbers differ between the drive ({} pairs) and its replay ({} pairs); first differences: {differ:?}",
            a.len(),
            b.len()
        );
    }
    assert_eq!(replayed["pairs"]["fused_epoch_mismatch"], 0);

    // A subset, by name and by image topic: only those cameras' streams.
    let (run3, some) = replay(&sb, "some", &mcap, &["--max-rate", "--cameras", "rear,/front/image_raw"]);
    run3.expect_code(0);
    let names: Vec<&String> = some["streams"].as_object().unwrap().keys().collect();
    assert_eq!(names, ["front", "lidar", "rear"], "{some}");
    // The epochs cover the rig replayed: front and rear never changed, so one epoch.
    assert_eq!(some["calibration"]["epochs"], serde_json::json!([1]), "{some}");
    let but_epoch = |v: Vec<(u64, u64, u64, u64, i64, i64, i64)>| -> Vec<_> {
        v.into_iter().map(|(_, seq, n, m, u, v, d)| (seq, n, m, u, v, d)).collect()
    };
    for camera in ["front", "rear"] {
        let (a, b) = (but_epoch(camera_pairs(&live, camera)), but_epoch(camera_pairs(&some, camera)));
        assert_eq!(a, b, "{camera}: {}", run3.describe());
    }

    // An unknown name: one line, exit 2, naming the option and the bag's cameras.
    let (run4, _) = replay(&sb, "unknown", &mcap, &["--max-rate", "--cameras", "front,roof"]);
    run4.expect_code(2);
    let err = run4.stderr();
    assert!(
        err.contains("--cameras: no camera roof in the bag; its cameras: front (/front/image_raw), left (/left/image_raw), rear (/rear/image_raw), right (/right/image_raw)"),
        "{}",
        run4.describe()
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{}", run4.describe());
}
