//! One LZ4 block decoded in safe Rust, for the frame decoders in [`super::lz4`].
//!
//! Why not `lz4_flex`: a recorded camera image is mostly long matches at a short offset (a
//! flat region repeats its 3-byte pixel), and `lz4_flex` copies an overlapping match one byte
//! at a time: measured, that loop was three quarters of its decode time, a third of the
//! replayer's CPU, in both its safe and its pointer decoder. Here a match closer than 16 bytes
//! is written 16 bytes a store from its repeating pattern, and a farther one in pieces of its
//! offset, each one `memmove`.
//!
//! Every length and offset is checked before it is used, so malformed input is an error,
//! never a panic: literals and matches must fit the input and the output, a match may reach
//! back no further than the window. Each store stays inside the output slice; a store may
//! write up to 15 bytes past the block's decoded end, which the next block overwrites and
//! nobody reads before it does.

/// Decodes the block `src` into `buf[start..]`; a match may copy from `buf[floor..]` (the
/// window: the previous block's last bytes in a linked frame). Returns how many bytes the
/// block decoded to.
///
/// # Errors
///
/// What is malformed, in a few words: input that ends early, a length past the input or the
/// output, a match offset of zero or beyond the window.
pub(super) fn decode(src: &[u8], buf: &mut [u8], start: usize, floor: usize) -> Result<usize, &'static str> {
    debug_assert!(floor <= start && start <= buf.len());
    let (mut ip, mut op) = (0usize, start);
    loop {
        let &token = src.get(ip).ok_or("input ends before a token")?;
        ip += 1;
        let mut lit = usize::from(token >> 4);
        if lit == 15 {
            lit += length(src, &mut ip)?;
        }
        if lit <= 16 && src.len() - ip >= 16 && buf.len() - op >= 16 {
            // The common short run: one 16-byte store, of which `lit` bytes count.
            buf[op..op + 16].copy_from_slice(&src[ip..ip + 16]);
        } else {
            let from = ip.checked_add(lit).and_then(|end| src.get(ip..end));
            let from = from.ok_or("literals past the input")?;
            let to = buf.get_mut(op..).and_then(|b| b.get_mut(..lit));
            to.ok_or("literals past the output")?.copy_from_slice(from);
        }
        (ip, op) = (ip + lit, op + lit);
        if ip == src.len() {
            // A block ends with literals.
            return Ok(op - start);
        }
        let o = src.get(ip..ip + 2).ok_or("input ends in a match offset")?;
        let offset = usize::from(u16::from_le_bytes([o[0], o[1]]));
        ip += 2;
        let mut len = usize::from(token & 15) + 4;
        if len == 19 {
            len += length(src, &mut ip)?;
        }
        if offset == 0 || offset > op - floor {
            return Err("match offset outside the window");
        }
        if len > buf.len() - op {
            return Err("match past the output");
        }
        copy_match(buf, op, offset, len);
        op += len;
    }
}

/// The rest of a length whose 4-bit field was 15: bytes added while they are 255.
fn length(src: &[u8], ip: &mut usize) -> Result<usize, &'static str> {
    let mut n = 0usize;
    loop {
        let &b = src.get(*ip).ok_or("input ends in a length")?;
        *ip += 1;
        n += usize::from(b);
        if b != 255 {
            return Ok(n);
        }
    }
}

/// Writes `len` bytes at `op` copied from `offset` bytes before it, the source overlapping
/// the destination when `offset < len` (the copy then repeats the last `offset` bytes). The
/// caller checked `offset <= op` and `op + len <= buf.len()`.
fn copy_match(buf: &mut [u8], op: usize, offset: usize, len: usize) {
    let s = op - offset;
    if offset >= 16 {
        if len <= 16 && buf.len() - op >= 16 {
            // One 16-byte store; its source ends at or before `op`.
            buf.copy_within(s..s + 16, op);
            return;
        }
        // Pieces of `offset` bytes: each one's source is written before it is read.
        let mut d = 0;
        while d < len {
            let k = offset.min(len - d);
            buf.copy_within(s + d..s + d + k, op + d);
            d += k;
        }
        return;
    }
    // A short period: its pattern, then 16-byte stores a whole number of periods apart.
    let mut pat = [0u8; 16];
    pat[..offset].copy_from_slice(&buf[s..op]);
    let mut have = offset;
    while have < 16 {
        let k = have.min(16 - have);
        pat.copy_within(..k, have);
        have += k;
    }
    let step = 16 / offset * offset;
    let (mut d, end) = (op, op + len);
    while end - d >= 16 {
        buf[d..d + 16].copy_from_slice(&pat);
        d += step;
    }
    buf[d..end].copy_from_slice(&pat[..end - d]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// liblz4's block compression, as the frame encoder uses it.
    fn compress(data: &[u8]) -> Vec<u8> {
        lz4::block::compress(data, Some(lz4::block::CompressionMode::DEFAULT), false).unwrap()
    }

    /// Data with runs at every short period and far repeats, as a rendered image has.
    fn image_like(seed: u64, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n);
        let mut x = seed | 1;
        while out.len() < n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let period = (x % 40) as usize + 1;
            let run = (x >> 8) as usize % 600;
            let base = out.len();
            for i in 0..period {
                out.push((x >> (i % 8)) as u8);
            }
            for i in 0..run {
                let b = out[base + i % period];
                out.push(b);
            }
            if x.is_multiple_of(7) && out.len() > 5000 {
                let from = out.len() - 4000;
                out.extend_from_within(from..from + 1500);
            }
        }
        out.truncate(n);
        out
    }

    #[test]
    fn decodes_what_liblz4_compresses() {
        for seed in 1..40 {
            let data = image_like(seed, 70_000 + seed as usize * 97);
            let block = compress(&data);
            let mut out = vec![0u8; data.len() + 7];
            assert_eq!(decode(&block, &mut out, 0, 0), Ok(data.len()), "seed {seed}");
            assert_eq!(&out[..data.len()], &data[..], "seed {seed}");
            // Exactly the room it needs.
            let mut exact = vec![0u8; data.len()];
            assert_eq!(decode(&block, &mut exact, 0, 0), Ok(data.len()));
            assert_eq!(exact, data);
            // Too little room is an error.
            let mut short = vec![0u8; data.len() - 1];
            assert!(decode(&block, &mut short, 0, 0).is_err());
        }
    }

    /// One sequence: literals, then a match (`offset`, `len`) unless it is the block's last.
    fn sequence(block: &mut Vec<u8>, lits: &[u8], m: Option<(u16, usize)>) {
        fn rest(block: &mut Vec<u8>, mut n: usize) {
            while n >= 255 {
                block.push(255);
                n -= 255;
            }
            block.push(n as u8);
        }
        let ml = m.map_or(0, |(_, len)| len - 4);
        block.push(((lits.len().min(15) as u8) << 4) | ml.min(15) as u8);
        if lits.len() >= 15 {
            rest(block, lits.len() - 15);
        }
        block.extend_from_slice(lits);
        if let Some((offset, _)) = m {
            block.extend_from_slice(&offset.to_le_bytes());
            if ml >= 15 {
                rest(block, ml - 15);
            }
        }
    }

    /// A linked frame's blocks reach into the window before them, and a match no further.
    #[test]
    fn matches_reach_into_the_window_and_no_further() {
        let data = image_like(7, 300_000);
        let mut enc =
            lz4::EncoderBuilder::new().block_mode(lz4::BlockMode::Linked).build(Vec::new()).unwrap();
        std::io::Write::write_all(&mut enc, &data).unwrap();
        let (frame, r) = enc.finish();
        r.unwrap();
        let mut d = super::super::lz4::Lz4Direct::default();
        let mut out = vec![0u8; data.len()];
        assert_eq!(d.upto(&frame, &mut out, usize::MAX), Some(data.len()));
        assert_eq!(out, data);
        let mut out = vec![0u8; 64];
        out[..3].copy_from_slice(b"xyz");
        let mut block = Vec::new();
        sequence(&mut block, b"abcd", Some((4, 8)));
        sequence(&mut block, b"z", None);
        assert_eq!(decode(&block, &mut out, 3, 3), Ok(13));
        assert_eq!(&out[3..16], b"abcdabcdabcdz");
        // 7 bytes back from 3 with the window from 0: refused; from 10: "xyzabcd"[3..].
        let mut reach = Vec::new();
        sequence(&mut reach, b"", Some((7, 4)));
        sequence(&mut reach, b"z", None);
        assert!(decode(&reach, &mut out, 3, 0).is_err());
        assert_eq!(decode(&reach, &mut out, 10, 3), Ok(5));
        assert_eq!(&out[10..15], b"abcdz");
        assert!(decode(&reach, &mut out, 10, 4).is_err());
        // Offset zero, a block ending in a match, an empty block.
        let mut zero = Vec::new();
        sequence(&mut zero, b"abcd", Some((0, 4)));
        sequence(&mut zero, b"z", None);
        assert!(decode(&zero, &mut out, 0, 0).is_err());
        let mut open = Vec::new();
        sequence(&mut open, b"abcd", Some((4, 4)));
        assert!(decode(&open, &mut out, 0, 0).is_err());
        assert!(decode(&[], &mut out, 0, 0).is_err());
    }

    #[test]
    fn every_period_repeats_at_every_length() {
        for period in 1..40usize {
            let lits: Vec<u8> = (0..period as u8).map(|i| i.wrapping_mul(37) ^ 0x5A).collect();
            for len in [4usize, 15, 16, 17, 18, 19, 31, 33, 100, 1000] {
                let mut block = Vec::new();
                sequence(&mut block, &lits, Some((period as u16, len)));
                sequence(&mut block, b"!", None);
                let want: Vec<u8> = (0..period + len).map(|i| lits[i % period]).chain([b'!']).collect();
                for slack in [0, 5, 40] {
                    let mut out = vec![0xEEu8; want.len() + slack];
                    assert_eq!(decode(&block, &mut out, 0, 0), Ok(want.len()), "{period} {len}");
                    assert_eq!(&out[..want.len()], &want[..], "{period} {len} {slack}");
                }
            }
        }
    }

    proptest! {
        /// Whatever the bytes, an answer and never a panic; a block from liblz4 with bytes
        /// changed decodes to an error or to some bytes, within the output.
        #[test]
        fn garbage_never_panics(src in proptest::collection::vec(any::<u8>(), 0..300),
                                room in 0usize..600, start in 0usize..64) {
            let mut out = vec![0u8; start + room];
            if let Ok(n) = decode(&src, &mut out, start, 0) {
                prop_assert!(start + n <= out.len());
            }
        }

        #[test]
        fn corrupted_blocks_never_panic(seed in 1u64..1000, at in any::<prop::sample::Index>(),
                                        byte in any::<u8>()) {
            let data = image_like(seed, 3000);
            let mut block = compress(&data);
            let i = at.index(block.len());
            block[i] = byte;
            let mut out = vec![0u8; data.len()];
            let _ = decode(&block, &mut out, 0, 0);
        }
    }
}
