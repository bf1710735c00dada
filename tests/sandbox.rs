//! Sandboxed roles, tried on a live run: what a role's sandbox lets it open and reach, and
//! what the summary says each role got.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{summary, Sandbox};

/// Waits (bounded) for a run directory with its spec under `root`.
fn wait_for_run(root: &Path) -> PathBuf {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let run = std::fs::read_dir(root).ok().and_then(|d| {
            d.filter_map(Result::ok).map(|e| e.path()).find(|p| {
                p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("run-"))
                    && p.join("pipeline.json").exists()
            })
        });
        if let Some(run) = run {
            return run;
        }
        assert!(Instant::now() < deadline, "no run directory appeared under {}", root.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_sandboxed_role_reaches_only_its_run_and_no_tcp() {
    let _turn = common::pipeline_turn();
    let sb = Sandbox::new();
    let out = sb.path("out");
    let mut drive = sb
        .cmd(&["drive", "--duration", "3", "--quiet", "--out", out.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let run = wait_for_run(&sb.shm_root());
    // Another run's segment, and a file of the user's outside every allowance.
    let other = sb.shm_root().join("run-1-1");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("camera.seg"), b"not yours").unwrap();
    let secret = sb.path("secret.txt");
    std::fs::write(&secret, b"secret").unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let own = run.join("pipeline.json");
    let probe = sb.run(&[
        "sandbox-probe",
        "camera",
        "--run",
        run.to_str().unwrap(),
        "--open",
        secret.to_str().unwrap(),
        "--open",
        other.join("camera.seg").to_str().unwrap(),
        "--open",
        own.to_str().unwrap(),
        "--connect",
        &port,
    ]);
    probe.expect_code(0);
    let status = drive.wait().unwrap();
    assert!(status.success(), "drive failed");
    let said: serde_json::Value = serde_json::from_str(probe.stdout().trim()).unwrap();
    if said["sandbox"]["landlock_abi"].as_u64() == Some(0) {
        eprintln!("note: this kernel has no Landlock; the EACCES assertions are skipped");
        return;
    }
    let opened = &said["open"];
    assert_eq!(opened[secret.to_str().unwrap()], "EACCES", "{}", probe.describe());
    assert_eq!(opened[other.join("camera.seg").to_str().unwrap()], "EACCES", "{}", probe.describe());
    assert_eq!(opened[own.to_str().unwrap()], "ok", "{}", probe.describe());
    assert_ne!(said["connect"], "ok", "{}", probe.describe());

    let s = summary(&out.join("summary.json"));
    let sandbox = &s["sandbox"];
    assert!(sandbox["landlock_abi"].as_u64().unwrap() >= 1, "{sandbox}");
    for role in ["calib", "camera", "lidar", "fusion"] {
        let got: Vec<&str> =
            sandbox["roles"][role].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert!(got.contains(&"no_new_privs") && got.contains(&"landlock_fs"), "{role}: {got:?}");
        if rustix::process::geteuid().is_root() {
            assert!(got.contains(&"net_namespace"), "{role} runs as root but got {got:?}");
        }
    }
}

#[test]
fn sandbox_off_reports_nothing() {
    let _turn = common::pipeline_turn();
    let sb = Sandbox::new();
    let out = sb.path("out");
    sb.run(&["drive", "--duration", "1", "--quiet", "--sandbox", "off", "--out", out.to_str().unwrap()])
        .expect_code(0);
    let s = summary(&out.join("summary.json"));
    assert_eq!(s["sandbox"]["roles"], serde_json::json!({}), "{}", s["sandbox"]);
}
