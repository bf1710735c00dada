//! The replayer role: takes the producers' place in a replay. It writes a log's frames into
//! their sensors' rings (camera and lidar; one per camera for a log with several) with the
//! log's epochs, paced by the log's stamps (scaled by `--rate`) or as fast as fusion keeps up
//! (`--max-rate`). Capture times go onto the pipeline clock: the log's first frame is t = 0.

use std::path::Path;

use logs::{LogError, LogFormat, LogFrame, LogOptions, OpenedLog, WriteError};
use shared::ring::{FrameMeta, RingWriter};
use shared::scoreboard::ProducerScoreboard;
use shared::TimestampNs;

use super::{ready, stop_flag, wait_for_readers};
use crate::error::CliError;
use crate::pipeline::segments;
use crate::pipeline::segments::PRODUCER_SLOTS;
use crate::pipeline::spec::{RunSpec, SourceSpec, LOG_INDEX_FILE};

/// Opens the run's log (at the door: indexing a bag).
///
/// # Errors
/// Exit 2 with the log's one-line error.
pub fn open_source(spec: &RunSpec) -> Result<OpenedLog, CliError> {
    let (path, options) = source_of(spec)?;
    OpenedLog::open(path, &options).map_err(|e| CliError::input(e.to_string()))
}

/// Opens the run's log in the replayer: a bag with the index the door saved in the run
/// directory (`LOG_INDEX_FILE`), which is refused if the bag changed since; a KITTI folder
/// (no index saved) as at the door.
///
/// # Errors
/// Exit 2 with the log's one-line error, or the saved index's.
fn open_in_run(run: &Path, spec: &RunSpec) -> Result<OpenedLog, CliError> {
    let plan = run.join(LOG_INDEX_FILE);
    let bytes = match shared::input::read_bounded(&plan, MAX_LOG_INDEX_BYTES) {
        Ok(bytes) => bytes,
        Err(shared::input::InputError::Io { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            return open_source(spec);
        }
        Err(e) => return Err(CliError::input(e.to_string())),
    };
    let (path, _) = source_of(spec)?;
    let log = OpenedLog::open_saved(path, &plan, &bytes).map_err(|e| CliError::input(e.to_string()))?;
    tracing::info!(bag = %path.display(), "opened with the index saved at the door");
    Ok(log)
}

/// The largest saved index read: about 100 bytes a frame, so a bag of some two million
/// frames (eighteen hours of a 30 Hz camera and a 10 Hz lidar). The door saves none larger:
/// the replayer then indexes the bag itself, as it did before indexes were saved.
pub const MAX_LOG_INDEX_BYTES: u64 = 256 << 20;

fn source_of(spec: &RunSpec) -> Result<(&Path, LogOptions), CliError> {
    let SourceSpec::Replay { path, lidar_topic, camera_topic, cameras } = &spec.source else {
        return Err(CliError::internal("not a replay"));
    };
    let options = LogOptions {
        lidar_topic: lidar_topic.clone(),
        camera_topic: camera_topic.clone(),
        camera_info_topic: None,
        cameras: cameras.clone(),
    };
    Ok((path, options))
}

/// One ring per sensor of the log, `<name>.seg` (`camera.seg` and `lidar.seg` for a
/// one-camera log), with the readers a writer at `--max-rate` waits for.
fn rings(run: &Path, spec: &RunSpec, log: &OpenedLog) -> Result<Vec<(RingWriter, u64)>, CliError> {
    let sensors = log.source().sensors();
    spec.sensor_list()
        .iter()
        .map(|s| {
            let capacity = sensors.iter().find(|l| l.name == s.name).map_or(0, |l| l.max_payload_len);
            let path = run.join(segments::sensor_file(&s.name));
            let writer = RingWriter::create_or_takeover(&path, &segments::producer(s.kind, capacity))
                .map(|(w, _)| w)
                .map_err(|e| CliError::internal(format!("{}: {e}", path.display())))?;
            Ok((writer, spec.sensor_ring_readers(s.kind)))
        })
        .collect()
}

/// Frames each decoding thread keeps ready: enough that the decoders run on while this thread
/// fills a slot, without holding much memory (a frame is a few MB: the replay of a 20 s drive
/// peaks at 116 MB resident, against 100 MB with 2). See `AHEAD` in `logs`' chunked reader.
const PREFETCH_DEPTH: usize = 4;
/// The log's frames in replay order. A bag streams on a prefetch thread, which decompresses
/// its chunks on a pool of its own (`logs`' streaming pass), so this thread only fills slots.
/// A KITTI folder decodes here, inline: on this shared 2-core machine (load 17) a pool of two
/// PNG decoders made the 200-frame replay 0.75–0.8× as fast as inline decoding (2026-12-01;
/// an earlier session measured 0.5×); `LogFrames::prefetch` decodes KITTI on a pool when wanted.
/// Reading only the sweeps ahead on a thread of their own did not hold up either (2026-12-02:
/// 1.09× in one window of 5 runs each, 0.99–1.02× in the next of 8): both cores are already
/// busy, and the thread costs CPU.
fn frames(log: &OpenedLog) -> Result<Box<dyn Iterator<Item = Result<LogFrame, LogError>>>, LogError> {
    let frames = log.frames()?;
    Ok(match log.source().format() {
        // Each image decoded row by row straight into its slot (`write_payload`).
        LogFormat::Kitti => Box::new(frames.defer_images()),
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
    let log = open_in_run(run, &spec)?;
    let names: Vec<calib::SensorName> = spec.sensor_list().into_iter().map(|s| s.name).collect();
    let mut rings = rings(run, &spec, &log)?;
    let frames = frames(&log).map_err(|e| CliError::input(e.to_string()))?;
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
        // A log frame is a camera image or a lidar sweep of one of the run's sensors.
        let Some(i) = names.iter().position(|n| *n == frame.sensor) else {
            return Err(CliError::internal(format!("{}: no ring for sensor {}", frame.name, frame.sensor)));
        };
        let (writer, readers) = &mut rings[i];
        if spec.max_rate {
            // As fast as the readers keep up: a replay at max rate loses no frame.
            wait_for_readers(writer, *readers, u64::from(PRODUCER_SLOTS) - 2, &stop, &mut stalled);
        }
        let mut loan = writer.loan();
        frame.write_payload(&mut loan).map_err(|e| match e {
            // A deferred KITTI image that does not decode: bad input, reported as read.
            WriteError::Log(e) => CliError::input(e.to_string()),
            WriteError::Full(e) => CliError::internal(format!("{}: {e}", frame.name)),
        })?;
        loan.commit(FrameMeta { capture: t, epoch: frame.epoch });
        let mut board = ProducerScoreboard::read(writer);
        board.epoch = frame.epoch;
        board.store(writer);
    }
    Ok(())
}
