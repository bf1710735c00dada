//! A delivered frame as it crosses processes (one ring slot each) and goes into recordings.
//!
//! # Layout (little-endian, [`RECORD_SIZE`] bytes)
//! ```text
//! 0   u32  identifier (11 or 29 bits)
//! 4   u8   flags: bit 0 extended
//! 5   u8   DLC (0..=8)
//! 6   u16  reserved, 0
//! 8   [u8; 8] data (bytes past the DLC are 0)
//! 16  u64  nominal release, ns on the pipeline clock
//! 24  u64  queued at the sender (release + jitter), ns
//! 32  u64  end of the frame on the bus (delivery), ns
//! ```

use crate::frame::CanId;

/// Bytes of one record.
pub const RECORD_SIZE: usize = 40;

/// One frame delivered by the bus.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CanRecord {
    /// Identifier.
    pub id: CanId,
    /// Data bytes used.
    pub dlc: u8,
    /// Data (bytes past the DLC are 0).
    pub data: [u8; 8],
    /// Nominal release, ns.
    pub nominal_ns: u64,
    /// Queued at the sender, ns: when its signals were sampled.
    pub queued_ns: u64,
    /// Delivered (end of the frame), ns.
    pub done_ns: u64,
}

impl CanRecord {
    /// Response time: delivery − nominal release, ns.
    #[must_use]
    pub fn response_ns(&self) -> u64 {
        self.done_ns.saturating_sub(self.nominal_ns)
    }

    /// The record's bytes.
    #[must_use]
    pub fn to_bytes(&self) -> [u8; RECORD_SIZE] {
        let mut b = [0u8; RECORD_SIZE];
        b[0..4].copy_from_slice(&self.id.id.to_le_bytes());
        b[4] = u8::from(self.id.extended);
        b[5] = self.dlc;
        b[8..16].copy_from_slice(&self.data);
        b[16..24].copy_from_slice(&self.nominal_ns.to_le_bytes());
        b[24..32].copy_from_slice(&self.queued_ns.to_le_bytes());
        b[32..40].copy_from_slice(&self.done_ns.to_le_bytes());
        b
    }

    /// Parses a record; `None` unless it is exactly [`RECORD_SIZE`] bytes with a valid
    /// identifier, flags and DLC (bytes from another process are checked, not trusted).
    #[must_use]
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        let b: &[u8; RECORD_SIZE] = b.try_into().ok()?;
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or([0; 8]));
        let raw = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let id = match b[4] {
            0 => CanId::standard(raw)?,
            1 => CanId::extended(raw)?,
            _ => return None,
        };
        if b[5] > 8 {
            return None;
        }
        let mut data = [0u8; 8];
        data.copy_from_slice(&b[8..16]);
        Some(Self { id, dlc: b[5], data, nominal_ns: u64_at(16), queued_ns: u64_at(24), done_ns: u64_at(32) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_bad_bytes_are_refused() {
        let r = CanRecord {
            id: CanId::extended(0x18fe_f100).unwrap(),
            dlc: 8,
            data: [1, 2, 3, 4, 5, 6, 7, 8],
            nominal_ns: 10,
            queued_ns: 20,
            done_ns: 300,
        };
        assert_eq!(CanRecord::from_bytes(&r.to_bytes()), Some(r));
        assert_eq!(r.response_ns(), 290);
        let mut bad = r.to_bytes();
        bad[4] = 0; // a 29-bit id flagged standard
        assert_eq!(CanRecord::from_bytes(&bad), None);
        assert_eq!(CanRecord::from_bytes(&r.to_bytes()[..39]), None);
    }
}
