//! The recorder role: a second reader of the camera and lidar rings that writes them, with
//! every calibration epoch, to an MCAP file with ROS 2 schemas (see
//! `logs::McapRecorder` for the topics and how epochs are recorded).

use std::path::Path;
use std::time::Duration;

use calib::CalibFollower;
use logs::McapRecorder;
use shared::frames::{camera_image, lidar_points};
use shared::ring::{ReadOutcome, RingReader};
use shared::{rundir, StreamKind};

use super::{attach_when_ready, ready, stop_flag};
use crate::error::CliError;
use crate::pipeline::spec::RunSpec;

/// Runs the recorder role.
///
/// # Errors
/// Exit 2 if the file cannot be written; exit 3 if the rings cannot be attached.
pub fn run(run: &Path) -> Result<(), CliError> {
    let spec = RunSpec::load(run)?;
    let stop = stop_flag()?;
    let Some(path) = spec.record.clone() else { return Ok(()) };
    let mut rec = McapRecorder::create(&path).map_err(|e| CliError::input(e.to_string()))?;
    ready()?;
    let attach = |kind| {
        attach_when_ready(&run.join(rundir::segment_file(kind)), kind, &stop, Duration::from_secs(30))
            .map_err(|e| CliError::internal(format!("{kind} ring: {e}")))
    };
    let (Some(mut camera), Some(mut lidar)) = (attach(StreamKind::Camera)?, attach(StreamKind::Lidar)?)
    else {
        return rec.finish().map_err(|e| CliError::input(e.to_string()));
    };
    camera.seek_oldest();
    lidar.seek_oldest();
    let mut can = super::vehicle::CanRecording::attach(run, &spec, &stop)?;
    // The table alone: every epoch the run announced is there, and the recorder has no
    // deadline that the socket's fast path would help with.
    let mut calib = CalibFollower::table_only(&CalibFollower::table_in(run));
    let (mut cam_buf, mut lid_buf) = (Vec::new(), Vec::new());
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
        for (reader, buf, kind) in
            [(&mut camera, &mut cam_buf, StreamKind::Camera), (&mut lidar, &mut lid_buf, StreamKind::Lidar)]
        {
            match reader.read_next(buf) {
                ReadOutcome::Frame(info) => {
                    idle = false;
                    let res = if kind == StreamKind::Camera {
                        camera_image(buf)
                            .map(|img| rec.write_camera(info.capture, info.epoch, info.seq, &img))
                    } else {
                        lidar_points(buf).map(|pts| rec.write_lidar(info.capture, info.epoch, info.seq, pts))
                    };
                    match res {
                        Ok(r) => r.map_err(|e| CliError::input(e.to_string()))?,
                        Err(e) => tracing::warn!("{kind} frame {}: {e}; not recorded", info.seq),
                    }
                }
                ReadOutcome::Overrun { lost: n } => {
                    lost += n;
                    idle = false;
                }
                // A torn slot is no progress: the loop must still reach the stop check.
                ReadOutcome::Empty | ReadOutcome::Torn => {}
                _ => idle = false,
            }
        }
        if idle {
            if stop.is_raised() {
                break;
            }
            wait_either(&camera, &lidar);
        }
    }
    if lost > 0 {
        tracing::warn!(lost, "frames lost to overruns were not recorded");
    }
    rec.finish().map_err(|e| CliError::input(e.to_string()))
}

/// Waits briefly for either ring (the lidar ring's futex, with a short timeout so camera
/// frames are not left waiting long).
fn wait_either(camera: &RingReader, lidar: &RingReader) {
    if camera.lag() == 0 {
        lidar.wait(Duration::from_millis(5));
    }
}
