//! From files to messages: the bag's files, and every message of them in order, read through
//! `mcap`'s streaming reader with every CRC checked and bounded record and read sizes.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mcap::sans_io::{LinearReaderOptions, MessageReadEvent, MessageReader};

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
#[derive(Clone)]
pub(crate) struct MsgData {
    buf: Arc<Vec<u8>>,
    range: std::ops::Range<usize>,
}

impl MsgData {
    /// `range` of `buf` (checked by the caller to lie inside it).
    pub(super) fn view(buf: Arc<Vec<u8>>, range: std::ops::Range<usize>) -> Self {
        Self { buf, range }
    }
}

impl From<Vec<u8>> for MsgData {
    fn from(v: Vec<u8>) -> Self {
        let range = 0..v.len();
        Self { buf: Arc::new(v), range }
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

/// Messages of every file in order, numbered across files.
pub(crate) struct MsgStream {
    files: Arc<[PathBuf]>,
    file: usize,
    current: Option<(File, MessageReader, u64)>,
    ordinal: u64,
    done: bool,
}

impl std::fmt::Debug for MsgStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MsgStream")
            .field("file", &self.file)
            .field("ordinal", &self.ordinal)
            .finish_non_exhaustive()
    }
}

impl MsgStream {
    pub(crate) fn new(files: Arc<[PathBuf]>) -> Self {
        Self { files, file: 0, current: None, ordinal: 0, done: false }
    }

    /// Messages handed out so far (the ordinal of the next one).
    pub(super) fn ordinal(&self) -> u64 {
        self.ordinal
    }

    pub(crate) fn next(&mut self) -> Option<Result<RawMsg, LogError>> {
        loop {
            if self.done {
                return None;
            }
            if self.current.is_none() {
                let Some(path) = self.files.get(self.file) else {
                    self.done = true;
                    return None;
                };
                let f = match LogError::open_input(path, u64::MAX) {
                    Ok(f) => f,
                    Err(e) => {
                        self.done = true;
                        return Some(Err(e));
                    }
                };
                let options = LinearReaderOptions::default()
                    .with_validate_chunk_crcs(true)
                    .with_prevalidate_chunk_crcs(true)
                    .with_validate_data_section_crc(true)
                    .with_validate_summary_section_crc(true)
                    .with_record_length_limit(RECORD_LIMIT);
                let mut reader = MessageReader::new_with_options(options);
                // Replaces the built-in "lz4" decoder, whose checksum nobody checks (see `lz4`).
                if let Err(e) = reader.add_decompressor(super::lz4::Lz4NoHash::new()) {
                    self.done = true;
                    return Some(Err(LogError::missing(path, format!("lz4 decoder: {e}"))));
                }
                self.current = Some((f, reader, 0));
            }
            let path = &self.files[self.file];
            let (file, reader, fed) = self.current.as_mut()?;
            match reader.next_event() {
                None => {
                    self.current = None;
                    self.file += 1;
                }
                Some(Ok(MessageReadEvent::ReadRequest(need))) => {
                    let buf = reader.insert(need.clamp(1, READ_LIMIT));
                    let n = loop {
                        match file.read(buf) {
                            Ok(n) => break n,
                            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                            Err(e) => {
                                self.done = true;
                                return Some(Err(LogError::io(path, "read", e)));
                            }
                        }
                    };
                    reader.notify_read(n);
                    *fed += n as u64;
                }
                Some(Ok(MessageReadEvent::Message(m))) => {
                    let ordinal = self.ordinal;
                    self.ordinal += 1;
                    return Some(Ok(RawMsg {
                        ordinal,
                        file: self.file,
                        offset: *fed,
                        log_time: m.log_time,
                        channel: m.channel,
                        data: MsgData::from(m.data.into_owned()),
                    }));
                }
                Some(Err(e)) => {
                    self.done = true;
                    return Some(Err(LogError::Corrupt {
                        path: path.clone(),
                        offset: *fed,
                        messages: self.ordinal,
                        detail: e.to_string(),
                    }));
                }
            }
        }
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
