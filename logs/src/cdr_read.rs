//! A bounds-checked, zero-copy reader for classic CDR (XCDR1), the encoding of ROS 2 messages.
//!
//! Writing goes through the `cdr` crate (serde). Reading does not: `cdr`'s deserializer
//! allocates and zero-fills a buffer of the length a string or byte sequence *claims* before
//! checking it against the bytes present, so one flipped length in a bag would make it
//! allocate up to 4 GiB. Logs are untrusted input, so this reader checks every length against
//! the bytes that remain, never allocates, and borrows byte blobs (point and pixel data) from
//! the message instead of copying them.
//!
//! Layout: a 4-byte encapsulation header (`00 00` big-endian or `00 01` little-endian, then
//! two option bytes), then the body; primitives are aligned to their size, counted from the
//! start of the body; strings and sequences are a `u32` length then the elements.

/// Where and why a message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CdrError {
    /// Byte offset in the serialized message.
    pub offset: usize,
    /// What was being read.
    pub what: String,
}

impl std::fmt::Display for CdrError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (at byte {} of the message)", self.what, self.offset)
    }
}

/// Size of the encapsulation header.
pub(crate) const ENCAPSULATION_LEN: usize = 4;

/// A cursor over one CDR message.
#[derive(Debug, Clone)]
pub(crate) struct CdrReader<'a> {
    msg: &'a [u8],
    /// Absolute position in `msg`.
    pos: usize,
    little_endian: bool,
}

impl<'a> CdrReader<'a> {
    /// Checks the encapsulation header.
    pub fn new(msg: &'a [u8]) -> Result<Self, CdrError> {
        if msg.len() < ENCAPSULATION_LEN {
            return Err(CdrError {
                offset: 0,
                what: format!("message of {} bytes has no CDR header", msg.len()),
            });
        }
        let little_endian = match (msg[0], msg[1]) {
            (0, 0) => false,
            (0, 1) => true,
            (a, b) => {
                return Err(CdrError {
                    offset: 0,
                    what: format!(
                        "unsupported CDR encapsulation {a:02x}{b:02x} (only plain CDR, 0000 or 0001)"
                    ),
                })
            }
        };
        Ok(Self { msg, pos: ENCAPSULATION_LEN, little_endian })
    }

    /// Whether the message is little-endian.
    #[cfg(test)]
    pub fn little_endian(&self) -> bool {
        self.little_endian
    }

    /// Absolute offset of the cursor in the message.
    pub fn position(&self) -> usize {
        self.pos
    }

    fn err(&self, what: impl Into<String>) -> CdrError {
        CdrError { offset: self.pos, what: what.into() }
    }

    fn align(&mut self, n: usize) -> Result<(), CdrError> {
        let body = self.pos - ENCAPSULATION_LEN;
        let pad = (n - body % n) % n;
        if self.msg.len() - self.pos < pad {
            return Err(self.err("message ends inside alignment padding"));
        }
        self.pos += pad;
        Ok(())
    }

    fn take<const N: usize>(&mut self, what: &str) -> Result<[u8; N], CdrError> {
        self.align(N)?;
        let end = self.pos.checked_add(N).filter(|&e| e <= self.msg.len());
        let Some(end) = end else {
            return Err(self.err(format!("message ends before {what}")));
        };
        let mut out = [0u8; N];
        out.copy_from_slice(&self.msg[self.pos..end]);
        self.pos = end;
        Ok(out)
    }

    pub fn u8(&mut self, what: &str) -> Result<u8, CdrError> {
        Ok(self.take::<1>(what)?[0])
    }

    pub fn bool(&mut self, what: &str) -> Result<bool, CdrError> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(CdrError { offset: self.pos - 1, what: format!("{what}: bool byte is {v}") }),
        }
    }

    pub fn u32(&mut self, what: &str) -> Result<u32, CdrError> {
        let b = self.take::<4>(what)?;
        Ok(if self.little_endian { u32::from_le_bytes(b) } else { u32::from_be_bytes(b) })
    }

    pub fn i32(&mut self, what: &str) -> Result<i32, CdrError> {
        // The same four bytes, read as two's complement.
        Ok(self.u32(what)? as i32)
    }

    pub fn u64(&mut self, what: &str) -> Result<u64, CdrError> {
        let b = self.take::<8>(what)?;
        Ok(if self.little_endian { u64::from_le_bytes(b) } else { u64::from_be_bytes(b) })
    }

    pub fn f64(&mut self, what: &str) -> Result<f64, CdrError> {
        // The same eight bytes, read as IEEE 754.
        Ok(f64::from_bits(self.u64(what)?))
    }

    /// A finite `f64`.
    pub fn finite_f64(&mut self, what: &str) -> Result<f64, CdrError> {
        let at = self.pos;
        let v = self.f64(what)?;
        if v.is_finite() {
            Ok(v)
        } else {
            Err(CdrError { offset: at, what: format!("{what} is not finite ({v})") })
        }
    }

    /// `N` finite `f64`s (a fixed-size array: no length prefix).
    pub fn f64_array<const N: usize>(&mut self, what: &str) -> Result<[f64; N], CdrError> {
        let mut out = [0.0; N];
        for v in &mut out {
            *v = self.finite_f64(what)?;
        }
        Ok(out)
    }

    /// A sequence length, checked against the bytes left given each element takes at least
    /// `min_elem` bytes.
    pub fn seq_len(&mut self, what: &str, min_elem: usize) -> Result<usize, CdrError> {
        let at = self.pos;
        let n = self.u32(what)? as usize;
        let left = self.msg.len() - self.pos;
        if n.saturating_mul(min_elem.max(1)) > left {
            return Err(CdrError {
                offset: at,
                what: format!("{what}: length {n} exceeds the {left} bytes left in the message"),
            });
        }
        Ok(n)
    }

    /// A `uint8[]`: borrowed, with its absolute offset in the message.
    pub fn bytes(&mut self, what: &str) -> Result<(usize, &'a [u8]), CdrError> {
        let n = self.seq_len(what, 1)?;
        let start = self.pos;
        self.pos += n;
        Ok((start, &self.msg[start..self.pos]))
    }

    /// A `string`: the length counts a terminating NUL, which is dropped.
    pub fn string(&mut self, what: &str) -> Result<&'a str, CdrError> {
        let at = self.pos;
        let (_, raw) = self.bytes(what)?;
        let raw = match raw.split_last() {
            Some((0, rest)) => rest,
            // Tolerate a missing terminator (some writers omit it); an empty one is "".
            Some(_) | None => raw,
        };
        std::str::from_utf8(raw).map_err(|_| CdrError { offset: at, what: format!("{what} is not UTF-8") })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_aligned_little_endian() {
        // header, u8 7, pad to 4, u32 5, pad to 8, f64 1.5, string "ab"
        let mut m = vec![0, 1, 0, 0, 7, 0, 0, 0, 5, 0, 0, 0];
        m.extend_from_slice(&1.5f64.to_le_bytes());
        m.extend_from_slice(&3u32.to_le_bytes());
        m.extend_from_slice(b"ab\0");
        let mut r = CdrReader::new(&m).unwrap();
        assert!(r.little_endian());
        assert_eq!(r.u8("a").unwrap(), 7);
        assert_eq!(r.u32("b").unwrap(), 5);
        assert_eq!(r.f64("c").unwrap(), 1.5);
        assert_eq!(r.string("d").unwrap(), "ab");
        assert!(r.u8("e").is_err());
    }

    #[test]
    fn rejects_lengths_past_the_end() {
        let m = vec![0, 1, 0, 0, 0xff, 0xff, 0xff, 0xff, 1, 2];
        let mut r = CdrReader::new(&m).unwrap();
        let e = r.bytes("data").unwrap_err();
        assert!(e.what.contains("exceeds"), "{e}");
        assert!(CdrReader::new(&[0, 9, 0, 0]).is_err());
        assert!(CdrReader::new(&[0]).is_err());
    }

    #[test]
    fn big_endian() {
        let m = vec![0, 0, 0, 0, 0, 0, 0, 9];
        assert_eq!(CdrReader::new(&m).unwrap().u32("x").unwrap(), 9);
    }
}
