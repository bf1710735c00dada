//! Reliability: a killed and restarted fusion counts the whole run; a role whose parent is
//! gone does not outlive it.

mod common;

use common::{summary, Sandbox};

/// A short drive with small frames and the given faults.
fn scenario(faults: &str) -> String {
    format!(
        r#"Scenario(
    name: "reliability",
    seed: 5,
    duration_s: 6.0,
    world: (generate: Urban(blocks_x: 2, blocks_y: 2, block_m: 50.0)),
    trajectory: Road(speed_mps: 10.0),
    camera: (width: 320, height: 180, rate_hz: 30.0),
    lidar: (beams: 16, azimuth_steps: 512, rate_hz: 10.0, range_noise_m: 0.01),
    faults: [{faults}],
)"#
    )
}

/// Fusion killed mid-run and restarted: the summary counts the pairs and sweeps of both
/// incarnations (before the fix it counted only the last one's), and nothing is fused twice.
#[test]
fn a_restarted_fusion_counts_every_pair_of_the_run() {
    let _turn = common::pipeline_turn();
    let sb = Sandbox::new();
    let file = sb.path("fusion-kill.ron");
    std::fs::write(&file, scenario("Kill(role: Fusion, at_s: 3.0, restart: true)")).unwrap();
    let out = sb.path("out");
    let run = sb.run(&[
        "drive",
        file.to_str().unwrap(),
        "--quiet",
        "--overlay-every",
        "0",
        "--out",
        out.to_str().unwrap(),
    ]);
    run.expect_code(0);
    let s = summary(&out.join("summary.json"));
    assert_eq!((s["faults"]["crashes"].as_u64(), s["faults"]["restarts"].as_u64()), (Some(1), Some(1)));
    let written = s["streams"]["lidar"]["frames_written"].as_u64().unwrap();
    let seen = s["pairs"]["lidar_frames"].as_u64().unwrap();
    let fused = s["pairs"]["fused"].as_u64().unwrap();
    assert!(written >= 50, "{s}");
    // A sweep or two may die in the killed fusion's buffers (counted unpaired), none vanish.
    assert!(seen + 2 >= written, "fusion saw {seen} of {written} sweeps over the run: {s}");
    assert!(fused * 10 >= written * 7, "only {fused} of {written} sweeps fused over the run: {s}");
    assert!(seen <= written, "a sweep counted twice across fusion's restart: {s}");
    for st in ["camera", "lidar"] {
        let (read, written) = (&s["streams"][st]["frames_read"], &s["streams"][st]["frames_written"]);
        assert!(read.as_u64() <= written.as_u64(), "{st}: a frame read twice across the restart: {s}");
    }
    assert_eq!(s["invariants"]["fused_twice"], 0, "{s}");
    assert_eq!(s["invariants"]["ok"], true, "{s}");
    assert!(sb.leftover_runs().is_empty(), "{:?}", sb.leftover_runs());
}

/// A surround rig's fusion killed mid-run and restarted: every (lidar, camera) lane resumes
/// from its own state, so every camera's pairs are counted over the whole run and no sweep or
/// camera frame is read or fused twice in any lane.
#[test]
fn a_restarted_surround_fusion_resumes_every_camera() {
    let _turn = common::pipeline_turn();
    let sb = Sandbox::new();
    let text = std::fs::read_to_string(common::root().join("configs/drives/surround.ron")).unwrap();
    assert!(text.contains("faults: [],"), "the surround scenario changed: update this test");
    let text = text.replace("faults: [],", "faults: [Kill(role: Fusion, at_s: 3.0, restart: true)],");
    let file = sb.path("surround-kill.ron");
    std::fs::write(&file, text).unwrap();
    let out = sb.path("out");
    let args = ["drive", file.to_str().unwrap(), "--quiet", "--duration", "6", "--overlay-every", "0"];
    let run = sb.run(&[&args[..], &["--out", out.to_str().unwrap()]].concat());
    run.expect_code(0);
    let s = summary(&out.join("summary.json"));
    assert_eq!((s["faults"]["crashes"].as_u64(), s["faults"]["restarts"].as_u64()), (Some(1), Some(1)));
    let written = s["streams"]["lidar"]["frames_written"].as_u64().unwrap();
    assert!(written >= 40, "{s}");
    for cam in ["front", "left", "rear", "right"] {
        let p = &s["per_camera"][cam]["pairs"];
        let (seen, fused) = (p["lidar_frames"].as_u64().unwrap(), p["fused"].as_u64().unwrap());
        // Each lane reads every sweep once over both incarnations: a sweep or two may die
        // in the killed fusion's buffers (counted unpaired), none vanish, none come twice.
        assert!(seen + 2 >= written, "{cam}: fusion saw {seen} of {written} sweeps: {s}");
        assert!(seen <= written, "{cam}: a sweep counted twice across the restart: {s}");
        assert!(fused * 10 >= written * 6, "{cam}: only {fused} of {written} sweeps fused: {s}");
        let st = &s["streams"][cam];
        assert!(st["frames_read"].as_u64() <= st["frames_written"].as_u64(), "{cam} read twice: {s}");
    }
    let lidar = &s["streams"]["lidar"];
    assert!(lidar["frames_read"].as_u64() <= lidar["frames_written"].as_u64(), "{s}");
    assert_eq!(s["invariants"]["fused_twice"], 0, "{s}");
    assert_eq!(s["pairs"]["fused_epoch_mismatch"], 0, "{s}");
    assert_eq!(s["invariants"]["ok"], true, "{s}");
    assert!(sb.leftover_runs().is_empty(), "{:?}", sb.leftover_runs());
}

/// A role whose supervisor died between `fork` and arming its parent-death signal finds
/// its parent is not the supervisor it was told of, and exits at once without a word; a
/// role whose parent is the supervisor goes on (here to its usual one-line error: the run
/// directory has no spec).
#[test]
fn a_role_orphaned_before_it_armed_its_parent_death_signal_exits_quietly() {
    let sb = Sandbox::new();
    let run_dir = sb.path("run-gone");
    let role = |supervisor: u32| {
        let out = sb
            .cmd(&["role", "calib", "--run", run_dir.to_str().unwrap()])
            .env("EPOCHFUSE_SUPERVISOR_PID", supervisor.to_string())
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    // Our parent is this test, not pid 1: as if the supervisor had died and we were re-parented.
    let (code, stderr) = role(1);
    assert_eq!((code, stderr.as_str()), (Some(0), ""), "the orphaned role went on");
    let (code, stderr) = role(std::process::id());
    assert_ne!(code, Some(0), "a role with its supervisor alive must go on: {stderr}");
    assert!(stderr.contains("pipeline.json"), "{stderr}");
}
