//! Segment files: creating them, and checking one before trusting it.
//!
//! A segment is created `O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC` with mode 0600 and sized up
//! front. Attaching checks, in order, before any byte of it is believed: that the path is not
//! a symbolic link, that it is a regular file, owned by our effective uid, not writable by
//! group or others, at least as large as a header, that its magic and layout version are
//! ours, that its stream kind is the one expected, that its geometry is sane, and that the
//! file covers the declared geometry. Each failure is its own [`AttachError`] variant.

use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::Ordering;

use rustix::fs::{Mode, OFlags};

use crate::layout::{self, SegmentHeader};
use crate::mapping::{Access, Mapping, ReadOnly, ReadWrite};
use crate::StreamKind;
use zerocopy::{FromBytes, IntoBytes};

/// The geometry of a segment to create.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentSpec {
    /// What the segment carries.
    pub kind: StreamKind,
    /// Number of slots; a power of two, at least 2.
    pub slot_count: u32,
    /// Payload bytes per slot.
    pub slot_capacity: u64,
    /// Sequence number of the first frame (tests start near `u64::MAX` to cover wrap-around).
    pub base_seq: crate::FrameSeq,
}

impl SegmentSpec {
    /// A spec with `base_seq` 0.
    #[must_use]
    pub fn new(kind: StreamKind, slot_count: u32, slot_capacity: u64) -> Self {
        Self { kind, slot_count, slot_capacity, base_seq: crate::FrameSeq(0) }
    }

    /// The segment file's size for this spec.
    ///
    /// # Errors
    /// [`AttachError::BadGeometry`] if the spec is outside the supported range.
    pub fn file_size(&self) -> Result<u64, AttachError> {
        check_geometry(
            u64::from(self.slot_count),
            self.slot_capacity,
            layout::slot_stride(self.slot_capacity),
        )
    }
}

/// Why a segment could not be attached (or taken over). Each check has its own variant.
#[derive(Debug)]
pub enum AttachError {
    /// No file at the path.
    NotFound,
    /// The path is a symbolic link (never followed).
    SymbolicLink,
    /// The path is not a regular file.
    NotRegularFile {
        /// What it is instead ("directory", "fifo", ...).
        file_type: &'static str,
    },
    /// The file belongs to another user.
    WrongOwner {
        /// The file's uid.
        owner: u32,
        /// Our effective uid.
        ours: u32,
    },
    /// Group or others may write the file.
    WritableByOthers {
        /// The file's permission bits.
        mode: u32,
    },
    /// The file is smaller than its header, or than the geometry its header declares.
    TooSmall {
        /// The file's size.
        size: u64,
        /// The size needed.
        needed: u64,
    },
    /// The magic word is not epochfuse's.
    BadMagic {
        /// The word found.
        found: u64,
    },
    /// The creator has not finished writing the header (version still 0).
    NotInitialized,
    /// A layout version this build does not read.
    UnsupportedVersion {
        /// The version found.
        found: u64,
    },
    /// The segment carries another stream kind than expected.
    WrongKind {
        /// What the caller expected.
        expected: StreamKind,
        /// What the header says (raw, it may be unknown).
        found: u64,
    },
    /// A geometry field is out of range.
    BadGeometry {
        /// The header field.
        field: &'static str,
        /// Its value.
        value: u64,
    },
    /// The segment exists with another geometry than the one a writer asked for.
    GeometryMismatch {
        /// The header field that differs.
        field: &'static str,
        /// The value in the file.
        found: u64,
        /// The value asked for.
        wanted: u64,
    },
    /// Another live process holds the writer lock.
    WriterLocked,
    /// The filesystem (typically `/dev/shm`) has no room for a new segment: reserved up front
    /// with `fallocate`, so that running out is this error and not a SIGBUS mid-run.
    NoSpace {
        /// The bytes the segment needs.
        needed: u64,
    },
    /// An I/O error while opening, checking or mapping.
    Io {
        /// What was being done.
        op: &'static str,
        /// The error.
        source: io::Error,
    },
}

impl fmt::Display for AttachError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotFound => write!(f, "no such segment"),
            Self::SymbolicLink => write!(f, "is a symbolic link; segments are never followed through links"),
            Self::NotRegularFile { file_type } => write!(f, "is a {file_type}, not a segment file"),
            Self::WrongOwner { owner, ours } => {
                write!(f, "is owned by uid {owner}, not by us (uid {ours}); refusing to trust it")
            }
            Self::WritableByOthers { mode } => {
                write!(f, "has mode {mode:o}: group or others may write it; refusing to trust it")
            }
            Self::TooSmall { size, needed } => {
                write!(f, "is {size} bytes, smaller than the {needed} bytes its header needs (truncated?)")
            }
            Self::BadMagic { found } => write!(f, "bad magic {found:#018x}: not an epochfuse segment"),
            Self::NotInitialized => {
                write!(f, "header not written yet (layout version 0): creator still starting or died")
            }
            Self::UnsupportedVersion { found } => {
                write!(f, "layout version {found}, this build reads version {}", layout::LAYOUT_VERSION)
            }
            Self::WrongKind { expected, found } => {
                let found_name = u32::try_from(*found).ok().and_then(StreamKind::from_u32);
                match found_name {
                    Some(k) => write!(f, "is a {k} segment, expected {expected}"),
                    None => write!(f, "unknown stream kind {found}, expected {expected}"),
                }
            }
            Self::BadGeometry { field, value } => write!(f, "header field {field} = {value} is out of range"),
            Self::GeometryMismatch { field, found, wanted } => {
                write!(f, "exists with {field} = {found}, but {wanted} was asked for")
            }
            Self::WriterLocked => write!(f, "another live process is its writer (lock held)"),
            Self::NoSpace { needed } => {
                write!(f, "needs {needed} bytes and the filesystem has no room for them (is /dev/shm full?)")
            }
            Self::Io { op, source } => write!(f, "{op}: {source}"),
        }
    }
}

impl std::error::Error for AttachError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

fn io_err(op: &'static str) -> impl FnOnce(io::Error) -> AttachError {
    move |source| AttachError::Io { op, source }
}

/// Validates a geometry and returns the file size it needs.
fn check_geometry(slot_count: u64, capacity: u64, stride: u64) -> Result<u64, AttachError> {
    if !(2..=layout::MAX_SLOT_COUNT).contains(&slot_count) || !slot_count.is_power_of_two() {
        return Err(AttachError::BadGeometry { field: "slot_count", value: slot_count });
    }
    if capacity == 0 || capacity > layout::MAX_SLOT_CAPACITY {
        return Err(AttachError::BadGeometry { field: "slot_capacity", value: capacity });
    }
    if stride != layout::slot_stride(capacity) {
        return Err(AttachError::BadGeometry { field: "slot_stride", value: stride });
    }
    layout::segment_size(slot_count, stride)
        .filter(|s| usize::try_from(*s).is_ok())
        .ok_or(AttachError::BadGeometry { field: "slot_count", value: slot_count })
}

fn file_type_name(mode: u32) -> &'static str {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => "directory",
        libc::S_IFIFO => "fifo",
        libc::S_IFSOCK => "socket",
        libc::S_IFCHR => "character device",
        libc::S_IFBLK => "block device",
        libc::S_IFLNK => "symbolic link",
        _ => "special file",
    }
}

/// Opens `path` without following links and checks the file's type, owner and mode.
pub(crate) fn open_checked(path: &Path, writable: bool) -> Result<(File, u64), AttachError> {
    let access = if writable { OFlags::RDWR } else { OFlags::RDONLY };
    // NONBLOCK: opening a FIFO must not wait for a peer; it is refused by the type check.
    let flags = access | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY;
    let fd = match rustix::fs::open(path, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Err(AttachError::NotFound),
        Err(rustix::io::Errno::LOOP) => return Err(AttachError::SymbolicLink),
        Err(rustix::io::Errno::ISDIR) => return Err(AttachError::NotRegularFile { file_type: "directory" }),
        Err(e) => return Err(AttachError::Io { op: "open", source: e.into() }),
    };
    let file = File::from(fd);
    let meta = file.metadata().map_err(io_err("fstat"))?;
    if !meta.file_type().is_file() {
        return Err(AttachError::NotRegularFile { file_type: file_type_name(meta.mode()) });
    }
    let ours = rustix::process::geteuid().as_raw();
    if meta.uid() != ours {
        return Err(AttachError::WrongOwner { owner: meta.uid(), ours });
    }
    if meta.mode() & 0o022 != 0 {
        return Err(AttachError::WritableByOthers { mode: meta.mode() & 0o7777 });
    }
    Ok((file, meta.len()))
}

/// A checked, mapped segment: its parsed static header and the mapping, writable or
/// read-only as `A` says.
#[derive(Debug)]
pub struct Segment<A: Access = ReadWrite> {
    /// The static header as validated at attach (a private copy: never re-read).
    pub header: SegmentHeader,
    /// The stream kind.
    pub kind: StreamKind,
    /// The mapping, exactly as long as the declared geometry.
    pub map: Mapping<A>,
    /// The open file (kept so takeover and inspection can re-check its size).
    pub file: File,
}

impl<A: Access> Segment<A> {
    /// Opens and checks an existing segment, mapped writable iff `A` is [`ReadWrite`].
    /// `expected` `None` accepts any known kind (for inspection).
    ///
    /// # Errors
    /// The first failed check, as its own [`AttachError`] variant.
    pub fn attach(path: &Path, expected: Option<StreamKind>) -> Result<Self, AttachError> {
        let (file, size) = open_checked(path, A::WRITABLE)?;
        // Created but not sized yet: its creator is between `open` and `set_len`.
        if size == 0 {
            return Err(AttachError::NotInitialized);
        }
        if size < layout::HEADER_SIZE as u64 {
            return Err(AttachError::TooSmall { size, needed: layout::HEADER_SIZE as u64 });
        }
        let head = Mapping::<ReadOnly>::map(&file, layout::HEADER_SIZE).map_err(io_err("mmap header"))?;
        // Acquire: partners with the creator's Release store of the version in `create`;
        // seeing the version means the rest of the static header is complete.
        let version = crate::sync::observe(head.word_for_loads(layout::OFF_LAYOUT_VERSION));
        let words = head.load_words::<{ layout::STATIC_HEADER_SIZE / 8 }>(0);
        let header = SegmentHeader::read_from_bytes(words.as_bytes())
            .map_err(|_| AttachError::BadGeometry { field: "header", value: 0 })?;
        // The creator writes the version last: until it is there, nothing else is either
        // (a file of zeroes is one whose creator has not got that far, or died first).
        if version == 0 && (header.magic == 0 || header.magic == layout::MAGIC) {
            return Err(AttachError::NotInitialized);
        }
        if header.magic != layout::MAGIC {
            return Err(AttachError::BadMagic { found: header.magic });
        }
        if version != layout::LAYOUT_VERSION {
            return Err(AttachError::UnsupportedVersion { found: version });
        }
        let kind = u32::try_from(header.stream_kind).ok().and_then(StreamKind::from_u32);
        let kind = match (kind, expected) {
            (Some(k), Some(e)) if k == e => k,
            (Some(k), None) => k,
            (_, Some(e)) => return Err(AttachError::WrongKind { expected: e, found: header.stream_kind }),
            (None, None) => {
                return Err(AttachError::BadGeometry { field: "stream_kind", value: header.stream_kind })
            }
        };
        let needed = check_geometry(header.slot_count, header.slot_capacity, header.slot_stride)?;
        if size < needed {
            return Err(AttachError::TooSmall { size, needed });
        }
        drop(head);
        let len =
            usize::try_from(needed).map_err(|_| AttachError::BadGeometry { field: "size", value: needed })?;
        let map = Mapping::map(&file, len).map_err(io_err("mmap"))?;
        Ok(Self { header, kind, map, file })
    }

    /// Number of slots.
    #[must_use]
    pub fn slot_count(&self) -> u64 {
        self.header.slot_count
    }

    /// Payload capacity of each slot.
    #[must_use]
    pub fn slot_capacity(&self) -> u64 {
        self.header.slot_capacity
    }

    /// Byte offset of the slot that holds frame `seq` (see [`slot_index_for`](Self::slot_index_for)).
    #[must_use]
    pub fn slot_offset_for(&self, seq: crate::FrameSeq) -> usize {
        // Fits: the whole geometry was checked to fit a usize at attach or create.
        layout::slot_offset(self.slot_index_for(seq), self.header.slot_stride) as usize
    }

    /// Index of the slot that holds frame `seq`, or held it last: its slot-map word
    /// ([`layout::OFF_SLOT_MAP`]), masked into range, in rings that have one; `seq % slots`
    /// in larger rings. The word is untrusted: whatever it says, only the slot's frame header
    /// tells whether the slot holds `seq`, and every read checks it.
    #[must_use]
    pub fn slot_index_for(&self, seq: crate::FrameSeq) -> u64 {
        let n = self.header.slot_count;
        let r = seq.0 & (n - 1);
        if n > layout::SLOT_MAP_MAX {
            return r;
        }
        // Relaxed: the writer stores it before the Release fence of `seqlock::write_begin` on
        // the frame's slot, the fence the cursor store announcing the frame is ordered by; a
        // reader asks only after its Acquire load of that cursor (`sync::observe`).
        (self.map.load(layout::slot_map_offset(r), Ordering::Relaxed) ^ r) & (n - 1)
    }

    /// Byte offset of slot `index` (`index < slot_count`).
    #[must_use]
    pub fn slot_offset(&self, index: u64) -> usize {
        layout::slot_offset(index & (self.header.slot_count - 1), self.header.slot_stride) as usize
    }
}

/// Reserves `size` bytes for a new segment file: `fallocate`, so that a full filesystem is
/// an error now rather than a SIGBUS at the first touch of an unbacked page; `set_len` where
/// the filesystem cannot reserve.
fn reserve(file: &File, size: u64) -> Result<(), AttachError> {
    // Asked first: a `fallocate` bound to fail takes the filesystem's last free block (every
    // other process's too) before it gives up and hands them back.
    if let Ok(fs) = rustix::fs::fstatvfs(file) {
        if fs.f_bavail.saturating_mul(fs.f_frsize) < size {
            return Err(AttachError::NoSpace { needed: size });
        }
    }
    match rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), 0, size) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::NOSPC | rustix::io::Errno::FBIG) => Err(AttachError::NoSpace { needed: size }),
        Err(rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::NOSYS) => {
            file.set_len(size).map_err(io_err("size"))
        }
        Err(e) => Err(AttachError::Io { op: "fallocate", source: e.into() }),
    }
}

impl Segment<ReadWrite> {
    /// Creates a new segment file at `path` with `spec`'s geometry: exclusive create, mode
    /// 0600, sized up front, header written with the layout version last.
    ///
    /// # Errors
    /// [`AttachError::Io`] (with `EEXIST` if the file exists) or [`AttachError::BadGeometry`].
    pub fn create(path: &Path, spec: &SegmentSpec) -> Result<Self, AttachError> {
        let size = spec.file_size()?;
        let fd = rustix::fs::open(
            path,
            OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| AttachError::Io { op: "create", source: e.into() })?;
        let file = File::from(fd);
        if let Err(e) = reserve(&file, size) {
            // We created it (O_EXCL) and nobody can use it: do not leave it behind.
            let _ = std::fs::remove_file(path);
            return Err(e);
        }
        let len =
            usize::try_from(size).map_err(|_| AttachError::BadGeometry { field: "size", value: size })?;
        let map = Mapping::map(&file, len).map_err(io_err("mmap"))?;
        let header = SegmentHeader {
            magic: layout::MAGIC,
            layout_version: layout::LAYOUT_VERSION,
            stream_kind: spec.kind as u64,
            slot_count: u64::from(spec.slot_count),
            slot_capacity: spec.slot_capacity,
            slot_stride: layout::slot_stride(spec.slot_capacity),
            base_seq: spec.base_seq.0,
            created_ns: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
        };
        let mut words = [0u64; layout::STATIC_HEADER_SIZE / 8];
        words.as_mut_bytes().copy_from_slice(header.as_bytes());
        // Everything but the version first; the version goes last with Release.
        words[layout::OFF_LAYOUT_VERSION / 8] = 0;
        map.store_words(0, &words);
        map.word(layout::OFF_INCARNATION).store(1, Ordering::Relaxed);
        map.word(layout::OFF_WRITE_CURSOR).store(spec.base_seq.0, Ordering::Relaxed);
        // Release (in `publish`): partners with the Acquire load of the version in `attach`.
        crate::sync::publish(map.word(layout::OFF_LAYOUT_VERSION), layout::LAYOUT_VERSION);
        Ok(Self { header, kind: spec.kind, map, file })
    }
}
