//! The camera's persistent band workers: started once per renderer (not per frame), they
//! wait for a frame's [`Scene`], draw bands until none is left and hand each finished band
//! to the calling thread, which writes it into the sink.
//!
//! A frame's scene is moved into an [`Arc`] for the workers and moved back once every
//! worker has said it is done with it, so the renderer's buffers are reused frame after
//! frame. A worker that panics still says it is done (a drop guard), and the calling thread
//! draws any band that never arrived: a frame is whole or the panic shows on the caller.

use super::bands::{draw_band, BandOut, Scene, Scratch};
use crate::workers::Workers;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};

/// One frame's work, shared by the workers.
pub(super) struct Job {
    pub scene: Scene,
    /// The next band nobody has claimed.
    pub next: AtomicUsize,
}

/// What a worker tells the calling thread.
pub(super) enum Msg {
    /// Band `.0` is drawn.
    Band(usize, BandOut),
    /// The worker dropped its handle on the job: no more bands from it for this frame.
    Done,
}

/// Band buffers the calling thread has written, for the workers to reuse.
type Spare = Arc<Mutex<Vec<BandOut>>>;

/// The workers of one renderer (the calling thread is not one of them).
#[derive(Debug)]
pub(super) struct Pool {
    workers: Workers<Arc<Job>>,
    results: Receiver<Msg>,
    spare: Spare,
}

/// Holds a worker's handle on a job and says `Done` once it has let go of it, also while
/// unwinding from a panic.
struct Holding<'a> {
    job: Option<Arc<Job>>,
    results: &'a Sender<Msg>,
}

impl Drop for Holding<'_> {
    fn drop(&mut self) {
        // The job goes first: the calling thread takes the scene back after the last `Done`.
        drop(self.job.take());
        let _ = self.results.send(Msg::Done);
    }
}

impl Pool {
    /// Starts `workers` threads. A thread that cannot be started is left out (the frame is
    /// drawn by fewer threads; the bytes are the same).
    pub fn new(workers: usize) -> Self {
        let (tx, results) = channel();
        let spare: Spare = Arc::default();
        let workers = Workers::start(workers, "camera-band", || {
            let (tx, spare) = (tx.clone(), Arc::clone(&spare));
            move |jobs| work(&jobs, &tx, &spare)
        });
        Self { workers, results, spare }
    }

    /// Worker threads (the calling thread not counted).
    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// Draws every band of `job` on the workers and on the calling thread (with `mine` and
    /// `out`), calling `write(band, rows)` on the calling thread for each finished band.
    /// Returns once no worker holds the job any more.
    pub fn run(
        &mut self,
        job: &Arc<Job>,
        mine: &mut Scratch,
        out: &mut BandOut,
        mut write: impl FnMut(usize, &BandOut),
    ) {
        let n = job.scene.table.bands.len();
        let sent = self.workers.hand_out(|| Arc::clone(job));
        let mut written = vec![false; n];
        let mut done = 0;
        let mut own = |b: usize, written: &mut [bool], write: &mut dyn FnMut(usize, &BandOut)| {
            draw_band(&job.scene, b, mine, out);
            write(b, out);
            written[b] = true;
        };
        let spare = &self.spare;
        let handle =
            |msg: Msg, written: &mut [bool], done: &mut usize, write: &mut dyn FnMut(usize, &BandOut)| {
                match msg {
                    Msg::Band(b, band) => {
                        write(b, &band);
                        written[b] = true;
                        if let Ok(mut s) = spare.lock() {
                            s.push(band);
                        }
                    }
                    Msg::Done => *done += 1,
                }
            };
        loop {
            let b = job.next.fetch_add(1, Ordering::Relaxed);
            if b >= n {
                break;
            }
            own(b, &mut written, &mut write);
            while let Ok(msg) = self.results.try_recv() {
                handle(msg, &mut written, &mut done, &mut write);
            }
        }
        while done < sent {
            match self.results.recv() {
                Ok(msg) => handle(msg, &mut written, &mut done, &mut write),
                Err(_) => break,
            }
        }
        // Bands a panicked worker claimed and never finished.
        for b in 0..n {
            if !written[b] {
                own(b, &mut written, &mut write);
            }
        }
    }
}

/// A worker's loop: one job per frame until the pool is dropped.
fn work(jobs: &Receiver<Arc<Job>>, results: &Sender<Msg>, spare: &Spare) {
    let mut scratch = Scratch::default();
    while let Ok(job) = jobs.recv() {
        let holding = Holding { job: Some(job), results };
        let Some(job) = holding.job.as_ref() else { continue };
        let n = job.scene.table.bands.len();
        loop {
            let b = job.next.fetch_add(1, Ordering::Relaxed);
            if b >= n {
                break;
            }
            let mut band = spare.lock().ok().and_then(|mut s| s.pop()).unwrap_or_default();
            draw_band(&job.scene, b, &mut scratch, &mut band);
            if results.send(Msg::Band(b, band)).is_err() {
                break;
            }
        }
    }
}
