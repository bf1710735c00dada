//! The mirror's link to the remote run's own calibration service.
//!
//! Epochs reach a remote two ways: the table queried at start (handed to the local service
//! in the run spec) and, at run time, samples on `.../calib/<epoch>` (a real-time drive
//! announces each epoch ahead of its `valid_from`, after the remote may have started). The
//! mirror relays each epoch it receives to the local service over `calib.sock` as an update
//! message, which the service's policy lets the bridge of a remote run send
//! ([`calib::policy::SocketPolicy::relaying`]); the service checks it like any epoch,
//! writes it to the table and announces it. The mirror is also a subscriber of that service,
//! and its epoch gate learns an epoch only from there: a frame goes into a local ring only
//! once the local service, and so fusion, can know its calibration.

use std::collections::BTreeSet;
use std::os::fd::{AsFd as _, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use calib::{CalibFollower, CalibSubscriber, CalibrationSet, StopFlag};
use rustix::net::{send, SendFlags};
use shared::{rundir, CalibEpoch, Role};

use crate::error::CliError;

/// How long the mirror waits for the local service to announce an epoch it relayed.
const ANNOUNCE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the bridge tries to reach the service (which is up before the bridge starts).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// The local calibration service, as the mirror sees it.
#[derive(Debug)]
pub struct LocalCalib {
    /// Subscribed as the bridge: what the service has announced.
    follower: CalibFollower,
    /// The same connection, for sending.
    socket: OwnedFd,
    /// Epochs relayed or given to the service at start: not sent again.
    sent: BTreeSet<CalibEpoch>,
    /// Epochs the service took at run time.
    relayed: u64,
}

impl LocalCalib {
    /// Subscribes to the service of the run in `run`, which already has `given` (the table
    /// the remote queried at start).
    ///
    /// # Errors
    /// Exit 3 if the service cannot be reached.
    pub fn connect(run: &Path, given: &[CalibrationSet], stop: &StopFlag) -> Result<Self, CliError> {
        let path = run.join(rundir::CALIB_SOCKET);
        let flag = stop.as_arc();
        let sub = CalibSubscriber::connect_retry(&path, Role::Bridge, CONNECT_TIMEOUT, Some(&*flag))
            .map_err(|e| CliError::internal(e.to_string()))?;
        let socket = sub
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| CliError::internal(format!("{}: {e}", path.display())))?;
        Ok(Self {
            follower: CalibFollower::table_only(&CalibFollower::table_in(run))
                .with_subscriber(sub)
                .table_every(Duration::from_millis(50)),
            socket,
            sent: given.iter().map(|s| s.epoch).collect(),
            relayed: 0,
        })
    }

    /// Epochs the service announced since the last call.
    pub fn poll(&mut self) -> Vec<CalibEpoch> {
        self.follower.poll().iter().map(|s| s.epoch).collect()
    }

    /// Relays `set` (unless sent before) and waits, bounded, until the service announces
    /// it; returns the epochs it announced meanwhile. An epoch the service refuses is
    /// never learned: its frames wait in the gate, then are dropped and counted.
    ///
    /// # Errors
    /// Exit 3 if the connection to the service broke.
    pub fn relay(&mut self, set: &CalibrationSet) -> Result<Vec<CalibEpoch>, CliError> {
        if !self.sent.insert(set.epoch) {
            return Ok(Vec::new());
        }
        // The set as a run's own service holds it: a run spec carries its epochs in
        // `CalibrationSet`'s serde form, `EncodedSet` (rotations as matrices), so the
        // publisher's service took its sets after that round trip, and so did the epochs
        // queried at start (in this run's spec). One relayed at run time makes the same trip,
        // or its rotation differs in a last bit and so do the pairs projected with it.
        let as_run = calib::CalibrationSet::try_from(calib::wire::EncodedSet::from(set.clone()))
            .map_err(|e| CliError::internal(format!("epoch {}: {e}", set.epoch)))?;
        let bytes = calib::wire::encode_update(&as_run);
        send(&self.socket, &bytes, SendFlags::NOSIGNAL).map_err(|e| {
            CliError::internal(format!("relaying epoch {} to the calibration service: {e}", set.epoch))
        })?;
        let deadline = Instant::now() + ANNOUNCE_TIMEOUT;
        let mut learned = Vec::new();
        while !self.follower.store().contains(set.epoch) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                tracing::warn!(epoch = %set.epoch, "the calibration service did not take a relayed epoch");
                return Ok(learned);
            }
            learned.extend(self.follower.wait(left.min(Duration::from_millis(50))).iter().map(|s| s.epoch));
        }
        self.relayed += 1;
        Ok(learned)
    }

    /// Epochs relayed and announced at run time.
    pub const fn relayed(&self) -> u64 {
        self.relayed
    }
}
