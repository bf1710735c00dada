//! The indexing pass: every message once, calibration decoded in full, frames up to their data.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use nalgebra::Isometry3;

use super::chunked::ChunkedStream;
use super::read::{bad, RawMsg};
use super::LABELS_FOR_KEY;
use crate::cdr_read::CdrError;
use crate::ros::{self, CamInfo};
use crate::LogError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Image,
    Cloud,
    CameraInfo,
    Tf,
    FrameEpoch,
    Unsupported,
    Other,
}

fn classify(ch: &mcap::Channel<'_>) -> Kind {
    let schema = ch.schema.as_ref().map_or("", |s| s.name.as_str());
    let name = schema.replace("/msg/", "/");
    let kind = match name.as_str() {
        "sensor_msgs/Image" => Kind::Image,
        "sensor_msgs/PointCloud2" => Kind::Cloud,
        "sensor_msgs/CameraInfo" => Kind::CameraInfo,
        "tf2_msgs/TFMessage" if is_tf_topic(&ch.topic) => Kind::Tf,
        "epochfuse_msgs/FrameEpoch" => Kind::FrameEpoch,
        "sensor_msgs/CompressedImage" => Kind::Unsupported,
        _ => Kind::Other,
    };
    if kind != Kind::Other && ch.message_encoding != "cdr" {
        return Kind::Unsupported;
    }
    kind
}

fn is_tf_topic(topic: &str) -> bool {
    topic == "/tf" || topic == "/tf_static" || topic.ends_with("/tf") || topic.ends_with("/tf_static")
}

/// A camera or lidar message, as indexed.
#[derive(Debug, Clone)]
pub(super) struct IdxFrame {
    pub(super) ordinal: u64,
    pub(super) stamp: u64,
    pub(super) payload_len: usize,
    pub(super) size: (u32, u32),
}

#[derive(Debug, Default)]
pub(super) struct TopicIndex {
    pub(super) kind: Option<Kind>,
    pub(super) schema: String,
    pub(super) labels_for: Option<String>,
    pub(super) frame_id: Option<String>,
    pub(super) frames: Vec<IdxFrame>,
    /// CameraInfo: (effective time, ordinal, value).
    pub(super) infos: Vec<(u64, u64, Arc<CamInfo>)>,
    /// The first message of this topic that could not be decoded.
    pub(super) error: Option<(u64, LogError)>,
}

/// The time a calibration message takes effect: its header stamp or its log time, whichever
/// is earlier; a zero stamp counts as absent.
fn effective(stamp: Option<u64>, log_time: u64) -> u64 {
    stamp.map_or(log_time, |s| s.min(log_time))
}

pub(super) type EdgeKey = (String, String);
/// Every edge's timeline: (effective time, ordinal, parent←child).
pub(super) type Edges = HashMap<EdgeKey, Vec<(u64, u64, Isometry3<f64>)>>;

pub(super) struct Scan {
    pub(super) topics: BTreeMap<String, TopicIndex>,
    /// (parent, child) → (effective time, ordinal, parent←child).
    pub(super) edges: Edges,
    /// (topic, stamp) → (epoch, ordinal).
    pub(super) frame_epochs: HashMap<(String, u64), (u64, u64)>,
    /// An error that stops indexing altogether: (ordinal it cuts at, error).
    pub(super) fatal: Option<(u64, LogError)>,
    pub(super) per_file_paths: Arc<[PathBuf]>,
}

/// Reads every message of `files` once; stops at the first break of the file or of a transform.
///
/// First through a headers-only stream ([`ChunkedStream::headers_only`]: the pixel and point
/// data, nearly all of a recording's bytes, are not decompressed); if that pass meets anything
/// it cannot stand for (an error of any kind, a message it needs that it has only in part, a
/// data section without a matching CRC), the bag is scanned again in full, as before.
pub(super) fn scan(files: Arc<[PathBuf]>) -> Scan {
    match scan_pass(Arc::clone(&files), true) {
        (s, true) => s,
        _ => scan_pass(files, false).0,
    }
}

/// One indexing pass, and whether it stands (a full one always does; see [`scan`]).
fn scan_pass(files: Arc<[PathBuf]>, headers_only: bool) -> (Scan, bool) {
    let mut s = Scan {
        topics: BTreeMap::new(),
        edges: HashMap::new(),
        frame_epochs: HashMap::new(),
        fatal: None,
        per_file_paths: Arc::clone(&files),
    };
    let opened = if headers_only { ChunkedStream::headers_only(files) } else { ChunkedStream::new(files) };
    let mut stream = match opened {
        Ok(stream) => stream,
        Err(e) => {
            s.fatal = Some((0, e));
            return (s, !headers_only);
        }
    };
    while let Some(item) = stream.next() {
        let m = match item {
            Ok(m) => m,
            Err(e) => {
                s.fatal = Some((stream.ordinal(), e));
                break;
            }
        };
        let file_path = s.per_file_paths[m.file].clone();
        let t = s.topics.entry(m.channel.topic.clone()).or_default();
        let kind = *t.kind.get_or_insert_with(|| classify(&m.channel));
        if t.schema.is_empty() {
            t.schema = m.channel.schema.as_ref().map_or(String::new(), |s| s.name.clone());
            t.labels_for = m.channel.metadata.get(LABELS_FOR_KEY).cloned();
        }
        if t.error.is_some() {
            continue;
        }
        let result = index_message(kind, &m, t, &mut s.edges, &mut s.frame_epochs);
        if headers_only && result.as_ref().map_or(true, |&read| read > m.data.valid_len()) {
            return (s, false);
        }
        if let Err(e) = result {
            let err = bad(&file_path, &m, e);
            if kind == Kind::Tf {
                // Transforms are shared by every topic: a bad one stops the replay here.
                s.fatal = Some((m.ordinal, err));
                break;
            }
            t.error = Some((m.ordinal, err));
        }
    }
    let stands = !headers_only || (s.fatal.is_none() && stream.data_verified());
    (s, stands)
}

/// Indexes one message of a topic of `kind` into the topic's index, the transform edges or the
/// recorded frame epochs; returns how many of its leading bytes it read (a frame's up to its
/// data blob, whose bytes it only counts).
fn index_message(
    kind: Kind,
    m: &RawMsg,
    t: &mut TopicIndex,
    edges: &mut Edges,
    frame_epochs: &mut HashMap<(String, u64), (u64, u64)>,
) -> Result<usize, CdrError> {
    match kind {
        Kind::Cloud | Kind::Image => {
            let (h, payload_len, size, read) = if kind == Kind::Cloud {
                let (h, l) = ros::parse_cloud(&m.data)?;
                (h, l.payload_len(), (0, 0), l.data_offset())
            } else {
                let (h, l) = ros::parse_image(&m.data)?;
                (h, l.payload_len(), (l.width, l.height), l.data_offset())
            };
            t.frame_id.get_or_insert_with(|| h.frame_id.to_owned());
            let stamp = h.stamp.unwrap_or(m.log_time);
            t.frames.push(IdxFrame { ordinal: m.ordinal, stamp, payload_len, size });
            return Ok(read);
        }
        Kind::CameraInfo => {
            let (h, ci) = ros::parse_camera_info(&m.data)?;
            // Validate the model now (image size stands in if the message has none).
            ci.projection((1, 1)).map_err(|what| CdrError { offset: 0, what })?;
            t.frame_id.get_or_insert_with(|| h.frame_id.to_owned());
            let time = effective(h.stamp, m.log_time);
            let value = match t.infos.last() {
                Some((_, _, last)) if **last == ci => Arc::clone(last),
                _ => Arc::new(ci),
            };
            t.infos.push((time, m.ordinal, value));
        }
        Kind::Tf => {
            for tf in ros::parse_tf(&m.data)? {
                let time = effective(tf.stamp, m.log_time);
                edges.entry((tf.parent, tf.child)).or_default().push((time, m.ordinal, tf.iso));
            }
        }
        Kind::FrameEpoch => {
            let fe = ros::parse_frame_epoch(&m.data)?;
            let stamp = fe.stamp.unwrap_or(m.log_time);
            frame_epochs.insert((fe.topic, stamp), (fe.epoch, m.ordinal));
        }
        Kind::Unsupported | Kind::Other => return Ok(0),
    }
    Ok(m.data.len())
}

#[cfg(test)]
mod tests {
    use calib::{CalibrationSet, CameraIntrinsics, Distortion, Projection};
    use nalgebra::Isometry3;
    use shared::frames::{ImageHeader, ImageView, PointRecord};
    use shared::{CalibEpoch, FrameSeq, TimestampNs};

    use super::*;
    use crate::McapRecorder;

    const W: usize = 320;
    const H: usize = 240;

    /// A recording whose frames are larger than a headers-only pass decodes of them, with a
    /// recalibration half-way.
    fn recording(dir: &std::path::Path) -> PathBuf {
        let path = dir.join("rec.mcap");
        let mut rec = McapRecorder::create(&path).unwrap();
        for (epoch, at, fx) in [(1, 0, 200.0), (2, 450_000_000, 210.0)] {
            let camera = Projection::Pinhole(CameraIntrinsics {
                fx,
                fy: fx,
                cx: 160.0,
                cy: 120.0,
                width: W as u32,
                height: H as u32,
                distortion: Distortion::default(),
            });
            let set = CalibrationSet::single(
                CalibEpoch(epoch),
                TimestampNs(at),
                camera,
                Isometry3::translation(0.1, 0.0, 1.0),
                Isometry3::translation(0.5, 0.0, 1.5),
            );
            rec.write_calibration(&set, TimestampNs(at)).unwrap();
        }
        let rgb: Vec<u8> = (0..W * H * 3).map(|i| (i % 251) as u8).collect();
        let labels = vec![7u8; W * H * 2];
        let points: Vec<PointRecord> = (0..4000u32)
            .map(|j| PointRecord {
                x: j as f32,
                y: 0.5,
                z: 0.1,
                intensity: 0.5,
                ring: 1,
                reserved: 0,
                instance: j,
            })
            .collect();
        for i in 0..10u64 {
            let (t, e) = (i * 100_000_000, CalibEpoch(1 + u64::from(i >= 5)));
            rec.write_lidar(TimestampNs(t), e, FrameSeq(i), &points).unwrap();
            let header = ImageHeader { width: W as u32, height: H as u32, format: 1, has_labels: 1 };
            let v = ImageView { header, rgb: &rgb, labels: Some(&labels) };
            rec.write_camera(TimestampNs(t + 1_000_000), e, FrameSeq(i), &v).unwrap();
        }
        rec.finish().unwrap();
        path
    }

    /// What a scan found, in a comparable form.
    fn found(s: &Scan) -> String {
        let mut edges: Vec<_> = s.edges.iter().map(|(k, v)| format!("{k:?} {v:?}")).collect();
        edges.sort();
        let mut epochs: Vec<_> = s.frame_epochs.iter().collect();
        epochs.sort();
        format!("{:?} {edges:?} {epochs:?} {:?}", s.topics, s.fatal)
    }

    /// A headers-only scan decodes only part of the frames, stands, and finds what a full one
    /// does; on a damaged bag it does not stand (the full scan names the damage).
    #[test]
    fn a_headers_only_scan_finds_what_a_full_one_does() {
        let dir = tempfile::tempdir().unwrap();
        let files: Arc<[PathBuf]> = vec![recording(dir.path())].into();
        let mut partial = 0;
        let mut stream = ChunkedStream::headers_only(Arc::clone(&files)).unwrap();
        while let Some(m) = stream.next() {
            let m = m.unwrap();
            partial += usize::from(m.data.valid_len() < m.data.len());
        }
        assert!(partial > 0, "no message decoded in part");
        assert!(stream.data_verified());
        let (lazy, stands) = scan_pass(Arc::clone(&files), true);
        assert!(stands);
        let (full, _) = scan_pass(Arc::clone(&files), false);
        assert_eq!(found(&lazy), found(&full));
        assert_eq!(lazy.topics.values().map(|t| t.frames.len()).sum::<usize>(), 30);

        // One byte changed in a frame's compressed data: only the data section CRC sees it
        // before the frame's pixels are decoded.
        let mut bytes = std::fs::read(&files[0]).unwrap();
        let at = bytes.len() * 2 / 3;
        bytes[at] ^= 0x10;
        std::fs::write(&files[0], &bytes).unwrap();
        assert!(!scan_pass(Arc::clone(&files), true).1);
        assert!(scan(files).fatal.is_some());
    }
}
