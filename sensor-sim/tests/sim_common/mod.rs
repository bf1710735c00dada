//! Test and bench helpers shared by `tests/sim_*.rs` and `benches/render.rs`.

use shared::frames::{PayloadSink, SinkFull};

/// A fixed-capacity sink, like a ring slot: writes beyond its buffer fail with nothing
/// written.
#[derive(Debug)]
pub struct Slot {
    /// The slot's bytes (its capacity is their length).
    pub buf: Vec<u8>,
    /// Bytes written so far.
    pub len: usize,
}

impl Slot {
    /// An empty slot over `buf`.
    pub fn new(buf: Vec<u8>) -> Self {
        Self { buf, len: 0 }
    }
}

impl PayloadSink for Slot {
    fn push(&mut self, bytes: &[u8]) -> Result<(), SinkFull> {
        self.write_at(self.len, bytes)
    }

    fn write_at(&mut self, offset: usize, bytes: &[u8]) -> Result<(), SinkFull> {
        let end = offset + bytes.len();
        if end > self.buf.len() {
            return Err(SinkFull { needed: end, capacity: self.buf.len() });
        }
        self.buf[offset..end].copy_from_slice(bytes);
        self.len = self.len.max(end);
        Ok(())
    }

    fn len(&self) -> usize {
        self.len
    }
}
