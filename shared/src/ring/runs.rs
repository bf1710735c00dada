//! What a loan has written: the runs of payload words whose checksum was folded while they
//! were copied in, so that a commit reads back only the words no run vouches for.
//!
//! A producer that appends (`push`) writes one run, as before. A renderer that fills its
//! frame out of order (`write_at`: the camera writes each band's rows into two planes, in
//! whatever order its threads finish them) writes many; each is summed fresh and the commit
//! absorbs them all ([`Checksum::absorb`]). Two things keep that honest:
//! - A run vouches only for the words it wrote whole. A word a write covers only in part
//!   (at either end) is left out, and read back at commit with the gaps between runs.
//! - A write that touches a word some earlier run vouched for drops that run: its words
//!   become a gap, read back at commit. So every word is counted once, with the value it
//!   holds at commit.

use std::ops::Range;

use crate::checksum::Checksum;
use crate::mapping::{Mapping, ReadWrite};

/// One run of whole words, summed fresh while copied in.
#[derive(Clone, Copy, Debug)]
struct Run {
    /// The payload words it vouches for.
    words: (usize, usize),
    /// The byte its last write ended at: a write from there continues the run.
    byte_end: usize,
    sum: Checksum,
}

/// The runs of the current loan (kept by the writer, so that a loan allocates nothing).
#[derive(Debug, Default)]
pub(super) struct Runs {
    runs: Vec<Run>,
}

impl Runs {
    /// Forgets every run: a new loan starts.
    pub fn clear(&mut self) {
        self.runs.clear();
    }

    /// Writes `src` at byte `at` of the payload at `base` and folds the words it completes;
    /// `hot`: the slot is still in the caches (see `Mapping::append_summed`).
    pub fn write(&mut self, map: &Mapping<ReadWrite>, base: usize, at: usize, src: &[u8], hot: bool) {
        if src.is_empty() {
            return;
        }
        let end = at + src.len();
        let touched = at / 8..end.div_ceil(8);
        // A run that continues at `at` vouches only for words before `at / 8`: it stays.
        self.runs.retain(|r| r.words.1 <= touched.start || touched.end <= r.words.0);
        match self.runs.last_mut() {
            Some(run) if run.byte_end == at => {
                map.append_summed(base, at, src, &mut run.sum, hot);
                (run.words.1, run.byte_end) = (end / 8, end);
            }
            _ => {
                // `append_summed` folds exactly the words `at / 8 .. end / 8`: a word the
                // write starts inside of only if the write reaches its end.
                let mut sum = Checksum::new();
                map.append_summed(base, at, src, &mut sum, hot);
                self.runs.push(Run { words: (at / 8, end / 8), byte_end: end, sum });
            }
        }
    }

    /// The checksum of the payload of `len` bytes at `base`: the runs absorbed, and every
    /// word no run vouches for read back from the slot.
    pub fn finish(&mut self, map: &Mapping<ReadWrite>, base: usize, len: usize) -> u64 {
        let words = len.div_ceil(8);
        self.runs.sort_unstable_by_key(|r| r.words.0);
        let mut total = Checksum::new();
        let mut next = 0;
        let gap = |total: &mut Checksum, range: Range<usize>| {
            let end = range.end;
            total.absorb(&map.sum_words_of(base, range, len), end, words);
        };
        for run in &self.runs {
            if run.words.0 > next {
                gap(&mut total, next..run.words.0);
            }
            total.absorb(&run.sum, run.words.1, words);
            next = next.max(run.words.1);
        }
        if next < words {
            gap(&mut total, next..words);
        }
        total.finish(len as u64)
    }
}
