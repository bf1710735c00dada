//! A shared mapping accessed only through atomics: the unsafe core of the crate.
//!
//! [`Mapping`] owns a `memmap2::MmapRaw` (raw pointers only: memmap2 never hands out a
//! slice of it here) and offers bounds-checked word access and copies. Every byte of a
//! segment is read and written as part of an `AtomicU64` at an 8-aligned offset, so
//! concurrent access by another process is never a data race, and no plain or volatile
//! access to shared bytes exists in the workspace. Bulk copies and checksums go through the
//! one wide-copy primitive, [`wide`]: 32-byte vector accesses in inline assembly whose
//! effect is, by the memory-model argument written there, that of Relaxed `AtomicU64` loads
//! or stores of the same words.
//!
//! Whether a mapping may be written is part of its type: a `Mapping<ReadOnly>` has loads and
//! copies out only, so safe code cannot store into a page mapped without `PROT_WRITE`.
//!
//! The mapping is registered with [`crate::sigbus`] for its whole life: if the file is
//! truncated under us, an access past the new end reads zeroes instead of killing the
//! process, and [`Mapping::truncated`] reports it.

use std::fs::File;
use std::io;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use memmap2::{MmapOptions, MmapRaw};

use crate::checksum::Checksum;
use crate::sigbus;

pub mod wide;

/// Access of a mapping that may be written (the default).
#[derive(Debug)]
pub enum ReadWrite {}

/// Access of a mapping mapped without `PROT_WRITE`: loads only.
#[derive(Debug)]
pub enum ReadOnly {}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::ReadWrite {}
    impl Sealed for super::ReadOnly {}
}

/// [`ReadWrite`] or [`ReadOnly`].
pub trait Access: sealed::Sealed {
    /// Whether the pages are mapped writable.
    const WRITABLE: bool;
}

impl Access for ReadWrite {
    const WRITABLE: bool = true;
}

impl Access for ReadOnly {
    const WRITABLE: bool = false;
}

/// A shared mapping of a segment file, writable or not as `A` says.
///
/// Only a `Mapping<ReadWrite>` can be written (with `ReadWrite` in place of `ReadOnly` this
/// compiles):
/// ```compile_fail
/// fn scribble(m: &shared::mapping::Mapping<shared::mapping::ReadOnly>) {
///     m.store_words(0, &[1]); // no such method: the pages are not writable
/// }
/// ```
#[derive(Debug)]
pub struct Mapping<A: Access = ReadWrite> {
    // Declared before `raw`, so dropped first: the range leaves the SIGBUS registry before
    // it is unmapped, never after (the address may be reused by another mapping at once).
    guard: sigbus::Guard,
    raw: MmapRaw,
    len: usize,
    _access: PhantomData<A>,
}

impl<A: Access> Mapping<A> {
    /// Maps the first `len` bytes of `file`, shared, writable iff `A` is [`ReadWrite`].
    ///
    /// # Errors
    /// The `mmap` error, or `InvalidInput` if `len` is not a multiple of 8 or too many
    /// mappings are alive to guard (see [`sigbus`]).
    pub fn map(file: &File, len: usize) -> io::Result<Self> {
        if len == 0 || !len.is_multiple_of(8) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "mapping length must be a non-zero multiple of 8",
            ));
        }
        let mut opts = MmapOptions::new();
        opts.len(len);
        let raw = if A::WRITABLE { opts.map_raw(file)? } else { opts.map_raw_read_only(file)? };
        let guard = sigbus::Guard::register(raw.as_ptr() as usize, len)
            .ok_or_else(|| io::Error::new(io::ErrorKind::OutOfMemory, "too many guarded mappings"))?;
        Ok(Self { guard, raw, len, _access: PhantomData })
    }

    /// Mapped bytes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the mapping is empty (never: kept for clippy's `len_without_is_empty`).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether an access hit a page past the end of the file (the file was truncated). Once
    /// true, anything read from this mapping is meaningless.
    #[must_use]
    pub fn truncated(&self) -> bool {
        self.guard.hit()
    }

    /// Whether this mapping may be written.
    #[must_use]
    pub fn writable(&self) -> bool {
        A::WRITABLE
    }

    /// Panics unless `words` words from `offset` lie inside the mapping, 8-aligned. Checked
    /// arithmetic: a huge count must not wrap into a small, passing range.
    #[inline]
    fn check(&self, offset: usize, words: usize) {
        // Offsets come from the layout's consts and from geometry validated at attach, never
        // from words read out of the segment, so a failure here is a bug in the caller.
        let end = words.checked_mul(8).and_then(|bytes| offset.checked_add(bytes));
        assert!(
            offset.is_multiple_of(8) && end.is_some_and(|end| end <= self.len),
            "segment access out of bounds: {words} words at {offset} of {} bytes",
            self.len
        );
    }

    /// The atomic word at `offset`, for loads only: in a read-only mapping a store would fault,
    /// so this is not public; [`Mapping::word`] hands out words of writable mappings.
    #[inline]
    pub(crate) fn word_for_loads(&self, offset: usize) -> &AtomicU64 {
        self.check(offset, 1);
        // SAFETY: `offset + 8 <= len` and `offset` is 8-aligned (checked above) and the
        // mapping is page aligned, so the pointer is in bounds and aligned for AtomicU64. The
        // memory stays mapped as long as `self` lives, which bounds the returned lifetime. All
        // accesses to segment memory in this workspace are atomic, so sharing it with other
        // threads and processes is not a data race. Stores happen only through `word`, which
        // exists for `Mapping<ReadWrite>` only; crate callers of this function only load.
        unsafe { AtomicU64::from_ptr(self.raw.as_mut_ptr().add(offset).cast::<u64>()) }
    }

    /// Loads the word at `offset` with `order`.
    ///
    /// # Panics
    /// If `offset` is unaligned or out of bounds (a bug in the caller).
    #[inline]
    #[must_use]
    pub fn load(&self, offset: usize, order: Ordering) -> u64 {
        self.word_for_loads(offset).load(order)
    }

    /// Copies `N` words starting at `offset` with Relaxed loads (the caller's seqlock or
    /// Acquire load supplies the ordering).
    #[inline]
    #[must_use]
    pub fn load_words<const N: usize>(&self, offset: usize) -> [u64; N] {
        let src = self.words(offset, N);
        std::array::from_fn(|i| src[i].load(Ordering::Relaxed))
    }

    /// The words `[offset, offset + 8 * count)` as a slice of atomics. Checked once, so the
    /// hot copy loops below index without further bounds checks on the mapping. Crate-private
    /// for the reason given at `word_for_loads`.
    #[inline]
    pub(crate) fn words(&self, offset: usize, count: usize) -> &[AtomicU64] {
        self.check(offset, count);
        // SAFETY: the range is in bounds and 8-aligned (checked above, without overflow);
        // AtomicU64 has the size and alignment of u64, so `count` consecutive words form a valid `[AtomicU64]`; the
        // memory lives as long as `self`; all access to it is atomic (see `word_for_loads`).
        unsafe { std::slice::from_raw_parts(self.raw.as_mut_ptr().add(offset).cast::<AtomicU64>(), count) }
    }
    /// Copies `len` bytes from `offset` into `dst` (resized to `len`, reusing its capacity)
    /// and returns their checksum. One pass over the bytes: whole quads through the wide-copy
    /// primitive (`wide::load_summed`), the last few words with Relaxed word loads; a buffer
    /// reused for frames of one size is never cleared.
    #[inline]
    pub fn copy_out(&self, offset: usize, len: usize, dst: &mut Vec<u8>) -> u64 {
        let nwords = len.div_ceil(8);
        let src = self.words(offset, nwords);
        let padded = nwords * 8;
        if dst.len() != padded {
            dst.resize(padded, 0);
        }
        let full = len / 32 * 4;
        let mut sum = Checksum::new();
        wide::load_summed(&src[..full], &mut dst[..8 * full], &mut sum);
        for (i, word) in src.iter().enumerate().skip(full) {
            let w = masked(word.load(Ordering::Relaxed), i, len);
            sum.add_at(i, w);
            dst[8 * i..8 * i + 8].copy_from_slice(&w.to_le_bytes());
        }
        dst.truncate(len);
        sum.finish(len as u64)
    }

    /// Checksum of `len` bytes from `offset`, read through the wide-copy primitive (whole
    /// quads) and Relaxed word loads (the rest): the second pass of an in-place read uses it.
    #[must_use]
    pub fn checksum(&self, offset: usize, len: usize) -> u64 {
        self.sum_words_of(offset, 0..len.div_ceil(8), len).finish(len as u64)
    }

    /// The checksum state of words `range` of the payload of `len` bytes at `base`, started
    /// fresh (each word at its own payload index, the last partial word masked): what a commit
    /// reads back of the words no append vouched for. Whole quads go through the wide
    /// primitive, the words before the first and after the last with Relaxed word loads.
    #[must_use]
    pub fn sum_words_of(&self, base: usize, range: std::ops::Range<usize>, len: usize) -> Checksum {
        let mut sum = Checksum::new();
        if range.is_empty() {
            return sum;
        }
        let src = self.words(base + 8 * range.start, range.len());
        let first_quad = range.start.next_multiple_of(4).min(range.end);
        // Quads of whole words only: the last, partial word is masked below.
        let quads_end = first_quad + range.end.min(len / 8).saturating_sub(first_quad) / 4 * 4;
        let (lead, rest) = src.split_at(first_quad - range.start);
        let (quads, tail) = rest.split_at(quads_end - first_quad);
        for (i, word) in (range.start..).zip(lead) {
            sum.add_at(i, masked(word.load(Ordering::Relaxed), i, len));
        }
        wide::sum_words(quads, &mut sum);
        for (i, word) in (quads_end..).zip(tail) {
            sum.add_at(i, masked(word.load(Ordering::Relaxed), i, len));
        }
        sum
    }
}

/// Word `i` of a payload of `len` bytes as the checksum sees it: past the payload's end the
/// last word holds whatever the slot held before, so those bytes count as zero.
#[inline]
fn masked(w: u64, i: usize, len: usize) -> u64 {
    if i == len / 8 && !len.is_multiple_of(8) {
        w & (u64::MAX >> (8 * (8 - len % 8)))
    } else {
        w
    }
}

impl Mapping<ReadWrite> {
    /// The 64-bit atomic word at `offset`.
    ///
    /// # Panics
    /// If `offset` is unaligned or out of bounds (a bug in the caller).
    #[inline]
    #[must_use]
    pub fn word(&self, offset: usize) -> &AtomicU64 {
        self.word_for_loads(offset)
    }

    /// The 32-bit atomic at `offset` (a futex word). Such a word is never accessed as 64 bits.
    ///
    /// # Panics
    /// If `offset` is unaligned or out of bounds (a bug in the caller).
    #[inline]
    #[must_use]
    pub fn word32(&self, offset: usize) -> &AtomicU32 {
        self.check(offset, 1);
        // SAFETY: as in `word_for_loads`: in bounds (8 bytes checked, 4 used) and 8-aligned,
        // mapped writable for the lifetime of `self`, and only ever accessed atomically with
        // this size.
        unsafe { AtomicU32::from_ptr(self.raw.as_mut_ptr().add(offset).cast::<u32>()) }
    }

    /// Stores `words` from `offset` on with Relaxed stores.
    ///
    /// # Panics
    /// If the range is unaligned or out of bounds (a bug in the caller).
    #[inline]
    pub fn store_words(&self, offset: usize, words: &[u64]) {
        for (dst, w) in self.words(offset, words.len()).iter().zip(words) {
            dst.store(*w, Ordering::Relaxed);
        }
    }

    /// Writes `src` at byte `offset` (any alignment), its checksum dropped: the tests' way to
    /// fill a slot (a loan always folds the checksum, `ring/runs.rs`).
    #[cfg(test)]
    pub(crate) fn copy_in(&self, offset: usize, src: &[u8]) {
        // The checksum of an unaligned write is of no use; it costs nothing on the wide path.
        self.append_summed(offset / 8 * 8, offset % 8, src, &mut Checksum::new(), false);
    }

    /// Writes `src` at byte `at` of the payload that starts at `base` (8-aligned) and folds
    /// into `sum` every payload word this write completes, as word `(its offset - base) / 8`:
    /// one pass for a producer that appends (`Loan::push`). The caller must have folded every
    /// word before `at / 8` and no other; the word the write ends in, if partial, is left for
    /// the next append or to be read back (`sum_words_of`). `hot`: the slot is still in
    /// the caches, so only a very large write uses streaming stores (`mapping::wide`).
    ///
    /// # Panics
    /// If `base` is unaligned or the range is out of bounds (a bug in the caller).
    pub fn append_summed(&self, base: usize, at: usize, src: &[u8], sum: &mut Checksum, hot: bool) {
        if src.is_empty() {
            return;
        }
        assert!(base.is_multiple_of(8), "payload base {base} is not 8-aligned");
        let first = (base + at) / 8 * 8;
        let end = (base + at).saturating_add(src.len());
        let words = self.words(first, (end - first).div_ceil(8));
        let (head, w0) = (at % 8, at / 8);
        let mut rest = src;
        let mut idx = 0;
        if head != 0 || rest.len() < 8 {
            let take = (8 - head).min(rest.len());
            let mut w = words[0].load(Ordering::Relaxed).to_le_bytes();
            w[head..head + take].copy_from_slice(&rest[..take]);
            let w = u64::from_le_bytes(w);
            words[0].store(w, Ordering::Relaxed);
            if head + take == 8 {
                sum.add_at(w0, w);
            }
            rest = &rest[take..];
            idx = 1;
        }
        // Whole words up to a quad boundary, whole quads wide, then whole words again.
        let lead = ((4 - (w0 + idx) % 4) % 4).min(rest.len() / 8);
        let quads = (rest.len() - 8 * lead) / 32;
        for _ in 0..lead {
            idx = store_word(words, idx, w0, &mut rest, sum);
        }
        wide::store_summed(&words[idx..idx + 4 * quads], &rest[..32 * quads], sum, hot);
        idx += 4 * quads;
        rest = &rest[32 * quads..];
        while rest.len() >= 8 {
            idx = store_word(words, idx, w0, &mut rest, sum);
        }
        if !rest.is_empty() {
            let mut w = words[idx].load(Ordering::Relaxed).to_le_bytes();
            w[..rest.len()].copy_from_slice(rest);
            words[idx].store(u64::from_le_bytes(w), Ordering::Relaxed);
        }
    }
}

/// Stores the next whole word of `rest` at `words[idx]` (payload word `w0 + idx`) and folds
/// it; returns the next index.
#[inline]
fn store_word(words: &[AtomicU64], idx: usize, w0: usize, rest: &mut &[u8], sum: &mut Checksum) -> usize {
    let mut b = [0u8; 8];
    b.copy_from_slice(&rest[..8]);
    let w = u64::from_le_bytes(b);
    words[idx].store(w, Ordering::Relaxed);
    sum.add_at(w0 + idx, w);
    *rest = &rest[8..];
    idx + 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checksum::checksum_bytes;

    fn mapping(len: usize) -> (tempfile::NamedTempFile, Mapping) {
        let f = tempfile::NamedTempFile::new().unwrap();
        f.as_file().set_len(len as u64).unwrap();
        let m = Mapping::<ReadWrite>::map(f.as_file(), len).unwrap();
        (f, m)
    }

    #[test]
    fn copy_in_and_out_at_every_alignment() {
        let (_f, m) = mapping(4096);
        for off in 0..17 {
            for n in [0usize, 1, 7, 8, 9, 31, 32, 33, 100] {
                let src: Vec<u8> = (0..n).map(|i| (i * 7 + off) as u8).collect();
                m.copy_in(64 + off, &src);
                let mut out = Vec::new();
                // Read back the aligned range that covers it and compare the slice.
                let sum = m.copy_out(64, off + n, &mut out);
                assert_eq!(&out[off..], &src[..], "off {off} n {n}");
                assert_eq!(sum, checksum_bytes(&out));
                assert_eq!(m.checksum(64, off + n), sum);
            }
        }
    }

    #[test]
    fn appends_fold_the_checksum_of_what_they_wrote() {
        let (_f, m) = mapping(8192);
        let base = 64;
        for pieces in
            [&[0usize][..], &[5], &[8, 8], &[3, 100, 1, 7, 64, 33], &[32, 4000], &[1; 40], &[700, 9, 2048]]
        {
            m.copy_in(base, &[0xEE; 5000]);
            let mut sum = Checksum::new();
            let mut all = Vec::new();
            for (k, n) in pieces.iter().enumerate() {
                let piece: Vec<u8> = (0..*n).map(|i| (i * 13 + k * 7 + 1) as u8).collect();
                m.append_summed(base, all.len(), &piece, &mut sum, false);
                all.extend_from_slice(&piece);
            }
            // The appends vouch for the whole words; the last, partial one is read back.
            let (len, words) = (all.len(), all.len().div_ceil(8));
            let mut total = Checksum::new();
            total.absorb(&m.sum_words_of(base, len / 8..words, len), words, words);
            total.absorb(&sum, len / 8, words);
            assert_eq!(total.finish(len as u64), checksum_bytes(&all), "{pieces:?}");
            assert_eq!(m.checksum(base, all.len()), checksum_bytes(&all), "{pieces:?}");
            let mut out = Vec::new();
            m.copy_out(base, all.len(), &mut out);
            assert_eq!(out, all, "{pieces:?}");
        }
    }

    #[test]
    fn a_dropped_mapping_leaves_the_sigbus_registry_before_it_is_unmapped() {
        let (_f, m) = mapping(8192);
        let addr = m.raw.as_ptr() as usize + 100;
        assert!(sigbus::Guard::registered(addr));
        // In debug builds the guard asserts, as it unregisters, that the range is still
        // mapped: with the raw mapping dropped first, this drop panics.
        drop(m);
        assert!(!sigbus::Guard::registered(addr));
    }

    #[test]
    fn partial_writes_keep_neighbours() {
        let (_f, m) = mapping(4096);
        m.copy_in(0, &[0xAA; 24]);
        m.copy_in(3, &[1, 2]);
        let mut out = Vec::new();
        m.copy_out(0, 24, &mut out);
        assert_eq!(&out[..6], &[0xAA, 0xAA, 0xAA, 1, 2, 0xAA]);
        assert!(out[6..].iter().all(|b| *b == 0xAA));
    }
}
