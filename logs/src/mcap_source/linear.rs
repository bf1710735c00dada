//! mcap's own linear message reader over a bag's files: the reference the chunked reader
//! ([`super::chunked::ChunkedStream`], which every pass uses) is tested against.

use std::fs::File;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use mcap::sans_io::{LinearReaderOptions, MessageReadEvent, MessageReader};

use super::read::{MsgData, RawMsg, READ_LIMIT, RECORD_LIMIT};
use crate::LogError;

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
