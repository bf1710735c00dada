//! Which topics a bag replays: the ones asked for, else the only candidates.

use std::collections::BTreeMap;
use std::path::Path;

use super::scan::{Kind, Scan, TopicIndex};
use crate::{LogError, LogOptions};

/// The topics chosen for a replay.
#[derive(Debug)]
pub(super) struct Topics {
    pub(super) lidar: String,
    pub(super) camera: String,
    pub(super) info: String,
    /// The label topic recorded for the camera topic, if any.
    pub(super) labels: Option<String>,
}

impl Topics {
    /// Chooses the lidar, camera, camera-info and label topics.
    pub(super) fn choose(path: &Path, s: &Scan, options: &LogOptions) -> Result<Self, LogError> {
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
        let labels = s
            .topics
            .iter()
            .find(|(_, t)| t.kind == Some(Kind::Image) && t.labels_for.as_deref() == Some(camera.as_str()))
            .map(|(n, _)| n.clone());
        Ok(Self { lidar, camera, info, labels })
    }

    /// The chosen topics: lidar, camera, camera info, labels if any.
    pub(super) fn all(&self) -> impl Iterator<Item = &String> {
        [Some(&self.lidar), Some(&self.camera), Some(&self.info), self.labels.as_ref()].into_iter().flatten()
    }
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
