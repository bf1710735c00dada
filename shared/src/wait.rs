//! Blocking until a writer publishes: a bounded spin, then a futex on the segment's
//! NOTIFY word, so that an idle reader burns no CPU.
//!
//! The futex is process-shared (no `FUTEX_PRIVATE_FLAG`): the word lives in a file mapping.
//! Waking is cheap when nobody waits: the writer reads WAITERS and skips the system call.
//!
//! ```text
//! writer (publish)                          reader (park)
//! cursor := seq+1 (Relaxed)                 waiters += 1
//! fence(SeqCst)  ◄──── store/load ────►     fence(SeqCst)
//! if waiters > 0:                           n = notify (Acquire)
//!     notify += 1 (Relaxed)                 if cursor moved (Relaxed): done
//!     futex_wake(notify, ALL)               futex_wait(notify, n, timeout)
//!                                           waiters -= 1
//! ```
//! The two SeqCst fences make it impossible for the writer to read `waiters == 0` while the
//! reader reads the old cursor: one of them sees the other's store. [`park_any_with`] is the
//! same protocol on several rings at once (one thread serving a camera and a lidar), asleep
//! on all their notify words in one `futex_waitv`. The protocol itself
//! ([`publish_with`], [`park_with`]) takes the futex calls as closures, so that the loom
//! model (`tests/loom_seqlock.rs`) runs it against a model of the futex.
//!
//! A writer about to copy a long frame in ([`ANNOUNCE_MIN`] bytes in one `push`) wakes
//! parked readers at the start of the copy ([`announce`]) rather than only at its commit: a
//! woken reader that finds no new frame yields until the commit for a bounded while instead
//! of sleeping again, so the wake-up's latency overlaps the copy. To the protocol an
//! announce is a spurious wake; the model needs nothing new.

use crate::sync::{fence, AtomicU32, AtomicU64, Ordering};

/// The futex wake count that wakes every waiter. The kernel reads the count as an `int`:
/// `u32::MAX` would be −1, and wakes one.
pub const WAKE_ALL: u32 = i32::MAX as u32;

/// Publishes `next` as the write cursor; if readers are parked, bumps `notify` and calls
/// `wake(notify, WAKE_ALL)`.
#[inline]
pub fn publish_with(
    cursor: &AtomicU64,
    notify: &AtomicU32,
    waiters: &AtomicU64,
    next: u64,
    wake: impl FnOnce(&AtomicU32, u32),
) {
    // Relaxed: the Release fence in `seqlock::write_begin` of this frame's slot precedes this
    // store, so a reader whose Acquire load (`sync::observe` in `RingReader::cursor`) sees
    // `next` sees at least the slot's odd sequence word: the write begun, never an older
    // frame. If the closing even word is not visible yet, the seqlock says "busy" and the
    // reader retries (the loom model checks this: `the_cursor_announces_only_frames...`).
    cursor.store(next, Ordering::Relaxed);
    // SeqCst fence: partners with the SeqCst fence in `park_with` (Dekker-style).
    fence(Ordering::SeqCst);
    // Relaxed: ordered by the fence above; a waiter counted after it sees the cursor.
    if waiters.load(Ordering::Relaxed) > 0 {
        // Relaxed: the SeqCst fence above, which follows the cursor store, is a release fence
        // for this bump and partners with the Acquire load of `notify` in `park_with`: a
        // reader that sees the bump (say its futex wait failed with EAGAIN) then sees the new
        // cursor, instead of sleeping on the bumped value with the old cursor in hand.
        notify.fetch_add(1, Ordering::Relaxed);
        wake(notify, WAKE_ALL);
    }
}

/// The parking half of the protocol: counts itself in `waiters`, then, until `cursor` differs
/// from `seen`, calls `sleep(notify, n)` (a futex wait on `notify` while it still holds `n`).
/// `sleep` returns `false` to give up (a timeout). Returns whether the cursor moved. It is
/// [`park_any_with`] on one ring.
pub fn park_with(
    cursor: &AtomicU64,
    notify: &AtomicU32,
    waiters: &AtomicU64,
    seen: u64,
    mut sleep: impl FnMut(&AtomicU32, u32) -> bool,
) -> bool {
    park_any_with(&[Watched { cursor, notify, waiters, seen }], |n| sleep(notify, n[0]))
}

/// One ring's words, for a wait on several rings at once ([`park_any_with`]).
#[derive(Clone, Copy, Debug)]
pub struct Watched<'a> {
    /// The ring's write cursor.
    pub cursor: &'a AtomicU64,
    /// Its futex word.
    pub notify: &'a AtomicU32,
    /// Its count of parked readers.
    pub waiters: &'a AtomicU64,
    /// The cursor the waiter has seen: a frame is new while the cursor differs.
    pub seen: u64,
}

impl Watched<'_> {
    fn moved(&self) -> bool {
        // Relaxed: in `park_any_with`, on the first round the SeqCst fences order this load
        // after the writer's store or the writer's WAITERS load after our increment; on later
        // rounds the Acquire load of `notify` does (a bumped `notify` comes after the cursor
        // store). The answer is only a hint: a woken reader reads the cursor again with
        // Acquire (`RingReader::cursor`) before it touches a slot.
        self.cursor.load(Ordering::Relaxed) != self.seen
    }
}

/// [`park_with`] on several rings at once: counts itself in every ring's `waiters`, then,
/// until some ring's cursor moved, calls `sleep(n)` with every ring's `notify` value (a
/// futex wait on all of those words at once, woken by any). `sleep` returns `false` to give
/// up. Returns whether a cursor moved.
///
/// Each ring's writer runs [`publish_with`] unchanged: one SeqCst fence after all the
/// increments partners with every writer's fence, so for each ring either its writer sees the
/// waiter counted, or the waiter sees its cursor moved (the argument of [`park_with`], once
/// per ring).
pub fn park_any_with<const N: usize>(
    rings: &[Watched<'_>; N],
    mut sleep: impl FnMut(&[u32; N]) -> bool,
) -> bool {
    for r in rings {
        // Relaxed: ordered before the cursor loads below by the SeqCst fence.
        r.waiters.fetch_add(1, Ordering::Relaxed);
    }
    // SeqCst fence: partners with the SeqCst fence in each ring's `publish_with`.
    fence(Ordering::SeqCst);
    let moved = loop {
        // Acquire: partners with the SeqCst (so release) fence in `publish_with` that precedes
        // the bump of that ring's `notify` (and the Release bump of `wake_parked`).
        let n = rings.each_ref().map(|r| r.notify.load(Ordering::Acquire));
        if rings.iter().any(Watched::moved) {
            break true;
        }
        if !sleep(&n) {
            break false;
        }
    };
    for r in rings {
        // Relaxed: a stale count only costs a writer one needless wake.
        r.waiters.fetch_sub(1, Ordering::Relaxed);
    }
    moved
}

/// `pause` spins before a wait yields: the next frame of a stream read as fast as it is
/// written is often a fraction of a microsecond away.
#[cfg(not(loom))]
const SPIN_PAUSES: u32 = 32;

/// How long a wait may yield before it parks: a back-to-back stream's next frame comes
/// within microseconds (a 256 KiB frame is copied in in 15 µs); a periodic stream's (a 30 Hz
/// camera) only after milliseconds. The window is time, not a count of yields: a
/// `sched_yield` on an idle core returns in anything from 0.25 to 1 µs, and a count that
/// covered a frame's copy on one machine closed the window before it on another (the reader
/// then slept, and a futex wake costs 30–40 µs in a guest).
#[cfg(not(loom))]
const YIELD_WINDOW: std::time::Duration = std::time::Duration::from_micros(50);

/// Whether yielding before parking has paid off lately on this thread: the yield half of
/// the spin costs a context switch per round on a busy machine, which a stream whose frames
/// are milliseconds apart (a 30 Hz camera) pays on every frame for nothing. A thread whose
/// yields found no frame [`YieldCredit::START`] times running only spins (pause) before it
/// parks, and tries yielding again every [`YieldCredit::PROBE`]-th wait; one hit restores
/// full credit, so back-to-back streams (`--max-rate`, the transport bench) keep yielding.
#[cfg(not(loom))]
#[derive(Clone, Copy)]
struct YieldCredit {
    credit: u8,
    waits: u8,
}

#[cfg(not(loom))]
thread_local! {
    static YIELD_CREDIT: std::cell::Cell<YieldCredit> =
        const { std::cell::Cell::new(YieldCredit { credit: YieldCredit::START, waits: 0 }) };
}

#[cfg(not(loom))]
impl YieldCredit {
    const START: u8 = 8;
    const PROBE: u8 = 16;

    /// Whether this wait may yield; counts the wait.
    fn may_yield() -> bool {
        YIELD_CREDIT.with(|c| {
            let mut v = c.get();
            v.waits = v.waits.wrapping_add(1);
            c.set(v);
            v.credit > 0 || v.waits % Self::PROBE == 0
        })
    }

    /// What the yields of this wait found: a frame (`true`) or none.
    fn record(hit: bool) {
        YIELD_CREDIT.with(|c| {
            let mut v = c.get();
            v.credit = if hit { Self::START } else { v.credit.saturating_sub(1) };
            c.set(v);
        });
    }
}

/// Publishes `next` as the write cursor and wakes every parked reader.
#[cfg(not(loom))]
#[inline]
pub fn publish(cursor: &AtomicU64, notify: &AtomicU32, waiters: &AtomicU64, next: u64) {
    publish_with(cursor, notify, waiters, next, wake);
}

/// Wakes up to `count` threads waiting on `word`. Errors (EFAULT on a truncated mapping)
/// leave waiters to their timeout.
#[cfg(not(loom))]
fn wake(word: &AtomicU32, count: u32) {
    let _ = rustix::thread::futex::wake(word, rustix::thread::futex::Flags::empty(), count);
}

/// Wakes every thread parked on `notify` without publishing anything: each looks at its
/// `give_up` ([`park`]) and, if that says go on, parks again (after a follow: at most a
/// short while of yields, as after an [`announce`]). For a reader's own
/// process to end its readers' waits (a stop) without a timeout to poll with.
///
/// The bump first closes the window between a waiter's last `give_up` and its sleep: a
/// waiter that read `notify` before the bump finds it changed when it goes to sleep (the
/// futex wait returns at once) and asks `give_up` again.
#[cfg(not(loom))]
pub fn wake_parked(notify: &AtomicU32) {
    wake_parked_with(notify, wake);
}

/// [`wake_parked`] with the futex wake as a closure, for the loom model.
pub fn wake_parked_with(notify: &AtomicU32, wake: impl FnOnce(&AtomicU32, u32)) {
    // Release: partners with the Acquire load of `notify` in `park_any_with`; a waiter that
    // sees the bump sees what the caller stored before it (the stop its `give_up` reads).
    notify.fetch_add(1, Ordering::Release);
    wake(notify, WAKE_ALL);
}

/// The waits' first phase: `pause` spins, then (while yielding pays off on this thread)
/// yields for up to [`YIELD_WINDOW`]. Returns whether `moved` turned true meanwhile.
#[cfg(not(loom))]
fn settle(moved: impl Fn() -> bool) -> bool {
    for _ in 0..SPIN_PAUSES {
        if moved() {
            return true;
        }
        std::hint::spin_loop();
    }
    if YieldCredit::may_yield() {
        let start = std::time::Instant::now();
        let hit = yield_until(&moved, || false, start + YIELD_WINDOW);
        // Paid off only if the frame came soon: on a loaded machine one yield can hand the
        // core away for milliseconds, and a frame found after that is the stream's own
        // period, not a back-to-back stream (the futex would have done).
        YieldCredit::record(hit && start.elapsed() <= YIELD_WINDOW);
        return hit;
    }
    false
}

/// Yields until `moved` (checked first, then after each yield), `stop` says so or `until`
/// has passed. Returns whether `moved` turned true. The yield phase of [`settle`] and of
/// [`follow`].
#[cfg(not(loom))]
fn yield_until(moved: impl Fn() -> bool, stop: impl Fn() -> bool, until: std::time::Instant) -> bool {
    loop {
        if moved() {
            return true;
        }
        if stop() || std::time::Instant::now() > until {
            return false;
        }
        std::thread::yield_now();
    }
}

/// Waits until `cursor` differs from `seen`, `timeout` passes or `give_up` says so; it asks
/// `give_up` before each sleep and after each wake (a [`wake_parked`], a signal, a spurious
/// wake). Returns whether the cursor moved. It is [`park_any`] on one ring.
#[cfg(not(loom))]
pub fn park(
    cursor: &AtomicU64,
    notify: &AtomicU32,
    waiters: &AtomicU64,
    seen: u64,
    timeout: std::time::Duration,
    give_up: impl Fn() -> bool,
) -> bool {
    park_any(&[Watched { cursor, notify, waiters, seen }], timeout, give_up)
}

/// Whether `futex_waitv` (Linux 5.16) failed here with anything but a wait's own outcomes:
/// an older kernel (ENOSYS), a seccomp filter that refuses it, a truncated mapping (EFAULT).
/// Every later wait of the process then falls back to [`FALLBACK_SLICE`] sleeps on the first
/// ring: slower to notice a frame on another ring, never wrong.
#[cfg(not(loom))]
static NO_WAITV: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Without `futex_waitv`, a wait on several rings sleeps on the first one for at most this
/// long before it looks at the others: a frame on another ring waits up to this long. (A
/// wait on one ring is a plain futex wait, whole.)
#[cfg(not(loom))]
const FALLBACK_SLICE: std::time::Duration = std::time::Duration::from_millis(2);

/// [`park`] on several rings at once (at most 4): waits until some ring's cursor differs from
/// its `seen`, `timeout` passes or `give_up` says so (asked before each sleep and after each
/// wake). One thread then serves several rings with one wake-up per frame. Returns whether a
/// cursor moved.
#[cfg(not(loom))]
pub fn park_any<const N: usize>(
    rings: &[Watched<'_>; N],
    timeout: std::time::Duration,
    give_up: impl Fn() -> bool,
) -> bool {
    const { assert!(N >= 1 && N <= 4, "park_any waits on 1 to 4 rings") };
    if settle(|| rings.iter().any(Watched::moved)) {
        return true;
    }
    let deadline = std::time::Instant::now() + timeout;
    let moved = || rings.iter().any(Watched::moved);
    // Whether the last sleep ended by a wake (or a changed word), not a timeout or a signal.
    let mut woken = false;
    park_any_with(rings, |n| {
        // Woken, yet no cursor moved: most often a writer's `announce` of a long write, whose
        // commit is then a copy's time away. Following it saves the wake after the commit.
        if std::mem::take(&mut woken) && follow(moved, &give_up, deadline) {
            return true;
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() || give_up() {
            return false;
        }
        let slice = if N == 1 {
            left
        } else if NO_WAITV.load(Ordering::Relaxed) {
            left.min(FALLBACK_SLICE)
        } else if let Some(w) = sleep_on_all(rings, n, left) {
            woken = w;
            return true;
        } else {
            NO_WAITV.store(true, Ordering::Relaxed);
            left.min(FALLBACK_SLICE)
        };
        let ts = rustix::time::Timespec {
            tv_sec: i64::try_from(slice.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(slice.subsec_nanos()),
        };
        // EAGAIN (the word changed), EINTR and ETIMEDOUT all lead back to the checks.
        let slept = rustix::thread::futex::wait(
            rings[0].notify,
            rustix::thread::futex::Flags::empty(),
            n[0],
            Some(&ts),
        );
        woken = matches!(slept, Ok(()) | Err(rustix::io::Errno::AGAIN));
        true
    })
}

/// Appends (`push`) of at least this many bytes in one call are [`announce`]d: such a copy takes
/// several microseconds or more (tens in a guest from 1 MiB), as long as a futex wake's
/// system call or longer, so waking a parked reader at its start pays off.
pub const ANNOUNCE_MIN: usize = 256 * 1024;

/// How long a reader woken by an [`announce`] yields for the commit before it parks again:
/// longer than a 16 MiB copy takes, short enough that a writer which announces and then
/// takes its time (renders on) costs a reader at most this much CPU per frame.
#[cfg(not(loom))]
const FOLLOW_WINDOW: std::time::Duration = std::time::Duration::from_millis(2);

/// Waits of this process that followed a write after a wake that moved no cursor.
#[cfg(not(loom))]
static FOLLOWED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Wakes the readers parked on a ring whose writer is about to copy a long frame in, before
/// the copy rather than at its commit: a parked reader takes a wake-up's latency to run
/// again (30–40 µs in a guest), which then overlaps the copy, and it yields until the
/// commit instead of sleeping (at most a while: `FOLLOW_WINDOW`). Nothing is published: to
/// the protocol ([`park_with`]) this is a spurious wake, after which a reader checks the
/// cursor and waits again. A reader counted after the `waiters` load misses only the head
/// start: the commit's [`publish`] wakes it.
#[cfg(not(loom))]
pub fn announce(notify: &AtomicU32, waiters: &AtomicU64) {
    // Relaxed: a hint, as above; nothing is published through it.
    if waiters.load(Ordering::Relaxed) > 0 {
        // Relaxed: the bump carries nothing; it only makes a reader that read `notify` before
        // it and has not slept yet find the word changed (EAGAIN), which counts as a wake.
        // Being a read-modify-write, it continues the release sequence of a publish's bump.
        notify.fetch_add(1, Ordering::Relaxed);
        wake(notify, WAKE_ALL);
    }
}

/// How many waits of this process followed a write after a wake that moved no cursor (most
/// often an [`announce`]): what the announce does on the reader's side, counted for tests.
#[cfg(not(loom))]
#[must_use]
pub fn followed() -> u64 {
    FOLLOWED.load(Ordering::Relaxed)
}

/// After a wake that moved no cursor: yields until `moved`, `give_up` says stop, the
/// `deadline` or [`FOLLOW_WINDOW`] passes. Returns whether a cursor moved.
#[cfg(not(loom))]
fn follow(moved: impl Fn() -> bool, give_up: impl Fn() -> bool, deadline: std::time::Instant) -> bool {
    FOLLOWED.fetch_add(1, Ordering::Relaxed);
    yield_until(moved, give_up, deadline.min(std::time::Instant::now() + FOLLOW_WINDOW))
}

/// One `futex_waitv` on every ring's notify word while it holds `n`, for at most `left`.
/// Returns whether it was woken (or a word had changed), or `None` if the call is not
/// available here.
#[cfg(not(loom))]
fn sleep_on_all<const N: usize>(
    rings: &[Watched<'_>; N],
    n: &[u32; N],
    left: std::time::Duration,
) -> Option<bool> {
    use rustix::thread::futex;
    use rustix::time::{clock_gettime, ClockId, Timespec};
    let mut waits = [futex::Wait::new(); N];
    for ((w, r), &n) in waits.iter_mut().zip(rings).zip(n) {
        w.val = u64::from(n);
        w.uaddr = futex::WaitPtr::new(r.notify.as_ptr().cast());
        // Shared, not private: the words live in file mappings other processes wake.
        w.flags = futex::WaitFlags::SIZE_U32;
    }
    // The timeout is absolute, on the monotonic clock.
    let now = clock_gettime(ClockId::Monotonic);
    let nanos = i128::from(now.tv_sec) * 1_000_000_000
        + i128::from(now.tv_nsec)
        + i128::try_from(left.as_nanos()).unwrap_or(i128::from(i64::MAX));
    let at = Timespec {
        tv_sec: i64::try_from(nanos / 1_000_000_000).unwrap_or(i64::MAX),
        tv_nsec: i64::try_from(nanos % 1_000_000_000).unwrap_or(0),
    };
    // Woken, the word changed (EAGAIN), a signal, the timeout: back to the checks.
    match futex::waitv(&waits, futex::WaitvFlags::empty(), Some(&at), futex::ClockId::Monotonic) {
        Ok(_) | Err(rustix::io::Errno::AGAIN) => Some(true),
        Err(rustix::io::Errno::INTR | rustix::io::Errno::TIMEDOUT) => Some(false),
        Err(_) => None,
    }
}
