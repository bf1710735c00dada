//! The slot checksum: a four-lane Fletcher-style sum over little-endian 64-bit words.
//!
//! It is computed while a reader copies a payload out of a slot (one pass), in a second pass
//! after an in-place read, and by the writer while it writes (folded into the copy, in order or
//! not: runs written out of order are combined with [`Checksum::absorb`], and a commit reads
//! back only the words no run covered whole), four words per 256-bit vector on the wide
//! path (`mapping::wide`); [`seal`] then folds the frame header's words into it, so the
//! checksum a slot carries covers frame seq, capture time, epoch, payload length and
//! incarnation as well as the payload (DESIGN.md §5: a scribbled epoch is as detectable as a
//! scribbled pixel). It guards against a corrupt or hostile writer; the seqlock, not the
//! checksum, guards against torn reads. The final partial word is zero-padded.

/// Mixed into every word before it is summed.
pub const K0: u64 = 0x9E37_79B9_7F4A_7C15;
const K1: u64 = 0xC2B2_AE3D_27D4_EB4F;

/// Running checksum state.
#[derive(Clone, Copy, Debug, Default)]
pub struct Checksum {
    a: [u64; 4],
    b: [u64; 4],
}

impl Checksum {
    /// A fresh state.
    #[must_use]
    pub const fn new() -> Self {
        Self { a: [0; 4], b: [0; 4] }
    }

    /// A state from its lanes (for loops that keep the lanes in registers).
    #[must_use]
    #[inline(always)]
    pub const fn from_lanes(a: [u64; 4], b: [u64; 4]) -> Self {
        Self { a, b }
    }

    /// The lanes (to continue in registers).
    #[must_use]
    #[inline(always)]
    pub const fn lanes(&self) -> ([u64; 4], [u64; 4]) {
        (self.a, self.b)
    }

    /// Adds four consecutive words.
    #[inline(always)]
    pub fn add4(&mut self, w: [u64; 4]) {
        for (lane, w) in w.into_iter().enumerate() {
            self.a[lane] = self.a[lane].wrapping_add(w ^ K0);
            self.b[lane] = self.b[lane].wrapping_add(self.a[lane]);
        }
    }

    /// Adds one word at word index `i` (its lane is `i % 4`).
    #[inline(always)]
    pub fn add_at(&mut self, i: usize, w: u64) {
        let lane = i % 4;
        self.a[lane] = self.a[lane].wrapping_add(w ^ K0);
        self.b[lane] = self.b[lane].wrapping_add(self.a[lane]);
    }

    /// Adds `piece`, the state of a run of payload words ending before word `end` that was
    /// started fresh (each word added with [`add_at`](Self::add_at) at its own payload index),
    /// to this state of a payload of `words` words.
    ///
    /// Each lane is a Fletcher sum: `a` sums the lane's words and `b` sums `a` after each
    /// word, so a word's weight in `b` is the number of the lane's words from it to the end
    /// of the payload. The piece counted only up to its own end; every later word of its
    /// lane adds the piece's `a` once more. Both sums are linear (wrapping), so the pieces of
    /// a payload can be absorbed in any order, and absorbing the pieces that tile it gives
    /// the state the words added in order give.
    #[inline]
    pub fn absorb(&mut self, piece: &Self, end: usize, words: usize) {
        // Words at indices in [0, x) that fall in lane `lane`.
        let in_lane = |x: usize, lane: usize| (x + 3 - lane) / 4;
        for lane in 0..4 {
            let later = (in_lane(words, lane) - in_lane(end.min(words), lane)) as u64;
            self.a[lane] = self.a[lane].wrapping_add(piece.a[lane]);
            self.b[lane] =
                self.b[lane].wrapping_add(piece.b[lane]).wrapping_add(piece.a[lane].wrapping_mul(later));
        }
    }

    /// The checksum of a payload of `len` bytes whose words were added.
    #[must_use]
    pub fn finish(&self, len: u64) -> u64 {
        let mut h = len ^ K1;
        for lane in 0..4 {
            h = (h ^ self.a[lane]).wrapping_mul(K1).rotate_left(29);
            h = (h ^ self.b[lane]).wrapping_mul(K0).rotate_left(31);
        }
        h ^ (h >> 32)
    }
}

/// The word at byte offset `8 * i` of `bytes`, zero-padded past the end.
#[inline]
#[must_use]
pub fn word_at(bytes: &[u8], i: usize) -> u64 {
    let start = 8 * i;
    let mut w = [0u8; 8];
    let end = bytes.len().min(start + 8);
    if start < end {
        w[..end - start].copy_from_slice(&bytes[start..end]);
    }
    u64::from_le_bytes(w)
}

/// The checksum stored in a slot: the payload's checksum `payload_sum` sealed together with
/// the frame header words it travels with (frame seq, capture ns, epoch, payload length,
/// incarnation, publish ns: every header word but the checksum, in layout order).
#[must_use]
pub fn seal(header: [u64; 6], payload_sum: u64) -> u64 {
    let mut c = Checksum::new();
    for (i, w) in header.into_iter().chain([payload_sum]).enumerate() {
        c.add_at(i, w);
    }
    // The length mixed in last is the header's word count, not a payload length.
    c.finish(header.len() as u64 + 1)
}

/// Checksum of a byte slice (reference implementation for tests and tools).
#[must_use]
pub fn checksum_bytes(bytes: &[u8]) -> u64 {
    let mut c = Checksum::new();
    for i in 0..bytes.len().div_ceil(8) {
        c.add_at(i, word_at(bytes, i));
    }
    c.finish(bytes.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_swaps_flips_and_length() {
        let a: Vec<u8> = (0..100u8).collect();
        let mut b = a.clone();
        b.swap(0, 8);
        assert_ne!(checksum_bytes(&a), checksum_bytes(&b));
        let mut c = a.clone();
        c[99] ^= 1;
        assert_ne!(checksum_bytes(&a), checksum_bytes(&c));
        assert_ne!(checksum_bytes(&a[..99]), checksum_bytes(&a));
        assert_ne!(checksum_bytes(&[]), checksum_bytes(&[0]));
    }

    #[test]
    fn add4_equals_add_at() {
        let words = [1u64, 2, 3, 4, 5, 6, 7, 8];
        let mut x = Checksum::new();
        x.add4([1, 2, 3, 4]);
        x.add4([5, 6, 7, 8]);
        let mut y = Checksum::new();
        for (i, w) in words.into_iter().enumerate() {
            y.add_at(i, w);
        }
        assert_eq!(x.finish(64), y.finish(64));
    }

    /// The payload's words cut at `cuts`, each piece summed fresh and absorbed in reverse.
    fn absorbed(words: &[u64], cuts: &[usize]) -> u64 {
        let mut bounds = vec![0];
        bounds.extend(cuts.iter().copied().filter(|&c| c < words.len()));
        bounds.sort_unstable();
        bounds.push(words.len());
        let mut total = Checksum::new();
        for piece in bounds.windows(2).rev() {
            let mut p = Checksum::new();
            for (i, w) in words.iter().enumerate().take(piece[1]).skip(piece[0]) {
                p.add_at(i, *w);
            }
            total.absorb(&p, piece[1], words.len());
        }
        total.finish(8 * words.len() as u64)
    }

    #[test]
    fn absorbed_pieces_equal_the_words_in_order() {
        let words: Vec<u64> = (0..37u64).map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (i << 7)).collect();
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        let whole = checksum_bytes(&bytes);
        for cuts in [&[][..], &[1], &[4], &[5, 6, 7], &[3, 9, 10, 30, 36], &[2, 4, 8, 16, 32]] {
            assert_eq!(absorbed(&words, cuts), whole, "cuts {cuts:?}");
        }
        // It can fail: a piece absorbed as if it ended elsewhere gives another checksum.
        let mut wrong = Checksum::new();
        let (mut head, mut tail) = (Checksum::new(), Checksum::new());
        for (i, w) in words.iter().enumerate() {
            if i < 10 {
                head.add_at(i, *w)
            } else {
                tail.add_at(i, *w)
            }
        }
        wrong.absorb(&head, 11, words.len());
        wrong.absorb(&tail, words.len(), words.len());
        assert_ne!(wrong.finish(8 * words.len() as u64), whole);
    }

    #[test]
    fn seal_covers_every_header_word() {
        let h = [7, 70, 3, 100, 1, 5];
        let base = seal(h, 42);
        assert_ne!(seal(h, 43), base);
        for i in 0..h.len() {
            let mut g = h;
            g[i] ^= 1;
            assert_ne!(seal(g, 42), base, "word {i}");
        }
    }
}
