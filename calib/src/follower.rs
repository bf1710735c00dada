//! [`CalibFollower`]: how a role follows the run's calibration epochs.
//!
//! The protocol, in one place: the service's socket is the fast path; the calibration table
//! recovers what the socket lost (a dropped or delayed message, a connection made after the
//! announcement, a service that went away); every epoch is learned once, whichever path
//! brought it first; and a frame captured at `t` is tagged with the newest known epoch whose
//! `valid_from ≤ t`.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shared::{rundir, CalibEpoch, Role, StreamKind, TimestampNs};

use crate::store::{CalibStore, Inserted};
use crate::subscriber::{CalibSubscriber, RecvError, SubscribeError, SubscriberStats};
use crate::table::CalibTableReader;
use crate::types::CalibrationSet;

/// Ends a [`CalibFollower::wait`] from another thread ([`CalibFollower::waker`]). It holds a
/// duplicate of the socket, so the connection stays open while the waker lives, even after
/// the follower has let it go: keep it no longer than the follower.
#[derive(Debug)]
pub struct FollowerWaker(Option<OwnedFd>);

impl FollowerWaker {
    /// Shuts the socket's receiving side: a wait on it returns at once, and the follower goes
    /// on with the table alone (the connection counts as closed). For a follower about to
    /// stop: it learns nothing more from the socket.
    pub fn wake(&self) {
        if let Some(fd) = &self.0 {
            // An error (the socket already gone) leaves nothing to wake.
            let _ = rustix::net::shutdown(fd, rustix::net::Shutdown::Read);
        }
    }
}

/// Follows the calibration of one run: a [`CalibSubscriber`] (optional) and the calibration
/// table, merged into one [`CalibStore`].
///
/// Contract:
/// - [`poll`](Self::poll) and [`wait`](Self::wait) return each epoch **once**, the first
///   time either path brings it, in the order learned. An epoch already known is skipped
///   (a duplicate), and so is a second, different calibration under a known epoch number
///   (epochs are immutable: the first one stays, [`CalibStore::conflicts`] counts it).
/// - The socket refuses what [`CalibSubscriber`] refuses: malformed or invalid messages and
///   updates whose epoch is not above the last one it accepted (out of order). They are
///   counted in [`stats`](Self::stats), never fatal. An epoch lost that way, or never sent,
///   is recovered from the table.
/// - The table is attached lazily (the service may create it after the follower starts) and
///   decoded only when something was published since the last look.
/// - Socket failures are not errors: a closed connection is dropped (its counters are
///   kept) and the follower goes on with the table alone.
#[derive(Debug)]
pub struct CalibFollower {
    sub: Option<CalibSubscriber>,
    table_path: PathBuf,
    table: Option<CalibTableReader>,
    table_every: Duration,
    table_read_at: Option<Instant>,
    store: CalibStore,
    stats: SubscriberStats,
}

impl CalibFollower {
    /// A follower of the table at `table_path` alone, looking at it on every poll.
    #[must_use]
    pub fn table_only(table_path: &Path) -> Self {
        Self {
            sub: None,
            table_path: table_path.to_path_buf(),
            table: None,
            table_every: Duration::ZERO,
            table_read_at: None,
            store: CalibStore::new(),
            stats: SubscriberStats::default(),
        }
    }

    /// A follower of the run in `run_dir` that has subscribed to its service as `role`,
    /// retrying the connection until `timeout` passes or `stop` is raised.
    ///
    /// # Errors
    /// The last [`SubscribeError`] if the service could not be reached in time.
    pub fn connect(
        run_dir: &Path,
        role: Role,
        timeout: Duration,
        stop: Option<&AtomicBool>,
    ) -> Result<Self, SubscribeError> {
        let sub = CalibSubscriber::connect_retry(&run_dir.join(rundir::CALIB_SOCKET), role, timeout, stop)?;
        Ok(Self::table_only(&Self::table_in(run_dir)).with_subscriber(sub))
    }

    /// The calibration table's path in a run directory.
    #[must_use]
    pub fn table_in(run_dir: &Path) -> PathBuf {
        run_dir.join(rundir::segment_file(StreamKind::CalibTable))
    }

    /// Adds the fast path, a connected subscriber (replacing any already there).
    #[must_use]
    pub fn with_subscriber(mut self, sub: CalibSubscriber) -> Self {
        self.stats = sub.stats();
        self.sub = Some(sub);
        self
    }

    /// Looks at the table at most once per `every` (the socket is drained on every poll).
    /// Zero, the default, looks on every poll.
    #[must_use]
    pub const fn table_every(mut self, every: Duration) -> Self {
        self.table_every = every;
        self
    }

    /// Drains what the socket holds and, when due, merges what the table holds that is new.
    /// Never blocks. Returns the epochs learned by this call (see the type's contract).
    pub fn poll(&mut self) -> Vec<Arc<CalibrationSet>> {
        let mut new = Vec::new();
        self.read_table_if_due(&mut new);
        self.drain_socket(&mut new);
        new
    }

    /// [`poll`](Self::poll), then, if nothing was new, waits up to `timeout` for the socket
    /// to bring an epoch (or sleeps `timeout` when there is no socket). A socket that closes
    /// (or is woken, [`waker`](Self::waker)) ends the wait at once.
    pub fn wait(&mut self, timeout: Duration) -> Vec<Arc<CalibrationSet>> {
        let subscribed = self.is_subscribed();
        let mut new = self.poll();
        // Something new, or the socket closed during the poll: the caller hears of it now.
        if !new.is_empty() || subscribed != self.is_subscribed() {
            return new;
        }
        let Some(sub) = self.sub.as_mut() else {
            std::thread::sleep(timeout);
            return new;
        };
        let result = sub.recv_timeout(timeout).map(|got| {
            if let Some(set) = got {
                learn(&mut self.store, set, &mut new);
            }
        });
        self.after_recv(result);
        new
    }

    /// The epoch a frame captured at `t` carries: the newest known epoch whose
    /// `valid_from ≤ t` ([`CalibEpoch::NONE`] if there is none yet). `valid_from` is
    /// inclusive: a frame captured exactly at an epoch's `valid_from` carries that epoch.
    #[must_use]
    pub fn epoch_for(&self, t: TimestampNs) -> CalibEpoch {
        self.store.newest_valid_at(t).unwrap_or(CalibEpoch::NONE)
    }

    /// Every epoch learned so far.
    #[must_use]
    pub const fn store(&self) -> &CalibStore {
        &self.store
    }

    /// The socket's counters (updates accepted, messages rejected, last epoch), kept after
    /// the connection is gone.
    #[must_use]
    pub const fn stats(&self) -> SubscriberStats {
        self.stats
    }

    /// Whether the socket is still connected (a follower without one never is).
    #[must_use]
    pub const fn is_subscribed(&self) -> bool {
        self.sub.is_some()
    }

    /// A handle another thread can end this follower's [`wait`](Self::wait) with, at once
    /// rather than at its timeout (a role stopping). Without a socket there is nothing to wake:
    /// such a wait is a sleep, so a follower that must stop promptly waits in short slices.
    #[must_use]
    pub fn waker(&self) -> FollowerWaker {
        FollowerWaker(self.sub.as_ref().and_then(|s| s.as_fd().try_clone_to_owned().ok()))
    }

    fn read_table_if_due(&mut self, new: &mut Vec<Arc<CalibrationSet>>) {
        if self.table_read_at.is_some_and(|at| at.elapsed() < self.table_every) {
            return;
        }
        self.table_read_at = Some(Instant::now());
        if self.table.is_none() {
            self.table = CalibTableReader::attach(&self.table_path).ok();
        }
        if let Some(table) = self.table.as_mut() {
            for set in table.read_changed() {
                learn(&mut self.store, set, new);
            }
        }
    }

    fn drain_socket(&mut self, new: &mut Vec<Arc<CalibrationSet>>) {
        let Self { sub: Some(sub), store, .. } = self else { return };
        let result = loop {
            match sub.try_recv() {
                Ok(Some(set)) => learn(store, set, new),
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        self.after_recv(result);
    }

    /// Updates the counters after a receive, and drops a closed connection.
    fn after_recv(&mut self, result: Result<(), RecvError>) {
        if let Err(RecvError::Io(e)) = result {
            tracing::debug!("calibration socket: {e}; the table covers it");
        }
        if let Some(sub) = self.sub.as_ref() {
            self.stats = sub.stats();
            if sub.is_disconnected() {
                self.sub = None;
            }
        }
    }
}

/// Inserts `set`; if its epoch is new, also hands it to the caller.
fn learn(store: &mut CalibStore, set: CalibrationSet, new: &mut Vec<Arc<CalibrationSet>>) {
    let set = Arc::new(set);
    if store.insert(Arc::clone(&set)) == Inserted::New {
        new.push(set);
    }
}
