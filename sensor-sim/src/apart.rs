//! Keeps a renderer's worker threads off the core its calling thread is running on.
//!
//! A frame is handed to sleeping workers at its capture instant, while the calling thread
//! starts on its own share at once. A kernel that packs runnable threads onto as few cores
//! as it can (virtual machines are often set up that way, this project's CI guests among
//! them) then wakes a worker on the caller's core, busy rendering, where it waits for a
//! time slice or for the balancer (measured: 1.3 ms on average and up to 4.4 ms after an
//! idle gap, against 0.06 ms back to back) while the other core idles. So before each
//! hand-off the caller takes its current core out of its workers' affinity, and a woken
//! worker goes to another core. A scheduler that spreads threads anyway does the same
//! without being told, so elsewhere this changes nothing.
//!
//! Cost: one `sched_getcpu` per hand-off, and one `sched_setaffinity` per worker when the
//! caller has moved. Where affinity cannot be read or set (one allowed core, a filtered
//! system call) it is left alone: nothing depends on it but timing, never the bytes.

use rustix::process::Pid;
use rustix::thread::{gettid, sched_getaffinity, sched_getcpu, sched_setaffinity, CpuSet};

/// The calling thread's workers and the cores they may use.
#[derive(Debug, Default)]
pub(crate) struct KeepApart {
    /// The cores this process may use, if there are at least two.
    allowed: Option<CpuSet>,
    workers: Vec<Pid>,
    /// The caller's core the workers were last kept off.
    last: Option<usize>,
}

impl KeepApart {
    /// Workers `workers` (their thread ids, [`worker_id`]), kept off the caller's core from
    /// the first [`before_handoff`](Self::before_handoff) on.
    pub(crate) fn new(workers: Vec<Pid>) -> Self {
        let allowed = sched_getaffinity(None).ok().filter(|s| s.count() >= 2);
        Self { allowed, workers, last: None }
    }

    /// Takes the calling thread's current core out of the workers' affinity, if it is not
    /// already out (the caller moved since the last hand-off, or this is the first).
    pub(crate) fn before_handoff(&mut self) {
        let Some(allowed) = &self.allowed else { return };
        if self.workers.is_empty() {
            return;
        }
        let cpu = sched_getcpu();
        if self.last == Some(cpu) {
            return;
        }
        self.last = Some(cpu);
        let mut others = *allowed;
        others.unset(cpu);
        if others.count() == 0 {
            return;
        }
        for &tid in &self.workers {
            // A worker that has exited, or a filtered call: it keeps the affinity it has.
            let _ = sched_setaffinity(Some(tid), &others);
        }
    }
}

/// The calling thread's id, for [`KeepApart::new`] (a worker sends it when it starts).
pub(crate) fn worker_id() -> Pid {
    gettid()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;

    #[test]
    fn a_worker_is_kept_off_the_callers_core() {
        let Some(allowed) = sched_getaffinity(None).ok().filter(|s| s.count() >= 2) else {
            eprintln!("skipped: fewer than two cores allowed here");
            return;
        };
        let (tid_tx, tid_rx) = channel();
        let (stop_tx, stop_rx) = channel::<()>();
        let worker = std::thread::spawn(move || {
            tid_tx.send(worker_id()).unwrap();
            let _ = stop_rx.recv();
        });
        let tid = tid_rx.recv().unwrap();
        // Pin the caller, so that "its core" is one answer for the whole test.
        let caller = sched_getcpu();
        let mut pinned = CpuSet::new();
        pinned.set(caller);
        let before = sched_getaffinity(None).unwrap();
        sched_setaffinity(None, &pinned).unwrap();
        let mut apart = KeepApart::new(vec![tid]);
        apart.allowed = Some(allowed);
        apart.before_handoff();
        let got = sched_getaffinity(Some(tid)).unwrap();
        sched_setaffinity(None, &before).unwrap();
        drop(stop_tx);
        worker.join().unwrap();
        assert!(!got.is_set(caller), "the worker may still run on the caller's core {caller}");
        assert!(got.count() >= 1 && got.count() + 1 == allowed.count(), "every other core stays");
    }
}
