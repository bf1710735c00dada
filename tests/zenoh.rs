//! Runs across hosts over Zenoh on loopback (issue 17): two "hosts" are two processes with
//! their own shm roots; the publisher runs `drive --zenoh`, the remote `epochfuse remote`.

mod common;

#[cfg(feature = "zenoh")]
mod net {
    use std::process::{Child, Stdio};
    use std::time::Duration;

    use super::common::{self, Sandbox};
    use serde_json::Value;

    /// A free TCP port on loopback (bound, read, released).
    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
    }

    fn recalibration() -> String {
        common::root().join("configs/drives/recalibration.ron").to_str().unwrap().to_owned()
    }

    /// The recalibration drive at `--max-rate`.
    fn max_rate_drive() -> Vec<String> {
        vec!["drive".into(), recalibration(), "--max-rate".into(), "--per-pair".into()]
    }

    /// Starts the publishing drive at `--max-rate`, see [`publish_run`].
    fn publish(sb: &Sandbox, endpoint: &str, extra: &[&str], env: &[(&str, &str)]) -> Child {
        publish_run(sb, &max_rate_drive(), endpoint, extra, env)
    }

    /// Starts the publishing run `run` (its own shm root `pub-shm`), output in `pub/`.
    fn publish_run(
        sb: &Sandbox,
        run: &[String],
        endpoint: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Child {
        let (out, shm) = (sb.path("pub"), sb.path("pub-shm"));
        let mut args = run.to_vec();
        args.extend([
            "-q".into(),
            "--zenoh".into(),
            endpoint.into(),
            "--out".into(),
            out.to_str().unwrap().into(),
        ]);
        args.extend(["--shm-root".into(), shm.to_str().unwrap().into()]);
        args.extend(extra.iter().map(ToString::to_string));
        let mut c = sb.cmd(&[]);
        c.args(&args).stdout(Stdio::piped()).stderr(Stdio::piped());
        for (k, v) in env {
            c.env(k, v);
        }
        c.spawn().unwrap()
    }

    /// Runs the remote (its own shm root `rem-shm`), output in `rem/`.
    fn remote(sb: &Sandbox, endpoint: &str) -> common::Run {
        remote_with(sb, endpoint, &[])
    }

    fn remote_with(sb: &Sandbox, endpoint: &str, extra: &[&str]) -> common::Run {
        let (out, shm) = (sb.path("rem"), sb.path("rem-shm"));
        let mut args = vec!["remote", endpoint, "--per-pair", "-q", "--out", out.to_str().unwrap()];
        args.extend(["--shm-root", shm.to_str().unwrap()]);
        args.extend(extra);
        sb.run(&args)
    }

    /// Everything of a pair but the latency (each host's own clock).
    fn result(f: &Value) -> Value {
        let mut f = f.clone();
        f.as_object_mut().unwrap().remove("latency_ms");
        f
    }

    fn finish(child: Child) -> std::process::Output {
        child.wait_with_output().unwrap()
    }

    fn check_publisher(out: &std::process::Output) {
        assert!(
            out.status.success(),
            "publisher failed: {:?}\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Every fused pair of `s` has one epoch; the remote's own counters are present.
    fn no_cross_epoch(s: &Value) {
        assert_eq!(s["pairs"]["fused_epoch_mismatch"], 0, "{s}");
        assert_eq!(s["invariants"]["ok"], true, "{s}");
        for f in s["frames"].as_array().unwrap() {
            assert!(f["epoch"].as_u64().unwrap() >= 1, "{f}");
        }
    }

    #[test]
    fn the_remote_fuses_the_recalibration_drive_pair_for_pair() {
        let _turn = common::pipeline_turn();
        let sb = Sandbox::new();
        let endpoint = format!("tcp/127.0.0.1:{}", free_port());
        let publisher = publish(&sb, &endpoint, &[], &[]);
        let run = remote(&sb, &endpoint);
        let out = finish(publisher);
        check_publisher(&out);
        run.expect_code(0);
        let p = common::summary(&sb.path("pub/summary.json"));
        let r = common::summary(&sb.path("rem/summary.json"));
        no_cross_epoch(&r);
        assert_eq!(r["calibration"]["epochs"], serde_json::json!([1, 2, 3, 4]), "{r}");
        for k in ["camera", "lidar"] {
            assert_eq!(r["streams"][k]["network_lost"], 0, "{r}");
            assert_eq!(r["streams"][k]["dropped_unknown_epoch"], 0, "{r}");
        }
        assert_eq!(r["pairs"]["fused"], p["pairs"]["fused"], "publisher {p}\nremote {r}");
        let (pf, rf) = (p["frames"].as_array().unwrap(), r["frames"].as_array().unwrap());
        assert!(!pf.is_empty());
        // Everything but the latency (each host's own clock) is the same, bit for bit.
        let mismatches = pf.iter().zip(rf).filter(|(a, b)| result(a) != result(b)).count();
        assert_eq!((mismatches, pf.len()), (0, rf.len()), "per-pair results differ");
    }

    #[test]
    fn a_late_joiner_gets_the_table_and_fuses_no_pair_across_epochs() {
        let _turn = common::pipeline_turn();
        let sb = Sandbox::new();
        let endpoint = format!("tcp/127.0.0.1:{}", free_port());
        // The run starts at once (nobody waits for us), and we join a second later.
        let publisher = publish(&sb, &endpoint, &["--zenoh-wait", "0"], &[]);
        std::thread::sleep(Duration::from_secs(1));
        let run = remote(&sb, &endpoint);
        check_publisher(&finish(publisher));
        run.expect_code(0);
        let r = common::summary(&sb.path("rem/summary.json"));
        no_cross_epoch(&r);
        assert_eq!(
            r["calibration"]["epochs"],
            serde_json::json!([1, 2, 3, 4]),
            "the table was not served: {r}"
        );
        assert!(r["pairs"]["fused"].as_u64().unwrap() > 0, "{r}");
    }

    #[test]
    fn samples_dropped_on_purpose_are_counted_and_no_pair_crosses_epochs() {
        let _turn = common::pipeline_turn();
        let sb = Sandbox::new();
        let endpoint = format!("tcp/127.0.0.1:{}", free_port());
        let drops = [("EPOCHFUSE_ZENOH_TEST_DROP", "camera:5,lidar:7,calib:2")];
        let publisher = publish(&sb, &endpoint, &[], &drops);
        let run = remote(&sb, &endpoint);
        check_publisher(&finish(publisher));
        run.expect_code(0);
        let r = common::summary(&sb.path("rem/summary.json"));
        no_cross_epoch(&r);
        let lost = |k: &str| r["streams"][k]["network_lost"].as_u64().unwrap();
        // 8 s: 240 camera frames (every 5th dropped), 80 sweeps (every 7th).
        assert_eq!((lost("camera"), lost("lidar")), (48, 11), "{r}");
        assert!(r["pairs"]["fused"].as_u64().unwrap() > 0, "{r}");
    }

    /// A pair's identity across hosts: the capture times of its camera frame and sweep (on
    /// the source's clock), independent of ring numbering (each host's ring numbers the
    /// frames it holds; the remote's summary maps them back to the source's, which the
    /// comparison then checks too).
    fn pair_key(f: &Value) -> (u64, u64) {
        let ns = |k: &str| f[k].as_u64().unwrap_or_else(|| panic!("no {k}: {f}"));
        (ns("camera_capture_ns"), ns("lidar_capture_ns"))
    }

    /// Runs the real-time recalibration drive with a remote; the publisher's and the
    /// remote's summaries.
    fn real_time_pair() -> (Value, Value) {
        let _turn = common::pipeline_turn();
        let sb = Sandbox::new();
        let endpoint = format!("tcp/127.0.0.1:{}", free_port());
        // Real time: epochs 2, 3 and 4 are announced at 1.0, 2.5 and 4.0 s, after the remote
        // queried the table (epoch 1 only); they reach it over the network at run time.
        let rc = recalibration();
        let drive: Vec<String> =
            ["drive", rc.as_str(), "--duration", "5", "--per-pair"].map(String::from).to_vec();
        let publisher = publish_run(&sb, &drive, &endpoint, &[], &[]);
        let run = remote(&sb, &endpoint);
        check_publisher(&finish(publisher));
        run.expect_code(0);
        if let Ok(dir) = std::env::var("EPOCHFUSE_KEEP_SUMMARIES") {
            for (from, name) in [
                ("pub/summary.json", "publisher.json"),
                ("rem/summary.json", "remote.json"),
                ("rem/logs/bridge-result.json", "mirror.json"),
            ] {
                let _ = std::fs::copy(sb.path(from), std::path::Path::new(&dir).join(name));
            }
        }
        (common::summary(&sb.path("pub/summary.json")), common::summary(&sb.path("rem/summary.json")))
    }

    #[test]
    fn a_real_time_remote_learns_the_epochs_announced_after_it_started() {
        let (_, r) = real_time_pair();
        no_cross_epoch(&r);
        assert_eq!(r["calibration"]["epochs"], serde_json::json!([1, 2, 3, 4]), "{r}");
        assert_eq!(r["remote"]["epochs_relayed"], 3, "{r}");
        assert_eq!(r["pairs"]["dropped_no_calibration"], 0, "{r}");
        for k in ["camera", "lidar"] {
            assert_eq!(r["streams"][k]["dropped_unknown_epoch"], 0, "{r}");
        }
        let rf = r["frames"].as_array().unwrap();
        for epoch in 2..=4 {
            assert!(rf.iter().any(|f| f["epoch"] == epoch), "the remote fused no pair of epoch {epoch}: {r}");
        }
    }

    /// Each host pairs in its own time (a real-time remote may get a frame too late for the
    /// pair the publisher formed), so only the pairs both fused, the same camera frame and
    /// sweep by capture time, are compared: their results must be the same bit for bit.
    #[test]
    fn a_real_time_remote_gives_the_publishers_results_for_the_pairs_both_fused() {
        let (p, r) = real_time_pair();
        let (pf, rf) = (p["frames"].as_array().unwrap(), r["frames"].as_array().unwrap());
        let theirs: std::collections::BTreeMap<_, _> = pf.iter().map(|f| (pair_key(f), f)).collect();
        let both: Vec<_> = rf.iter().filter_map(|f| theirs.get(&pair_key(f)).map(|t| (*t, f))).collect();
        assert!(both.len() * 2 >= rf.len(), "{} of {} pairs in common", both.len(), rf.len());
        let differ: Vec<_> = both.iter().filter(|(t, m)| result(t) != result(m)).collect();
        let shown: Vec<_> =
            differ.iter().take(3).map(|(t, m)| format!("publisher {t}\nremote    {m}")).collect();
        assert!(
            differ.is_empty(),
            "{} of {} pairs both fused differ across hosts:\n{}",
            differ.len(),
            both.len(),
            shown.join("\n")
        );
    }

    #[test]
    fn a_replay_is_published_and_fused_remotely_pair_for_pair() {
        let _turn = common::pipeline_turn();
        let sb = Sandbox::new();
        let log = sb.path("log.mcap");
        let rec = sb.path("rec");
        sb.run(&[
            "drive",
            &recalibration(),
            "--duration",
            "3",
            "--max-rate",
            "-q",
            "--record",
            log.to_str().unwrap(),
            "--out",
            rec.to_str().unwrap(),
        ])
        .expect_code(0);
        let endpoint = format!("tcp/127.0.0.1:{}", free_port());
        let replay: Vec<String> = vec!["replay".into(), log.to_str().unwrap().into(), "--max-rate".into()];
        let publisher = publish_run(&sb, &replay, &endpoint, &[], &[]);
        let run = remote(&sb, &endpoint);
        check_publisher(&finish(publisher));
        run.expect_code(0);
        let p = common::summary(&sb.path("pub/summary.json"));
        let r = common::summary(&sb.path("rem/summary.json"));
        no_cross_epoch(&r);
        assert_eq!(r["source"], "replay", "{r}");
        assert_eq!(r["calibration"]["epochs"], p["calibration"]["epochs"], "{r}");
        assert!(r["pairs"]["fused"].as_u64().unwrap() > 0, "{r}");
        assert_eq!(r["pairs"]["fused"], p["pairs"]["fused"], "publisher {p}\nremote {r}");
        for k in ["camera", "lidar"] {
            assert_eq!(r["streams"][k]["network_lost"], 0, "{r}");
        }
    }

    #[test]
    fn a_zenoh_config_file_is_used_and_a_bad_one_is_one_line() {
        let _turn = common::pipeline_turn();
        let sb = Sandbox::new();
        let endpoint = format!("tcp/127.0.0.1:{}", free_port());
        let good = sb.path("zenoh.json5");
        std::fs::write(
            &good,
            "{ scouting: { multicast: { enabled: false }, gossip: { enabled: false } } }\n",
        )
        .unwrap();
        let config = ["--zenoh-config", good.to_str().unwrap()];
        let rc = recalibration();
        let drive: Vec<String> =
            ["drive", rc.as_str(), "--duration", "2", "--max-rate"].map(String::from).to_vec();
        let publisher = publish_run(&sb, &drive, &endpoint, &config, &[]);
        let run = remote_with(&sb, &endpoint, &config);
        check_publisher(&finish(publisher));
        run.expect_code(0);
        assert!(common::summary(&sb.path("rem/summary.json"))["pairs"]["fused"].as_u64().unwrap() > 0);
        // Not JSON5, and JSON5 Zenoh refuses: one line naming the file, exit 2, both sides.
        for (name, text) in [("broken.json5", "{ mode: "), ("refused.json5", "{ mode: \"banana\" }")] {
            let bad = sb.path(name);
            std::fs::write(&bad, text).unwrap();
            let flag = ["--zenoh-config", bad.to_str().unwrap()];
            for args in [
                vec!["drive", "--duration", "1", "--zenoh", endpoint.as_str(), flag[0], flag[1]],
                vec!["remote", endpoint.as_str(), "--wait", "1", flag[0], flag[1]],
            ] {
                let run = sb.run(&args);
                run.expect_code(2);
                assert!(run.stderr().contains(name), "{}", run.describe());
                assert_eq!(run.stderr().lines().count(), 1, "{}", run.describe());
            }
        }
    }

    #[test]
    fn remote_without_a_run_is_one_line() {
        let sb = Sandbox::new();
        let endpoint = format!("tcp/127.0.0.1:{}", free_port());
        let run = sb.run(&["remote", &endpoint, "--wait", "1", "--out", sb.path("o").to_str().unwrap()]);
        run.expect_code(2);
        assert_eq!(run.stderr().lines().count(), 1, "{}", run.describe());
    }
}

/// Built without the feature, `--zenoh` and `remote` say so in one line (exit 2).
#[cfg(not(feature = "zenoh"))]
#[test]
fn without_the_feature_zenoh_is_one_line() {
    let sb = common::Sandbox::new();
    for args in [
        &["remote", "tcp/127.0.0.1:7447"][..],
        &["drive", "--zenoh", "tcp/127.0.0.1:7447", "--duration", "1"],
    ] {
        let run = sb.run(args);
        run.expect_code(2);
        assert!(run.stderr().contains("built without zenoh"), "{}", run.describe());
        assert_eq!(run.stderr().lines().count(), 1, "{}", run.describe());
    }
}
