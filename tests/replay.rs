//! `epochfuse replay` of real and simulated logs, and `drive --record` round trips.

mod common;

use common::{summary, Sandbox};
use serde_json::Value;

fn replay(sb: &Sandbox, name: &str, source: &std::path::Path, extra: &[&str]) -> (common::Run, Value) {
    let out = sb.path(name);
    let out_s = out.to_str().unwrap().to_string();
    let mut args = vec!["replay", source.to_str().unwrap(), "--out", &out_s, "--quiet"];
    args.extend_from_slice(extra);
    let run = sb.run(&args);
    let path = out.join("summary.json");
    let s = if path.exists() { summary(&path) } else { Value::Null };
    (run, s)
}

/// `drive` of the default scenario for `seconds` at full speed, quiet, recording to `record`,
/// its summary in `out`.
fn drive_recording(sb: &Sandbox, seconds: &str, record: &str, out: &std::path::Path) -> common::Run {
    sb.run(&[
        "drive",
        "--duration",
        seconds,
        "--max-rate",
        "--quiet",
        "--record",
        record,
        "--out",
        out.to_str().unwrap(),
    ])
}

/// KITTI 000001, projected independently in float64 (../shared/data/README.md).
fn assert_reference_000001(f: &Value, what: &str) {
    assert_eq!(f["points"], 120_268, "{what}: {f}");
    assert_eq!(f["points_in_image"], 18_630, "{what}: {f}");
    for (key, want) in [("mean_u", 631.863_492), ("mean_v", 257.150_175), ("mean_depth", 16.530_317)] {
        let got = f[key].as_f64().unwrap();
        assert!((got - want).abs() < 1e-3, "{what}: {key} {got} vs {want}");
    }
}

#[test]
fn kitti_folder_replay_matches_the_reference_projection() {
    let Some(data) = common::shared_data() else { return };
    let sb = Sandbox::new();
    let (run, s) = replay(&sb, "out", &data.join("kitti"), &["--max-rate"]);
    run.expect_code(0);
    assert_eq!(s["source"], "replay");
    let frames = s["frames"].as_array().unwrap();
    assert_eq!(frames.len(), 3, "{}", run.describe());
    // 000000 comes from another rig: two calibration states, numbered in frame order.
    assert_eq!(s["calibration"]["epochs"], serde_json::json!([1, 2]));
    assert_eq!(frames[0]["epoch"], 1);
    assert_eq!(frames[1]["epoch"], 2);
    assert_eq!(frames[2]["epoch"], 2);
    assert_reference_000001(&frames[1], "kitti 000001");
    assert_eq!(s["pairs"]["fused_epoch_mismatch"], 0);
}

#[test]
fn ros2_bag_replay_matches_the_reference_projection() {
    let Some(data) = common::shared_data() else { return };
    let sb = Sandbox::new();
    let (run, s) = replay(&sb, "out", &data.join("rosbag/kitti_000001_000002"), &["--max-rate"]);
    run.expect_code(0);
    let frames = s["frames"].as_array().unwrap();
    assert_eq!(frames.len(), 2, "{}", run.describe());
    assert_reference_000001(&frames[0], "bag 000001");
    // Both frames share one rig, so one calibration state.
    assert_eq!(s["calibration"]["epochs"], serde_json::json!([1]));
}

/// Per-pair numbers of a summary, keyed by order, rounded for an exact comparison (the
/// sweep's sequence number left out: a replay numbers its own ring).
fn pairs(s: &Value) -> Vec<(u64, u64, u64, i64, i64, i64)> {
    common::camera_pairs(s, "camera").into_iter().map(|(e, _, p, i, u, v, d)| (e, p, i, u, v, d)).collect()
}

#[test]
fn recorded_drive_replays_with_the_same_epochs_and_per_pair_numbers() {
    let sb = Sandbox::new();
    let mcap = sb.path("drive.mcap");
    let scenario = common::root().join("configs/drives/recalibration.ron");
    let out = sb.path("live");
    let run = sb.run(&[
        "drive",
        scenario.to_str().unwrap(),
        "--duration",
        "5",
        "--max-rate",
        "--per-pair",
        "--quiet",
        "--record",
        mcap.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    run.expect_code(0);
    let live = summary(&out.join("summary.json"));
    let (run2, replayed) = replay(&sb, "replayed", &mcap, &["--max-rate"]);
    run2.expect_code(0);
    assert_eq!(replayed["calibration"]["epochs"], live["calibration"]["epochs"], "{}", run2.describe());
    let (a, b) = (pairs(&live), pairs(&replayed));
    assert!(!a.is_empty());
    let differ: Vec<_> = a.iter().zip(&b).enumerate().filter(|(_, (x, y))| x != y).take(5).collect();
    assert!(
        a.len() == b.len() && differ.is_empty(),
        "per-pair numbers differ between the live run ({} pairs) and its replay ({} pairs); first differences: {differ:?}\nlive pairs: {}\nreplayed pairs: {}",
        a.len(),
        b.len(),
        live["pairs"],
        replayed["pairs"]
    );
    // The recording carries the simulation's labels, so consistency survives too.
    assert!(replayed["consistency"]["mean"].is_number(), "{replayed}");
    // The bag was indexed once, at the door: the replayer opened it with that index.
    let log = std::fs::read_to_string(sb.path("replayed").join("logs/replayer.log")).unwrap_or_default();
    assert!(
        log.contains("opened with the index saved at the door"),
        "replayer.log: {log}\n{}",
        run2.describe()
    );
}

#[test]
fn truncated_bag_replays_what_is_valid_then_fails_with_one_line() {
    let sb = Sandbox::new();
    let mcap = sb.path("drive.mcap");
    drive_recording(&sb, "2", mcap.to_str().unwrap(), &sb.path("live")).expect_code(0);
    let bytes = std::fs::read(&mcap).unwrap();
    let cut = sb.path("cut.mcap");
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let (run, cut_summary) = replay(&sb, "cut", &cut, &["--max-rate"]);
    assert_ne!(run.code(), Some(0), "{}", run.describe());
    let err = run.stderr();
    assert_eq!(err.trim().lines().count(), 1, "{}", run.describe());
    assert!(err.contains("cut.mcap"), "{}", run.describe());
    assert!(!err.contains("panicked"), "{}", run.describe());
    // What lies before the cut was replayed: nothing at the door refused the bag.
    let fused = cut_summary["pairs"]["fused"].as_u64().unwrap_or(0);
    assert!(fused > 0, "nothing replayed before the break: {cut_summary}\n{}", run.describe());
    // A log's break is the input's fault, reported in the line: no process crashed.
    assert_eq!(cut_summary["faults"]["crashes"], 0, "{cut_summary}");

    let not_a_log = sb.path("notes.txt");
    std::fs::write(&not_a_log, "hello").unwrap();
    let (run, _) = replay(&sb, "x", &not_a_log, &[]);
    run.expect_code(2);
    assert_eq!(run.stderr().trim().lines().count(), 1, "{}", run.describe());
}

/// A run never writes into the log it replays: `--record` onto the bag itself truncated it
/// while it was being read.
#[test]
fn a_replay_never_writes_into_its_log() {
    let sb = Sandbox::new();
    let mcap = sb.path("drive.mcap");
    let m = mcap.to_str().unwrap();
    let live = sb.path("live");
    drive_recording(&sb, "1", m, &live).expect_code(0);
    let bytes = std::fs::read(&mcap).unwrap();
    let inside = sb.path("drive.mcap/out");
    for (opt, target) in [("--record", m), ("--summary", m), ("--out", inside.to_str().unwrap())] {
        let (run, _) = replay(&sb, "onto", &mcap, &[opt, target]);
        run.expect_code(2);
        assert_eq!(run.stderr().trim().lines().count(), 1, "{}", run.describe());
        assert!(run.stderr().contains(opt), "{}", run.describe());
    }
    assert!(std::fs::read(&mcap).unwrap() == bytes, "the replayed recording was changed");
}

/// `--record` onto anything that exists (a file, a link, a dangling link) is refused at the
/// door in one line naming it, and what is there is left as it was: a recording never
/// replaces a file.
#[test]
fn a_recording_never_replaces_a_file() {
    let sb = Sandbox::new();
    let kept = sb.path("kept.mcap");
    std::fs::write(&kept, b"a user's file").unwrap();
    let link = sb.path("link.mcap");
    std::os::unix::fs::symlink(&kept, &link).unwrap();
    let dangling = sb.path("dangling.mcap");
    std::os::unix::fs::symlink(sb.path("nowhere.mcap"), &dangling).unwrap();
    for target in [&kept, &link, &dangling] {
        let t = target.to_str().unwrap();
        let run = drive_recording(&sb, "1", t, &sb.path("live"));
        run.expect_code(2);
        assert_eq!(run.stderr().trim().lines().count(), 1, "{}", run.describe());
        assert!(run.stderr().contains("--record") && run.stderr().contains(t), "{}", run.describe());
    }
    assert_eq!(std::fs::read(&kept).unwrap(), b"a user's file", "the existing file was changed");
    assert!(!sb.path("nowhere.mcap").exists(), "a recording was made through a dangling link");
}

#[test]
fn kitti_export_replays_with_the_exported_epochs() {
    let sb = Sandbox::new();
    let dir = sb.path("export");
    let scenario = common::root().join("configs/drives/recalibration.ron");
    let run = sb.run(&[
        "sim",
        "export",
        "--format",
        "kitti",
        "--frames",
        "50",
        dir.to_str().unwrap(),
        scenario.to_str().unwrap(),
    ]);
    run.expect_code(0);
    for sub in ["velodyne", "image_2", "calib"] {
        assert_eq!(std::fs::read_dir(dir.join(sub)).unwrap().count(), 50, "{sub}");
    }
    let (run, s) = replay(&sb, "out", &dir, &["--max-rate"]);
    run.expect_code(0);
    let frames = s["frames"].as_array().unwrap();
    assert_eq!(frames.len(), 50, "{}\npairs: {}", run.describe(), s["pairs"]);
    // The recalibration scenario changes the rig three times within 4.5 s (50 sweeps reach 4.9 s).
    assert_eq!(s["calibration"]["epochs"].as_array().unwrap().len(), 4, "{s}");
    assert_eq!(s["pairs"]["fused_epoch_mismatch"], 0);
    // A bag's topic choices mean nothing for a KITTI folder: refused in one line, never
    // silently ignored.
    for (opt, value) in [("--lidar-topic", "/x"), ("--camera-topic", "/y"), ("--cameras", "a")] {
        let (run, _) = replay(&sb, "topics", &dir, &[opt, value]);
        run.expect_code(2);
        assert_eq!(run.stderr().trim().lines().count(), 1, "{}", run.describe());
        assert!(run.stderr().contains(opt) && run.stderr().contains("KITTI"), "{}", run.describe());
    }
    // Exporting again gives the same bytes: the simulation is deterministic.
    let again = sb.path("export2");
    sb.run(&["sim", "export", "--frames", "50", again.to_str().unwrap(), scenario.to_str().unwrap()])
        .expect_code(0);
    for name in ["velodyne/000017.bin", "image_2/000017.png", "calib/000017.txt"] {
        assert_eq!(
            std::fs::read(dir.join(name)).unwrap(),
            std::fs::read(again.join(name)).unwrap(),
            "{name}"
        );
    }
    // A bad PNG header after the first frame is the folder's break, as a cut is a bag's: the
    // 30 frames before it replay, then one line names the file (before: refused whole).
    std::fs::write(dir.join("image_2/000030.png"), b"not a png").unwrap();
    let (run, s) = replay(&sb, "broken", &dir, &["--max-rate"]);
    assert_ne!(run.code(), Some(0), "{}", run.describe());
    let err = run.stderr();
    assert_eq!(err.trim().lines().count(), 1, "{}", run.describe());
    assert!(err.contains("000030.png") && err.contains("PNG header"), "{}", run.describe());
    assert_eq!(s["frames"].as_array().map(Vec::len), Some(30), "{}", run.describe());
    assert_eq!(s["faults"]["crashes"], 0, "{s}");
}
