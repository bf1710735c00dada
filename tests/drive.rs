//! The main job, end to end: `epochfuse drive` spawning real role processes.

mod common;

use common::{drive, Sandbox};

#[test]
fn default_drive_fuses_nearly_every_sweep_with_the_right_calibration() {
    let sb = Sandbox::new();
    let (run, s) = drive(&sb, "out", &["--duration", "3"]);
    run.expect_code(0);
    let read = s["streams"]["lidar"]["frames_read"].as_u64().unwrap();
    let fused = s["pairs"]["fused"].as_u64().unwrap();
    assert!(read >= 25, "too few sweeps read: {read}\n{}", run.describe());
    assert!(fused as f64 >= 0.9 * read as f64, "fused {fused} of {read}\n{}", run.describe());
    assert_eq!(s["pairs"]["fused_epoch_mismatch"], 0);
    for st in ["camera", "lidar"] {
        assert_eq!(s["streams"][st]["invalid"], 0, "{st}: frames rejected by validation on a clean drive");
    }
    assert!(s["consistency"]["mean"].as_f64().unwrap() >= 0.9, "{s}");
    assert_eq!(s["source"], "sim");
    assert_eq!(s["pairing"], "epoch");
    assert!(s["latency_ms"]["p50"].as_f64().unwrap() > 0.0);
    assert!(s.get("frames").is_none(), "frames only with --per-pair");
    assert!(run.stdout().contains("fused"), "{}", run.describe());
    assert!(sb.leftover_runs().is_empty(), "run directory left behind: {:?}", sb.leftover_runs());
    let overlays = std::fs::read_dir(sb.path("out/overlays")).map(|d| d.count()).unwrap_or(0);
    assert!(overlays > 0, "no overlay written");
}

#[test]
fn recalibration_epoch_pairing_prevents_what_latest_pairing_does() {
    let sb = Sandbox::new();
    let scenario = common::root().join("configs/drives/recalibration.ron");
    let sc = scenario.to_str().unwrap();
    let (run_e, e) = drive(&sb, "epoch", &[sc, "--max-rate", "--per-pair"]);
    run_e.expect_code(0);
    let (run_l, l) = drive(&sb, "latest", &[sc, "--max-rate", "--pairing", "latest"]);
    run_l.expect_code(0);
    assert_eq!(e["calibration"]["epochs"], serde_json::json!([1, 2, 3, 4]), "{}", run_e.describe());
    assert_eq!(e["pairs"]["fused_epoch_mismatch"], 0);
    assert_eq!(e["invariants"]["ok"], true);
    // Every fused pair carries one epoch, and it is the epoch in force at its capture.
    for f in e["frames"].as_array().unwrap() {
        assert!(f["epoch"].as_u64().unwrap() >= 1);
    }
    let mismatched = l["pairs"]["fused_epoch_mismatch"].as_u64().unwrap();
    assert!(mismatched > 0, "latest pairing showed no damage\n{}", run_l.describe());
    let mean = |s: &serde_json::Value, run: &common::Run| {
        s["consistency"]["mean"].as_f64().unwrap_or_else(|| panic!("no consistency: {s}\n{}", run.describe()))
    };
    let (ce, cl) = (mean(&e, &run_e), mean(&l, &run_l));
    assert!(cl < ce, "consistency latest {cl} not below epoch {ce}");
    assert!(l["consistency"]["min"].as_f64().unwrap() < e["consistency"]["min"].as_f64().unwrap());
}

#[test]
fn faults_kill_producers_and_fusion_resumes_without_torn_or_mismatched_pairs() {
    let sb = Sandbox::new();
    let scenario = common::root().join("configs/drives/faults.ron");
    let (run, s) = drive(&sb, "out", &[scenario.to_str().unwrap()]);
    run.expect_code(0);
    assert_eq!(s["faults"]["crashes"], 2, "{}", run.describe());
    assert_eq!(s["faults"]["restarts"], 2);
    assert!(s["faults"]["recovery_ms_max"].is_number(), "fusion never resumed after a restart: {s}");
    assert_eq!(s["pairs"]["fused_epoch_mismatch"], 0);
    assert_eq!(s["invariants"]["torn_frames_accepted"], 0);
    assert_eq!(s["invariants"]["ok"], true);
    // The dropped calibration message was recovered from the table.
    assert_eq!(s["calibration"]["epochs"], serde_json::json!([1, 2]));
    assert!(s["pairs"]["fused"].as_u64().unwrap() > 0);
    assert!(sb.leftover_runs().is_empty());
}

#[test]
fn top_shows_a_live_run_and_ctrl_c_stops_every_role_leaving_nothing_behind() {
    let sb = Sandbox::new();
    let out = sb.path("out");
    let _turn = common::pipeline_turn();
    let child = sb
        .cmd(&["drive", "--duration", "60", "--quiet", "--out", out.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the pipeline runs: its fused ring has a frame.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let fused = sb.leftover_runs().into_iter().map(|r| r.join("fused.seg")).find(|p| p.exists());
        if let Some(p) = fused {
            if let Ok((_, board, _)) = shared::ring::inspect(&p) {
                if board.frames_written > 0 {
                    break;
                }
            }
        }
        assert!(std::time::Instant::now() < deadline, "the pipeline never fused a frame");
        // Polling an external condition with a deadline, not synchronising on a delay.
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    rustix::process::kill_process(rustix::process::Pid::from_child(&child), rustix::process::Signal::INT)
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let run = common::Run { args: vec!["drive".into(), "(SIGINT)".into()], output };
    run.expect_code(0);
    assert!(out.join("summary.json").exists(), "no summary after Ctrl-C\n{}", run.describe());
    assert!(sb.leftover_runs().is_empty(), "left behind: {:?}", sb.leftover_runs());
}

#[test]
fn bad_scenario_and_options_are_one_line_errors() {
    let sb = Sandbox::new();
    let bad = sb.path("bad.ron");
    std::fs::write(&bad, "(name: \"x\", seed: oops)").unwrap();
    let run = sb.run(&["drive", bad.to_str().unwrap(), "--out", sb.path("o").to_str().unwrap()]);
    run.expect_code(2);
    let err = run.stderr();
    assert_eq!(err.trim().lines().count(), 1, "{}", run.describe());
    assert!(err.contains("bad.ron:1:"), "{}", run.describe());
    sb.run(&["drive", "--duration", "-1"]).expect_code(2);
    sb.run(&["drive", "--pairing", "sometimes"]).expect_code(2);
    sb.run(&["drive", sb.path("missing.ron").to_str().unwrap()]).expect_code(2);
    // An output onto the scenario itself would replace it: refused, the file untouched.
    let scenario = sb.path("mine.ron");
    let text = std::fs::read(common::root().join("configs/drives/default.ron")).unwrap();
    std::fs::write(&scenario, &text).unwrap();
    let s = scenario.to_str().unwrap();
    for opt in ["--summary", "--record"] {
        let run = sb.run(&["drive", s, opt, s, "--duration", "0.2", "--out", sb.path("o").to_str().unwrap()]);
        run.expect_code(2);
        assert_eq!(run.stderr().trim().lines().count(), 1, "{}", run.describe());
        assert!(run.stderr().contains(opt) && run.stderr().contains("input"), "{}", run.describe());
    }
    assert!(std::fs::read(&scenario).unwrap() == text, "the scenario was changed");
}

/// The progress watchdog: producers that stop (here SIGSTOPped, as a hung driver would be)
/// end the run with one line naming the stalled streams and exit 3, instead of a hang.
#[test]
fn a_stalled_run_ends_with_one_line_not_a_hang() {
    let _turn = common::pipeline_turn();
    let sb = common::Sandbox::new();
    let out = sb.path("out");
    let drive = sb
        .cmd(&["drive", "--duration", "60", "--quiet", "--out", out.to_str().unwrap()])
        .env("EPOCHFUSE_STALL_LIMIT_MS", "1500")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait (bounded) for both producers' segments, and stop their writers.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut stopped = Vec::new();
    while stopped.len() < 2 {
        assert!(std::time::Instant::now() < deadline, "the producers never started");
        stopped.clear();
        for run in sb.leftover_runs() {
            for seg in ["camera.seg", "lidar.seg"] {
                let info = sb.run(&["inspect", "--json", run.join(seg).to_str().unwrap()]);
                let json: Option<serde_json::Value> = serde_json::from_str(&info.stdout()).ok();
                if let Some(pid) = json.as_ref().and_then(|j| j["writer_pid"].as_i64()).filter(|&p| p > 0) {
                    stopped.push(pid);
                }
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    for &pid in &stopped {
        let pid = rustix::process::Pid::from_raw(pid as i32).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::STOP).unwrap();
    }
    let out = drive.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    let last = err.trim().lines().last().unwrap_or_default();
    assert!(last.contains("stalled") && last.contains("camera and lidar"), "{err}");
}
