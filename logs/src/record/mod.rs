//! [`McapRecorder`]: camera, lidar and calibration as a ROS 2 MCAP file.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use calib::SensorName;
use calib::{CalibrationSet, CameraMount, LidarMount, Projection};
use mcap::records::MessageHeader;
use mcap::{Compression, WriteOptions, Writer};
use nalgebra::Isometry3;
use serde::Serialize;
use shared::frames::{ImageView, PixelFormat, PointRecord};
use shared::{CalibEpoch, FrameSeq, TimestampNs};
use zerocopy::IntoBytes;

use super::mcap_source::LABELS_FOR_KEY;
use super::LogError;
use msgs::{
    schema_camera_info, schema_frame_epoch, schema_image, schema_point_cloud2, schema_tf, CameraInfo,
    FrameEpoch, Image, PointCloud2, QuaternionMsg, RegionOfInterest, TfMessage, TransformMsg,
    TransformStamped, Vector3, HEADER_DEPS, POINT_FIELDS,
};
pub(crate) use msgs::{Header, Time};

mod msgs;

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

    /// The image topic of camera `name` in a recording of a rig: `/NAME/image_raw`
    /// ([`Self::CAMERA`] for the camera named `camera`). Its `CameraInfo` goes on
    /// `/NAME/camera_info`, its labels on `/NAME/labels`, its frame is `NAME_optical_frame`.
    #[must_use]
    pub fn camera_image(name: &str) -> String {
        format!("/{name}/image_raw")
    }

    /// The `CameraInfo` topic of camera `name`: `/NAME/camera_info`.
    #[must_use]
    pub fn camera_info(name: &str) -> String {
        format!("/{name}/camera_info")
    }

    /// The label topic of camera `name`: `/NAME/labels`.
    #[must_use]
    pub fn camera_labels(name: &str) -> String {
        format!("/{name}/labels")
    }

    /// The optical frame of camera `name`: `NAME_optical_frame`.
    #[must_use]
    pub fn camera_frame(name: &str) -> String {
        format!("{name}_optical_frame")
    }

    /// The `PointCloud2` topic of lidar `name`: `/NAME/points` ([`Self::LIDAR`] for `lidar`).
    #[must_use]
    pub fn lidar_points(name: &str) -> String {
        format!("/{name}/points")
    }

    /// The frame of lidar `name`: `NAME` ([`Self::LIDAR_FRAME`] for `lidar`).
    #[must_use]
    pub fn lidar_frame(name: &str) -> String {
        name.to_owned()
    }
}

const ONE_MS: u64 = 1_000_000;

/// One camera's channels and names in a recording.
#[derive(Debug, Clone)]
struct CameraChannels {
    name: SensorName,
    topic: String,
    frame: String,
    image: u16,
    info: u16,
    labels: u16,
}

/// One lidar's channel and names in a recording.
#[derive(Debug, Clone)]
struct LidarChannels {
    name: SensorName,
    topic: String,
    frame: String,
    points: u16,
}

#[derive(Debug, Clone)]
struct Channels {
    lidars: Vec<LidarChannels>,
    cameras: Vec<CameraChannels>,
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

/// Refuses a rig whose lists are empty, repeat a name, or whose frames (and so topics)
/// would clash: `base_link`, each camera's `NAME_optical_frame`, each lidar's `NAME`.
fn check_rig_frames(cameras: &[SensorName], lidars: &[SensorName]) -> Result<(), String> {
    if cameras.is_empty() || lidars.is_empty() {
        return Err("a recording needs at least one camera and one lidar".into());
    }
    let mut frames = std::collections::BTreeSet::from([RecorderTopics::BASE_FRAME.to_owned()]);
    let all = cameras
        .iter()
        .map(|c| RecorderTopics::camera_frame(c.as_str()))
        .chain(lidars.iter().map(|l| RecorderTopics::lidar_frame(l.as_str())));
    for frame in all {
        if !frames.insert(frame.clone()) {
            return Err(format!("two sensors of the rig would both record in frame {frame}"));
        }
    }
    let mut names = std::collections::BTreeSet::new();
    match cameras.iter().chain(lidars).find(|n| !names.insert(n.as_str())) {
        Some(n) => Err(format!("sensor name {n} is given twice")),
        None => Ok(()),
    }
}

/// Adds the schemas and channels: every lidar's points, every camera's image, camera info
/// and labels, then `/tf_static` and the frame epochs (for one camera and one lidar, the
/// order recordings have always had).
fn add_channels<W: std::io::Write + std::io::Seek>(
    w: &mut Writer<W>,
    cameras: &[SensorName],
    lidars: &[SensorName],
) -> Result<Channels, mcap::McapError> {
    let none = BTreeMap::new();
    let add = |w: &mut Writer<W>, name: &str, text: String, topic: &str, meta: &BTreeMap<String, String>| {
        let schema = w.add_schema(name, "ros2msg", text.as_bytes())?;
        w.add_channel(schema, topic, "cdr", meta)
    };
    let mut out_lidars = Vec::with_capacity(lidars.len());
    for l in lidars {
        let topic = RecorderTopics::lidar_points(l.as_str());
        let points = add(w, "sensor_msgs/msg/PointCloud2", schema_point_cloud2(), &topic, &none)?;
        out_lidars.push(LidarChannels {
            name: l.clone(),
            topic,
            frame: RecorderTopics::lidar_frame(l.as_str()),
            points,
        });
    }
    let mut out_cameras = Vec::with_capacity(cameras.len());
    for c in cameras {
        let topic = RecorderTopics::camera_image(c.as_str());
        let image = add(w, "sensor_msgs/msg/Image", schema_image(), &topic, &none)?;
        let info_topic = RecorderTopics::camera_info(c.as_str());
        let info = add(w, "sensor_msgs/msg/CameraInfo", schema_camera_info(), &info_topic, &none)?;
        let labels_meta = BTreeMap::from([(LABELS_FOR_KEY.to_owned(), topic.clone())]);
        let labels_topic = RecorderTopics::camera_labels(c.as_str());
        let labels = add(w, "sensor_msgs/msg/Image", schema_image(), &labels_topic, &labels_meta)?;
        let frame = RecorderTopics::camera_frame(c.as_str());
        out_cameras.push(CameraChannels { name: c.clone(), topic, frame, image, info, labels });
    }
    let tf = add(w, "tf2_msgs/msg/TFMessage", schema_tf(), RecorderTopics::TF_STATIC, &none)?;
    let epoch =
        add(w, "epochfuse_msgs/msg/FrameEpoch", schema_frame_epoch(), RecorderTopics::FRAME_EPOCH, &none)?;
    Ok(Channels { lidars: out_lidars, cameras: out_cameras, tf, epoch })
}

impl McapRecorder {
    /// Creates `path`, new, and writes the file header, schemas and channels of a one-camera
    /// rig (`camera` and `lidar`, the topics of [`RecorderTopics`]).
    ///
    /// # Errors
    /// [`LogError::Io`] if the file cannot be created, also if anything exists at `path` (a
    /// recording never replaces a file); [`LogError::Record`] if MCAP fails.
    pub fn create(path: impl AsRef<Path>) -> Result<Self, LogError> {
        Self::create_rig(path, &[SensorName::camera()], &[SensorName::lidar()])
    }

    /// Creates `path`, new, for a rig of `cameras` and `lidars` (each list non-empty,
    /// the primary first): every sensor gets its own topics by the naming rule of
    /// [`RecorderTopics::camera_image`] and [`RecorderTopics::lidar_points`], so a
    /// one-camera rig named `camera` and `lidar` writes exactly what [`Self::create`] writes.
    ///
    /// # Errors
    /// [`LogError::Io`] if the file cannot be created, also if anything exists at `path`;
    /// [`LogError::Record`] if MCAP fails, a list is empty or holds a name twice, or two
    /// sensors' frames would have one name.
    pub fn create_rig(
        path: impl AsRef<Path>,
        cameras: &[SensorName],
        lidars: &[SensorName],
    ) -> Result<Self, LogError> {
        let path = path.as_ref().to_path_buf();
        let record_err = |detail: String| LogError::Record { path: path.clone(), detail };
        check_rig_frames(cameras, lidars).map_err(record_err)?;
        // New only (`O_EXCL`): a recording never replaces a file, nor follows a link there.
        let file = File::create_new(&path).map_err(|e| LogError::io(&path, "create", e))?;
        let options =
            WriteOptions::new().profile("ros2").library("epochfuse").compression(Some(Compression::Lz4));
        let mcap_err = |e: mcap::McapError| LogError::Record { path: path.clone(), detail: e.to_string() };
        let mut w = options.create(BufWriter::with_capacity(1 << 20, file)).map_err(mcap_err)?;
        let ch = add_channels(&mut w, cameras, lidars).map_err(mcap_err)?;
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

    /// Camera `i`'s model and mount in `set`: the camera of its name, or in a one-camera
    /// recording the set's only camera whatever its name.
    fn camera_in<'s>(&self, set: &'s CalibrationSet, i: usize) -> Option<&'s CameraMount> {
        let name = self.ch.cameras[i].name.as_str();
        set.camera_named(name)
            .or_else(|| (self.ch.cameras.len() == 1 && set.cameras.len() == 1).then(|| &set.cameras[0]))
    }

    /// Lidar `i`'s mount in `set` (by name, or the only one as for cameras).
    fn lidar_in<'s>(&self, set: &'s CalibrationSet, i: usize) -> Option<&'s LidarMount> {
        let name = self.ch.lidars[i].name.as_str();
        set.lidar_named(name)
            .or_else(|| (self.ch.lidars.len() == 1 && set.lidars.len() == 1).then(|| &set.lidars[0]))
    }

    fn camera_info(&self, camera: &Projection, frame_id: &str, stamp: u64) -> Result<Vec<u8>, LogError> {
        const I3: [f64; 9] = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0];
        let (width, height, d, k, p) = match camera {
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
            header: Header { stamp: ros_time(&self.path, stamp)?, frame_id },
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

    /// Writes epoch `epoch`'s calibration at `t`: each camera's `CameraInfo`, then one
    /// `/tf_static` message with every camera's and every lidar's mount (a sensor the set
    /// lacks is left out).
    fn emit_calibration(&mut self, epoch: u64, t: u64) -> Result<(), LogError> {
        let Some(c) = self.calibs.get_mut(&epoch) else { return Ok(()) };
        c.written = true;
        let set = c.set.clone();
        self.any_calibration_written = true;
        let mut mounts: Vec<(String, Isometry3<f64>)> = Vec::new();
        for i in 0..self.ch.cameras.len() {
            let Some(mount) = self.camera_in(&set, i) else { continue };
            let ch = &self.ch.cameras[i];
            let (info_ch, frame) = (ch.info, ch.frame.clone());
            let info = self.camera_info(&mount.projection, &frame, t)?;
            self.put(info_ch, t, &info)?;
            mounts.push((frame, mount.to_vehicle));
        }
        for i in 0..self.ch.lidars.len() {
            if let Some(mount) = self.lidar_in(&set, i) {
                mounts.push((self.ch.lidars[i].frame.clone(), mount.to_vehicle));
            }
        }
        let stamp = |path: &Path| ros_time(path, t);
        let mut transforms = Vec::with_capacity(mounts.len());
        for (child, iso) in &mounts {
            let (tr, q) = (iso.translation.vector, iso.rotation.quaternion());
            transforms.push(TransformStamped {
                header: Header { stamp: stamp(&self.path)?, frame_id: RecorderTopics::BASE_FRAME },
                child_frame_id: child,
                transform: TransformMsg {
                    translation: Vector3 { x: tr.x, y: tr.y, z: tr.z },
                    rotation: QuaternionMsg { x: q.i, y: q.j, z: q.k, w: q.w },
                },
            });
        }
        let data = encode(&self.path, &TfMessage { transforms })?;
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

    /// Records a sweep of the primary lidar (points in the lidar's frame).
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
        self.write_lidar_of(0, stamp, epoch, seq, points)
    }

    /// Which lidar (or camera) of the recording is named `name`.
    ///
    /// # Errors
    /// [`LogError::Record`] if the recording has no sensor of that name.
    pub fn sensor_index(&self, name: &str) -> Result<usize, LogError> {
        let lidar = self.ch.lidars.iter().position(|l| l.name.as_str() == name);
        lidar.or_else(|| self.ch.cameras.iter().position(|c| c.name.as_str() == name)).ok_or_else(|| {
            LogError::Record {
                path: self.path.clone(),
                detail: format!("the recording has no sensor {name}"),
            }
        })
    }

    /// Records a sweep of lidar `lidar` (its index among the rig's lidars, see
    /// [`Self::sensor_index`]).
    ///
    /// # Errors
    /// [`LogError::Record`] if `lidar` is out of range, writing fails or the stamp does not
    /// fit a ROS time.
    pub fn write_lidar_of(
        &mut self,
        lidar: usize,
        stamp: TimestampNs,
        epoch: CalibEpoch,
        seq: FrameSeq,
        points: &[PointRecord],
    ) -> Result<(), LogError> {
        let ch = self.ch.lidars.get(lidar).cloned().ok_or_else(|| LogError::Record {
            path: self.path.clone(),
            detail: format!("no lidar #{lidar} in the recording"),
        })?;
        let width = u32::try_from(points.len())
            .map_err(|_| LogError::Record { path: self.path.clone(), detail: "too many points".into() })?;
        self.before_frame(stamp.0, epoch.0)?;
        let msg = PointCloud2 {
            header: Header { stamp: ros_time(&self.path, stamp.0)?, frame_id: &ch.frame },
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
        self.put(ch.points, stamp.0, &data)?;
        self.frame_epoch(stamp.0, &ch.frame, &ch.topic, seq, epoch.0)
    }

    /// Records an image of the primary camera (rgb8, and its label plane if it has one).
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
        self.write_camera_of(0, stamp, epoch, seq, image)
    }

    /// Records an image of camera `camera` (its index among the rig's cameras, see
    /// [`Self::sensor_index`]), with its `CameraInfo` for the frame's epoch.
    ///
    /// # Errors
    /// [`LogError::Record`] if `camera` is out of range, the view is inconsistent, writing
    /// fails or the stamp does not fit a ROS time.
    pub fn write_camera_of(
        &mut self,
        camera: usize,
        stamp: TimestampNs,
        epoch: CalibEpoch,
        seq: FrameSeq,
        image: &ImageView<'_>,
    ) -> Result<(), LogError> {
        let ch = self.ch.cameras.get(camera).cloned().ok_or_else(|| LogError::Record {
            path: self.path.clone(),
            detail: format!("no camera #{camera} in the recording"),
        })?;
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
        let header = || -> Result<Header<'_>, LogError> {
            Ok(Header { stamp: ros_time(&path, stamp.0)?, frame_id: &ch.frame })
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
        self.put(ch.image, stamp.0, &data)?;
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
            self.put(ch.labels, stamp.0, &data)?;
        }
        if let Some(mount) = self.calibs.get(&epoch.0).and_then(|c| self.camera_in(&c.set, camera)) {
            let info = self.camera_info(&mount.projection, &ch.frame, stamp.0)?;
            self.put(ch.info, stamp.0, &info)?;
        }
        self.frame_epoch(stamp.0, &ch.frame, &ch.topic, seq, epoch.0)
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
