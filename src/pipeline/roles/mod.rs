//! The role processes of a pipeline. Each is `epochfuse role NAME --run DIR`, spawned by the
//! supervisor; each reads `<run dir>/pipeline.json`, prints `ready` on stdout once it is set
//! up, and stops cleanly on SIGTERM (or when its parent dies).

pub mod bridge;
pub mod calib_role;
pub mod fusion_lane;
pub mod fusion_role;
pub mod fusion_state;
pub mod producer;
pub mod recorder;
pub mod replayer;
pub mod stop_waker;
pub mod surround;
pub mod vehicle;

use std::path::Path;
use std::time::{Duration, Instant};

use calib::StopFlag;
use shared::ring::{BackPressure, RingReader, RingWriter};
use shared::segment::AttachError;
use shared::{Role, StreamKind};

use crate::error::CliError;

/// Runs one role.
///
/// # Errors
/// The role's one-line error.
pub fn run(role: Role, run: &Path, sensor: Option<&calib::SensorName>) -> Result<(), CliError> {
    die_with_supervisor();
    // Sandboxed before anything reads an input or starts a thread.
    super::sandbox::enter(role, &super::spec::RunSpec::load(run)?, run)?;
    match role {
        Role::Calib => calib_role::run(run),
        Role::Camera => producer::run(run, StreamKind::Camera, sensor),
        Role::Lidar => producer::run(run, StreamKind::Lidar, sensor),
        Role::Fusion => fusion_role::run(run),
        Role::Replayer => replayer::run(run),
        Role::Recorder => recorder::run(run),
        Role::Vehicle => vehicle::run(run),
        Role::Bridge => bridge::run(run),
        Role::Monitor => Err(CliError::input("role monitor: a monitor is not a process of a run")),
    }
}

/// The environment variable in which the supervisor passes its pid to the roles it spawns.
pub const SUPERVISOR_PID_ENV: &str = "EPOCHFUSE_SUPERVISOR_PID";

/// If the supervisor dies, so do we: a pipeline never outlives its supervisor. The
/// parent-death signal is armed only from now on, so a supervisor that died between our
/// `fork` and this call sent nothing: then our parent is no longer the pid it passed us
/// (we were re-parented), and we exit at once, quietly (nobody is left to hear).
fn die_with_supervisor() {
    let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::TERM));
    let expected = std::env::var(SUPERVISOR_PID_ENV).ok().and_then(|v| v.parse::<i32>().ok());
    if let Some(expected) = expected {
        let parent = rustix::process::getppid().map(rustix::process::Pid::as_raw_nonzero);
        if parent.map(std::num::NonZeroI32::get) != Some(expected) {
            std::process::exit(0);
        }
    }
}

/// The role's stop flag, raised by SIGTERM or SIGINT.
///
/// # Errors
/// Exit 3 if the handlers cannot be installed.
pub fn stop_flag() -> Result<StopFlag, CliError> {
    let stop = StopFlag::new();
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, stop.as_arc())
            .map_err(|e| CliError::internal(format!("signal handler: {e}")))?;
    }
    Ok(stop)
}

/// Tells the supervisor this role is set up, and waits for the start: the supervisor
/// answers every role with `go <t0>` once all of them are ready (at once for a restarted
/// role), `t0` being the pipeline clock's origin on CLOCK_MONOTONIC. Frames are timed from
/// it, so no role's start-up delay shows up as latency.
///
/// # Errors
/// Exit 3 if the supervisor closes stdin or sends something else.
pub fn ready() -> Result<calib::clock::PipelineClock, CliError> {
    use std::io::{BufRead as _, Write as _};
    let mut out = std::io::stdout();
    let _ = writeln!(out, "{}", super::sandbox::ready_line());
    let _ = out.flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| CliError::internal(format!("waiting for the start: {e}")))?;
    line.trim()
        .strip_prefix("go ")
        .and_then(|t| t.parse().ok())
        .map(calib::clock::PipelineClock::from_t0_ns)
        .ok_or_else(|| {
            CliError::internal(format!("expected `go <t0>` from the supervisor, got {:?}", line.trim()))
        })
}

/// The longest a role's waiting thread that nothing wakes for the stop (the vehicle role's
/// CAN reader, a calibration listener without its socket) sleeps before it looks at its
/// stop flag again: how late such a role can end after the supervisor stops it. A wait for a
/// frame still ends at once on its commit, but a stream slower than this (a 10 Hz lidar)
/// costs a wake-up or two per frame, so fusion's ring readers are woken by the stop instead
/// ([`stop_waker`]).
pub const STOP_NOTICE: Duration = Duration::from_millis(50);

/// How long readers may make no progress before a producer at `--max-rate` stops waiting
/// for them (a dead or scribbled reader costs back-pressure, never a hang).
pub const BACK_PRESSURE_STALL: Duration = Duration::from_secs(10);

/// Back-pressure for runs at `--max-rate`: waits until the ring's `readers` readers have
/// between them read (or lost) all but `margin` of the frames written, so a producer that
/// outruns its readers waits instead of lapping them. Real-time runs never wait: there, a
/// slow reader is lapped and the overrun is counted. Readers that stall, or whose counters
/// are scribbled, are reported once (`warned`) and then no longer waited for.
pub fn wait_for_readers(writer: &RingWriter, readers: u64, margin: u64, stop: &StopFlag, warned: &mut bool) {
    if *warned {
        return;
    }
    let why = match writer.wait_for_readers(readers, margin, BACK_PRESSURE_STALL, stop) {
        BackPressure::CaughtUp | BackPressure::Stopped => return,
        BackPressure::Stalled => format!("readers made no progress for {BACK_PRESSURE_STALL:?}"),
        BackPressure::Invalid => {
            "reader counters beyond the frames written or going backwards (scribbled)".into()
        }
    };
    tracing::warn!("{}: {why}; going on without back-pressure", writer.path().display());
    *warned = true;
}

/// Attaches to a ring that its producer may not have created yet, until `stop` is raised or
/// `timeout` passes.
///
/// # Errors
/// The attach error once the time is up, or an error that waiting cannot fix.
pub fn attach_when_ready(
    path: &Path,
    kind: StreamKind,
    stop: &StopFlag,
    timeout: Duration,
) -> Result<Option<RingReader>, AttachError> {
    let deadline = Instant::now() + timeout;
    loop {
        match RingReader::attach(path, kind) {
            Ok(r) => return Ok(Some(r)),
            Err(AttachError::NotFound | AttachError::NotInitialized) if Instant::now() < deadline => {
                if stop.is_raised() {
                    return Ok(None);
                }
                // Startup only: the producer has not created its segment yet.
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(e),
        }
    }
}
