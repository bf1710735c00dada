//! What the wire does: bit time, frame length with worst-case stuffing, arbitration order.

use std::fmt;

/// Lowest bit rate accepted: below it a frame takes over 10 ms and no vehicle bus runs that slow.
pub const MIN_BITRATE_BPS: u32 = 10_000;
/// Highest bit rate of classic CAN (ISO 11898-1); CAN FD's data phase is not modelled.
pub const MAX_BITRATE_BPS: u32 = 1_000_000;

/// A CAN identifier: 11-bit standard or 29-bit extended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CanId {
    /// The 11- or 29-bit identifier.
    pub id: u32,
    /// 29-bit (IDE set) when true.
    pub extended: bool,
}

impl CanId {
    /// A standard (11-bit) identifier, or `None` if it does not fit.
    #[must_use]
    pub fn standard(id: u32) -> Option<Self> {
        (id <= 0x7ff).then_some(Self { id, extended: false })
    }

    /// An extended (29-bit) identifier, or `None` if it does not fit.
    #[must_use]
    pub fn extended(id: u32) -> Option<Self> {
        (id <= 0x1fff_ffff).then_some(Self { id, extended: true })
    }

    /// The arbitration key: the bits the bus compares, in wire order; lower wins.
    ///
    /// Wire order of a data frame's arbitration field: base identifier (11 bits), then RTR
    /// (standard, dominant 0) or SRR (extended, recessive 1), then IDE (0 standard, 1
    /// extended), then for extended frames the 18-bit identifier extension. So the 11-bit base
    /// decides first, and on a tie the standard frame wins at the RTR/SRR bit.
    #[must_use]
    pub fn priority_key(self) -> u32 {
        if self.extended {
            let base = self.id >> 18;
            (base << 20) | (1 << 19) | (1 << 18) | (self.id & 0x3_ffff)
        } else {
            self.id << 20
        }
    }
}

impl fmt::Display for CanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.id)
    }
}

/// Bits on the wire of a data frame with `dlc` data bytes under worst-case bit stuffing,
/// including the 3-bit inter-frame space (Davis et al. 2007, eq. 1):
/// `g + 8s + 13 + floor((g + 8s - 1) / 4)` with `g` = 34 (11-bit) or 54 (29-bit) bits
/// subject to stuffing, and 13 bits (CRC delimiter, ACK, EOF, IFS) that are not.
#[must_use]
pub fn frame_bits(dlc: u8, extended: bool) -> u64 {
    let g: u64 = if extended { 54 } else { 34 };
    let payload = g + 8 * u64::from(dlc.min(8));
    payload + 13 + (payload - 1) / 4
}

/// A bus speed, with its bit time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bitrate {
    bps: u32,
    tau_ns: u64,
}

impl Bitrate {
    /// A bit rate in bit/s. The bit time is rounded up to whole nanoseconds (exact for 1 M,
    /// 500 k, 250 k, 125 k, 100 k...): rounding up only lengthens frames, so every bound
    /// stays safe.
    ///
    /// # Errors
    /// A sentence when `bps` lies outside [`MIN_BITRATE_BPS`]..=[`MAX_BITRATE_BPS`].
    pub fn new(bps: u32) -> Result<Self, String> {
        if !(MIN_BITRATE_BPS..=MAX_BITRATE_BPS).contains(&bps) {
            return Err(format!(
                "bit rate {bps} bit/s outside {MIN_BITRATE_BPS}..={MAX_BITRATE_BPS} (classic CAN)"
            ));
        }
        Ok(Self { bps, tau_ns: 1_000_000_000u64.div_ceil(u64::from(bps)) })
    }

    /// Bits per second.
    #[must_use]
    pub fn bps(self) -> u32 {
        self.bps
    }

    /// One bit time, ns (τ_bit).
    #[must_use]
    pub fn tau_ns(self) -> u64 {
        self.tau_ns
    }

    /// Worst-case transmission time of a frame, ns (C_m).
    #[must_use]
    pub fn frame_ns(self, dlc: u8, extended: bool) -> u64 {
        frame_bits(dlc, extended) * self.tau_ns
    }
}

/// Bits on the wire of this data frame with the stuff bits it really gets, inter-frame space
/// included. ISO 11898-1: from SOF to the end of the CRC, after five equal bits the
/// transmitter inserts one of the other value (which counts towards the next run). At most
/// [`frame_bits`] for the same length; at least `g + 8s + 13`.
#[must_use]
pub fn exact_frame_bits(id: CanId, data: &[u8]) -> u64 {
    let data = &data[..data.len().min(8)];
    let mut bits: Vec<bool> = Vec::with_capacity(64 + 8 * data.len() + 15);
    push(&mut bits, 0, 1); // SOF
    if id.extended {
        push(&mut bits, id.id >> 18, 11);
        push(&mut bits, 0b11, 2); // SRR, IDE
        push(&mut bits, id.id & 0x3_ffff, 18);
        push(&mut bits, 0, 3); // RTR, r1, r0
    } else {
        push(&mut bits, id.id, 11);
        push(&mut bits, 0, 3); // RTR, IDE, r0
    }
    push(&mut bits, data.len() as u32, 4);
    for &b in data {
        push(&mut bits, u32::from(b), 8);
    }
    let crc = crc15(&bits);
    push(&mut bits, u32::from(crc), 15);
    let (mut stuffed, mut run, mut last) = (0u64, 0u32, None);
    for &b in &bits {
        if last == Some(b) {
            run += 1;
        } else {
            (last, run) = (Some(b), 1);
        }
        if run == 5 {
            stuffed += 1;
            (last, run) = (Some(!b), 1);
        }
    }
    bits.len() as u64 + stuffed + 13
}

fn push(bits: &mut Vec<bool>, value: u32, width: u32) {
    bits.extend((0..width).rev().map(|i| (value >> i) & 1 == 1));
}

/// CAN's CRC-15 (polynomial 0x4599) over the unstuffed bits from SOF to the data's end.
fn crc15(bits: &[bool]) -> u16 {
    bits.iter().fold(0u16, |crc, &b| {
        let next = b ^ (crc >> 14 & 1 == 1);
        let shifted = (crc << 1) & 0x7fff;
        if next {
            shifted ^ 0x4599
        } else {
            shifted
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc15_matches_the_catalogue_check_value() {
        // CRC-15/CAN of ASCII "123456789" (bits MSB first) is 0x059e.
        let mut bits = Vec::new();
        for &b in b"123456789" {
            push(&mut bits, u32::from(b), 8);
        }
        assert_eq!(crc15(&bits), 0x059e);
    }
}
