//! Ends ring readers' waits when their role is stopped, so that a reader waits for its next
//! frame, or for the stop, and for nothing else. Without it a reader must look at the stop
//! flag every [`super::STOP_NOTICE`], and each look is a wake-up: 30–60 µs of CPU in a
//! guest, a wake-up or two per frame of a 10 Hz lidar (`docs/benchmarks.md`).
//!
//! The stop is a signal (SIGTERM from the supervisor, SIGINT from a terminal). Its handler
//! writes a byte to a socket pair (`signal_hook::low_level::pipe`, async-signal-safe); a
//! thread asleep on the other end raises the flag and wakes every ring registered with
//! [`StopWaker::watch`] ([`RingReader::wake_waiters`]). A reader that fails raises the same
//! way, so the other readers end too. [`StopWaker::nudge`] wakes the same rings without the
//! stop: fusion's calibration listener nudges its lanes after each epoch it hands them.

use std::io::Read as _;
use std::os::unix::net::UnixStream;
use std::sync::Arc;

use calib::StopFlag;
use parking_lot::Mutex;
use shared::ring::RingReader;

use crate::error::CliError;

/// A stop flag that also wakes the ring readers waiting on it.
#[derive(Clone, Debug)]
pub struct StopWaker {
    stop: StopFlag,
    rings: Arc<Mutex<Vec<Arc<RingReader>>>>,
}

impl StopWaker {
    /// A waker for `stop`, raised and woken by SIGTERM and SIGINT too.
    ///
    /// # Errors
    /// An internal error if the signal pipe or its thread cannot be set up.
    pub fn on_signals(stop: &StopFlag) -> Result<Self, CliError> {
        let waker = Self::new(stop);
        let internal = |what: &str, e: std::io::Error| CliError::internal(format!("{what}: {e}"));
        let (mut rx, tx) = UnixStream::pair().map_err(|e| internal("stop pipe", e))?;
        for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
            let end = tx.try_clone().map_err(|e| internal("stop pipe", e))?;
            signal_hook::low_level::pipe::register(sig, end).map_err(|e| internal("signal handler", e))?;
        }
        let me = waker.clone();
        std::thread::Builder::new()
            .name("stop-waker".into())
            .spawn(move || {
                // One byte is a signal; an error or the end of the pipe (never, while the
                // handler holds its end) is treated as one too: better stopped than deaf.
                let _ = rx.read(&mut [0u8; 1]);
                me.raise();
            })
            .map_err(|e| internal("stop-waker thread", e))?;
        Ok(waker)
    }

    /// A waker for `stop` that only [`StopWaker::raise`] sets off.
    pub fn new(stop: &StopFlag) -> Self {
        Self { stop: stop.clone(), rings: Arc::default() }
    }

    /// The flag.
    pub fn flag(&self) -> &StopFlag {
        &self.stop
    }

    /// Wakes the readers of `ring` when the stop is raised (at once if it already is).
    pub fn watch(&self, ring: &Arc<RingReader>) {
        self.rings.lock().push(Arc::clone(ring));
        // After the push: a raise that took the lock first stored the flag before it, and
        // the lock makes that store visible here.
        if self.stop.is_raised() {
            ring.wake_waiters();
        }
    }

    /// Wakes every watched ring's readers without raising the flag, so that they look at
    /// their other inputs (a new calibration for fusion's lanes) before they sleep again.
    pub fn nudge(&self) {
        for ring in self.rings.lock().iter() {
            ring.wake_waiters();
        }
    }

    /// Raises the flag, then wakes every watched ring's readers.
    pub fn raise(&self) {
        self.stop.raise();
        self.nudge();
    }
}
