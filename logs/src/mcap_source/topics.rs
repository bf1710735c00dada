//! Which topics a bag replays: the ones asked for, else the only candidates.

use std::collections::BTreeMap;
use std::path::Path;

use calib::SensorName;

use super::cameras::{rig_of, BagCamera, BagRig};
use super::scan::{Kind, Scan, TopicIndex};
use crate::{LogError, LogOptions};

/// One camera chosen for a replay.
#[derive(Debug)]
pub(super) struct TopicCamera {
    /// Its sensor name (`camera` for the one camera of a bag replayed as ever).
    pub(super) name: SensorName,
    pub(super) image: String,
    pub(super) info: String,
    /// The label topic recorded for the image topic, if any.
    pub(super) labels: Option<String>,
}

/// The topics chosen for a replay.
#[derive(Debug)]
pub(super) struct Topics {
    pub(super) lidar: String,
    pub(super) lidar_name: SensorName,
    /// The cameras, the primary first.
    pub(super) cameras: Vec<TopicCamera>,
    /// Whether the bag replays as a rig ([`super::cameras`]): its sensors named by their
    /// topics and its mounts in the root frame of the lidar's transform tree, rather than
    /// one camera `camera` whose frame is the vehicle frame.
    pub(super) rig: bool,
}

impl Topics {
    /// Chooses the lidar and the cameras with their camera-info and label topics: the
    /// cameras asked for (`LogOptions::cameras`), else every camera of a bag with several,
    /// else the one camera as ever.
    pub(super) fn choose(path: &Path, s: &Scan, options: &LogOptions) -> Result<Self, LogError> {
        if options.camera_topic.is_none() {
            if let Some(rig) = Self::choose_rig(path, s, options)? {
                return Ok(rig);
            }
        }
        let lidar = choose(path, s, Kind::Cloud, options.lidar_topic.as_deref(), "lidar", |_, _| true)?;
        let camera = choose(path, s, Kind::Image, options.camera_topic.as_deref(), "camera", |_, t| {
            t.labels_for.is_none()
        })?;
        let camera_frame = s.topics[&camera].frame_id.clone();
        let asked = options.camera_info_topic.as_deref();
        let info = choose(path, s, Kind::CameraInfo, asked, "camera_info", |n, t| {
            let infos = s.topics.values().filter(|t| t.kind == Some(Kind::CameraInfo)).count();
            infos == 1
                || namespace(n) == namespace(&camera)
                || (t.frame_id.is_some() && t.frame_id == camera_frame)
        })?;
        let labels = labels_of(s, &camera);
        let camera = TopicCamera { name: SensorName::camera(), image: camera, info, labels };
        Ok(Self { lidar, lidar_name: SensorName::lidar(), cameras: vec![camera], rig: false })
    }

    /// The bag as a rig, if it replays as one: `None` for a bag of one camera (or none)
    /// when no camera was asked for.
    fn choose_rig(path: &Path, s: &Scan, options: &LogOptions) -> Result<Option<Self>, LogError> {
        let rig = match rig_of(path, s, options.lidar_topic.as_deref()) {
            Ok(rig) => rig,
            Err(e) if options.cameras.is_some() => return Err(e),
            // The one-camera choice reports what is wrong in its own words.
            Err(_) => return Ok(None),
        };
        let chosen: Vec<&BagCamera> = match &options.cameras {
            None if rig.cameras.len() < 2 => return Ok(None),
            None => rig.cameras.iter().collect(),
            Some(asked) => {
                let mut chosen: Vec<&BagCamera> = Vec::with_capacity(asked.len());
                for a in asked {
                    let c = rig
                        .cameras
                        .iter()
                        .find(|c| c.name.as_str() == a || c.image_topic == *a)
                        .ok_or_else(|| unknown_camera(path, a, &rig))?;
                    if !chosen.contains(&c) {
                        chosen.push(c);
                    }
                }
                chosen
            }
        };
        let cameras = chosen
            .into_iter()
            .map(|c| TopicCamera {
                name: c.name.clone(),
                image: c.image_topic.clone(),
                info: c.camera_info_topic.clone(),
                labels: labels_of(s, &c.image_topic),
            })
            .collect();
        Ok(Some(Self { lidar: rig.lidar_topic, lidar_name: rig.lidar_name, cameras, rig: true }))
    }

    /// The chosen topics: lidar, then each camera's image, camera info and labels if any.
    pub(super) fn all(&self) -> impl Iterator<Item = &String> {
        std::iter::once(&self.lidar).chain(
            self.cameras
                .iter()
                .flat_map(|c| [Some(&c.image), Some(&c.info), c.labels.as_ref()].into_iter().flatten()),
        )
    }
}

/// The label topic recorded for `camera`'s image topic, if any.
fn labels_of(s: &Scan, camera: &str) -> Option<String> {
    s.topics
        .iter()
        .find(|(_, t)| t.kind == Some(Kind::Image) && t.labels_for.as_deref() == Some(camera))
        .map(|(n, _)| n.clone())
}

/// `--cameras` named a camera the bag does not have: one line listing those it has.
fn unknown_camera(path: &Path, asked: &str, rig: &BagRig) -> LogError {
    let have: Vec<String> = rig.cameras.iter().map(|c| format!("{} ({})", c.name, c.image_topic)).collect();
    let have = if have.is_empty() { "none".to_owned() } else { have.join(", ") };
    LogError::missing(path, format!("--cameras: no camera {asked} in the bag; its cameras: {have}"))
}

pub(super) fn namespace(topic: &str) -> &str {
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

/// Chooses a topic of `kind` for `what` (`lidar`, ...): the one asked for (by the option
/// `{what}_topic`), else the only candidate with frames.
pub(super) fn choose(
    path: &Path,
    s: &Scan,
    kind: Kind,
    asked: Option<&str>,
    what: &str,
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
                "several {what} topics ({}): choose one with {what}_topic",
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
