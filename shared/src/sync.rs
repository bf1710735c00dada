//! The atomics the seqlock and wake-up protocols are written against: std's, or loom's
//! under `--cfg loom` so that the loom model checks exactly the code the rings run.

#[cfg(loom)]
pub use loom::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
#[cfg(not(loom))]
pub use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
