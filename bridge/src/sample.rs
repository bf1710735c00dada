//! The header in front of every frame sample, and its check at the door.
//!
//! ```text
//!  0      4        6      8        16            24        32       40        48
//!  +------+--------+------+--------+-------------+---------+--------+---------+--------
//!  | EFZ1 | ver u16| kind | seq u64| capture u64 |epoch u64|size u64| sent u64| payload
//!  +------+--------+------+--------+-------------+---------+--------+---------+--------
//! ```
//! Little endian. `sent` is the publisher's CLOCK_MONOTONIC when it sent the sample: on one
//! host (loopback) the receiver measures the transport's latency with it; across hosts it
//! means nothing and nothing depends on it. `size` is the payload's exact length; a receiver accepts a sample only if
//! the magic, version and kind are ours, the kind is the one its key names, and `size` equals
//! what follows and fits the receiver's ring slot.

use std::fmt;

use shared::{CalibEpoch, StreamKind, TimestampNs};

/// The magic of a frame sample.
pub const MAGIC: [u8; 4] = *b"EFZ1";
/// The header version this build writes and accepts.
pub const VERSION: u16 = 1;
/// Bytes of the header.
pub const HEADER_LEN: usize = 48;

/// What a frame sample says about its frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SampleHeader {
    /// Camera or lidar.
    pub kind: StreamKind,
    /// The frame's sequence number in the source's ring.
    pub seq: u64,
    /// Capture time on the source run's pipeline clock.
    pub capture: TimestampNs,
    /// The calibration epoch the frame was captured under.
    pub epoch: CalibEpoch,
    /// Payload bytes.
    pub size: u64,
    /// The publisher's monotonic clock at sending (ns).
    pub sent_ns: u64,
}

/// Why a sample was refused at the door.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SampleError {
    /// Shorter than a header.
    TooShort(usize),
    /// Not our magic.
    BadMagic([u8; 4]),
    /// A header version this build does not know.
    Version(u16),
    /// A kind that is not a sensor stream, or not the one the key names.
    Kind {
        /// The kind the key names.
        expected: StreamKind,
        /// The header's kind word.
        got: u16,
    },
    /// `size` disagrees with the bytes that follow.
    Length {
        /// The header's size.
        declared: u64,
        /// Bytes after the header.
        actual: usize,
    },
    /// Larger than a slot of the receiver's ring.
    TooLarge {
        /// The header's size.
        size: u64,
        /// The receiver's limit.
        max: u64,
    },
}

impl fmt::Display for SampleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooShort(n) => {
                write!(f, "sample of {n} bytes is shorter than its {HEADER_LEN}-byte header")
            }
            Self::BadMagic(m) => write!(f, "sample magic {m:02x?} is not {MAGIC:02x?}"),
            Self::Version(v) => write!(f, "sample header version {v} (this build reads {VERSION})"),
            Self::Kind { expected, got } => write!(f, "sample kind {got} on the {expected} key"),
            Self::Length { declared, actual } => {
                write!(f, "sample size {declared} but {actual} payload bytes follow")
            }
            Self::TooLarge { size, max } => {
                write!(f, "sample payload of {size} bytes exceeds the slot's {max}")
            }
        }
    }
}

impl std::error::Error for SampleError {}

impl SampleHeader {
    /// The header's bytes.
    #[must_use]
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..4].copy_from_slice(&MAGIC);
        b[4..6].copy_from_slice(&VERSION.to_le_bytes());
        b[6..8].copy_from_slice(&(self.kind as u16).to_le_bytes());
        b[8..16].copy_from_slice(&self.seq.to_le_bytes());
        b[16..24].copy_from_slice(&self.capture.0.to_le_bytes());
        b[24..32].copy_from_slice(&self.epoch.0.to_le_bytes());
        b[32..40].copy_from_slice(&self.size.to_le_bytes());
        b[40..48].copy_from_slice(&self.sent_ns.to_le_bytes());
        b
    }

    /// A whole sample: header then payload (the publisher's one copy).
    #[must_use]
    pub fn sample(&self, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::with_capacity(HEADER_LEN + payload.len());
        v.extend_from_slice(&self.encode());
        v.extend_from_slice(payload);
        v
    }

    /// Checks a received sample on the key of stream `expected` whose receiver holds at most
    /// `max_payload` bytes per frame; returns its header and payload.
    ///
    /// # Errors
    /// [`SampleError`]; never panics, whatever the bytes.
    pub fn decode(
        bytes: &[u8],
        expected: StreamKind,
        max_payload: u64,
    ) -> Result<(Self, &[u8]), SampleError> {
        let (head, payload) =
            bytes.split_first_chunk::<HEADER_LEN>().ok_or(SampleError::TooShort(bytes.len()))?;
        let u16_at = |i: usize| u16::from_le_bytes([head[i], head[i + 1]]);
        let u64_at = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&head[i..i + 8]);
            u64::from_le_bytes(w)
        };
        let magic = [head[0], head[1], head[2], head[3]];
        if magic != MAGIC {
            return Err(SampleError::BadMagic(magic));
        }
        if u16_at(4) != VERSION {
            return Err(SampleError::Version(u16_at(4)));
        }
        let got = u16_at(6);
        if got != expected as u16 {
            return Err(SampleError::Kind { expected, got });
        }
        let size = u64_at(32);
        if size != payload.len() as u64 {
            return Err(SampleError::Length { declared: size, actual: payload.len() });
        }
        if size > max_payload {
            return Err(SampleError::TooLarge { size, max: max_payload });
        }
        let header = Self {
            kind: expected,
            seq: u64_at(8),
            capture: TimestampNs(u64_at(16)),
            epoch: CalibEpoch(u64_at(24)),
            size,
            sent_ns: u64_at(40),
        };
        Ok((header, payload))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(size: u64) -> SampleHeader {
        SampleHeader {
            kind: StreamKind::Lidar,
            seq: 9,
            capture: TimestampNs(123_456_789),
            epoch: CalibEpoch(3),
            size,
            sent_ns: 77,
        }
    }

    #[test]
    fn a_sample_comes_back_as_it_went() {
        let payload = [1u8, 2, 3, 4, 5];
        let bytes = header(5).sample(&payload);
        let (h, p) = SampleHeader::decode(&bytes, StreamKind::Lidar, 5).unwrap();
        assert_eq!(h, header(5));
        assert_eq!(p, payload);
    }

    #[test]
    fn bad_samples_are_refused_at_the_door() {
        let good = header(4).sample(&[0; 4]);
        let d = |b: &[u8]| SampleHeader::decode(b, StreamKind::Lidar, 1 << 20).map(|(h, _)| h);
        assert_eq!(d(&good[..10]), Err(SampleError::TooShort(10)));
        let mut b = good.clone();
        b[0] = b'X';
        assert!(matches!(d(&b), Err(SampleError::BadMagic(_))));
        let mut b = good.clone();
        b[4] = 2;
        assert_eq!(d(&b), Err(SampleError::Version(2)));
        assert!(matches!(
            SampleHeader::decode(&good, StreamKind::Camera, 1 << 20),
            Err(SampleError::Kind { got: 2, .. })
        ));
        assert_eq!(d(&good[..good.len() - 1]), Err(SampleError::Length { declared: 4, actual: 3 }));
        let mut b = good.clone();
        b.push(0);
        assert_eq!(d(&b), Err(SampleError::Length { declared: 4, actual: 5 }));
        assert_eq!(
            SampleHeader::decode(&good, StreamKind::Lidar, 3).map(|(h, _)| h),
            Err(SampleError::TooLarge { size: 4, max: 3 })
        );
        // A size word near u64::MAX never turns into an allocation or a panic.
        let mut b = good;
        b[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(d(&b), Err(SampleError::Length { .. })));
    }

    #[test]
    fn every_truncation_and_every_flipped_byte_is_handled() {
        let good = header(16).sample(&[7; 16]);
        for n in 0..good.len() {
            let _ = SampleHeader::decode(&good[..n], StreamKind::Lidar, 16);
        }
        for i in 0..HEADER_LEN {
            let mut b = good.clone();
            b[i] ^= 0xA5;
            let _ = SampleHeader::decode(&b, StreamKind::Lidar, 16);
        }
    }
}
