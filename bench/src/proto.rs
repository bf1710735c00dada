//! What every transport carries, and the traits both ends implement.
//!
//! A message is `size` payload bytes. Its first two little-endian words are the message's
//! sequence number within the phase and its flags ([`END`] marks the last message of a
//! phase); the rest is a fixed byte pattern. The consumer echoes acks: in a latency phase
//! one per message (the seq it read), in a throughput phase one every
//! [`Consumer::ack_every`] messages and one after [`END`] (the seq it read + 1, so that the
//! producer's flow-control window stays right even if frames were lost).

use std::io;

use shared::checksum::Checksum;

/// Flag: the last message of a phase.
pub const END: u64 = 1;

/// The smallest payload the benchmark sends (room for the seq and flags words).
pub const MIN_SIZE: usize = 16;

/// The payload pattern for a message of `size` bytes (seq and flags left zero).
#[must_use]
pub fn pattern(size: usize) -> Vec<u8> {
    let mut v: Vec<u8> = (0..size).map(|i| (i.wrapping_mul(31) ^ (i >> 8)) as u8).collect();
    v[..MIN_SIZE.min(size)].fill(0);
    v
}

/// Writes the seq and flags words at the start of `payload`.
#[inline]
pub fn stamp(payload: &mut [u8], seq: u64, flags: u64) {
    payload[..8].copy_from_slice(&seq.to_le_bytes());
    payload[8..16].copy_from_slice(&flags.to_le_bytes());
}

/// Reads the seq and flags words of a payload (zeroes if it is too short).
#[inline]
#[must_use]
pub fn read_stamp(payload: &[u8]) -> (u64, u64) {
    let word = |r: std::ops::Range<usize>| {
        payload.get(r).and_then(|b| <[u8; 8]>::try_from(b).ok()).map_or(0, u64::from_le_bytes)
    };
    (word(0..8), word(8..16))
}

/// The ring's checksum ([`shared::checksum`]) over a buffer, four words at a time: what a
/// socket or pipe consumer pays to touch every byte it received, as the ring reader does
/// while it copies.
#[must_use]
pub fn checksum(bytes: &[u8]) -> u64 {
    let mut sum = Checksum::new();
    let mut quads = bytes.chunks_exact(32);
    for q in &mut quads {
        let w = |k: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&q[8 * k..8 * k + 8]);
            u64::from_le_bytes(b)
        };
        sum.add4([w(0), w(1), w(2), w(3)]);
    }
    let first = bytes.len() / 32 * 4;
    let rest = quads.remainder();
    for i in 0..rest.len().div_ceil(8) {
        sum.add_at(first + i, shared::checksum::word_at(rest, i));
    }
    sum.finish(bytes.len() as u64)
}

/// One message as the consumer saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    /// Its seq word.
    pub seq: u64,
    /// Its flags word.
    pub flags: u64,
    /// Payload bytes.
    pub len: usize,
    /// Frames the transport reported lost before this one (ring overruns).
    pub lost: u64,
}

/// The producing end of a transport, owned by the parent process.
pub trait Producer {
    /// Stamps the payload with `seq` and `flags` and sends it (blocking while the transport
    /// is full).
    ///
    /// # Errors
    /// The transport's error, or a timeout if the peer stopped reading.
    fn send(&mut self, seq: u64, flags: u64) -> io::Result<()>;

    /// Waits for the next ack and returns its value.
    ///
    /// # Errors
    /// The transport's error, or a timeout if the peer stopped answering.
    fn recv_ack(&mut self) -> io::Result<u64>;

    /// How many messages may be unacknowledged at once in a throughput phase, for transports
    /// whose writer never waits for its reader (the ring, iceoryx2); `None` where the kernel
    /// applies back-pressure.
    fn window(&self) -> Option<u64>;
}

/// The consuming end of a transport, owned by the peer process.
pub trait Consumer {
    /// Waits for the next message, reads every byte of it and returns what it saw.
    ///
    /// # Errors
    /// The transport's error, a timeout, or a message that fails validation.
    fn recv(&mut self) -> io::Result<Received>;

    /// Sends an ack carrying `value`.
    ///
    /// # Errors
    /// The transport's error.
    fn send_ack(&mut self, value: u64) -> io::Result<()>;

    /// In a throughput phase, ack every this many messages (`None`: only after [`END`]).
    fn ack_every(&self) -> Option<u64>;
}

/// Flow-control geometry for shared-memory transports at one payload size: `slots` buffered
/// messages (ring slots, iceoryx2 subscriber buffer), a power of two from 4 to 256, holding at
/// most 8 MiB where 4 slots allow it (a quarter of this machine's L3: a ring cycles through all
/// of its slots, so a bigger one would measure DRAM misses rather than the transport).
#[must_use]
pub fn slots_for(size: usize) -> u32 {
    let by_memory = (8usize << 20) / size.max(1);
    let pow2 = if by_memory == 0 { 1 } else { 1usize << by_memory.ilog2() };
    u32::try_from(pow2.clamp(4, 256)).unwrap_or(4)
}

/// A timeout error.
#[must_use]
pub fn timed_out(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, format!("peer timed out: {what}"))
}

/// An invalid-data error.
#[must_use]
pub fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_matches_the_reference() {
        for n in [0usize, 1, 7, 8, 31, 32, 33, 64, 100, 4097] {
            let p = pattern(n.max(MIN_SIZE))[..n].to_vec();
            assert_eq!(checksum(&p), shared::checksum::checksum_bytes(&p), "n {n}");
        }
    }

    #[test]
    fn stamps_round_trip() {
        let mut p = pattern(64);
        stamp(&mut p, 42, END);
        assert_eq!(read_stamp(&p), (42, END));
    }

    #[test]
    fn slots_are_bounded_powers_of_two() {
        assert_eq!(slots_for(64), 256);
        assert_eq!(slots_for(1 << 20), 8);
        assert_eq!(slots_for(64 << 10), 128);
        assert_eq!(slots_for(16 << 20), 4);
        assert!(slots_for(3 << 20).is_power_of_two());
    }
}
