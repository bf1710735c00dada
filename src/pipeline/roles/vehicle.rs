//! The vehicle role: the ego car's ECUs on its CAN bus. It runs the simulated bus
//! (`can::vehicle`) on the pipeline clock, each frame carrying the car's motion from the
//! scenario's trajectory, and writes every delivered frame (with its release and delivery
//! times) into the CAN ring: one small record per slot, the transport that wins for small
//! messages (docs/benchmarks.md). At the end it writes the bus's summary (`can` in the run
//! summary); the ring's aux words carry the bus load and the worst response for `top`.
//!
//! Fusion's side is here too ([`feed_deskew`]): a reader thread that decodes speed and yaw
//! rate from the ring into the ego-motion fusion deskews sweeps with.

use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use calib::StopFlag;
use can::ego::{EgoDecoder, EgoReading, EgoState};
use can::record::CanRecord;
use can::vehicle::VehicleBus;
use fusion::deskew::{EgoMotion, SweepDeskew};
use nalgebra::{Isometry3, Translation3, UnitQuaternion};
use parking_lot::Mutex;
use sensor_sim::scenario::Scenario;
use sensor_sim::trajectory::Trajectory;
use shared::frames::PayloadSink as _;
use shared::ring::{FrameMeta, ReadOutcome, RingReader, RingWriter};
use shared::scoreboard::{CanScoreboard, ProducerScoreboard};
use shared::{rundir, CalibEpoch, StreamKind, TimestampNs};

use super::{attach_when_ready, ready, stop_flag, STOP_NOTICE};
use crate::cli::OnOff;
use crate::error::CliError;
use crate::pipeline::segments;
use crate::pipeline::spec::{
    RunSpec, SourceSpec, VehicleRun, CAN_FRAMES_FILE, SCENARIO_FILE, VEHICLE_DBC_FILE, VEHICLE_RESULT_FILE,
};

/// Bus time simulated per step in real time.
const STEP: Duration = Duration::from_millis(2);
/// At `--max-rate`, how far the bus may run ahead of the lidar's newest sweep (its sweep
/// and the next one are covered when fusion deskews it).
const AHEAD_NS: u64 = 300_000_000;

/// The bus's messages from the run directory's copy of the DBC.
fn messages(run: &Path) -> Result<Vec<can::Message>, CliError> {
    can::dbc::load(&run.join(VEHICLE_DBC_FILE)).map_err(|e| CliError::input(e.to_string()))
}

/// The car's state at pipeline time `t_ns`: the trajectory's speed, and its yaw rate as the
/// central difference of the heading over ±5 ms.
fn ego_at(trajectory: &Trajectory, t_ns: u64) -> EgoState {
    let (t, h) = (t_ns as f64 * 1e-9, 0.005);
    let d = trajectory.pose_at(t + h).heading - trajectory.pose_at((t - h).max(0.0)).heading;
    let d = (d + std::f64::consts::PI).rem_euclid(std::f64::consts::TAU) - std::f64::consts::PI;
    let span = if t >= h { 2.0 * h } else { t + h };
    EgoState::driving(trajectory.speed(), d / span)
}

/// Where the role's frames go: the CAN ring, with back-pressure at `--max-rate` when
/// someone reads it (fusion deskewing, the recorder).
struct CanOut {
    writer: RingWriter,
    readers: u64,
    max_rate: bool,
    stalled: bool,
}

impl CanOut {
    fn push(&mut self, r: &CanRecord, stop: &StopFlag) {
        if self.max_rate && self.readers > 0 {
            let margin = u64::from(segments::CAN_SLOTS) / 2;
            super::wait_for_readers(&self.writer, self.readers, margin, stop, &mut self.stalled);
        }
        let mut loan = self.writer.loan();
        // A record always fits its slot (the segment is made for it).
        let _ = loan.push(&r.to_bytes());
        loan.commit(FrameMeta { capture: TimestampNs(r.done_ns), epoch: CalibEpoch::NONE });
    }
}

/// Runs the vehicle role.
///
/// # Errors
/// Exit 2 if the scenario, DBC or log is bad; exit 3 if the ring cannot be created.
pub fn run(run: &Path) -> Result<(), CliError> {
    let spec = RunSpec::load(run)?;
    let stop = stop_flag()?;
    let vehicle =
        spec.vehicle.clone().ok_or_else(|| CliError::internal("role vehicle: the run has no bus"))?;
    let path = run.join(rundir::segment_file(StreamKind::Can));
    let (writer, _) = RingWriter::create_or_takeover(&path, &segments::can())
        .map_err(|e| CliError::internal(format!("{}: {e}", path.display())))?;
    let readers = u64::from(spec.deskew) + u64::from(spec.record.is_some());
    let mut out = CanOut { writer, readers, max_rate: spec.max_rate, stalled: false };
    match vehicle.replay_start_ns {
        Some(start) => replay(run, &spec, start, &stop, &mut out),
        None => simulate(run, &spec, &vehicle, &stop, &mut out),
    }
}

/// The simulated bus, on the pipeline clock (at `--max-rate`, a little ahead of the lidar).
fn simulate(
    run: &Path,
    spec: &RunSpec,
    vehicle: &VehicleRun,
    stop: &StopFlag,
    out: &mut CanOut,
) -> Result<(), CliError> {
    let scenario = Scenario::load(&run.join(SCENARIO_FILE)).map_err(|e| CliError::input(e.to_string()))?;
    let bitrate = can::Bitrate::new(vehicle.bitrate_bps).map_err(CliError::input)?;
    let mut bus = VehicleBus::new(messages(run)?, bitrate, vehicle.seed);
    let trajectory = Arc::clone(scenario.trajectory());
    let clock = ready()?;
    let duration_ns = (spec.duration_s * 1e9) as u64;
    let (mut lidar, mut bus_ns) = (None, 0u64);
    while bus_ns < duration_ns && !stop.is_raised() {
        bus_ns = if spec.max_rate {
            lidar_time(run, spec, &mut lidar).saturating_add(AHEAD_NS)
        } else {
            std::thread::sleep(STEP);
            clock.now().0
        }
        .min(duration_ns);
        bus.run_until(bus_ns, |t| ego_at(&trajectory, t), |r| out.push(r, stop));
        publish(&bus, &out.writer);
        if spec.max_rate && bus_ns < duration_ns {
            std::thread::sleep(Duration::from_micros(500));
        }
    }
    let path = run.join(VEHICLE_RESULT_FILE);
    let text = serde_json::to_vec(&bus.summary()).map_err(|e| CliError::internal(e.to_string()))?;
    crate::pipeline::spec::write_private(&path, &text)
        .map_err(|e| CliError::internal(format!("{}: {e}", path.display())))
}

/// The recorded bus: the log's frames again, at their delivery times (scaled by `--rate`;
/// at `--max-rate` a little ahead of the lidar).
fn replay(run: &Path, spec: &RunSpec, start: u64, stop: &StopFlag, out: &mut CanOut) -> Result<(), CliError> {
    let SourceSpec::Replay { .. } = &spec.source else {
        return Err(CliError::internal("role vehicle: a replayed bus in a drive"));
    };
    let frames = replayed_frames(run)?;
    let clock = ready()?;
    let mut lidar = None;
    for f in frames {
        let t = f.delivered.0.saturating_sub(start);
        if spec.max_rate {
            while lidar_time(run, spec, &mut lidar).saturating_add(AHEAD_NS) < t && !stop.is_raised() {
                std::thread::sleep(Duration::from_micros(500));
            }
        } else if !clock.pace(TimestampNs((t as f64 / spec.rate) as u64), stop) {
            break;
        }
        if stop.is_raised() {
            break;
        }
        let (id, sampled) = (can_id(f.id, f.extended), f.sampled.0.saturating_sub(start));
        let Some(id) = id else { continue };
        let r =
            CanRecord { id, dlc: f.dlc, data: f.data, nominal_ns: sampled, queued_ns: sampled, done_ns: t };
        out.push(&r, stop);
    }
    Ok(())
}

fn can_id(id: u32, extended: bool) -> Option<can::CanId> {
    if extended {
        can::CanId::extended(id)
    } else {
        can::CanId::standard(id)
    }
}

/// Pipeline time the lidar has reached: its sweeps written over its rate (0 until its ring
/// is there; the end of time once its producer is done).
fn lidar_time(run: &Path, spec: &RunSpec, lidar: &mut Option<RingReader>) -> u64 {
    if lidar.is_none() {
        let kind = StreamKind::Lidar;
        *lidar = RingReader::attach(&run.join(rundir::segment_file(kind)), kind).ok();
    }
    let Some(r) = lidar.as_ref() else { return 0 };
    let board = r.scoreboard();
    if ProducerScoreboard::of(&board).sim_time == ProducerScoreboard::DONE || !r.writer_alive() {
        return u64::MAX;
    }
    (board.frames_written as f64 / spec.lidar_hz * 1e9) as u64
}

/// The bus load and the worst response so far, into the ring's aux words.
fn publish(bus: &VehicleBus, writer: &RingWriter) {
    let s = bus.summary();
    let worst = s.worst();
    let worst_id = worst
        .and_then(|(k, _)| bus.messages().iter().find(|m| m.id.to_string() == k))
        .map_or(0, |m| u64::from(m.id.id) | (u64::from(m.id.extended) << 31));
    CanScoreboard {
        bus_load_ppm: (s.bus_load * 1e6) as u64,
        worst_response_ns: worst.map_or(0, |(_, us)| (us * 1e3) as u64),
        worst_id,
    }
    .store(writer);
}

/// Fusion's side of the bus: when the run deskews, a thread that reads the CAN ring into the
/// ego-motion, and the engine's deskew step over it. Returns the thread, to join once the
/// frame readers are done.
///
/// # Errors
/// Exit 2 if the run directory's DBC is bad.
pub fn feed_deskew(
    run: &Path,
    spec: &RunSpec,
    stop: &StopFlag,
    engine: &mut fusion::Engine<impl fusion::FusedSink>,
) -> Result<Option<JoinHandle<()>>, CliError> {
    if !spec.deskew || spec.vehicle.is_none() {
        return Ok(None);
    }
    let decoder = EgoDecoder::new(&messages(run)?);
    let ego = Arc::new(Mutex::new(EgoMotion::default()));
    let period_ns = (1e9 / spec.lidar_hz) as u64;
    let seen = Arc::clone(&ego);
    let mount = spec.vehicle.as_ref().and_then(|v| v.lidar_mount).map(|m| {
        let q = nalgebra::Quaternion::new(m[6], m[3], m[4], m[5]);
        Isometry3::from_parts(Translation3::new(m[0], m[1], m[2]), UnitQuaternion::from_quaternion(q))
    });
    engine.set_deskew(move |t, calib| {
        let own = calib.lidar_to_vehicle();
        SweepDeskew::new(&seen.lock(), mount.as_ref().unwrap_or(&own), t, period_ns)
    });
    let (path, stop) = (run.join(rundir::segment_file(StreamKind::Can)), stop.clone());
    Ok(Some(std::thread::spawn(move || {
        let Ok(Some(mut reader)) = attach_when_ready(&path, StreamKind::Can, &stop, Duration::from_secs(30))
        else {
            return;
        };
        reader.seek_oldest();
        let mut buf = Vec::new();
        loop {
            match reader.read_next(&mut buf) {
                ReadOutcome::Frame(_) => {
                    let Some(r) = CanRecord::from_bytes(&buf) else { continue };
                    match decoder.decode(r.id, &r.data) {
                        Some(EgoReading::Speed(v)) => ego.lock().push_speed(r.queued_ns, v),
                        Some(EgoReading::YawRate(w)) => ego.lock().push_yaw_rate(r.queued_ns, w),
                        None => {}
                    }
                }
                ReadOutcome::Empty if stop.is_raised() || !reader.writer_alive() => return,
                ReadOutcome::Empty => {
                    reader.wait(STOP_NOTICE);
                }
                ReadOutcome::Invalid(shared::ring::InvalidFrame::SegmentTruncated) => return,
                _ => {}
            }
        }
    })))
}

/// The largest saved CAN frames file read: the most frames `logs::can::read_can` accepts at
/// the door, 32 bytes each, and the magic.
const MAX_CAN_FRAMES_BYTES: u64 = 8 + 32 * logs::can::MAX_FRAMES as u64;

/// The frames of a replayed bus: those the door read and saved in the run directory
/// (`CAN_FRAMES_FILE`, always there when the run has a replayed bus), checked as they load.
fn replayed_frames(run: &Path) -> Result<Vec<logs::can::CanFrameMsg>, CliError> {
    let file = run.join(CAN_FRAMES_FILE);
    let bytes = shared::input::read_bounded(&file, MAX_CAN_FRAMES_BYTES)
        .map_err(|e| CliError::input(e.to_string()))?;
    let frames = logs::can::load_frames(&file, &bytes).map_err(|e| CliError::input(e.to_string()))?;
    tracing::info!(frames = frames.len(), "sending the bus's frames the door read");
    Ok(frames)
}

/// A replayed bag's bus, as the door read it: its DBC and its frames, for the run directory.
#[derive(Debug)]
pub struct ReplayedBus {
    /// The DBC text of the channel's metadata.
    pub dbc: String,
    /// The frames in delivery order.
    pub frames: Vec<logs::can::CanFrameMsg>,
}

/// A replay's bus, from the log's CAN channel (`/vehicle/can`), checked at the door: sets the
/// run's `vehicle` and `deskew` (on by default when the log has a bus) and returns the DBC
/// text and the frames for the run directory. `opened` is the log opened at the door: a bag
/// without a message on the channel is not read again.
///
/// # Errors
/// Exit 2 for an unreadable CAN channel or DBC, or `--deskew on` without a usable bus.
pub fn replayed_bus(
    spec: &mut RunSpec,
    opened: &logs::OpenedLog,
    deskew: Option<OnOff>,
) -> Result<Option<ReplayedBus>, CliError> {
    let (path, start) = (opened.source().path(), opened.source().start());
    let found = if opened.source().has_topic(logs::RecorderTopics::CAN) {
        logs::can::read_can(path).map_err(|e| CliError::input(e.to_string()))?
    } else {
        None
    };
    let usable = found.filter(|c| !c.frames.is_empty()).map(|c| {
        let file = format!(
            "{}: {} channel metadata {}",
            path.display(),
            logs::RecorderTopics::CAN,
            logs::can::DBC_KEY
        );
        let complete = can::dbc::parse(&c.dbc, &file).map(|m| EgoDecoder::new(&m).complete());
        let mount = c.lidar_mount.map(|m| {
            let (t, q) = (m.translation.vector, m.rotation.coords);
            [t.x, t.y, t.z, q.x, q.y, q.z, q.w]
        });
        (c.dbc, complete, mount, c.frames)
    });
    match (usable, deskew) {
        (Some((dbc, Ok(true), lidar_mount, frames)), _) => {
            let replay_start_ns = Some(start.0);
            spec.vehicle = Some(VehicleRun { bitrate_bps: 0, seed: 0, replay_start_ns, lidar_mount });
            spec.deskew = deskew != Some(OnOff::Off);
            Ok(Some(ReplayedBus { dbc, frames }))
        }
        (Some((_, Err(e), _, _)), _) => Err(CliError::input(e.to_string())),
        (_, Some(OnOff::On)) => Err(CliError::input(format!(
            "--deskew on: {} has no vehicle bus ({} frames with speed and yaw rate) to take the ego-motion from",
            path.display(),
            logs::RecorderTopics::CAN
        ))),
        _ => Ok(None),
    }
}

/// The recorder's side of the bus: the CAN ring's frames into the recording.
#[derive(Debug)]
pub struct CanRecording {
    reader: RingReader,
    dbc: String,
    buf: Vec<u8>,
}

impl CanRecording {
    /// Attaches to the run's CAN ring; `None` when the run has no bus.
    ///
    /// # Errors
    /// Exit 3 if the ring cannot be attached.
    pub fn attach(run: &Path, spec: &RunSpec, stop: &StopFlag) -> Result<Option<Self>, CliError> {
        if spec.vehicle.is_none() {
            return Ok(None);
        }
        let dbc = std::fs::read_to_string(run.join(VEHICLE_DBC_FILE)).unwrap_or_default();
        let path = run.join(rundir::segment_file(StreamKind::Can));
        let reader = attach_when_ready(&path, StreamKind::Can, stop, Duration::from_secs(30))
            .map_err(|e| CliError::internal(format!("{}: {e}", path.display())))?;
        Ok(reader.map(|mut reader| {
            reader.seek_oldest();
            Self { reader, dbc, buf: Vec::new() }
        }))
    }

    /// The CAN ring's reader (for a wait on it beside the sensors' rings).
    pub fn reader(&self) -> &RingReader {
        &self.reader
    }

    /// Records what the ring holds now (up to a ring's worth); whether anything was read.
    ///
    /// # Errors
    /// Exit 2 if the recording cannot be written.
    pub fn drain(&mut self, rec: &mut logs::McapRecorder) -> Result<bool, CliError> {
        let mut progress = false;
        for _ in 0..segments::CAN_SLOTS {
            match self.reader.read_next(&mut self.buf) {
                ReadOutcome::Frame(_) => {
                    progress = true;
                    let Some(r) = CanRecord::from_bytes(&self.buf) else { continue };
                    let msg = logs::can::CanFrameMsg {
                        sampled: TimestampNs(r.queued_ns),
                        delivered: TimestampNs(r.done_ns),
                        id: r.id.id,
                        extended: r.id.extended,
                        dlc: r.dlc,
                        data: r.data,
                    };
                    rec.write_can(&msg, &self.dbc).map_err(|e| CliError::input(e.to_string()))?;
                }
                ReadOutcome::Empty | ReadOutcome::Torn => break,
                _ => progress = true,
            }
        }
        Ok(progress)
    }
}
