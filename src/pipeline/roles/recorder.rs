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
            wait_any(&rings);
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

/// Waits briefly for the rings: on the first lidar ring's futex, with a short timeout so
/// other frames are not left waiting long, unless another ring already has frames to read.
fn wait_any(rings: &[Drained]) {
    let lidar = rings.iter().find(|r| r.kind == StreamKind::Lidar);
    let others_idle = rings.iter().filter(|r| r.kind != StreamKind::Lidar).all(|r| r.reader.lag() == 0);
    if let (Some(lidar), true) = (lidar, others_idle) {
        lidar.reader.wait(Duration::from_millis(5));
    }
}
