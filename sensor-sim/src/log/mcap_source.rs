//! ROS 2 bags in MCAP: an indexing pass and a streaming pass.
//!
//! **Indexing** reads every message once (through `mcap`'s streaming reader, with chunk,
//! data-section and summary CRCs checked): it decodes `CameraInfo`, `TFMessage` and
//! `FrameEpoch` messages in full, and `PointCloud2` / `Image` messages up to their data blob
//! (header, layout and size are validated; point and pixel data are not kept). It then
//! chooses the topics, orders the frames by stamp and numbers the epochs.
//!
//! **Streaming** reads the file(s) again and hands out the indexed frames in time order. A
//! message that comes earlier in the file than in time order waits in a small reorder buffer
//! until its turn; in a bag written in time order that buffer holds at most a frame or two.
//!
//! **Breaks.** The first framing, CRC or decoding error stops indexing: the frames before it
//! are replayed, then the error is yielded. A topic that is not chosen cannot break the
//! replay (an unsupported second camera is ignored).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use calib::{CalibrationSet, Projection};
use mcap::sans_io::{LinearReaderOptions, MessageReadEvent, MessageReader};
use nalgebra::Isometry3;
use shared::{CalibEpoch, TimestampNs};

use super::cdr_read::CdrError;
use super::epochs::EpochBuilder;
use super::ros::{self, CamInfo};
use super::{Body, LogError, LogFormat, LogFrame, LogOptions, LogStream};

/// Largest record or chunk accepted; bounds the memory a corrupt length can claim.
const RECORD_LIMIT: usize = 512 << 20;
/// Largest single read from a file.
const READ_LIMIT: usize = 4 << 20;

/// Channel metadata key that marks a mono16 label `Image` topic and names its camera topic.
pub(crate) const LABELS_FOR_KEY: &str = "epochfuse.labels_for";

/// Whether a file starts with the MCAP magic.
pub(crate) fn has_mcap_magic(path: &Path) -> Result<bool, LogError> {
    let mut f = File::open(path).map_err(|e| LogError::io(path, "open", e))?;
    let mut magic = [0u8; 8];
    let mut got = 0;
    while got < magic.len() {
        match f.read(&mut magic[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(LogError::io(path, "read", e)),
        }
    }
    Ok(got == magic.len() && magic == mcap::MAGIC)
}

/// The `.mcap` files of a rosbag2 folder: those `metadata.yaml` lists under
/// `relative_file_paths`, or else every `.mcap` in the folder, sorted.
pub(crate) fn bag_files(dir: &Path) -> Result<Vec<PathBuf>, LogError> {
    let meta = dir.join("metadata.yaml");
    let mut files = Vec::new();
    if meta.is_file() {
        let text = std::fs::read_to_string(&meta).map_err(|e| LogError::io(&meta, "read", e))?;
        if let Some(line) = text.lines().find(|l| l.trim_start().starts_with("storage_identifier:")) {
            let id = line.split_once(':').map_or("", |(_, v)| v.trim().trim_matches('\''));
            if !id.is_empty() && id != "mcap" {
                return Err(LogError::NotALog {
                    path: meta,
                    detail: format!("storage_identifier is '{id}'; only mcap bags are read"),
                });
            }
        }
        let mut in_list = false;
        for line in text.lines() {
            if line.trim_start().starts_with("relative_file_paths:") {
                in_list = true;
                continue;
            }
            if in_list {
                match line.trim_start().strip_prefix("- ") {
                    Some(name) => files.push(dir.join(name.trim().trim_matches(['\'', '"']))),
                    None => in_list = false,
                }
            }
        }
    }
    if files.is_empty() {
        let rd = std::fs::read_dir(dir).map_err(|e| LogError::io(dir, "list the folder", e))?;
        for entry in rd {
            let p = entry.map_err(|e| LogError::io(dir, "list the folder", e))?.path();
            if p.extension().and_then(|e| e.to_str()) == Some("mcap") {
                files.push(p);
            }
        }
        files.sort();
    }
    if files.is_empty() {
        return Err(LogError::NotALog {
            path: dir.to_path_buf(),
            detail: "no KITTI layout (velodyne/, image_2/, calib/), no metadata.yaml and no .mcap file"
                .into(),
        });
    }
    for f in &files {
        if !f.is_file() {
            return Err(LogError::missing(
                dir,
                format!("bag file {} listed in metadata.yaml does not exist", f.display()),
            ));
        }
    }
    Ok(files)
}

/// A message read from one of the bag's files.
struct RawMsg {
    ordinal: u64,
    file: usize,
    /// Bytes of the file consumed when the message came out.
    offset: u64,
    log_time: u64,
    channel: Arc<mcap::Channel<'static>>,
    data: Vec<u8>,
}

/// Messages of every file in order, numbered across files.
struct MsgStream {
    files: Arc<[PathBuf]>,
    file: usize,
    current: Option<(File, MessageReader, u64)>,
    ordinal: u64,
    done: bool,
}

impl std::fmt::Debug for MsgStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MsgStream")
            .field("file", &self.file)
            .field("ordinal", &self.ordinal)
            .finish_non_exhaustive()
    }
}

impl MsgStream {
    fn new(files: Arc<[PathBuf]>) -> Self {
        Self { files, file: 0, current: None, ordinal: 0, done: false }
    }

    fn next(&mut self) -> Option<Result<RawMsg, LogError>> {
        loop {
            if self.done {
                return None;
            }
            if self.current.is_none() {
                let Some(path) = self.files.get(self.file) else {
                    self.done = true;
                    return None;
                };
                let f = match File::open(path) {
                    Ok(f) => f,
                    Err(e) => {
                        self.done = true;
                        return Some(Err(LogError::io(path, "open", e)));
                    }
                };
                let options = LinearReaderOptions::default()
                    .with_validate_chunk_crcs(true)
                    .with_prevalidate_chunk_crcs(true)
                    .with_validate_data_section_crc(true)
                    .with_validate_summary_section_crc(true)
                    .with_record_length_limit(RECORD_LIMIT);
                self.current = Some((f, MessageReader::new_with_options(options), 0));
            }
            let path = &self.files[self.file];
            let (file, reader, fed) = self.current.as_mut()?;
            match reader.next_event() {
                None => {
                    self.current = None;
                    self.file += 1;
                }
                Some(Ok(MessageReadEvent::ReadRequest(need))) => {
                    let buf = reader.insert(need.clamp(1, READ_LIMIT));
                    let n = loop {
                        match file.read(buf) {
                            Ok(n) => break n,
                            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                            Err(e) => {
                                self.done = true;
                                return Some(Err(LogError::io(path, "read", e)));
                            }
                        }
                    };
                    reader.notify_read(n);
                    *fed += n as u64;
                }
                Some(Ok(MessageReadEvent::Message(m))) => {
                    let ordinal = self.ordinal;
                    self.ordinal += 1;
                    return Some(Ok(RawMsg {
                        ordinal,
                        file: self.file,
                        offset: *fed,
                        log_time: m.log_time,
                        channel: m.channel,
                        data: m.data.into_owned(),
                    }));
                }
                Some(Err(e)) => {
                    self.done = true;
                    return Some(Err(LogError::Corrupt {
                        path: path.clone(),
                        offset: *fed,
                        messages: self.ordinal,
                        detail: e.to_string(),
                    }));
                }
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
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
struct IdxFrame {
    ordinal: u64,
    stamp: u64,
    payload_len: usize,
    size: (u32, u32),
}

#[derive(Debug, Default)]
struct TopicIndex {
    kind: Option<Kind>,
    schema: String,
    labels_for: Option<String>,
    frame_id: Option<String>,
    frames: Vec<IdxFrame>,
    /// CameraInfo: (effective time, ordinal, value).
    infos: Vec<(u64, u64, Arc<CamInfo>)>,
    /// The first message of this topic that could not be decoded.
    error: Option<(u64, LogError)>,
}

/// A frame planned for the streaming pass.
#[derive(Debug, Clone)]
struct Planned {
    stream: LogStream,
    stamp: TimestampNs,
    epoch: CalibEpoch,
    recorded_epoch: Option<CalibEpoch>,
    index: u64,
    ordinal: u64,
    labels: Option<u64>,
    payload_len: usize,
}

/// A scanned bag.
#[derive(Debug)]
pub(crate) struct McapIndex {
    path: PathBuf,
    files: Arc<[PathBuf]>,
    lidar_topic: String,
    camera_topic: String,
    camera_info_topic: String,
    labels_topic: Option<String>,
    planned: Vec<Planned>,
    /// Message ordinals the streaming pass keeps, sorted.
    wanted: Vec<u64>,
    pub sets: Vec<CalibrationSet>,
    pub error: Option<LogError>,
}

fn bad(path: &Path, m: &RawMsg, e: impl std::fmt::Display) -> LogError {
    LogError::BadMessage {
        path: path.to_path_buf(),
        topic: m.channel.topic.clone(),
        ordinal: m.ordinal,
        offset: m.offset,
        detail: e.to_string(),
    }
}

/// The time a calibration message takes effect: its header stamp or its log time, whichever
/// is earlier; a zero stamp counts as absent.
fn effective(stamp: Option<u64>, log_time: u64) -> u64 {
    stamp.map_or(log_time, |s| s.min(log_time))
}

/// A calibration timeline: (effective time, ordinal, value), sorted by time then file order,
/// with the time each entry's value started (the first of its run of equal values).
#[derive(Debug)]
struct Timeline<T> {
    entries: Vec<(u64, u64, T)>,
    run_start: Vec<u64>,
}

impl<T: PartialEq> Timeline<T> {
    fn new(mut entries: Vec<(u64, u64, T)>) -> Self {
        entries.sort_by_key(|e| (e.0, e.1));
        let mut run_start: Vec<u64> = Vec::with_capacity(entries.len());
        for (i, e) in entries.iter().enumerate() {
            let start = if i > 0 && entries[i - 1].2 == e.2 { run_start[i - 1] } else { e.0 };
            run_start.push(start);
        }
        Self { entries, run_start }
    }

    /// The value at `t`: the latest entry at or before `t`, else the first; with the time its
    /// value took effect, if that is at or before `t`.
    fn at(&self, t: u64) -> (&T, Option<u64>) {
        let i = self.entries.partition_point(|e| e.0 <= t);
        if i == 0 {
            (&self.entries[0].2, None)
        } else {
            (&self.entries[i - 1].2, Some(self.run_start[i - 1]))
        }
    }
}

type EdgeKey = (String, String);
/// Every edge's timeline: (effective time, ordinal, parent←child).
type Edges = HashMap<EdgeKey, Vec<(u64, u64, Isometry3<f64>)>>;

struct Scan {
    topics: BTreeMap<String, TopicIndex>,
    /// (parent, child) → (effective time, ordinal, parent←child).
    edges: Edges,
    /// (topic, stamp) → (epoch, ordinal).
    frame_epochs: HashMap<(String, u64), (u64, u64)>,
    /// An error that stops indexing altogether: (ordinal it cuts at, error).
    fatal: Option<(u64, LogError)>,
    per_file_paths: Arc<[PathBuf]>,
}

fn scan(files: Arc<[PathBuf]>) -> Scan {
    let mut s = Scan {
        topics: BTreeMap::new(),
        edges: HashMap::new(),
        frame_epochs: HashMap::new(),
        fatal: None,
        per_file_paths: Arc::clone(&files),
    };
    let mut stream = MsgStream::new(files);
    while let Some(item) = stream.next() {
        let m = match item {
            Ok(m) => m,
            Err(e) => {
                s.fatal = Some((stream.ordinal, e));
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
        let result: Result<(), CdrError> = (|| {
            match kind {
                Kind::Cloud => {
                    let (h, l) = ros::parse_cloud(&m.data)?;
                    t.frame_id.get_or_insert_with(|| h.frame_id.to_owned());
                    t.frames.push(IdxFrame {
                        ordinal: m.ordinal,
                        stamp: h.stamp.unwrap_or(m.log_time),
                        payload_len: l.payload_len(),
                        size: (0, 0),
                    });
                }
                Kind::Image => {
                    let (h, l) = ros::parse_image(&m.data)?;
                    t.frame_id.get_or_insert_with(|| h.frame_id.to_owned());
                    t.frames.push(IdxFrame {
                        ordinal: m.ordinal,
                        stamp: h.stamp.unwrap_or(m.log_time),
                        payload_len: l.payload_len(),
                        size: (l.width, l.height),
                    });
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
                        s.edges.entry((tf.parent, tf.child)).or_default().push((time, m.ordinal, tf.iso));
                    }
                }
                Kind::FrameEpoch => {
                    let fe = ros::parse_frame_epoch(&m.data)?;
                    let stamp = fe.stamp.unwrap_or(m.log_time);
                    s.frame_epochs.insert((fe.topic, stamp), (fe.epoch, m.ordinal));
                }
                Kind::Unsupported | Kind::Other => {}
            }
            Ok(())
        })();
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
    s
}

fn namespace(topic: &str) -> &str {
    topic.rsplit_once('/').map_or("", |(ns, _)| ns)
}

fn topic_list(topics: &BTreeMap<String, TopicIndex>, kind: Kind) -> String {
    let v: Vec<&str> = topics.iter().filter(|(_, t)| t.kind == Some(kind)).map(|(n, _)| n.as_str()).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// Chooses a topic of `kind`: the one asked for, else the only candidate with frames.
fn choose(
    path: &Path,
    s: &Scan,
    kind: Kind,
    asked: Option<&str>,
    what: &str,
    option: &str,
    filter: impl Fn(&str, &TopicIndex) -> bool,
) -> Result<String, LogError> {
    if let Some(asked) = asked {
        return match s.topics.get(asked) {
            Some(t) if t.kind == Some(kind) => Ok(asked.to_owned()),
            _ => Err(LogError::missing(
                path,
                format!(
                    "{what} topic {asked} not found (topics of that type: {})",
                    topic_list(&s.topics, kind)
                ),
            )),
        };
    }
    let all: Vec<&String> =
        s.topics.iter().filter(|(n, t)| t.kind == Some(kind) && filter(n, t)).map(|(n, _)| n).collect();
    let live: Vec<&String> = all.iter().copied().filter(|n| !s.topics[*n].frames.is_empty()).collect();
    match (live.len(), all.len()) {
        (1, _) => Ok(live[0].clone()),
        (0, 1) => Ok(all[0].clone()),
        (0, 0) => {
            let mut msg = format!("no {what} topic ({}) in the log", type_name(kind));
            if kind == Kind::Image {
                let unsupported: Vec<String> = s
                    .topics
                    .iter()
                    .filter(|(_, t)| t.kind == Some(Kind::Unsupported))
                    .map(|(n, t)| format!("{n} ({})", t.schema))
                    .collect();
                if !unsupported.is_empty() {
                    msg += &format!("; unsupported: {}", unsupported.join(", "));
                }
            }
            Err(LogError::missing(path, msg))
        }
        (0, _) => {
            // Every candidate broke on its first message: report the first break.
            let first = all.iter().filter_map(|n| s.topics[*n].error.as_ref()).min_by_key(|(o, _)| *o);
            match first {
                Some((_, e)) => Err(e.clone()),
                None => Err(LogError::missing(path, format!("no {what} frames in the log"))),
            }
        }
        _ => Err(LogError::missing(
            path,
            format!(
                "several {what} topics ({}): choose one with {option}",
                live.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            ),
        )),
    }
}

fn type_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Image => "sensor_msgs/msg/Image",
        Kind::Cloud => "sensor_msgs/msg/PointCloud2",
        Kind::CameraInfo => "sensor_msgs/msg/CameraInfo",
        Kind::Tf => "tf2_msgs/msg/TFMessage",
        _ => "?",
    }
}

/// One step of the chain from the camera's frame to the lidar's.
#[derive(Debug, Clone)]
struct Step {
    edge: EdgeKey,
    /// The edge's parent is the nearer-to-camera frame (use the transform as is), else invert.
    forward: bool,
}

/// Breadth-first search for the chain of transforms from `from` to `to`.
fn find_chain(edges: &Edges, from: &str, to: &str) -> Option<Vec<Step>> {
    if from == to {
        return Some(Vec::new());
    }
    let mut adj: HashMap<&str, Vec<(&str, Step)>> = HashMap::new();
    let mut keys: Vec<&EdgeKey> = edges.keys().collect();
    keys.sort();
    for key in keys {
        let (p, c) = (key.0.as_str(), key.1.as_str());
        adj.entry(p).or_default().push((c, Step { edge: key.clone(), forward: true }));
        adj.entry(c).or_default().push((p, Step { edge: key.clone(), forward: false }));
    }
    let mut prev: HashMap<&str, (&str, Step)> = HashMap::new();
    let mut queue = VecDeque::from([from]);
    while let Some(node) = queue.pop_front() {
        if node == to {
            let mut chain = Vec::new();
            let mut n = to;
            while n != from {
                let (p, step) = prev.remove(n)?;
                chain.push(step);
                n = p;
            }
            chain.reverse();
            return Some(chain);
        }
        for (next, step) in adj.get(node).into_iter().flatten() {
            if *next != from && !prev.contains_key(next) {
                prev.insert(next, (node, step.clone()));
                queue.push_back(next);
            }
        }
    }
    None
}

/// Scans a bag and plans its replay.
pub(crate) fn index(path: &Path, files: Vec<PathBuf>, options: &LogOptions) -> Result<McapIndex, LogError> {
    let files: Arc<[PathBuf]> = files.into();
    let mut s = scan(Arc::clone(&files));
    let chosen = (|| -> Result<_, LogError> {
        let lidar =
            choose(path, &s, Kind::Cloud, options.lidar_topic.as_deref(), "lidar", "lidar_topic", |_, _| {
                true
            })?;
        let camera = choose(
            path,
            &s,
            Kind::Image,
            options.camera_topic.as_deref(),
            "camera",
            "camera_topic",
            |_, t| t.labels_for.is_none(),
        )?;
        let camera_frame = s.topics[&camera].frame_id.clone();
        let info = choose(
            path,
            &s,
            Kind::CameraInfo,
            options.camera_info_topic.as_deref(),
            "camera_info",
            "camera_info_topic",
            |n, t| {
                let infos = s.topics.values().filter(|t| t.kind == Some(Kind::CameraInfo)).count();
                infos == 1
                    || namespace(n) == namespace(&camera)
                    || (t.frame_id.is_some() && t.frame_id == camera_frame)
            },
        )?;
        Ok((lidar, camera, info))
    })();
    let (lidar_topic, camera_topic, info_topic) = match chosen {
        Ok(c) => c,
        // A log that broke before its topics showed up: the break is the error to report.
        Err(e) => return Err(s.fatal.map_or(e, |(_, f)| f)),
    };
    let labels_topic = s
        .topics
        .iter()
        .find(|(_, t)| t.kind == Some(Kind::Image) && t.labels_for.as_deref() == Some(camera_topic.as_str()))
        .map(|(n, _)| n.clone());

    // Where the replay stops: the first break in the file or in a chosen topic.
    let mut cut: Option<(u64, LogError)> = s.fatal.take();
    for topic in [Some(&lidar_topic), Some(&camera_topic), Some(&info_topic), labels_topic.as_ref()]
        .into_iter()
        .flatten()
    {
        if let Some((o, e)) = s.topics.get_mut(topic).and_then(|t| t.error.take()) {
            if cut.as_ref().is_none_or(|(c, _)| o < *c) {
                cut = Some((o, e));
            }
        }
    }
    let limit = cut.as_ref().map_or(u64::MAX, |(o, _)| *o);
    let error = cut.map(|(_, e)| e);
    let fail = |e: LogError| error.clone().unwrap_or(e);

    let take_frames = |s: &Scan, topic: &str| -> Vec<IdxFrame> {
        s.topics[topic].frames.iter().filter(|f| f.ordinal < limit).cloned().collect()
    };
    let lidar = take_frames(&s, &lidar_topic);
    let camera = take_frames(&s, &camera_topic);
    if lidar.is_empty() {
        return Err(fail(LogError::missing(path, format!("lidar topic {lidar_topic} has no frames"))));
    }
    if camera.is_empty() {
        return Err(fail(LogError::missing(path, format!("camera topic {camera_topic} has no frames"))));
    }
    let infos: Vec<(u64, u64, Arc<CamInfo>)> =
        s.topics[&info_topic].infos.iter().filter(|e| e.1 < limit).cloned().collect();
    if infos.is_empty() {
        return Err(fail(LogError::missing(path, format!("camera_info topic {info_topic} has no messages"))));
    }
    let infos = Timeline::new(infos);
    for timeline in s.edges.values_mut() {
        timeline.retain(|e| e.1 < limit);
    }
    s.edges.retain(|_, t| !t.is_empty());

    let camera_frame = s.topics[&camera_topic].frame_id.clone().unwrap_or_default();
    let lidar_frame = s.topics[&lidar_topic].frame_id.clone().unwrap_or_default();
    let chain = find_chain(&s.edges, &camera_frame, &lidar_frame).ok_or_else(|| {
        fail(LogError::NoTransform {
            path: path.to_path_buf(),
            camera_frame: camera_frame.clone(),
            lidar_frame: lidar_frame.clone(),
        })
    })?;
    let edges: HashMap<EdgeKey, Timeline<Isometry3<f64>>> = chain
        .iter()
        .map(|step| (step.edge.clone(), Timeline::new(s.edges.get(&step.edge).cloned().unwrap_or_default())))
        .collect();
    let labels: HashMap<u64, u64> = labels_topic
        .as_ref()
        .map(|t| {
            s.topics[t].frames.iter().filter(|f| f.ordinal < limit).map(|f| (f.stamp, f.ordinal)).collect()
        })
        .unwrap_or_default();
    // In a log that breaks, the images after the last label that survived may have lost
    // theirs to the break: they are not replayed, rather than replayed without ground truth.
    let mut camera = camera;
    if labels_topic.is_some() && error.is_some() {
        let last_label = labels.values().max().copied();
        camera.retain(|f| labels.contains_key(&f.stamp) || last_label.is_some_and(|l| f.ordinal < l));
        if camera.is_empty() {
            return Err(fail(LogError::missing(path, format!("camera topic {camera_topic} has no frames"))));
        }
    }
    let image_size = camera[0].size;

    // Plan: all frames in time order, a sweep before an image of the same stamp.
    let mut planned: Vec<Planned> = Vec::with_capacity(lidar.len() + camera.len());
    for (stream, frames, topic) in
        [(LogStream::Lidar, &lidar, &lidar_topic), (LogStream::Camera, &camera, &camera_topic)]
    {
        for (i, f) in frames.iter().enumerate() {
            let labels = if stream == LogStream::Camera { labels.get(&f.stamp).copied() } else { None };
            let label_len = if labels.is_some() { f.size.0 as usize * f.size.1 as usize * 2 } else { 0 };
            planned.push(Planned {
                stream,
                stamp: TimestampNs(f.stamp),
                epoch: CalibEpoch::NONE,
                recorded_epoch: s
                    .frame_epochs
                    .get(&(topic.clone(), f.stamp))
                    .filter(|e| e.1 < limit)
                    .map(|e| CalibEpoch(e.0)),
                index: i as u64,
                ordinal: f.ordinal,
                labels,
                payload_len: f.payload_len + label_len,
            });
        }
    }
    planned.sort_by_key(|p| (p.stamp, p.stream, p.ordinal));
    for stream in [LogStream::Lidar, LogStream::Camera] {
        for (i, p) in planned.iter_mut().filter(|p| p.stream == stream).enumerate() {
            p.index = i as u64;
        }
    }

    // Number the epochs.
    let mut builder = EpochBuilder::default();
    let mut projections: HashMap<*const CamInfo, Projection> = HashMap::new();
    for p in &mut planned {
        let t = p.stamp.0;
        let (ci, mut since) = infos.at(t);
        let projection = match projections.get(&Arc::as_ptr(ci)) {
            Some(pr) => *pr,
            None => {
                let pr = ci
                    .projection(image_size)
                    .map_err(|e| fail(LogError::missing(path, format!("{info_topic}: {e}"))))?;
                projections.insert(Arc::as_ptr(ci), pr);
                pr
            }
        };
        let mut iso: Option<Isometry3<f64>> = None;
        for step in &chain {
            let (e, when) = edges[&step.edge].at(t);
            since = since.max(when);
            let e = if step.forward { *e } else { e.inverse() };
            iso = Some(iso.map_or(e, |acc| acc * e));
        }
        p.epoch = builder.observe(
            p.stamp,
            since.map(TimestampNs),
            projection,
            Isometry3::identity(),
            iso.unwrap_or_else(Isometry3::identity),
        );
    }
    let sets = builder.finish();

    let mut wanted: Vec<u64> =
        planned.iter().flat_map(|p| std::iter::once(p.ordinal).chain(p.labels)).collect();
    wanted.sort_unstable();
    wanted.dedup();
    Ok(McapIndex {
        path: path.to_path_buf(),
        files,
        lidar_topic,
        camera_topic,
        camera_info_topic: info_topic,
        labels_topic,
        planned,
        wanted,
        sets,
        error,
    })
}

impl McapIndex {
    pub fn format(&self) -> LogFormat {
        LogFormat::Mcap {
            files: self.files.to_vec(),
            lidar_topic: self.lidar_topic.clone(),
            camera_topic: self.camera_topic.clone(),
            camera_info_topic: self.camera_info_topic.clone(),
            labels_topic: self.labels_topic.clone(),
        }
    }

    pub fn frame_count(&self, stream: LogStream) -> usize {
        self.planned.iter().filter(|p| p.stream == stream).count()
    }

    pub fn max_payload_len(&self, stream: LogStream) -> usize {
        self.planned.iter().filter(|p| p.stream == stream).map(|p| p.payload_len).max().unwrap_or(0)
    }

    pub fn camera_period_ns(&self) -> Option<u64> {
        let stamps: Vec<u64> =
            self.planned.iter().filter(|p| p.stream == LogStream::Camera).map(|p| p.stamp.0).collect();
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

/// The streaming pass.
#[derive(Debug)]
pub(crate) struct McapFrames {
    index: Arc<McapIndex>,
    stream: MsgStream,
    next: usize,
    /// Messages read ahead of their turn, by ordinal.
    pending: HashMap<u64, RawMsgBox>,
    error_yielded: bool,
}

struct RawMsgBox(RawMsg);

impl std::fmt::Debug for RawMsgBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "message #{} on {}", self.0.ordinal, self.0.channel.topic)
    }
}

impl McapFrames {
    pub fn new(index: Arc<McapIndex>) -> Result<Self, LogError> {
        // Fail early if a file went away.
        for f in index.files.iter() {
            File::open(f).map_err(|e| LogError::io(f, "open", e))?;
        }
        let stream = MsgStream::new(Arc::clone(&index.files));
        Ok(Self { index, stream, next: 0, pending: HashMap::new(), error_yielded: false })
    }

    fn fetch(&mut self, ordinal: u64) -> Result<RawMsg, LogError> {
        loop {
            if let Some(m) = self.pending.remove(&ordinal) {
                return Ok(m.0);
            }
            match self.stream.next() {
                Some(Ok(m)) => {
                    if self.index.wanted.binary_search(&m.ordinal).is_ok() {
                        self.pending.insert(m.ordinal, RawMsgBox(m));
                    }
                }
                Some(Err(e)) => return Err(e),
                None => {
                    return Err(LogError::missing(
                        &self.index.path,
                        format!("message #{ordinal} is gone: the file changed since it was opened"),
                    ))
                }
            }
        }
    }

    fn frame(&mut self, p: &Planned) -> Result<LogFrame, LogError> {
        let m = self.fetch(p.ordinal)?;
        let path = self.index.files[m.file].clone();
        let changed = |m: &RawMsg, topic: &str| {
            if m.channel.topic == topic {
                Ok(())
            } else {
                Err(bad(
                    &path,
                    m,
                    format!("expected a message on {topic}: the file changed since it was opened"),
                ))
            }
        };
        let name = format!("{}#{}", m.channel.topic, m.ordinal);
        let body = match p.stream {
            LogStream::Lidar => {
                changed(&m, &self.index.lidar_topic)?;
                let (_, layout) = ros::parse_cloud(&m.data).map_err(|e| bad(&path, &m, e))?;
                Body::RosCloud { msg: m.data, layout }
            }
            LogStream::Camera => {
                changed(&m, &self.index.camera_topic)?;
                let (_, layout) = ros::parse_image(&m.data).map_err(|e| bad(&path, &m, e))?;
                let labels = match p.labels {
                    Some(o) => {
                        let lm = self.fetch(o)?;
                        let (_, ll) = ros::parse_image(&lm.data).map_err(|e| bad(&path, &lm, e))?;
                        if (ll.width, ll.height) != (layout.width, layout.height)
                            || ll.encoding != ros::Encoding::Mono16
                        {
                            return Err(bad(
                                &path,
                                &lm,
                                format!(
                                    "label image is {}×{} {:?}, the camera image {}×{} (need mono16 of the same size)",
                                    ll.width, ll.height, ll.encoding, layout.width, layout.height
                                ),
                            ));
                        }
                        Some((lm.data, ll))
                    }
                    None => None,
                };
                Body::RosImage { msg: m.data, layout, labels }
            }
        };
        Ok(LogFrame {
            stream: p.stream,
            stamp: p.stamp,
            epoch: p.epoch,
            index: p.index,
            recorded_epoch: p.recorded_epoch,
            name,
            body,
        })
    }

    pub fn next(&mut self) -> Option<Result<LogFrame, LogError>> {
        let Some(p) = self.index.planned.get(self.next).cloned() else {
            if self.error_yielded {
                return None;
            }
            self.error_yielded = true;
            return self.index.error.clone().map(Err);
        };
        self.next += 1;
        Some(self.frame(&p))
    }
}
