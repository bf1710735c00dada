//! A bag's index, saved by the process that opened it for another that replays it, so that
//! the bag is indexed once per run (the supervisor's door), not once per process.
//!
//! The saved form is JSON: the plan (frames, ordinals kept, epochs, topics) and, for each
//! file of the bag, what identifies its contents (device, inode, length, modification time).
//! Loading it is checking input: the format, the bag's path and every file's identity must
//! match, and the plan must hang together (frames in replay order, every sensor, epoch and
//! ordinal in range). Anything else is refused in one line; a bag that changed since it was
//! indexed is never replayed with the old index.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use calib::{CalibrationSet, SensorName};
use serde::{Deserialize, Serialize};
use shared::StreamKind;

use super::{IndexCamera, McapIndex, Planned};
use crate::{replay_rank, LogError};

/// The saved form's version: a plan of another version is refused.
const FORMAT: u32 = 1;

/// What identifies a file's contents without reading them.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
struct FileStamp {
    path: PathBuf,
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i128,
}

impl FileStamp {
    fn of(path: &Path) -> Result<Self, LogError> {
        let m = std::fs::metadata(path).map_err(|e| LogError::io(path, "read the metadata of", e))?;
        let mtime_ns = i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec());
        Ok(Self { path: path.to_path_buf(), dev: m.dev(), ino: m.ino(), len: m.len(), mtime_ns })
    }
}

/// The break the index pass found, as it was reported: the variants a break can be kept
/// whole, any other as its line.
#[derive(Debug, Serialize, Deserialize)]
enum SavedBreak {
    Corrupt { path: PathBuf, offset: u64, messages: u64, detail: String },
    BadMessage { path: PathBuf, topic: String, ordinal: u64, offset: u64, detail: String },
    Line { path: PathBuf, line: String },
}

#[derive(Debug, Serialize, Deserialize)]
struct SavedIndex {
    format: u32,
    path: PathBuf,
    files: Vec<FileStamp>,
    lidar_topic: String,
    lidar_name: SensorName,
    cameras: Vec<IndexCamera>,
    frames: Vec<Planned>,
    wanted: Vec<u64>,
    sets: Vec<CalibrationSet>,
    error: Option<SavedBreak>,
    topics: Vec<String>,
}

impl McapIndex {
    /// The index in its saved form.
    ///
    /// # Errors
    /// [`LogError::Io`] if a file's metadata cannot be read.
    pub fn save(&self) -> Result<Vec<u8>, LogError> {
        let saved = SavedIndex {
            format: FORMAT,
            path: self.path.clone(),
            files: self.files.iter().map(|f| FileStamp::of(f)).collect::<Result<_, _>>()?,
            lidar_topic: self.lidar_topic.clone(),
            lidar_name: self.lidar_name.clone(),
            cameras: self.cameras.clone(),
            frames: self.planned.clone(),
            wanted: self.wanted.clone(),
            sets: self.sets.clone(),
            error: self.error.as_ref().map(|e| SavedBreak::of(e, &self.path)),
            topics: self.topics.clone(),
        };
        serde_json::to_vec(&saved)
            .map_err(|e| LogError::missing(&self.path, format!("cannot save its index: {e}")))
    }

    /// The index of the bag at `path` from its saved form (`plan` names where it was read,
    /// for errors).
    ///
    /// # Errors
    /// [`LogError::Input`], naming `plan`, if it is not a saved index of this bag as it is
    /// now, or does not hang together.
    pub fn load(path: &Path, plan: &Path, bytes: &[u8]) -> Result<Self, LogError> {
        let refuse = |detail: String| LogError::Input {
            path: plan.to_path_buf(),
            detail: format!("{}: {detail}", plan.display()),
        };
        let s: SavedIndex =
            serde_json::from_slice(bytes).map_err(|e| refuse(format!("not a saved index: {e}")))?;
        if s.format != FORMAT {
            return Err(refuse(format!("format {} (this build reads {FORMAT})", s.format)));
        }
        if s.path != path {
            return Err(refuse(format!("an index of {}, not of {}", s.path.display(), path.display())));
        }
        check_plan(&s).map_err(refuse)?;
        for f in &s.files {
            if FileStamp::of(&f.path)? != *f {
                return Err(refuse(format!(
                    "{} changed since it was indexed (size, time or inode differ): start the replay again",
                    f.path.display()
                )));
            }
        }
        Ok(Self::from_saved(s))
    }

    fn from_saved(s: SavedIndex) -> Self {
        let files: Vec<PathBuf> = s.files.into_iter().map(|f| f.path).collect();
        Self {
            error: s.error.map(|b| b.into_error()),
            path: s.path,
            files: files.into(),
            lidar_topic: s.lidar_topic,
            lidar_name: s.lidar_name,
            cameras: s.cameras,
            planned: s.frames,
            wanted: s.wanted,
            sets: s.sets,
            topics: s.topics,
        }
    }
}

/// What the streaming pass and the pipeline rely on: at least one file, each the bag or in
/// its folder; at least one camera; frames in replay order, each of a sensor, an epoch and
/// ordinals the index has; ordinals and topics sorted (they are searched); epochs numbered
/// 1, 2, ... (each set was checked as it was read back).
fn check_plan(s: &SavedIndex) -> Result<(), String> {
    if s.files.is_empty() || s.cameras.is_empty() {
        return Err("no file or no camera".into());
    }
    // The bag's own path may go through `..` (it is as the user gave it, made absolute).
    let in_bag = |f: &Path| {
        f.strip_prefix(&s.path)
            .is_ok_and(|rest| rest.components().all(|c| c != std::path::Component::ParentDir))
    };
    if let Some(f) = s.files.iter().find(|f| !in_bag(&f.path)) {
        return Err(format!("{} is not a file of the bag", f.path.display()));
    }
    if !s.wanted.is_sorted() || !s.topics.is_sorted() {
        return Err("ordinals or topics out of order".into());
    }
    if s.sets.iter().enumerate().any(|(i, set)| set.epoch.0 != i as u64 + 1) {
        return Err("epochs not numbered 1, 2, ...".into());
    }
    let key = |f: &Planned| (f.stamp, replay_rank(f.stream));
    if s.frames.windows(2).any(|w| key(&w[0]) > key(&w[1])) {
        return Err("frames out of replay order".into());
    }
    let kept = |o: u64| s.wanted.binary_search(&o).is_ok();
    for (k, f) in s.frames.iter().enumerate() {
        let sensor_ok = match f.stream {
            StreamKind::Camera => f.sensor < s.cameras.len(),
            StreamKind::Lidar => f.sensor == 0,
            _ => false,
        };
        let epoch_ok = f.epoch.0 >= 1 && f.epoch.0 <= s.sets.len() as u64;
        if !sensor_ok || !epoch_ok || !kept(f.ordinal) || f.labels.is_some_and(|l| !kept(l)) {
            return Err(format!("frame {k} names a sensor, epoch or message the index does not have"));
        }
    }
    Ok(())
}

impl SavedBreak {
    /// `e`, found in the bag at `bag`.
    fn of(e: &LogError, bag: &Path) -> Self {
        match e {
            LogError::Corrupt { path, offset, messages, detail } => Self::Corrupt {
                path: path.clone(),
                offset: *offset,
                messages: *messages,
                detail: detail.clone(),
            },
            LogError::BadMessage { path, topic, ordinal, offset, detail } => Self::BadMessage {
                path: path.clone(),
                topic: topic.clone(),
                ordinal: *ordinal,
                offset: *offset,
                detail: detail.clone(),
            },
            other => Self::Line { path: bag.to_path_buf(), line: other.to_string() },
        }
    }

    fn into_error(self) -> LogError {
        match self {
            Self::Corrupt { path, offset, messages, detail } => {
                LogError::Corrupt { path, offset, messages, detail }
            }
            Self::BadMessage { path, topic, ordinal, offset, detail } => {
                LogError::BadMessage { path, topic, ordinal, offset, detail }
            }
            // `Input` prints its detail as it is: the line as it was reported.
            Self::Line { path, line } => LogError::Input { path, detail: line },
        }
    }
}
