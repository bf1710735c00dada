//! Planning a bag's replay from its scan: where it stops, the frames in replay order, and
//! their epochs (DESIGN §6, see the crate docs).

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use calib::{CalibrationSet, CameraMount, LidarMount, Projection};
use nalgebra::Isometry3;
use shared::{CalibEpoch, StreamKind, TimestampNs};

use super::scan::{scan, EdgeKey, Edges, IdxFrame, Scan};
use super::topics::{TopicCamera, Topics};
use super::{IndexCamera, McapIndex, Planned, MAX_REORDER_BYTES, MAX_REORDER_MESSAGES};
use crate::epochs::EpochBuilder;
use crate::ros::CamInfo;
use crate::{replay_rank, LogError, LogOptions};

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

/// One step of the chain from the camera's frame to the lidar's.
#[derive(Debug, Clone)]
pub(super) struct Step {
    edge: EdgeKey,
    /// The edge's parent is the nearer-to-camera frame (use the transform as is), else invert.
    forward: bool,
}

/// Breadth-first search for the chain of transforms from `from` to `to`.
pub(super) fn find_chain(edges: &Edges, from: &str, to: &str) -> Option<Vec<Step>> {
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

/// Where the replay stops: before the first message that broke the file or a chosen topic.
#[derive(Debug)]
struct Cut {
    /// Messages at or after this ordinal are not replayed.
    limit: u64,
    /// The break, reported after the last frame.
    error: Option<LogError>,
}

impl Cut {
    fn find(s: &mut Scan, topics: &Topics) -> Self {
        let mut cut: Option<(u64, LogError)> = s.fatal.take();
        for topic in topics.all() {
            if let Some((o, e)) = s.topics.get_mut(topic).and_then(|t| t.error.take()) {
                if cut.as_ref().is_none_or(|(c, _)| o < *c) {
                    cut = Some((o, e));
                }
            }
        }
        Self { limit: cut.as_ref().map_or(u64::MAX, |(o, _)| *o), error: cut.map(|(_, e)| e) }
    }

    /// A log that broke reports its break rather than what the break made missing.
    fn fail(&self, e: LogError) -> LogError {
        self.error.clone().unwrap_or(e)
    }

    fn frames(&self, s: &Scan, topic: &str) -> Vec<IdxFrame> {
        s.topics[topic].frames.iter().filter(|f| f.ordinal < self.limit).cloned().collect()
    }
}

/// One camera's part of the plan, cut at the break.
struct CameraInputs {
    frames: Vec<IdxFrame>,
    infos: Timeline<Arc<CamInfo>>,
    /// The transforms from the vehicle frame to the camera's.
    chain: Vec<Step>,
    /// Label image stamp → its ordinal.
    labels: HashMap<u64, u64>,
}

/// What the plan is made of, cut at the break.
struct Inputs {
    lidar: Vec<IdxFrame>,
    /// The transforms from the vehicle frame to the lidar's.
    lidar_chain: Vec<Step>,
    cameras: Vec<CameraInputs>,
    edges: HashMap<EdgeKey, Timeline<Isometry3<f64>>>,
}

/// Scans a bag and plans its replay.
pub(crate) fn index(path: &Path, files: Vec<PathBuf>, options: &LogOptions) -> Result<McapIndex, LogError> {
    let files: Arc<[PathBuf]> = files.into();
    let mut s = scan(Arc::clone(&files));
    let topics = match Topics::choose(path, &s, options) {
        Ok(t) => t,
        // A log that broke before its topics showed up: the break is the error to report.
        Err(e) => return Err(s.fatal.map_or(e, |(_, f)| f)),
    };
    let cut = Cut::find(&mut s, &topics);
    let inputs = gather(path, &mut s, &topics, &cut)?;
    let mut planned = plan_frames(&s, &topics, &inputs, &cut);
    let sets = number_epochs(path, &mut planned, &inputs, &topics, &cut)?;

    let mut wanted: Vec<u64> =
        planned.iter().flat_map(|p| std::iter::once(p.ordinal).chain(p.labels)).collect();
    wanted.sort_unstable();
    wanted.dedup();
    check_reorder(path, &planned, &wanted)?;
    let cameras = topics
        .cameras
        .into_iter()
        .map(|c| IndexCamera { name: c.name, topic: c.image, info: c.info, labels: c.labels })
        .collect();
    Ok(McapIndex {
        path: path.to_path_buf(),
        files,
        lidar_topic: topics.lidar,
        lidar_name: topics.lidar_name,
        cameras,
        planned,
        wanted,
        sets,
        error: cut.error,
        topics: s.topics.keys().cloned().collect(),
    })
}

/// The root of the transform tree above `frame`: its parent's parent ... (the first edge
/// in name order where a frame has several parents); `frame` if it has none.
fn tree_root(edges: &Edges, frame: &str) -> String {
    let mut keys: Vec<&EdgeKey> = edges.keys().collect();
    keys.sort();
    let mut seen = vec![frame.to_owned()];
    let mut at = frame.to_owned();
    while let Some((parent, _)) = keys.iter().find(|(_, c)| *c == at) {
        if seen.contains(parent) {
            break;
        }
        seen.push(parent.clone());
        at = parent.clone();
    }
    at
}

/// Collects the frames, the calibration timelines and the transform chains before the cut.
/// The vehicle frame is the one camera's own frame (as ever), or for a rig the root of the
/// lidar's transform tree (`base_link` in a recording), so every mount is as recorded.
fn gather(path: &Path, s: &mut Scan, topics: &Topics, cut: &Cut) -> Result<Inputs, LogError> {
    let lidar_topic = &topics.lidar;
    let lidar = cut.frames(s, lidar_topic);
    if lidar.is_empty() {
        return Err(cut.fail(LogError::missing(path, format!("lidar topic {lidar_topic} has no frames"))));
    }
    for timeline in s.edges.values_mut() {
        timeline.retain(|e| e.1 < cut.limit);
    }
    s.edges.retain(|_, t| !t.is_empty());
    let frame_of = |topic: &str| s.topics[topic].frame_id.clone().unwrap_or_default();
    let lidar_frame = frame_of(lidar_topic);
    let vehicle =
        if topics.rig { tree_root(&s.edges, &lidar_frame) } else { frame_of(&topics.cameras[0].image) };
    let no_transform = |camera_frame: String| {
        cut.fail(LogError::NoTransform {
            path: path.to_path_buf(),
            camera_frame,
            lidar_frame: lidar_frame.clone(),
        })
    };
    let mut cameras =
        topics.cameras.iter().map(|c| gather_camera(path, s, c, cut)).collect::<Result<Vec<_>, _>>()?;
    let lidar_chain =
        find_chain(&s.edges, &vehicle, &lidar_frame).ok_or_else(|| no_transform(vehicle.clone()))?;
    for (camera, c) in cameras.iter_mut().zip(&topics.cameras) {
        let camera_frame = frame_of(&c.image);
        camera.chain =
            find_chain(&s.edges, &vehicle, &camera_frame).ok_or_else(|| no_transform(camera_frame))?;
    }
    let edges = std::iter::once(&lidar_chain)
        .chain(cameras.iter().map(|c| &c.chain))
        .flatten()
        .map(|step| (step.edge.clone(), Timeline::new(s.edges.get(&step.edge).cloned().unwrap_or_default())))
        .collect();
    Ok(Inputs { lidar, lidar_chain, cameras, edges })
}

/// One camera's frames, `CameraInfo` timeline and labels before the cut (its chain is
/// filled in by [`gather`]).
fn gather_camera(path: &Path, s: &Scan, c: &TopicCamera, cut: &Cut) -> Result<CameraInputs, LogError> {
    let (camera_topic, info_topic) = (&c.image, &c.info);
    let no_frames =
        || cut.fail(LogError::missing(path, format!("camera topic {camera_topic} has no frames")));
    let mut frames = cut.frames(s, camera_topic);
    if frames.is_empty() {
        return Err(no_frames());
    }
    let infos: Vec<(u64, u64, Arc<CamInfo>)> =
        s.topics[info_topic].infos.iter().filter(|e| e.1 < cut.limit).cloned().collect();
    if infos.is_empty() {
        return Err(
            cut.fail(LogError::missing(path, format!("camera_info topic {info_topic} has no messages")))
        );
    }
    let labels: HashMap<u64, u64> = c
        .labels
        .as_ref()
        .map(|t| cut.frames(s, t).iter().map(|f| (f.stamp, f.ordinal)).collect())
        .unwrap_or_default();
    // In a log that breaks, the images after the last label that survived may have lost
    // theirs to the break: they are not replayed, rather than replayed without ground truth.
    if c.labels.is_some() && cut.error.is_some() {
        let last_label = labels.values().max().copied();
        frames.retain(|f| labels.contains_key(&f.stamp) || last_label.is_some_and(|l| f.ordinal < l));
        if frames.is_empty() {
            return Err(no_frames());
        }
    }
    Ok(CameraInputs { frames, infos: Timeline::new(infos), chain: Vec::new(), labels })
}

/// All frames in replay order: by stamp, a sweep before an image of the same stamp
/// ([`replay_rank`]), then by position in the file; each numbered in its sensor's stream.
fn plan_frames(s: &Scan, topics: &Topics, inputs: &Inputs, cut: &Cut) -> Vec<Planned> {
    let total = inputs.lidar.len() + inputs.cameras.iter().map(|c| c.frames.len()).sum::<usize>();
    let mut planned: Vec<Planned> = Vec::with_capacity(total);
    let no_labels = HashMap::new();
    let streams = std::iter::once((StreamKind::Lidar, 0, &inputs.lidar, &topics.lidar, &no_labels)).chain(
        inputs
            .cameras
            .iter()
            .zip(&topics.cameras)
            .enumerate()
            .map(|(i, (c, t))| (StreamKind::Camera, i, &c.frames, &t.image, &c.labels)),
    );
    for (stream, sensor, frames, topic, label_map) in streams {
        for f in frames {
            let labels = label_map.get(&f.stamp).copied();
            let label_len = if labels.is_some() { f.size.0 as usize * f.size.1 as usize * 2 } else { 0 };
            planned.push(Planned {
                stream,
                sensor,
                stamp: TimestampNs(f.stamp),
                epoch: CalibEpoch::NONE,
                recorded_epoch: s
                    .frame_epochs
                    .get(&(topic.clone(), f.stamp))
                    .filter(|e| e.1 < cut.limit)
                    .map(|e| CalibEpoch(e.0)),
                index: 0,
                ordinal: f.ordinal,
                labels,
                payload_len: f.payload_len + label_len,
            });
        }
    }
    planned.sort_by_key(|p| (p.stamp, replay_rank(p.stream), p.ordinal));
    let mut next: HashMap<(StreamKind, usize), u64> = HashMap::new();
    for p in &mut planned {
        let n = next.entry((p.stream, p.sensor)).or_insert(0);
        p.index = *n;
        *n += 1;
    }
    planned
}

/// The transform a chain of steps gives at `t`, and the latest time one of its edges took
/// the value it has (into `since`).
fn compose(inputs: &Inputs, chain: &[Step], t: u64, since: &mut Option<u64>) -> Isometry3<f64> {
    let mut iso: Option<Isometry3<f64>> = None;
    for step in chain {
        let (e, when) = inputs.edges[&step.edge].at(t);
        *since = (*since).max(when);
        let e = if step.forward { *e } else { e.inverse() };
        iso = Some(iso.map_or(e, |acc| acc * e));
    }
    iso.unwrap_or_else(Isometry3::identity)
}

/// Numbers the epochs of the planned frames, in replay order, by the log's epoch rule: the
/// state is every camera's `CameraInfo` and mount and the lidar's mount (DESIGN §6–7).
fn number_epochs(
    path: &Path,
    planned: &mut [Planned],
    inputs: &Inputs,
    topics: &Topics,
    cut: &Cut,
) -> Result<Vec<CalibrationSet>, LogError> {
    let mut builder = EpochBuilder::default();
    let mut projections: HashMap<(usize, *const CamInfo), Projection> = HashMap::new();
    for p in planned {
        let t = p.stamp.0;
        let mut since: Option<u64> = None;
        let mut cameras = Vec::with_capacity(inputs.cameras.len());
        for (i, (c, topic)) in inputs.cameras.iter().zip(&topics.cameras).enumerate() {
            let (ci, when) = c.infos.at(t);
            since = since.max(when);
            let projection = match projections.get(&(i, Arc::as_ptr(ci))) {
                Some(pr) => *pr,
                None => {
                    let pr = ci
                        .projection(c.frames[0].size)
                        .map_err(|e| cut.fail(LogError::missing(path, format!("{}: {e}", topic.info))))?;
                    projections.insert((i, Arc::as_ptr(ci)), pr);
                    pr
                }
            };
            let to_vehicle = compose(inputs, &c.chain, t, &mut since);
            cameras.push(CameraMount { name: topic.name.clone(), projection, to_vehicle });
        }
        let lidar = LidarMount {
            name: topics.lidar_name.clone(),
            to_vehicle: compose(inputs, &inputs.lidar_chain, t, &mut since),
        };
        p.epoch = builder.observe_rig(p.stamp, since.map(TimestampNs), cameras, vec![lidar]);
    }
    Ok(builder.finish())
}

/// What the streaming pass would hold in its reorder buffer at most: (messages, bytes). A
/// label image counts as large as its camera frame (an upper bound).
fn reorder_need(planned: &[Planned], wanted: &[u64]) -> (usize, u64) {
    let sizes: HashMap<u64, u64> = planned
        .iter()
        .flat_map(|p| std::iter::once(p.ordinal).chain(p.labels).map(|o| (o, p.payload_len as u64)))
        .collect();
    let size = |o: &u64| sizes.get(o).copied().unwrap_or(0);
    let (mut held, mut bytes) = (std::collections::HashSet::new(), 0u64);
    let (mut read, mut most) = (0usize, (0usize, 0u64));
    for o in planned.iter().flat_map(|p| std::iter::once(p.ordinal).chain(p.labels)) {
        if held.remove(&o) {
            bytes -= size(&o);
            continue;
        }
        while let Some(w) = wanted.get(read) {
            read += 1;
            if *w == o {
                break;
            }
            held.insert(*w);
            bytes += size(w);
        }
        most = (most.0.max(held.len() + 1), most.1.max(bytes + size(&o)));
    }
    most
}

/// Refuses a bag whose reorder buffer would exceed [`MAX_REORDER_MESSAGES`] or
/// [`MAX_REORDER_BYTES`].
fn check_reorder(path: &Path, planned: &[Planned], wanted: &[u64]) -> Result<(), LogError> {
    let (messages, bytes) = reorder_need(planned, wanted);
    if messages <= MAX_REORDER_MESSAGES && bytes <= MAX_REORDER_BYTES {
        return Ok(());
    }
    Err(LogError::Input {
        path: path.to_path_buf(),
        detail: format!(
            "{}: messages are out of time order by too much: replaying them in order would hold {messages} messages ({bytes} bytes) ahead of their turn, more than the limit of {MAX_REORDER_MESSAGES} messages and {MAX_REORDER_BYTES} bytes",
            path.display()
        ),
    })
}

#[cfg(test)]
mod reorder_tests {
    use super::*;

    fn frame(ordinal: u64, payload_len: usize) -> Planned {
        Planned {
            stream: StreamKind::Lidar,
            sensor: 0,
            stamp: TimestampNs(0),
            epoch: CalibEpoch::NONE,
            recorded_epoch: None,
            index: 0,
            ordinal,
            labels: None,
            payload_len,
        }
    }

    #[test]
    fn a_bag_in_time_order_holds_one_message_and_a_reversed_one_is_refused() {
        let n = MAX_REORDER_MESSAGES as u64 + 10;
        let wanted: Vec<u64> = (0..n).collect();
        let in_order: Vec<Planned> = (0..n).map(|o| frame(o, 1000)).collect();
        assert_eq!(reorder_need(&in_order, &wanted), (1, 1000));
        assert!(check_reorder(Path::new("b.mcap"), &in_order, &wanted).is_ok());
        // The last message of the file plays first: every other one waits.
        let reversed: Vec<Planned> = (0..n).rev().map(|o| frame(o, 1000)).collect();
        assert_eq!(reorder_need(&reversed, &wanted), (n as usize, n * 1000));
        let e = check_reorder(Path::new("b.mcap"), &reversed, &wanted).unwrap_err().to_string();
        assert!(e.starts_with("b.mcap: messages are out of time order") && !e.contains('\n'), "{e}");
        // Few messages, but large ones: the byte cap holds too.
        let big: Vec<Planned> = [2, 0, 1].map(|o| frame(o, (MAX_REORDER_BYTES / 2) as usize)).into();
        assert!(check_reorder(Path::new("b.mcap"), &big, &[0, 1, 2]).is_err());
    }
}
