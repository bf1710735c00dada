//! From files to messages: the bag's files, the message every pass hands out and the bounds
//! on record and read sizes (the passes themselves read through [`super::chunked`]).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::LogError;

/// Largest record or chunk accepted; bounds the memory a corrupt length can claim.
pub(super) const RECORD_LIMIT: usize = 512 << 20;
/// Largest single read from a file.
pub(super) const READ_LIMIT: usize = 4 << 20;
/// Largest rosbag2 `metadata.yaml` read.
const METADATA_LIMIT: u64 = 16 << 20;

/// Whether a file starts with the MCAP magic.
pub(crate) fn has_mcap_magic(path: &Path) -> Result<bool, LogError> {
    let mut f = LogError::open_input(path, u64::MAX)?;
    let mut magic = [0u8; 8];
    let mut got = 0;
    while got < magic.len() {
        match f.read(&mut magic[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(LogError::io(path, "read", e)),
        }
    }
    Ok(got == magic.len() && magic == mcap::MAGIC)
}

/// The `.mcap` files of a rosbag2 folder: those `metadata.yaml` lists under
/// `relative_file_paths`, or else every `.mcap` in the folder, sorted.
pub(crate) fn bag_files(dir: &Path) -> Result<Vec<PathBuf>, LogError> {
    let meta = dir.join("metadata.yaml");
    let mut files = Vec::new();
    if meta.is_file() {
        let text = LogError::read_input_text(&meta, METADATA_LIMIT)?;
        if let Some(line) = text.lines().find(|l| l.trim_start().starts_with("storage_identifier:")) {
            let id = line.split_once(':').map_or("", |(_, v)| v.trim().trim_matches('\''));
            if !id.is_empty() && id != "mcap" {
                return Err(LogError::NotALog {
                    path: meta,
                    detail: format!("storage_identifier is '{id}'; only mcap bags are read"),
                });
            }
        }
        let mut in_list = false;
        for line in text.lines() {
            if line.trim_start().starts_with("relative_file_paths:") {
                in_list = true;
                continue;
            }
            if in_list {
                match line.trim_start().strip_prefix("- ") {
                    Some(name) => files.push(dir.join(name.trim().trim_matches(['\'', '"']))),
                    None => in_list = false,
                }
            }
        }
    }
    if files.is_empty() {
        let rd = std::fs::read_dir(dir).map_err(|e| LogError::io(dir, "list the folder", e))?;
        for entry in rd {
            let p = entry.map_err(|e| LogError::io(dir, "list the folder", e))?.path();
            if p.extension().and_then(|e| e.to_str()) == Some("mcap") {
                files.push(p);
            }
        }
        files.sort();
    }
    if files.is_empty() {
        return Err(LogError::NotALog {
            path: dir.to_path_buf(),
            detail: "no KITTI layout (velodyne/, image_2/, calib/), no metadata.yaml and no .mcap file"
                .into(),
        });
    }
    for f in &files {
        if f.exists() {
            // Present but perhaps a FIFO or a device: refused here, by name.
            LogError::open_input(f, u64::MAX)?;
        } else {
            return Err(LogError::missing(
                dir,
                format!("bag file {} listed in metadata.yaml does not exist", f.display()),
            ));
        }
    }
    Ok(files)
}

/// A message read from one of the bag's files.
pub(crate) struct RawMsg {
    pub(crate) ordinal: u64,
    pub(crate) file: usize,
    /// Bytes of the file consumed when the message came out.
    pub(crate) offset: u64,
    pub(crate) log_time: u64,
    pub(crate) channel: Arc<mcap::Channel<'static>>,
    pub(crate) data: MsgData,
}

/// A message's bytes: its own buffer, or a view into the decompressed chunk it came from
/// (shared, so a frame reaches its ring slot without a copy per message).
///
/// A headers-only pass ([`super::chunked::ChunkedStream::headers_only`]) may leave the tail of
/// a chunk's last, large message undecoded: only `buf[..valid_end]` holds the file's bytes.
#[derive(Clone)]
pub(crate) struct MsgData {
    buf: Arc<ChunkBuf>,
    range: std::ops::Range<usize>,
    valid_end: usize,
}

impl MsgData {
    /// `range` of `buf` (checked by the caller to lie inside it), of which the bytes before
    /// `valid_end` were decoded.
    pub(super) fn view(buf: Arc<ChunkBuf>, range: std::ops::Range<usize>, valid_end: usize) -> Self {
        Self { buf, range, valid_end }
    }

    /// How many leading bytes of the message are the file's (all of them, but in a
    /// headers-only pass).
    pub(crate) fn valid_len(&self) -> usize {
        self.valid_end.clamp(self.range.start, self.range.end) - self.range.start
    }
}

impl From<Vec<u8>> for MsgData {
    fn from(v: Vec<u8>) -> Self {
        let range = 0..v.len();
        Self { valid_end: v.len(), buf: Arc::new(ChunkBuf::new(v, usize::MAX, None)), range }
    }
}

/// A decompressed chunk's bytes. Dropped (when the last message viewing it is), they go back
/// to the pool of the stream that decoded them, which decodes the next chunks into them: no
/// fresh, zeroed allocation per chunk.
pub(crate) struct ChunkBuf {
    bytes: Vec<u8>,
    /// The chunk's bytes are `bytes[..len]` (a reused buffer may be longer).
    len: usize,
    pool: Option<Arc<BufPool>>,
}

impl ChunkBuf {
    /// The first `len` bytes of `bytes` (all of them if there are fewer).
    pub(super) fn new(bytes: Vec<u8>, len: usize, pool: Option<Arc<BufPool>>) -> Self {
        Self { len: len.min(bytes.len()), bytes, pool }
    }
}

/// Decoded chunks' buffers for reuse, last in first out: the buffer freed last (its frame just
/// copied into a ring slot) is the likeliest still in cache, so decoding into it again writes
/// to cache lines rather than fetching cold ones (a FIFO cycles through all of them).
#[derive(Debug)]
pub(crate) struct BufPool {
    bufs: parking_lot::Mutex<Vec<Vec<u8>>>,
    cap: usize,
}

impl BufPool {
    /// A pool keeping at most `cap` buffers.
    pub(super) fn new(cap: usize) -> Self {
        Self { bufs: parking_lot::Mutex::new(Vec::with_capacity(cap)), cap }
    }

    /// The buffer freed last, or an empty one.
    pub(super) fn take(&self) -> Vec<u8> {
        self.bufs.lock().pop().unwrap_or_default()
    }

    /// Keeps `buf` unless the pool is full.
    fn give(&self, buf: Vec<u8>) {
        let mut bufs = self.bufs.lock();
        if bufs.len() < self.cap {
            bufs.push(buf);
        }
    }
}

impl std::ops::Deref for ChunkBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl Drop for ChunkBuf {
    fn drop(&mut self) {
        if let Some(pool) = &self.pool {
            // A full pool lets the buffer go.
            pool.give(std::mem::take(&mut self.bytes));
        }
    }
}

impl std::ops::Deref for MsgData {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.buf[self.range.clone()]
    }
}

impl std::fmt::Debug for MsgData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} bytes", self.range.len())
    }
}

/// A message that cannot be decoded, named by file, topic, ordinal and offset.
pub(crate) fn bad(path: &Path, m: &RawMsg, e: impl std::fmt::Display) -> LogError {
    LogError::BadMessage {
        path: path.to_path_buf(),
        topic: m.channel.topic.clone(),
        ordinal: m.ordinal,
        offset: m.offset,
        detail: e.to_string(),
    }
}
