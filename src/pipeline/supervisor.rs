//! The supervisor behind `drive` and `replay`: makes the run directory, spawns one process
//! per role (this same binary, `epochfuse role NAME --run DIR`), injects scheduled faults,
//! restarts or aborts on deaths, shows progress, stops everything in order, and merges the
//! summary.
//!
//! Shutdown order: producers finish (or are told to stop), then fusion and the recorder
//! drain what the rings still hold, then the calibration service stops. Children run in
//! their own process group, so a Ctrl-C reaches only the supervisor, which then stops them
//! in that order; each child also asks the kernel to send it SIGTERM if the supervisor dies.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use fusion::summary::{FaultsSummary, Source, StreamSummary, Summary};
use indicatif::{ProgressBar, ProgressStyle};
use shared::layout::aux;
use shared::mapping::ReadOnly;
use shared::ring::Scoreboard;
use shared::rundir::{self, RunDir};
use shared::segment::Segment;
use shared::StreamKind;

use super::spec::{RunSpec, FUSION_RESULT_FILE, SCENARIO_FILE};
use crate::cli::RoleName;
use crate::error::CliError;

/// How long a role may take to say it is ready.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a role may take to stop after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// The supervisor's tick: progress, faults, child states.
const TICK: Duration = Duration::from_millis(100);

/// A fault the supervisor injects: SIGKILL `role` at `at` after the start.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PlannedKill {
    /// The role.
    pub role: RoleName,
    /// When, after the pipeline clock's origin.
    pub at: Duration,
    /// Whether to restart it.
    pub restart: bool,
}

/// What to supervise.
#[derive(Debug)]
pub struct Supervise {
    /// The run spec (written into the run directory).
    pub spec: RunSpec,
    /// The shm root.
    pub root: PathBuf,
    /// The scenario text to place in the run directory (simulated drives).
    pub scenario_text: Option<String>,
    /// Scheduled kills.
    pub kills: Vec<PlannedKill>,
    /// Hide the progress bar.
    pub quiet: bool,
    /// Where the summary goes.
    pub summary_path: PathBuf,
    /// Sim or replay.
    pub source: Source,
    /// Lidar frames the producers will write in all (for the progress bar).
    pub expected_lidar_frames: u64,
    /// Pipeline seconds per lidar frame (for the progress bar and the realtime factor).
    pub lidar_period_s: f64,
}

struct RoleProc {
    child: Child,
    stdin: Option<std::process::ChildStdin>,
    started: Instant,
}

#[derive(Debug)]
enum ChildEvent {
    Ready(RoleName),
}

fn role_name(r: RoleName) -> &'static str {
    match r {
        RoleName::Calib => "calib",
        RoleName::Camera => "camera",
        RoleName::Lidar => "lidar",
        RoleName::Fusion => "fusion",
        RoleName::Replayer => "replayer",
        RoleName::Recorder => "recorder",
    }
}

fn spawn_role(
    role: RoleName,
    run: &Path,
    logs: &Path,
    events: &Sender<ChildEvent>,
) -> Result<RoleProc, CliError> {
    let exe = std::env::current_exe()
        .map_err(|e| CliError::internal(format!("cannot find own executable: {e}")))?;
    let log_path = logs.join(format!("{}.log", role_name(role)));
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| CliError::internal(format!("{}: {e}", log_path.display())))?;
    let mut child = Command::new(exe)
        .arg("role")
        .arg(role_name(role))
        .arg("--run")
        .arg(run)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .process_group(0)
        .spawn()
        .map_err(|e| CliError::internal(format!("cannot start the {} role: {e}", role_name(role))))?;
    if let Some(out) = child.stdout.take() {
        let events = events.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if line.trim() == "ready" {
                    let _ = events.send(ChildEvent::Ready(role));
                }
            }
        });
    }
    let stdin = child.stdin.take();
    Ok(RoleProc { child, stdin, started: Instant::now() })
}

fn wait_ready(
    role: RoleName,
    events: &Receiver<ChildEvent>,
    procs: &mut BTreeMap<&'static str, RoleProc>,
    logs: &Path,
) -> Result<(), CliError> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        match events.recv_timeout(TICK) {
            Ok(ChildEvent::Ready(r)) if r == role => return Ok(()),
            Ok(_) => {}
            Err(_) => {
                if let Some(p) = procs.get_mut(role_name(role)) {
                    if let Ok(Some(status)) = p.child.try_wait() {
                        return Err(role_failed(role, status, logs));
                    }
                }
                if Instant::now() > deadline {
                    return Err(CliError::internal(format!(
                        "the {} role did not start within {READY_TIMEOUT:?}",
                        role_name(role)
                    )));
                }
            }
        }
    }
}

fn last_log_line(logs: &Path, role: RoleName) -> String {
    let path = logs.join(format!("{}.log", role_name(role)));
    std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| t.lines().rev().find(|l| !l.trim().is_empty()).map(str::to_owned))
        .map(|l| l.trim_start_matches("epochfuse: error: ").to_string())
        .unwrap_or_default()
}

fn role_failed(role: RoleName, status: std::process::ExitStatus, logs: &Path) -> CliError {
    let line = last_log_line(logs, role);
    let how = match (status.code(), status.signal()) {
        (Some(c), _) => format!("exited with code {c}"),
        (None, Some(s)) => format!("was killed by signal {s}"),
        _ => "stopped".to_string(),
    };
    let msg = format!("the {} role {how}: {line}", role_name(role));
    // A role that reports bad input exits 2: pass that on.
    if status.code() == Some(2) {
        CliError::input(line)
    } else {
        CliError::internal(msg)
    }
}

fn signal(p: &RoleProc, sig: rustix::process::Signal) {
    if let Some(pid) = rustix::process::Pid::from_raw(p.child.id() as i32) {
        let _ = rustix::process::kill_process(pid, sig);
    }
}

fn stop_role(p: &mut RoleProc) -> Option<std::process::ExitStatus> {
    // Closing stdin also ends a role still waiting for its start.
    p.stdin.take();
    if let Ok(Some(s)) = p.child.try_wait() {
        return Some(s);
    }
    signal(p, rustix::process::Signal::TERM);
    let deadline = Instant::now() + STOP_TIMEOUT;
    loop {
        if let Ok(Some(s)) = p.child.try_wait() {
            return Some(s);
        }
        if Instant::now() > deadline {
            let _ = p.child.kill();
            return p.child.wait().ok();
        }
        std::thread::sleep(Duration::from_millis(20));
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
struct CpuLedger {
    done: BTreeMap<&'static str, f64>,
    current: BTreeMap<&'static str, f64>,
}

impl CpuLedger {
    fn sample(&mut self, procs: &BTreeMap<&'static str, RoleProc>) {
        for (name, p) in procs {
            if let Some(s) = cpu_seconds(p.child.id()) {
                self.current.insert(name, s);
            }
        }
    }

    /// A role's process is replaced: bank what its last incarnation used.
    fn retire(&mut self, name: &'static str) {
        if let Some(s) = self.current.remove(name) {
            *self.done.entry(name).or_default() += s;
        }
    }

    fn totals(&self) -> BTreeMap<String, f64> {
        let mut t: BTreeMap<String, f64> = self.done.iter().map(|(k, v)| ((*k).to_string(), *v)).collect();
        for (k, v) in &self.current {
            *t.entry((*k).to_string()).or_default() += v;
        }
        t
    }
}

/// Starts a ready role: tells it the pipeline clock's origin.
fn go(p: &mut RoleProc, t0_ns: u64) {
    use std::io::Write as _;
    if let Some(stdin) = p.stdin.as_mut() {
        let _ = writeln!(stdin, "go {t0_ns}");
        let _ = stdin.flush();
    }
}

/// Segments the supervisor watches for progress and the summary.
#[derive(Default)]
struct Watch {
    camera: Option<Segment<ReadOnly>>,
    lidar: Option<Segment<ReadOnly>>,
    fused: Option<Segment<ReadOnly>>,
}

impl Watch {
    fn refresh(&mut self, run: &Path) {
        for (slot, kind) in [
            (&mut self.camera, StreamKind::Camera),
            (&mut self.lidar, StreamKind::Lidar),
            (&mut self.fused, StreamKind::Fused),
        ] {
            if slot.is_none() {
                *slot = Segment::attach(&run.join(rundir::segment_file(kind)), Some(kind)).ok();
            }
        }
    }

    fn board(seg: Option<&Segment<ReadOnly>>) -> Scoreboard {
        seg.map(Scoreboard::load).unwrap_or_default()
    }
}

/// Runs a pipeline to completion and returns its summary (already written to disk).
///
/// # Errors
/// Exit 2 for bad input reported by a role; exit 3 if a role fails to start or dies
/// without a planned restart.
pub fn supervise(cfg: Supervise) -> Result<Summary, CliError> {
    let mut run = RunDir::create(&cfg.root).map_err(|e| CliError::input(e.to_string()))?;
    let dir = run.path().to_path_buf();
    let logs = cfg.spec.out.join("logs");
    std::fs::create_dir_all(&logs).map_err(|e| CliError::input(format!("{}: {e}", logs.display())))?;
    if let Some(text) = &cfg.scenario_text {
        std::fs::write(dir.join(SCENARIO_FILE), text)
            .map_err(|e| CliError::internal(format!("{}: {e}", dir.display())))?;
    }
    cfg.spec.store(&dir)?;

    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .map_err(|e| CliError::internal(format!("signal handler: {e}")))?;
    }

    let (tx, rx) = crossbeam_channel::unbounded();
    let mut procs: BTreeMap<&'static str, RoleProc> = BTreeMap::new();
    let producers: Vec<RoleName> = match cfg.source {
        Source::Sim => vec![RoleName::Camera, RoleName::Lidar],
        Source::Replay => vec![RoleName::Replayer],
    };
    let mut order = vec![RoleName::Calib, RoleName::Fusion];
    if cfg.spec.record.is_some() {
        order.push(RoleName::Recorder);
    }
    let started = (|| {
        for role in order.iter().chain(&producers) {
            procs.insert(role_name(*role), spawn_role(*role, &dir, &logs, &tx)?);
            wait_ready(*role, &rx, &mut procs, &logs)?;
        }
        Ok::<(), CliError>(())
    })();
    if let Err(e) = started {
        for p in procs.values_mut() {
            stop_role(p);
        }
        return Err(e);
    }
    // Everyone is ready: fix the clock's origin a moment ahead, so the first frame is not
    // already late when the producers read their start.
    let t0_ns = calib::clock::monotonic_ns() + 20_000_000;
    let clock = calib::clock::PipelineClock::from_t0_ns(t0_ns);
    for p in procs.values_mut() {
        go(p, t0_ns);
    }

    let bar =
        if cfg.quiet { ProgressBar::hidden() } else { ProgressBar::new(cfg.expected_lidar_frames.max(1)) };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner:.green} [{elapsed_precise}] [{bar:30.cyan/blue}] {pos}/{len} sweeps  {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );

    let wall_start = Instant::now();
    let mut watch = Watch::default();
    let mut faults = FaultsSummary::default();
    let mut pending_kills = cfg.kills.clone();
    pending_kills.sort_by_key(|k| k.at);
    let mut recovering: Vec<(Instant, u64, u64)> = Vec::new(); // (restart time, fused at restart, producer frames)
    let mut failure: Option<CliError> = None;
    let mut cpu = CpuLedger::default();

    loop {
        crossbeam_channel::select! {
            recv(rx) -> _ => {},
            default(TICK) => {},
        }
        watch.refresh(&dir);
        cpu.sample(&procs);
        let lidar = Watch::board(watch.lidar.as_ref());
        let camera = Watch::board(watch.camera.as_ref());
        let fused = Watch::board(watch.fused.as_ref());
        bar.set_position(lidar.frames_written.min(cfg.expected_lidar_frames));
        bar.set_message(format!(
            "fused {}  epoch {}  held {}  dropped {}  rejected {}  torn {}  overruns {}",
            fused.aux[aux::FUSED_PAIRS],
            fused.aux[aux::FUSED_LATEST_EPOCH],
            fused.aux[aux::FUSED_HELD],
            fused.aux[aux::FUSED_DROPPED_NO_CALIB],
            fused.aux[aux::FUSED_REJECTED_MISMATCH],
            camera.torn_retries + lidar.torn_retries,
            camera.overruns + lidar.overruns,
        ));

        // Recovery: from a restart to the next fused pair made after the restarted
        // producer wrote again.
        recovering.retain(|(t, fused_then, frames_then)| {
            let produced = camera.frames_written + lidar.frames_written > *frames_then;
            if produced && fused.aux[aux::FUSED_PAIRS] > *fused_then {
                let ms = t.elapsed().as_secs_f64() * 1e3;
                faults.recovery_ms_max = Some(faults.recovery_ms_max.map_or(ms, |m: f64| m.max(ms)));
                false
            } else {
                true
            }
        });

        // Scheduled kills.
        let now = Duration::from_nanos(clock.now().0);
        while pending_kills.first().is_some_and(|k| k.at <= now) {
            let k = pending_kills.remove(0);
            let Some(p) = procs.get_mut(role_name(k.role)) else { continue };
            if p.child.try_wait().ok().flatten().is_some() {
                continue;
            }
            let _ = p.child.kill();
            let _ = p.child.wait();
            cpu.retire(role_name(k.role));
            faults.crashes += 1;
            bar.println(format!(
                "fault: killed the {} role (SIGKILL) at {:.2} s",
                role_name(k.role),
                now.as_secs_f64()
            ));
            if k.restart {
                match spawn_role(k.role, &dir, &logs, &tx) {
                    Ok(mut np) => {
                        go(&mut np, t0_ns);
                        *p = np;
                        faults.restarts += 1;
                        recovering.push((
                            Instant::now(),
                            fused.aux[aux::FUSED_PAIRS],
                            camera.frames_written + lidar.frames_written,
                        ));
                        bar.println(format!("fault: restarted the {} role", role_name(k.role)));
                    }
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
            } else {
                procs.remove(role_name(k.role));
            }
        }

        // Unplanned deaths.
        for role in order.iter().chain(&producers) {
            let Some(p) = procs.get_mut(role_name(*role)) else { continue };
            if let Ok(Some(status)) = p.child.try_wait() {
                let is_producer = producers.contains(role);
                if is_producer && status.success() {
                    continue; // Finished its frames.
                }
                faults.crashes += 1;
                let e = role_failed(*role, status, &logs);
                bar.println(format!(
                    "fault: {e} (after {:.1} s); stopping the run",
                    p.started.elapsed().as_secs_f64()
                ));
                failure.get_or_insert(e);
            }
        }
        if failure.is_some() {
            break;
        }
        if stop.load(Ordering::Relaxed) {
            bar.println("interrupted: stopping every role cleanly");
            break;
        }
        let producers_done = producers.iter().all(|r| {
            procs
                .get_mut(role_name(*r))
                .is_none_or(|p| p.child.try_wait().ok().flatten().is_some_and(|s| s.success()))
        });
        if producers_done && pending_kills.iter().all(|k| producers.contains(&k.role)) {
            break;
        }
    }
    let producing_wall = wall_start.elapsed();

    // Stop in order: producers, then consumers, then the calibration service.
    for role in producers.iter().chain([RoleName::Fusion, RoleName::Recorder, RoleName::Calib].iter()) {
        cpu.sample(&procs);
        if let Some(p) = procs.get_mut(role_name(*role)) {
            stop_role(p);
        }
    }
    bar.finish_and_clear();

    watch.refresh(&dir);
    let mut summary = read_fusion_result(&dir).unwrap_or_else(|| {
        Summary::new(
            cfg.source,
            if cfg.spec.pairing_latest { fusion::PairingMode::Latest } else { fusion::PairingMode::Epoch },
        )
    });
    summary.source = cfg.source;
    let lidar = Watch::board(watch.lidar.as_ref());
    let camera = Watch::board(watch.camera.as_ref());
    // frames_read and the retry counters come from fusion's own readers when it reported
    // them (the recorder reads the same rings); the writers' counts from the scoreboards.
    summary.streams.camera.frames_written = camera.frames_written;
    summary.streams.lidar.frames_written = lidar.frames_written;
    if summary.streams.camera.frames_read == 0 && summary.streams.lidar.frames_read == 0 {
        summary.streams.camera = stream_from_board(&camera);
        summary.streams.lidar = stream_from_board(&lidar);
    }
    summary.faults = faults;
    summary.cpu_s = cpu.totals();
    summary.wall_s = wall_start.elapsed().as_secs_f64();
    summary.invariants.torn_frames_accepted = summary.pairs.invalid_payloads;
    summary.invariants.mistagged_frames =
        camera.aux[aux::PRODUCER_MISTAGGED] + lidar.aux[aux::PRODUCER_MISTAGGED];
    let sim_s = lidar.frames_written as f64 * cfg.lidar_period_s;
    summary.duration_s = sim_s;
    summary.realtime_factor =
        if producing_wall.as_secs_f64() > 0.0 { sim_s / producing_wall.as_secs_f64() } else { 0.0 };
    summary.invariants.refresh();
    if let Some(parent) = cfg.summary_path.parent().filter(|p| !p.as_os_str().is_empty()) {
        let _ = std::fs::create_dir_all(parent);
    }
    summary.write(&cfg.summary_path).map_err(|e| {
        CliError::input(format!("{}: cannot write the summary: {e}", cfg.summary_path.display()))
    })?;
    match failure {
        // Bad input: the run did what it could; nothing of it is worth keeping.
        Some(e) if e.code == crate::error::EXIT_INPUT => Err(e),
        // A role failed: keep its run directory for `epochfuse inspect`, and say where.
        Some(mut e) => {
            run.keep();
            e.message = format!("{} (run directory kept for inspection: {})", e.message, dir.display());
            Err(e)
        }
        None => Ok(summary),
    }
}

fn stream_from_board(b: &Scoreboard) -> StreamSummary {
    StreamSummary {
        frames_written: b.frames_written,
        frames_read: b.frames_read,
        torn_retries: b.torn_retries,
        overruns: b.overruns,
        stale: b.stale,
    }
}

fn read_fusion_result(dir: &Path) -> Option<Summary> {
    let text = std::fs::read_to_string(dir.join(FUSION_RESULT_FILE)).ok()?;
    serde_json::from_str(&text).ok()
}
