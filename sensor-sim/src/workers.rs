//! A renderer's persistent worker threads (the camera's band pool and the lidar's block
//! pool): started once, each fed jobs over its own channel, kept off the calling thread's
//! core at every hand-off ([`KeepApart`]), and joined when dropped.

use crate::apart::{worker_id, KeepApart};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::thread::JoinHandle;

/// The workers of one renderer (the calling thread is not one of them).
pub(crate) struct Workers<J> {
    jobs: Vec<Sender<J>>,
    handles: Vec<JoinHandle<()>>,
    apart: KeepApart,
}

impl<J> std::fmt::Debug for Workers<J> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workers").field("threads", &self.jobs.len()).finish_non_exhaustive()
    }
}

impl<J: Send + 'static> Workers<J> {
    /// Starts `n` threads named `{name}-1`, `{name}-2`, ..., thread `i` running `body()`'s
    /// loop over its jobs until the workers are dropped. A thread that cannot be started is
    /// left out (the frame is drawn by fewer threads; the bytes are the same).
    pub(crate) fn start<F>(n: usize, name: &str, mut body: impl FnMut() -> F) -> Self
    where
        F: FnOnce(Receiver<J>) + Send + 'static,
    {
        let (mut jobs, mut handles) = (Vec::new(), Vec::new());
        let (tid_tx, tid_rx) = channel();
        for i in 0..n {
            let (job_tx, job_rx) = channel();
            let (work, tid_tx) = (body(), tid_tx.clone());
            let spawned = std::thread::Builder::new().name(format!("{name}-{}", i + 1)).spawn(move || {
                let _ = tid_tx.send(worker_id());
                work(job_rx);
            });
            if let Ok(h) = spawned {
                jobs.push(job_tx);
                handles.push(h);
            }
        }
        let apart = KeepApart::new(tid_rx.iter().take(handles.len()).collect());
        Self { jobs, handles, apart }
    }

    /// Threads started.
    pub(crate) fn len(&self) -> usize {
        self.jobs.len()
    }

    /// Hands `job()` to every worker, first keeping them off the calling thread's core;
    /// returns how many took it.
    pub(crate) fn hand_out(&mut self, job: impl Fn() -> J) -> usize {
        self.apart.before_handoff();
        self.jobs.iter().filter(|w| w.send(job()).is_ok()).count()
    }
}

impl<J> Drop for Workers<J> {
    fn drop(&mut self) {
        // Closing the job channels ends the workers' loops.
        self.jobs.clear();
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}
