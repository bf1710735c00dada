//! Surround rigs end to end: `epochfuse drive configs/drives/surround.ron` runs one producer
//! per camera, fuses every sweep into every camera, and rejects only the pairs that straddle
//! the mid-drive re-mount; a one-camera drive keeps its summary and gains the rig keys.

mod common;

use common::{drive, Sandbox};

#[test]
fn a_surround_drive_fuses_into_every_camera_within_each_epoch() {
    let sb = Sandbox::new();
    let scenario = common::root().join("configs/drives/surround.ron");
    let sc = scenario.to_str().unwrap();
    // 8 s of simulated time: the re-mount at 6 s is inside.
    let (run, s) = drive(&sb, "surround", &[sc, "--duration", "8", "--max-rate", "--per-pair"]);
    run.expect_code(0);
    let cameras = ["front", "left", "rear", "right"];
    for cam in cameras {
        assert_eq!(s["streams"][cam]["kind"], "camera", "{cam}\n{s}");
        assert!(s["streams"][cam]["frames_written"].as_u64().unwrap() > 0, "{cam}");
        let pairs = s["per_camera"][cam]["pairs"]["fused"].as_u64().unwrap();
        assert!(pairs > 0, "no pairs for {cam}\n{}", run.describe());
        assert_eq!(s["per_camera"][cam]["pairs"]["fused_epoch_mismatch"], 0, "{cam}");
        let c = s["per_camera"][cam]["consistency"]["mean"].as_f64().unwrap();
        assert!(c >= 0.9, "{cam}: consistency {c}");
    }
    assert_eq!(s["streams"]["lidar"]["kind"], "lidar");
    assert_eq!(s["pairs"]["fused_epoch_mismatch"], 0);
    assert_eq!(s["invariants"]["ok"], true, "{s}");
    assert!(s["consistency"]["mean"].as_f64().unwrap() >= 0.9, "{s}");
    let total: u64 = cameras.iter().map(|c| s["per_camera"][c]["pairs"]["fused"].as_u64().unwrap()).sum();
    assert_eq!(s["pairs"]["fused"].as_u64().unwrap(), total, "pairs are the cameras' total");
    assert_eq!(s["calibration"]["epochs"], serde_json::json!([1, 2]));
    // The re-mount is a new epoch for the whole rig: every camera has pairs of both epochs,
    // each of one epoch only.
    let frames = s["frames"].as_array().unwrap();
    for cam in cameras {
        for epoch in [1, 2] {
            let n = frames.iter().filter(|f| f["camera"] == cam && f["epoch"] == epoch).count();
            assert!(n > 0, "{cam} has no pair of epoch {epoch}");
        }
    }
    for f in frames {
        assert_eq!(f["lidar"], "lidar");
        assert_eq!(f["camera_epoch"], f["lidar_epoch"], "{f}");
    }
    // One surround mosaic per round of overlays (every 30 pairs by default): the four
    // cameras' overlays side by side, one row of 320×180 cells with their labels.
    let overlays = sb.path("surround/overlays");
    let mosaics: Vec<_> = std::fs::read_dir(&overlays)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("mosaic_") && n.ends_with(".png"))
        .collect();
    assert!(mosaics.len() >= 2, "mosaics: {mosaics:?}");
    let m = image::open(overlays.join("mosaic_000000.png")).unwrap().to_rgb8();
    assert_eq!(m.dimensions(), (2 + 4 * (320 + 2), 2 + 9 + 180 + 2));
    for cam in cameras {
        assert!(overlays.join(cam).is_dir(), "no overlays for {cam}");
    }
    assert!(sb.leftover_runs().is_empty());
}

#[test]
fn a_one_camera_drive_names_its_streams_and_its_camera() {
    let sb = Sandbox::new();
    let (run, s) = drive(&sb, "one", &["--duration", "1.5", "--per-pair"]);
    run.expect_code(0);
    assert_eq!(s["streams"]["camera"]["kind"], "camera");
    assert_eq!(s["streams"]["lidar"]["kind"], "lidar");
    assert_eq!(s["streams"].as_object().unwrap().len(), 2);
    let per = s["per_camera"].as_object().unwrap();
    assert_eq!(per.len(), 1);
    assert_eq!(s["per_camera"]["camera"]["pairs"], s["pairs"], "{s}");
    assert_eq!(s["per_camera"]["camera"]["consistency"]["pairs"], s["consistency"]["pairs"]);
    for f in s["frames"].as_array().unwrap() {
        assert_eq!((f["camera"].as_str(), f["lidar"].as_str()), (Some("camera"), Some("lidar")));
    }
    assert!(sb.path("one/overlays").is_dir());
    // One camera: no mosaic.
    assert!(!sb.path("one/overlays/mosaic_000000.png").exists());
}

#[test]
fn a_surround_drive_refuses_the_one_camera_options() {
    // `--record` writes every sensor (tests/record_rig.rs); `--zenoh` handles one camera.
    let sb = Sandbox::new();
    let scenario = common::root().join("configs/drives/surround.ron");
    let run = sb.run(&[
        "drive",
        scenario.to_str().unwrap(),
        "--zenoh",
        "tcp/127.0.0.1:7447",
        "--out",
        sb.path("o").to_str().unwrap(),
        "--quiet",
    ]);
    run.expect_code(2);
    assert!(run.stderr().contains("--zenoh: the scenario has several cameras"), "{}", run.describe());
    assert_eq!(run.stderr().trim().lines().count(), 1, "{}", run.describe());
}
