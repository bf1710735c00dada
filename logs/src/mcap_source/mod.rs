//! ROS 2 bags in MCAP: an indexing pass and a streaming pass.
//!
//! **Indexing** reads every message once (through `mcap`'s streaming reader, with chunk,
//! data-section and summary CRCs checked): it decodes `CameraInfo`, `TFMessage` and
//! `FrameEpoch` messages in full, and `PointCloud2` / `Image` messages up to their data blob
//! (header, layout and size are validated; point and pixel data are not kept). It then
//! chooses the topics, orders the frames by stamp and numbers the epochs. It reads headers
//! only: of a chunk's last message, when large (a frame), only the first bytes are
//! decompressed, which in a recording is nearly all pixel and point data left alone. That pass
//! stands only if it met no error and every file's data section CRC matched; otherwise the
//! bag is indexed again in full, so errors are found and named as in a full pass.
//!
//! **Streaming** reads the file(s) again and hands out the indexed frames in time order. A
//! message that comes earlier in the file than in time order waits in a small reorder buffer
//! until its turn; in a bag written in time order that buffer holds at most a frame or two.
//! The buffer is bounded ([`MAX_REORDER_MESSAGES`], [`MAX_REORDER_BYTES`]): what it would
//! need is computed from the index, and a bag beyond the bound is refused at open.
//!
//! **Breaks.** The first framing, CRC or decoding error stops indexing: the frames before it
//! are replayed, then the error is yielded. A topic that is not chosen cannot break the
//! replay (an unsupported second camera is ignored).
//!
//! **Rigs.** Without a camera topic asked for, a bag with several cameras (or the cameras
//! `LogOptions::cameras` names) replays them all ([`cameras`] says which and how they are
//! named); their frames interleave in the plan, each numbered in its own stream.
//!
//! One file a step: [`read`] (the files of a rosbag2 folder, the message type), [`chunked`]
//! (every pass's reader: chunks decompressed on two threads), [`scan`]
//! (the indexing pass), [`topics`] (which topics replay), [`plan`] (the break, the frame order
//! and the epochs), [`frames`] (the streaming pass), [`saved`] (the index saved by the process
//! that opened the bag for another that replays it: indexed once per run).

mod cameras;
pub(crate) mod chunked;
mod frames;
#[cfg(test)]
mod linear;
mod lz4;
mod lz4_block;
mod plan;
pub(crate) mod read;
mod saved;
mod scan;
mod topics;

use std::path::PathBuf;
use std::sync::Arc;

use calib::{CalibrationSet, SensorName};
use serde::{Deserialize, Serialize};
use shared::{CalibEpoch, StreamKind, TimestampNs};

use super::{LogError, LogFormat};

pub use cameras::{bag_cameras, BagCamera, BagRig};
pub(crate) use frames::McapFrames;
pub(crate) use plan::index;
pub(crate) use read::{bag_files, has_mcap_magic, MsgData};

/// Most messages the streaming pass holds ahead of their turn (the reorder buffer). A bag
/// whose messages are further out of time order than this, or than
/// [`MAX_REORDER_BYTES`], is refused when it is opened, in one line: its frames are never
/// streamed past the cap.
pub const MAX_REORDER_MESSAGES: usize = 1024;
/// Most payload bytes the reorder buffer holds (see [`MAX_REORDER_MESSAGES`]).
pub const MAX_REORDER_BYTES: u64 = 512 << 20;

/// Channel metadata key that marks a mono16 label `Image` topic and names its camera topic.
pub(crate) const LABELS_FOR_KEY: &str = "epochfuse.labels_for";

/// A frame planned for the streaming pass.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Planned {
    stream: StreamKind,
    /// The camera's index in [`McapIndex::cameras`] (0 for the lidar).
    sensor: usize,
    stamp: TimestampNs,
    epoch: CalibEpoch,
    recorded_epoch: Option<CalibEpoch>,
    index: u64,
    ordinal: u64,
    labels: Option<u64>,
    payload_len: usize,
}

/// A camera of a scanned bag: its sensor name and topics.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct IndexCamera {
    pub name: SensorName,
    topic: String,
    info: String,
    labels: Option<String>,
}

/// A scanned bag.
#[derive(Debug)]
pub(crate) struct McapIndex {
    path: PathBuf,
    files: Arc<[PathBuf]>,
    lidar_topic: String,
    pub lidar_name: SensorName,
    /// The cameras replayed, the primary first.
    pub cameras: Vec<IndexCamera>,
    planned: Vec<Planned>,
    /// Message ordinals the streaming pass keeps, sorted.
    wanted: Vec<u64>,
    pub sets: Vec<CalibrationSet>,
    pub error: Option<LogError>,
    /// Every topic with a message before the break, sorted.
    pub topics: Vec<String>,
}

impl McapIndex {
    /// The format, with the primary camera's topics.
    pub fn format(&self) -> LogFormat {
        let primary = &self.cameras[0];
        LogFormat::Mcap {
            files: self.files.to_vec(),
            lidar_topic: self.lidar_topic.clone(),
            camera_topic: primary.topic.clone(),
            camera_info_topic: primary.info.clone(),
            labels_topic: primary.labels.clone(),
        }
    }

    pub fn frame_count(&self, stream: StreamKind) -> usize {
        self.planned.iter().filter(|p| p.stream == stream).count()
    }

    /// The largest payload of the `stream` sensor numbered `sensor` (a camera's index; 0 for
    /// the lidar).
    pub fn max_payload_len(&self, stream: StreamKind, sensor: usize) -> usize {
        self.planned
            .iter()
            .filter(|p| p.stream == stream && p.sensor == sensor)
            .map(|p| p.payload_len)
            .max()
            .unwrap_or(0)
    }

    pub fn camera_period_ns(&self) -> Option<u64> {
        // The primary camera's: several cameras' images interleave.
        let stamps: Vec<u64> = self
            .planned
            .iter()
            .filter(|p| p.stream == StreamKind::Camera && p.sensor == 0)
            .map(|p| p.stamp.0)
            .collect();
        let mut gaps: Vec<u64> = stamps.windows(2).map(|w| w[1] - w[0]).filter(|&g| g > 0).collect();
        if gaps.is_empty() {
            return None;
        }
        gaps.sort_unstable();
        Some(gaps[gaps.len() / 2])
    }

    pub fn start(&self) -> TimestampNs {
        self.planned.first().map_or(TimestampNs(0), |p| p.stamp)
    }

    pub fn end(&self) -> TimestampNs {
        self.planned.last().map_or(TimestampNs(0), |p| p.stamp)
    }
}
