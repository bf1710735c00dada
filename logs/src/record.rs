//! [`McapRecorder`]: camera, lidar and calibration as a ROS 2 MCAP file.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use calib::{CalibrationSet, Projection};
use mcap::records::MessageHeader;
use mcap::{Compression, WriteOptions, Writer};
use nalgebra::Isometry3;
use serde::Serialize;
use shared::frames::{ImageView, PixelFormat, PointRecord};
use shared::{CalibEpoch, FrameSeq, TimestampNs};
use zerocopy::IntoBytes;

use super::mcap_source::LABELS_FOR_KEY;
use super::LogError;

/// Topic and frame names written by [`McapRecorder`].
#[derive(Debug, Clone, Copy)]
pub struct RecorderTopics;

impl RecorderTopics {
    /// `sensor_msgs/msg/PointCloud2`: x, y, z, intensity FLOAT32, ring UINT16, instance UINT32.
    pub const LIDAR: &'static str = "/lidar/points";
    /// `sensor_msgs/msg/Image`, rgb8.
    pub const CAMERA: &'static str = "/camera/image_raw";
    /// `sensor_msgs/msg/CameraInfo`, with every image and at each new epoch.
    pub const CAMERA_INFO: &'static str = "/camera/camera_info";
    /// `sensor_msgs/msg/Image`, mono16 (little-endian): the ground-truth instance id of each
    /// pixel, same stamp as its image. Channel metadata `epochfuse.labels_for` names the camera
    /// topic.
    pub const LABELS: &'static str = "/camera/labels";
    /// `tf2_msgs/msg/TFMessage`: `base_link` → `camera_optical_frame` (camera_to_vehicle) and
    /// `base_link` → `lidar` (lidar_to_vehicle), at each new epoch.
    pub const TF_STATIC: &'static str = "/tf_static";
    /// `epochfuse_msgs/msg/FrameEpoch`: one per camera or lidar frame.
    pub const FRAME_EPOCH: &'static str = "/epochfuse/frame_epoch";
    /// `can_msgs/msg/Frame`: every frame the vehicle bus delivered (runs with a bus only; see
    /// [`crate::can`]).
    pub const CAN: &'static str = "/vehicle/can";
    /// The vehicle frame.
    pub const BASE_FRAME: &'static str = "base_link";
    /// The camera's optical frame (x right, y down, z forward).
    pub const CAMERA_FRAME: &'static str = "camera_optical_frame";
    /// The lidar's frame.
    pub const LIDAR_FRAME: &'static str = "lidar";
}

const SEP: &str = "================================================================================\n";
const HEADER_DEPS: &str = "================================================================================
MSG: std_msgs/Header
builtin_interfaces/Time stamp
string frame_id
================================================================================
MSG: builtin_interfaces/Time
int32 sec
uint32 nanosec
";

fn schema_point_cloud2() -> String {
    format!(
        "std_msgs/Header header
uint32 height
uint32 width
sensor_msgs/PointField[] fields
bool is_bigendian
uint32 point_step
uint32 row_step
uint8[] data
bool is_dense
{HEADER_DEPS}{SEP}MSG: sensor_msgs/PointField
uint8 INT8=1
uint8 UINT8=2
uint8 INT16=3
uint8 UINT16=4
uint8 INT32=5
uint8 UINT32=6
uint8 FLOAT32=7
uint8 FLOAT64=8
string name
uint32 offset
uint8 datatype
uint32 count
"
    )
}

fn schema_image() -> String {
    format!(
        "std_msgs/Header header
uint32 height
uint32 width
string encoding
uint8 is_bigendian
uint32 step
uint8[] data
{HEADER_DEPS}"
    )
}

fn schema_camera_info() -> String {
    format!(
        "std_msgs/Header header
uint32 height
uint32 width
string distortion_model
float64[] d
float64[9] k
float64[9] r
float64[12] p
uint32 binning_x
uint32 binning_y
sensor_msgs/RegionOfInterest roi
{HEADER_DEPS}{SEP}MSG: sensor_msgs/RegionOfInterest
uint32 x_offset
uint32 y_offset
uint32 height
uint32 width
bool do_rectify
"
    )
}

fn schema_tf() -> String {
    format!(
        "geometry_msgs/TransformStamped[] transforms
{SEP}MSG: geometry_msgs/TransformStamped
std_msgs/Header header
string child_frame_id
geometry_msgs/Transform transform
{HEADER_DEPS}{SEP}MSG: geometry_msgs/Transform
geometry_msgs/Vector3 translation
geometry_msgs/Quaternion rotation
{SEP}MSG: geometry_msgs/Vector3
float64 x
float64 y
float64 z
{SEP}MSG: geometry_msgs/Quaternion
float64 x
float64 y
float64 z
float64 w
"
    )
}

fn schema_frame_epoch() -> String {
    format!(
        "# The calibration epoch an epochfuse camera or lidar frame was captured under.
std_msgs/Header header  # the frame's stamp and frame_id
string topic            # the topic of the frame's message
uint64 seq              # the frame's sequence number in its stream
uint64 epoch            # the calibration epoch (1, 2, ...)
{HEADER_DEPS}"
    )
}

#[derive(Serialize)]
pub(crate) struct Time {
    sec: i32,
    nanosec: u32,
}

#[derive(Serialize)]
pub(crate) struct Header<'a> {
    stamp: Time,
    frame_id: &'a str,
}

#[derive(Serialize)]
struct PointField {
    name: &'static str,
    offset: u32,
    datatype: u8,
    count: u32,
}

#[derive(Serialize)]
struct PointCloud2<'a> {
    header: Header<'a>,
    height: u32,
    width: u32,
    fields: &'a [PointField],
    is_bigendian: bool,
    point_step: u32,
    row_step: u32,
    #[serde(with = "serde_bytes")]
    data: &'a [u8],
    is_dense: bool,
}

#[derive(Serialize)]
struct Image<'a> {
    header: Header<'a>,
    height: u32,
    width: u32,
    encoding: &'a str,
    is_bigendian: u8,
    step: u32,
    #[serde(with = "serde_bytes")]
    data: &'a [u8],
}

#[derive(Serialize)]
struct RegionOfInterest {
    x_offset: u32,
    y_offset: u32,
    height: u32,
    width: u32,
    do_rectify: bool,
}

#[derive(Serialize)]
struct CameraInfo<'a> {
    header: Header<'a>,
    height: u32,
    width: u32,
    distortion_model: &'a str,
    d: Vec<f64>,
    k: [f64; 9],
    r: [f64; 9],
    p: [f64; 12],
    binning_x: u32,
    binning_y: u32,
    roi: RegionOfInterest,
}

#[derive(Serialize)]
struct Vector3 {
    x: f64,
    y: f64,
    z: f64,
}

#[derive(Serialize)]
struct QuaternionMsg {
    x: f64,
    y: f64,
    z: f64,
    w: f64,
}

#[derive(Serialize)]
struct TransformMsg {
    translation: Vector3,
    rotation: QuaternionMsg,
}

#[derive(Serialize)]
struct TransformStamped<'a> {
    header: Header<'a>,
    child_frame_id: &'a str,
    transform: TransformMsg,
}

#[derive(Serialize)]
struct TfMessage<'a> {
    transforms: Vec<TransformStamped<'a>>,
}

#[derive(Serialize)]
struct FrameEpoch<'a> {
    header: Header<'a>,
    topic: &'a str,
    seq: u64,
    epoch: u64,
}

const POINT_FIELDS: [PointField; 6] = [
    PointField { name: "x", offset: 0, datatype: 7, count: 1 },
    PointField { name: "y", offset: 4, datatype: 7, count: 1 },
    PointField { name: "z", offset: 8, datatype: 7, count: 1 },
    PointField { name: "intensity", offset: 12, datatype: 7, count: 1 },
    PointField { name: "ring", offset: 16, datatype: 4, count: 1 },
    PointField { name: "instance", offset: 20, datatype: 6, count: 1 },
];

const ONE_MS: u64 = 1_000_000;

#[derive(Debug, Clone, Copy)]
struct Channels {
    lidar: u16,
    camera: u16,
    info: u16,
    labels: u16,
    tf: u16,
    epoch: u16,
}

#[derive(Debug)]
struct Calib {
    set: CalibrationSet,
    stamp: TimestampNs,
    written: bool,
}

/// Writes camera, lidar and calibration streams as a ROS 2 MCAP file (profile `ros2`,
/// message encoding `cdr`, schemas `ros2msg` with their dependencies, LZ4-compressed chunks
/// with CRCs, message and chunk indexes), readable by Foxglove and ROS 2 tools and replayable
/// by [`super::LogSource`].
///
/// Topics are listed in [`RecorderTopics`]:
///
/// - **Epochs.** Each frame's epoch goes on `/epochfuse/frame_epoch` as an
///   `epochfuse_msgs/msg/FrameEpoch` (header = the frame's stamp and frame id, the frame's
///   topic, its seq, its epoch), with the full `.msg` text as schema, so it shows in Foxglove's
///   raw message panel and decodes in ROS tools given the schema. On replay the epochs are
///   numbered again by the log rule from the recorded calibration; they equal the recorded
///   ones for a drive whose epochs start at 1 and each change the calibration, and
///   [`super::LogFrame::recorded_epoch`] gives the recorded number for comparison.
/// - **Calibration.** A set is written as a `CameraInfo` plus a `/tf_static` message
///   (`base_link` → camera and `base_link` → lidar), stamped (header and log time) with the
///   time the state takes effect: for the first calibration 1 ms before the first frame; for a
///   later epoch the `stamp` given to [`McapRecorder::write_calibration`] (pass the set's
///   `valid_from`), kept after the last frame of an older epoch and no later than the first
///   frame of its own. A set is held until the first frame of its epoch is written, so
///   announcing it early is harmless. A `CameraInfo` also goes with every image (ROS
///   convention), same stamp as the image.
/// - **Camera model.** `Pinhole`: `plumb_bob` D = (k1, k2, p1, p2, k3), K, R = I, P = [K|0];
///   replayed as `Pinhole` with the same K and D. `Rectified { p }`: D = 0, K = p's left 3×3,
///   R = I, P = p; replayed as the same `p`.
/// - **Labels.** An image with a label plane also writes it as a mono16 `Image` on
///   `/camera/labels`; the replayed camera payload carries it again (`has_labels` = 1).
pub struct McapRecorder {
    path: PathBuf,
    writer: Option<Writer<BufWriter<File>>>,
    ch: Channels,
    sequence: HashMap<u16, u32>,
    calibs: BTreeMap<u64, Calib>,
    /// Per epoch: (earliest, latest) stamp of the frames written with it.
    spans: BTreeMap<u64, (u64, u64)>,
    any_calibration_written: bool,
    /// The CAN channel, added with the first frame (a run without a bus records as before).
    can: Option<u16>,
}

impl std::fmt::Debug for McapRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McapRecorder")
            .field("path", &self.path)
            .field("epochs", &self.calibs.keys())
            .finish_non_exhaustive()
    }
}

fn ros_time(path: &Path, ns: u64) -> Result<Time, LogError> {
    let sec = i32::try_from(ns / 1_000_000_000).map_err(|_| LogError::Record {
        path: path.to_path_buf(),
        detail: format!("stamp {ns} ns does not fit a ROS time"),
    })?;
    Ok(Time { sec, nanosec: (ns % 1_000_000_000) as u32 })
}

fn encode<T: Serialize>(path: &Path, msg: &T) -> Result<Vec<u8>, LogError> {
    cdr::serialize::<_, _, cdr::CdrLe>(msg, cdr::Infinite).map_err(|e| LogError::Record {
        path: path.to_path_buf(),
        detail: format!("CDR encoding failed: {e}"),
    })
}

impl McapRecorder {
    /// Creates (or truncates) `path` and writes the file header, schemas and channels.
    ///
    /// # Errors
    /// [`LogError::Io`] if the file cannot be created, [`LogError::Record`] if MCAP fails.
    pub fn create(path: impl AsRef<Path>) -> Result<Self, LogError> {
        let path = path.as_ref().to_path_buf();
        let file = File::create(&path).map_err(|e| LogError::io(&path, "create", e))?;
        let options =
            WriteOptions::new().profile("ros2").library("epochfuse").compression(Some(Compression::Lz4));
        let mcap_err = |e: mcap::McapError| LogError::Record { path: path.clone(), detail: e.to_string() };
        let mut w = options.create(BufWriter::with_capacity(1 << 20, file)).map_err(mcap_err)?;
        let none = BTreeMap::new();
        let add =
            |w: &mut Writer<_>, name: &str, text: String, topic: &str, meta: &BTreeMap<String, String>| {
                let schema = w.add_schema(name, "ros2msg", text.as_bytes())?;
                w.add_channel(schema, topic, "cdr", meta)
            };
        let labels_meta = BTreeMap::from([(LABELS_FOR_KEY.to_owned(), RecorderTopics::CAMERA.to_owned())]);
        let ch = (|| {
            Ok(Channels {
                lidar: add(
                    &mut w,
                    "sensor_msgs/msg/PointCloud2",
                    schema_point_cloud2(),
                    RecorderTopics::LIDAR,
                    &none,
                )?,
                camera: add(&mut w, "sensor_msgs/msg/Image", schema_image(), RecorderTopics::CAMERA, &none)?,
                info: add(
                    &mut w,
                    "sensor_msgs/msg/CameraInfo",
                    schema_camera_info(),
                    RecorderTopics::CAMERA_INFO,
                    &none,
                )?,
                labels: add(
                    &mut w,
                    "sensor_msgs/msg/Image",
                    schema_image(),
                    RecorderTopics::LABELS,
                    &labels_meta,
                )?,
                tf: add(&mut w, "tf2_msgs/msg/TFMessage", schema_tf(), RecorderTopics::TF_STATIC, &none)?,
                epoch: add(
                    &mut w,
                    "epochfuse_msgs/msg/FrameEpoch",
                    schema_frame_epoch(),
                    RecorderTopics::FRAME_EPOCH,
                    &none,
                )?,
            })
        })()
        .map_err(mcap_err)?;
        Ok(Self {
            path,
            writer: Some(w),
            ch,
            sequence: HashMap::new(),
            calibs: BTreeMap::new(),
            spans: BTreeMap::new(),
            any_calibration_written: false,
            can: None,
        })
    }

    fn put(&mut self, channel: u16, stamp: u64, data: &[u8]) -> Result<(), LogError> {
        let seq = self.sequence.entry(channel).or_insert(0);
        *seq = seq.wrapping_add(1);
        let header =
            MessageHeader { channel_id: channel, sequence: *seq, log_time: stamp, publish_time: stamp };
        let w = self.writer.as_mut().ok_or_else(|| LogError::Record {
            path: self.path.clone(),
            detail: "recorder already finished".into(),
        })?;
        w.write_to_known_channel(&header, data)
            .map_err(|e| LogError::Record { path: self.path.clone(), detail: e.to_string() })
    }

    fn camera_info(&self, set: &CalibrationSet, stamp: u64) -> Result<Vec<u8>, LogError> {
        const I3: [f64; 9] = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0];
        let (width, height, d, k, p) = match set.camera() {
            Projection::Pinhole(c) => {
                let d = c.distortion;
                (
                    c.width,
                    c.height,
                    vec![d.k1, d.k2, d.p1, d.p2, d.k3],
                    [c.fx, 0.0, c.cx, 0.0, c.fy, c.cy, 0.0, 0.0, 1.0],
                    [c.fx, 0.0, c.cx, 0.0, 0.0, c.fy, c.cy, 0.0, 0.0, 0.0, 1.0, 0.0],
                )
            }
            Projection::Rectified { p, width, height } => {
                let mut k = [0.0; 9];
                let mut pp = [0.0; 12];
                for r in 0..3 {
                    for c in 0..4 {
                        pp[r * 4 + c] = p[(r, c)];
                        if c < 3 {
                            k[r * 3 + c] = p[(r, c)];
                        }
                    }
                }
                (*width, *height, vec![0.0; 5], k, pp)
            }
        };
        let msg = CameraInfo {
            header: Header { stamp: ros_time(&self.path, stamp)?, frame_id: RecorderTopics::CAMERA_FRAME },
            height,
            width,
            distortion_model: "plumb_bob",
            d,
            k,
            r: I3,
            p,
            binning_x: 0,
            binning_y: 0,
            roi: RegionOfInterest { x_offset: 0, y_offset: 0, height: 0, width: 0, do_rectify: false },
        };
        encode(&self.path, &msg)
    }

    fn emit_calibration(&mut self, epoch: u64, t: u64) -> Result<(), LogError> {
        let Some(c) = self.calibs.get_mut(&epoch) else { return Ok(()) };
        c.written = true;
        let set = c.set.clone();
        self.any_calibration_written = true;
        let info = self.camera_info(&set, t)?;
        self.put(self.ch.info, t, &info)?;
        let tf = |child: &'static str, iso: &Isometry3<f64>, stamp: Time| {
            let (tr, q) = (iso.translation.vector, iso.rotation.quaternion());
            TransformStamped {
                header: Header { stamp, frame_id: RecorderTopics::BASE_FRAME },
                child_frame_id: child,
                transform: TransformMsg {
                    translation: Vector3 { x: tr.x, y: tr.y, z: tr.z },
                    rotation: QuaternionMsg { x: q.i, y: q.j, z: q.k, w: q.w },
                },
            }
        };
        let msg = TfMessage {
            transforms: vec![
                tf(RecorderTopics::CAMERA_FRAME, &set.camera_to_vehicle(), ros_time(&self.path, t)?),
                tf(RecorderTopics::LIDAR_FRAME, &set.lidar_to_vehicle(), ros_time(&self.path, t)?),
            ],
        };
        let data = encode(&self.path, &msg)?;
        self.put(self.ch.tf, t, &data)
    }

    /// Latest stamp of a frame written with an epoch before `epoch`.
    fn last_older(&self, epoch: u64) -> Option<u64> {
        self.spans.range(..epoch).map(|(_, s)| s.1).max()
    }

    /// When the calibration of `epoch` takes effect, given the earliest frame `first` of the
    /// epoch written so far and the time the caller gave.
    fn calibration_time(&self, epoch: u64, first: u64, given: u64) -> u64 {
        let lo = self.last_older(epoch).map_or(0, |s| s.saturating_add(1)).min(first);
        if self.any_calibration_written {
            given.clamp(lo, first)
        } else {
            first.saturating_sub(ONE_MS).max(lo)
        }
    }

    /// Records a calibration set. `stamp` is when it takes effect: pass the set's
    /// `valid_from`. It is written (`CameraInfo` + `/tf_static`) when the first frame of
    /// `set.epoch` is written (immediately if frames of that epoch were already written); see
    /// the type's documentation for the exact stamp. A set for an epoch already written is
    /// ignored.
    ///
    /// # Errors
    /// [`LogError::Record`] if writing fails.
    pub fn write_calibration(&mut self, set: &CalibrationSet, stamp: TimestampNs) -> Result<(), LogError> {
        let e = set.epoch.0;
        if self.calibs.get(&e).is_some_and(|c| c.written) {
            return Ok(());
        }
        self.calibs.insert(e, Calib { set: set.clone(), stamp, written: false });
        if let Some(&(first, _)) = self.spans.get(&e) {
            let t = self.calibration_time(e, first, stamp.0);
            self.emit_calibration(e, t)?;
        }
        Ok(())
    }

    fn before_frame(&mut self, stamp: u64, epoch: u64) -> Result<(), LogError> {
        let span = self.spans.entry(epoch).or_insert((stamp, stamp));
        span.0 = span.0.min(stamp);
        span.1 = span.1.max(stamp);
        let first = span.0;
        if let Some(c) = self.calibs.get(&epoch) {
            if !c.written {
                let t = self.calibration_time(epoch, first, c.stamp.0);
                self.emit_calibration(epoch, t)?;
            }
        }
        Ok(())
    }

    fn frame_epoch(
        &mut self,
        stamp: u64,
        frame_id: &str,
        topic: &str,
        seq: FrameSeq,
        epoch: u64,
    ) -> Result<(), LogError> {
        let msg = FrameEpoch {
            header: Header { stamp: ros_time(&self.path, stamp)?, frame_id },
            topic,
            seq: seq.0,
            epoch,
        };
        let data = encode(&self.path, &msg)?;
        self.put(self.ch.epoch, stamp, &data)
    }

    /// Records a lidar sweep (points in the lidar's frame).
    ///
    /// # Errors
    /// [`LogError::Record`] if writing fails or the stamp does not fit a ROS time.
    pub fn write_lidar(
        &mut self,
        stamp: TimestampNs,
        epoch: CalibEpoch,
        seq: FrameSeq,
        points: &[PointRecord],
    ) -> Result<(), LogError> {
        let width = u32::try_from(points.len())
            .map_err(|_| LogError::Record { path: self.path.clone(), detail: "too many points".into() })?;
        self.before_frame(stamp.0, epoch.0)?;
        let msg = PointCloud2 {
            header: Header { stamp: ros_time(&self.path, stamp.0)?, frame_id: RecorderTopics::LIDAR_FRAME },
            height: 1,
            width,
            fields: &POINT_FIELDS,
            is_bigendian: false,
            point_step: 24,
            row_step: width.saturating_mul(24),
            data: points.as_bytes(),
            is_dense: points.iter().all(|p| p.x.is_finite() && p.y.is_finite() && p.z.is_finite()),
        };
        let data = encode(&self.path, &msg)?;
        self.put(self.ch.lidar, stamp.0, &data)?;
        self.frame_epoch(stamp.0, RecorderTopics::LIDAR_FRAME, RecorderTopics::LIDAR, seq, epoch.0)
    }

    /// Records a camera image (rgb8, and its label plane if it has one).
    ///
    /// # Errors
    /// [`LogError::Record`] if the view is inconsistent, writing fails or the stamp does not fit
    /// a ROS time.
    pub fn write_camera(
        &mut self,
        stamp: TimestampNs,
        epoch: CalibEpoch,
        seq: FrameSeq,
        image: &ImageView<'_>,
    ) -> Result<(), LogError> {
        let h = image.header;
        let bad = |detail: String| LogError::Record { path: self.path.clone(), detail };
        if h.format != PixelFormat::Rgb8 as u32 {
            return Err(bad(format!("image pixel format {} is not rgb8", h.format)));
        }
        if image.rgb.len() != h.rgb_len() {
            return Err(bad(format!(
                "rgb plane of {} bytes for a {}×{} image",
                image.rgb.len(),
                h.width,
                h.height
            )));
        }
        if let Some(l) = image.labels {
            if l.len() != h.width as usize * h.height as usize * 2 {
                return Err(bad(format!(
                    "label plane of {} bytes for a {}×{} image",
                    l.len(),
                    h.width,
                    h.height
                )));
            }
        }
        self.before_frame(stamp.0, epoch.0)?;
        let path = self.path.clone();
        let header = || -> Result<Header<'static>, LogError> {
            Ok(Header { stamp: ros_time(&path, stamp.0)?, frame_id: RecorderTopics::CAMERA_FRAME })
        };
        let msg = Image {
            header: header()?,
            height: h.height,
            width: h.width,
            encoding: "rgb8",
            is_bigendian: 0,
            step: h.width.saturating_mul(3),
            data: image.rgb,
        };
        let data = encode(&self.path, &msg)?;
        self.put(self.ch.camera, stamp.0, &data)?;
        if let Some(labels) = image.labels {
            let msg = Image {
                header: header()?,
                height: h.height,
                width: h.width,
                encoding: "mono16",
                is_bigendian: 0,
                step: h.width.saturating_mul(2),
                data: labels,
            };
            let data = encode(&self.path, &msg)?;
            self.put(self.ch.labels, stamp.0, &data)?;
        }
        if let Some(c) = self.calibs.get(&epoch.0) {
            let info = self.camera_info(&c.set, stamp.0)?;
            self.put(self.ch.info, stamp.0, &info)?;
        }
        self.frame_epoch(stamp.0, RecorderTopics::CAMERA_FRAME, RecorderTopics::CAMERA, seq, epoch.0)
    }

    /// Records one frame of the vehicle bus as `can_msgs/msg/Frame` on
    /// [`RecorderTopics::CAN`]: header stamp = when its sender sampled it, log time = when
    /// the bus delivered it. The first frame adds the channel, with `dbc` (the bus's
    /// database, so a replay can decode the frames) in its metadata.
    ///
    /// # Errors
    /// [`LogError::Record`] if writing fails or a stamp does not fit a ROS time.
    pub fn write_can(&mut self, frame: &crate::can::CanFrameMsg, dbc: &str) -> Result<(), LogError> {
        let channel = match self.can {
            Some(c) => c,
            None => {
                let meta = BTreeMap::from([(crate::can::DBC_KEY.to_owned(), dbc.to_owned())]);
                let w = self.writer.as_mut().ok_or_else(|| LogError::Record {
                    path: self.path.clone(),
                    detail: "recorder already finished".into(),
                })?;
                let text = crate::can::SCHEMA_TEXT.to_owned() + HEADER_DEPS;
                let c = w
                    .add_schema(crate::can::SCHEMA, "ros2msg", text.as_bytes())
                    .and_then(|s| w.add_channel(s, RecorderTopics::CAN, "cdr", &meta))
                    .map_err(|e| LogError::Record { path: self.path.clone(), detail: e.to_string() })?;
                *self.can.insert(c)
            }
        };
        let msg = crate::can::Frame {
            header: Header { stamp: ros_time(&self.path, frame.sampled.0)?, frame_id: "can0" },
            id: frame.id,
            is_rtr: false,
            is_extended: frame.extended,
            is_error: false,
            dlc: frame.dlc,
            data: frame.data,
        };
        let data = encode(&self.path, &msg)?;
        self.put(channel, frame.delivered.0, &data)
    }

    /// Writes the summary and footer and flushes the file. Calibration sets whose epoch no
    /// frame carried are not written.
    ///
    /// # Errors
    /// [`LogError::Record`] or [`LogError::Io`] if the file cannot be completed.
    pub fn finish(mut self) -> Result<(), LogError> {
        let Some(mut w) = self.writer.take() else { return Ok(()) };
        w.finish().map_err(|e| LogError::Record { path: self.path.clone(), detail: e.to_string() })?;
        let buf = w.into_inner();
        buf.into_inner().map_err(|e| LogError::io(&self.path, "write", e.into_error()))?;
        Ok(())
    }
}
