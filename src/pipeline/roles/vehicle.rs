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
use fusion::deskew::{deskew, EgoMotion};
use parking_lot::Mutex;
use sensor_sim::scenario::Scenario;
use sensor_sim::trajectory::Trajectory;
use shared::frames::PayloadSink as _;
use shared::ring::{FrameMeta, ReadOutcome, RingReader, RingWriter};
use shared::scoreboard::{CanScoreboard, ProducerScoreboard};
use shared::{rundir, CalibEpoch, StreamKind, TimestampNs};

use super::{attach_when_ready, ready, stop_flag};
use crate::error::CliError;
use crate::pipeline::segments;
use crate::pipeline::spec::{RunSpec, SCENARIO_FILE, VEHICLE_DBC_FILE, VEHICLE_RESULT_FILE};

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

/// Runs the vehicle role.
///
/// # Errors
/// Exit 2 if the scenario or DBC is bad; exit 3 if the ring cannot be created.
pub fn run(run: &Path) -> Result<(), CliError> {
    let spec = RunSpec::load(run)?;
    let stop = stop_flag()?;
    let scenario = Scenario::load(&run.join(SCENARIO_FILE)).map_err(|e| CliError::input(e.to_string()))?;
    let vehicle = spec.vehicle.clone().ok_or_else(|| CliError::internal("role vehicle: the run has no bus"))?;
    let bitrate = can::Bitrate::new(vehicle.bitrate_bps).map_err(CliError::input)?;
    let mut bus = VehicleBus::new(messages(run)?, bitrate, vehicle.seed);
    let path = run.join(rundir::segment_file(StreamKind::Can));
    let (mut writer, _) = RingWriter::create_or_takeover(&path, &segments::can())
        .map_err(|e| CliError::internal(format!("{}: {e}", path.display())))?;
    let trajectory = Arc::clone(scenario.trajectory());
    let clock = ready()?;
    let duration_ns = (spec.duration_s * 1e9) as u64;
    let readers = u64::from(spec.deskew);
    let margin = u64::from(segments::CAN_SLOTS) / 2;
    let (mut lidar, mut stalled, mut bus_ns) = (None, false, 0u64);
    while bus_ns < duration_ns && !stop.is_raised() {
        bus_ns = if spec.max_rate {
            lidar_time(run, &mut lidar).saturating_add(AHEAD_NS)
        } else {
            std::thread::sleep(STEP);
            clock.now().0
        }
        .min(duration_ns);
        bus.run_until(bus_ns, |t| ego_at(&trajectory, t), |r| {
            if spec.max_rate && readers > 0 {
                super::wait_for_readers(&writer, readers, margin, &stop, &mut stalled);
            }
            let mut loan = writer.loan();
            // A record always fits its slot (the segment is made for it).
            let _ = loan.push(&r.to_bytes());
            loan.commit(FrameMeta { capture: TimestampNs(r.done_ns), epoch: CalibEpoch::NONE });
        });
        publish(&bus, &writer);
        if spec.max_rate && bus_ns < duration_ns {
            std::thread::sleep(Duration::from_micros(500));
        }
    }
    let path = run.join(VEHICLE_RESULT_FILE);
    let text = serde_json::to_vec(&bus.summary()).map_err(|e| CliError::internal(e.to_string()))?;
    crate::pipeline::spec::write_private(&path, &text)
        .map_err(|e| CliError::internal(format!("{}: {e}", path.display())))
}

/// The lidar producer's newest capture time (0 until its ring is there).
fn lidar_time(run: &Path, lidar: &mut Option<RingReader>) -> u64 {
    if lidar.is_none() {
        let kind = StreamKind::Lidar;
        *lidar = RingReader::attach(&run.join(rundir::segment_file(kind)), kind).ok();
    }
    lidar.as_ref().map_or(0, |r| ProducerScoreboard::of(&r.scoreboard()).sim_time.0)
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
    engine.set_deskew(move |t, calib, points| {
        deskew(&seen.lock(), &calib.lidar_to_vehicle, t, period_ns, points);
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
                    reader.wait(Duration::from_millis(50));
                }
                ReadOutcome::Invalid(shared::ring::InvalidFrame::SegmentTruncated) => return,
                _ => {}
            }
        }
    })))
}
