//! Running the real binary: each test gets its own shm root and output directory, and a
//! failure prints the command with its stdout and stderr.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_epochfuse");

/// Real-time pipelines in one test binary take turns: on a 2-core machine, five of them at
/// once cannot all keep real time, and a test of real time must not measure its neighbours.
pub fn pipeline_turn() -> std::sync::MutexGuard<'static, ()> {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    TURN.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A test's private directories.
pub struct Sandbox {
    /// Holds everything; removed on drop.
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    /// A fresh sandbox.
    pub fn new() -> Self {
        Self { dir: tempfile::Builder::new().prefix("epochfuse-it-").tempdir().unwrap() }
    }

    /// The shm root for this test (under /dev/shm when it exists, as in production).
    pub fn shm_root(&self) -> PathBuf {
        self.dir.path().join("shm")
    }

    /// A path inside the sandbox.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A command for the binary with this sandbox's shm root in the environment.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args).env("EPOCHFUSE_SHM_ROOT", self.shm_root()).env_remove("EPOCHFUSE_LOG");
        c
    }

    /// Runs the binary and returns its output.
    pub fn run(&self, args: &[&str]) -> Run {
        let output = self.cmd(args).output().unwrap();
        Run { args: args.iter().map(ToString::to_string).collect(), output }
    }

    /// Run directories left under the shm root.
    pub fn leftover_runs(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.shm_root())
            .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default()
    }
}

/// A finished run of the binary.
pub struct Run {
    /// Its arguments.
    pub args: Vec<String>,
    /// What it did.
    pub output: Output,
}

impl Run {
    /// Exit code.
    pub fn code(&self) -> Option<i32> {
        self.output.status.code()
    }

    /// Stdout.
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    /// Stderr.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    /// Everything, for an assertion message.
    pub fn describe(&self) -> String {
        format!(
            "command: epochfuse {}\nexit: {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.args.join(" "),
            self.output.status,
            self.stdout(),
            self.stderr()
        )
    }

    /// Asserts the exit code, printing everything on failure.
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(self.code(), Some(code), "{}", self.describe());
        self
    }
}
/// `epochfuse drive EXTRA… --out <sandbox>/NAME --quiet`, taking its turn among real-time
/// pipelines: the run and its summary (`Null` when the run wrote none).
pub fn drive(sb: &Sandbox, name: &str, extra: &[&str]) -> (Run, serde_json::Value) {
    let _turn = pipeline_turn();
    let out = sb.path(name);
    let out_s = out.to_str().unwrap().to_string();
    let mut args = vec!["drive"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--out", &out_s, "--quiet"]);
    let run = sb.run(&args);
    let path = out.join("summary.json");
    let s = if path.exists() { summary(&path) } else { serde_json::Value::Null };
    (run, s)
}

/// `epochfuse replay SOURCE --out <sandbox>/NAME --quiet EXTRA…`: the run and its summary
/// (`Null` when the run wrote none).
pub fn replay(sb: &Sandbox, name: &str, source: &Path, extra: &[&str]) -> (Run, serde_json::Value) {
    let out = sb.path(name);
    let mut args = vec!["replay", source.to_str().unwrap(), "--out", out.to_str().unwrap(), "--quiet"];
    args.extend_from_slice(extra);
    let run = sb.run(&args);
    let path = out.join("summary.json");
    let s = if path.exists() { summary(&path) } else { serde_json::Value::Null };
    (run, s)
}

/// The per-pair numbers of `camera`'s pairs, in order, rounded for an exact comparison.
pub fn camera_pairs(s: &serde_json::Value, camera: &str) -> Vec<(u64, u64, u64, u64, i64, i64, i64)> {
    s["frames"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["camera"] == camera)
        .map(|f| {
            let r = |k: &str| (f[k].as_f64().unwrap() * 1e6).round() as i64;
            (
                f["epoch"].as_u64().unwrap(),
                f["lidar_seq"].as_u64().unwrap(),
                f["points"].as_u64().unwrap(),
                f["points_in_image"].as_u64().unwrap(),
                r("mean_u"),
                r("mean_v"),
                r("mean_depth"),
            )
        })
        .collect()
}

/// Reads a summary JSON.
pub fn summary(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `../shared/data` (or `$EPOCHFUSE_SHARED_DATA`) if present; otherwise prints a notice and
/// returns None.
pub fn shared_data() -> Option<PathBuf> {
    let p = std::env::var_os("EPOCHFUSE_SHARED_DATA")
        .map_or_else(|| root().join("../shared/data"), PathBuf::from);
    if p.is_dir() {
        Some(p)
    } else {
        eprintln!("skipping: ../shared/data is not present (real sensor data lives beside the repository)");
        None
    }
}
