//! Survives truncation of a mapped segment: the SIGBUS guard.
//!
//! Another process (of the same uid: attach refuses anyone else's file) can shrink a segment
//! file while we have it mapped. Touching a page past the new end raises SIGBUS, which would
//! kill a reader that did nothing wrong. Every [`crate::mapping::Mapping`] registers its
//! address range here. A process-wide SIGBUS handler checks the faulting address: inside a
//! registered range, it maps a private zero page over the faulting page and flags the range,
//! so the access completes (reading zeroes) and the owner sees [`Guard::hit`] and gives the
//! segment up. Any other SIGBUS goes to the disposition that was in place before ours, every
//! time: a previous handler is called; the default action is carried out.
//!
//! The handler is async-signal-safe: it reads and writes atomics in a static table and calls
//! `mmap`, `sigaction` and `raise`, plain system calls. Each entry's `(start, len)` pair is
//! written under a seqlock ([`crate::registry`]), so the handler never pairs one range's start
//! with another's length while a thread registers or drops a mapping.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Once, OnceLock};

use crate::registry::Range;

const MAX_RANGES: usize = 128;

#[allow(clippy::declare_interior_mutable_const)] // Only used to initialise the table below.
const EMPTY: Range = Range::new();

static RANGES: [Range; MAX_RANGES] = [EMPTY; MAX_RANGES];
static INSTALL: Once = Once::new();
/// The system's page size, set before the handler is installed.
static PAGE_SIZE: AtomicUsize = AtomicUsize::new(0);

/// One registered address range; unregisters on drop.
#[derive(Debug)]
pub struct Guard {
    index: usize,
}

impl Guard {
    /// Registers `[start, start + len)` and installs the handler on first use. `None` if the
    /// table of ranges is full.
    #[must_use]
    pub fn register(start: usize, len: usize) -> Option<Self> {
        INSTALL.call_once(install);
        let index = RANGES.iter().position(|r| r.claim(start, len))?;
        Some(Self { index })
    }

    /// Whether a SIGBUS was absorbed inside this range.
    #[must_use]
    pub fn hit(&self) -> bool {
        RANGES[self.index].hit()
    }

    /// Whether `addr` lies in a registered range (for tests).
    #[must_use]
    pub fn registered(addr: usize) -> bool {
        RANGES.iter().any(|r| r.contains(addr))
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let r = &RANGES[self.index];
        #[cfg(debug_assertions)]
        {
            let (start, len) = r.bounds();
            // SAFETY: msync with MS_ASYNC only asks whether the range is mapped (ENOMEM if
            // not); it neither reads nor writes the memory.
            let mapped =
                unsafe { libc::msync(start as usize as *mut libc::c_void, len as usize, libc::MS_ASYNC) };
            debug_assert!(mapped == 0, "a SIGBUS guard outlived its mapping (drop order)");
        }
        r.release();
    }
}

/// The disposition ours replaced. `OnceLock::get` is a lock-free load, safe in a handler.
static PREVIOUS: OnceLock<libc::sigaction> = OnceLock::new();

fn install() {
    PAGE_SIZE.store(rustix::param::page_size(), Ordering::Relaxed);
    // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value; we fill in the
    // handler and flags. `sigaction` is called once (guarded by `INSTALL`) with valid
    // pointers.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = handler as *const () as usize;
        action.sa_flags = libc::SA_SIGINFO | libc::SA_NODEFER;
        libc::sigemptyset(&mut action.sa_mask);
        let mut old: libc::sigaction = std::mem::zeroed();
        // The previous action is recorded before ours goes in: a SIGBUS between the two
        // calls reaches the previous disposition directly.
        if libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut old) == 0 {
            let _ = PREVIOUS.set(old);
            libc::sigaction(libc::SIGBUS, &action, std::ptr::null_mut());
        }
    }
}

extern "C" fn handler(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers; `si_addr` is the
    // faulting address for a SIGBUS the kernel raised (for a sent one it is meaningless, and
    // the range check below treats it as foreign unless it happens to match).
    let (addr, code) = unsafe { ((*info).si_addr() as usize, (*info).si_code) };
    // A signal sent by a process (si_code <= 0) is never a fault of ours.
    if code > 0 {
        for r in &RANGES {
            if r.contains(addr) {
                let page = PAGE_SIZE.load(Ordering::Relaxed).max(1);
                let at = addr & !(page - 1);
                // SAFETY: `at` is a page-aligned address inside a mapping we own (registered
                // by a live Mapping); MAP_FIXED replaces just that page of it with a private
                // zero page, so the faulting access can complete. Nothing else refers to that
                // page as anything but atomics whose values are now meaningless, which `hit`
                // reports.
                let p = unsafe {
                    libc::mmap(
                        at as *mut libc::c_void,
                        page,
                        libc::PROT_READ | libc::PROT_WRITE,
                        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                        -1,
                        0,
                    )
                };
                if p != libc::MAP_FAILED {
                    r.mark_hit();
                    return;
                }
            }
        }
    }
    chain(sig, info, ctx, code > 0);
}

/// Hands a SIGBUS that is not ours to the disposition ours replaced, as if we were not there.
fn chain(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void, fault: bool) {
    let old = PREVIOUS.get().copied();
    let action = old.map_or(libc::SIG_DFL, |a| a.sa_sigaction);
    let siginfo = old.is_some_and(|a| a.sa_flags & libc::SA_SIGINFO != 0);
    match action {
        libc::SIG_IGN if !fault => {}
        libc::SIG_DFL | libc::SIG_IGN => {
            // SAFETY: `signal` and `raise` are async-signal-safe. With the default action
            // back, a fault recurs when we return and a sent signal is raised again: either
            // way the default action (termination) happens, as it would have without us.
            unsafe {
                libc::signal(libc::SIGBUS, libc::SIG_DFL);
                if !fault {
                    libc::raise(libc::SIGBUS);
                }
            }
        }
        f if siginfo => {
            // SAFETY: the previous action was installed with SA_SIGINFO, so `f` is a
            // three-argument handler; it gets exactly what the kernel gave us.
            let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                unsafe { std::mem::transmute(f) };
            f(sig, info, ctx);
        }
        f => {
            // SAFETY: without SA_SIGINFO the previous action is a one-argument handler.
            let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(f) };
            f(sig);
        }
    }
}
