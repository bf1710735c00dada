//! Run directories: where a pipeline's segments, locks and socket live.
//!
//! ```text
//! <shm root>/                      default /dev/shm/epochfuse; --shm-root or EPOCHFUSE_SHM_ROOT
//!   run-<pid>-<unix ms>/           mode 0700, one per running pipeline
//!     run.lock                     held (flock) by the supervisor for the run's whole life
//!     camera.seg  camera.seg.lock  the camera ring and its writer lock
//!     lidar.seg   lidar.seg.lock
//!     fused.seg   fused.seg.lock
//!     calib.seg   calib.seg.lock   the calibration table
//!     calib.sock                   the calibration service's socket
//! ```
//!
//! A run directory whose `run.lock` is free belongs to a run that died: [`clean_stale`]
//! removes it. A live one (lock held) is never touched.

use std::fs::File;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, Mode, OFlags};

/// The default shm root.
pub const DEFAULT_ROOT: &str = "/dev/shm/epochfuse";
/// The environment variable that overrides the root.
pub const ROOT_ENV: &str = "EPOCHFUSE_SHM_ROOT";
/// The run-lock file name inside a run directory.
pub const RUN_LOCK: &str = "run.lock";

/// Segment file name of a stream.
#[must_use]
pub fn segment_file(kind: crate::StreamKind) -> String {
    format!("{}.seg", kind.name())
}

/// Socket file name of the calibration service.
pub const CALIB_SOCKET: &str = "calib.sock";

/// Why the shm root or a run directory is unusable.
#[derive(Debug)]
pub enum RunDirError {
    /// The root exists and belongs to another user.
    RootNotOurs {
        /// The root.
        root: PathBuf,
        /// Its owner.
        owner: u32,
    },
    /// The root or run directory is writable by group or others.
    RootWritableByOthers {
        /// The directory.
        root: PathBuf,
        /// Its mode.
        mode: u32,
    },
    /// The path exists but is not a directory.
    NotADirectory(PathBuf),
    /// The filesystem under the root has less free space than the run's segments need.
    NoRoom {
        /// The root.
        root: PathBuf,
        /// Bytes the run's segments need.
        needed: u64,
        /// Bytes free for us.
        free: u64,
    },
    /// An I/O error on a path.
    Io {
        /// The path.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The error.
        source: io::Error,
    },
}

impl std::fmt::Display for RunDirError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::RootNotOurs { root, owner } => write!(
                f,
                "{}: owned by uid {owner}, not by us; pick another root with --shm-root or {ROOT_ENV}",
                root.display()
            ),
            Self::RootWritableByOthers { root, mode } => write!(
                f,
                "{}: mode {mode:o} lets others write; run `chmod 700` on it or pick another root with --shm-root",
                root.display()
            ),
            Self::NotADirectory(p) => write!(f, "{}: exists and is not a directory", p.display()),
            Self::NoRoom { root, needed, free } => write!(
                f,
                "{}: the run needs {} MiB of shared memory but only {} MiB are free; pick a larger \
                 root with --shm-root DIR (in Docker: --shm-size={}m)",
                root.display(),
                needed.div_ceil(1 << 20),
                free >> 20,
                needed.div_ceil(1 << 20) + 64
            ),
            Self::Io { path, op, source } => {
                let hint = if source.kind() == io::ErrorKind::NotFound && path.starts_with("/dev/shm") {
                    " (no /dev/shm here? in a container, mount one or use --shm-root)"
                } else if source.kind() == io::ErrorKind::PermissionDenied {
                    " (use --shm-root to pick a directory you own)"
                } else {
                    ""
                };
                write!(f, "{}: {op}: {source}{hint}", path.display())
            }
        }
    }
}

impl std::error::Error for RunDirError {}

/// The shm root: `explicit`, else `$EPOCHFUSE_SHM_ROOT`, else [`DEFAULT_ROOT`].
#[must_use]
pub fn resolve_root(explicit: Option<&Path>) -> PathBuf {
    explicit
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os(ROOT_ENV).filter(|v| !v.is_empty()).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_ROOT))
}

/// Checks, before any segment exists, that the filesystem under `root` has room for
/// `needed` bytes of segments: a full tmpfs is one line up front, never a SIGBUS mid-run.
///
/// # Errors
/// [`RunDirError::NoRoom`] when it has not, [`RunDirError::Io`] when `statvfs` fails.
pub fn check_room(root: &Path, needed: u64) -> Result<(), RunDirError> {
    let st = rustix::fs::statvfs(root).map_err(|e| RunDirError::Io {
        path: root.to_owned(),
        op: "statvfs",
        source: e.into(),
    })?;
    let free = st.f_bavail.saturating_mul(st.f_frsize);
    if free < needed {
        return Err(RunDirError::NoRoom { root: root.to_owned(), needed, free });
    }
    Ok(())
}

fn check_dir(path: &Path) -> Result<(), RunDirError> {
    let meta = std::fs::symlink_metadata(path).map_err(|source| RunDirError::Io {
        path: path.to_owned(),
        op: "stat",
        source,
    })?;
    if !meta.is_dir() {
        return Err(RunDirError::NotADirectory(path.to_owned()));
    }
    let ours = rustix::process::geteuid().as_raw();
    if meta.uid() != ours {
        return Err(RunDirError::RootNotOurs { root: path.to_owned(), owner: meta.uid() });
    }
    if meta.mode() & 0o022 != 0 {
        return Err(RunDirError::RootWritableByOthers { root: path.to_owned(), mode: meta.mode() & 0o7777 });
    }
    Ok(())
}

/// Creates the root (mode 0700) if needed and checks it is ours and private.
///
/// # Errors
/// [`RunDirError`] naming the path and what is wrong with it.
pub fn ensure_root(root: &Path) -> Result<(), RunDirError> {
    match std::fs::DirBuilder::new().recursive(true).mode(0o700).create(root) {
        Ok(()) => {}
        Err(source) => return Err(RunDirError::Io { path: root.to_owned(), op: "create", source }),
    }
    check_dir(root)
}

/// A run directory held by this process (its `run.lock` is locked until drop).
#[derive(Debug)]
pub struct RunDir {
    path: PathBuf,
    _lock: File,
    remove_on_drop: bool,
}

impl RunDir {
    /// Creates a fresh run directory under `root`, after cleaning stale ones.
    ///
    /// # Errors
    /// [`RunDirError`] if the root is unusable or the directory cannot be made.
    pub fn create(root: &Path) -> Result<Self, RunDirError> {
        ensure_root(root)?;
        clean_stale(root);
        let ms =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
        let path = root.join(format!("run-{}-{ms}", std::process::id()));
        std::fs::DirBuilder::new().mode(0o700).create(&path).map_err(|source| RunDirError::Io {
            path: path.clone(),
            op: "create",
            source,
        })?;
        let lock = lock_file(&path.join(RUN_LOCK)).map_err(|source| RunDirError::Io {
            path: path.join(RUN_LOCK),
            op: "lock",
            source,
        })?;
        Ok(Self { path, _lock: lock, remove_on_drop: true })
    }

    /// The directory.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Keeps the directory after drop (for post-mortem inspection).
    pub fn keep(&mut self) {
        self.remove_on_drop = false;
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        if self.remove_on_drop {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

fn lock_file(path: &Path) -> io::Result<File> {
    let fd = rustix::fs::open(
        path,
        OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )?;
    rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive)?;
    Ok(File::from(fd))
}

/// Whether the run at `dir` is alive (its supervisor holds `run.lock`).
#[must_use]
pub fn run_alive(dir: &Path) -> bool {
    crate::ring::lock_held(&dir.join(RUN_LOCK))
}

/// The run directories under `root`, with whether each is alive.
#[must_use]
pub fn list_runs(root: &Path) -> Vec<(PathBuf, bool)> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut runs: Vec<(PathBuf, bool)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("run-"))
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| {
            let p = e.path();
            let alive = run_alive(&p);
            (p, alive)
        })
        .collect();
    runs.sort();
    runs
}

/// Removes run directories under `root` whose supervisor died. Returns how many.
pub fn clean_stale(root: &Path) -> usize {
    list_runs(root)
        .into_iter()
        .filter(|(_, alive)| !alive)
        .filter(|(p, _)| check_dir(p).is_ok() && std::fs::remove_dir_all(p).is_ok())
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_is_checked_against_the_filesystem() {
        let dir = tempfile::tempdir().unwrap();
        check_room(dir.path(), 0).unwrap();
        let err = check_room(dir.path(), u64::MAX).unwrap_err();
        assert!(matches!(err, RunDirError::NoRoom { needed: u64::MAX, .. }), "{err}");
        let line = err.to_string();
        assert!(
            line.contains("MiB are free") && line.contains("--shm-root") && !line.contains('\n'),
            "{line}"
        );
    }
}
