//! # epochfuse transport benchmark
//!
//! Two processes: this one produces, a copy of itself (re-executed with the hidden `peer`
//! subcommand) consumes. For each transport and payload size it measures
//!
//! - **one-way latency** by ping-pong: the producer sends one message and waits for the
//!   consumer's small ack over the same kind of transport (the ring acks through a second
//!   ring); one-way = round trip / 2; p50, p99 and p99.9 per repeat;
//! - **streaming throughput**: the producer sends as fast as the transport takes messages; the
//!   consumer reads every byte of each (the ring's read copies and checksums; the socket, pipe
//!   and iceoryx2 consumers checksum their buffer) and acks at the end. Transports whose
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
#[cfg(feature = "iceoryx2")]
mod iox;
mod proto;
mod report;
mod stats;
mod transports;

use std::io::{self, BufRead};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};

use crate::control::{reply, Control};
use crate::proto::{Consumer, Producer, END};
use crate::report::{size_label, us, Context, Results};
use crate::stats::{Cell, Repeat};
use crate::transports::{RunSpec, Transport};

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
        Cmd::Transport(args) => run_transport(args),
        Cmd::AtomicCopy => {
            atomic_copy::run();
            Ok(())
        }
        Cmd::Peer(args) => run_peer(&args),
    };
    if let Err(e) = result {
        eprintln!("epochfuse-bench: {e}");
        std::process::exit(1);
    }
}

// ---------------------------------------------------------------------------------------
// Pinning

/// The CPUs this process may run on.
fn allowed_cpus() -> Vec<usize> {
    let Ok(set) = rustix::thread::sched_getaffinity(None) else {
        return Vec::new();
    };
    (0..rustix::thread::CpuSet::MAX_CPU).filter(|&c| set.is_set(c)).collect()
}

fn pin_to(cpu: usize) -> io::Result<()> {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    rustix::thread::sched_setaffinity(None, &set)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The consuming peer

fn run_peer(args: &PeerArgs) -> io::Result<()> {
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
struct Done {
    msgs: u64,
    bytes: u64,
    gaps: u64,
    lost: u64,
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

// ---------------------------------------------------------------------------------------
// The producing parent

/// Bounds of one phase.
#[derive(Clone, Copy, Debug)]
struct Bounds {
    duration: Duration,
    lat_count: u64,
    thr_count: u64,
    thr_bytes: u64,
    /// Messages every throughput phase sends at least (the warm-up: enough to fault in every
    /// ring slot and iceoryx2 sample).
    thr_min: u64,
}

/// At least this many round trips / messages per phase, whatever the time bound says.
const MIN_LAT: u64 = 20;
const MIN_THR: u64 = 16;

/// Ping-pong: returns the round trips in ns. With a `gap`, sleeps that long after each round
/// trip (so that a blocking reader is asleep when the next message comes).
fn latency_phase(p: &mut dyn Producer, b: Bounds, gap: Duration) -> io::Result<Vec<u64>> {
    let mut rtts = Vec::with_capacity(b.lat_count.min(1 << 20) as usize);
    let start = Instant::now();
    let mut i = 0;
    loop {
        let last = i + 1 >= b.lat_count || (i + 1 >= MIN_LAT && start.elapsed() >= b.duration);
        let t0 = Instant::now();
        p.send(i, if last { END } else { 0 })?;
        let ack = p.recv_ack()?;
        let rtt = t0.elapsed();
        if ack != i {
            return Err(proto::invalid(format!("ack {ack} for message {i}")));
        }
        rtts.push(u64::try_from(rtt.as_nanos()).unwrap_or(u64::MAX));
        i += 1;
        if last {
            return Ok(rtts);
        }
        if !gap.is_zero() {
            std::thread::sleep(gap);
        }
    }
}

/// Streaming: returns messages sent and the time from the first send to the final ack.
fn throughput_phase(p: &mut dyn Producer, b: Bounds, size: usize) -> io::Result<(u64, Duration)> {
    let window = p.window();
    let min = b.thr_min.max(MIN_THR);
    let max = b.thr_count.min(b.thr_bytes / size as u64).max(min);
    let start = Instant::now();
    let mut acked = 0;
    let mut n = 0;
    loop {
        let last = n + 1 >= max || (n + 1 >= min && n.is_multiple_of(16) && start.elapsed() >= b.duration);
        if let Some(w) = window {
            while n - acked >= w {
                acked = acked.max(p.recv_ack()?);
            }
        }
        p.send(n, if last { END } else { 0 })?;
        n += 1;
        if last {
            break;
        }
    }
    while acked < n {
        acked = acked.max(p.recv_ack()?);
    }
    Ok((n, start.elapsed()))
}

/// Runs one phase on both sides; returns the consumer's `done` numbers.
fn phase<T>(
    ctl: &mut Control,
    word: &str,
    run: impl FnOnce() -> io::Result<T>,
    watchdog: &AtomicU64,
) -> io::Result<(T, Done)> {
    watchdog.fetch_add(1, Ordering::Relaxed);
    ctl.send(word)?;
    ctl.expect("go")?;
    let out = run()?;
    let done = ctl.expect("done")?;
    let n: Vec<u64> = done.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    let [msgs, bytes, gaps, lost] = n[..] else {
        return Err(io::Error::other(format!("bad done line '{done}'")));
    };
    Ok((out, Done { msgs, bytes, gaps, lost }))
}

#[derive(Debug)]
struct Plan {
    sizes: Vec<usize>,
    transports: Vec<Transport>,
    repeats: usize,
    measure: Bounds,
    idle: Bounds,
    idle_gap: Duration,
    warmup: Bounds,
    cpus: Option<(usize, usize)>,
    seqpacket_chunk: usize,
    seqpacket_max: usize,
    dir: PathBuf,
}

/// One transport's peer, alive for all the repeats at one size.
struct Session {
    cell: Cell,
    child: Child,
    link: Option<(Control, Box<dyn Producer>)>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("cell", &self.cell).field("child", &self.child.id()).finish()
    }
}

fn new_cell(plan: &Plan, t: Transport, size: usize) -> Cell {
    let mut cell = Cell { transport: t, size, repeats: Vec::new(), error: None, note: None };
    if t == Transport::UdsSeqpacket && size + 8 > plan.seqpacket_max {
        cell.note = Some(format!(
            "above the kernel's seqpacket message limit ({} B here): sent as {} packets of ≤ {}",
            plan.seqpacket_max,
            (size + 8).div_ceil(plan.seqpacket_chunk),
            size_label(plan.seqpacket_chunk)
        ));
    }
    cell
}

/// Sets up the transport, spawns its peer, connects, and warms up.
fn open_session(plan: &Plan, t: Transport, size: usize, watchdog: &AtomicU64) -> Result<Session, Cell> {
    let mut cell = new_cell(plan, t, size);
    let spec = RunSpec {
        transport: t,
        size,
        dir: plan.dir.clone(),
        name: format!("{}-{}-{size}", std::process::id(), t.name()),
        seqpacket_chunk: plan.seqpacket_chunk,
    };
    let spawned = transports::prepare(&spec).and_then(|prepared| {
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.args(["peer", "--transport", t.name(), "--size", &size.to_string()])
            .arg("--dir")
            .arg(&spec.dir)
            .args(["--name", &spec.name, "--seqpacket-chunk", &plan.seqpacket_chunk.to_string()]);
        if let Some((_, peer_cpu)) = plan.cpus {
            cmd.args(["--cpu", &peer_cpu.to_string()]);
        }
        let child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn()?;
        Ok((prepared, child))
    });
    let (prepared, child) = match spawned {
        Ok(x) => x,
        Err(e) => {
            cell.error = Some(e.to_string());
            return Err(cell);
        }
    };
    let mut session = Session { cell, child, link: None };
    let linked = (|| {
        let mut ctl = Control::new(&mut session.child)?;
        let mut p = prepared.connect(&mut ctl)?;
        // Warm-up: fault in the buffers and segments (every slot: twice the ring), let the
        // caches and the scheduler settle.
        let warmup = Bounds { thr_min: 2 * u64::from(proto::slots_for(size)) + 16, ..plan.warmup };
        phase(&mut ctl, "thr", || throughput_phase(&mut *p, warmup, size), watchdog)?;
        phase(&mut ctl, "lat", || latency_phase(&mut *p, warmup, Duration::ZERO), watchdog)?;
        Ok((ctl, p))
    })();
    match linked {
        Ok(link) => {
            session.link = Some(link);
            Ok(session)
        }
        Err(e) => Err(session.fail(&e)),
    }
}

impl Session {
    /// One repeat: a latency phase and a throughput phase.
    fn repeat(&mut self, plan: &Plan, watchdog: &AtomicU64) -> io::Result<()> {
        let size = self.cell.size;
        let Some((ctl, p)) = self.link.as_mut() else {
            return Err(io::Error::other("session closed"));
        };
        let (rtts, dl) =
            phase(ctl, "lat", || latency_phase(&mut **p, plan.measure, Duration::ZERO), watchdog)?;
        let (idle, di) = if self.cell.transport.blocking() && !plan.idle_gap.is_zero() {
            phase(ctl, "lat", || latency_phase(&mut **p, plan.idle, plan.idle_gap), watchdog)?
        } else {
            (Vec::new(), Done::default())
        };
        let ((msgs, time), dt) =
            phase(ctl, "thr", || throughput_phase(&mut **p, plan.measure, size), watchdog)?;
        if dt.msgs + dt.lost != msgs || dt.bytes != dt.msgs * size as u64 {
            return Err(io::Error::other(format!(
                "consumer saw {} messages ({} bytes, {} lost) of {msgs}",
                dt.msgs, dt.bytes, dt.lost
            )));
        }
        let lost = dl.gaps + dl.lost + di.gaps + di.lost + dt.gaps + dt.lost;
        self.cell.repeats.push(Repeat::new(rtts, idle, msgs, time.as_secs_f64(), size, lost));
        Ok(())
    }

    /// Records the error, kills the peer, returns the cell.
    fn fail(mut self, e: &io::Error) -> Cell {
        self.cell.error = Some(e.to_string());
        self.cell.repeats.clear();
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.cell
    }

    /// Tells the peer to quit and waits for it.
    fn close(mut self) -> Cell {
        let quit = self.link.as_mut().map_or(Ok(()), |(ctl, _)| ctl.send("quit"));
        drop(self.link.take());
        match quit.and_then(|()| self.child.wait()) {
            Ok(status) if status.success() => self.cell,
            Ok(status) => self.fail(&io::Error::other(format!("peer exited with {status}"))),
            Err(e) => self.fail(&e),
        }
    }
}

/// All transports at one size: one peer each, warmed up, then the repeats interleaved (in a
/// rotating order) so that load from other work on the machine falls on every transport alike.
fn run_size(plan: &Plan, size: usize, watchdog: &AtomicU64) -> Vec<Cell> {
    let mut done = Vec::new();
    let mut live = Vec::new();
    for &t in &plan.transports {
        match open_session(plan, t, size, watchdog) {
            Ok(s) => live.push(s),
            Err(cell) => done.push(cell),
        }
    }
    for r in 0..plan.repeats {
        let n = live.len();
        let mut failed = Vec::new();
        for k in 0..n {
            let i = (k + r) % n;
            if let Err(e) = live[i].repeat(plan, watchdog) {
                failed.push((i, e));
            }
        }
        failed.sort_by_key(|(i, _)| std::cmp::Reverse(*i));
        for (i, e) in failed {
            done.push(live.remove(i).fail(&e));
        }
    }
    done.extend(live.into_iter().map(Session::close));
    transports::cleanup(&plan.dir);
    done.sort_by_key(|c| c.transport);
    done
}

/// Kills the benchmark if one phase hangs (a peer that died while we were blocked opening a
/// FIFO, say): every phase bumps `tick`; if it has not moved for `limit`, exit.
fn start_watchdog(tick: Arc<AtomicU64>, limit: Duration) {
    std::thread::spawn(move || {
        let mut last = tick.load(Ordering::Relaxed);
        loop {
            std::thread::sleep(limit);
            let now = tick.load(Ordering::Relaxed);
            if now == last {
                eprintln!("epochfuse-bench: no progress for {limit:?}; giving up");
                std::process::exit(3);
            }
            last = now;
        }
    });
}

fn run_transport(args: TransportArgs) -> io::Result<()> {
    let quick = args.quick;
    let sizes = if !args.sizes.is_empty() {
        args.sizes.clone()
    } else if quick {
        vec![64, 4 << 10, 256 << 10, 4 << 20]
    } else {
        (0..10).map(|i| 64usize << (2 * i)).collect()
    };
    let mut transports =
        if args.transports.is_empty() { Transport::ALL.to_vec() } else { args.transports.clone() };
    transports.sort_unstable();
    transports.dedup();
    let repeats = args.repeats.unwrap_or(if quick { 1 } else { 5 }).max(1);
    let duration = Duration::from_millis(args.duration_ms.unwrap_or(if quick { 80 } else { 250 }));
    let warmup = Duration::from_millis(args.warmup_ms.unwrap_or(if quick { 20 } else { 60 }));

    let machine = machine();
    let cpus = allowed_cpus();
    let pin = if args.no_pin {
        "not pinned (--no-pin)".to_owned()
    } else if cpus.len() >= 2 {
        "pinned: producer on CPU".to_owned()
    } else {
        format!("not pinned: only {} CPU(s) allowed", cpus.len())
    };
    let cpus = (!args.no_pin && cpus.len() >= 2).then(|| (cpus[0], cpus[1]));
    if let Some((mine, _)) = cpus {
        pin_to(mine)?;
    }
    let pin = match cpus {
        Some((a, b)) => format!("{pin} {a}, consumer on CPU {b} (sched_setaffinity)"),
        None => pin,
    };

    let seqpacket_max = transports::seqpacket_max_message()?;
    let seqpacket_chunk = 1usize << seqpacket_max.max(1024).ilog2();
    let dir = PathBuf::from(format!("/dev/shm/epochfuse-bench-{}", std::process::id()));
    std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o700).create(&dir)?;

    let plan = Plan {
        sizes,
        transports,
        repeats,
        measure: Bounds {
            duration,
            lat_count: args.lat_count,
            thr_count: args.thr_count,
            thr_bytes: 8 << 30,
            thr_min: 0,
        },
        idle: Bounds {
            duration: duration / 2,
            lat_count: args.idle_count,
            thr_count: 0,
            thr_bytes: 0,
            thr_min: 0,
        },
        idle_gap: Duration::from_micros(args.idle_gap_us),
        warmup: Bounds {
            duration: warmup,
            lat_count: 2000,
            thr_count: 200_000,
            thr_bytes: 1 << 30,
            thr_min: 0,
        },
        cpus,
        seqpacket_chunk,
        seqpacket_max,
        dir,
    };
    let tick = Arc::new(AtomicU64::new(0));
    start_watchdog(Arc::clone(&tick), Duration::from_secs(120));

    eprintln!(
        "transport benchmark: {} transports × {} sizes × {} repeats, phases ≤ {:?}; {}",
        plan.transports.len(),
        plan.sizes.len(),
        plan.repeats,
        duration,
        pin
    );
    let load_before = loadavg();
    let started = Instant::now();
    let mut cells = Vec::new();
    for &size in &plan.sizes {
        for cell in run_size(&plan, size, &tick) {
            eprintln!("{}", progress_line(&cell));
            cells.push(cell);
        }
    }
    let _ = std::fs::remove_dir_all(&plan.dir);
    let elapsed = started.elapsed();

    let results = Results::new(cells);
    let ctx = Context {
        command: command_line(),
        date: utc_now(),
        machine,
        settings: vec![
            format!(
                "{} repeat(s) per (transport, size), each a latency phase and a throughput phase, the \
                 transports interleaved within each repeat, bounded by \
                 {} ms and by {} round trips / {} messages (8 GiB) — at least {MIN_LAT} round trips / \
                 {MIN_THR} messages; a warm-up of {} ms per phase first",
                plan.repeats,
                duration.as_millis(),
                plan.measure.lat_count,
                plan.measure.thr_count,
                warmup.as_millis()
            ),
            format!(
                "{pin}; wall time of the run {:.0} s; load average (1/5/15 min) {load_before} before, {} after \
                 (other work on this machine shares its cores)",
                elapsed.as_secs_f64(),
                loadavg()
            ),
            if plan.idle_gap.is_zero() {
                "no idle-reader phase (--idle-gap-us 0)".to_owned()
            } else {
                format!(
                    "idle-reader latency (blocking transports only): a third phase per repeat, the producer \
                     sleeping {} µs after each round trip so that the reader has gone to sleep when the next \
                     message comes; bounded by {} ms and {} round trips",
                    plan.idle_gap.as_micros(),
                    plan.idle.duration.as_millis(),
                    plan.idle.lat_count
                )
            },
            format!(
                "seqpacket: the kernel takes at most {} B in one message here (probed); larger messages go in \
                 packets of {}",
                plan.seqpacket_max,
                size_label(plan.seqpacket_chunk)
            ),
            "ring and iceoryx2 buffer 4–256 messages (at most 8 MiB where 4 slots allow) and are \
             flow-controlled by the consumer's acks; sockets and pipes use the kernel's default buffers"
                .to_owned(),
        ],
    };
    let md = results.markdown(&ctx);
    println!("{md}");
    for line in results.break_even_lines() {
        println!("{line}");
    }
    std::fs::create_dir_all(&args.out)?;
    write(&args.out.join("transport.md"), &md)?;
    write(&args.out.join("transport.csv"), &results.csv())?;
    write(&args.out.join("transport.svg"), &results.svg(&ctx))?;
    eprintln!("wrote {}/transport.{{md,csv,svg}} in {:.0} s", args.out.display(), elapsed.as_secs_f64());
    Ok(())
}

fn write(path: &Path, text: &str) -> io::Result<()> {
    std::fs::write(path, text).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

fn progress_line(c: &Cell) -> String {
    if let Some(e) = &c.error {
        return format!("{:>14} {:>7}  FAILED: {e}", c.transport.name(), size_label(c.size));
    }
    let p50 = c.spread(|r| r.p50_ns);
    let g = c.spread(|r| r.gb_per_s);
    format!(
        "{:>14} {:>7}  p50 {:>7} µs [{}–{}]  p99 {:>7} µs  thr {:>7} GB/s [{}–{}]",
        c.transport.name(),
        size_label(c.size),
        us(p50.median),
        us(p50.min),
        us(p50.max),
        us(c.spread(|r| r.p99_ns).median),
        report::sig3(g.median),
        report::sig3(g.min),
        report::sig3(g.max),
    )
}

/// The command as a user would type it from the workspace root.
fn command_line() -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    format!("cargo run --release --manifest-path bench/Cargo.toml -- {}", args.join(" "))
}

fn loadavg() -> String {
    let s = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    format!("{cpu}, {cores} cores, Linux {}", kernel.trim())
}

/// Current UTC time as `YYYY-MM-DD HH:MM UTC` (civil-from-days, no date crate).
fn utc_now() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    let (h, m) = ((secs % 86_400) / 3600, (secs % 3600) / 60);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{m:02} UTC")
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
