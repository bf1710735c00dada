//! [`OpenedLog`]: a log opened for a replay, with its times on the pipeline clock.

use std::path::Path;

use calib::CalibrationSet;
use shared::{StreamKind, TimestampNs};

use crate::{LogError, LogFrames, LogOptions, LogSource};

/// A log opened for a run, with its times moved onto the pipeline clock: the log's first frame
/// is t = 0. What the replayer, the calibration service and the supervisor of a replay ask.
#[derive(Debug)]
pub struct OpenedLog {
    source: LogSource,
}

impl OpenedLog {
    /// Opens a log (see [`LogSource::open_with`]).
    ///
    /// # Errors
    /// The log's one-line [`LogError`].
    pub fn open(path: impl AsRef<Path>, options: &LogOptions) -> Result<Self, LogError> {
        Ok(Self { source: LogSource::open_with(path, options)? })
    }

    /// Opens a bag with an index saved by another process (see [`LogSource::open_saved`]).
    ///
    /// # Errors
    /// As [`LogSource::open_saved`].
    pub fn open_saved(path: impl AsRef<Path>, plan: &Path, bytes: &[u8]) -> Result<Self, LogError> {
        Ok(Self { source: LogSource::open_saved(path, plan, bytes)? })
    }

    /// The log itself, on its own clock.
    #[must_use]
    pub fn source(&self) -> &LogSource {
        &self.source
    }

    /// A log stamp on the pipeline clock (stamps before the first frame clamp to 0).
    #[must_use]
    pub fn shift(&self, t: TimestampNs) -> TimestampNs {
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

    /// The frames in replay order, stamps still on the log's clock (see [`LogSource::frames`]).
    ///
    /// # Errors
    /// [`LogError::Io`] if a file cannot be opened.
    pub fn frames(&self) -> Result<LogFrames, LogError> {
        self.source.frames()
    }

    /// The largest payload of a stream, in bytes (to size ring slots).
    #[must_use]
    pub fn max_payload_len(&self, stream: StreamKind) -> usize {
        self.source.max_payload_len(stream)
    }

    /// Seconds of log.
    #[must_use]
    pub fn duration_s(&self) -> f64 {
        self.source.duration().as_secs_f64()
    }

    /// Lidar sweeps in the log.
    #[must_use]
    pub fn lidar_frames(&self) -> u64 {
        self.source.frame_count(StreamKind::Lidar) as u64
    }

    /// Seconds per sweep (for the realtime factor): the log's duration over its sweeps, or the
    /// camera period for a log with one sweep.
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
