//! Signals inside a frame's data: where their bits are and how raw values scale.
//!
//! DBC conventions: `@1` little-endian (Intel): the raw value's least significant bit is
//! `start_bit` and the rest follow upwards in the 64-bit little-endian word of the data.
//! `@0` big-endian (Motorola): `start_bit` is the most significant bit, and bits follow in
//! the "sawtooth" order (within a byte downwards, then to the top bit of the next byte).
//! Physical value = raw × factor + offset.

/// One signal of a message.
#[derive(Clone, Debug, PartialEq)]
pub struct Signal {
    /// Name in the DBC.
    pub name: String,
    /// Start bit (DBC numbering, see the module).
    pub start_bit: u32,
    /// Length in bits, 1..=64.
    pub size: u32,
    /// `@1` (Intel) when true, `@0` (Motorola) when false.
    pub little_endian: bool,
    /// Two's complement raw value.
    pub signed: bool,
    /// Scale, non-zero.
    pub factor: f64,
    /// Offset.
    pub offset: f64,
    /// Unit ("" when none).
    pub unit: String,
}

impl Signal {
    /// The data bit positions (bit i of byte b is `8b + i`) from the raw value's most
    /// significant bit to its least.
    fn positions(&self) -> impl Iterator<Item = u32> + '_ {
        let mut bit = self.start_bit;
        let mut out = Vec::with_capacity(self.size as usize);
        if self.little_endian {
            out.extend((0..self.size).rev().map(|i| self.start_bit + i));
        } else {
            for _ in 0..self.size {
                out.push(bit);
                bit = if bit.is_multiple_of(8) { bit + 15 } else { bit - 1 };
            }
        }
        out.into_iter()
    }

    /// The highest data bit this signal touches, for checking it fits in the DLC.
    #[must_use]
    pub fn last_bit(&self) -> u32 {
        self.positions().max().unwrap_or(0)
    }

    /// Writes `physical` into `data`, rounded to the nearest raw step and clamped to what the
    /// bits can hold (a sensor's saturation, not an error).
    pub fn encode(&self, data: &mut [u8; 8], physical: f64) {
        let steps = ((physical - self.offset) / self.factor).round();
        let (lo, hi) = self.raw_range();
        let raw = if steps.is_nan() { 0 } else { steps.clamp(lo as f64, hi as f64) as i128 };
        let bits = (raw as u128) & (u128::MAX >> (128 - self.size));
        for (i, pos) in self.positions().enumerate() {
            let value = (bits >> (self.size as usize - 1 - i)) & 1 == 1;
            let (byte, mask) = ((pos / 8) as usize, 1u8 << (pos % 8));
            if byte < 8 {
                data[byte] = if value { data[byte] | mask } else { data[byte] & !mask };
            }
        }
    }

    /// Reads the physical value from `data`.
    #[must_use]
    pub fn decode(&self, data: &[u8; 8]) -> f64 {
        let mut raw: u128 = 0;
        for pos in self.positions() {
            let (byte, bit) = ((pos / 8) as usize, pos % 8);
            raw = (raw << 1) | u128::from(byte < 8 && (data[byte] >> bit) & 1 == 1);
        }
        let value = if self.signed && (raw >> (self.size - 1)) & 1 == 1 {
            raw as i128 - (1i128 << self.size)
        } else {
            raw as i128
        };
        value as f64 * self.factor + self.offset
    }

    /// Smallest and largest raw value.
    fn raw_range(&self) -> (i128, i128) {
        if self.signed {
            (-(1i128 << (self.size - 1)), (1i128 << (self.size - 1)) - 1)
        } else {
            (0, (1i128 << self.size) - 1)
        }
    }
}
