//! One entry of the SIGBUS guard's table of mapped ranges ([`crate::sigbus`]), apart from the
//! handler so that the loom model checks it: a thread claims a free entry, sets its range under
//! a seqlock and releases it; the handler, on any thread, asks whether an address is inside.

use crate::seqlock;
use crate::sync::{AtomicU64, Ordering};

/// A registered address range.
#[derive(Debug)]
pub struct Range {
    /// Seqlock word over `start` and `len`.
    version: AtomicU64,
    start: AtomicU64,
    len: AtomicU64,
    /// 1 while a mapping owns the entry.
    used: AtomicU64,
    /// 1 once a SIGBUS inside the range was absorbed.
    hit: AtomicU64,
}

/// A free entry's fields, for the const (std) and the loom constructor alike.
macro_rules! free {
    () => {
        Range {
            version: AtomicU64::new(0),
            start: AtomicU64::new(0),
            len: AtomicU64::new(0),
            used: AtomicU64::new(0),
            hit: AtomicU64::new(0),
        }
    };
}

impl Default for Range {
    fn default() -> Self {
        Self::new()
    }
}

impl Range {
    /// A free entry (const, for the static table).
    #[cfg(not(loom))]
    #[must_use]
    pub const fn new() -> Self {
        free!()
    }

    /// A free entry (loom's atomics have no const constructor).
    #[cfg(loom)]
    #[must_use]
    pub fn new() -> Self {
        free!()
    }

    /// Claims the entry for `[start, start + len)`; `false` if another mapping owns it.
    pub fn claim(&self, start: usize, len: usize) -> bool {
        // Acquire: partners with the Release store in `release`: the previous owner's last
        // `set` happens before ours, so the seqlock word keeps a single writer at a time (and
        // never runs backwards, which would let a reader pair a start and a length that
        // were never set together).
        if self.used.compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed).is_err() {
            return false;
        }
        // Relaxed: only the owner reads `hit`, after its own accesses fault.
        self.hit.store(0, Ordering::Relaxed);
        self.set(start, len);
        true
    }

    /// Empties the entry and frees it for the next mapping. Only its owner calls this.
    pub fn release(&self) {
        self.set(0, 0);
        // Release: partners with the Acquire of the compare_exchange in `claim`.
        self.used.store(0, Ordering::Release);
    }

    fn set(&self, start: usize, len: usize) {
        let s = seqlock::write_begin(&self.version);
        self.start.store(start as u64, Ordering::Relaxed);
        self.len.store(len as u64, Ordering::Relaxed);
        seqlock::write_end(&self.version, s);
    }

    /// Whether `addr` lies in the range, read consistently (a range being changed does not).
    #[must_use]
    pub fn contains(&self, addr: usize) -> bool {
        let Some(s1) = seqlock::read_begin(&self.version) else {
            return false;
        };
        let (start, len) = (self.start.load(Ordering::Relaxed), self.len.load(Ordering::Relaxed));
        seqlock::read_end(&self.version, s1) && len != 0 && (addr as u64).wrapping_sub(start) < len
    }

    /// The range as its owner last set it (`(0, 0)` when free). Only for its owner.
    #[must_use]
    pub fn bounds(&self) -> (u64, u64) {
        (self.start.load(Ordering::Relaxed), self.len.load(Ordering::Relaxed))
    }

    /// Records that a SIGBUS inside the range was absorbed.
    pub fn mark_hit(&self) {
        // Relaxed: the flag publishes no data (the zero page it stands for is read through
        // atomics whose values are meaningless anyway); the faulting thread sees its own
        // handler's store in program order, and other threads only need to see it eventually.
        self.hit.store(1, Ordering::Relaxed);
    }

    /// Whether a SIGBUS inside the range was absorbed.
    #[must_use]
    pub fn hit(&self) -> bool {
        // Relaxed: see `mark_hit`.
        self.hit.load(Ordering::Relaxed) == 1
    }
}
