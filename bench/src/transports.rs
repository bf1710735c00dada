//! The transports under test, both ends of each: the epochfuse ring, a Unix stream socket, a
//! Unix seqpacket socket and a pipe (named FIFOs). iceoryx2 lives in [`crate::iox`].
//!
//! Setup is split in two so the parent can spawn its peer in between: [`prepare`] runs before
//! the spawn (create the ring segment, bind the socket, make the FIFOs), [`Prepared::connect`]
//! after it, reading the peer's `ready` line at the point where the transport needs it.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketAddrUnix, SocketFlags, SocketType};
use shared::checksum::Checksum;
use shared::frames::PayloadSink;
use shared::ring::{FrameInfo, FrameMeta, InPlace, ReadOutcome, RingReader, RingWriter};
use shared::segment::SegmentSpec;
use shared::{CalibEpoch, StreamKind, TimestampNs};

use crate::control::Control;
use crate::proto::{self, checksum, invalid, read_stamp, stamp, timed_out, Consumer, Producer, Received};

/// How long either end waits for the other before giving up.
pub const PEER_TIMEOUT: Duration = Duration::from_secs(20);

/// How long a waiting end keeps trying: it spins (looking at the clock every 4096 spins) or
/// blocks in slices, and gives up [`PEER_TIMEOUT`] after the first look at the clock.
#[derive(Debug, Default)]
pub struct Patience {
    deadline: Option<Instant>,
    spins: u32,
}

impl Patience {
    /// One spin; returns whether it is time to look at the clock ([`Patience::check`]).
    #[inline]
    pub fn spin(&mut self) -> bool {
        std::hint::spin_loop();
        self.spins = self.spins.wrapping_add(1);
        self.spins.is_multiple_of(4096)
    }

    /// A timeout error naming `what` once [`PEER_TIMEOUT`] has passed since the first check.
    ///
    /// # Errors
    /// [`io::ErrorKind::TimedOut`] when the peer took too long.
    pub fn check(&mut self, what: &str) -> io::Result<()> {
        let d = *self.deadline.get_or_insert_with(|| Instant::now() + PEER_TIMEOUT);
        if Instant::now() > d {
            return Err(timed_out(what));
        }
        Ok(())
    }
}

/// Payload bytes of an ack (a seq word and a flags word).
const ACK_LEN: usize = 16;

/// Payloads from which the ring's writer reuses the slot its reader released
/// (`RingWriter::reuse_released`). Smaller rings stay in cache as they cycle, and writing
/// into the slot the reader has just read (its lines still in the reader's cache) cost more
/// than it saved: 16 KiB polling 1.2–1.5 → 2.2–2.4 µs, no gain at 64–256 KiB; from 1 MiB it
/// wins (`docs/benchmarks.md`).
const REUSE_FROM: usize = 512 << 10;

/// Slots of the consumer → producer ack ring.
const ACK_SLOTS: u32 = 64;

/// A transport under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum Transport {
    /// epochfuse ring, read in place; waits with `RingReader::wait` (bounded spin, then futex).
    RingBlock,
    /// epochfuse ring, read in place; spins on `peek_next`.
    RingPoll,
    /// Unix stream socket, 8-byte length prefix.
    UdsStream,
    /// Unix seqpacket socket, 8-byte length prefix, chunked above the kernel's message size.
    UdsSeqpacket,
    /// A pair of named pipes, 8-byte length prefix.
    Pipe,
    /// iceoryx2 publish/subscribe, woken by an iceoryx2 event (listener).
    Iox2Block,
    /// iceoryx2 publish/subscribe, spinning on `receive`.
    Iox2Poll,
}

impl Transport {
    /// Every transport, in table order.
    pub const ALL: [Self; 7] = [
        Self::RingBlock,
        Self::RingPoll,
        Self::UdsStream,
        Self::UdsSeqpacket,
        Self::Pipe,
        Self::Iox2Block,
        Self::Iox2Poll,
    ];

    /// The name used on the command line and in tables.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::RingBlock => "ring-block",
            Self::RingPoll => "ring-poll",
            Self::UdsStream => "uds-stream",
            Self::UdsSeqpacket => "uds-seqpacket",
            Self::Pipe => "pipe",
            Self::Iox2Block => "iox2-block",
            Self::Iox2Poll => "iox2-poll",
        }
    }

    /// Whether this transport waits by blocking (as opposed to spinning).
    #[must_use]
    pub fn blocking(self) -> bool {
        !matches!(self, Self::RingPoll | Self::Iox2Poll)
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Everything both ends agree on for one run.
#[derive(Clone, Debug)]
pub struct RunSpec {
    /// The transport.
    pub transport: Transport,
    /// Payload bytes per message.
    pub size: usize,
    /// Directory (under /dev/shm) for segments, sockets and FIFOs.
    pub dir: PathBuf,
    /// Unique name of this run (iceoryx2 service names).
    pub name: String,
    /// Largest seqpacket packet to send.
    pub seqpacket_chunk: usize,
}

impl RunSpec {
    /// A file of this run's transport in the shared directory (each transport its own names:
    /// at one size all transports' peers are alive at once).
    fn path(&self, leaf: &str) -> PathBuf {
        self.dir.join(format!("{}-{leaf}", self.transport.name()))
    }
}

/// Producer-side state between [`prepare`] and [`Prepared::connect`].
#[derive(Debug)]
pub enum Prepared {
    /// The data ring exists; the ack ring is attached once the peer is ready.
    Ring(Box<RingWriter>, RunSpec),
    /// Listening.
    Stream(UnixListener, RunSpec),
    /// Listening.
    Seqpacket(OwnedFd, RunSpec),
    /// The FIFOs exist.
    Pipe(RunSpec),
    /// The iceoryx2 services and the producer's ports exist.
    #[cfg(feature = "iceoryx2")]
    Iox2(Box<crate::iox::IoxProducer>),
}

/// Producer-side setup before the peer is spawned.
///
/// # Errors
/// Any setup failure.
pub fn prepare(spec: &RunSpec) -> io::Result<Prepared> {
    let spec = spec.clone();
    Ok(match spec.transport {
        Transport::RingBlock | Transport::RingPoll => {
            let seg = SegmentSpec::new(StreamKind::Camera, proto::slots_for(spec.size), spec.size as u64);
            let (w, _) =
                RingWriter::create_or_takeover(&spec.path("data.seg"), &seg).map_err(io::Error::other)?;
            Prepared::Ring(Box::new(w), spec)
        }
        Transport::UdsStream => Prepared::Stream(UnixListener::bind(spec.path("stream.sock"))?, spec),
        Transport::UdsSeqpacket => {
            let fd = seqpacket_socket()?;
            rustix::net::bind(&fd, &SocketAddrUnix::new(spec.path("seqpacket.sock"))?)?;
            rustix::net::listen(&fd, 1)?;
            Prepared::Seqpacket(fd, spec)
        }
        Transport::Pipe => {
            for leaf in ["p2c.fifo", "c2p.fifo"] {
                rustix::fs::mknodat(
                    rustix::fs::CWD,
                    spec.path(leaf),
                    rustix::fs::FileType::Fifo,
                    rustix::fs::Mode::from_raw_mode(0o600),
                    0,
                )?;
            }
            Prepared::Pipe(spec)
        }
        Transport::Iox2Block | Transport::Iox2Poll => {
            #[cfg(feature = "iceoryx2")]
            {
                Prepared::Iox2(Box::new(crate::iox::IoxProducer::new(&spec)?))
            }
            #[cfg(not(feature = "iceoryx2"))]
            {
                return Err(io::Error::other("built without the iceoryx2 feature"));
            }
        }
    })
}

impl Prepared {
    /// Finishes the producer's side once the peer runs; consumes the peer's `ready` line.
    ///
    /// # Errors
    /// Any setup failure, or the peer failing to get ready.
    pub fn connect(self, ctl: &mut Control) -> io::Result<Box<dyn Producer>> {
        Ok(match self {
            Self::Ring(mut writer, spec) => {
                ctl.expect("ready")?;
                // The peer's one reader is attached and counts every frame: once it is done
                // with all of them, the next frame goes into the slot it just released.
                if spec.size >= REUSE_FROM {
                    writer.reuse_released(Some(1));
                }
                let acks = RingReader::attach(&spec.path("ack.seg"), StreamKind::Camera)
                    .map_err(io::Error::other)?;
                Box::new(RingProducer {
                    payload: proto::pattern(spec.size),
                    window: u64::from(proto::slots_for(spec.size)) - 1,
                    poll: !spec.transport.blocking(),
                    writer: *writer,
                    acks,
                    buf: Vec::with_capacity(64),
                })
            }
            Self::Stream(listener, spec) => {
                ctl.expect("ready")?;
                let (tx, _) = listener.accept()?;
                let rx = tx.try_clone()?;
                Box::new(FramedProducer::new(BufReader::new(rx), tx, spec.size))
            }
            Self::Seqpacket(listener, spec) => {
                ctl.expect("ready")?;
                let fd = rustix::net::accept_with(&listener, SocketFlags::CLOEXEC)?;
                Box::new(SeqpacketProducer {
                    fd,
                    msg: framed_message(spec.size),
                    chunk: spec.seqpacket_chunk,
                    ack: [0; 8 + ACK_LEN],
                })
            }
            Self::Pipe(spec) => {
                // The peer opens p2c for reading, then c2p for writing: the same order here.
                let tx = OpenOptions::new().write(true).open(spec.path("p2c.fifo"))?;
                let rx = File::open(spec.path("c2p.fifo"))?;
                ctl.expect("ready")?;
                Box::new(FramedProducer::new(BufReader::new(rx), tx, spec.size))
            }
            #[cfg(feature = "iceoryx2")]
            Self::Iox2(p) => {
                ctl.expect("ready")?;
                p
            }
        })
    }
}

/// Consumer-side setup in the peer (after the producer's [`prepare`]).
///
/// # Errors
/// Any setup failure.
pub fn open_consumer(spec: &RunSpec) -> io::Result<Box<dyn Consumer>> {
    Ok(match spec.transport {
        Transport::RingBlock | Transport::RingPoll => {
            let reader =
                RingReader::attach(&spec.path("data.seg"), StreamKind::Camera).map_err(io::Error::other)?;
            let ack_spec = SegmentSpec::new(StreamKind::Camera, ACK_SLOTS, ACK_LEN as u64);
            let (acks, _) =
                RingWriter::create_or_takeover(&spec.path("ack.seg"), &ack_spec).map_err(io::Error::other)?;
            Box::new(RingConsumer {
                reader,
                acks,
                ack: [0; ACK_LEN],
                poll: !spec.transport.blocking(),
                ack_every: (u64::from(proto::slots_for(spec.size)) / 4).max(1),
            })
        }
        Transport::UdsStream => {
            let tx = UnixStream::connect(spec.path("stream.sock"))?;
            let rx = tx.try_clone()?;
            Box::new(FramedConsumer::new(BufReader::with_capacity(FRAMED_BUF, rx), tx, spec.size))
        }
        Transport::UdsSeqpacket => {
            let fd = seqpacket_socket()?;
            rustix::net::connect(&fd, &SocketAddrUnix::new(spec.path("seqpacket.sock"))?)?;
            Box::new(SeqpacketConsumer { fd, buf: vec![0; 8 + spec.size], chunk: spec.seqpacket_chunk })
        }
        Transport::Pipe => {
            let rx = File::open(spec.path("p2c.fifo"))?;
            let tx = OpenOptions::new().write(true).open(spec.path("c2p.fifo"))?;
            Box::new(FramedConsumer::new(BufReader::with_capacity(FRAMED_BUF, rx), tx, spec.size))
        }
        Transport::Iox2Block | Transport::Iox2Poll => {
            #[cfg(feature = "iceoryx2")]
            {
                Box::new(crate::iox::IoxConsumer::new(spec)?)
            }
            #[cfg(not(feature = "iceoryx2"))]
            {
                return Err(io::Error::other("built without the iceoryx2 feature"));
            }
        }
    })
}

/// A fresh, unbound Unix seqpacket socket.
fn seqpacket_socket() -> io::Result<OwnedFd> {
    Ok(rustix::net::socket_with(AddressFamily::UNIX, SocketType::SEQPACKET, SocketFlags::CLOEXEC, None)?)
}

/// Spins (poll) or waits on the futex (block) until the next frame is read and validated.
/// Overruns and stale slots are added to `lost`; a frame that fails validation is an error.
fn ring_next(
    reader: &mut RingReader,
    buf: &mut Vec<u8>,
    poll: bool,
    lost: &mut u64,
) -> io::Result<FrameInfo> {
    let mut patience = Patience::default();
    loop {
        match reader.read_next(buf) {
            ReadOutcome::Frame(info) => return Ok(info),
            ReadOutcome::Torn => {}
            ReadOutcome::Overrun { lost: n } => *lost += n.max(1),
            ReadOutcome::Stale { .. } => *lost += 1,
            ReadOutcome::Invalid(why) => return Err(invalid(format!("ring frame refused: {why}"))),
            ReadOutcome::Empty => {
                let look = if poll { patience.spin() } else { !reader.wait(Duration::from_millis(200)) };
                if look {
                    patience.check("ring")?;
                }
            }
        }
    }
}

/// The ring's producer: writes the payload in place through a loan, commits, and reads acks
/// from the peer's ack ring.
#[derive(Debug)]
pub struct RingProducer {
    writer: RingWriter,
    acks: RingReader,
    payload: Vec<u8>,
    buf: Vec<u8>,
    window: u64,
    poll: bool,
}

impl Producer for RingProducer {
    fn send(&mut self, seq: u64, flags: u64) -> io::Result<()> {
        stamp(&mut self.payload, seq, flags);
        let mut loan = self.writer.loan();
        loan.push(&self.payload).map_err(io::Error::other)?;
        loan.commit(FrameMeta { capture: TimestampNs(seq), epoch: CalibEpoch(1) });
        Ok(())
    }

    fn recv_ack(&mut self) -> io::Result<u64> {
        let mut lost = 0;
        ring_next(&mut self.acks, &mut self.buf, self.poll, &mut lost)?;
        Ok(read_stamp(&self.buf).0)
    }

    fn window(&self) -> Option<u64> {
        Some(self.window)
    }
}

/// What the ring's consumer computes from a frame in place: its checksum of every byte (as
/// the iceoryx2 consumer computes over its sample) and the stamp words.
#[derive(Debug, Default)]
struct InPlaceSum {
    sum: Checksum,
    seq: u64,
    flags: u64,
}

/// Spins (poll) or waits on the futex (block) until the next frame has been read in place and
/// validated: learnt from its header ([`RingReader::peek_next`]), then every payload word
/// checksummed straight from the slot in one pass with the ring's own checksum folded in
/// ([`RingReader::read_at_quads`]: each 32 bytes loaded once, in registers, for both sums;
/// no copy).
/// Overruns and stale slots are added to `lost`; a frame that fails validation is an error.
fn ring_next_in_place(
    reader: &mut RingReader,
    poll: bool,
    lost: &mut u64,
) -> io::Result<(FrameInfo, InPlaceSum)> {
    let mut patience = Patience::default();
    loop {
        let Some((frame, _)) = reader.peek_next() else {
            let look = if poll { patience.spin() } else { !reader.wait(Duration::from_millis(200)) };
            if look {
                patience.check("ring")?;
            }
            continue;
        };
        let read = reader.read_at_quads(frame.seq(), InPlaceSum::default(), |s, first, words| {
            if first == 0 {
                s.seq = words.first().copied().unwrap_or(0);
                s.flags = words.get(1).copied().unwrap_or(0);
            }
            // A whole quad, or the last few words: the same sum as `proto::checksum` over a
            // socket consumer's buffer.
            if let &[w0, w1, w2, w3] = words {
                s.sum.add4([w0, w1, w2, w3]);
            } else {
                for (k, w) in words.iter().enumerate() {
                    s.sum.add_at(first + k, *w);
                }
            }
        });
        match read {
            InPlace::Frame(info, s) => return Ok((info, s)),
            InPlace::Rejected(ReadOutcome::Overrun { lost: n }) => *lost += n.max(1),
            InPlace::Rejected(ReadOutcome::Stale { .. }) => *lost += 1,
            InPlace::Rejected(ReadOutcome::Invalid(why)) => {
                return Err(invalid(format!("ring frame refused: {why}")));
            }
            // Torn through every retry: the frame is gone by the time it is retried.
            InPlace::Rejected(_) => *lost += 1,
        }
    }
}

/// The ring's consumer: reads each frame in place (no copy), checksumming every byte while
/// the read validates it, and writes acks into its own ack ring.
#[derive(Debug)]
pub struct RingConsumer {
    reader: RingReader,
    acks: RingWriter,
    ack: [u8; ACK_LEN],
    poll: bool,
    ack_every: u64,
}

impl Consumer for RingConsumer {
    fn recv(&mut self) -> io::Result<Received> {
        let mut lost = 0;
        let (info, s) = ring_next_in_place(&mut self.reader, self.poll, &mut lost)?;
        std::hint::black_box(s.sum.finish(info.len as u64));
        Ok(Received { seq: s.seq, flags: s.flags, len: info.len, lost })
    }

    fn send_ack(&mut self, value: u64) -> io::Result<()> {
        stamp(&mut self.ack, value, 0);
        let mut loan = self.acks.loan();
        loan.push(&self.ack).map_err(io::Error::other)?;
        loan.commit(FrameMeta { capture: TimestampNs(value), epoch: CalibEpoch(1) });
        Ok(())
    }

    fn ack_every(&self) -> Option<u64> {
        Some(self.ack_every)
    }
}

/// Capacity of a framed consumer's read buffer: reads of at least this size bypass it.
const FRAMED_BUF: usize = 64 << 10;

/// A message buffer: 8-byte little-endian length, then the payload.
fn framed_message(size: usize) -> Vec<u8> {
    let mut m = (size as u64).to_le_bytes().to_vec();
    m.extend_from_slice(&proto::pattern(size));
    m
}

/// One end of a byte-stream link (stream socket, pipe): the peer's bytes come in on `rx`,
/// ours go out on `tx`. `msg` is the message buffer (written by the producer, read into by the
/// consumer); `ack` is the ack with its length prefix.
#[derive(Debug)]
struct FramedEnd<R, W> {
    rx: BufReader<R>,
    tx: W,
    msg: Vec<u8>,
    ack: [u8; 8 + ACK_LEN],
}

/// A producer over a byte stream (stream socket, pipe): one `write_all` of prefix + payload.
#[derive(Debug)]
pub struct FramedProducer<R, W>(FramedEnd<R, W>);

impl<R: Read, W: Write> FramedProducer<R, W> {
    fn new(rx: BufReader<R>, tx: W, size: usize) -> Self {
        Self(FramedEnd { rx, tx, msg: framed_message(size), ack: [0; 8 + ACK_LEN] })
    }
}

impl<R: Read, W: Write> Producer for FramedProducer<R, W> {
    fn send(&mut self, seq: u64, flags: u64) -> io::Result<()> {
        let end = &mut self.0;
        stamp(&mut end.msg[8..], seq, flags);
        end.tx.write_all(&end.msg)
    }

    fn recv_ack(&mut self) -> io::Result<u64> {
        let end = &mut self.0;
        end.rx.read_exact(&mut end.ack)?;
        let (len, _) = read_stamp(&end.ack);
        if len != ACK_LEN as u64 {
            return Err(invalid(format!("ack of {len} bytes")));
        }
        Ok(read_stamp(&end.ack[8..]).0)
    }

    fn window(&self) -> Option<u64> {
        None
    }
}

/// A consumer over a byte stream: reads prefix and payload into one buffer, checksums it.
#[derive(Debug)]
pub struct FramedConsumer<R, W>(FramedEnd<R, W>);

impl<R: Read, W: Write> FramedConsumer<R, W> {
    fn new(rx: BufReader<R>, tx: W, size: usize) -> Self {
        let mut ack = [0; 8 + ACK_LEN];
        ack[..8].copy_from_slice(&(ACK_LEN as u64).to_le_bytes());
        Self(FramedEnd { rx, tx, msg: vec![0; 8 + size], ack })
    }
}

impl<R: Read, W: Write> Consumer for FramedConsumer<R, W> {
    fn recv(&mut self) -> io::Result<Received> {
        let FramedEnd { rx, msg, .. } = &mut self.0;
        rx.read_exact(&mut msg[..8])?;
        let len = read_stamp(msg).0;
        let end = usize::try_from(len).ok().and_then(|l| l.checked_add(8)).filter(|e| *e <= msg.len());
        let Some(end) = end else {
            return Err(invalid(format!("message of {len} bytes")));
        };
        rx.read_exact(&mut msg[8..end])?;
        std::hint::black_box(checksum(&msg[8..end]));
        let (seq, flags) = read_stamp(&msg[8..end]);
        Ok(Received { seq, flags, len: end - 8, lost: 0 })
    }

    fn send_ack(&mut self, value: u64) -> io::Result<()> {
        let end = &mut self.0;
        stamp(&mut end.ack[8..], value, 0);
        end.tx.write_all(&end.ack)
    }

    fn ack_every(&self) -> Option<u64> {
        None
    }
}

/// A seqpacket producer: prefix + payload in one packet, or in packets of at most `chunk`
/// bytes above the kernel's message size limit.
#[derive(Debug)]
pub struct SeqpacketProducer {
    fd: OwnedFd,
    msg: Vec<u8>,
    chunk: usize,
    ack: [u8; 8 + ACK_LEN],
}

impl Producer for SeqpacketProducer {
    fn send(&mut self, seq: u64, flags: u64) -> io::Result<()> {
        stamp(&mut self.msg[8..], seq, flags);
        for packet in self.msg.chunks(self.chunk) {
            let n = rustix::net::send(&self.fd, packet, SendFlags::NOSIGNAL)?;
            if n != packet.len() {
                return Err(invalid(format!("seqpacket send wrote {n} of {} bytes", packet.len())));
            }
        }
        Ok(())
    }

    fn recv_ack(&mut self) -> io::Result<u64> {
        let (n, full) = rustix::net::recv(&self.fd, &mut self.ack[..], RecvFlags::TRUNC)?;
        if n != self.ack.len() || full != n {
            return Err(invalid(format!("seqpacket ack of {full} bytes")));
        }
        Ok(read_stamp(&self.ack[8..]).0)
    }

    fn window(&self) -> Option<u64> {
        None
    }
}

/// A seqpacket consumer: receives packets straight into its message buffer, checksums it.
#[derive(Debug)]
pub struct SeqpacketConsumer {
    fd: OwnedFd,
    buf: Vec<u8>,
    chunk: usize,
}

impl Consumer for SeqpacketConsumer {
    fn recv(&mut self) -> io::Result<Received> {
        let first = self.chunk.min(self.buf.len());
        let (n, full) = rustix::net::recv(&self.fd, &mut self.buf[..first], RecvFlags::TRUNC)?;
        if n < 8 || full != n {
            return Err(invalid(format!("seqpacket packet of {full} bytes")));
        }
        let len = read_stamp(&self.buf).0;
        let end = usize::try_from(len).ok().and_then(|l| l.checked_add(8)).filter(|e| *e <= self.buf.len());
        let Some(end) = end else {
            return Err(invalid(format!("message of {len} bytes")));
        };
        let mut got = n;
        while got < end {
            let want = (end - got).min(self.chunk);
            let (n, full) = rustix::net::recv(&self.fd, &mut self.buf[got..got + want], RecvFlags::TRUNC)?;
            if n == 0 || full != n {
                return Err(invalid(format!("seqpacket chunk of {full} bytes, expected at most {want}")));
            }
            got += n;
        }
        std::hint::black_box(checksum(&self.buf[8..end]));
        let (seq, flags) = read_stamp(&self.buf[8..end]);
        Ok(Received { seq, flags, len: end - 8, lost: 0 })
    }

    fn send_ack(&mut self, value: u64) -> io::Result<()> {
        let mut ack = [0u8; 8 + ACK_LEN];
        ack[..8].copy_from_slice(&(ACK_LEN as u64).to_le_bytes());
        stamp(&mut ack[8..], value, 0);
        rustix::net::send(&self.fd, &ack, SendFlags::NOSIGNAL)?;
        Ok(())
    }

    fn ack_every(&self) -> Option<u64> {
        None
    }
}

/// The largest seqpacket message the kernel takes in one `send` on this machine, found by
/// trying powers of two from 16 MiB down on a fresh socket pair (the limit comes from the
/// socket's send buffer, `net.core.wmem_default`).
///
/// # Errors
/// Socket creation failures.
pub fn seqpacket_max_message() -> io::Result<usize> {
    let (a, b) =
        rustix::net::socketpair(AddressFamily::UNIX, SocketType::SEQPACKET, SocketFlags::CLOEXEC, None)?;
    let buf = vec![0u8; 16 << 20];
    let mut sink = vec![0u8; 16 << 20];
    let mut size = buf.len();
    // Powers of two, then refine linearly in 1 KiB steps above the largest that fits.
    let mut fits = 0;
    while size >= 1024 {
        match rustix::net::send(&a, &buf[..size], SendFlags::DONTWAIT | SendFlags::NOSIGNAL) {
            Ok(_) => {
                rustix::net::recv(&b, &mut sink[..], RecvFlags::empty())?;
                fits = size;
                break;
            }
            Err(_) => size /= 2,
        }
    }
    let mut probe = fits + 1024;
    while probe < 2 * fits.max(1) {
        if rustix::net::send(&a, &buf[..probe], SendFlags::DONTWAIT | SendFlags::NOSIGNAL).is_err() {
            break;
        }
        rustix::net::recv(&b, &mut sink[..], RecvFlags::empty())?;
        fits = probe;
        probe += 1024;
    }
    Ok(fits)
}

/// Removes whatever a run left in its directory.
pub fn cleanup(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let _ = std::fs::remove_file(e.path());
        }
    }
}
