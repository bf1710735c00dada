//! CAN frames in a recording: ROS 2 `can_msgs/msg/Frame` on [`RecorderTopics::CAN`], written
//! by [`crate::McapRecorder::write_can`] and read back by [`read_can`].
//!
//! # Contract
//! - Header stamp: when the frame's sender sampled its signals (pipeline clock of the run);
//!   MCAP log time: when the bus delivered it.
//! - The channel's metadata [`DBC_KEY`] holds the bus's DBC text, so a replay decodes the
//!   frames with the database they were sent with.
//! - A replay's calibration holds the lidar relative to the camera only; the lidar's mount on
//!   the vehicle (which deskewing needs) comes from the first `base_link` → `lidar` transform
//!   on `/tf_static` ([`CanLog::lidar_mount`]).
//! - Reading checks every frame (DLC ≤ 8, identifier within 11 or 29 bits, no error or
//!   remote frame) and names the file, topic and message of the first bad one.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use nalgebra::Isometry3;
use serde::Serialize;
use shared::TimestampNs;

use crate::cdr_read::{CdrError, CdrReader};
use crate::mcap_source::chunked::ChunkedStream;
use crate::mcap_source::read::{bad, bag_files, has_mcap_magic};
use crate::record::Header;
use crate::{LogError, RecorderTopics};

pub use crate::can_saved::{load_frames, save_frames};

/// Schema name of the frames.
pub const SCHEMA: &str = "can_msgs/msg/Frame";
/// Channel metadata key with the bus's DBC text.
pub const DBC_KEY: &str = "epochfuse.dbc";
/// Frames read at most (a day of a busy bus is far below).
pub const MAX_FRAMES: usize = 200_000_000;

/// The message definition (ROS 2 `can_msgs/msg/Frame`), without its dependencies.
pub(crate) const SCHEMA_TEXT: &str = "std_msgs/Header header
uint32 id
bool is_rtr
bool is_extended
bool is_error
uint8 dlc
uint8[8] data
";

/// The CDR form of a frame.
#[derive(Serialize)]
pub(crate) struct Frame<'a> {
    pub(crate) header: Header<'a>,
    pub(crate) id: u32,
    pub(crate) is_rtr: bool,
    pub(crate) is_extended: bool,
    pub(crate) is_error: bool,
    pub(crate) dlc: u8,
    pub(crate) data: [u8; 8],
}

/// One recorded frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CanFrameMsg {
    /// When its sender sampled it (the header stamp).
    pub sampled: TimestampNs,
    /// When the bus delivered it (the log time).
    pub delivered: TimestampNs,
    /// Identifier.
    pub id: u32,
    /// 29-bit identifier.
    pub extended: bool,
    /// Data bytes used.
    pub dlc: u8,
    /// Data.
    pub data: [u8; 8],
}

/// The CAN channel of a recording.
#[derive(Clone, Debug, PartialEq)]
pub struct CanLog {
    /// The bus's DBC text (empty if the channel carries none).
    pub dbc: String,
    /// The frames in delivery order.
    pub frames: Vec<CanFrameMsg>,
    /// The lidar's mount on the vehicle (lidar → `base_link`), if the recording has it.
    pub lidar_mount: Option<Isometry3<f64>>,
}

fn parse(msg: &[u8], delivered: u64) -> Result<CanFrameMsg, CdrError> {
    let mut r = CdrReader::new(msg)?;
    let sec = r.i32("header.stamp.sec")?;
    let nanosec = r.u32("header.stamp.nanosec")?;
    r.string("header.frame_id")?;
    let id = r.u32("id")?;
    let (rtr, extended, error) = (r.bool("is_rtr")?, r.bool("is_extended")?, r.bool("is_error")?);
    let dlc = r.u8("dlc")?;
    let mut data = [0u8; 8];
    for (i, b) in data.iter_mut().enumerate() {
        *b = r.u8(&format!("data[{i}]"))?;
    }
    let fail = |what: String| CdrError { offset: r.position(), what };
    if rtr || error {
        return Err(fail("a remote or error frame (only data frames are replayed)".into()));
    }
    if dlc > 8 || id > if extended { 0x1fff_ffff } else { 0x7ff } {
        return Err(fail(format!("dlc {dlc} or id {id:#x} out of range")));
    }
    let sampled = u64::try_from(sec).map_err(|_| fail(format!("negative stamp {sec} s")))? * 1_000_000_000
        + u64::from(nanosec);
    Ok(CanFrameMsg {
        sampled: TimestampNs(sampled),
        delivered: TimestampNs(delivered),
        id,
        extended,
        dlc,
        data,
    })
}

/// The CAN frames of an MCAP file or rosbag2 folder; `None` if it has no CAN channel or is
/// another kind of log (a KITTI folder).
///
/// A bag that breaks part-way (cut short, a bad CRC, a broken record) gives the frames
/// before the break, as [`crate::LogSource`] replays the frames before it and reports the
/// break at their end: a bus read at the door must not refuse what the replay accepts.
///
/// # Errors
/// The one-line [`LogError`] of a file that cannot be opened, or of a CAN message or
/// transform that cannot be decoded.
pub fn read_can(path: &Path) -> Result<Option<CanLog>, LogError> {
    let files: Arc<[PathBuf]> = if path.is_dir() {
        match bag_files(path) {
            Ok(files) => files.into(),
            Err(LogError::NotALog { .. }) => return Ok(None),
            Err(e) => return Err(e),
        }
    } else if has_mcap_magic(path)? {
        vec![path.to_path_buf()].into()
    } else {
        return Ok(None);
    };
    // Headers-only first (the frames' pixel and point data are not decompressed); a pass that
    // cannot stand (see `mcap_source::scan`) is redone in full, errors and all.
    let mut stream = ChunkedStream::headers_only(Arc::clone(&files))?;
    let mut partial = false;
    if let Ok(log) = collect(path, &mut stream, &mut partial) {
        if !partial && stream.data_verified() {
            return Ok(log);
        }
    }
    collect(path, &mut ChunkedStream::new(files)?, &mut partial)
}

/// The CAN channel of a stream; sets `partial` and stops if a message it reads was decoded
/// only in part.
fn collect(path: &Path, stream: &mut ChunkedStream, partial: &mut bool) -> Result<Option<CanLog>, LogError> {
    let mut log: Option<CanLog> = None;
    let mut mount = None;
    while let Some(m) = stream.next() {
        // The break: the frames before it stand. (A headers-only pass that breaks has no
        // verified data section, so `read_can` redoes it in full.)
        let Ok(m) = m else { break };
        let wanted = m.channel.topic == RecorderTopics::TF_STATIC || m.channel.topic == RecorderTopics::CAN;
        if wanted && m.data.valid_len() < m.data.len() {
            *partial = true;
            return Ok(None);
        }
        if mount.is_none() && m.channel.topic == RecorderTopics::TF_STATIC {
            let tfs = crate::ros::parse_tf(&m.data).map_err(|e| bad(path, &m, e))?;
            mount = tfs
                .into_iter()
                .find(|t| t.parent == RecorderTopics::BASE_FRAME && t.child == RecorderTopics::LIDAR_FRAME)
                .map(|t| t.iso);
        }
        if m.channel.topic != RecorderTopics::CAN
            || m.channel.schema.as_ref().is_none_or(|s| s.name != SCHEMA)
        {
            continue;
        }
        let frame = parse(&m.data, m.log_time).map_err(|e| bad(path, &m, e))?;
        let log = log.get_or_insert_with(|| CanLog {
            dbc: m.channel.metadata.get(DBC_KEY).cloned().unwrap_or_default(),
            frames: Vec::new(),
            lidar_mount: None,
        });
        if log.frames.len() == MAX_FRAMES {
            return Err(bad(path, &m, format!("more than {MAX_FRAMES} CAN frames")));
        }
        log.frames.push(frame);
    }
    if let Some(l) = log.as_mut() {
        l.frames.sort_by_key(|f| f.delivered);
        l.lidar_mount = mount;
    }
    Ok(log)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::McapRecorder;

    fn frame(i: u64) -> CanFrameMsg {
        CanFrameMsg {
            sampled: TimestampNs(1_000_000 * i + 7),
            delivered: TimestampNs(1_000_000 * i + 300_000),
            id: if i.is_multiple_of(2) { 0x1a0 } else { 0x18fe_f100 },
            extended: i % 2 == 1,
            dlc: (i % 9) as u8,
            data: [i as u8; 8],
        }
    }

    /// A recording of `n` frames in a new temporary directory: (the directory, the file,
    /// the frames).
    fn recorded(n: u64) -> (tempfile::TempDir, PathBuf, Vec<CanFrameMsg>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("can.mcap");
        let frames: Vec<CanFrameMsg> = (0..n).map(frame).collect();
        let mut rec = McapRecorder::create(&path).unwrap();
        for f in &frames {
            rec.write_can(f, "VERSION \"x\"").unwrap();
        }
        rec.finish().unwrap();
        (dir, path, frames)
    }

    #[test]
    fn frames_round_trip_through_a_recording() {
        let (dir, path, frames) = recorded(50);
        let log = read_can(&path).unwrap().unwrap();
        assert_eq!(log.dbc, "VERSION \"x\"");
        assert_eq!(log.frames, frames);
        assert_eq!(log.lidar_mount, None, "no calibration was recorded");
        // A recording without a bus has no CAN channel.
        let plain = dir.path().join("plain.mcap");
        McapRecorder::create(&plain).unwrap().finish().unwrap();
        assert_eq!(read_can(&plain).unwrap(), None);
    }

    #[test]
    fn a_bag_cut_short_gives_the_frames_before_the_break() {
        // Enough frames for several chunks, so that whole chunks lie before the cut.
        let (dir, path, frames) = recorded(60_000);
        let bytes = std::fs::read(&path).unwrap();
        let cut = dir.path().join("cut.mcap");
        std::fs::write(&cut, &bytes[..bytes.len() * 3 / 5]).unwrap();
        // The replay accepts such a bag (it replays up to the break), so the bus read at its
        // door must too.
        let log = read_can(&cut).expect("a break is not an error").expect("frames before the break");
        let n = log.frames.len();
        assert!(n > 0 && n < frames.len(), "{n} of {} frames", frames.len());
        assert_eq!(log.frames[..], frames[..n]);
    }
}
