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

/// One stream of the run: its name (the sensor's, or the kind's for the run's own rings),
/// its kind, its scoreboard (if its segment is there) and whether its writer is alive.
#[derive(Clone, Debug)]
struct Row {
    name: String,
    kind: StreamKind,
    board: Option<Scoreboard>,
    alive: bool,
}

/// Every stream of the run, sensors first (cameras, then lidars, each by name).
type Snapshot = Vec<Row>;

/// The run's sensor segments by (kind, name): every `<name>.seg` whose header says camera
/// or lidar. A kind with none yet (a run still starting) shows its default sensor's name,
/// as a one-camera run always did.
fn sensors(run: &Path) -> Vec<(StreamKind, String)> {
    let mut found: Vec<(StreamKind, String)> = std::fs::read_dir(run)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| {
            let path = e.path();
            let name = path.file_name()?.to_str()?.strip_suffix(".seg")?.to_string();
            let kind = ring::inspect(&path).ok()?.0.kind;
            matches!(kind, StreamKind::Camera | StreamKind::Lidar).then_some((kind, name))
        })
        .collect();
    for kind in [StreamKind::Camera, StreamKind::Lidar] {
        if !found.iter().any(|(k, _)| *k == kind) {
            found.push((kind, kind.name().to_string()));
        }
    }
    found.sort_by_key(|(k, n)| (usize::from(*k != StreamKind::Camera), n.clone()));
    found
}

fn snapshot(run: &Path) -> Snapshot {
    let others = StreamKind::ALL
        .into_iter()
        .filter(|k| !matches!(k, StreamKind::Camera | StreamKind::Lidar))
        // The CAN ring only in runs with a vehicle bus: without one, top shows what it did.
        .filter(|&k| k != StreamKind::Can || run.join(rundir::segment_file(k)).exists())
        .map(|k| (k, k.name().to_string()));
    sensors(run)
        .into_iter()
        .chain(others)
        .map(|(kind, name)| {
            let path = run.join(format!("{name}.seg"));
            let board = ring::inspect(&path).ok().map(|(_, b, _)| b);
            Row { name, kind, board, alive: ring::writer_alive(&path) }
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
    let w = now.iter().map(|r| r.name.len()).max().unwrap_or(0).max(7);
    let _ = writeln!(
        s,
        "{:<w$} {:<6} {:>6} {:>9} {:>8} {:>8} {:>6} {:>7} {:>9} {:>6} {:>6} {:>5}",
        "stream",
        "kind",
        "writer",
        "frames",
        "fps",
        "MB/s",
        "epoch",
        "torn",
        "overruns",
        "stale",
        "lag",
        "inc"
    );
    for Row { name, kind, board, alive } in now {
        let Some(b) = board else {
            let _ = writeln!(s, "{name:<w$} {:<6} {:>6}", kind.name(), "-");
            continue;
        };
        let before = prev.and_then(|p| p.1.iter().find(|r| r.name == *name)).and_then(|r| r.board);
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
            "{name:<w$} {:<6} {:>6} {:>9} {:>8.1} {:>8.1} {:>6} {:>7} {:>9} {:>6} {:>6} {:>5}",
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
    if let Some(f) = now.iter().find(|r| r.kind == StreamKind::Fused).and_then(|r| r.board.as_ref()) {
        let a = FusedScoreboard::of(f);
        let rate = prev
            .and_then(|p| p.1.iter().find(|r| r.kind == StreamKind::Fused))
            .and_then(|r| r.board)
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
    if let Some(b) = now.iter().find(|r| r.kind == StreamKind::Can).and_then(|r| r.board.as_ref()) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use shared::frames::PayloadSink;
    use shared::ring::{FrameMeta, RingWriter};
    use shared::segment::SegmentSpec;
    use shared::{CalibEpoch, TimestampNs};

    /// A surround run lists every sensor's ring by name with its kind, not only the
    /// default `camera` and `lidar`.
    #[test]
    fn top_lists_every_sensor_by_name_with_its_kind() {
        let dir = tempfile::tempdir().unwrap();
        let mut writers = Vec::new();
        for (name, kind) in
            [("rear", StreamKind::Camera), ("front", StreamKind::Camera), ("roof", StreamKind::Lidar)]
        {
            let spec = SegmentSpec::new(kind, 4, 64);
            let (mut w, _) =
                RingWriter::create_or_takeover(&dir.path().join(format!("{name}.seg")), &spec).unwrap();
            let mut loan = w.loan();
            loan.push(&[0u8; 16]).unwrap();
            loan.commit(FrameMeta { capture: TimestampNs(1), epoch: CalibEpoch(1) });
            writers.push(w);
        }
        let text = render(dir.path(), None, &snapshot(dir.path()), 0.0);
        let rows: Vec<(&str, &str)> = text
            .lines()
            .skip(3)
            .map_while(|l| l.split_whitespace().next().zip(l.split_whitespace().nth(1)))
            .collect();
        assert_eq!(
            rows[..3],
            [("front", "camera"), ("rear", "camera"), ("roof", "lidar")],
            "sensors first, cameras then lidars, by name:\n{text}"
        );
        assert!(!rows.iter().any(|r| r.0 == "camera" || r.0 == "lidar"), "{text}");
        assert!(rows.iter().any(|r| r.0 == "fused"), "{text}");
    }
}
