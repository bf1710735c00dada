//! # logs: recorded logs for epochfuse
//!
//! Reads KITTI folders and ROS 2 MCAP bags as epochfuse frames with calibration epochs, and
//! writes both: MCAP from a live run (the recorder), KITTI from the simulator (`sim export`).
//! It knows nothing of the simulator, the rings or the pipeline: it depends on `shared` (ids,
//! payload layouts) and `calib` (calibration sets) only.
//!
//! The contract:
//!
//! - **In**: a KITTI object-layout folder, an `.mcap` file or a rosbag2 folder
//!   ([`LogSource`], [`OpenedLog`]). **Out**: camera and lidar frames in epochfuse's payload
//!   layout ([`LogFrame`]), the calibration epochs of the log ([`CalibrationSet`]s numbered
//!   1, 2, ... by the rule below), an MCAP recording ([`McapRecorder`]), a KITTI folder
//!   ([`KittiWriter`]).
//! - **Order**: frames come in time order, a lidar sweep before an image of the same stamp
//!   ([`replay_rank`]; not `StreamKind`'s `Ord`). Each frame carries the epoch it was captured
//!   under; epochs only increase.
//! - **Bounded reads**: no length read from a file is trusted. MCAP records are capped at
//!   512 MiB and reads at 4 MiB; every CDR length is checked against the bytes left before
//!   anything is allocated; image sides are capped at `shared::frames::MAX_IMAGE_SIDE`. A bag
//!   is streamed: in memory are the frames being handed out and a small reorder buffer,
//!   never the whole bag.
//! - **Errors are one line**: [`LogError`] and [`KittiWriteError`] display as a single line
//!   naming the file and, where it applies, the line, key, topic, message ordinal or byte
//!   offset. Bad input is an error, never a panic. A bag that breaks part-way replays its
//!   frames before the break, then yields the break; so does a KITTI folder whose frame
//!   after the first has a file missing or malformed (a bad first frame refuses it).
//!
//! Modules: `kitti` (reading) and `kitti_write` (writing) KITTI folders; `mcap_source`
//! (reading bags: read, scan, topics, plan, frames); `ros` and `cdr_read` (decoding ROS 2
//! messages); `epochs` (the epochs-in-a-log rule); `record` (the MCAP recorder); `opened`
//! ([`OpenedLog`], a log on the pipeline clock); `error` ([`LogError`]).
//!
//! # Reading
//!
//! [`LogSource::open`] takes a KITTI folder (`velodyne/`, `image_2/`, `calib/`), an `.mcap`
//! file, or a rosbag2 folder (`metadata.yaml` and its `.mcap` files). It scans the log once
//! (for MCAP: one indexing pass that decodes calibration messages and frame headers, not
//! point or pixel data) and gives:
//!
//! - the calibration epochs, [`LogSource::calibrations`], numbered 1, 2, ... by the rule
//!   below;
//! - the frames, [`LogSource::frames`]: a lazy, time-ordered iterator of [`LogFrame`]s (for
//!   MCAP a second, streaming pass; only the frames being handed out are in memory). Each
//!   frame writes its payload in epochfuse's layout with [`LogFrame::write_payload`].
//!
//! A bag's index can be saved ([`LogSource::save_index`]) and a bag opened with it in another
//! process ([`LogSource::open_saved`]) without the indexing pass; the saved index is refused
//! if the bag changed since (device, inode, size, modification time) or if it does not hang
//! together.
//!
//! # Epochs in a log (DESIGN §6)
//!
//! The calibration state at time t is the latest lidar→camera transform and the latest camera
//! intrinsics at or before t; before the first one, the first one in the log applies. Frames
//! are visited in time order and each change of state (compared by value) opens the next
//! epoch. An epoch's `valid_from` is when its state took effect: when the last of its parts
//! (a transform of the chain, the intrinsics) took the value it has, by the first message
//! carrying that value; never at or before the previous epoch's last frame. Epoch 1 is valid
//! from its first frame. A state that returns after a change (A, B, A) is a new epoch: epochs
//! only increase.
//!
//! KITTI: each frame's calib file, parsed, with its image size, is its state (see
//! [`LogSource::calibrations`] for the projection). Frames get synthetic stamps 100 ms apart
//! from 0, sorted by number; an image has its sweep's stamp.
//!
//! ROS 2: the state is the chosen `CameraInfo` topic's message and the chain of `/tf` and
//! `/tf_static` transforms from the image's `frame_id` to the cloud's; for a bag replayed as a
//! rig ([`bag_cameras`]), every chosen camera's `CameraInfo` and chain and the lidar's, so a
//! change of any of them opens an epoch for the whole rig. A calibration message
//! takes effect at its header stamp or its log time, whichever is earlier (a zero stamp, as
//! `/tf_static` often has, counts as absent): a `CameraInfo` sent with an image describes that
//! image, and no message can apply before it was logged. Frames are stamped with their header
//! stamp (or the log time if the stamp is zero).
//!
//! # Writing
//!
//! [`McapRecorder`] writes camera, lidar and calibration as ROS 2 messages that Foxglove and
//! ROS tools read, and that replay through [`LogSource`] with the same epochs, points,
//! instance ids, images, labels and projection. See its documentation for the topics.
//!
//! [`KittiWriter`] writes a KITTI folder that [`LogSource`] reads back: velodyne `.bin`, PNG,
//! calib text in KITTI's `%.12e` format ([`kitti_calib_text`]), `timestamps.txt`.
#![forbid(unsafe_code)]

pub mod can;
mod can_saved;
mod cdr_read;
mod epochs;
mod error;
mod kitti;
mod kitti_cameras;
mod kitti_write;
mod mcap_source;
mod opened;
mod prefetch;
mod record;
mod ros;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use calib::{CalibrationSet, SensorName};
use shared::frames::PayloadSink;
use shared::{CalibEpoch, StreamKind, TimestampNs};

pub use error::{LogError, WriteError};
pub use kitti_cameras::{kitti_cameras, KittiCamera, KittiRigFrame};
pub use kitti_write::{fmt_e12, kitti_calib_text, KittiWriteError, KittiWriter};
pub use mcap_source::{bag_cameras, BagCamera, BagRig};
pub use opened::OpenedLog;
pub use prefetch::Prefetched;
pub use record::{McapRecorder, RecorderTopics};

/// The order in which frames of equal stamp are replayed: a lidar sweep before an image.
///
/// This is not [`StreamKind`]'s `Ord` (which puts the camera first): every place that orders
/// frames (the bag plan, the KITTI interleave, tests building expected streams) sorts by
/// `(stamp, replay_rank(stream))`, so replays keep the order they have always had.
#[must_use]
pub const fn replay_rank(stream: StreamKind) -> u8 {
    match stream {
        StreamKind::Lidar => 0,
        StreamKind::Camera => 1,
        StreamKind::Fused => 2,
        StreamKind::CalibTable => 3,
        StreamKind::Can => 4,
    }
}

/// What kind of log a [`LogSource`] reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// A KITTI object-layout folder.
    Kitti,
    /// MCAP (a file, or the files of a rosbag2 folder) with the topics chosen.
    Mcap {
        /// The `.mcap` files, in order.
        files: Vec<PathBuf>,
        /// The `sensor_msgs/msg/PointCloud2` topic.
        lidar_topic: String,
        /// The `sensor_msgs/msg/Image` topic.
        camera_topic: String,
        /// The `sensor_msgs/msg/CameraInfo` topic.
        camera_info_topic: String,
        /// The label (mono16 `Image`) topic recorded by [`McapRecorder`], if any.
        labels_topic: Option<String>,
    },
}

/// How to read a bag that has several candidate topics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// The `PointCloud2` topic to replay (default: the only one).
    pub lidar_topic: Option<String>,
    /// The `Image` topic to replay (default: the only one, not counting label topics).
    pub camera_topic: Option<String>,
    /// The `CameraInfo` topic (default: the one next to the camera topic, or the only one).
    pub camera_info_topic: Option<String>,
    /// The cameras of a bag to replay, each by its sensor name or image topic (`--cameras`;
    /// see [`bag_cameras`] for which topics are cameras and how they are named); `None`:
    /// every camera (one camera replays as `camera`, as ever). Not with `camera_topic`.
    pub cameras: Option<Vec<String>>,
}

/// A recorded log, scanned and ready to replay.
#[derive(Debug)]
pub struct LogSource {
    path: PathBuf,
    inner: Inner,
    sets: Vec<CalibrationSet>,
}

#[derive(Debug)]
enum Inner {
    Kitti(Arc<kitti::KittiIndex>),
    Mcap(Arc<mcap_source::McapIndex>),
}

impl LogSource {
    /// Opens a KITTI folder, an `.mcap` file or a rosbag2 folder, with default options.
    ///
    /// # Errors
    /// [`LogError`] if the path is no log, a file is malformed, or something the replay needs
    /// (a camera, a cloud, a camera calibration, a transform between them) is missing.
    /// A bag or KITTI folder that breaks part-way opens with the frames before the break;
    /// the break is reported by [`LogSource::index_error`] and at the end of
    /// [`LogSource::frames`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self, LogError> {
        Self::open_with(path, &LogOptions::default())
    }

    /// Opens a log with options (topic choice for bags).
    ///
    /// # Errors
    /// As [`LogSource::open`].
    pub fn open_with(path: impl AsRef<Path>, options: &LogOptions) -> Result<Self, LogError> {
        Self::checked(Self::open_unchecked(path.as_ref(), options)?)
    }

    /// The index a bag was opened with, saved for another process to open the same bag
    /// without indexing it again ([`LogSource::open_saved`]); `None` for a KITTI folder,
    /// whose scan reads only its calibration files and image headers.
    ///
    /// # Errors
    /// [`LogError::Io`] if a file's metadata cannot be read.
    pub fn save_index(&self) -> Result<Option<Vec<u8>>, LogError> {
        match &self.inner {
            Inner::Kitti(_) => Ok(None),
            Inner::Mcap(m) => m.save().map(Some),
        }
    }

    /// Opens the bag at `path` with an index saved by [`LogSource::save_index`] (`bytes`,
    /// read from the file `plan`) instead of indexing it: the same log, the same checks as
    /// [`LogSource::open_with`]. The saved index is checked first: it must be of this bag,
    /// whose files must not have changed since (device, inode, size, modification time),
    /// and hang together.
    ///
    /// # Errors
    /// [`LogError::Input`] naming `plan` if the saved index is refused; otherwise as
    /// [`LogSource::open`].
    pub fn open_saved(path: impl AsRef<Path>, plan: &Path, bytes: &[u8]) -> Result<Self, LogError> {
        let index = mcap_source::McapIndex::load(path.as_ref(), plan, bytes)?;
        let sets = index.sets.clone();
        Self::checked(Self { path: path.as_ref().to_path_buf(), inner: Inner::Mcap(Arc::new(index)), sets })
    }

    /// The checks every opened log passes, however it was opened.
    fn checked(log: Self) -> Result<Self, LogError> {
        // Every frame must fit one ring slot: refused here, not when a role creates its ring.
        for stream in [StreamKind::Lidar, StreamKind::Camera] {
            let len = log.max_payload_len(stream) as u64;
            if len > shared::layout::MAX_SLOT_CAPACITY {
                return Err(LogError::Input {
                    path: log.path.clone(),
                    detail: format!(
                        "{}: a {} frame of {len} bytes is larger than the {}-byte slot limit",
                        log.path.display(),
                        stream.name(),
                        shared::layout::MAX_SLOT_CAPACITY
                    ),
                });
            }
        }
        // The same plausibility checks as `calib check` and the calibration service.
        for set in &log.sets {
            calib::validate::check_set(set).map_err(|e| LogError::Input {
                path: log.path.clone(),
                detail: format!("{}: calibration epoch {}: {e}", log.path.display(), set.epoch.0),
            })?;
        }
        Ok(log)
    }

    fn open_unchecked(path: &Path, options: &LogOptions) -> Result<Self, LogError> {
        let path = path.to_path_buf();
        let meta = std::fs::metadata(&path).map_err(|e| LogError::io(&path, "open", e))?;
        if meta.is_dir() {
            if kitti::is_kitti(&path) {
                // A bag's choices mean nothing here: refused, never silently ignored.
                let bag_only = [
                    (options.cameras.is_some(), "--cameras: chooses the cameras"),
                    (options.lidar_topic.is_some(), "--lidar-topic: chooses the lidar topic"),
                    (options.camera_topic.is_some(), "--camera-topic: chooses the camera topic"),
                    (
                        options.camera_info_topic.is_some(),
                        "the camera info topic: chooses the CameraInfo topic",
                    ),
                ];
                if let Some((_, what)) = bag_only.iter().find(|(set, _)| *set) {
                    return Err(LogError::missing(
                        &path,
                        format!("{what} of a bag; a KITTI folder replays image_2 (and image_3) as it is"),
                    ));
                }
                // A second colour camera makes the folder a rig; without it, as ever.
                let index = if path.join("image_3").is_dir() {
                    kitti_cameras::scan_rig(&path)?
                } else {
                    kitti::scan(&path)?
                };
                let sets = index.sets.clone();
                return Ok(Self { path, inner: Inner::Kitti(Arc::new(index)), sets });
            }
            let files = mcap_source::bag_files(&path)?;
            return Self::open_mcap(path, files, options);
        }
        if !mcap_source::has_mcap_magic(&path)? {
            return Err(LogError::NotALog {
                path,
                detail:
                    "expected a KITTI folder (velodyne/, image_2/, calib/), an .mcap file or a rosbag2 folder"
                        .into(),
            });
        }
        Self::open_mcap(path.clone(), vec![path], options)
    }

    fn open_mcap(path: PathBuf, files: Vec<PathBuf>, options: &LogOptions) -> Result<Self, LogError> {
        let index = mcap_source::index(&path, files, options)?;
        let sets = index.sets.clone();
        Ok(Self { path, inner: Inner::Mcap(Arc::new(index)), sets })
    }

    /// The path given to [`LogSource::open`].
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What was opened, with the topics chosen for a bag.
    #[must_use]
    pub fn format(&self) -> LogFormat {
        match &self.inner {
            Inner::Kitti(_) => LogFormat::Kitti,
            Inner::Mcap(m) => m.format(),
        }
    }

    /// The calibration epochs: `[0]` is epoch 1, each with the `valid_from` where its state
    /// first applies.
    ///
    /// For a KITTI folder the camera (cam 0, rectified) frame serves as the vehicle frame:
    /// `camera_to_vehicle` is the identity, `lidar_to_vehicle` is `Tr_velo_to_cam`, and the
    /// camera is `Projection::Rectified { p ≈ P2 · [R0_rect|0] }`. For a bag likewise:
    /// `camera_to_vehicle` is the identity and `lidar_to_vehicle` is T(camera←lidar) from tf.
    /// For a bag replayed as a rig the vehicle frame is the root of the lidar's tf tree
    /// (`base_link` in a recording): every mount is T(root←sensor) from tf.
    #[must_use]
    pub fn calibrations(&self) -> &[CalibrationSet] {
        &self.sets
    }

    /// The calibration set of `epoch`, if the log has it.
    #[must_use]
    pub fn calibration(&self, epoch: CalibEpoch) -> Option<&CalibrationSet> {
        let i = usize::try_from(epoch.0).ok()?.checked_sub(1)?;
        self.sets.get(i)
    }

    /// The frames, in time order (a lidar sweep before an image of the same stamp).
    ///
    /// For MCAP this opens the file(s) again and streams. After the last valid frame of a log
    /// that breaks part-way (a bag, a KITTI folder) it yields the error once, then ends.
    ///
    /// # Errors
    /// [`LogError::Io`] if a file cannot be opened.
    pub fn frames(&self) -> Result<LogFrames, LogError> {
        let inner = match &self.inner {
            Inner::Kitti(k) => FramesInner::Kitti { index: Arc::clone(k), next: 0, defer: false },
            Inner::Mcap(m) => FramesInner::Mcap(Box::new(mcap_source::McapFrames::new(Arc::clone(m))?)),
        };
        Ok(LogFrames { inner, done: false })
    }

    /// Number of frames of a stream (0 for a kind no log carries: fused, calib).
    #[must_use]
    pub fn frame_count(&self, stream: StreamKind) -> usize {
        match &self.inner {
            Inner::Kitti(k) if stream.is_sensor() => k.frames.len(),
            Inner::Kitti(_) => 0,
            Inner::Mcap(m) => m.frame_count(stream),
        }
    }

    /// The largest payload of a stream, in bytes (to size ring slots; 0 for fused, calib):
    /// for a rig, the largest of its cameras'.
    #[must_use]
    pub fn max_payload_len(&self, stream: StreamKind) -> usize {
        self.sensors().iter().filter(|s| s.kind == stream).map(|s| s.max_payload_len).max().unwrap_or(0)
    }

    /// The log's sensors, cameras first (the primary camera leads), then the lidar. A
    /// one-camera log has `camera` and `lidar`; a KITTI folder with `image_3` has `camera`
    /// (image_2, P2), `camera_3` (image_3, P3) and `lidar`; a bag replayed as a rig has its
    /// cameras and lidar named by their topics ([`bag_cameras`]).
    #[must_use]
    pub fn sensors(&self) -> Vec<LogSensor> {
        let sensor = |name, kind, max_payload_len| LogSensor { name, kind, max_payload_len };
        match &self.inner {
            Inner::Kitti(k) => {
                let largest =
                    |f: &dyn Fn(&kitti::KittiFrame) -> usize| k.frames.iter().map(f).max().unwrap_or(0);
                let mut out: Vec<LogSensor> = k
                    .cameras
                    .iter()
                    .enumerate()
                    .map(|(c, name)| {
                        let len = largest(&|f| {
                            let i = &f.images[c];
                            shared::frames::IMAGE_HEADER_SIZE + i.width as usize * i.height as usize * 3
                        });
                        sensor(name.clone(), StreamKind::Camera, len)
                    })
                    .collect();
                let lidar = largest(&|f| f.points * size_of::<shared::frames::PointRecord>());
                out.push(sensor(SensorName::lidar(), StreamKind::Lidar, lidar));
                out
            }
            Inner::Mcap(m) => {
                let mut out: Vec<LogSensor> = m
                    .cameras
                    .iter()
                    .enumerate()
                    .map(|(i, c)| {
                        sensor(c.name.clone(), StreamKind::Camera, m.max_payload_len(StreamKind::Camera, i))
                    })
                    .collect();
                out.push(sensor(
                    m.lidar_name.clone(),
                    StreamKind::Lidar,
                    m.max_payload_len(StreamKind::Lidar, 0),
                ));
                out
            }
        }
    }

    /// The camera's nominal period: the median gap between consecutive images (100 ms for
    /// KITTI, and for a log with fewer than two images). Fusion's `max_skew` defaults to half.
    #[must_use]
    pub fn camera_period(&self) -> Duration {
        let ns = match &self.inner {
            Inner::Kitti(_) => kitti::KITTI_PERIOD_NS,
            Inner::Mcap(m) => m.camera_period_ns().unwrap_or(kitti::KITTI_PERIOD_NS),
        };
        Duration::from_nanos(ns)
    }

    /// The stamp of the first frame.
    #[must_use]
    pub fn start(&self) -> TimestampNs {
        match &self.inner {
            Inner::Kitti(k) => k.frames.first().map_or(TimestampNs(0), |f| f.stamp),
            Inner::Mcap(m) => m.start(),
        }
    }

    /// Time from the first frame to the last.
    #[must_use]
    pub fn duration(&self) -> Duration {
        match &self.inner {
            Inner::Kitti(k) => Duration::from_nanos(k.frames.last().map_or(0, |f| f.stamp.0)),
            Inner::Mcap(m) => Duration::from_nanos(m.end().0 - m.start().0),
        }
    }

    /// Where a bag or a KITTI folder broke, if it did: the frames stop before this point.
    #[must_use]
    pub fn index_error(&self) -> Option<&LogError> {
        match &self.inner {
            Inner::Kitti(k) => k.error.as_ref(),
            Inner::Mcap(m) => m.error.as_ref(),
        }
    }

    /// Whether a bag has a message on `topic` before its break (false for a KITTI folder):
    /// what tells the replay, without another pass, whether to look for a recorded bus.
    #[must_use]
    pub fn has_topic(&self, topic: &str) -> bool {
        match &self.inner {
            Inner::Kitti(_) => false,
            Inner::Mcap(m) => m.topics.binary_search_by(|t| t.as_str().cmp(topic)).is_ok(),
        }
    }
}

/// One sensor of a log: what a replay makes a ring and a producer's place for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogSensor {
    /// Its name, which [`LogFrame::sensor`] gives its frames.
    pub name: SensorName,
    /// Camera or lidar.
    pub kind: StreamKind,
    /// Its largest payload, bytes (to size its ring's slots).
    pub max_payload_len: usize,
}

/// The frames of a [`LogSource`], in time order. `Send`: it can move to a replayer thread.
#[derive(Debug)]
pub struct LogFrames {
    inner: FramesInner,
    done: bool,
}

#[derive(Debug)]
enum FramesInner {
    /// `defer`: images are decoded when written (see [`LogFrames::defer_images`]).
    Kitti {
        index: Arc<kitti::KittiIndex>,
        next: usize,
        defer: bool,
    },
    Mcap(Box<mcap_source::McapFrames>),
}

impl LogFrames {
    /// A KITTI folder's images are then decoded by [`LogFrame::write_payload`], row by row
    /// straight into the sink (a ring slot), instead of into a buffer when the frame is read;
    /// a broken PNG is then reported by the write. Other logs are unchanged.
    #[must_use]
    pub fn defer_images(mut self) -> Self {
        if let FramesInner::Kitti { defer, .. } = &mut self.inner {
            *defer = true;
        }
        self
    }
}

impl Iterator for LogFrames {
    type Item = Result<LogFrame, LogError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = match &mut self.inner {
            FramesInner::Kitti { index, next, defer } => {
                // Frame i's sweep is item n·i, its cameras' images the n - 1 after it.
                let n = index.items_per_frame();
                let i = *next / n;
                match index.frames.get(i) {
                    Some(f) => {
                        let item = *next % n;
                        *next += 1;
                        Some(kitti_frame(index, f, i as u64, item, *defer))
                    }
                    // After the last whole frame, the folder's break once (then `done`).
                    None => index.error.clone().map(Err),
                }
            }
            FramesInner::Mcap(m) => m.next(),
        };
        if !matches!(item, Some(Ok(_))) {
            self.done = true;
        }
        item
    }
}

/// Item `item` of a KITTI frame: 0 the sweep, c + 1 camera c's image.
fn kitti_frame(
    k: &kitti::KittiIndex,
    f: &kitti::KittiFrame,
    index: u64,
    item: usize,
    defer: bool,
) -> Result<LogFrame, LogError> {
    let (stream, sensor, body) = match item.checked_sub(1) {
        Some(c) => {
            let i = &f.images[c];
            let (width, height) = (i.width, i.height);
            let body = if defer {
                Body::Png { path: i.path.clone(), width, height }
            } else {
                Body::Rgb { width, height, rgb: kitti::read_png(&i.path, width, height)? }
            };
            (StreamKind::Camera, k.cameras[c].clone(), body)
        }
        None => (StreamKind::Lidar, SensorName::lidar(), Body::Velodyne(kitti::read_velodyne(&f.velodyne)?)),
    };
    Ok(LogFrame {
        stream,
        sensor,
        stamp: f.stamp,
        epoch: f.epoch,
        index,
        recorded_epoch: None,
        name: f.name.clone(),
        body,
    })
}

/// One frame of a log, decoded and validated, ready to be written into a ring slot.
#[derive(Debug)]
pub struct LogFrame {
    /// [`StreamKind::Camera`] or [`StreamKind::Lidar`], never another kind.
    pub stream: StreamKind,
    /// The sensor that took it (one of [`LogSource::sensors`]).
    pub sensor: SensorName,
    /// Capture time (synthetic for KITTI; the header stamp for ROS).
    pub stamp: TimestampNs,
    /// The calibration epoch the frame was captured under, by the log's epoch rule.
    pub epoch: CalibEpoch,
    /// Position of the frame in its stream, from 0.
    pub index: u64,
    /// The epoch [`McapRecorder`] wrote for this frame (`/epochfuse/frame_epoch`), if the log
    /// has one. Replaying a recording of a simulated drive, it equals `epoch` unless the drive
    /// announced an epoch without changing the calibration.
    pub recorded_epoch: Option<CalibEpoch>,
    /// Where the frame came from: the KITTI frame name (`000001`) or `topic#ordinal`.
    pub name: String,
    body: Body,
}

#[derive(Debug)]
enum Body {
    Velodyne(Vec<u8>),
    /// A KITTI image not decoded yet (see [`LogFrames::defer_images`]).
    Png {
        path: PathBuf,
        width: u32,
        height: u32,
    },
    Rgb {
        width: u32,
        height: u32,
        rgb: Vec<u8>,
    },
    RosCloud {
        msg: mcap_source::MsgData,
        layout: ros::CloudLayout,
    },
    RosImage {
        msg: mcap_source::MsgData,
        layout: ros::ImageLayout,
        labels: Option<(mcap_source::MsgData, ros::ImageLayout)>,
    },
}

impl LogFrame {
    /// Length of the payload [`LogFrame::write_payload`] writes.
    #[must_use]
    pub fn payload_len(&self) -> usize {
        match &self.body {
            Body::Velodyne(b) => b.len() / 16 * size_of::<shared::frames::PointRecord>(),
            Body::Rgb { rgb, .. } => shared::frames::IMAGE_HEADER_SIZE + rgb.len(),
            Body::Png { width, height, .. } => {
                shared::frames::IMAGE_HEADER_SIZE + *width as usize * *height as usize * 3
            }
            Body::RosCloud { layout, .. } => layout.payload_len(),
            Body::RosImage { layout, labels, .. } => {
                layout.payload_len() + labels.as_ref().map_or(0, |(_, l)| l.labels_len())
            }
        }
    }

    /// Whether the camera payload carries a label plane (recorded simulation ground truth).
    #[must_use]
    pub fn has_labels(&self) -> bool {
        matches!(&self.body, Body::RosImage { labels: Some(_), .. })
    }

    /// Writes the payload in epochfuse's layout: lidar, [`shared::frames::PointRecord`]s
    /// (ring 0 and instance 0 unless the cloud has `ring` / `instance` fields); camera,
    /// [`shared::frames::ImageHeader`] then the rgb8 plane (converted from bgr8, mono8, rgba8,
    /// bgra8) then the label plane if recorded. Returns the bytes written.
    ///
    /// # Errors
    /// [`WriteError::Full`] if the payload does not fit; [`WriteError::Log`] if a deferred
    /// image does not decode. The sink may then hold part of it (abandon the slot).
    pub fn write_payload(&self, sink: &mut (impl PayloadSink + ?Sized)) -> Result<usize, WriteError> {
        Ok(match &self.body {
            Body::Velodyne(b) => kitti::write_velodyne(b, sink)?,
            Body::Rgb { width, height, rgb } => kitti::write_rgb(*width, *height, rgb, sink)?,
            Body::Png { path, width, height } => return kitti::write_png(path, *width, *height, sink),
            Body::RosCloud { msg, layout } => ros::write_cloud(msg, layout, sink)?,
            Body::RosImage { msg, layout, labels } => {
                ros::write_image(msg, layout, labels.as_ref().map(|(m, l)| (&m[..], l)), sink)?
            }
        })
    }

    /// The payload as a new buffer.
    ///
    /// # Errors
    /// The image's [`LogError`] if it was deferred and does not decode.
    pub fn to_payload(&self) -> Result<Vec<u8>, LogError> {
        let mut v = Vec::with_capacity(self.payload_len());
        match self.write_payload(&mut v) {
            Ok(_) | Err(WriteError::Full(_)) => Ok(v), // a Vec never fills
            Err(WriteError::Log(e)) => Err(e),
        }
    }
}
