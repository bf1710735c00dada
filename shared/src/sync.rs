//! The atomics the seqlock and wake-up protocols are written against: std's, or loom's
//! under `--cfg loom` so that the loom model checks exactly the code the rings run.

#[cfg(loom)]
pub use loom::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
#[cfg(not(loom))]
pub use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

/// Stores `value` into `word` as the word that says "everything stored before is complete"
/// (e.g. the layout version, written last by a segment's creator).
#[inline]
pub fn publish(word: &AtomicU64, value: u64) {
    // Release: partners with the Acquire load in `observe`.
    word.store(value, Ordering::Release);
}

/// Loads a word stored by [`publish`] (or by another Release store, such as the write cursor):
/// a reader that sees the value sees everything stored before it.
#[inline]
#[must_use]
pub fn observe(word: &AtomicU64) -> u64 {
    // Acquire: partners with the Release store in `publish` (the layout version) and with
    // the Release fence of `seqlock::write_begin` that precedes the cursor store in
    // `wait::publish_with` (the write cursor).
    word.load(Ordering::Acquire)
}
