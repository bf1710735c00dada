//! [`LogError`]: everything that can go wrong reading or writing a log, as one line.

use std::fmt;
use std::path::{Path, PathBuf};

/// Why a log could not be opened, read or written.
///
/// `Display` is always a single line that names the file and, where it applies, the byte
/// offset, message, key or line where the input broke. The CLI prints it as is (exit code 2).
#[derive(Debug)]
#[non_exhaustive]
pub enum LogError {
    /// The file or folder could not be read or written.
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// The path is neither a KITTI folder, an `.mcap` file nor a rosbag2 folder.
    NotALog {
        /// The path given.
        path: PathBuf,
        /// What was looked for.
        detail: String,
    },
    /// The MCAP container is truncated or corrupt (framing, CRC, compression).
    Corrupt {
        /// The `.mcap` file.
        path: PathBuf,
        /// Bytes of the file consumed when the error surfaced: the record that broke ends at or
        /// before this offset.
        offset: u64,
        /// Messages read intact before the error.
        messages: u64,
        /// The MCAP reader's description.
        detail: String,
    },
    /// One message could not be decoded or is out of range.
    BadMessage {
        /// The `.mcap` file.
        path: PathBuf,
        /// The message's topic.
        topic: String,
        /// The message's position in the file (0 = first message).
        ordinal: u64,
        /// Bytes of the file consumed when the message was read (its record ends here or before).
        offset: u64,
        /// What is wrong.
        detail: String,
    },
    /// Something the replay needs is not in the log: a topic, a calibration, a transform.
    Missing {
        /// The log.
        path: PathBuf,
        /// What is missing, in words.
        what: String,
    },
    /// No chain of transforms joins the camera's frame to the lidar's.
    NoTransform {
        /// The log.
        path: PathBuf,
        /// The camera's frame id.
        camera_frame: String,
        /// The lidar's frame id.
        lidar_frame: String,
    },
    /// A file of a KITTI folder (calib text, velodyne bin, PNG) is malformed.
    Kitti {
        /// The file.
        path: PathBuf,
        /// 1-based line, for calib files.
        line: Option<usize>,
        /// The key or field concerned (`P2`, `Tr_velo_to_cam`, ...), if any.
        key: Option<String>,
        /// What is wrong.
        detail: String,
    },
    /// An input file was refused at the door (not a regular file, or larger than its cap).
    Input {
        /// The file.
        path: PathBuf,
        /// The whole one-line message, naming the file.
        detail: String,
    },
    /// The recorder was used wrongly or could not encode a message.
    Record {
        /// The `.mcap` being written.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl fmt::Display for LogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io { path, action, source } => {
                write!(f, "{}: cannot {action}: {}", path.display(), one_line(&source.to_string()))
            }
            Self::NotALog { path, detail } => write!(f, "{}: not a log: {}", path.display(), one_line(detail)),
            Self::Corrupt { path, offset, messages, detail } => write!(
                f,
                "{}: corrupt or truncated MCAP, broken at or before byte {offset} (after {messages} intact messages): {}",
                path.display(),
                one_line(detail)
            ),
            Self::BadMessage { path, topic, ordinal, offset, detail } => write!(
                f,
                "{}: message #{ordinal} on {topic} (record ending at or before byte {offset}): {}",
                path.display(),
                one_line(detail)
            ),
            Self::Missing { path, what } => write!(f, "{}: {}", path.display(), one_line(what)),
            Self::NoTransform { path, camera_frame, lidar_frame } => write!(
                f,
                "{}: no transform between camera frame '{camera_frame}' and lidar frame '{lidar_frame}' in /tf or /tf_static",
                path.display()
            ),
            Self::Kitti { path, line, key, detail } => {
                write!(f, "{}", path.display())?;
                if let Some(line) = line {
                    write!(f, ":{line}")?;
                }
                if let Some(key) = key {
                    write!(f, ": {key}")?;
                }
                write!(f, ": {}", one_line(detail))
            }
            Self::Record { path, detail } => write!(f, "{}: cannot record: {}", path.display(), one_line(detail)),
            Self::Input { detail, .. } => write!(f, "{}", one_line(detail)),
        }
    }
}

impl std::error::Error for LogError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl Clone for LogError {
    fn clone(&self) -> Self {
        match self {
            Self::Io { path, action, source } => Self::Io {
                path: path.clone(),
                action,
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
            Self::NotALog { path, detail } => Self::NotALog { path: path.clone(), detail: detail.clone() },
            Self::Corrupt { path, offset, messages, detail } => Self::Corrupt {
                path: path.clone(),
                offset: *offset,
                messages: *messages,
                detail: detail.clone(),
            },
            Self::BadMessage { path, topic, ordinal, offset, detail } => Self::BadMessage {
                path: path.clone(),
                topic: topic.clone(),
                ordinal: *ordinal,
                offset: *offset,
                detail: detail.clone(),
            },
            Self::Missing { path, what } => Self::Missing { path: path.clone(), what: what.clone() },
            Self::NoTransform { path, camera_frame, lidar_frame } => Self::NoTransform {
                path: path.clone(),
                camera_frame: camera_frame.clone(),
                lidar_frame: lidar_frame.clone(),
            },
            Self::Kitti { path, line, key, detail } => {
                Self::Kitti { path: path.clone(), line: *line, key: key.clone(), detail: detail.clone() }
            }
            Self::Record { path, detail } => Self::Record { path: path.clone(), detail: detail.clone() },
            Self::Input { path, detail } => Self::Input { path: path.clone(), detail: detail.clone() },
        }
    }
}

impl LogError {
    pub(crate) fn io(path: &Path, action: &'static str, source: std::io::Error) -> Self {
        Self::Io { path: path.to_path_buf(), action, source }
    }

    pub(crate) fn kitti(
        path: &Path,
        line: Option<usize>,
        key: Option<&str>,
        detail: impl Into<String>,
    ) -> Self {
        Self::Kitti { path: path.to_path_buf(), line, key: key.map(str::to_owned), detail: detail.into() }
    }

    /// Opens an input file through [`shared::input::open_regular`]: a FIFO or a device is
    /// refused in one line instead of hanging the read.
    pub(crate) fn open_input(path: &Path, cap: u64) -> Result<std::fs::File, Self> {
        shared::input::open_regular(path, cap).map(|(f, _)| f).map_err(|e| Self::input(path, &e))
    }

    /// Reads a whole input file of at most `cap` bytes (see [`Self::open_input`]).
    pub(crate) fn read_input(path: &Path, cap: u64) -> Result<Vec<u8>, Self> {
        shared::input::read_bounded(path, cap).map_err(|e| Self::input(path, &e))
    }

    /// Reads a whole UTF-8 input file of at most `cap` bytes (see [`Self::open_input`]).
    pub(crate) fn read_input_text(path: &Path, cap: u64) -> Result<String, Self> {
        shared::input::read_text_bounded(path, cap).map_err(|e| Self::input(path, &e))
    }

    fn input(path: &Path, e: &shared::input::InputError) -> Self {
        Self::Input { path: path.to_path_buf(), detail: e.to_string() }
    }

    pub(crate) fn missing(path: &Path, what: impl Into<String>) -> Self {
        Self::Missing { path: path.to_path_buf(), what: what.into() }
    }
}

/// Why [`crate::LogFrame::write_payload`] failed.
#[derive(Debug)]
pub enum WriteError {
    /// The payload does not fit the sink.
    Full(shared::frames::SinkFull),
    /// A deferred image did not decode ([`crate::LogFrames::defer_images`]): the log's
    /// one-line error, for the CLI to print as is (exit code 2).
    Log(LogError),
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full(e) => e.fmt(f),
            Self::Log(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for WriteError {}

impl From<shared::frames::SinkFull> for WriteError {
    fn from(e: shared::frames::SinkFull) -> Self {
        Self::Full(e)
    }
}

impl From<LogError> for WriteError {
    fn from(e: LogError) -> Self {
        Self::Log(e)
    }
}
