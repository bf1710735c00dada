//! The producing parent's sessions: one peer per transport at one size, warmed up, then the
//! repeats interleaved across transports.

use std::io;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::control::Control;
use crate::peer::Done;
use crate::phases::{latency_phase, phase, throughput_phase, Bounds};
use crate::proto::{self, Producer};
use crate::report::size_label;
use crate::stats::{Cell, Repeat};
use crate::transports::{self, RunSpec, Transport};

/// Everything a run of the `transport` command measures, and how.
#[derive(Debug)]
pub struct Plan {
    pub sizes: Vec<usize>,
    pub transports: Vec<Transport>,
    pub repeats: usize,
    pub measure: Bounds,
    pub idle: Bounds,
    pub idle_gap: Duration,
    pub warmup: Bounds,
    pub cpus: Option<(usize, usize)>,
    pub seqpacket_chunk: usize,
    pub seqpacket_max: usize,
    pub dir: PathBuf,
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
pub fn run_size(plan: &Plan, size: usize, watchdog: &AtomicU64) -> Vec<Cell> {
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
pub fn start_watchdog(tick: Arc<AtomicU64>, limit: Duration) {
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
