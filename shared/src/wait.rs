//! Blocking until a writer publishes: a bounded spin, then a futex on the segment's
//! NOTIFY word, so that an idle reader burns no CPU.
//!
//! The futex is process-shared (no `FUTEX_PRIVATE_FLAG`): the word lives in a file mapping.
//! Waking is cheap when nobody waits: the writer reads WAITERS and skips the system call.
//!
//! ```text
//! writer (publish)                          reader (park)
//! cursor := seq+1 (Release)                 waiters += 1
//! fence(SeqCst)  ◄──── store/load ────►     fence(SeqCst)
//! if waiters > 0:                           n = notify (Acquire)
//!     notify += 1 (Release)                 if cursor moved: done
//!     futex_wake(notify)                    futex_wait(notify, n, timeout)
//!                                           waiters -= 1
//! ```
//! The two SeqCst fences make it impossible for the writer to read `waiters == 0` while the
//! reader reads the old cursor: one of them sees the other's store.

use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// Spins before parking. A commit usually lands within a few microseconds of the previous
/// one being read only under load; an idle stream parks quickly.
const SPIN_ROUNDS: u32 = 64;

/// Publishes `next` as the write cursor and wakes parked readers.
#[inline]
pub fn publish(cursor: &AtomicU64, notify: &AtomicU32, waiters: &AtomicU64, next: u64) {
    // Release: partners with the Acquire loads of the cursor in readers (`RingReader` and
    // `park` below): a reader that sees `next` sees the committed slot.
    cursor.store(next, Ordering::Release);
    // SeqCst fence: partners with the SeqCst fence in `park` (Dekker-style).
    fence(Ordering::SeqCst);
    if waiters.load(Ordering::Relaxed) > 0 {
        // Release: partners with the Acquire load of `notify` in `park`.
        notify.fetch_add(1, Ordering::Release);
        // Errors (EFAULT on a truncated mapping) leave readers to their timeout.
        let _ = rustix::thread::futex::wake(notify, rustix::thread::futex::Flags::empty(), u32::MAX);
    }
}

/// Waits until `cursor` differs from `seen` or `timeout` passes. Returns whether it moved.
pub fn park(
    cursor: &AtomicU64,
    notify: &AtomicU32,
    waiters: &AtomicU64,
    seen: u64,
    timeout: Duration,
) -> bool {
    for round in 0..SPIN_ROUNDS {
        // Acquire: partners with the Release store in `publish`.
        if cursor.load(Ordering::Acquire) != seen {
            return true;
        }
        if round < SPIN_ROUNDS / 2 {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
    let deadline = std::time::Instant::now() + timeout;
    waiters.fetch_add(1, Ordering::Relaxed);
    // SeqCst fence: partners with the SeqCst fence in `publish`.
    fence(Ordering::SeqCst);
    let moved = loop {
        // Acquire: partners with the Release fetch_add in `publish`.
        let n = notify.load(Ordering::Acquire);
        // Acquire: partners with the Release store in `publish`.
        if cursor.load(Ordering::Acquire) != seen {
            break true;
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            break false;
        }
        let ts = rustix::time::Timespec {
            tv_sec: i64::try_from(left.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(left.subsec_nanos()),
        };
        // EAGAIN (the word changed), EINTR and ETIMEDOUT all lead back to the checks above.
        let _ = rustix::thread::futex::wait(notify, rustix::thread::futex::Flags::empty(), n, Some(&ts));
    };
    waiters.fetch_sub(1, Ordering::Relaxed);
    moved
}
