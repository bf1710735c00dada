//! The recorder role: a second reader of every sensor ring (each camera and lidar of the
//! rig) that writes them, with every calibration epoch, to an MCAP file with ROS 2 schemas
//! (see `logs::McapRecorder` for the topics and how epochs are recorded).

use std::path::Path;
use std::time::Duration;

use calib::{CalibFollower, SensorName};
use logs::McapRecorder;
use shared::frames::{camera_image, lidar_points};
use shared::ring::{ReadOutcome, RingReader};
use shared::StreamKind;

use super::{attach_when_ready, ready, stop_flag};
use crate::error::CliError;
use crate::pipeline::segments;
use crate::pipeline::spec::RunSpec;

/// One sensor ring the recorder drains: its reader, its buffer, its kind and its index among
/// the recording's sensors of that kind.
struct Drained {
    reader: RingReader,
    buf: Vec<u8>,
    kind: StreamKind,
    index: usize,
}

/// Runs the recorder role.
///
/// # Errors
/// Exit 2 if the file cannot be written; exit 3 if the rings cannot be attached.
pub fn run(run: &Path) -> Result<(), CliError> {
    let spec = RunSpec::load(run)?;
    let stop = stop_flag()?;
    let Some(path) = spec.record.clone() else { return Ok(()) };
    let names = |kind| -> Vec<SensorName> { spec.sensors_of(kind).into_iter().map(|s| s.name).collect() };
    let mut rec = McapRecorder::create_rig(&path, &names(StreamKind::Camera), &names(StreamKind::Lidar))
        .map_err(|e| CliError::input(e.to_string()))?;
    ready()?;
    let mut rings = Vec::new();
    for s in spec.sensor_list() {
        let file = run.join(segments::sensor_file(&s.name));
        let reader = attach_when_ready(&file, s.kind, &stop, Duration::from_secs(30))
            .map_err(|e| CliError::internal(format!("{} ring: {e}", s.name)))?;
        let Some(mut reader) = reader else {
            return rec.finish().map_err(|e| CliError::input(e.to_string()));
        };
        reader.seek_oldest();
        let index = rec.sensor_index(s.name.as_str()).map_err(|e| CliError::internal(e.to_string()))?;
        rings.push(Drained { reader, buf: Vec::new(), kind: s.kind, index });
    }
    let mut can = super::vehicle::CanRecording::attach(run, &spec, &stop)?;
    // The table alone: every epoch the run announced is there, and the recorder has no
    // deadline that the socket's fast path would help with.
    let mut calib = CalibFollower::table_only(&CalibFollower::table_in(run));
    let mut lost = 0u64;
    loop {
        // Calibration first, so a frame's epoch is known when the frame is written.
        for set in calib.poll() {
            rec.write_calibration(&set, set.valid_from).map_err(|e| CliError::input(e.to_string()))?;
        }
        let mut idle = !match can.as_mut() {
            Some(c) => c.drain(&mut rec)?,
            None => false,
        };
        for ring in &mut rings {
            idle &= !drain_one(ring, &mut rec, &mut lost)?;
        }
        if idle {
            if stop.is_raised() {
                break;
            }
            wait_any(&rings, can.as_ref().map(super::vehicle::CanRecording::reader), || stop.is_raised());
        }
    }
    if lost > 0 {
        tracing::warn!(lost, "frames lost to overruns were not recorded");
    }
    rec.finish().map_err(|e| CliError::input(e.to_string()))
}

/// Reads one frame of `ring` and records it; whether there was progress.
fn drain_one(ring: &mut Drained, rec: &mut McapRecorder, lost: &mut u64) -> Result<bool, CliError> {
    let Drained { reader, buf, kind, index } = ring;
    match reader.read_next(buf) {
        ReadOutcome::Frame(info) => {
            let res = if *kind == StreamKind::Camera {
                camera_image(buf)
                    .map(|img| rec.write_camera_of(*index, info.capture, info.epoch, info.seq, &img))
            } else {
                lidar_points(buf)
                    .map(|pts| rec.write_lidar_of(*index, info.capture, info.epoch, info.seq, pts))
            };
            match res {
                Ok(r) => r.map_err(|e| CliError::input(e.to_string()))?,
                Err(e) => tracing::warn!("{kind} frame {}: {e}; not recorded", info.seq),
            }
            Ok(true)
        }
        ReadOutcome::Overrun { lost: n } => {
            *lost += n;
            Ok(true)
        }
        // A torn slot is no progress: the loop must still reach the stop check.
        ReadOutcome::Empty | ReadOutcome::Torn => Ok(false),
        _ => Ok(true),
    }
}

/// How long the recorder sleeps on its rings when none has a frame. The calibration table is
/// looked at this often while no frame comes (a frame wakes the recorder, and epochs are
/// read before frames), and the stop a signal raises ends the sleep no later.
const IDLE: Duration = Duration::from_millis(25);

/// How long it sleeps on the first lidar ring alone, with more rings than one wait can watch:
/// frames on the others are not left waiting long.
const IDLE_MANY: Duration = Duration::from_millis(5);

/// Sleeps until a frame comes on any ring (the sensors' and the bus's), [`IDLE`] passes or
/// `give_up` says so: one futex wait on every ring at once, so the recorder wakes for frames
/// rather than on a clock. With more rings than one wait can watch (a surround rig), it
/// sleeps on the first lidar ring for [`IDLE_MANY`], unless another ring already has frames.
fn wait_any(rings: &[Drained], can: Option<&RingReader>, give_up: impl Fn() -> bool) {
    let all: Vec<&RingReader> = rings.iter().map(|r| &r.reader).chain(can).collect();
    match all[..] {
        [a] => RingReader::wait_any([a], IDLE, give_up),
        [a, b] => RingReader::wait_any([a, b], IDLE, give_up),
        [a, b, c] => RingReader::wait_any([a, b, c], IDLE, give_up),
        [a, b, c, d] => RingReader::wait_any([a, b, c, d], IDLE, give_up),
        _ => {
            let lidar = rings.iter().find(|r| r.kind == StreamKind::Lidar);
            let others_idle =
                rings.iter().filter(|r| r.kind != StreamKind::Lidar).all(|r| r.reader.lag() == 0);
            match (lidar, others_idle) {
                (Some(lidar), true) => lidar.reader.wait_until(IDLE_MANY, give_up),
                _ => false,
            }
        }
    };
}
