//! Every camera of a bag that can be fused with its lidar (issue 18 §3): each
//! `sensor_msgs/Image` topic (label images aside) with frames, a `CameraInfo` topic and a
//! chain of `/tf` or `/tf_static` transforms from its `frame_id` to the lidar's.
//!
//! The `CameraInfo` of an image topic is the one with the image's `frame_id`, else the one
//! in the image's namespace (`/ns/image_raw` and `/ns/camera_info`); a topic with neither, or
//! with several equally good, is left out, as is one whose frame has no transform to the
//! lidar. This reads the bag once (the indexing pass of [`super::scan`]); a bag that breaks
//! part-way lists what was indexed before the break.
//!
//! **Names.** A bag replayed as a rig (several cameras, or any chosen with `--cameras`)
//! names each camera after the last component of its image topic's namespace
//! (`/kitti/camera_color_left/image_raw` → `camera_color_left`, `/front/image_raw` →
//! `front`: what a recording of a rig wrote, so it replays under its own names), lowercased,
//! other characters than `[a-z0-9_-]` made `_`, cut to 32; a topic without a namespace, or
//! whose name is reserved, is `camera`; a name taken already gets `_2`, `_3`, ... The lidar is
//! named by the same rule after the cameras (`/lidar/points` → `lidar`, else `lidar`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use calib::name::MAX_NAME_LEN;
use calib::SensorName;

use super::plan::find_chain;
use super::scan::{scan, Kind, Scan};
use super::topics::{choose, namespace};
use crate::LogError;

/// A camera of a bag that can be fused with the lidar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BagCamera {
    /// Its sensor name in a replay of the bag as a rig (see the module documentation).
    pub name: SensorName,
    /// The `sensor_msgs/Image` topic.
    pub image_topic: String,
    /// Its `sensor_msgs/CameraInfo` topic.
    pub camera_info_topic: String,
    /// The images' `frame_id`.
    pub frame_id: String,
    /// Images in the bag.
    pub frames: usize,
}

/// A bag's lidar and the cameras that can be fused with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BagRig {
    /// The `sensor_msgs/PointCloud2` topic.
    pub lidar_topic: String,
    /// The clouds' `frame_id`.
    pub lidar_frame: String,
    /// The lidar's sensor name in a replay of the bag as a rig.
    pub lidar_name: SensorName,
    /// The cameras, by image topic name.
    pub cameras: Vec<BagCamera>,
}

/// Lists the cameras of the bag at `path` (an `.mcap` file or a rosbag2 folder) that have a
/// `CameraInfo` and a transform to the lidar: `lidar_topic`, or the only `PointCloud2` topic.
///
/// # Errors
/// [`LogError`] (one line naming the file) if the bag cannot be read, or has no lidar topic,
/// or several and none was given.
pub fn bag_cameras(path: &Path, lidar_topic: Option<&str>) -> Result<BagRig, LogError> {
    let files: Vec<PathBuf> = if path.is_dir() { super::bag_files(path)? } else { vec![path.to_path_buf()] };
    let s = scan(Arc::from(files));
    match rig_of(path, &s, lidar_topic) {
        Err(e) if s.topics.is_empty() => Err(s.fatal.map_or(e, |(_, fatal)| fatal)),
        r => r,
    }
}

pub(super) fn rig_of(path: &Path, s: &Scan, lidar_topic: Option<&str>) -> Result<BagRig, LogError> {
    let lidar = choose(path, s, Kind::Cloud, lidar_topic, "lidar", |_, _| true)?;
    let lidar_frame = s.topics[&lidar].frame_id.clone().unwrap_or_default();
    let infos: Vec<(&String, Option<&String>)> = s
        .topics
        .iter()
        .filter(|(_, t)| t.kind == Some(Kind::CameraInfo) && !t.infos.is_empty())
        .map(|(n, t)| (n, t.frame_id.as_ref()))
        .collect();
    let mut cameras = Vec::new();
    for (name, t) in &s.topics {
        if t.kind != Some(Kind::Image) || t.labels_for.is_some() || t.frames.is_empty() {
            continue;
        }
        let Some(frame) = t.frame_id.clone() else { continue };
        let by_frame: Vec<&String> =
            infos.iter().filter(|(_, f)| *f == Some(&frame)).map(|(n, _)| *n).collect();
        let by_ns: Vec<&String> =
            infos.iter().filter(|(n, _)| namespace(n) == namespace(name)).map(|(n, _)| *n).collect();
        let info = match (by_frame.as_slice(), by_ns.as_slice()) {
            ([one], _) | ([], [one]) => (*one).clone(),
            // Several with the frame: the namespace decides, if it names exactly one.
            (many, _) if many.len() > 1 => {
                match many.iter().filter(|n| by_ns.contains(n)).collect::<Vec<_>>()[..] {
                    [one] => (*one).clone(),
                    _ => continue,
                }
            }
            _ => continue,
        };
        if find_chain(&s.edges, &frame, &lidar_frame).is_none() {
            continue;
        }
        cameras.push(BagCamera {
            name: SensorName::camera(),
            image_topic: name.clone(),
            camera_info_topic: info,
            frame_id: frame,
            frames: t.frames.len(),
        });
    }
    let mut taken = Vec::new();
    for c in &mut cameras {
        c.name = unique_name(&c.image_topic, "camera", &mut taken);
    }
    let lidar_name = unique_name(&lidar, "lidar", &mut taken);
    Ok(BagRig { lidar_topic: lidar, lidar_frame, lidar_name, cameras })
}

/// The sensor name of `topic` by the rule of the module documentation (`fallback` for a
/// topic without a usable namespace), not one of `taken`, which it joins.
fn unique_name(topic: &str, fallback: &str, taken: &mut Vec<SensorName>) -> SensorName {
    let last = namespace(topic).rsplit('/').next().unwrap_or("");
    let clean: String = last
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' { c } else { '_' })
        .take(MAX_NAME_LEN)
        .collect();
    let base = SensorName::new(&clean).map_or_else(|_| fallback.to_owned(), |n| n.as_str().to_owned());
    let mut name = SensorName::new(&base).unwrap_or_else(|_| SensorName::camera());
    for k in 2.. {
        if !taken.contains(&name) {
            break;
        }
        let suffix = format!("_{k}");
        let cut = base.len().min(MAX_NAME_LEN - suffix.len());
        name = SensorName::new(&format!("{}{suffix}", &base[..cut])).unwrap_or_else(|_| SensorName::camera());
    }
    taken.push(name.clone());
    name
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use nalgebra::Isometry3;

    use super::super::scan::{IdxFrame, TopicIndex};
    use super::*;
    use crate::ros::CamInfo;

    fn topic(kind: Kind, frame: &str, frames: usize) -> TopicIndex {
        TopicIndex {
            kind: Some(kind),
            frame_id: Some(frame.into()),
            frames: (0..frames as u64)
                .map(|i| IdxFrame { ordinal: i, stamp: i, payload_len: 1, size: (1, 1) })
                .collect(),
            ..TopicIndex::default()
        }
    }

    fn info(frame: &str) -> TopicIndex {
        let mut t = topic(Kind::CameraInfo, frame, 0);
        let ci = CamInfo {
            width: 1,
            height: 1,
            distortion_model: String::new(),
            d: vec![],
            k: [0.0; 9],
            r: [0.0; 9],
            p: [0.0; 12],
        };
        t.infos.push((0, 0, Arc::new(ci)));
        t
    }

    #[test]
    fn several_cameras_each_with_info_and_transform() {
        let mut topics = BTreeMap::new();
        topics.insert("/velo/points".to_string(), topic(Kind::Cloud, "velo", 3));
        topics.insert("/front/image_raw".to_string(), topic(Kind::Image, "front_optical", 3));
        topics.insert("/front/camera_info".to_string(), info("front_optical"));
        // Info found by namespace (its frame_id differs), transform through base_link.
        topics.insert("/left/image_raw".to_string(), topic(Kind::Image, "left_optical", 2));
        topics.insert("/left/camera_info".to_string(), info("left_cam"));
        // No CameraInfo at all.
        topics.insert("/rear/image_raw".to_string(), topic(Kind::Image, "rear_optical", 2));
        // A CameraInfo but no transform to the lidar.
        topics.insert("/right/image_raw".to_string(), topic(Kind::Image, "right_optical", 2));
        topics.insert("/right/camera_info".to_string(), info("right_optical"));
        // Labels are not a camera.
        let mut labels = topic(Kind::Image, "front_optical", 3);
        labels.labels_for = Some("/front/image_raw".into());
        topics.insert("/front/labels".to_string(), labels);
        let mut edges = HashMap::new();
        for (p, c) in [("base_link", "velo"), ("base_link", "front_optical"), ("left_optical", "base_link")] {
            edges.insert((p.to_string(), c.to_string()), vec![(0, 0, Isometry3::identity())]);
        }
        edges.insert(("right_base".into(), "right_optical".into()), vec![(0, 0, Isometry3::identity())]);
        let s = Scan {
            topics,
            edges,
            frame_epochs: HashMap::new(),
            fatal: None,
            per_file_paths: Arc::from(vec![]),
        };
        let rig = rig_of(Path::new("b.mcap"), &s, None).unwrap();
        assert_eq!((rig.lidar_topic.as_str(), rig.lidar_frame.as_str()), ("/velo/points", "velo"));
        let got: Vec<(&str, &str, usize)> = rig
            .cameras
            .iter()
            .map(|c| (c.image_topic.as_str(), c.camera_info_topic.as_str(), c.frames))
            .collect();
        assert_eq!(
            got,
            [("/front/image_raw", "/front/camera_info", 3), ("/left/image_raw", "/left/camera_info", 2)]
        );
        let names: Vec<&str> = rig.cameras.iter().map(|c| c.name.as_str()).collect();
        assert_eq!((names.as_slice(), rig.lidar_name.as_str()), (["front", "left"].as_slice(), "velo"));
        let e = rig_of(Path::new("b.mcap"), &s, Some("/nope")).unwrap_err().to_string();
        assert!(e.starts_with("b.mcap: lidar topic /nope not found"), "{e}");
    }

    #[test]
    fn the_real_bag_has_one_camera() {
        let bag = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/rosbag/kitti_000001_000002");
        if !bag.join("metadata.yaml").is_file() {
            eprintln!("notice: {} is absent; skipping the bag camera enumeration test", bag.display());
            return;
        }
        let rig = bag_cameras(&bag, None).unwrap();
        assert_eq!((rig.lidar_topic.as_str(), rig.lidar_name.as_str()), ("/kitti/velo/pointcloud", "velo"));
        assert_eq!(
            rig.cameras,
            [BagCamera {
                name: SensorName::new("camera_color_left").unwrap(),
                image_topic: "/kitti/camera_color_left/image_raw".into(),
                camera_info_topic: "/kitti/camera_color_left/camera_info".into(),
                frame_id: "camera_color_left".into(),
                frames: 2,
            }]
        );
    }

    #[test]
    fn names_follow_the_namespace_and_are_unique() {
        let mut taken = Vec::new();
        let mut name = |t: &str, f: &str| unique_name(t, f, &mut taken).as_str().to_owned();
        assert_eq!(name("/front/image_raw", "camera"), "front");
        assert_eq!(name("/a/Front/image_raw", "camera"), "front_2");
        assert_eq!(name("/cam.left/image", "camera"), "cam_left");
        assert_eq!(name("/image_raw", "camera"), "camera");
        assert_eq!(name("/fused/image_raw", "camera"), "camera_2");
        assert_eq!(name("/points", "lidar"), "lidar");
        let long = format!("/{}/image_raw", "x".repeat(40));
        assert_eq!(name(&long, "camera"), "x".repeat(32));
        assert_eq!(name(&long, "camera"), format!("{}_2", "x".repeat(30)));
    }
}
