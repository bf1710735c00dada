//! Every pass over a bag (the index, the CAN channel, the streaming pass) reads it here: its
//! messages in file order, as mcap's linear reader gives them ([`super::linear::MsgStream`],
//! kept as the reference the tests compare with), but with its chunks decompressed on a
//! small pool of threads and its messages handed out as views into the decompressed chunk
//! (no copy per message).
//!
//! `mcap`'s linear reader walks the file (every framing rule, the data- and summary-section
//! CRCs) with `emit_chunks`, so it hands over each chunk still compressed. Chunk `k` goes to
//! worker `k % n`, which decompresses it, checks its CRC and splits it into records; the
//! reader takes the workers' results in chunk order, so messages come out exactly in the order
//! and with the ordinals of the linear reader. At most [`AHEAD`] chunks per worker are in
//! flight. An error of any kind is queued in file order and surfaces only when the reader gets
//! to it: the frames before a break replay as before.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fs::File;
use std::io::Read;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Receiver, Sender};
use mcap::read::ChannelAccumulator;
use mcap::records::{op, Record};
use mcap::sans_io::decompressor::Decompressor as _;
use mcap::sans_io::{LinearReadEvent, LinearReader, LinearReaderOptions};
use mcap::McapError;

use super::read::{BufPool, ChunkBuf, MsgData, RawMsg, READ_LIMIT, RECORD_LIMIT};
use crate::LogError;

/// Chunks decompressed at once: one per core of the machines this runs on.
const WORKERS: usize = 2;
/// Chunks each worker may have decoded or queued ahead of the reader. With 2 the replayer's
/// slot-filling thread waited for frames 40–55 % of a `--max-rate` replay, with both cores
/// only 70 % busy: the stages took turns. 4 (with the replayer reading 4 frames ahead) made
/// that replay 1.06–1.17× as fast (2026-12-02, 6–8 runs each, three windows); 8 was no faster.
const AHEAD: usize = 4;
/// Decoded chunks' buffers kept for reuse: those in flight, the one being handed out and a
/// few held by frames downstream.
const POOL: usize = 2 * WORKERS * AHEAD;
/// Opcode + length: the framing of a record inside a chunk.
const FRAMING: usize = 9;
/// Bytes of a chunk's last message a headers-only pass decodes when the message is larger:
/// an `Image`'s or a `PointCloud2`'s fields up to its data blob fit many times over.
const HEADERS_PREFIX: usize = 16 << 10;

/// A decompressed chunk: its bytes, its records (opcode, body range) in order, and how many
/// of its bytes were decoded (all of them, but in a headers-only pass).
struct DecodedChunk {
    buf: Arc<ChunkBuf>,
    records: Vec<(u8, Range<usize>)>,
    valid: usize,
}

type Decoded = Result<DecodedChunk, McapError>;

/// A chunk being handed out: its bytes, its records still to come, its file offset and the
/// end of its decoded bytes.
type OpenChunk = (Arc<ChunkBuf>, std::vec::IntoIter<(u8, Range<usize>)>, u64, usize);

/// A compressed chunk on its way to a worker.
struct Job {
    compression: String,
    uncompressed_size: u64,
    crc: u32,
    data: Vec<u8>,
    headers_only: bool,
}

/// What the file holds next, in file order.
enum Unit {
    /// A chunk, decoded by worker `chunk % WORKERS`.
    Chunk { offset: u64 },
    /// A record outside any chunk.
    Record { opcode: u8, body: Vec<u8>, offset: u64 },
    /// The linear reader's error (nothing follows it).
    Broken { error: LogError },
}

/// One open file of the bag.
struct Current {
    file: File,
    reader: LinearReader,
    fed: u64,
    done: bool,
}

/// Messages of every file in order, numbered across files (see the module documentation).
pub(crate) struct ChunkedStream {
    files: Arc<[PathBuf]>,
    file: usize,
    current: Option<Current>,
    jobs: Vec<Sender<Job>>,
    results: Vec<Receiver<Decoded>>,
    workers: Vec<JoinHandle<()>>,
    /// Chunks sent to workers so far, and taken back.
    sent: usize,
    taken: usize,
    units: VecDeque<Unit>,
    /// The chunk being handed out: its bytes, records, next record and file offset.
    chunk: Option<OpenChunk>,
    channels: ChannelAccumulator<'static>,
    past_data_end: bool,
    ordinal: u64,
    done: bool,
    /// See [`Self::headers_only`].
    headers_only: bool,
    /// Files whose data section CRC was present and matched.
    verified: usize,
}

impl std::fmt::Debug for ChunkedStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkedStream")
            .field("file", &self.file)
            .field("ordinal", &self.ordinal)
            .finish_non_exhaustive()
    }
}

impl ChunkedStream {
    /// Starts the workers.
    ///
    /// # Errors
    /// [`LogError::Io`] if a thread cannot be started.
    pub(crate) fn new(files: Arc<[PathBuf]>) -> Result<Self, LogError> {
        Self::start(files, false)
    }

    /// A stream for passes that need the small messages and only the headers of the large
    /// ones: an LZ4 chunk's last message, if larger than [`HEADERS_PREFIX`], is decoded only
    /// that far (the rest of its bytes read as zeros, see [`MsgData::valid_len`]); and no
    /// chunk CRC can be checked. Such a pass stands only if it saw no error and
    /// [`Self::data_verified`] holds at its end; otherwise it is redone with [`Self::new`].
    ///
    /// # Errors
    /// [`LogError::Io`] if a thread cannot be started.
    pub(crate) fn headers_only(files: Arc<[PathBuf]>) -> Result<Self, LogError> {
        Self::start(files, true)
    }

    /// Whether every file's data section CRC (over its chunks as stored) was present and
    /// matched: then every chunk decompresses to what its writer compressed, and a
    /// headers-only pass read what a full one would have. Meaningful once the stream ended.
    pub(crate) fn data_verified(&self) -> bool {
        self.verified == self.files.len()
    }

    fn start(files: Arc<[PathBuf]>, headers_only: bool) -> Result<Self, LogError> {
        let mut s = Self {
            files,
            file: 0,
            current: None,
            jobs: Vec::new(),
            results: Vec::new(),
            workers: Vec::new(),
            sent: 0,
            taken: 0,
            units: VecDeque::new(),
            chunk: None,
            channels: ChannelAccumulator::default(),
            past_data_end: false,
            ordinal: 0,
            done: false,
            headers_only,
            verified: 0,
        };
        let pool = Arc::new(BufPool::new(POOL));
        for w in 0..WORKERS {
            let (job_tx, job_rx) = bounded::<Job>(AHEAD);
            let (res_tx, res_rx) = bounded::<Decoded>(AHEAD);
            let pool = Arc::clone(&pool);
            let handle = std::thread::Builder::new()
                .name(format!("mcap-chunk-{w}"))
                .spawn(move || {
                    for job in job_rx {
                        if res_tx.send(decode(job, &pool)).is_err() {
                            return;
                        }
                    }
                })
                .map_err(|e| LogError::io(&s.files[0], "start a decoding thread", e))?;
            s.jobs.push(job_tx);
            s.results.push(res_rx);
            s.workers.push(handle);
        }
        Ok(s)
    }

    /// Messages handed out so far (the ordinal of the next one).
    pub(super) fn ordinal(&self) -> u64 {
        self.ordinal
    }

    /// The next message in file order.
    pub(crate) fn next(&mut self) -> Option<Result<RawMsg, LogError>> {
        loop {
            if self.done {
                return None;
            }
            if let Some((buf, records, offset, valid)) = self.chunk.as_mut() {
                match records.next() {
                    Some((opcode, range)) => {
                        let (buf, offset, valid) = (Arc::clone(buf), *offset, *valid);
                        match self.record(opcode, &buf[range.clone()], offset, Some((&buf, range, valid))) {
                            Ok(Some(m)) => return Some(Ok(m)),
                            Ok(None) => continue,
                            Err(e) => return Some(Err(self.fail(e, offset))),
                        }
                    }
                    None => self.chunk = None,
                }
            }
            self.fill();
            let Some(unit) = self.units.pop_front() else {
                self.done = true;
                return None;
            };
            match unit {
                Unit::Chunk { offset } => {
                    let w = self.taken % WORKERS;
                    self.taken += 1;
                    match self.results[w].recv() {
                        Ok(Ok(c)) => self.chunk = Some((c.buf, c.records.into_iter(), offset, c.valid)),
                        Ok(Err(e)) => return Some(Err(self.fail(e, offset))),
                        Err(_) => {
                            let e = McapError::DecompressionError("a chunk decoding thread died".into());
                            return Some(Err(self.fail(e, offset)));
                        }
                    }
                }
                Unit::Record { opcode, body, offset } => match self.record(opcode, &body, offset, None) {
                    Ok(Some(m)) => return Some(Ok(m)),
                    Ok(None) => {}
                    Err(e) => return Some(Err(self.fail(e, offset))),
                },
                Unit::Broken { error } => {
                    self.done = true;
                    return Some(Err(error));
                }
            }
        }
    }

    /// The error that ends the stream, named by file and offset.
    fn fail(&mut self, e: McapError, offset: u64) -> LogError {
        self.done = true;
        LogError::Corrupt {
            path: self.files[self.file.min(self.files.len() - 1)].clone(),
            offset,
            messages: self.ordinal,
            detail: e.to_string(),
        }
    }

    /// A record in file order: schemas and channels are kept, a message is returned (its data
    /// a view into `chunk` when it came from one).
    fn record(
        &mut self,
        opcode: u8,
        body: &[u8],
        offset: u64,
        chunk: Option<(&Arc<ChunkBuf>, Range<usize>, usize)>,
    ) -> Result<Option<RawMsg>, McapError> {
        if opcode == op::DATA_END {
            // One inside a chunk is a stray record; outside, the summary follows, which repeats
            // the schemas and channels and is not checked again.
            if chunk.is_none() {
                self.past_data_end = true;
                // The linear reader hands it out only if its CRC, when not 0, matched.
                let crc = body.get(..4).map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
                self.verified += usize::from(crc != 0);
            }
            return Ok(None);
        }
        let record = mcap::parse_record(opcode, body)?;
        if self.past_data_end {
            return Ok(None);
        }
        match record {
            Record::Schema { header, data } => {
                self.channels.add_schema(header, Cow::Owned(data.into_owned()))?
            }
            Record::Channel(channel) => self.channels.add_channel(channel)?,
            Record::Message { header, data } => {
                let channel = self
                    .channels
                    .get(header.channel_id)
                    .ok_or(McapError::UnknownChannel(header.sequence, header.channel_id))?;
                // The message's data is the tail of its record's body.
                let data = match chunk {
                    Some((buf, range, valid)) => {
                        MsgData::view(Arc::clone(buf), range.end - data.len()..range.end, valid)
                    }
                    None => MsgData::from(data.into_owned()),
                };
                let ordinal = self.ordinal;
                self.ordinal += 1;
                return Ok(Some(RawMsg {
                    ordinal,
                    file: self.file,
                    offset,
                    log_time: header.log_time,
                    channel,
                    data,
                }));
            }
            _ => {}
        }
        Ok(None)
    }

    /// Reads the file on until [`AHEAD`] chunks per worker are in flight, a record outside a
    /// chunk or a break is queued, or the file ends.
    fn fill(&mut self) {
        while self.sent - self.taken < WORKERS * AHEAD
            && !matches!(self.units.back(), Some(Unit::Record { .. } | Unit::Broken { .. }))
        {
            match self.read_unit() {
                Some(unit) => self.units.push_back(unit),
                None => return,
            }
        }
    }

    /// The next unit of the files: a chunk (sent to its worker), a record, or the break.
    fn read_unit(&mut self) -> Option<Unit> {
        loop {
            if self.current.as_ref().is_some_and(|c| c.done) {
                // Only move on once every unit of this file is out: a message names its file.
                if !self.units.is_empty() || self.chunk.is_some() || self.sent != self.taken {
                    return None;
                }
                self.current = None;
                self.file += 1;
            }
            if self.current.is_none() {
                let path = self.files.get(self.file)?;
                let file = match LogError::open_input(path, u64::MAX) {
                    Ok(f) => f,
                    Err(error) => return Some(Unit::Broken { error }),
                };
                let options = LinearReaderOptions::default()
                    .with_emit_chunks(true)
                    .with_validate_data_section_crc(true)
                    .with_validate_summary_section_crc(true)
                    .with_record_length_limit(RECORD_LIMIT);
                let reader = LinearReader::new_with_options(options);
                self.current = Some(Current { file, reader, fed: 0, done: false });
            }
            let path = &self.files[self.file];
            let current = self.current.as_mut()?;
            let broken = |offset, detail: String| LogError::Corrupt {
                path: path.clone(),
                offset,
                messages: self.ordinal,
                detail,
            };
            match current.reader.next_event() {
                None => current.done = true,
                Some(Ok(LinearReadEvent::ReadRequest(need))) => {
                    let buf = current.reader.insert(need.clamp(1, READ_LIMIT));
                    let n = loop {
                        match current.file.read(buf) {
                            Ok(n) => break n,
                            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                            Err(e) => return Some(Unit::Broken { error: LogError::io(path, "read", e) }),
                        }
                    };
                    current.reader.notify_read(n);
                    current.fed += n as u64;
                }
                Some(Ok(LinearReadEvent::Record { opcode: op::CHUNK, data })) => {
                    let offset = current.fed;
                    let job = match mcap::parse_record(op::CHUNK, data) {
                        Ok(Record::Chunk { header, data }) => Job {
                            compression: header.compression,
                            uncompressed_size: header.uncompressed_size,
                            crc: header.uncompressed_crc,
                            data: data.into_owned(),
                            headers_only: self.headers_only,
                        },
                        Ok(_) => return Some(Unit::Broken { error: broken(offset, "not a chunk".into()) }),
                        Err(e) => return Some(Unit::Broken { error: broken(offset, e.to_string()) }),
                    };
                    let w = self.sent % WORKERS;
                    self.sent += 1;
                    // A worker that is gone shows as a closed result channel, in order.
                    let _ = self.jobs[w].send(job);
                    return Some(Unit::Chunk { offset });
                }
                Some(Ok(LinearReadEvent::Record { opcode, data })) => {
                    return Some(Unit::Record { opcode, body: data.to_vec(), offset: current.fed })
                }
                Some(Err(e)) => return Some(Unit::Broken { error: broken(current.fed, e.to_string()) }),
            }
        }
    }
}

impl Drop for ChunkedStream {
    fn drop(&mut self) {
        // Closing both ends stops every worker at its next send or receive.
        self.jobs.clear();
        self.results.clear();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// A worker's part: decompress, check the CRC, split into records (in a headers-only pass,
/// an LZ4 chunk's last large message only in part, and no CRC).
fn decode(job: Job, pool: &Arc<BufPool>) -> Decoded {
    let size = usize::try_from(job.uncompressed_size)
        .ok()
        .filter(|&s| s <= RECORD_LIMIT)
        .ok_or(McapError::ChunkTooLarge(job.uncompressed_size))?;
    let mut chunk = match job.compression.as_str() {
        "" => Inflate {
            lz4: None,
            src: Vec::new(),
            read: 0,
            wrote: job.data.len(),
            len: job.data.len(),
            buf: job.data,
            crc: None,
        },
        "lz4" => {
            // A reused buffer's old bytes are all overwritten (but, in a headers-only pass,
            // past the valid end, which nothing reads); it is only ever lengthened.
            let mut buf = pool.take();
            if buf.len() < size {
                buf.resize(size, 0);
            }
            let lz4 = Some((Some(super::lz4::Lz4Direct::default()), super::lz4::Lz4NoHash::new()));
            Inflate { lz4, src: job.data, read: 0, wrote: 0, len: size, buf, crc: None }
        }
        _ => return through_reader(&job),
    };
    let part = job.headers_only && chunk.lz4.is_some();
    if !part && job.crc != 0 {
        chunk.crc = Some((crc32fast::Hasher::new(), 0));
    }
    if !part {
        chunk.upto(size)?;
        if chunk.wrote != size {
            return Err(McapError::BadChunkLength {
                header: job.uncompressed_size,
                available: chunk.wrote as u64,
            });
        }
        if let Some(calculated) = chunk.crc() {
            if calculated != job.crc {
                return Err(McapError::BadChunkCrc { saved: job.crc, calculated });
            }
        }
    }
    let records = chunk.split(part)?;
    Ok(DecodedChunk {
        valid: chunk.wrote,
        buf: Arc::new(ChunkBuf::new(chunk.buf, chunk.len, Some(Arc::clone(pool)))),
        records,
    })
}

/// A chunk being decompressed into `buf[..len]`: `buf[..wrote]` holds its first bytes (all
/// of them for an uncompressed chunk).
struct Inflate {
    /// For an LZ4 chunk: the direct decoder while it copes, and the general one.
    lz4: Option<(Option<super::lz4::Lz4Direct>, super::lz4::Lz4NoHash)>,
    src: Vec<u8>,
    read: usize,
    buf: Vec<u8>,
    len: usize,
    wrote: usize,
    /// The CRC of `buf[..n]` so far and `n`, when the chunk's CRC is checked: folded in as
    /// the chunk decodes, a piece at a time, while the piece is still in the core's cache.
    crc: Option<(crc32fast::Hasher, usize)>,
}

/// Bytes the direct LZ4 decoder writes before their CRC is folded in: well inside L2.
const CRC_PIECE: usize = 256 << 10;

impl Inflate {
    /// Decodes on until `buf[..end]` (at most the whole chunk) holds the chunk's bytes.
    fn upto(&mut self, end: usize) -> Result<(), McapError> {
        let end = end.min(self.len);
        let Some((direct, d)) = self.lz4.as_mut() else { return Ok(()) };
        while let Some(fast) = direct {
            if self.wrote >= end {
                return Ok(());
            }
            let piece = if self.crc.is_some() { end.min(self.wrote + CRC_PIECE) } else { end };
            match fast.upto(&self.src, &mut self.buf[..self.len], piece) {
                Some(wrote) => {
                    self.wrote = wrote;
                    fold(&mut self.crc, &self.buf[..wrote]);
                }
                // The general decoder starts the chunk again (see `Lz4Direct`).
                None => {
                    (*direct, self.wrote) = (None, 0);
                    if let Some(crc) = &mut self.crc {
                        *crc = (crc32fast::Hasher::new(), 0);
                    }
                }
            }
        }
        while self.wrote < end {
            let r = d.decompress(&self.src[self.read..], &mut self.buf[self.wrote..end])?;
            if r.consumed == 0 && r.wrote == 0 {
                return Err(McapError::DecompressionError("decompressor made no progress".into()));
            }
            (self.read, self.wrote) = (self.read + r.consumed, self.wrote + r.wrote);
        }
        fold(&mut self.crc, &self.buf[..self.wrote]);
        Ok(())
    }

    /// The CRC of the bytes decoded, if it is checked.
    fn crc(&mut self) -> Option<u32> {
        fold(&mut self.crc, &self.buf[..self.wrote]);
        self.crc.take().map(|(h, _)| h.finalize())
    }

    /// The chunk's records, in order; with `part`, the last one, if a message larger than
    /// [`HEADERS_PREFIX`], is decoded only that far.
    fn split(&mut self, part: bool) -> Result<Vec<(u8, Range<usize>)>, McapError> {
        let size = self.len;
        let mut records = Vec::new();
        let mut at = 0;
        while at < size {
            self.upto(at + FRAMING)?;
            let Some(head) = self.buf[..size].get(at..at + FRAMING) else {
                return Err(McapError::UnexpectedEoc);
            };
            let opcode = head[0];
            let mut len = [0u8; 8];
            len.copy_from_slice(&head[1..]);
            let len = usize::try_from(u64::from_le_bytes(len)).unwrap_or(usize::MAX);
            let start = at + FRAMING;
            if len > size - start {
                return Err(McapError::UnexpectedEoc);
            }
            let end = start + len;
            let last_large = end == size && opcode == op::MESSAGE && len > HEADERS_PREFIX;
            self.upto(if part && last_large { start + HEADERS_PREFIX } else { end })?;
            records.push((opcode, start..end));
            at = end;
        }
        Ok(records)
    }
}

/// Folds the bytes of `decoded` past those already in `crc` into it.
fn fold(crc: &mut Option<(crc32fast::Hasher, usize)>, decoded: &[u8]) {
    if let Some((h, at)) = crc {
        h.update(&decoded[*at..]);
        *at = decoded.len();
    }
}

/// Another compression (zstd): the chunk alone through `mcap`'s own reader, its records
/// copied out (bags this crate writes are LZ4).
fn through_reader(job: &Job) -> Decoded {
    // The chunk record as it was in the file: its header's fields, then the compressed bytes.
    let mut body = Vec::with_capacity(job.data.len() + 48);
    body.extend_from_slice(&[0u8; 16]); // message start and end times (not read)
    body.extend_from_slice(&job.uncompressed_size.to_le_bytes());
    body.extend_from_slice(&job.crc.to_le_bytes());
    body.extend_from_slice(&(job.compression.len() as u32).to_le_bytes());
    body.extend_from_slice(job.compression.as_bytes());
    body.extend_from_slice(&(job.data.len() as u64).to_le_bytes());
    body.extend_from_slice(&job.data);
    let mut chunk = Vec::with_capacity(body.len() + FRAMING);
    chunk.push(op::CHUNK);
    chunk.extend_from_slice(&(body.len() as u64).to_le_bytes());
    chunk.extend_from_slice(&body);
    let options = LinearReaderOptions::default()
        .with_skip_start_magic(true)
        .with_skip_end_magic(true)
        .with_validate_chunk_crcs(true)
        .with_prevalidate_chunk_crcs(true)
        .with_record_length_limit(RECORD_LIMIT);
    let mut reader = LinearReader::new_with_options(options);
    reader.insert(chunk.len()).copy_from_slice(&chunk);
    reader.notify_read(chunk.len());
    let (mut out, mut records) = (Vec::new(), Vec::new());
    while let Some(event) = reader.next_event() {
        match event? {
            LinearReadEvent::ReadRequest(_) => {
                reader.notify_read(0);
            }
            LinearReadEvent::Record { opcode, data } => {
                let start = out.len();
                out.extend_from_slice(data);
                records.push((opcode, start..out.len()));
            }
        }
    }
    Ok(DecodedChunk { valid: out.len(), buf: Arc::new(ChunkBuf::new(out, usize::MAX, None)), records })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use mcap::records::MessageHeader;
    use mcap::{Compression, WriteOptions};

    use super::super::linear::MsgStream;
    use super::*;

    /// A bag of `n` messages on two channels, in small chunks of `compression`.
    fn bag(dir: &std::path::Path, compression: Option<Compression>, n: u32) -> PathBuf {
        let path = dir.join(format!("{compression:?}.mcap"));
        let file = std::io::BufWriter::new(File::create(&path).unwrap());
        let mut w = WriteOptions::new().compression(compression).chunk_size(Some(4096)).create(file).unwrap();
        let schema = w.add_schema("s", "ros2msg", b"uint8[] data").unwrap();
        let a = w.add_channel(schema, "/a", "cdr", &BTreeMap::new()).unwrap();
        let b = w.add_channel(schema, "/b", "cdr", &BTreeMap::new()).unwrap();
        for i in 0..n {
            let data: Vec<u8> = (0..(i as usize * 97) % 3000).map(|k| (k as u32 * 7 + i) as u8).collect();
            let header = MessageHeader {
                channel_id: if i % 3 == 0 { a } else { b },
                sequence: i,
                log_time: u64::from(i) * 10,
                publish_time: 0,
            };
            w.write_to_known_channel(&header, &data).unwrap();
        }
        w.finish().unwrap();
        path
    }

    /// The chunked stream hands out exactly the messages of the linear reader, in its order,
    /// whatever the chunks' compression.
    #[test]
    fn same_messages_as_the_linear_reader() {
        let dir = tempfile::tempdir().unwrap();
        for compression in [None, Some(Compression::Lz4), Some(Compression::Zstd)] {
            let files: Arc<[PathBuf]> = vec![bag(dir.path(), compression, 300)].into();
            let (mut linear, mut chunked) =
                (MsgStream::new(Arc::clone(&files)), ChunkedStream::new(files).unwrap());
            let mut count = 0;
            while let Some(m) = linear.next() {
                let (m, c) = (m.unwrap(), chunked.next().unwrap().unwrap());
                assert_eq!(
                    (m.ordinal, m.log_time, &m.channel.topic),
                    (c.ordinal, c.log_time, &c.channel.topic)
                );
                assert_eq!(&m.data[..], &c.data[..], "{compression:?} #{}", m.ordinal);
                count += 1;
            }
            assert!(chunked.next().is_none(), "{compression:?}");
            assert_eq!(count, 300);
        }
    }

    /// A chunk whose bytes were changed fails its CRC, in order, after the messages before it.
    #[test]
    fn a_damaged_chunk_is_an_error_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = bag(dir.path(), None, 300);
        let mut bytes = std::fs::read(&path).unwrap();
        let at = bytes.len() / 2;
        bytes[at] ^= 0x55;
        std::fs::write(&path, &bytes).unwrap();
        let mut chunked = ChunkedStream::new(vec![path].into()).unwrap();
        let mut messages = 0;
        let error = loop {
            match chunked.next() {
                Some(Ok(_)) => messages += 1,
                Some(Err(e)) => break e,
                None => panic!("no error after {messages} messages"),
            }
        };
        assert!(messages > 0 && messages < 300, "{messages}");
        assert!(error.to_string().contains("broken at or before byte"), "{error}");
        assert!(chunked.next().is_none());
    }

    /// The CRC folded in piece by piece is the whole chunk's: a chunk in one LZ4 frame (the
    /// direct decoder) and in two (the general one, after the direct one declined at the
    /// first frame's end) decodes with the right CRC and is refused with a wrong one.
    #[test]
    fn the_folded_crc_is_the_chunks() {
        use std::io::Write as _;
        let n = 3 * CRC_PIECE + 12_345;
        let mut content = vec![0x80u8];
        content.extend_from_slice(&((n - FRAMING) as u64).to_le_bytes());
        content.extend((FRAMING..n).map(|i| ((i / 5) ^ (i % 253)) as u8));
        let frame = |bytes: &[u8]| {
            let mut enc = lz4::EncoderBuilder::new().build(Vec::new()).unwrap();
            enc.write_all(bytes).unwrap();
            let (f, r) = enc.finish();
            r.unwrap();
            f
        };
        let one = frame(&content);
        let two = [frame(&content[..n / 2]), frame(&content[n / 2..])].concat();
        let pool = Arc::new(BufPool::new(1));
        for data in [one, two] {
            for (crc, ok) in [(crc32fast::hash(&content), true), (crc32fast::hash(&content) ^ 1, false)] {
                let job = Job {
                    compression: "lz4".into(),
                    uncompressed_size: n as u64,
                    crc,
                    data: data.clone(),
                    headers_only: false,
                };
                match decode(job, &pool) {
                    Ok(c) => assert!(ok && c.valid == n && c.records == [(0x80, FRAMING..n)]),
                    Err(e) => assert!(!ok && matches!(e, McapError::BadChunkCrc { .. }), "{e}"),
                }
            }
        }
    }
}
