//! The lidar's persistent workers: started once per renderer (not per sweep), they wait for
//! a sweep's [`Job`] and work on blocks of firings, claimed one at a time from an atomic
//! counter, until none is left; the calling thread works on the same job. A sweep runs in
//! two phases over the same blocks: casting the rays, then (once the calling thread has drawn
//! the noise stream's uniforms) writing the points.
//!
//! The calling thread does not wait for a worker that has not yet woken (or was preempted
//! before claiming a block): a phase is over when all its blocks are done. A worker that
//! panics still says it is done (a drop guard), and the calling thread then does any block
//! it left unfinished: a sweep is whole or the panic shows on the caller.

use super::sweep::{Block, Sweep};
use crate::workers::Workers;
use crate::world::{RayScratch, World};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

/// The two passes over a sweep's blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    /// Cast the block's rays, count its hits.
    Cast,
    /// Write the block's points (the uniforms drawn, each block's first normal set).
    Emit,
}

impl Phase {
    fn index(self) -> usize {
        match self {
            Self::Cast => 0,
            Self::Emit => 1,
        }
    }
}

/// One sweep's work, shared by the workers.
#[derive(Debug)]
pub(super) struct Job {
    pub sweep: Sweep,
    pub blocks: Vec<Mutex<Block>>,
    /// Per block, the phases done (0, 1 after casting, 2 after emitting).
    done: Vec<AtomicU8>,
    /// Per phase, the next block nobody has claimed.
    next: [AtomicUsize; 2],
    /// The noise stream's uniforms ([`crate::rng::Rng::uniforms_for_normals`]), written by the
    /// calling thread between the phases.
    pub uniforms: RwLock<Vec<f64>>,
}

impl Job {
    /// A job for `sweep`, reusing `blocks` and `uniforms` (resized to the sweep).
    pub fn new(sweep: Sweep, mut blocks: Vec<Mutex<Block>>, uniforms: Vec<f64>) -> Self {
        let n = sweep.blocks();
        blocks.resize_with(n, Mutex::default);
        let done = (0..n).map(|_| AtomicU8::new(0)).collect();
        Self {
            sweep,
            blocks,
            done,
            next: [AtomicUsize::new(0), AtomicUsize::new(0)],
            uniforms: RwLock::new(uniforms),
        }
    }

    /// The job's buffers, for the next sweep's job.
    pub fn into_parts(self) -> (Vec<Mutex<Block>>, Vec<f64>) {
        (self.blocks, self.uniforms.into_inner().unwrap_or_else(PoisonError::into_inner))
    }

    /// Block `b` (also after a thread panicked while holding it: the block is then redone).
    pub fn block(&self, b: usize) -> MutexGuard<'_, Block> {
        self.blocks[b].lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether block `b` is through `phase`.
    pub fn is_done(&self, phase: Phase, b: usize) -> bool {
        // Acquire: pairs with the Release store in `Job::run`.
        usize::from(self.done[b].load(Ordering::Acquire)) > phase.index()
    }

    fn all_done(&self, phase: Phase) -> bool {
        (0..self.blocks.len()).all(|b| self.is_done(phase, b))
    }

    /// The next unclaimed block of `phase`, if any.
    fn claim(&self, phase: Phase) -> Option<usize> {
        let b = self.next[phase.index()].fetch_add(1, Ordering::Relaxed);
        (b < self.blocks.len()).then_some(b)
    }

    /// Does `phase` of block `b`.
    fn run(&self, phase: Phase, b: usize, scratch: &mut Scratch) {
        let mut block = self.block(b);
        match phase {
            Phase::Cast => self.sweep.cast_block(b, &mut block, &mut scratch.ray),
            Phase::Emit => {
                let uniforms = self.uniforms.read().unwrap_or_else(PoisonError::into_inner);
                self.sweep.emit_block(b, &mut block, &uniforms, &mut scratch.normals);
            }
        }
        drop(block);
        // Release: pairs with the Acquire load in `Job::is_done`.
        self.done[b].store(phase.index() as u8 + 1, Ordering::Release);
    }
}

/// One thread's scratch.
#[derive(Debug)]
pub(super) struct Scratch {
    ray: RayScratch,
    normals: Vec<f64>,
}

impl Scratch {
    pub fn new(world: &World) -> Self {
        Self { ray: RayScratch::new(world), normals: Vec::new() }
    }
}

/// What a worker tells the calling thread.
enum Msg {
    /// A block is done.
    Progress,
    /// The worker dropped its handle on a job: no more blocks from it for that phase.
    Done,
}

/// The workers of one renderer (the calling thread is not one of them).
#[derive(Debug)]
pub(super) struct Pool {
    workers: Workers<(Arc<Job>, Phase)>,
    results: Receiver<Msg>,
    /// Jobs handed to workers whose `Done` has not come back.
    pending: usize,
}

/// A worker's turn at one phase of a job. Dropped, also while unwinding from a panic, it
/// lets go of the job and then says `Done` (so the calling thread can take the buffers back
/// once every `Done` is in).
struct Turn<'a> {
    results: &'a Sender<Msg>,
    job: Option<(Arc<Job>, Phase)>,
}

impl Turn<'_> {
    /// Claims and does blocks until none is left (or the calling thread is gone).
    fn take(&self, scratch: &mut Scratch) {
        let Some((job, phase)) = &self.job else { return };
        while let Some(b) = job.claim(*phase) {
            job.run(*phase, b, scratch);
            if self.results.send(Msg::Progress).is_err() {
                return;
            }
        }
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.job = None;
        let _ = self.results.send(Msg::Done);
    }
}

impl Pool {
    /// Starts `workers` threads casting into `world`. A thread that cannot be started is
    /// left out (the sweep is rendered by fewer threads; the bytes are the same).
    pub fn new(workers: usize, world: &World) -> Self {
        let (tx, results) = channel();
        let workers = Workers::start(workers, "lidar-cast", || {
            let (tx, scratch) = (tx.clone(), Scratch::new(world));
            move |jobs| work(&jobs, &tx, scratch)
        });
        Self { workers, results, pending: 0 }
    }

    /// Worker threads (the calling thread not counted).
    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// Counts the `Done`s that have come back without waiting.
    fn drain(&mut self) {
        while let Ok(msg) = self.results.try_recv() {
            if matches!(msg, Msg::Done) {
                self.pending -= 1;
            }
        }
    }

    /// Does `phase` of every block of `job` on the workers and on the calling thread (with
    /// `mine`), calling `progress` on the calling thread after each block it learns of.
    /// Returns once every block is through `phase` (workers that never claimed a block
    /// may still hold the job).
    pub fn run(&mut self, job: &Arc<Job>, phase: Phase, mine: &mut Scratch, mut progress: impl FnMut()) {
        self.drain();
        self.pending += self.workers.hand_out(|| (Arc::clone(job), phase));
        while let Some(b) = job.claim(phase) {
            job.run(phase, b, mine);
            self.drain();
            progress();
        }
        while self.pending > 0 && !job.all_done(phase) {
            match self.results.recv() {
                Ok(Msg::Done) => self.pending -= 1,
                Ok(Msg::Progress) => {}
                Err(_) => self.pending = 0,
            }
            progress();
        }
        // Blocks a panicked worker claimed and never finished.
        for b in 0..job.blocks.len() {
            if !job.is_done(phase, b) {
                job.run(phase, b, mine);
            }
        }
        progress();
    }
}

/// A worker's loop: one job per phase until the pool is dropped.
fn work(jobs: &Receiver<(Arc<Job>, Phase)>, results: &Sender<Msg>, mut scratch: Scratch) {
    while let Ok(job) = jobs.recv() {
        Turn { results, job: Some(job) }.take(&mut scratch);
    }
}
