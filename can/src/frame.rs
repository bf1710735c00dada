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
