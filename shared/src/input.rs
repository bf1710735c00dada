//! Input files, checked at the door: regular files only, reads bounded by a stated cap.
//!
//! Every file a user hands to epochfuse (scenario, rig, policy, KITTI file, bag, DBC) is
//! opened through [`open_regular`] or read through [`read_bounded`]: a FIFO, a device such
//! as `/dev/zero`, a socket or a directory is refused in one line before a single byte is
//! read (a FIFO is opened non-blocking, so even the open cannot hang), and a file larger
//! than the caller's cap is refused instead of filling memory.

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};

/// Why an input file was refused.
#[derive(Debug)]
pub enum InputError {
    /// It could not be opened or read.
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// It is not a regular file (a FIFO, a device, a socket, a directory).
    NotRegular {
        /// The file.
        path: PathBuf,
        /// What it is instead.
        what: &'static str,
    },
    /// It is larger than the cap for its kind of input.
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size, bytes.
        size: u64,
        /// The cap, bytes.
        cap: u64,
    },
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io { path, source } => write!(f, "{}: cannot read: {source}", path.display()),
            Self::NotRegular { path, what } => {
                write!(f, "{}: is a {what}, not a regular file", path.display())
            }
            Self::TooLarge { path, size, cap } => write!(
                f,
                "{}: {size} bytes, more than the {cap}-byte limit for this kind of file",
                path.display()
            ),
        }
    }
}

impl std::error::Error for InputError {}

fn kind_name(t: std::fs::FileType) -> &'static str {
    if t.is_dir() {
        "directory"
    } else if t.is_fifo() {
        "FIFO"
    } else if t.is_char_device() {
        "character device"
    } else if t.is_block_device() {
        "block device"
    } else if t.is_socket() {
        "socket"
    } else {
        "special file"
    }
}

/// Opens `path` for reading if it is a regular file no larger than `cap` bytes; returns the
/// file and its size. Symbolic links are followed (a user may link a dataset), but what
/// they point to must be a regular file.
///
/// # Errors
/// [`InputError::NotRegular`], [`InputError::TooLarge`], or [`InputError::Io`].
pub fn open_regular(path: &Path, cap: u64) -> Result<(File, u64), InputError> {
    let io = |source: io::Error| InputError::Io { path: path.to_owned(), source };
    // O_NONBLOCK: opening a FIFO with no writer would otherwise block forever.
    let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| io(e.into()))?;
    let file = File::from(fd);
    let meta = file.metadata().map_err(io)?;
    if !meta.file_type().is_file() {
        return Err(InputError::NotRegular { path: path.to_owned(), what: kind_name(meta.file_type()) });
    }
    if meta.len() > cap {
        return Err(InputError::TooLarge { path: path.to_owned(), size: meta.len(), cap });
    }
    Ok((file, meta.len()))
}

/// Reads a whole regular file of at most `cap` bytes. A file that grows past the cap while
/// it is read is refused too (the read itself is bounded).
///
/// # Errors
/// As [`open_regular`].
pub fn read_bounded(path: &Path, cap: u64) -> Result<Vec<u8>, InputError> {
    let (file, size) = open_regular(path, cap)?;
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    file.take(cap.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|source| InputError::Io { path: path.to_owned(), source })?;
    if bytes.len() as u64 > cap {
        return Err(InputError::TooLarge { path: path.to_owned(), size: bytes.len() as u64, cap });
    }
    Ok(bytes)
}

/// Reads a whole regular text file of at most `cap` bytes.
///
/// # Errors
/// As [`read_bounded`], and [`InputError::Io`] with `InvalidData` for text that is not
/// UTF-8 (the message names the line).
pub fn read_text_bounded(path: &Path, cap: u64) -> Result<String, InputError> {
    let bytes = read_bounded(path, cap)?;
    String::from_utf8(bytes).map_err(|e| {
        let line = 1 + e.as_bytes()[..e.utf8_error().valid_up_to()].iter().filter(|&&b| b == b'\n').count();
        InputError::Io {
            path: path.to_owned(),
            source: io::Error::new(io::ErrorKind::InvalidData, format!("line {line}: not valid UTF-8")),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_files_are_read_within_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.ron");
        std::fs::write(&p, b"hello").unwrap();
        assert_eq!(read_bounded(&p, 5).unwrap(), b"hello");
        assert!(matches!(read_bounded(&p, 4), Err(InputError::TooLarge { size: 5, cap: 4, .. })));
        std::fs::write(&p, b"ok\n\xff").unwrap();
        assert!(read_text_bounded(&p, 100).unwrap_err().to_string().contains("line 2"));
    }

    #[test]
    fn fifos_devices_and_directories_are_refused_without_hanging() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        rustix::fs::mknodat(rustix::fs::CWD, &fifo, rustix::fs::FileType::Fifo, Mode::RUSR | Mode::WUSR, 0)
            .unwrap();
        for (path, what) in [
            (fifo.as_path(), "FIFO"),
            (Path::new("/dev/zero"), "character device"),
            (dir.path(), "directory"),
        ] {
            let err = read_bounded(path, 1 << 20).unwrap_err();
            assert!(matches!(err, InputError::NotRegular { .. }), "{err}");
            assert!(err.to_string().contains(what), "{err}");
        }
    }
}
