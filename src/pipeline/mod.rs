//! Pipelines: `drive` (simulated) and `replay` (recorded), as supervised processes.

mod procs;
mod progress;
pub mod rig_summary;
pub mod roles;
pub mod sandbox;
pub mod segments;
pub mod spec;
pub mod summary;
pub mod supervisor;

use std::path::{Path, PathBuf};
use std::time::Duration;

use sensor_sim::scenario::{Fault, Scenario};

use crate::cli::{DriveArgs, OnOff, PipelineArgs, ReplayArgs};
use crate::error::CliError;
use spec::{RunSpec, SourceSpec};
use summary::Summary;
use supervisor::{PlannedKill, Supervise};

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().map(|d| d.join(p)).unwrap_or_else(|_| p.to_path_buf())
    }
}

/// The output directory and the summary's path, absolute (nothing created yet).
fn out_paths(args: &PipelineArgs) -> (PathBuf, PathBuf) {
    let out = absolute(&args.local.out);
    let summary = args.local.summary.as_deref().map_or_else(|| out.join("summary.json"), absolute);
    (out, summary)
}

fn prepare_out(args: &PipelineArgs) -> Result<(PathBuf, PathBuf), CliError> {
    let (out, summary) = out_paths(args);
    std::fs::create_dir_all(&out).map_err(|e| {
        CliError::input(format!("{}: cannot create the output directory: {e}", out.display()))
    })?;
    // Checked at the door: the recorder (sandboxed to this folder) must not fail later.
    if let Some(record) = args.record.as_deref().map(absolute) {
        if let Some(dir) = record.parent().filter(|dir| !dir.is_dir()) {
            return Err(CliError::input(format!("--record: {}: no such directory", dir.display())));
        }
        // Anything there, a link too (even a dangling one): the recorder creates the file
        // new, and a recording never replaces what a user may want kept.
        if record.symlink_metadata().is_ok() {
            return Err(CliError::input(format!(
                "--record: {} exists: a recording never replaces a file (remove it or name another)",
                record.display()
            )));
        }
    }
    Ok((out, summary))
}

fn base_spec(
    args: &PipelineArgs,
    source: SourceSpec,
    duration_s: f64,
    out: PathBuf,
) -> Result<RunSpec, CliError> {
    let socket_policy = match &args.socket_policy {
        Some(path) => calib::policy::check_policy_file(path).map_err(|e| CliError::input(e.to_string()))?,
        None => calib::policy::SocketPolicy::default(),
    };
    Ok(RunSpec {
        source,
        pairing: args.local.pairing,
        camera_hz: 0.0,
        lidar_hz: 0.0,
        max_rate: args.max_rate,
        rate: 1.0,
        duration_s,
        out,
        overlay_every: args.local.overlay_every,
        per_pair: false,
        record: args.record.as_deref().map(absolute),
        sandbox: args.local.sandbox == OnOff::On,
        socket_policy,
        epochs: Vec::new(),
        delivery: calib::DeliveryPlan::default(),
        vehicle: None,
        deskew: false,
        zenoh: None,
        sensors: Vec::new(),
    })
}

/// The drive's vehicle bus, checked at the door: its DBC (found relative to the scenario's
/// directory, else to the working directory), the bit rate, and whether fusion deskews.
fn vehicle_bus(
    scenario: &Scenario,
    scenario_path: Option<&Path>,
    deskew: Option<OnOff>,
) -> Result<(Option<spec::VehicleRun>, Option<String>, bool), CliError> {
    let Some(v) = &scenario.spec().vehicle else {
        return match deskew {
            Some(OnOff::On) => Err(CliError::input(
                "--deskew on: the drive has no vehicle bus to take the ego-motion from (scenario field `vehicle`)",
            )),
            _ => Ok((None, None, false)),
        };
    };
    let file = scenario_path.map_or_else(|| "scenario".to_string(), |p| p.display().to_string());
    let given = Path::new(&v.dbc);
    let path = match scenario_path.and_then(Path::parent).map(|dir| dir.join(given)) {
        Some(beside) if beside.exists() => beside,
        _ => given.to_path_buf(),
    };
    let bad = |what: String| CliError::input(format!("{file}: vehicle.{what}"));
    can::Bitrate::new(v.bitrate_bps).map_err(|e| bad(format!("bitrate_bps: {e}")))?;
    let messages = can::dbc::load(&path).map_err(|e| bad(format!("dbc: {e}")))?;
    if !can::ego::EgoDecoder::new(&messages).complete() {
        return Err(bad(format!(
            "dbc: {}: no WheelSpeedRL/WheelSpeedRR or YawRate signal to take the ego-motion from",
            path.display()
        )));
    }
    let text = std::fs::read(&path).map_err(|e| bad(format!("dbc: {}: {e}", path.display())))?;
    let run = spec::VehicleRun {
        bitrate_bps: v.bitrate_bps,
        seed: scenario.seed(),
        replay_start_ns: None,
        lidar_mount: None,
    };
    Ok((Some(run), Some(String::from_utf8_lossy(&text).into_owned()), deskew != Some(OnOff::Off)))
}

/// Runs `epochfuse drive`.
///
/// # Errors
/// Exit 2 for a bad scenario or option; 1 if an invariant broke; 3 if a role failed.
pub fn drive(args: &DriveArgs) -> Result<Summary, CliError> {
    let (scenario, text) = match &args.scenario {
        Some(path) => {
            spare_input(&absolute(path), &args.pipeline)?;
            let s = Scenario::load(path).map_err(|e| CliError::input(e.to_string()))?;
            let text = std::fs::read_to_string(path)
                .map_err(|e| CliError::input(format!("{}: {e}", path.display())))?;
            (s, text)
        }
        None => (Scenario::builtin_default(), sensor_sim::scenario::DEFAULT_RON.to_string()),
    };
    let duration_s = args.duration.unwrap_or_else(|| scenario.duration_s());
    if !(duration_s.is_finite() && duration_s > 0.0 && duration_s <= 24.0 * 3600.0) {
        return Err(CliError::input(format!(
            "--duration: {duration_s} is not a number of seconds in (0, 86400]"
        )));
    }
    let (out, summary_path) = prepare_out(&args.pipeline)?;
    let mut spec = base_spec(&args.pipeline, SourceSpec::Sim, duration_s, out)?;
    spec.per_pair = args.per_pair;
    (spec.camera_hz, spec.lidar_hz) = (scenario.camera().rate_hz, scenario.lidar().rate_hz);
    spec.epochs = scenario.calibration_schedule();
    spec.delivery = roles::calib_role::delivery_plan(&scenario);
    let (vehicle, vehicle_dbc, deskew) =
        vehicle_bus(&scenario, args.scenario.as_deref(), args.pipeline.deskew)?;
    (spec.vehicle, spec.deskew) = (vehicle, deskew);
    let can_bytes = can_room(vehicle_dbc.is_some());
    let kills = scenario
        .faults()
        .iter()
        .filter_map(|f| match *f {
            // The scenario's validation admits only the roles a drive runs.
            Fault::Kill { role, at_s, restart } => {
                Some(PlannedKill { role, at: Duration::from_secs_f64(at_s), restart })
            }
            _ => None,
        })
        .filter(|k| k.at.as_secs_f64() < duration_s)
        .collect();
    let lidar_hz = spec.lidar_hz;
    let (cameras, lidars) = rig_sensors(&scenario, &args.pipeline, &mut spec)?;
    let (camera_capacity, lidar_capacity) = (cameras[0], lidars[0]);
    let expected_lidar_frames = (duration_s * lidar_hz).ceil() as u64;
    spec.zenoh = crate::remote::publish_spec(
        &args.pipeline,
        (camera_capacity, lidar_capacity),
        expected_lidar_frames,
        &spec.epochs,
    )?;
    let mut run_files = vec![(spec::SCENARIO_FILE, text.into_bytes())];
    run_files.extend(vehicle_dbc.map(|dbc| (spec::VEHICLE_DBC_FILE, dbc.into_bytes())));
    let cfg = Supervise {
        spec,
        root: shared::rundir::resolve_root(args.pipeline.local.shm_root.as_deref()),
        run_files,
        kills,
        quiet: args.pipeline.local.quiet,
        summary_path,
        expected_lidar_frames,
        lidar_period_s: 1.0 / lidar_hz,
        shm_bytes: rig_shm_bytes(&cameras, &lidars)? + can_bytes,
    };
    supervisor::supervise(cfg)
}

/// The drive's sensors into the spec (one producer and one segment each); their frame
/// sizes (cameras, lidars), the primary first. A rig of several sensors is refused with the
/// options that handle one camera and one lidar only.
fn rig_sensors(
    scenario: &Scenario,
    args: &PipelineArgs,
    spec: &mut RunSpec,
) -> Result<(Vec<usize>, Vec<usize>), CliError> {
    if scenario.is_multi_sensor() {
        refuse_for_rig(args, "the scenario")?;
    }
    let mut cameras = Vec::new();
    for (name, c) in scenario.cameras() {
        cameras.push(shared::frames::ImageHeader::rgb8_labelled(c.width, c.height).payload_len());
        spec.sensors.push(spec::SensorRun { name, kind: shared::StreamKind::Camera, rate_hz: c.rate_hz });
    }
    let mut lidars = Vec::new();
    for (name, l) in scenario.lidars() {
        lidars.push(l.beams as usize * l.azimuth_steps as usize * shared::frames::POINT_RECORD_SIZE);
        spec.sensors.push(spec::SensorRun { name, kind: shared::StreamKind::Lidar, rate_hz: l.rate_hz });
    }
    Ok((cameras, lidars))
}

/// Exit 2 if an option that handles one camera and one lidar only (`--zenoh`; `--record`
/// writes every sensor) is given for a rig (`what`: the scenario or the log).
fn refuse_for_rig(args: &PipelineArgs, what: &str) -> Result<(), CliError> {
    match args.zenoh.is_some() {
        true => Err(CliError::input(format!(
            "--zenoh: {what} has several cameras or lidars; --zenoh handles one camera and one lidar"
        ))),
        false => Ok(()),
    }
}

/// A log with several cameras (or a bag's cameras chosen with `--cameras`, named by their
/// topics): its sensors into the spec (the replayer writes one ring each) and the bytes of
/// their segments. `None` for a log of `camera` and `lidar`, whose spec stays as it always
/// was.
fn replay_rig(
    log: &logs::OpenedLog,
    args: &PipelineArgs,
    spec: &mut RunSpec,
) -> Result<Option<u64>, CliError> {
    let sensors = log.source().sensors();
    let names: Vec<&str> = sensors.iter().map(|s| s.name.as_str()).collect();
    if names == ["camera", "lidar"] {
        return Ok(None);
    }
    refuse_for_rig(args, "the log")?;
    let (mut cameras, mut lidars) = (Vec::new(), Vec::new());
    for s in sensors {
        let sizes = if s.kind == shared::StreamKind::Camera { &mut cameras } else { &mut lidars };
        sizes.push(s.max_payload_len);
        spec.sensors.push(spec::SensorRun { name: s.name, kind: s.kind, rate_hz: spec.rate_hz(s.kind) });
    }
    rig_shm_bytes(&cameras, &lidars).map(Some)
}

/// What a rig's segments need, or exit 2 for frames no segment can hold.
fn rig_shm_bytes(cameras: &[usize], lidars: &[usize]) -> Result<u64, CliError> {
    segments::rig_bytes(cameras, lidars)
        .ok_or_else(|| CliError::input("the rig's frames do not fit its segments".to_string()))
}

/// Frames per second of a log stream with `period_s` between frames; a degenerate period
/// (one frame, equal stamps) counts as KITTI's 10 Hz.
fn rate_of_period(period_s: f64) -> f64 {
    if period_s.is_finite() && period_s > 0.0 {
        1.0 / period_s
    } else {
        10.0
    }
}

/// What the run's segments need, or exit 2 for frames no segment can hold.
fn shm_bytes(camera_capacity: usize, lidar_capacity: usize) -> Result<u64, CliError> {
    segments::run_bytes(camera_capacity, lidar_capacity).ok_or_else(|| {
        CliError::input(format!(
            "frames of {camera_capacity} (camera) and {lidar_capacity} (lidar) bytes do not fit a segment"
        ))
    })
}

/// Bytes of the CAN ring, in runs with a vehicle bus.
fn can_room(bus: bool) -> u64 {
    if bus {
        segments::can().file_size().unwrap_or(0)
    } else {
        0
    }
}

/// Refuses an output (`--record`, `--out`, `--summary`) that is `input` or lies inside it,
/// through any link: a run must not write into its input (`--record` onto the bag it
/// replays truncated the bag while it was being read; `--summary` onto a scenario would
/// replace it).
fn spare_input(input: &Path, args: &PipelineArgs) -> Result<(), CliError> {
    let Ok(input_at) = std::fs::canonicalize(input) else { return Ok(()) };
    let (out, summary) = out_paths(args);
    let record = args.record.as_deref().map(absolute);
    for (option, path) in
        [("--record", record.as_deref()), ("--out", Some(&*out)), ("--summary", Some(&*summary))]
    {
        let Some(path) = path else { continue };
        // Where it resolves to: its nearest existing ancestor, resolved, with the rest on top.
        let at = path.ancestors().find_map(|a| {
            let rest = path.strip_prefix(a).ok()?;
            std::fs::canonicalize(a).ok().map(|a| a.join(rest))
        });
        if at.is_some_and(|at| at.starts_with(&input_at)) {
            return Err(CliError::input(format!(
                "{option}: {} is, or is inside, this run's input {}: a run must not write into its input",
                path.display(),
                input.display()
            )));
        }
    }
    Ok(())
}

/// Runs `epochfuse replay`.
///
/// # Errors
/// Exit 2 for a bad log or option; 1 if an invariant broke; 3 if a role failed.
pub fn replay(args: &ReplayArgs) -> Result<Summary, CliError> {
    if !(args.rate.is_finite() && args.rate > 0.0) {
        return Err(CliError::input(format!("--rate: {} is not a positive speed", args.rate)));
    }
    let source = SourceSpec::Replay {
        path: absolute(&args.source),
        lidar_topic: args.lidar_topic.clone(),
        camera_topic: args.camera_topic.clone(),
        cameras: args.cameras.clone(),
    };
    spare_input(&absolute(&args.source), &args.pipeline)?;
    let (out, summary_path) = prepare_out(&args.pipeline)?;
    let mut spec = base_spec(&args.pipeline, source, 0.0, out)?;
    spec.rate = args.rate;
    // Open the log here first: bad input is reported before any process starts.
    let log = roles::replayer::open_source(&spec)?;
    let bus = roles::vehicle::replayed_bus(&mut spec, &log, args.pipeline.deskew)?;
    spec.duration_s = log.duration_s();
    // Indexed once, here: the calib role announces these instead of re-reading the log.
    spec.epochs = log.epochs_on_pipeline_clock();
    // The log's real rates (a lone sweep or frame falls back to the camera's nominal period).
    spec.lidar_hz = rate_of_period(log.lidar_period_s());
    spec.camera_hz = rate_of_period(log.source().camera_period().as_secs_f64());
    let capacities =
        (log.max_payload_len(shared::StreamKind::Camera), log.max_payload_len(shared::StreamKind::Lidar));
    let rig_bytes = replay_rig(&log, &args.pipeline, &mut spec)?;
    spec.zenoh = crate::remote::publish_spec(&args.pipeline, capacities, log.lidar_frames(), &spec.epochs)?;
    // Read once, here: the replayer opens the bag with this index, the vehicle role sends
    // these CAN frames.
    let index = log.source().save_index().map_err(|e| CliError::input(e.to_string()))?;
    let index = index.filter(|b| b.len() as u64 <= roles::replayer::MAX_LOG_INDEX_BYTES);
    let has_bus = bus.is_some();
    let mut run_files: Vec<(&'static str, Vec<u8>)> =
        index.map(|bytes| (spec::LOG_INDEX_FILE, bytes)).into_iter().collect();
    if let Some(bus) = bus {
        run_files.push((spec::VEHICLE_DBC_FILE, bus.dbc.into_bytes()));
        run_files.push((spec::CAN_FRAMES_FILE, logs::can::save_frames(&bus.frames)));
    }
    let cfg = Supervise {
        spec,
        root: shared::rundir::resolve_root(args.pipeline.local.shm_root.as_deref()),
        run_files,
        kills: Vec::new(),
        quiet: args.pipeline.local.quiet,
        summary_path,
        expected_lidar_frames: log.lidar_frames(),
        lidar_period_s: log.lidar_period_s(),
        shm_bytes: rig_bytes.map_or_else(|| shm_bytes(capacities.0, capacities.1), Ok)? + can_room(has_bus),
    };
    supervisor::supervise(cfg)
}

/// One line for the terminal after a run.
#[must_use]
pub fn human_summary(s: &Summary, summary_path: &Path) -> String {
    let lidar_read: u64 = s
        .streams
        .values()
        .filter(|v| v.kind == shared::StreamKind::Lidar)
        .map(|v| v.counters.frames_read)
        .sum();
    // Each camera's engine sees every sweep: with several cameras a sweep can be fused
    // once per camera.
    let cameras = s.streams.values().filter(|v| v.kind == shared::StreamKind::Camera).count().max(1) as u64;
    let (chances, what) =
        if cameras > 1 { (lidar_read * cameras, "sweep-camera pairs") } else { (lidar_read, "sweeps") };
    let epochs = s.calibration.epochs.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
    let cons = match (s.consistency.mean, s.consistency.min) {
        (Some(m), Some(n)) => format!("consistency mean {m:.3} min {n:.3} · "),
        _ => String::new(),
    };
    format!(
        "fused {} of {} {what} ({:.1}%) · epochs {} · fused across epochs {} · rejected {} · dropped (no calibration) {} · {}latency p50 {:.1} ms p99 {:.1} ms · {:.2}× real time · crashes {} restarts {}\nsummary: {}",
        s.pairs.fused,
        chances,
        100.0 * s.pairs.fused as f64 / chances.max(1) as f64,
        if epochs.is_empty() { "-".into() } else { epochs },
        s.pairs.fused_epoch_mismatch,
        s.pairs.rejected_epoch_mismatch,
        s.pairs.dropped_no_calibration,
        cons,
        s.latency_ms.p50,
        s.latency_ms.p99,
        s.realtime_factor,
        s.faults.crashes,
        s.faults.restarts,
        summary_path.display()
    )
}
