//! The calibration service: the `calib` role, one process.
//!
//! It owns the list of calibration epochs of a run, announces each one ahead of its
//! `valid_from` on the [`PipelineClock`], writes it to the [calibration table](crate::table)
//! and sends it as a `CalibUpdate` ([`crate::wire`]) to every subscriber.
//!
//! # Socket
//!
//! A Unix `SOCK_SEQPACKET` socket (`calib.sock` in the run directory), mode 0600, created
//! before `listen` so nobody can connect while the mode is still the umask's. A subscriber
//! connects and sends one hello naming its [`Role`]; it then receives every epoch announced
//! so far (in epoch order), then each new one as it is announced. A gatekeeper
//! ([`SocketPolicy`], [`crate::policy`]) checks each peer's credentials (`SO_PEERCRED`) when
//! it connects, the role it claims in its hello, and every message it sends afterwards: only
//! the service publishes, so a subscriber that sends a calibration (or anything else) is
//! refused and dropped, save a relay's updates (the bridge of a remote run,
//! `service/relay.rs`). Every refusal is logged and counted by reason
//! ([`ServiceStats::refused`]); a peer whose first message is not a valid hello is dropped
//! ([`ServiceStats::bad_hellos`]).
//!
//! # Schedule
//!
//! [`Schedule::LeadTime`] announces epoch `e` at `valid_from(e) − lead` (default
//! [`DEFAULT_LEAD_TIME`], 500 ms); [`Schedule::AllAtStart`] announces every epoch at once
//! (`--max-rate` runs and replays, where the pipeline clock is not the capture clock).
//! Every epoch is written to the table when it is announced, whatever the delivery plan.
//!
//! # Fault injection
//!
//! A [`DeliveryPlan`] delays or drops the message of one epoch to every subscriber of one
//! role. A delay counts from when the message would otherwise have been sent (announcement,
//! or the hello of a later subscriber); a delayed message may be overtaken by the next epoch,
//! and then the subscriber rejects it as out of order and must recover from the table, which
//! is the point of the exercise.
//!
//! # Loop
//!
//! [`CalibService::run`] polls the listener and the peers with a timeout computed from the
//! next due event (announcement or delayed delivery), capped at 100 ms so the stop flag is
//! seen at least that often. Idle, it sleeps in `poll`.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::net::{
    accept_with, bind, connect, listen, recv, send, socket_with, sockopt, AddressFamily, RecvFlags,
    SendFlags, SocketAddrUnix, SocketFlags, SocketType,
};
use serde::Serialize;
use shared::{CalibEpoch, Role, TimestampNs};

use crate::clock::{add_duration, PipelineClock};
use crate::policy::{PeerIds, Refusal, SocketPolicy};
use crate::table::{CalibTableWriter, TableError};
use crate::types::CalibrationSet;
use crate::validate::{self, Invalid};
use crate::wire::{self, Message};

/// Default lead time of [`Schedule::LeadTime`].
pub const DEFAULT_LEAD_TIME: Duration = Duration::from_millis(500);
/// The stop flag is checked at least this often.
pub const STOP_CHECK_INTERVAL: Duration = Duration::from_millis(100);
/// A peer that has not said hello after this long is dropped.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// Packets read from one peer per loop turn (fairness against a chatty peer).
const READS_PER_TURN: usize = 16;
const LISTEN_BACKLOG: i32 = 64;

mod relay;

/// When epochs are announced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Schedule {
    /// Announce each epoch this long before its `valid_from` (at 0 if that is earlier).
    LeadTime(Duration),
    /// Announce every epoch at start.
    AllAtStart,
}

impl Default for Schedule {
    fn default() -> Self {
        Self::LeadTime(DEFAULT_LEAD_TIME)
    }
}

impl Schedule {
    fn due(self, set: &CalibrationSet) -> TimestampNs {
        match self {
            Self::LeadTime(lead) => TimestampNs(
                set.valid_from.0.saturating_sub(u64::try_from(lead.as_nanos()).unwrap_or(u64::MAX)),
            ),
            Self::AllAtStart => TimestampNs(0),
        }
    }
}

/// What happens to one epoch's message to one role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub enum DeliveryAction {
    /// Sent this much later than it would have been.
    Delay(Duration),
    /// Never sent (the table still has it).
    Drop,
}

/// One fault: `action` on the message of `epoch` to subscribers of `role`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct DeliveryRule {
    /// The epoch.
    pub epoch: CalibEpoch,
    /// The subscriber role.
    pub role: Role,
    /// Delay or drop.
    pub action: DeliveryAction,
}

/// Fault injection on the socket: delays and drops per (epoch, role). Empty by default.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct DeliveryPlan {
    /// The rules; the first one matching an (epoch, role) applies.
    pub rules: Vec<DeliveryRule>,
}

impl DeliveryPlan {
    /// No faults.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds "deliver `epoch` to `role` `by` late".
    #[must_use]
    pub fn delay(mut self, epoch: CalibEpoch, role: Role, by: Duration) -> Self {
        self.rules.push(DeliveryRule { epoch, role, action: DeliveryAction::Delay(by) });
        self
    }

    /// Adds "drop `epoch` for `role`".
    #[must_use]
    pub fn drop_epoch(mut self, epoch: CalibEpoch, role: Role) -> Self {
        self.rules.push(DeliveryRule { epoch, role, action: DeliveryAction::Drop });
        self
    }

    /// What applies to `epoch`'s message to `role`, if anything.
    #[must_use]
    pub fn action(&self, epoch: CalibEpoch, role: Role) -> Option<DeliveryAction> {
        self.rules.iter().find(|r| r.epoch == epoch && r.role == role).map(|r| r.action)
    }
}

/// How the service is set up.
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    /// Where to bind the socket (`<run dir>/calib.sock`).
    pub socket_path: PathBuf,
    /// Where to create the calibration table (`<run dir>/calib.seg`); `None` for none.
    pub table_path: Option<PathBuf>,
    /// When to announce.
    pub schedule: Schedule,
    /// Fault injection.
    pub plan: DeliveryPlan,
    /// The gatekeeper: who may connect, as which role, and send what.
    pub policy: SocketPolicy,
}

impl ServiceConfig {
    /// Socket and table at the standard names in a run directory
    /// ([`shared::rundir::CALIB_SOCKET`], `calib.seg`), default schedule, no faults.
    #[must_use]
    pub fn in_run_dir(run_dir: &Path) -> Self {
        Self {
            socket_path: run_dir.join(shared::rundir::CALIB_SOCKET),
            table_path: Some(run_dir.join(shared::rundir::segment_file(shared::StreamKind::CalibTable))),
            schedule: Schedule::default(),
            plan: DeliveryPlan::default(),
            policy: SocketPolicy::default(),
        }
    }

    /// A socket at `socket_path`, no table, default schedule, no faults.
    #[must_use]
    pub fn new(socket_path: impl Into<PathBuf>) -> Self {
        Self {
            socket_path: socket_path.into(),
            table_path: None,
            schedule: Schedule::default(),
            plan: DeliveryPlan::default(),
            policy: SocketPolicy::default(),
        }
    }
}

/// The service's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ServiceStats {
    /// Epochs announced (and written to the table).
    pub epochs_announced: u64,
    /// Update messages sent.
    pub updates_sent: u64,
    /// Update messages dropped by the delivery plan.
    pub updates_dropped: u64,
    /// Update messages delayed by the delivery plan.
    pub updates_delayed: u64,
    /// Peers that said hello and were served.
    pub subscribers_accepted: u64,
    /// Subscribers connected now.
    pub subscribers_connected: u64,
    /// Peers and messages the gatekeeper refused, all reasons ([`ServiceStats::refused`]
    /// has them by reason).
    pub peers_refused: u64,
    /// Peers dropped because their first message was not a valid hello (or never came).
    pub bad_hellos: u64,
    /// Messages subscribers sent after their hello (ignored).
    pub ignored_messages: u64,
    /// Epochs a relay (the bridge of a remote run) brought from another host, taken.
    pub epochs_relayed: u64,
    /// Connections closed: by the peer, after a failed send, or after a bad hello.
    pub peers_disconnected: u64,
    /// Slots written to the calibration table.
    pub table_writes: u64,
    /// Peers and messages the gatekeeper refused, by reason.
    pub refused: RefusalStats,
}

/// Refusals of the gatekeeper ([`SocketPolicy`]), one counter per [`Refusal`] reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RefusalStats {
    /// No peer credentials.
    pub no_credentials: u64,
    /// Peer not allowed to subscribe.
    pub not_allowed: u64,
    /// Role not allowed.
    pub role_not_allowed: u64,
    /// First message not a valid hello.
    pub bad_hello: u64,
    /// Peer not allowed to publish.
    pub publish_not_allowed: u64,
    /// A second hello, or bytes that are not a message.
    pub unexpected: u64,
}

impl RefusalStats {
    fn count(&mut self, r: Refusal) {
        *match r {
            Refusal::NoCredentials => &mut self.no_credentials,
            Refusal::NotAllowed => &mut self.not_allowed,
            Refusal::RoleNotAllowed => &mut self.role_not_allowed,
            Refusal::BadHello => &mut self.bad_hello,
            Refusal::PublishNotAllowed => &mut self.publish_not_allowed,
            Refusal::Unexpected => &mut self.unexpected,
        } += 1;
    }
}

/// The service could not start or run.
#[derive(Debug)]
pub enum ServiceError {
    /// An epoch fails a check.
    InvalidEpoch {
        /// The epoch.
        epoch: CalibEpoch,
        /// What is wrong.
        error: Invalid,
    },
    /// The epochs are not strictly increasing, or `valid_from` goes backwards.
    EpochOrder(String),
    /// A live service already listens on the socket path.
    AlreadyRunning(PathBuf),
    /// Something that is not a socket is in the way.
    PathOccupied(PathBuf),
    /// The table could not be created.
    Table(TableError),
    /// A system call failed.
    Io {
        /// What was being done.
        op: &'static str,
        /// On what.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidEpoch { epoch, error } => write!(f, "calibration epoch {epoch}: {error}"),
            Self::EpochOrder(what) => write!(f, "calibration epochs out of order: {what}"),
            Self::AlreadyRunning(p) => {
                write!(f, "{}: a calibration service is already listening", p.display())
            }
            Self::PathOccupied(p) => write!(f, "{}: exists and is not a socket", p.display()),
            Self::Table(e) => write!(f, "{e}"),
            Self::Io { op, path, source } => write!(f, "{}: {op}: {source}", path.display()),
        }
    }
}

impl std::error::Error for ServiceError {}

#[derive(Debug)]
struct Epoch {
    set: CalibrationSet,
    bytes: Vec<u8>,
    due: TimestampNs,
    announced_at: Option<TimestampNs>,
}

#[derive(Debug)]
struct Peer {
    fd: OwnedFd,
    pid: i32,
    ids: PeerIds,
    role: Option<Role>,
    connected_at: TimestampNs,
    /// (due, epoch index), sorted.
    queue: Vec<(TimestampNs, usize)>,
    /// The last send would have blocked: wait for POLLOUT.
    blocked: bool,
    dead: bool,
}

/// The calibration service. See the [module docs](self).
#[derive(Debug)]
pub struct CalibService {
    listener: OwnedFd,
    socket_path: PathBuf,
    clock: PipelineClock,
    schedule: Schedule,
    plan: DeliveryPlan,
    epochs: Vec<Epoch>,
    next_announce: usize,
    peers: Vec<Peer>,
    table: Option<CalibTableWriter>,
    stats: ServiceStats,
    policy: SocketPolicy,
    ours: PeerIds,
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(Errno) -> ServiceError + 'a {
    move |e| ServiceError::Io { op, path: path.to_path_buf(), source: e.into() }
}

impl CalibService {
    /// Checks the epochs, binds the socket (mode 0600) and creates the table. Epochs may be
    /// given in any order; they must have distinct numbers, and `valid_from` must not
    /// decrease as the epoch increases.
    ///
    /// # Errors
    /// [`ServiceError`]: a bad epoch list, a live service on the path, a socket or table
    /// failure.
    pub fn bind(
        config: ServiceConfig,
        epochs: Vec<CalibrationSet>,
        clock: PipelineClock,
    ) -> Result<Self, ServiceError> {
        let mut epochs = epochs;
        epochs.sort_by_key(|s| s.epoch);
        for set in &epochs {
            validate::check_set(set)
                .map_err(|error| ServiceError::InvalidEpoch { epoch: set.epoch, error })?;
        }
        for w in epochs.windows(2) {
            if w[0].epoch == w[1].epoch {
                return Err(ServiceError::EpochOrder(format!("epoch {} is given twice", w[0].epoch)));
            }
            if w[1].valid_from < w[0].valid_from {
                return Err(ServiceError::EpochOrder(format!(
                    "epoch {} is valid from {} ns, before epoch {} ({} ns)",
                    w[1].epoch, w[1].valid_from.0, w[0].epoch, w[0].valid_from.0
                )));
            }
        }
        let path = config.socket_path.clone();
        let listener = bind_listener(&path)?;
        let table = match &config.table_path {
            Some(p) => Some(CalibTableWriter::create(p).map_err(ServiceError::Table)?),
            None => None,
        };
        let epochs = epochs
            .into_iter()
            .map(|set| Epoch {
                bytes: wire::encode_update(&set),
                due: config.schedule.due(&set),
                set,
                announced_at: None,
            })
            .collect();
        tracing::info!(socket = %path.display(), "calibration service listening");
        Ok(Self {
            listener,
            socket_path: path,
            clock,
            schedule: config.schedule,
            plan: config.plan,
            epochs,
            next_announce: 0,
            peers: Vec::new(),
            table,
            stats: ServiceStats::default(),
            policy: config.policy,
            ours: PeerIds {
                uid: rustix::process::geteuid().as_raw(),
                gid: rustix::process::getegid().as_raw(),
            },
        })
    }

    /// Replaces the pipeline clock before [`CalibService::run`]: a supervisor binds every
    /// role first and fixes the clock's origin only when all of them are ready.
    pub fn set_clock(&mut self, clock: PipelineClock) {
        self.clock = clock;
    }

    /// Serves until `stop` is set (checked at least every 100 ms), then returns the counters.
    /// Uses no CPU while idle.
    ///
    /// # Errors
    /// Only if `poll` itself fails; peer errors are handled and counted.
    pub fn run(&mut self, stop: &AtomicBool) -> Result<ServiceStats, ServiceError> {
        while !stop.load(Ordering::Relaxed) {
            self.step(STOP_CHECK_INTERVAL)?;
        }
        Ok(self.stats)
    }

    /// One turn of the loop: announce and send what is due, then wait for I/O up to the next
    /// due event or `max_wait`, and handle it. `run` is this in a loop.
    ///
    /// # Errors
    /// As [`CalibService::run`].
    pub fn step(&mut self, max_wait: Duration) -> Result<(), ServiceError> {
        self.tick();
        let now = self.clock.now();
        let wait = self
            .next_event()
            .map_or(max_wait, |t| Duration::from_nanos(t.0.saturating_sub(now.0)).min(max_wait));
        let revents = {
            let mut fds = Vec::with_capacity(self.peers.len() + 1);
            fds.push(PollFd::new(&self.listener, PollFlags::IN));
            for p in &self.peers {
                let flags = if p.blocked { PollFlags::IN | PollFlags::OUT } else { PollFlags::IN };
                fds.push(PollFd::new(&p.fd, flags));
            }
            let ts = Timespec::try_from(wait).unwrap_or(Timespec { tv_sec: 0, tv_nsec: 100_000_000 });
            match poll(&mut fds, Some(&ts)) {
                Ok(_) | Err(Errno::INTR) => {}
                Err(e) => return Err(io_err("poll", &self.socket_path)(e)),
            }
            fds.iter().map(PollFd::revents).collect::<Vec<_>>()
        };
        if revents[0].contains(PollFlags::IN) {
            self.accept_peers();
        }
        for (i, ev) in revents[1..].iter().enumerate() {
            if ev.contains(PollFlags::OUT) {
                self.peers[i].blocked = false;
            }
            if ev.intersects(PollFlags::IN | PollFlags::HUP | PollFlags::ERR) {
                self.read_peer(i);
            }
        }
        self.tick();
        Ok(())
    }

    /// Announces what is due, sends what is due, drops the dead and the silent.
    fn tick(&mut self) {
        let now = self.clock.now();
        self.announce_due(now);
        if let Some(t) = &self.table {
            t.heartbeat();
        }
        for p in &mut self.peers {
            if p.role.is_none() && !p.dead && now >= add_duration(p.connected_at, HELLO_TIMEOUT) {
                tracing::warn!(pid = p.pid, "calibration subscriber never said hello; dropped");
                self.stats.bad_hellos += 1;
                p.dead = true;
            }
        }
        for i in 0..self.peers.len() {
            self.flush(i, now);
        }
        let before = self.peers.len();
        self.peers.retain(|p| !p.dead);
        let gone = (before - self.peers.len()) as u64;
        self.stats.peers_disconnected += gone;
        self.stats.subscribers_connected = self.peers.iter().filter(|p| p.role.is_some()).count() as u64;
    }

    fn next_event(&self) -> Option<TimestampNs> {
        let announce = self.epochs.get(self.next_announce).map(|e| e.due);
        let delivery =
            self.peers.iter().filter(|p| !p.blocked).filter_map(|p| p.queue.first().map(|q| q.0)).min();
        let hello = self
            .peers
            .iter()
            .filter(|p| p.role.is_none())
            .map(|p| add_duration(p.connected_at, HELLO_TIMEOUT))
            .min();
        [announce, delivery, hello].into_iter().flatten().min()
    }

    fn announce_due(&mut self, now: TimestampNs) {
        while let Some(e) = self.epochs.get_mut(self.next_announce) {
            if e.due > now {
                break;
            }
            e.announced_at = Some(now);
            let idx = self.next_announce;
            self.next_announce += 1;
            self.stats.epochs_announced += 1;
            if let Some(t) = &mut self.table {
                t.publish_encoded(&self.epochs[idx].set, &self.epochs[idx].bytes);
                self.stats.table_writes += 1;
            }
            tracing::info!(epoch = %self.epochs[idx].set.epoch, valid_from_ns = self.epochs[idx].set.valid_from.0, "calibration epoch announced");
            for p in 0..self.peers.len() {
                if self.peers[p].role.is_some() {
                    self.enqueue(p, idx, now);
                }
            }
        }
    }

    fn enqueue(&mut self, peer: usize, idx: usize, now: TimestampNs) {
        let epoch = self.epochs[idx].set.epoch;
        let Some(role) = self.peers[peer].role else { return };
        let due = match self.plan.action(epoch, role) {
            Some(DeliveryAction::Drop) => {
                tracing::info!(%epoch, %role, "fault injection: calibration message dropped");
                self.stats.updates_dropped += 1;
                return;
            }
            Some(DeliveryAction::Delay(d)) => {
                tracing::info!(%epoch, %role, delay_ms = d.as_millis() as u64, "fault injection: calibration message delayed");
                self.stats.updates_delayed += 1;
                add_duration(now, d)
            }
            None => now,
        };
        let q = &mut self.peers[peer].queue;
        let at = q.partition_point(|&(t, i)| (t, i) <= (due, idx));
        q.insert(at, (due, idx));
    }

    fn flush(&mut self, i: usize, now: TimestampNs) {
        let p = &mut self.peers[i];
        while !p.dead && !p.blocked {
            let Some(&(due, idx)) = p.queue.first() else { break };
            if due > now {
                break;
            }
            match send(&p.fd, &self.epochs[idx].bytes, SendFlags::DONTWAIT | SendFlags::NOSIGNAL) {
                Ok(_) => {
                    p.queue.remove(0);
                    self.stats.updates_sent += 1;
                }
                Err(Errno::AGAIN) => p.blocked = true,
                Err(Errno::INTR) => {}
                Err(e) => {
                    tracing::info!(pid = p.pid, "calibration subscriber gone: {e}");
                    p.dead = true;
                }
            }
        }
    }

    fn accept_peers(&mut self) {
        loop {
            let fd = match accept_with(&self.listener, SocketFlags::NONBLOCK | SocketFlags::CLOEXEC) {
                Ok(fd) => fd,
                Err(Errno::INTR | Errno::CONNABORTED) => continue,
                Err(Errno::AGAIN) => return,
                Err(e) => {
                    tracing::warn!("calibration service: accept failed: {e}");
                    return;
                }
            };
            let cred = match sockopt::socket_peercred(&fd) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!("calibration service: no peer credentials ({e}); refused");
                    self.refuse(Refusal::NoCredentials);
                    continue;
                }
            };
            // The kernel gives the ids as our user namespace sees them (unmapped: 65534).
            let ids = PeerIds { uid: cred.uid.as_raw(), gid: cred.gid.as_raw() };
            let pid = cred.pid.as_raw_nonzero().get();
            if let Err(r) = self.policy.admit(ids, self.ours) {
                tracing::warn!(
                    peer_uid = ids.uid,
                    peer_gid = ids.gid,
                    peer_pid = pid,
                    "calibration service: {r}; refused"
                );
                self.refuse(r);
                continue;
            }
            self.peers.push(Peer {
                fd,
                pid,
                ids,
                role: None,
                connected_at: self.clock.now(),
                queue: Vec::new(),
                blocked: false,
                dead: false,
            });
        }
    }

    fn read_peer(&mut self, i: usize) {
        let mut buf = [0u8; wire::MAX_MESSAGE_LEN + 64];
        for _ in 0..READS_PER_TURN {
            let p = &mut self.peers[i];
            if p.dead {
                return;
            }
            match recv(&p.fd, &mut buf[..], RecvFlags::DONTWAIT | RecvFlags::TRUNC) {
                Ok((_, 0)) => {
                    p.dead = true;
                    return;
                }
                Ok((n, full)) => {
                    if let Some(role) = p.role {
                        if !self.on_message(i, role, (full == n).then_some(&buf[..n])) {
                            return;
                        }
                        continue;
                    }
                    match (full == n).then(|| wire::decode(&buf[..n])) {
                        Some(Ok(Message::Hello(role))) => {
                            if let Err(r) = self.policy.admit_role(role, p.ids, self.ours) {
                                tracing::warn!(pid = p.pid, %role, "calibration service: {r}; peer dropped");
                                p.dead = true;
                                self.refuse(r);
                                return;
                            }
                            p.role = Some(role);
                            self.stats.subscribers_accepted += 1;
                            tracing::info!(pid = p.pid, %role, "calibration subscriber connected");
                            let now = self.clock.now();
                            for idx in 0..self.next_announce {
                                self.enqueue(i, idx, now);
                            }
                            self.flush(i, now);
                        }
                        other => {
                            let why = match other {
                                Some(Err(e)) => e.to_string(),
                                Some(Ok(_)) => "an update instead of a hello".to_owned(),
                                None => format!("an oversize packet of {full} bytes"),
                            };
                            tracing::warn!(
                                pid = p.pid,
                                "calibration service: bad hello ({why}); peer dropped"
                            );
                            self.stats.bad_hellos += 1;
                            p.dead = true;
                            self.stats.refused.count(Refusal::BadHello);
                            return;
                        }
                    }
                }
                Err(Errno::AGAIN) => return,
                Err(Errno::INTR) => {}
                Err(_) => {
                    p.dead = true;
                    return;
                }
            }
        }
    }

    /// Counts a refused peer or message.
    fn refuse(&mut self, r: Refusal) {
        self.stats.peers_refused += 1;
        self.stats.refused.count(r);
    }

    /// The counters so far.
    #[must_use]
    pub const fn stats(&self) -> ServiceStats {
        self.stats
    }

    /// The socket path.
    #[must_use]
    pub fn socket_path(&self) -> &Path {
        &self.socket_path
    }

    /// The table path, if the service keeps a table.
    #[must_use]
    pub fn table_path(&self) -> Option<&Path> {
        self.table.as_ref().map(CalibTableWriter::path)
    }

    /// Epochs announced so far, ascending.
    #[must_use]
    pub fn announced(&self) -> Vec<CalibEpoch> {
        self.epochs[..self.next_announce].iter().map(|e| e.set.epoch).collect()
    }

    /// When each announced epoch was announced (pipeline time), ascending by epoch.
    #[must_use]
    pub fn announcements(&self) -> Vec<(CalibEpoch, TimestampNs)> {
        self.epochs.iter().filter_map(|e| e.announced_at.map(|t| (e.set.epoch, t))).collect()
    }

    /// Every epoch the service will announce, ascending.
    #[must_use]
    pub fn epochs(&self) -> Vec<CalibEpoch> {
        self.epochs.iter().map(|e| e.set.epoch).collect()
    }

    /// The schedule in force.
    #[must_use]
    pub const fn schedule(&self) -> Schedule {
        self.schedule
    }

    /// The pipeline clock it announces on.
    #[must_use]
    pub const fn clock(&self) -> PipelineClock {
        self.clock
    }
}

impl Drop for CalibService {
    fn drop(&mut self) {
        // Only our own socket: the inode must still be the one we bound.
        let _ = std::fs::remove_file(&self.socket_path);
    }
}

/// Binds the listening socket at `path` with mode 0600 before it listens. A socket file left
/// by a dead service (nobody accepts on it) is replaced.
fn bind_listener(path: &Path) -> Result<OwnedFd, ServiceError> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(ServiceError::PathOccupied(path.to_path_buf()));
        }
        let probe = socket_with(AddressFamily::UNIX, SocketType::SEQPACKET, SocketFlags::CLOEXEC, None)
            .map_err(io_err("socket", path))?;
        let addr = SocketAddrUnix::new(path).map_err(io_err("socket address", path))?;
        match connect(&probe, &addr) {
            Ok(()) => return Err(ServiceError::AlreadyRunning(path.to_path_buf())),
            Err(Errno::CONNREFUSED | Errno::NOENT) => {
                tracing::info!(socket = %path.display(), "removing the socket of a dead calibration service");
                std::fs::remove_file(path).map_err(|source| ServiceError::Io {
                    op: "remove stale socket",
                    path: path.to_path_buf(),
                    source,
                })?;
            }
            Err(e) => return Err(io_err("probe existing socket", path)(e)),
        }
    }
    let fd = socket_with(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
        None,
    )
    .map_err(io_err("socket", path))?;
    let addr = SocketAddrUnix::new(path).map_err(io_err("socket address (path too long?)", path))?;
    bind(&fd, &addr).map_err(io_err("bind", path))?;
    // Before listen: until then nobody can connect, whatever the umask gave the file.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|source| ServiceError::Io { op: "chmod 0600", path: path.to_path_buf(), source })?;
    listen(&fd, LISTEN_BACKLOG).map_err(io_err("listen", path))?;
    Ok(fd)
}

impl AsFd for CalibService {
    /// The listening socket (readable when a peer is waiting to be accepted).
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.listener.as_fd()
    }
}
