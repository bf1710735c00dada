//! # epochfuse transport benchmark
//!
//! Two processes: this one produces, a copy of itself (re-executed with the hidden `peer`
//! subcommand) consumes. For each transport and payload size it measures
//!
//! - **one-way latency** by ping-pong: the producer sends one message and waits for the
//!   consumer's small ack over the same kind of transport (the ring acks through a second
//!   ring); one-way = round trip / 2; p50, p99 and p99.9 per repeat;
//! - **streaming throughput**: the producer sends as fast as the transport takes messages; the
//!   consumer reads every byte of each (the ring and iceoryx2 consumers checksum the payload in
//!   place, the ring's validation folded into the same pass; the socket and pipe consumers
//!   checksum their buffer) and acks at the end. Transports whose
//!   writer never waits for its reader (the ring, iceoryx2) are flow-controlled by acks.
//!
//! At each size every transport gets its own peer and a warm-up; then `--repeats` rounds run
//! both phases on every transport in turn (a rotating order), each phase bounded by a message
//! count and by `--duration-ms`, so that load from other work on the machine falls on all
//! transports alike. Results: min/median/max of the repeats,
//! printed and written to `<out>/transport.md`, `<out>/transport.csv` and
//! `<out>/transport.svg`.
//!
//! ```text
//! cargo run --release --manifest-path bench/Cargo.toml -- transport [--quick] [--out docs]
//! ```

#![forbid(unsafe_code)]

mod atomic_copy;
mod control;
mod host;
#[cfg(feature = "iceoryx2")]
mod iox;
mod peer;
mod phases;
mod proto;
mod report;
mod run;
mod session;
mod stats;
mod transports;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::transports::Transport;

/// epochfuse transport benchmark.
#[derive(Debug, Parser)]
#[command(name = "epochfuse-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Two-process latency and throughput of the ring against sockets, pipes and iceoryx2.
    Transport(TransportArgs),
    /// In-process prototype: the ring's Relaxed-atomic copy loops, today's shape and fused, vs
    /// memcpy (what a faster `shared::mapping` could reach).
    AtomicCopy,
    /// The consuming end (started by `transport`).
    #[command(hide = true)]
    Peer(PeerArgs),
}

#[derive(Debug, Args)]
struct TransportArgs {
    /// Payload sizes, comma-separated, with optional K/M suffix (powers of 1024). Default:
    /// 64 B to 16 MiB in powers of 4 (with --quick: 64, 4K, 256K, 4M).
    #[arg(long, value_delimiter = ',', value_parser = parse_size)]
    sizes: Vec<usize>,
    /// Transports, comma-separated. Default: all.
    #[arg(long, value_delimiter = ',')]
    transports: Vec<Transport>,
    /// Repeats of each measurement (default 5; 1 with --quick).
    #[arg(long)]
    repeats: Option<usize>,
    /// Time bound of each measured phase, milliseconds (default 250; 80 with --quick).
    #[arg(long)]
    duration_ms: Option<u64>,
    /// Count bound of a latency phase (round trips).
    #[arg(long, default_value_t = 20_000)]
    lat_count: u64,
    /// Count bound of a throughput phase (messages).
    #[arg(long, default_value_t = 2_000_000)]
    thr_count: u64,
    /// Pause between round trips of the idle-reader latency phase (blocking transports only),
    /// microseconds; long enough for a blocking reader to go to sleep. 0 skips the phase.
    #[arg(long, default_value_t = 200)]
    idle_gap_us: u64,
    /// Count bound of an idle-reader latency phase (round trips); its time bound is half of
    /// --duration-ms.
    #[arg(long, default_value_t = 1000)]
    idle_count: u64,
    /// Warm-up per (transport, size), milliseconds, for each phase (default 60; 20 with --quick).
    #[arg(long)]
    warmup_ms: Option<u64>,
    /// A smoke run: a few sizes, one repeat, short phases.
    #[arg(long)]
    quick: bool,
    /// Where to write transport.md, transport.csv and transport.svg.
    #[arg(long, default_value = "docs")]
    out: PathBuf,
    /// Do not pin the two processes to separate CPUs.
    #[arg(long)]
    no_pin: bool,
}

#[derive(Debug, Args)]
struct PeerArgs {
    #[arg(long)]
    transport: Transport,
    #[arg(long)]
    size: usize,
    #[arg(long)]
    dir: PathBuf,
    #[arg(long)]
    name: String,
    #[arg(long)]
    seqpacket_chunk: usize,
    #[arg(long)]
    cpu: Option<usize>,
}

fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => {
            let mult = match s[i..].to_ascii_lowercase().as_str() {
                "b" => 1,
                "k" | "kib" | "kb" => 1 << 10,
                "m" | "mib" | "mb" => 1 << 20,
                other => return Err(format!("unknown size suffix '{other}'")),
            };
            (&s[..i], mult)
        }
        None => (s, 1),
    };
    let n: usize = num.trim().parse().map_err(|e| format!("bad size '{s}': {e}"))?;
    let size = n.checked_mul(mult).ok_or_else(|| format!("size '{s}' overflows"))?;
    if !(proto::MIN_SIZE..=256 << 20).contains(&size) {
        return Err(format!("size {size} outside {}..=256 MiB", proto::MIN_SIZE));
    }
    Ok(size)
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Transport(args) => run::run_transport(&args),
        Cmd::AtomicCopy => {
            atomic_copy::run();
            Ok(())
        }
        Cmd::Peer(args) => peer::run(&args),
    };
    if let Err(e) = result {
        eprintln!("epochfuse-bench: {e}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("64"), Ok(64));
        assert_eq!(parse_size("4K"), Ok(4096));
        assert_eq!(parse_size("16MiB"), Ok(16 << 20));
        assert!(parse_size("8").is_err());
        assert!(parse_size("1G").is_err());
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
