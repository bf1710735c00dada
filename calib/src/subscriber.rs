//! The subscriber side of the calibration service: connect, say hello, receive checked
//! updates.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::net::{
    connect, recv, send, socket_with, AddressFamily, RecvFlags, SendFlags, SocketAddrUnix, SocketFlags,
    SocketType,
};
use shared::{CalibEpoch, Role};

use crate::store::CalibStore;
use crate::types::CalibrationSet;
use crate::wire::{self, Message, WireError, MAX_MESSAGE_LEN};

/// Receive buffer: bigger than any valid message, so an oversize packet shows up as one.
const RECV_BUF: usize = 4096;
const _: () = assert!(RECV_BUF > MAX_MESSAGE_LEN);

/// Why a subscriber could not connect.
#[derive(Debug)]
pub struct SubscribeError {
    /// The socket path.
    pub path: PathBuf,
    /// The step that failed: `"socket"`, `"connect"` or `"hello"`.
    pub step: &'static str,
    /// What failed.
    pub source: io::Error,
}

impl SubscribeError {
    /// Whether the service accepted the connection and then closed it before the hello went
    /// out: what a refused peer (another uid) sees when the service is quick.
    #[must_use]
    pub fn closed_by_service(&self) -> bool {
        self.step == "hello"
            && matches!(self.source.kind(), io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset)
    }
}

impl fmt::Display for SubscribeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot subscribe to the calibration service at {}: {}: {}",
            self.path.display(),
            self.step,
            self.source
        )
    }
}

impl std::error::Error for SubscribeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Why [`CalibSubscriber::try_recv`] could not go on. A bad message is not an error: it is
/// rejected and counted.
#[derive(Debug)]
pub enum RecvError {
    /// The service closed the connection (it stopped, or refused this peer). Reconnect and
    /// recover from the table.
    Disconnected,
    /// An unexpected socket error.
    Io(io::Error),
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Disconnected => f.write_str("the calibration service closed the connection"),
            Self::Io(e) => write!(f, "calibration socket error: {e}"),
        }
    }
}

impl std::error::Error for RecvError {}

/// Why a message was rejected.
#[derive(Clone, Debug, PartialEq)]
pub enum Rejection {
    /// Not a valid message.
    Wire(WireError),
    /// A valid update whose epoch is not above the last accepted one.
    OutOfOrder {
        /// The update's epoch.
        epoch: CalibEpoch,
        /// The last accepted epoch.
        last: CalibEpoch,
    },
    /// A message only subscribers send (a hello).
    UnexpectedHello,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Wire(e) => write!(f, "{e}"),
            Self::OutOfOrder { epoch, last } => {
                write!(f, "epoch {epoch} is not after the last accepted epoch {last}")
            }
            Self::UnexpectedHello => f.write_str("a hello from the service"),
        }
    }
}

/// A subscriber's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SubscriberStats {
    /// Updates accepted (valid, epoch increasing).
    pub updates_received: u64,
    /// Messages rejected: malformed, truncated, invalid or out of order.
    pub rejected_messages: u64,
    /// The last accepted epoch (0 if none).
    pub last_epoch: u64,
}

/// A connection to the calibration service.
///
/// Every update it yields has passed [`crate::wire::decode`]'s checks (finite, orthonormal,
/// known sensor, positive focal lengths) and has an epoch strictly above the previous one
/// yielded. Anything else is rejected and counted, never fatal. Poll [`AsFd::as_fd`] for
/// readability to wait on it alongside other work.
#[derive(Debug)]
pub struct CalibSubscriber {
    fd: OwnedFd,
    path: PathBuf,
    role: Role,
    last_epoch: CalibEpoch,
    stats: SubscriberStats,
    last_rejection: Option<Rejection>,
    closed: bool,
    buf: Box<[u8; RECV_BUF]>,
}

impl CalibSubscriber {
    /// Connects to the service's socket and says hello as `role`. The service then sends
    /// every live epoch, then updates as they are announced.
    ///
    /// # Errors
    /// [`SubscribeError`] if the socket cannot be reached (not yet there, refused) or the
    /// hello cannot be sent.
    pub fn connect(socket_path: &Path, role: Role) -> Result<Self, SubscribeError> {
        let err = |step: &'static str| {
            move |e: Errno| SubscribeError { path: socket_path.to_path_buf(), step, source: e.into() }
        };
        let fd = socket_with(AddressFamily::UNIX, SocketType::SEQPACKET, SocketFlags::CLOEXEC, None)
            .map_err(err("socket"))?;
        let addr = SocketAddrUnix::new(socket_path).map_err(err("socket"))?;
        connect(&fd, &addr).map_err(err("connect"))?;
        let hello = wire::encode_hello(role);
        let n = send(&fd, &hello, SendFlags::NOSIGNAL).map_err(err("hello"))?;
        if n != hello.len() {
            return Err(err("hello")(Errno::MSGSIZE));
        }
        Ok(Self {
            fd,
            path: socket_path.to_path_buf(),
            role,
            last_epoch: CalibEpoch::NONE,
            stats: SubscriberStats::default(),
            last_rejection: None,
            closed: false,
            buf: Box::new([0; RECV_BUF]),
        })
    }

    /// [`CalibSubscriber::connect`], retried every 10 ms until it succeeds, `timeout` passes
    /// or `stop` is set (for a role started before the service is listening).
    ///
    /// # Errors
    /// The last [`SubscribeError`].
    pub fn connect_retry(
        socket_path: &Path,
        role: Role,
        timeout: Duration,
        stop: Option<&AtomicBool>,
    ) -> Result<Self, SubscribeError> {
        let deadline = Instant::now() + timeout;
        loop {
            match Self::connect(socket_path, role) {
                Ok(s) => return Ok(s),
                Err(e) if Instant::now() >= deadline || stop.is_some_and(|s| s.load(Ordering::Relaxed)) => {
                    return Err(e)
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }

    /// The next checked update, if one is waiting; `Ok(None)` if none is. Rejected messages
    /// are counted and skipped.
    ///
    /// # Errors
    /// [`RecvError::Disconnected`] once the service has closed the connection.
    pub fn try_recv(&mut self) -> Result<Option<CalibrationSet>, RecvError> {
        loop {
            if self.closed {
                return Err(RecvError::Disconnected);
            }
            match recv(&self.fd, &mut self.buf[..], RecvFlags::DONTWAIT | RecvFlags::TRUNC) {
                Ok((_, 0)) => {
                    self.closed = true;
                }
                Ok((n, full)) => {
                    let result = if full > n {
                        Err(Rejection::Wire(WireError::Oversize(full)))
                    } else {
                        self.check(n)
                    };
                    match result {
                        Ok(set) => return Ok(Some(set)),
                        Err(why) => self.reject(why),
                    }
                }
                Err(Errno::AGAIN) => return Ok(None),
                Err(Errno::INTR) => {}
                Err(Errno::CONNRESET | Errno::PIPE | Errno::NOTCONN) => self.closed = true,
                Err(e) => return Err(RecvError::Io(e.into())),
            }
        }
    }

    /// The next checked update, waiting up to `timeout`; `Ok(None)` on timeout.
    ///
    /// # Errors
    /// As [`CalibSubscriber::try_recv`].
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<CalibrationSet>, RecvError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(set) = self.try_recv()? {
                return Ok(Some(set));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            let ts = Timespec::try_from(left).unwrap_or(Timespec { tv_sec: 1, tv_nsec: 0 });
            let mut fds = [PollFd::new(&self.fd, PollFlags::IN)];
            match poll(&mut fds, Some(&ts)) {
                Ok(_) | Err(Errno::INTR) => {}
                Err(e) => return Err(RecvError::Io(e.into())),
            }
        }
    }

    /// Inserts every waiting update into `store`; returns how many were received.
    ///
    /// # Errors
    /// As [`CalibSubscriber::try_recv`] (updates received before the error are inserted).
    pub fn drain_into(&mut self, store: &mut CalibStore) -> Result<usize, RecvError> {
        let mut n = 0;
        while let Some(set) = self.try_recv()? {
            store.insert(set);
            n += 1;
        }
        Ok(n)
    }

    fn check(&mut self, n: usize) -> Result<CalibrationSet, Rejection> {
        match wire::decode(&self.buf[..n]).map_err(Rejection::Wire)? {
            Message::Hello(_) => Err(Rejection::UnexpectedHello),
            Message::Update(set) => {
                if set.epoch <= self.last_epoch {
                    return Err(Rejection::OutOfOrder { epoch: set.epoch, last: self.last_epoch });
                }
                self.last_epoch = set.epoch;
                self.stats.last_epoch = set.epoch.0;
                self.stats.updates_received += 1;
                Ok(set)
            }
        }
    }

    fn reject(&mut self, why: Rejection) {
        self.stats.rejected_messages += 1;
        tracing::warn!(role = %self.role, "calibration message rejected: {why}");
        self.last_rejection = Some(why);
    }

    /// Updates accepted so far.
    #[must_use]
    pub const fn updates_received(&self) -> u64 {
        self.stats.updates_received
    }

    /// Messages rejected so far.
    #[must_use]
    pub const fn rejected_messages(&self) -> u64 {
        self.stats.rejected_messages
    }

    /// Both counters and the last epoch.
    #[must_use]
    pub const fn stats(&self) -> SubscriberStats {
        self.stats
    }

    /// The last accepted epoch ([`CalibEpoch::NONE`] before the first).
    #[must_use]
    pub const fn last_epoch(&self) -> CalibEpoch {
        self.last_epoch
    }

    /// Why the last rejected message was rejected.
    #[must_use]
    pub const fn last_rejection(&self) -> Option<&Rejection> {
        self.last_rejection.as_ref()
    }

    /// Whether the service has closed the connection.
    #[must_use]
    pub const fn is_disconnected(&self) -> bool {
        self.closed
    }

    /// The role this subscriber said hello as.
    #[must_use]
    pub const fn role(&self) -> Role {
        self.role
    }

    /// The socket path.
    #[must_use]
    pub fn socket_path(&self) -> &Path {
        &self.path
    }
}

impl AsFd for CalibSubscriber {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
