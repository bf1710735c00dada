//! The per-slot seqlock protocol (Boehm, "Can Seqlocks Get Along with Programming Language
//! Memory Models?", 2012), as four functions so that rings and the loom model share it.
//!
//! The sequence word's bit layout: bit 0 set means a write is in progress; bits 1..64 count
//! completed writes. A slot that was never written holds 0.
//!
//! ```text
//! writer                                   reader
//! s = write_begin(seq)                     s1 = read_begin(seq)?      // Acquire; odd → busy
//!   seq := s+1 (Relaxed)                   copy words (Relaxed loads)
//!   fence(Release) ──────────────┐   ┌──── read_end(seq, s1):
//! data words (Relaxed stores)    └───┼──►   fence(Acquire)
//! write_end(seq, s)                  │      s2 = seq.load(Relaxed); accept iff s1 == s2
//!   seq := s+2 (Release) ────────────┘
//! ```
//!
//! If a reader's relaxed load observed any data word stored after the writer's Release
//! fence, that fence synchronises with the reader's Acquire fence, so the odd store is
//! visible to the reader's second load and the copy is refused. If the reader's first load
//! observed `s+2`, its Acquire pairs with the writer's Release store and every data word of
//! that write is visible.

use crate::sync::{fence, AtomicU64, Ordering};

/// Starts a write: marks the slot busy. Returns the even value the word held, to pass to
/// [`write_end`]. The caller must be the slot's only writer.
#[inline]
pub fn write_begin(seq: &AtomicU64) -> u64 {
    // Relaxed: only this writer stores to the word, so it reads its own last store.
    let s = seq.load(Ordering::Relaxed) & !1;
    seq.store(s.wrapping_add(1), Ordering::Relaxed);
    // Release fence: partners with the Acquire fence in `read_end`. It orders the odd store
    // above before every data store that follows.
    fence(Ordering::Release);
    s
}

/// Ends a write begun by [`write_begin`]: publishes the slot's new contents.
#[inline]
pub fn write_end(seq: &AtomicU64, s: u64) {
    // Release: partners with the Acquire load in `read_begin`; a reader that sees `s+2`
    // sees every data store of this write.
    seq.store(s.wrapping_add(2), Ordering::Release);
}

/// Starts a read. `None` if a write is in progress.
#[inline]
pub fn read_begin(seq: &AtomicU64) -> Option<u64> {
    // Acquire: partners with the Release store in `write_end`.
    let s1 = seq.load(Ordering::Acquire);
    (s1 & 1 == 0).then_some(s1)
}

/// Ends a read begun by [`read_begin`]: whether the words copied in between form one
/// consistent, completed write.
#[inline]
#[must_use]
pub fn read_end(seq: &AtomicU64, s1: u64) -> bool {
    // Acquire fence: partners with the Release fence in `write_begin`. Any data word the
    // copy saw from a newer write makes that write's odd store visible to the load below.
    fence(Ordering::Acquire);
    // Relaxed: ordered after the copy by the fence above (not by an Acquire on this load).
    seq.load(Ordering::Relaxed) == s1
}

/// Marks a slot whose writer died mid-write (its word is odd) as settled again. Only for a
/// writer that holds the segment's lock; returns the new even value.
#[inline]
pub fn repair(seq: &AtomicU64) -> u64 {
    let s = seq.load(Ordering::Relaxed);
    if s & 1 == 1 {
        // Release: partners with `read_begin`'s Acquire, like `write_end`.
        seq.store(s.wrapping_add(1), Ordering::Release);
        s.wrapping_add(1)
    } else {
        s
    }
}

/// What [`read_validated`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Validated<R> {
    /// A write was in progress when the read began; the closure did not run.
    Busy,
    /// The slot was written while the closure ran: what it computed was dropped.
    Changed,
    /// No write touched the slot while the closure ran: `r` was computed from the one
    /// completed write that left the word at `s1`.
    Valid {
        /// The even word value the read began (and ended) with.
        s1: u64,
        /// What the closure computed.
        r: R,
    },
}

/// The in-place read: runs `f` (which reads the slot's words with Relaxed loads and computes
/// whatever it needs straight from them) between [`read_begin`] and [`read_end`], and hands
/// its result back only if the slot was not written meanwhile. A result computed from a torn
/// slot is dropped here, never returned.
#[inline]
pub fn read_validated<R>(seq: &AtomicU64, f: impl FnOnce() -> R) -> Validated<R> {
    let Some(s1) = read_begin(seq) else {
        return Validated::Busy;
    };
    let r = f();
    if read_end(seq, s1) {
        Validated::Valid { s1, r }
    } else {
        Validated::Changed
    }
}
