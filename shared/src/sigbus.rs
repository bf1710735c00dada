//! Survives truncation of a mapped segment: the SIGBUS guard.
//!
//! Another process (of the same uid: attach refuses anyone else's file) can shrink a segment
//! file while we have it mapped. Touching a page past the new end raises SIGBUS, which would
//! kill a reader that did nothing wrong. Every [`crate::mapping::Mapping`] registers its
//! address range here. A process-wide SIGBUS handler checks the faulting address: inside a
//! registered range, it maps a private zero page over the faulting page and flags the range,
//! so the access completes (reading zeroes) and the owner sees [`Guard::hit`] and gives the
//! segment up. Outside every range, it restores the previous disposition and returns, so
//! the fault recurs and is handled as it would have been without us.
//!
//! The handler is async-signal-safe: it reads and writes atomics in a static table and calls
//! `mmap`, a plain system call.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Once;

const MAX_RANGES: usize = 128;

struct Range {
    start: AtomicUsize,
    len: AtomicUsize,
    hit: AtomicBool,
    used: AtomicBool,
}

#[allow(clippy::declare_interior_mutable_const)] // Only used to initialise the table below.
const EMPTY: Range = Range {
    start: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    hit: AtomicBool::new(false),
    used: AtomicBool::new(false),
};

static RANGES: [Range; MAX_RANGES] = [EMPTY; MAX_RANGES];
static INSTALL: Once = Once::new();

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
        for (index, r) in RANGES.iter().enumerate() {
            if r.used.compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
                r.hit.store(false, Ordering::Relaxed);
                r.start.store(start, Ordering::Relaxed);
                // Release: partners with the handler's Acquire load of `len`; a handler that
                // sees the length sees the start.
                r.len.store(len, Ordering::Release);
                return Some(Self { index });
            }
        }
        None
    }

    /// Whether a SIGBUS was absorbed inside this range.
    #[must_use]
    pub fn hit(&self) -> bool {
        // Acquire: partners with the handler's Release store of `hit`.
        RANGES[self.index].hit.load(Ordering::Acquire)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let r = &RANGES[self.index];
        // Relaxed is enough: the mapping is unmapped after this, by the same thread.
        r.len.store(0, Ordering::Relaxed);
        // Release: partners with the Acquire of the compare_exchange in `register`.
        r.used.store(false, Ordering::Release);
    }
}

static PREVIOUS: AtomicUsize = AtomicUsize::new(0);
static mut PREVIOUS_ACTION: Option<libc::sigaction> = None;

fn install() {
    // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value; we fill in the
    // handler and flags. `sigaction` is called once (guarded by `INSTALL`) with valid
    // pointers; the previous action is stored before any SIGBUS can reach our handler
    // because the handler only reads it after a fault, which follows this call.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = handler as *const () as usize;
        action.sa_flags = libc::SA_SIGINFO | libc::SA_NODEFER;
        libc::sigemptyset(&mut action.sa_mask);
        let mut old: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(libc::SIGBUS, &action, &mut old) == 0 {
            PREVIOUS_ACTION = Some(old);
            // Release: partners with the handler's Acquire; the handler reads
            // PREVIOUS_ACTION only after seeing this flag.
            PREVIOUS.store(1, Ordering::Release);
        }
    }
}

extern "C" fn handler(_sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers; `si_addr` is the
    // faulting address for SIGBUS.
    let addr = unsafe { (*info).si_addr() } as usize;
    for r in &RANGES {
        // Acquire: partners with the Release store of `len` in `register`.
        let len = r.len.load(Ordering::Acquire);
        let start = r.start.load(Ordering::Relaxed);
        if len != 0 && addr >= start && addr < start + len {
            let page = 4096usize;
            let at = addr & !(page - 1);
            // SAFETY: `at` is a page-aligned address inside a mapping we own (registered by
            // a live Mapping); MAP_FIXED replaces just that page of it with a private zero
            // page, so the faulting access can complete. Nothing else refers to that page
            // as anything but atomics whose values are now meaningless, which `hit` reports.
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
                // Release: partners with the Acquire load in `Guard::hit`.
                r.hit.store(true, Ordering::Release);
                return;
            }
        }
    }
    // Not ours: put the previous disposition back and return; the access faults again and
    // gets the behaviour it would have had without this guard.
    // Acquire: partners with the Release store in `install`.
    if PREVIOUS.load(Ordering::Acquire) == 1 {
        // SAFETY: PREVIOUS_ACTION was written once before PREVIOUS was set and is never
        // written again; restoring a previous sigaction is async-signal-safe.
        unsafe {
            if let Some(old) = *std::ptr::addr_of!(PREVIOUS_ACTION) {
                libc::sigaction(libc::SIGBUS, &old, std::ptr::null_mut());
                return;
            }
        }
    }
    // SAFETY: resetting to the default action is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGBUS, libc::SIG_DFL);
    }
}
