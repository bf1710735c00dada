//! The supervisor behind `drive` and `replay`: makes the run directory, spawns one process
//! per role (`procs`), injects scheduled faults, restarts or aborts on deaths,
//! shows progress (`progress`), stops everything in order, and builds the summary
//! ([`super::summary`]).
//!
//! Shutdown order: producers finish (or are told to stop), then fusion and the recorder
//! drain what the rings still hold, then the calibration service stops. Children run in
//! their own process group, so a Ctrl-C reaches only the supervisor, which then stops them
//! in that order; each child also asks the kernel to send it SIGTERM if the supervisor dies.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fusion::FusionResult;
use indicatif::ProgressBar;
use shared::rundir::RunDir;
use shared::{Role, StreamKind};

use super::procs::{CpuLedger, ProcId, RoleProc, Spawner};
use super::progress::{self, Boards, Recovery, StallWatch, Watch};
use super::rig_summary::{RigResult, RIG_RESULT_FILE};
use super::sandbox::SandboxSummary;
use super::spec::{RunSpec, SourceSpec, CALIB_RESULT_FILE, FUSION_RESULT_FILE, VEHICLE_RESULT_FILE};
use super::summary::{FaultsSummary, RunFacts, Summary};
use crate::error::CliError;

/// The supervisor's tick: progress, faults, child states.
const TICK: Duration = Duration::from_millis(100);

/// A fault the supervisor injects: SIGKILL `role` at `at` after the start.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PlannedKill {
    /// The role.
    pub role: Role,
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
    /// Files to place in the run directory (0600) before any role starts, by name: the
    /// scenario copy of a drive, a bus's DBC, a replayed bag's index and CAN frames.
    pub run_files: Vec<(&'static str, Vec<u8>)>,
    /// Scheduled kills.
    pub kills: Vec<PlannedKill>,
    /// Hide the progress bar.
    pub quiet: bool,
    /// Where the summary goes.
    pub summary_path: PathBuf,
    /// Lidar frames the producers will write in all (for the progress bar).
    pub expected_lidar_frames: u64,
    /// Pipeline seconds per lidar frame (for the progress bar and the realtime factor).
    pub lidar_period_s: f64,
    /// Bytes of shared memory the run's segments need ([`super::segments::run_bytes`]).
    pub shm_bytes: u64,
}

/// The processes of a run: who produces, and who serves and consumes (in start order).
struct Cast {
    producers: Vec<ProcId>,
    services: Vec<ProcId>,
}

impl Cast {
    fn of(spec: &RunSpec) -> Self {
        let producers = match spec.source {
            // One producer per sensor, cameras first.
            SourceSpec::Sim => spec
                .sensor_list()
                .into_iter()
                .map(|s| {
                    let role = if s.kind == StreamKind::Camera { Role::Camera } else { Role::Lidar };
                    ProcId { role, sensor: Some(s.name) }
                })
                .collect(),
            SourceSpec::Replay { .. } => vec![ProcId::of(Role::Replayer)],
            // Another host's run: the bridge mirrors its streams into the rings.
            SourceSpec::Remote(_) => vec![ProcId::of(Role::Bridge)],
        };
        // The car's bus runs for the drive's length, like a producer.
        let producers: Vec<ProcId> =
            producers.into_iter().chain(spec.vehicle.as_ref().map(|_| ProcId::of(Role::Vehicle))).collect();
        let mut services = vec![ProcId::of(Role::Calib), ProcId::of(Role::Fusion)];
        if spec.record.is_some() {
            services.push(ProcId::of(Role::Recorder));
        }
        if spec.zenoh.is_some() {
            services.push(ProcId::of(Role::Bridge));
        }
        Self { producers, services }
    }

    /// Start order: services first, so producers find their sockets and readers.
    fn start_order(&self) -> impl Iterator<Item = &ProcId> + '_ {
        self.services.iter().chain(&self.producers)
    }

    /// Stop order: producers, then consumers, then the calibration service.
    fn stop_order(&self) -> Vec<ProcId> {
        let bridge = Some(ProcId::of(Role::Bridge)).filter(|r| !self.producers.contains(r));
        self.producers
            .iter()
            .cloned()
            .chain([ProcId::of(Role::Fusion), ProcId::of(Role::Recorder)])
            .chain(bridge)
            .chain([ProcId::of(Role::Calib)])
            .collect()
    }

    /// The process a fault naming `role` means: the role's first producer (the primary
    /// camera or lidar), else the role itself.
    fn resolve(&self, role: Role) -> ProcId {
        self.producers.iter().find(|p| p.role == role).cloned().unwrap_or(ProcId::of(role))
    }
}

/// Writes the run directory's inputs (scenario copy, spec) and makes the log directory.
fn prepare(cfg: &Supervise, dir: &Path) -> Result<PathBuf, CliError> {
    let logs = cfg.spec.out.join("logs");
    std::fs::create_dir_all(&logs).map_err(|e| CliError::input(format!("{}: {e}", logs.display())))?;
    for (name, bytes) in &cfg.run_files {
        super::spec::write_private(&dir.join(name), bytes)
            .map_err(|e| CliError::internal(format!("{}: {e}", dir.join(name).display())))?;
    }
    cfg.spec.store(dir)?;
    Ok(logs)
}

/// Spawns every role in start order, each ready before the next; on a failure stops those
/// already running.
fn start_all(spawner: &Spawner, cast: &Cast) -> Result<BTreeMap<ProcId, RoleProc>, CliError> {
    let mut procs = BTreeMap::new();
    for id in cast.start_order() {
        let started = spawner.spawn(id).and_then(|mut p| {
            let ready = spawner.wait_ready(id, &mut p);
            procs.insert(id.clone(), p);
            ready
        });
        if let Err(e) = started {
            for p in procs.values_mut() {
                p.stop();
            }
            return Err(e);
        }
    }
    Ok(procs)
}

/// Runs a pipeline to completion and returns its summary (already written to disk).
///
/// # Errors
/// Exit 2 for bad input reported by a role; exit 3 if a role fails to start or dies
/// without a planned restart.
pub fn supervise(cfg: Supervise) -> Result<Summary, CliError> {
    let mut run = RunDir::create(&cfg.root).map_err(|e| CliError::input(e.to_string()))?;
    // Room up front: a full tmpfs is one line now, never a SIGBUS or ENOSPC mid-run.
    // The run directory's files live beside the segments (a long bus's frames are megabytes).
    let files: u64 = cfg.run_files.iter().map(|(_, b)| b.len() as u64).sum();
    shared::rundir::check_room(&cfg.root, cfg.shm_bytes + files)
        .map_err(|e| CliError::input(e.to_string()))?;
    let dir = run.path().to_path_buf();
    let logs = prepare(&cfg, &dir)?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .map_err(|e| CliError::internal(format!("signal handler: {e}")))?;
    }
    let cast = Cast::of(&cfg.spec);
    let spawner = Spawner::new(&dir, &logs);
    let procs = start_all(&spawner, &cast)?;
    if let Some(warning) = SandboxSummary::warning(&spawner.sandbox_reports()) {
        eprintln!("{warning}");
    }
    let mut live = Live::start(&cfg, procs, &spawner, &cast);
    let failure = live.run(&dir, &stop);
    let producing_wall = live.wall_start.elapsed();
    for id in cast.stop_order() {
        live.cpu.sample(&live.procs);
        if let Some(p) = live.procs.get_mut(&id) {
            p.stop();
        }
    }
    live.bar.finish_and_clear();

    let boards = live.watch.look(&dir);
    let summary = merge(&cfg, &dir, live.facts(&dir, boards, producing_wall));
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

/// The summary: fusion's report (an empty one if fusion wrote none) merged with what the
/// supervisor saw.
fn merge(cfg: &Supervise, dir: &Path, facts: RunFacts) -> Summary {
    let mut fusion = FusionResult::read(&dir.join(FUSION_RESULT_FILE))
        .unwrap_or_else(|_| FusionResult::new(cfg.spec.pairing));
    // The service's counters: a run whose calib role died early has none (zeros).
    let service: Option<calib::ServiceStats> =
        std::fs::read(dir.join(CALIB_RESULT_FILE)).ok().and_then(|b| serde_json::from_slice(&b).ok());
    if let Some(stats) = service {
        fusion.calibration.refused = stats.refused;
    }
    let rig: RigResult = std::fs::read(dir.join(RIG_RESULT_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let mut summary = Summary::build(fusion, rig, facts);
    // The bus's part, only in runs with a bus (a run without one keeps its summary as it was).
    summary.can =
        std::fs::read(dir.join(VEHICLE_RESULT_FILE)).ok().and_then(|b| serde_json::from_slice(&b).ok());
    summary
}

/// A started run: its processes, what it has seen, and the faults still to come.
struct Live<'a> {
    cfg: &'a Supervise,
    spawner: &'a Spawner,
    cast: &'a Cast,
    procs: BTreeMap<ProcId, RoleProc>,
    t0_ns: u64,
    bar: ProgressBar,
    wall_start: Instant,
    watch: Watch,
    faults: FaultsSummary,
    pending_kills: Vec<PlannedKill>,
    recovery: Recovery,
    cpu: CpuLedger,
    stall: StallWatch,
}

impl<'a> Live<'a> {
    /// Fixes the clock's origin and starts every (ready) role.
    fn start(
        cfg: &'a Supervise,
        mut procs: BTreeMap<ProcId, RoleProc>,
        spawner: &'a Spawner,
        cast: &'a Cast,
    ) -> Self {
        // Everyone is ready: fix the clock's origin a moment ahead, so the first frame is not
        // already late when the producers read their start.
        let t0_ns = calib::clock::monotonic_ns() + 20_000_000;
        for p in procs.values_mut() {
            p.go(t0_ns);
        }
        let mut pending_kills = cfg.kills.clone();
        pending_kills.sort_by_key(|k| k.at);
        Self {
            cfg,
            spawner,
            cast,
            procs,
            t0_ns,
            bar: progress::bar(cfg.quiet, cfg.expected_lidar_frames),
            wall_start: Instant::now(),
            watch: Watch::default(),
            faults: FaultsSummary::default(),
            pending_kills,
            recovery: Recovery::default(),
            cpu: CpuLedger::default(),
            stall: StallWatch::default(),
        }
    }

    /// Ticks until the producers are done, a role fails, or the user interrupts; returns
    /// the failure, if any.
    fn run(&mut self, dir: &Path, stop: &AtomicBool) -> Option<CliError> {
        let clock = calib::clock::PipelineClock::from_t0_ns(self.t0_ns);
        loop {
            crossbeam_channel::select! {
                recv(self.spawner.ready) -> _ => {},
                // A producer that finished ends the run now, not at the next tick.
                recv(self.spawner.ended) -> role => {
                    let producer = role.ok().filter(|r| self.cast.producers.contains(r));
                    if let Some(p) = producer.and_then(|r| self.procs.get_mut(&r)) {
                        p.settle();
                    }
                },
                default(TICK) => {},
            }
            let boards = self.watch.look(dir);
            self.cpu.sample(&self.procs);
            progress::show(&self.bar, &boards, self.cfg.expected_lidar_frames);
            if let Some(ms) = self.recovery.check(&boards) {
                self.faults.recovery_ms_max =
                    Some(self.faults.recovery_ms_max.map_or(ms, |m: f64| m.max(ms)));
            }
            let now = Duration::from_nanos(clock.now().0);
            // A failed restart is the run's failure; deaths are still counted first.
            let restart_failed = self.inject_kills(now, &boards).err();
            let died = self.deaths();
            if let Some(e) = restart_failed.or(died) {
                return Some(e);
            }
            if stop.load(Ordering::Relaxed) {
                self.bar.println("interrupted: stopping every role cleanly");
                return None;
            }
            if self.finished() {
                return None;
            }
            if let Some(stalled) = self.stall.check(&boards, progress::stall_limit()) {
                return Some(CliError::internal(stalled));
            }
        }
    }

    /// SIGKILLs the roles whose kill is due at `now`, restarting those planned so.
    fn inject_kills(&mut self, now: Duration, boards: &Boards) -> Result<(), CliError> {
        while self.pending_kills.first().is_some_and(|k| k.at <= now) {
            let k = self.pending_kills.remove(0);
            let id = self.cast.resolve(k.role);
            let Some(p) = self.procs.get_mut(&id) else { continue };
            if p.exited().is_some() {
                continue;
            }
            p.kill();
            self.cpu.retire(&id);
            self.faults.crashes += 1;
            self.bar.println(format!(
                "fault: killed the {} role (SIGKILL) at {:.2} s",
                id,
                now.as_secs_f64()
            ));
            if !k.restart {
                self.procs.remove(&id);
                continue;
            }
            let mut np = self.spawner.spawn(&id)?;
            np.go(self.t0_ns);
            *p = np;
            self.faults.restarts += 1;
            self.recovery.restarted(boards);
            self.bar.println(format!("fault: restarted the {id} role"));
        }
        Ok(())
    }

    /// Roles that stopped unplanned (a producer that finished its frames did not); the first
    /// one's error. A role that exits with the bad-input code (2: a log that breaks
    /// part-way, say) reported its input, so it is not counted as a crash.
    fn deaths(&mut self) -> Option<CliError> {
        let mut failure = None;
        for id in self.cast.start_order() {
            let Some(p) = self.procs.get_mut(id) else { continue };
            let Some(status) = p.exited() else { continue };
            if self.cast.producers.contains(id) && status.success() {
                continue; // Finished its frames.
            }
            let input = status.code() == Some(2);
            self.faults.crashes += u64::from(!input);
            let e = self.spawner.failed(id, status);
            self.bar.println(format!(
                "{}: {e} (after {:.1} s); stopping the run",
                if input { "input" } else { "fault" },
                p.started.elapsed().as_secs_f64()
            ));
            failure.get_or_insert(e);
        }
        failure
    }

    /// Every producer finished its frames and no kill of a consumer is still to come.
    fn finished(&mut self) -> bool {
        let producers = &self.cast.producers;
        let done = producers
            .iter()
            .all(|r| self.procs.get_mut(r).is_none_or(|p| p.exited().is_some_and(|s| s.success())));
        done && self.pending_kills.iter().all(|k| producers.contains(&self.cast.resolve(k.role)))
    }

    /// The supervisor's part of the summary: the rings as `boards` shows them at the end,
    /// and the realtime factor over the producing phase (`producing_wall`).
    fn facts(&self, dir: &Path, boards: Boards, producing_wall: Duration) -> RunFacts {
        let sim_s = boards.lidar.frames_written as f64 * self.cfg.lidar_period_s;
        let wall = producing_wall.as_secs_f64();
        RunFacts {
            source: self.cfg.spec.source_kind(),
            camera: boards.camera,
            lidar: boards.lidar,
            sensors: sensor_boards(dir, &self.cfg.spec),
            faults: self.faults,
            cpu_s: self.cpu.totals(),
            duration_s: sim_s,
            realtime_factor: if wall > 0.0 { sim_s / wall } else { 0.0 },
            wall_s: self.wall_start.elapsed().as_secs_f64(),
            sandbox: SandboxSummary::of(&self.spawner.sandbox_reports()),
        }
    }
}

/// Every sensor ring's scoreboard at the end of the run, by sensor name (zeros for a ring
/// that never appeared).
fn sensor_boards(dir: &Path, spec: &RunSpec) -> BTreeMap<String, (StreamKind, shared::ring::Scoreboard)> {
    spec.sensor_list()
        .into_iter()
        .map(|s| {
            let path = dir.join(super::segments::sensor_file(&s.name));
            let seg: Option<shared::segment::Segment<shared::mapping::ReadOnly>> =
                shared::segment::Segment::attach(&path, Some(s.kind)).ok();
            let board = seg.as_ref().map(shared::ring::Scoreboard::load).unwrap_or_default();
            (s.name.to_string(), (s.kind, board))
        })
        .collect()
}
