//! The `transport` command: turns the arguments into a [`Plan`], runs it size by size, and
//! prints and writes the report.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::host::{allowed_cpus, command_line, loadavg, machine, pin_to, utc_now};
use crate::phases::{Bounds, MIN_LAT, MIN_THR};
use crate::report::{self, size_label, us, Context, Results};
use crate::session::{run_size, start_watchdog, Plan};
use crate::stats::Cell;
use crate::transports::{self, Transport};
use crate::TransportArgs;

/// Runs the benchmark `args` describe and writes `transport.{md,csv,svg}` under `args.out`.
///
/// # Errors
/// Pinning, probing the seqpacket limit, creating the run directory, or writing the report.
pub fn run_transport(args: &TransportArgs) -> io::Result<()> {
    let machine = machine();
    let (plan, pin) = plan(args)?;
    let tick = Arc::new(AtomicU64::new(0));
    start_watchdog(Arc::clone(&tick), Duration::from_secs(120));

    eprintln!(
        "transport benchmark: {} transports × {} sizes × {} repeats, phases ≤ {:?}; {}",
        plan.transports.len(),
        plan.sizes.len(),
        plan.repeats,
        plan.measure.duration,
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
        settings: settings(&plan, &pin, elapsed, &load_before),
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

/// The plan `args` ask for (defaults depend on `--quick`), with this process pinned if it
/// can be; also returns the sentence the report gives about pinning. Creates the run
/// directory under /dev/shm.
fn plan(args: &TransportArgs) -> io::Result<(Plan, String)> {
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
    let (cpus, pin) = pin(args.no_pin)?;

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
    Ok((plan, pin))
}

/// Pins this process to the first allowed CPU unless `no_pin` or fewer than two are allowed;
/// returns (producer CPU, consumer CPU) and the sentence the report gives about it.
fn pin(no_pin: bool) -> io::Result<(Option<(usize, usize)>, String)> {
    let cpus = allowed_cpus();
    let pin = if no_pin {
        "not pinned (--no-pin)".to_owned()
    } else if cpus.len() >= 2 {
        "pinned: producer on CPU".to_owned()
    } else {
        format!("not pinned: only {} CPU(s) allowed", cpus.len())
    };
    let cpus = (!no_pin && cpus.len() >= 2).then(|| (cpus[0], cpus[1]));
    if let Some((mine, _)) = cpus {
        pin_to(mine)?;
    }
    let pin = match cpus {
        Some((a, b)) => format!("{pin} {a}, consumer on CPU {b} (sched_setaffinity)"),
        None => pin,
    };
    Ok((cpus, pin))
}

/// The report's list of settings: bounds, pinning and load, the idle-reader phase, the
/// seqpacket limit and the buffers.
fn settings(plan: &Plan, pin: &str, elapsed: Duration, load_before: &str) -> Vec<String> {
    vec![
        format!(
            "{} repeat(s) per (transport, size), each a latency phase and a throughput phase, the \
             transports interleaved within each repeat, bounded by \
             {} ms and by {} round trips / {} messages (8 GiB) — at least {MIN_LAT} round trips / \
             {MIN_THR} messages; a warm-up of {} ms per phase first",
            plan.repeats,
            plan.measure.duration.as_millis(),
            plan.measure.lat_count,
            plan.measure.thr_count,
            plan.warmup.duration.as_millis()
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
    ]
}

fn write(path: &Path, text: &str) -> io::Result<()> {
    std::fs::write(path, text).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

/// One line on stderr per finished cell: median and spread of p50 and throughput.
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
