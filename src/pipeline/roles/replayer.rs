//! The replayer role: takes the producers' place in a replay. It writes a log's frames into
//! the camera and lidar rings with the log's epochs, paced by the log's stamps (scaled by
//! `--rate`) or as fast as fusion keeps up (`--max-rate`). Capture times go onto the
//! pipeline clock: the log's first frame is t = 0.

use std::path::Path;

use logs::{LogError, LogFormat, LogFrame, LogOptions, OpenedLog};
use shared::ring::{FrameMeta, RingWriter};
use shared::scoreboard::ProducerScoreboard;
use shared::segment::SegmentSpec;
use shared::{rundir, StreamKind, TimestampNs};

use super::producer::PRODUCER_SLOTS;
use super::{ready, stop_flag, wait_for_readers};
use crate::error::CliError;
use crate::pipeline::spec::{RunSpec, SourceSpec};

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
    OpenedLog::open(path, &options).map_err(|e| CliError::input(e.to_string()))
}

fn ring(run: &Path, kind: StreamKind, capacity: usize) -> Result<RingWriter, CliError> {
    let path = run.join(rundir::segment_file(kind));
    let spec = SegmentSpec::new(kind, PRODUCER_SLOTS, capacity.max(64) as u64);
    RingWriter::create_or_takeover(&path, &spec)
        .map(|(w, _)| w)
        .map_err(|e| CliError::internal(format!("{}: {e}", path.display())))
}

/// Frames each decoding thread keeps ready: enough to cover a chunk boundary without holding
/// much memory (a frame is a few MB).
const PREFETCH_DEPTH: usize = 2;
/// The log's frames in replay order. A bag streams on a prefetch thread, which decompresses
/// its chunks on a pool of its own (`logs`' streaming pass), so this thread only fills slots.
/// A KITTI folder decodes here, inline: on this shared 2-core machine (load 17) a pool of two
/// PNG decoders made the 200-frame replay 0.75–0.8× as fast as inline decoding (2026-12-01;
/// an earlier session measured 0.5×); `LogFrames::prefetch` decodes KITTI on a pool when wanted.
fn frames(log: &OpenedLog) -> Result<Box<dyn Iterator<Item = Result<LogFrame, LogError>>>, LogError> {
    let frames = log.frames()?;
    Ok(match log.source().format() {
        LogFormat::Kitti => Box::new(frames),
        LogFormat::Mcap { .. } => Box::new(frames.prefetch(1, PREFETCH_DEPTH, log.source().path())?),
    })
}

/// Runs the replayer role.
///
/// # Errors
/// Exit 2 if the log breaks part-way (after replaying what was valid).
pub fn run(run: &Path) -> Result<(), CliError> {
    let spec = RunSpec::load(run)?;
    let stop = stop_flag()?;
    let log = open_source(&spec)?;
    let mut camera = ring(run, StreamKind::Camera, log.max_payload_len(StreamKind::Camera))?;
    let mut lidar = ring(run, StreamKind::Lidar, log.max_payload_len(StreamKind::Lidar))?;
    let frames = frames(&log).map_err(|e| CliError::input(e.to_string()))?;
    let readers = spec.ring_readers();
    let mut stalled = false;
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
        // A log frame is a camera image or a lidar sweep.
        let writer = if frame.stream == StreamKind::Camera { &mut camera } else { &mut lidar };
        if spec.max_rate {
            // As fast as the readers keep up: a replay at max rate loses no frame.
            wait_for_readers(writer, readers, u64::from(PRODUCER_SLOTS) - 2, &stop, &mut stalled);
        }
        let mut loan = writer.loan();
        frame.write_payload(&mut loan).map_err(|e| CliError::internal(format!("{}: {e}", frame.name)))?;
        loan.commit(FrameMeta { capture: t, epoch: frame.epoch });
        let mut board = ProducerScoreboard::read(writer);
        board.epoch = frame.epoch;
        board.store(writer);
    }
    Ok(())
}
