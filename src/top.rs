//! `epochfuse top`: a live view of a running pipeline, from its segments' scoreboards.
//!
//! It only reads: segment headers (attach is read-only here) and lock files. It never
//! disturbs the pipeline and works on a run started by another user session of ours.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use shared::ring::{self, Scoreboard};
use shared::scoreboard::{CanScoreboard, FusedScoreboard, ProducerScoreboard};
use shared::{rundir, StreamKind};

use crate::error::CliError;

/// Options of `top`.
#[derive(Debug, Clone)]
pub struct TopConfig {
    /// The run directory, or `None` to pick the only live one.
    pub run: Option<PathBuf>,
    /// The shm root.
    pub root: PathBuf,
    /// One snapshot, then exit.
    pub once: bool,
    /// Refresh interval.
    pub interval: Duration,
}

fn pick_run(cfg: &TopConfig) -> Result<PathBuf, CliError> {
    if let Some(run) = &cfg.run {
        if !run.is_dir() {
            return Err(CliError::input(format!("{}: not a run directory", run.display())));
        }
        return Ok(run.clone());
    }
    let live: Vec<PathBuf> =
        rundir::list_runs(&cfg.root).into_iter().filter(|(_, alive)| *alive).map(|(p, _)| p).collect();
    match live.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(CliError::input(format!(
            "no live run under {} (start one with `epochfuse drive`, or pass --shm-root)",
            cfg.root.display()
        ))),
        many => Err(CliError::input(format!(
            "{} live runs under {}; name one: {}",
            many.len(),
            cfg.root.display(),
            many.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// Each stream's scoreboard (if its segment is there) and whether its writer is alive.
type Snapshot = Vec<(StreamKind, Option<Scoreboard>, bool)>;

fn snapshot(run: &Path) -> Snapshot {
    StreamKind::ALL
        .into_iter()
        // The CAN ring only in runs with a vehicle bus: without one, top shows what it did.
        .filter(|&k| k != StreamKind::Can || run.join(rundir::segment_file(k)).exists())
        .map(|k| {
            let path = run.join(rundir::segment_file(k));
            let board = ring::inspect(&path).ok().map(|(_, b, _)| b);
            (k, board, ring::writer_alive(&path))
        })
        .collect()
}

fn render(run: &Path, prev: Option<&(Instant, Snapshot)>, now: &Snapshot, dt: f64) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "epochfuse top — {}   ({})",
        run.display(),
        if rundir::run_alive(run) { "live" } else { "finished" }
    );
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "{:<7} {:>6} {:>9} {:>8} {:>8} {:>6} {:>7} {:>9} {:>6} {:>6} {:>5}",
        "stream", "writer", "frames", "fps", "MB/s", "epoch", "torn", "overruns", "stale", "lag", "inc"
    );
    for (i, (kind, board, alive)) in now.iter().enumerate() {
        let Some(b) = board else {
            let _ = writeln!(s, "{:<7} {:>6}", kind.name(), "-");
            continue;
        };
        let before = prev.and_then(|p| p.1.get(i)).and_then(|x| x.1);
        let (fps, mbs) = match before {
            Some(p) if dt > 0.0 => (
                (b.frames_written.saturating_sub(p.frames_written)) as f64 / dt,
                (b.bytes_written.saturating_sub(p.bytes_written)) as f64 / dt / 1e6,
            ),
            _ => (0.0, 0.0),
        };
        let epoch = match kind {
            StreamKind::Camera | StreamKind::Lidar => ProducerScoreboard::of(b).epoch.0,
            StreamKind::Fused => FusedScoreboard::of(b).latest_epoch.0,
            StreamKind::CalibTable => b.cursor.distance_from(shared::FrameSeq(0)),
            StreamKind::Can => 0,
        };
        let lag = b.frames_written.saturating_sub(b.frames_read + b.overrun_frames_lost);
        let _ = writeln!(
            s,
            "{:<7} {:>6} {:>9} {:>8.1} {:>8.1} {:>6} {:>7} {:>9} {:>6} {:>6} {:>5}",
            kind.name(),
            if *alive { "alive" } else { "gone" },
            b.frames_written,
            fps,
            mbs,
            epoch,
            b.torn_retries,
            b.overruns,
            b.stale,
            if matches!(kind, StreamKind::Camera | StreamKind::Lidar) { lag.to_string() } else { "-".into() },
            b.incarnation.0
        );
    }
    if let Some((_, Some(f), _)) = now.iter().find(|x| x.0 == StreamKind::Fused) {
        let a = FusedScoreboard::of(f);
        let rate = prev
            .and_then(|p| p.1.iter().find(|x| x.0 == StreamKind::Fused))
            .and_then(|x| x.1)
            .map_or(0.0, |p| a.pairs.saturating_sub(FusedScoreboard::of(&p).pairs) as f64 / dt.max(1e-9));
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "fusion  pairs {} ({:.1}/s)   held {}   dropped (no calib) {}   rejected (epoch mismatch) {}   fused mismatched {}",
            a.pairs, rate, a.held, a.dropped_no_calib, a.rejected_mismatch, a.epoch_mismatch
        );
        let _ = writeln!(
            s,
            "        unpaired {}   latest epoch {}   last latency {:.2} ms (pipeline {:.2} ms, {})   calib updates {} (rejected {})",
            a.unpaired,
            a.latest_epoch,
            a.last_latency_us as f64 / 1000.0,
            a.last_pipeline_us as f64 / 1000.0,
            pipeline_share(a.last_pipeline_us, a.last_latency_us),
            a.calib_updates,
            a.calib_rejected
        );
    }
    if let Some((_, Some(b), _)) = now.iter().find(|x| x.0 == StreamKind::Can) {
        let c = CanScoreboard::of(b);
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "can     bus load {:.1}%   worst response {:.1} µs ({:#x}{})",
            c.bus_load_ppm as f64 / 1e4,
            c.worst_response_ns as f64 / 1e3,
            c.worst_id & 0x1fff_ffff,
            if c.worst_id >> 31 & 1 == 1 { ", extended" } else { "" }
        );
    }
    s
}

/// The pipeline's share of a latency ("42 %"), or "-" without one.
fn pipeline_share(pipeline_us: u64, total_us: u64) -> String {
    if total_us == 0 || pipeline_us > total_us {
        return "-".into();
    }
    format!("{:.0} %", 100.0 * pipeline_us as f64 / total_us as f64)
}

/// Runs `top`.
///
/// # Errors
/// Exit 2 if there is no run to show.
pub fn run(cfg: &TopConfig) -> Result<(), CliError> {
    let run = pick_run(cfg)?;
    let mut prev: Option<(Instant, Snapshot)> = None;
    if cfg.once {
        // Two looks, one interval apart, so the rates mean something.
        prev = Some((Instant::now(), snapshot(&run)));
        std::thread::sleep(cfg.interval);
    }
    loop {
        let now = snapshot(&run);
        let t = Instant::now();
        let dt = prev.as_ref().map_or(0.0, |p| t.duration_since(p.0).as_secs_f64());
        let text = render(&run, prev.as_ref(), &now, dt);
        if cfg.once {
            crate::error::out(&text);
            return Ok(());
        }
        // Clear the screen and home the cursor, then draw.
        crate::error::out(&format!("\x1b[2J\x1b[H{text}"));
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
        if !run.exists() {
            crate::error::out("\nrun finished.\n");
            return Ok(());
        }
        prev = Some((t, now));
        std::thread::sleep(cfg.interval);
    }
}
