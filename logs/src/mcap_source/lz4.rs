//! The `"lz4"` chunk decompressor the bag readers register in place of `mcap`'s built-in one.
//!
//! `mcap`'s built-in decoder runs liblz4's frame decoder, which hashes every decoded byte
//! with XXH32 for the frame's content checksum: measured, that hash took four times as long as
//! the decompression itself (half the replayer's CPU). It is also checked by nobody: the reader
//! stops at the chunk's declared size, before the checksum at the frame's end, and what
//! protects the data is the chunk's CRC-32 of the uncompressed bytes, which this crate always
//! validates (`with_validate_chunk_crcs`). So this decoder parses the LZ4 frame format itself,
//! decodes each block with [`super::lz4_block`] (safe Rust) and skips the checksums: any
//! corruption still fails the block decode or the chunk CRC.
//!
//! Every length read from the frame is checked before it is used: a block larger than the
//! frame's declared maximum is an error, never an allocation.

use mcap::sans_io::decompressor::{DecompressResult, Decompressor};
use mcap::{McapError, McapResult};

/// LZ4 frame magic.
const MAGIC: u32 = 0x184D_2204;
/// Skippable frames have magic `0x184D2A50..=0x184D2A5F`.
const SKIPPABLE_MASK: u32 = 0xFFFF_FFF0;
const SKIPPABLE: u32 = 0x184D_2A50;
/// A linked block may refer back this far into the output before it.
const WINDOW: usize = 64 << 10;
/// Magic, FLG, BD, header checksum: the smallest frame header.
const MIN_HEADER: usize = 7;
/// Bytes a header is parsed from: a frame header and its end mark are at least this long, and
/// so is a skippable frame's magic and size.
const HEADER_READ: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Expecting a frame's magic and header.
    Header,
    /// Expecting a block size word (or the end mark).
    BlockSize,
    /// Expecting a block of this many bytes (stored uncompressed if the flag says so).
    Block { len: usize, stored: bool },
    /// Expecting the 4-byte content checksum after the end mark (skipped).
    ContentChecksum,
    /// Inside a skippable frame: this many bytes left.
    Skip(usize),
}

/// LZ4 frame decoding without the checksums (see the module documentation).
#[derive(Debug)]
pub(super) struct Lz4NoHash {
    phase: Phase,
    /// Block flags of the current frame.
    linked: bool,
    block_checksum: bool,
    content_checksum: bool,
    block_max: usize,
    /// Decoded output: the window the next linked block may refer to, then the decoded bytes
    /// not handed out yet (`buf[pending..len]`). Allocated once per block size.
    buf: Vec<u8>,
    len: usize,
    pending: usize,
    next_read: usize,
}

impl Lz4NoHash {
    pub(super) fn new() -> Self {
        Self {
            phase: Phase::Header,
            linked: false,
            block_checksum: false,
            content_checksum: false,
            block_max: 0,
            buf: Vec::new(),
            len: 0,
            pending: 0,
            next_read: HEADER_READ,
        }
    }

    /// Parses a frame header at the start of `src`; returns the bytes it took, or `None` if
    /// `src` is too short (then `next_read` says how much is needed).
    fn header(&mut self, src: &[u8]) -> McapResult<Option<usize>> {
        if src.len() < 8 {
            self.next_read = HEADER_READ;
            return Ok(None);
        }
        let magic = word(src);
        if magic & SKIPPABLE_MASK == SKIPPABLE {
            self.phase = Phase::Skip(word(&src[4..]) as usize);
            self.next_read = HEADER_READ;
            return Ok(Some(8));
        }
        if magic != MAGIC {
            return Err(bad(format!("not an LZ4 frame (magic {magic:#010x})")));
        }
        let (flg, bd) = (src[4], src[5]);
        if flg >> 6 != 1 {
            return Err(bad(format!("LZ4 frame version {} (expected 1)", flg >> 6)));
        }
        if flg & 1 != 0 {
            return Err(bad("LZ4 frame needs a dictionary"));
        }
        let size = header_len(flg);
        if src.len() < size {
            self.next_read = size;
            return Ok(None);
        }
        self.block_max =
            block_max(bd).ok_or_else(|| bad(format!("LZ4 block size code {}", (bd >> 4) & 7)))?;
        self.linked = flg & 0x20 == 0;
        self.block_checksum = flg & 0x10 != 0;
        self.content_checksum = flg & 0x04 != 0;
        let capacity = WINDOW + self.block_max;
        if self.buf.len() < capacity {
            self.buf.resize(capacity, 0);
        }
        (self.len, self.pending) = (0, 0);
        self.next_read = HEADER_READ;
        self.phase = Phase::BlockSize;
        Ok(Some(size))
    }

    /// Decodes one block into `buf` after the window the frame's mode keeps.
    fn block(&mut self, data: &[u8], stored: bool) -> McapResult<()> {
        let keep = if self.linked { self.len.min(WINDOW) } else { 0 };
        self.buf.copy_within(self.len - keep..self.len, 0);
        let out = &mut self.buf[..keep + self.block_max];
        let n = if stored {
            out[keep..keep + data.len()].copy_from_slice(data);
            data.len()
        } else {
            super::lz4_block::decode(data, out, keep, 0).map_err(|e| bad(format!("LZ4 block: {e}")))?
        };
        (self.pending, self.len) = (keep, keep + n);
        Ok(())
    }

    /// Takes the next unit (header, size word, block, checksum) from `src`; `None` if `src`
    /// does not hold all of it yet.
    fn step(&mut self, src: &[u8]) -> McapResult<Option<usize>> {
        let short = |n: usize| src.len() < n;
        match self.phase {
            Phase::Header => self.header(src),
            Phase::BlockSize => {
                if short(4) {
                    return Ok(None);
                }
                let v = word(src);
                self.phase = if v == 0 {
                    if self.content_checksum {
                        Phase::ContentChecksum
                    } else {
                        Phase::Header
                    }
                } else {
                    let len = (v & 0x7FFF_FFFF) as usize;
                    if len > self.block_max {
                        return Err(bad(format!(
                            "LZ4 block of {len} bytes in a frame of {}-byte blocks",
                            self.block_max
                        )));
                    }
                    Phase::Block { len, stored: v & 0x8000_0000 != 0 }
                };
                Ok(Some(4))
            }
            Phase::Block { len, stored } => {
                let total = len + if self.block_checksum { 4 } else { 0 };
                if short(total) {
                    return Ok(None);
                }
                self.block(&src[..len], stored)?;
                self.phase = Phase::BlockSize;
                Ok(Some(total))
            }
            Phase::ContentChecksum => {
                if short(4) {
                    return Ok(None);
                }
                self.phase = Phase::Header;
                Ok(Some(4))
            }
            Phase::Skip(left) => {
                let n = left.min(src.len());
                self.phase = if n == left { Phase::Header } else { Phase::Skip(left - n) };
                if n == 0 && left > 0 {
                    return Ok(None);
                }
                Ok(Some(n))
            }
        }
    }
}

/// The common case decoded straight into the chunk's buffer, with no copy through a block
/// buffer: one LZ4 frame whose blocks fill the chunk. Anything else (a skippable frame, more
/// than one frame, a dictionary, a block that would overrun the chunk, input that ends early)
/// gives `None`, and the caller decodes the chunk again with [`Lz4NoHash`], which handles it
/// or names what is wrong: so results and errors are [`Lz4NoHash`]'s.
#[derive(Debug, Default)]
pub(super) struct Lz4Direct {
    started: bool,
    read: usize,
    wrote: usize,
    linked: bool,
    block_checksum: bool,
    block_max: usize,
}

impl Lz4Direct {
    /// Decodes whole blocks of the frame `src` into `dst` until at least `end` bytes (at most
    /// `dst.len()`) are there; returns how many are.
    pub(super) fn upto(&mut self, src: &[u8], dst: &mut [u8], end: usize) -> Option<usize> {
        if !self.started {
            self.header(src)?;
        }
        let end = end.min(dst.len());
        while self.wrote < end {
            let v = word(src.get(self.read..self.read + 4)?);
            let len = (v & 0x7FFF_FFFF) as usize;
            if v == 0 || len > self.block_max {
                return None;
            }
            let checksum = if self.block_checksum { 4 } else { 0 };
            let data = src.get(self.read + 4..self.read + 4 + len + checksum)?;
            let data = &data[..len];
            let room = (dst.len() - self.wrote).min(self.block_max);
            let out = &mut dst[..self.wrote + room];
            let n = if v & 0x8000_0000 != 0 {
                out.get_mut(self.wrote..self.wrote + len)?.copy_from_slice(data);
                len
            } else {
                let floor = if self.linked { self.wrote.saturating_sub(WINDOW) } else { self.wrote };
                super::lz4_block::decode(data, out, self.wrote, floor).ok()?
            };
            self.read += 4 + len + checksum;
            self.wrote += n;
        }
        Some(self.wrote)
    }

    /// The frame header (what [`Lz4NoHash::header`] accepts; anything else declines).
    fn header(&mut self, src: &[u8]) -> Option<()> {
        let head = src.get(..HEADER_READ)?;
        let (flg, bd) = (head[4], head[5]);
        if word(head) != MAGIC || flg >> 6 != 1 || flg & 1 != 0 {
            return None;
        }
        self.block_max = block_max(bd)?;
        self.read = header_len(flg);
        self.linked = flg & 0x20 == 0;
        self.block_checksum = flg & 0x10 != 0;
        self.started = true;
        Some(())
    }
}

/// A frame header's length by its FLG byte: the content size field is optional.
fn header_len(flg: u8) -> usize {
    MIN_HEADER + if flg & 0x08 != 0 { 8 } else { 0 }
}

/// The largest block of a frame by its BD byte; `None` for a reserved code.
fn block_max(bd: u8) -> Option<usize> {
    match (bd >> 4) & 7 {
        4 => Some(64 << 10),
        5 => Some(256 << 10),
        6 => Some(1 << 20),
        7 => Some(4 << 20),
        _ => None,
    }
}

fn word(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

fn bad(detail: impl Into<String>) -> McapError {
    McapError::DecompressionError(detail.into())
}

impl Decompressor for Lz4NoHash {
    /// The whole next unit: the reader then calls with a complete header, size word or block.
    fn next_read_size(&self) -> usize {
        match self.phase {
            Phase::Header => self.next_read,
            Phase::BlockSize | Phase::ContentChecksum => 4,
            Phase::Block { len, .. } => len + if self.block_checksum { 4 } else { 0 },
            Phase::Skip(left) => left.clamp(1, WINDOW),
        }
    }

    fn decompress(&mut self, src: &[u8], dst: &mut [u8]) -> McapResult<DecompressResult> {
        let (mut consumed, mut wrote) = (0, 0);
        loop {
            let n = (self.len - self.pending).min(dst.len() - wrote);
            dst[wrote..wrote + n].copy_from_slice(&self.buf[self.pending..self.pending + n]);
            (self.pending, wrote) = (self.pending + n, wrote + n);
            if wrote == dst.len() {
                break;
            }
            match self.step(&src[consumed..])? {
                Some(took) => consumed += took,
                None => break,
            }
        }
        Ok(DecompressResult { consumed, wrote })
    }

    fn reset(&mut self) -> McapResult<()> {
        let buf = std::mem::take(&mut self.buf);
        *self = Self { buf, ..Self::new() };
        Ok(())
    }

    fn name(&self) -> &'static str {
        "lz4"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `frame` feeding at most `feed` input bytes and `out` output bytes per call.
    fn decode(frame: &[u8], total: usize, feed: usize, out: usize) -> McapResult<Vec<u8>> {
        let mut d = Lz4NoHash::new();
        let (mut src, mut dst) = (0, vec![0u8; total]);
        let mut wrote = 0;
        while wrote < total {
            let want = d.next_read_size().max(feed);
            let end = (src + want).min(frame.len());
            let o = (wrote + out).min(total);
            let r = d.decompress(&frame[src..end], &mut dst[wrote..o])?;
            if r.consumed == 0 && r.wrote == 0 && end == frame.len() {
                return Err(bad("stalled"));
            }
            (src, wrote) = (src + r.consumed, wrote + r.wrote);
        }
        Ok(dst)
    }

    fn sample(n: usize) -> Vec<u8> {
        (0..n).map(|i| ((i / 7) ^ (i % 251)) as u8).collect()
    }

    #[test]
    fn decodes_what_liblz4_encodes_in_every_mode_and_feed() {
        use std::io::Write as _;
        let data = sample(700_000);
        for (mode, checksum, size) in [
            (lz4::BlockMode::Linked, lz4::ContentChecksum::ChecksumEnabled, lz4::BlockSize::Max64KB),
            (lz4::BlockMode::Independent, lz4::ContentChecksum::NoChecksum, lz4::BlockSize::Max256KB),
            (lz4::BlockMode::Linked, lz4::ContentChecksum::NoChecksum, lz4::BlockSize::Max4MB),
        ] {
            let mut enc = lz4::EncoderBuilder::new()
                .block_mode(mode)
                .checksum(checksum)
                .block_size(size)
                .build(Vec::new())
                .unwrap();
            enc.write_all(&data).unwrap();
            let (frame, r) = enc.finish();
            r.unwrap();
            for (feed, out) in [(1, 1), (3, 1000), (1 << 20, 1 << 20), (5000, 17)] {
                assert_eq!(decode(&frame, data.len(), feed, out).unwrap(), data, "{feed} {out}");
            }
        }
    }

    /// The direct decoder gives the bytes of the block-buffer one, or declines.
    #[test]
    fn the_direct_decoder_agrees_or_declines() {
        use std::io::Write as _;
        let data = sample(700_000);
        for (mode, size) in [
            (lz4::BlockMode::Linked, lz4::BlockSize::Max64KB),
            (lz4::BlockMode::Independent, lz4::BlockSize::Max256KB),
        ] {
            let mut enc =
                lz4::EncoderBuilder::new().block_mode(mode).block_size(size).build(Vec::new()).unwrap();
            enc.write_all(&data).unwrap();
            let (frame, r) = enc.finish();
            r.unwrap();
            let mut out = vec![0u8; data.len()];
            let mut d = Lz4Direct::default();
            assert!(d.upto(&frame, &mut out, 1000).is_some_and(|n| n >= 1000 && n < data.len()));
            assert_eq!(d.upto(&frame, &mut out, usize::MAX), Some(data.len()));
            assert_eq!(out, data);
            // A chunk declared shorter than the frame: the last block overruns it.
            let mut short = vec![0u8; data.len() - 10];
            assert_eq!(Lz4Direct::default().upto(&frame, &mut short, usize::MAX), None);
            // Input that ends early, a frame that ends before the chunk does.
            assert_eq!(Lz4Direct::default().upto(&frame[..frame.len() / 2], &mut out, usize::MAX), None);
            let mut long = vec![0u8; data.len() + 10];
            assert_eq!(Lz4Direct::default().upto(&frame, &mut long, usize::MAX), None);
        }
    }

    #[test]
    fn refuses_corrupt_frames() {
        use std::io::Write as _;
        let data = sample(200_000);
        let mut enc = lz4::EncoderBuilder::new().build(Vec::new()).unwrap();
        enc.write_all(&data).unwrap();
        let (frame, _) = enc.finish();
        let mut bad_magic = frame.clone();
        bad_magic[0] ^= 1;
        assert!(decode(&bad_magic, data.len(), 64, 64).is_err());
        // A block size word beyond the frame's block maximum.
        let mut big = frame.clone();
        big[7..11].copy_from_slice(&0x0100_0000u32.to_le_bytes());
        assert!(decode(&big, data.len(), 1 << 20, 1 << 20).is_err());
        // Garbage in a block fails the decode or yields other bytes (the chunk CRC's job).
        let mut flipped = frame;
        for b in &mut flipped[20..60] {
            *b = 0xFF;
        }
        assert_ne!(decode(&flipped, data.len(), 1 << 20, 1 << 20).ok(), Some(data));
    }
}
