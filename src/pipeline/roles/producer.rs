//! The camera and lidar roles: render the scenario's frames at their capture times, straight
//! into a loaned ring slot, tagged with the newest epoch the calibration service announced
//! whose `valid_from` ≤ the capture time.
//!
//! The sensor is moved physically at each epoch's `valid_from` (the renderer uses the
//! scenario's rig in force at the capture time), so the tag can be checked against the
//! truth: a mismatch is counted in the ring's scoreboard (`PRODUCER_MISTAGGED`) and logged.
//!
//! A restarted producer takes its ring over and resumes: in real time at the next frame
//! after now, at `--max-rate` after the last frame it committed.

use std::path::Path;
use std::time::Duration;

use calib::{CalibFollower, StopFlag};
use sensor_sim::scenario::{frame_time, Scenario};
use sensor_sim::{CameraRenderer, LidarRenderer};
use shared::ring::{FrameMeta, ReadOutcome, RingReader, RingWriter, WriterStart};
use shared::scoreboard::ProducerScoreboard;
use shared::{rundir, FrameSeq, Role, StreamKind, TimestampNs};

use super::{ready, stop_flag};
use crate::error::CliError;
use crate::pipeline::spec::{RunSpec, SCENARIO_FILE};

use crate::pipeline::segments::PRODUCER_SLOTS;

enum Renderer {
    Camera(Box<CameraRenderer>),
    Lidar(Box<LidarRenderer>),
}

impl Renderer {
    fn capacity(&self) -> usize {
        match self {
            Self::Camera(c) => c.payload_len(),
            Self::Lidar(l) => l.max_payload_len(),
        }
    }

    /// Renders one throw-away frame before the role says `ready`: the scene setup, the
    /// render threads and every scratch buffer are paid for here, not by the first frames
    /// of the run (which would otherwise be late and miss their partners).
    fn warm_up(&mut self) {
        let mut scratch = Vec::with_capacity(self.capacity());
        let t = TimestampNs(0);
        let warmed = match self {
            Self::Camera(c) => c.render(t, &mut scratch).map(drop),
            Self::Lidar(l) => l.render(t, 0, &mut scratch).map(drop),
        };
        if let Err(e) = warmed {
            tracing::warn!("warm-up frame: {e}");
        }
    }
}

/// The frame index to resume at after a takeover.
fn resume_index(path: &Path, kind: StreamKind, rate_hz: f64, live_now: Option<TimestampNs>) -> u64 {
    if let Some(now) = live_now {
        return (now.0 as f64 * rate_hz / 1e9).ceil() as u64;
    }
    let Ok(r) = RingReader::attach(path, kind) else { return 0 };
    let last = FrameSeq(r.cursor().0.wrapping_sub(1));
    let mut buf = Vec::new();
    match r.read_at(last, &mut buf) {
        ReadOutcome::Frame(info) => (info.capture.0 as f64 * rate_hz / 1e9).round() as u64 + 1,
        _ => 0,
    }
}

/// Runs the producer of sensor `sensor` (default: the kind's primary sensor) of the run's
/// spec: its scenario view renders with that sensor's configuration and mounts.
///
/// # Errors
/// Exit 2 if the scenario is bad; exit 3 if the ring cannot be created or the run has no
/// such sensor.
pub fn run(run: &Path, kind: StreamKind, sensor: Option<&calib::SensorName>) -> Result<(), CliError> {
    let spec = RunSpec::load(run)?;
    let stop = stop_flag()?;
    let primary = spec.sensors_of(kind).into_iter().next();
    let sensor = match sensor {
        Some(name) => spec.sensor(name.as_str())?,
        None => primary.ok_or_else(|| CliError::internal(format!("the run has no {kind}")))?,
    };
    let scenario = Scenario::load(&run.join(SCENARIO_FILE)).map_err(|e| CliError::input(e.to_string()))?;
    let scenario = scenario
        .for_sensor(sensor.name.as_str())
        .ok_or_else(|| CliError::internal(format!("the scenario has no sensor named {}", sensor.name)))?;
    let rate_hz = sensor.rate_hz;
    let (mut renderer, role) = match kind {
        StreamKind::Camera => (Renderer::Camera(Box::new(CameraRenderer::new(&scenario))), Role::Camera),
        _ => (Renderer::Lidar(Box::new(LidarRenderer::new(&scenario))), Role::Lidar),
    };
    let path = run.join(crate::pipeline::segments::sensor_file(&sensor.name));
    let ring_spec = crate::pipeline::segments::producer(kind, renderer.capacity());
    let (mut writer, start) = RingWriter::create_or_takeover(&path, &ring_spec)
        .map_err(|e| CliError::internal(format!("{}: {e}", path.display())))?;
    let mut calib = CalibFollower::connect(run, role, Duration::from_secs(10), Some(&stop))
        .map_err(|e| CliError::internal(e.to_string()))?;
    renderer.warm_up();
    let clock = ready()?;
    let mut k = match start {
        WriterStart::Created => 0,
        WriterStart::TookOver { incarnation, repaired } => {
            let k = resume_index(&path, kind, rate_hz, (!spec.max_rate).then(|| clock.now()));
            tracing::info!(?incarnation, repaired, resume_at = k, "took over the {kind} ring");
            k
        }
    };

    let readers = spec.sensor_ring_readers(kind);
    let mut stalled = false;
    let mut other: Option<RingReader> = None;
    let duration = TimestampNs((spec.duration_s * 1e9) as u64);
    let period = Duration::from_secs_f64(1.0 / rate_hz);
    let mut board = ProducerScoreboard::read(&writer);
    while !stop.is_raised() {
        let t = frame_time(k, rate_hz);
        if t >= duration {
            break;
        }
        if !spec.max_rate && !clock.pace(t, &stop) {
            break;
        }
        if spec.max_rate {
            super::wait_for_readers(&writer, readers, u64::from(PRODUCER_SLOTS) - 2, &stop, &mut stalled);
            keep_in_step(run, kind, t, &mut other, &stop);
        }
        calib.poll();
        if !calib.epoch_for(t).is_some() {
            // Nothing announced yet for this time (the very first frame): the service
            // announces ahead of valid_from, so it is on its way.
            calib.wait(Duration::from_secs(2));
        }
        let epoch = calib.epoch_for(t);
        let mut loan = writer.loan();
        let truth = match &mut renderer {
            Renderer::Camera(c) => c.render(t, &mut loan).map(|f| f.epoch),
            Renderer::Lidar(l) => l.render(t, k, &mut loan).map(|s| s.epoch),
        }
        .map_err(|e| CliError::internal(format!("{kind} frame {k}: {e}")))?;
        loan.commit(FrameMeta { capture: t, epoch });
        if truth != epoch {
            board.mistagged += 1;
            tracing::warn!(
                frame = k,
                tagged = epoch.0,
                truth = truth.0,
                "frame tagged with another epoch than the sensor's"
            );
        }
        if !spec.max_rate && clock.now().0 > t.0 + period.as_nanos() as u64 {
            board.late += 1;
        }
        (board.epoch, board.sim_time) = (epoch, t);
        board.store(&writer);
        k += 1;
    }
    if !stop.is_raised() {
        board.sim_time = ProducerScoreboard::DONE;
        board.store(&writer);
    }
    Ok(())
}

/// How far ahead of the other sensor a producer at `--max-rate` may run, in simulated
/// time. Fusion holds a bounded number of frames: a camera that raced seconds ahead of
/// the lidar would see its frames evicted before their sweeps arrived.
const STEP_SLACK_NS: u64 = 150_000_000;

/// At `--max-rate`, waits until the other producer's newest frame is within
/// [`STEP_SLACK_NS`] of capture time `t`, unless that producer is gone or done.
fn keep_in_step(
    run: &Path,
    kind: StreamKind,
    t: TimestampNs,
    other: &mut Option<RingReader>,
    stop: &StopFlag,
) {
    let other_kind = if kind == StreamKind::Camera { StreamKind::Lidar } else { StreamKind::Camera };
    if other.is_none() {
        *other = RingReader::attach(&run.join(rundir::segment_file(other_kind)), other_kind).ok();
    }
    let Some(o) = other.as_ref() else { return };
    let mut checks = 0u32;
    loop {
        let theirs = ProducerScoreboard::of(&o.scoreboard()).sim_time;
        if theirs.0.saturating_add(STEP_SLACK_NS) >= t.0 || stop.is_raised() {
            return;
        }
        // Liveness is a system call: look now and then, not on every check.
        checks += 1;
        if checks.is_multiple_of(256) && !o.writer_alive() {
            return;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}
