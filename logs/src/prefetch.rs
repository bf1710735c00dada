//! [`Prefetched`]: a log's frames decoded ahead, on background threads, so the thread that
//! writes them into ring slots never waits on a decompressor, a CDR parse or a PNG decoder
//! while it has a slot to fill.
//!
//! A bag is one ordered stream (chunks decompress in file order, the reorder buffer is
//! sequential), so it gets one decoding thread running [`LogFrames`] as it is. A KITTI folder's
//! frames are independent files: worker `w` of `n` decodes frames `w, w + n, w + 2n, ...`
//! and the consumer takes them round-robin, so the order is unchanged and the PNG decode runs
//! on every core. Every channel is bounded: at most `depth` frames per worker are decoded
//! ahead, whatever the log.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Receiver, Sender};

use crate::{kitti, kitti_frame, FramesInner, LogError, LogFrame, LogFrames};

type Item = Result<LogFrame, LogError>;

/// The frames of a log in replay order, decoded ahead on background threads (see
/// [`LogFrames::prefetch`]). Dropping it stops the threads.
#[derive(Debug)]
pub struct Prefetched {
    /// One channel per worker; worker `w` sends the items of its frames in order.
    rx: Vec<Receiver<Vec<Item>>>,
    workers: Vec<JoinHandle<()>>,
    /// The worker the next batch comes from.
    turn: usize,
    ready: VecDeque<Item>,
    done: bool,
    path: std::path::PathBuf,
}

impl LogFrames {
    /// Moves the decoding onto background threads: one for a bag, `threads` (at least one) for
    /// a KITTI folder; each keeps at most `depth` (at least one) frames ready. Items and their
    /// order are exactly those of this iterator.
    /// `path` names the log in the error of a decoding thread that died.
    ///
    /// # Errors
    /// [`LogError::Io`] if a thread cannot be started.
    pub fn prefetch(self, threads: usize, depth: usize, path: &Path) -> Result<Prefetched, LogError> {
        let depth = depth.max(1);
        let mut p = Prefetched {
            rx: Vec::new(),
            workers: Vec::new(),
            turn: 0,
            ready: VecDeque::new(),
            done: false,
            path: path.to_path_buf(),
        };
        let start = |name: String, body: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name)
                .spawn(body)
                .map_err(|e| LogError::io(path, "start a decoding thread", e))
        };
        match self.inner {
            FramesInner::Kitti { index, next, .. } if !self.done => {
                let n = threads.max(1);
                for w in 0..n {
                    let (tx, rx) = bounded(depth);
                    let index = Arc::clone(&index);
                    // On an error `p` drops: the workers already started stop.
                    p.workers.push(start(
                        format!("kitti-decode-{w}"),
                        Box::new(move || {
                            decode_kitti(&index, next / index.items_per_frame() + w, n, &tx);
                        }),
                    )?);
                    p.rx.push(rx);
                }
            }
            inner => {
                let (tx, rx) = bounded(depth);
                let frames = LogFrames { inner, done: self.done };
                p.workers.push(start("log-prefetch".into(), Box::new(move || run_stream(frames, &tx)))?);
                p.rx.push(rx);
            }
        }
        Ok(p)
    }
}

/// A bag's (or any sequential log's) decoding thread: the iterator as it is, item by item.
fn run_stream(frames: LogFrames, tx: &Sender<Vec<Item>>) {
    for item in frames {
        if tx.send(vec![item]).is_err() {
            return;
        }
    }
}

/// KITTI worker: frames `first`, `first + step`, ... each as its sweep then its images (the
/// order of [`LogFrames`]); stops after an error or when the consumer is gone.
fn decode_kitti(index: &kitti::KittiIndex, first: usize, step: usize, tx: &Sender<Vec<Item>>) {
    for i in (first..index.frames.len()).step_by(step) {
        let f = &index.frames[i];
        let items = match kitti_frame(index, f, i as u64, 0, false) {
            Ok(sweep) => std::iter::once(Ok(sweep))
                .chain((1..index.items_per_frame()).map(|c| kitti_frame(index, f, i as u64, c, false)))
                .collect(),
            Err(e) => vec![Err(e)],
        };
        let failed = items.iter().any(Result::is_err);
        if tx.send(items).is_err() || failed {
            return;
        }
    }
}

impl Iterator for Prefetched {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        loop {
            if let Some(item) = self.ready.pop_front() {
                if item.is_err() {
                    // A log that breaks yields the break once, then ends.
                    self.finish();
                }
                return Some(item);
            }
            if self.done {
                return None;
            }
            let turn = self.turn;
            self.turn = (turn + 1) % self.rx.len();
            match self.rx[turn].recv() {
                Ok(batch) => self.ready.extend(batch),
                Err(_) => {
                    // Worker `turn` has no more frames, so no later frame exists; unless it
                    // died, which is a bug, reported in one line rather than as a short replay.
                    let panicked = self.finish();
                    return panicked.then(|| {
                        Err(LogError::missing(&self.path, "a decoding thread failed; the replay stops here"))
                    });
                }
            }
        }
    }
}

impl Prefetched {
    /// Stops and joins the workers; whether one of them panicked.
    fn finish(&mut self) -> bool {
        self.done = true;
        // Dropping the receivers ends every worker at its next send.
        self.rx.clear();
        // Every worker is joined (no short circuit).
        let panicked: Vec<bool> = self.workers.drain(..).map(|w| w.join().is_err()).collect();
        panicked.contains(&true)
    }
}

impl Drop for Prefetched {
    fn drop(&mut self) {
        self.finish();
    }
}
