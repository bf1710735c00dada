//! The consuming peer: a copy of the benchmark re-executed with the hidden `peer` subcommand.
//! It opens its end of one transport, then answers the parent's control lines (`lat`, `thr`,
//! `quit`) by consuming one phase each and replying with its `done` counts.

use std::io::{self, BufRead};

use crate::control::reply;
use crate::host::pin_to;
use crate::proto::{self, Consumer, END};
use crate::transports::{self, RunSpec};
use crate::PeerArgs;

/// Runs the peer until the parent says `quit` or closes its stdin.
///
/// # Errors
/// Opening the consumer, a bad control line, or a failed phase.
pub fn run(args: &PeerArgs) -> io::Result<()> {
    if let Some(cpu) = args.cpu {
        pin_to(cpu)?;
    }
    let spec = RunSpec {
        transport: args.transport,
        size: args.size,
        dir: args.dir.clone(),
        name: args.name.clone(),
        seqpacket_chunk: args.seqpacket_chunk,
    };
    let mut consumer = match transports::open_consumer(&spec) {
        Ok(c) => c,
        Err(e) => {
            let _ = reply(&format!("error opening the consumer: {e}"));
            return Err(e);
        }
    };
    reply("ready")?;
    for line in io::stdin().lock().lines() {
        let line = line?;
        let latency = match line.trim() {
            "lat" => true,
            "thr" => false,
            "quit" => return Ok(()),
            other => return Err(io::Error::other(format!("unknown control line '{other}'"))),
        };
        reply("go")?;
        match consume(&mut *consumer, latency, args.size) {
            Ok(d) => reply(&format!("done {} {} {} {}", d.msgs, d.bytes, d.gaps, d.lost))?,
            Err(e) => {
                let _ = reply(&format!("error in the consumer: {e}"));
                return Err(e);
            }
        }
    }
    Ok(())
}

#[derive(Debug, Default)]
/// What the consumer saw in one phase.
pub struct Done {
    pub msgs: u64,
    pub bytes: u64,
    pub gaps: u64,
    pub lost: u64,
}

/// Consumes one phase: every message until the one flagged [`END`].
fn consume(c: &mut dyn Consumer, latency: bool, size: usize) -> io::Result<Done> {
    let ack_every = if latency { 1 } else { c.ack_every().unwrap_or(u64::MAX) };
    let mut d = Done::default();
    let mut expected = 0;
    loop {
        let r = c.recv()?;
        if r.len != size {
            return Err(proto::invalid(format!("message of {} bytes, expected {size}", r.len)));
        }
        d.msgs += 1;
        d.bytes += r.len as u64;
        d.lost += r.lost;
        if r.seq != expected {
            d.gaps += 1;
        }
        expected = r.seq + 1;
        let end = r.flags & END != 0;
        if latency {
            c.send_ack(r.seq)?;
        } else if end || d.msgs.is_multiple_of(ack_every) {
            c.send_ack(r.seq + 1)?;
        }
        if end {
            return Ok(d);
        }
    }
}
