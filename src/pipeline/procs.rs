//! The supervisor's process table: spawning a role (this same binary, `epochfuse role NAME
//! --run DIR`), waiting for its `ready`, starting it, stopping it, and what its processes
//! cost in CPU. Keyed by [`Role`].

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;
use shared::sandbox::SandboxReport;
use shared::Role;

use crate::error::CliError;

/// How long a role may take to say it is ready.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a role may take to stop after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a wait for a role looks again.
const POLL: Duration = Duration::from_millis(100);
/// How often a stopping role is looked at: most exit within milliseconds of the SIGTERM, and
/// the run ends only once the last has.
const STOP_POLL: Duration = Duration::from_millis(2);
/// How long a role whose stdout closed may take to become a reapable exit.
const SETTLE: Duration = Duration::from_millis(50);

/// One running role process.
pub struct RoleProc {
    child: Child,
    stdin: Option<ChildStdin>,
    /// When this incarnation was spawned.
    pub started: Instant,
}

impl RoleProc {
    /// Its exit status, if it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGKILLs it and reaps it (a scheduled fault).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits up to [`SETTLE`] for a process whose stdout closed to be reaped: it is exiting.
    pub fn settle(&mut self) {
        let deadline = Instant::now() + SETTLE;
        while self.exited().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Starts a ready role: tells it the pipeline clock's origin.
    pub fn go(&mut self, t0_ns: u64) {
        use std::io::Write as _;
        if let Some(stdin) = self.stdin.as_mut() {
            let _ = writeln!(stdin, "go {t0_ns}");
            let _ = stdin.flush();
        }
    }

    /// Stops it: closes stdin (which also ends a role still waiting for its start), sends
    /// SIGTERM, and kills it after [`STOP_TIMEOUT`].
    pub fn stop(&mut self) -> Option<ExitStatus> {
        self.stdin.take();
        if let Some(s) = self.exited() {
            return Some(s);
        }
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            // A stopped process (SIGSTOP, a debugger) sees the TERM only once continued.
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::CONT);
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(s) = self.exited() {
                return Some(s);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                return self.child.wait().ok();
            }
            std::thread::sleep(STOP_POLL);
        }
    }
}

/// One process of a run: a role, and for a producer the sensor it renders. Its name (the
/// sensor's, else the role's) names its log file and its CPU in the summary.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ProcId {
    /// The role.
    pub role: Role,
    /// A producer's sensor.
    pub sensor: Option<calib::SensorName>,
}

impl ProcId {
    /// A role with no sensor.
    #[must_use]
    pub const fn of(role: Role) -> Self {
        Self { role, sensor: None }
    }

    /// Its name: the sensor's, else the role's.
    #[must_use]
    pub fn name(&self) -> &str {
        self.sensor.as_ref().map_or(self.role.name(), calib::SensorName::as_str)
    }
}

impl std::fmt::Display for ProcId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A process said `ready` on its stdout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ready(pub ProcId);

/// Spawns roles for one run directory and tells when they are ready.
pub struct Spawner {
    run: PathBuf,
    logs: PathBuf,
    tx: Sender<Ready>,
    ended_tx: Sender<ProcId>,
    /// Each role's sandbox report, from its latest `ready` line.
    sandbox: Arc<Mutex<BTreeMap<Role, SandboxReport>>>,
    /// Every `ready` line, in the order they came.
    pub ready: Receiver<Ready>,
    /// A role's stdout closed: it is exiting (so the supervisor need not wait for its tick).
    pub ended: Receiver<ProcId>,
}

impl Spawner {
    /// A spawner for the run at `run`, each role logging to `<logs>/<role>.log`.
    #[must_use]
    pub fn new(run: &Path, logs: &Path) -> Self {
        let (tx, ready) = crossbeam_channel::unbounded();
        let (ended_tx, ended) = crossbeam_channel::unbounded();
        let (run, logs) = (run.to_path_buf(), logs.to_path_buf());
        Self { run, logs, tx, ended_tx, ready, ended, sandbox: Arc::default() }
    }

    /// Starts `role`'s process (it then sets up and says `ready`).
    ///
    /// # Errors
    /// Exit 3 if the process cannot be started or its log not opened.
    pub fn spawn(&self, id: &ProcId) -> Result<RoleProc, CliError> {
        let exe = std::env::current_exe()
            .map_err(|e| CliError::internal(format!("cannot find own executable: {e}")))?;
        let log_path = self.log_path(id);
        let role = id.role;
        let sensor: Vec<String> =
            id.sensor.iter().flat_map(|n| ["--sensor".to_string(), n.to_string()]).collect();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| CliError::internal(format!("{}: {e}", log_path.display())))?;
        let mut child = Command::new(exe)
            .arg("role")
            .arg(role.name())
            .arg("--run")
            .arg(&self.run)
            .args(&sensor)
            .env(super::roles::SUPERVISOR_PID_ENV, std::process::id().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .process_group(0)
            .spawn()
            .map_err(|e| CliError::internal(format!("cannot start the {id} role: {e}")))?;
        if let Some(out) = child.stdout.take() {
            let (tx, sandbox, id) = (self.tx.clone(), Arc::clone(&self.sandbox), id.clone());
            let ended = self.ended_tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if let Some(report) = super::sandbox::parse_ready_line(&line) {
                        if let Some(report) = report {
                            sandbox.lock().insert(role, report);
                        }
                        let _ = tx.send(Ready(id.clone()));
                    }
                }
                let _ = ended.send(id);
            });
        }
        let stdin = child.stdin.take();
        Ok(RoleProc { child, stdin, started: Instant::now() })
    }

    /// The sandbox reports of the roles so far (latest incarnation of each).
    #[must_use]
    pub fn sandbox_reports(&self) -> BTreeMap<Role, SandboxReport> {
        self.sandbox.lock().clone()
    }

    /// Waits until `p`, just spawned for `role`, says it is ready.
    ///
    /// # Errors
    /// The role's own error if it exits first; exit 3 after [`READY_TIMEOUT`].
    pub fn wait_ready(&self, id: &ProcId, p: &mut RoleProc) -> Result<(), CliError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match self.ready.recv_timeout(POLL) {
                Ok(Ready(r)) if r == *id => return Ok(()),
                Ok(_) => {}
                Err(_) => {
                    if let Some(status) = p.exited() {
                        return Err(self.failed(id, status));
                    }
                    if Instant::now() > deadline {
                        return Err(CliError::internal(format!(
                            "the {id} role did not start within {READY_TIMEOUT:?}"
                        )));
                    }
                }
            }
        }
    }

    fn log_path(&self, id: &ProcId) -> PathBuf {
        self.logs.join(format!("{}.log", id.name()))
    }

    /// The error for `role` ending with `status`: its last log line, and exit 2 passed on
    /// for a role that reported bad input.
    #[must_use]
    pub fn failed(&self, id: &ProcId, status: ExitStatus) -> CliError {
        let line = std::fs::read_to_string(self.log_path(id))
            .ok()
            .and_then(|t| t.lines().rev().find(|l| !l.trim().is_empty()).map(str::to_owned))
            .map(|l| l.trim_start_matches("epochfuse: error: ").to_string())
            .unwrap_or_default();
        if status.code() == Some(2) {
            return CliError::input(line);
        }
        let how = match (status.code(), status.signal()) {
            (Some(c), _) => format!("exited with code {c}"),
            (None, Some(s)) => format!("was killed by signal {s}"),
            _ => "stopped".to_string(),
        };
        CliError::internal(format!("the {id} role {how}: {line}"))
    }
}

/// CPU seconds (user + system) process `pid` has used, from `/proc/<pid>/stat`.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = text.get(text.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line; `rest` starts at field 3.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / rustix::param::clock_ticks_per_second() as f64)
}

/// CPU time per role: finished incarnations plus the running one's last sample.
#[derive(Default)]
pub struct CpuLedger {
    done: BTreeMap<ProcId, f64>,
    current: BTreeMap<ProcId, f64>,
}

impl CpuLedger {
    /// Samples every running role.
    pub fn sample(&mut self, procs: &BTreeMap<ProcId, RoleProc>) {
        for (id, p) in procs {
            if let Some(s) = cpu_seconds(p.child.id()) {
                self.current.insert(id.clone(), s);
            }
        }
    }

    /// A process is replaced: bank what its last incarnation used.
    pub fn retire(&mut self, id: &ProcId) {
        if let Some(s) = self.current.remove(id) {
            *self.done.entry(id.clone()).or_default() += s;
        }
    }

    /// Seconds per role name, all incarnations.
    #[must_use]
    pub fn totals(&self) -> BTreeMap<String, f64> {
        let mut t: BTreeMap<String, f64> = BTreeMap::new();
        for (id, v) in self.done.iter().chain(&self.current) {
            *t.entry(id.name().to_string()).or_default() += v;
        }
        t
    }
}
