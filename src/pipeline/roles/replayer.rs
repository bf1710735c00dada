//! The replayer role: takes the producers' place in a replay. It writes a log's frames into
//! the camera and lidar rings with the log's epochs, paced by the log's stamps (scaled by
//! `--rate`) or as fast as fusion keeps up (`--max-rate`). Capture times go onto the
//! pipeline clock: the log's first frame is t = 0.

use std::path::Path;

use calib::CalibrationSet;
use sensor_sim::log::{LogOptions, LogSource, LogStream};
use shared::ring::{FrameMeta, RingWriter};
use shared::segment::SegmentSpec;
use shared::{rundir, StreamKind, TimestampNs};

use super::producer::PRODUCER_SLOTS;
use super::{ready, stop_flag, wait_for_readers};
use crate::error::CliError;
use crate::pipeline::spec::{RunSpec, SourceSpec};

/// A log opened for a run, with its times moved onto the pipeline clock.
#[derive(Debug)]
pub struct OpenedLog {
    /// The log.
    pub source: LogSource,
}

impl OpenedLog {
    fn shift(&self, t: TimestampNs) -> TimestampNs {
        TimestampNs(t.0.saturating_sub(self.source.start().0))
    }

    /// The log's epochs with `valid_from` on the pipeline clock.
    #[must_use]
    pub fn epochs_on_pipeline_clock(&self) -> Vec<CalibrationSet> {
        self.source
            .calibrations()
            .iter()
            .map(|s| CalibrationSet { valid_from: self.shift(s.valid_from), ..s.clone() })
            .collect()
    }

    /// Seconds of log.
    #[must_use]
    pub fn duration_s(&self) -> f64 {
        self.source.duration().as_secs_f64()
    }

    /// Lidar sweeps in the log.
    #[must_use]
    pub fn lidar_frames(&self) -> u64 {
        self.source.frame_count(LogStream::Lidar) as u64
    }

    /// Seconds per sweep (for the realtime factor).
    #[must_use]
    pub fn lidar_period_s(&self) -> f64 {
        let n = self.lidar_frames();
        if n > 1 {
            self.duration_s() / (n - 1) as f64
        } else {
            self.source.camera_period().as_secs_f64()
        }
    }
}

/// Opens the run's log.
///
/// # Errors
/// Exit 2 with the log's one-line error.
pub fn open_source(spec: &RunSpec) -> Result<OpenedLog, CliError> {
    let SourceSpec::Replay { path, lidar_topic, camera_topic } = &spec.source else {
        return Err(CliError::internal("not a replay"));
    };
    let options = LogOptions {
        lidar_topic: lidar_topic.clone(),
        camera_topic: camera_topic.clone(),
        camera_info_topic: None,
    };
    let source = LogSource::open_with(path, &options).map_err(|e| CliError::input(e.to_string()))?;
    Ok(OpenedLog { source })
}

fn ring(run: &Path, kind: StreamKind, capacity: usize) -> Result<RingWriter, CliError> {
    let path = run.join(rundir::segment_file(kind));
    let spec = SegmentSpec::new(kind, PRODUCER_SLOTS, capacity.max(64) as u64);
    RingWriter::create_or_takeover(&path, &spec)
        .map(|(w, _)| w)
        .map_err(|e| CliError::internal(format!("{}: {e}", path.display())))
}

/// Runs the replayer role.
///
/// # Errors
/// Exit 2 if the log breaks part-way (after replaying what was valid).
pub fn run(run: &Path) -> Result<(), CliError> {
    let spec = RunSpec::load(run)?;
    let stop = stop_flag()?;
    let log = open_source(&spec)?;
    let mut camera = ring(run, StreamKind::Camera, log.source.max_payload_len(LogStream::Camera))?;
    let mut lidar = ring(run, StreamKind::Lidar, log.source.max_payload_len(LogStream::Lidar))?;
    let frames = log.source.frames().map_err(|e| CliError::input(e.to_string()))?;
    let readers = 1 + u64::from(spec.record.is_some());
    let clock = ready()?;
    for item in frames {
        if stop.is_raised() {
            break;
        }
        let frame = item.map_err(|e| CliError::input(e.to_string()))?;
        let t = log.shift(frame.stamp);
        if !spec.max_rate && !clock.pace(TimestampNs((t.0 as f64 / spec.rate) as u64), &stop) {
            break;
        }
        let writer = match frame.stream {
            LogStream::Camera => &mut camera,
            LogStream::Lidar => &mut lidar,
        };
        if spec.max_rate {
            // As fast as the readers keep up: a replay at max rate loses no frame.
            wait_for_readers(writer, readers, u64::from(PRODUCER_SLOTS) - 2, &stop);
        }
        let mut loan = writer.loan();
        frame.write_payload(&mut loan).map_err(|e| CliError::internal(format!("{}: {e}", frame.name)))?;
        loan.commit(FrameMeta { capture: t, epoch: frame.epoch });
        writer.set_aux(shared::layout::aux::PRODUCER_EPOCH, frame.epoch.0);
    }
    Ok(())
}
