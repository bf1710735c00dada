//! What the supervisor watches while a run goes: the rings' scoreboards, the progress bar
//! drawn from them, and how long a restarted role takes to bring fusion back.

use std::path::Path;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use shared::mapping::ReadOnly;
use shared::ring::Scoreboard;
use shared::rundir;
use shared::scoreboard::FusedScoreboard;
use shared::segment::Segment;
use shared::StreamKind;

/// Segments the supervisor watches for progress and the summary.
#[derive(Default)]
pub struct Watch {
    camera: Option<Segment<ReadOnly>>,
    lidar: Option<Segment<ReadOnly>>,
    fused: Option<Segment<ReadOnly>>,
}

/// One look at the three rings' scoreboards (all zero for a ring not there yet).
#[derive(Clone, Debug, Default)]
pub struct Boards {
    /// The camera ring.
    pub camera: Scoreboard,
    /// The lidar ring.
    pub lidar: Scoreboard,
    /// The fused ring.
    pub fused: Scoreboard,
}

impl Boards {
    /// Frames both producers have written.
    #[must_use]
    pub const fn produced(&self) -> u64 {
        self.camera.frames_written + self.lidar.frames_written
    }

    /// Fusion's published counters.
    #[must_use]
    pub const fn fusion(&self) -> FusedScoreboard {
        FusedScoreboard::of(&self.fused)
    }
}

impl Watch {
    /// Attaches (read-only) the segments that have appeared since the last look, and reads
    /// every scoreboard.
    pub fn look(&mut self, run: &Path) -> Boards {
        for (slot, kind) in [
            (&mut self.camera, StreamKind::Camera),
            (&mut self.lidar, StreamKind::Lidar),
            (&mut self.fused, StreamKind::Fused),
        ] {
            if slot.is_none() {
                *slot = Segment::attach(&run.join(rundir::segment_file(kind)), Some(kind)).ok();
            }
        }
        let board = |s: &Option<Segment<ReadOnly>>| s.as_ref().map(Scoreboard::load).unwrap_or_default();
        Boards { camera: board(&self.camera), lidar: board(&self.lidar), fused: board(&self.fused) }
    }
}

/// The progress bar: lidar sweeps written out of those expected, and fusion's counters.
#[must_use]
pub fn bar(quiet: bool, expected_lidar_frames: u64) -> ProgressBar {
    let bar = if quiet { ProgressBar::hidden() } else { ProgressBar::new(expected_lidar_frames.max(1)) };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner:.green} [{elapsed_precise}] [{bar:30.cyan/blue}] {pos}/{len} sweeps  {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar
}

/// Moves `bar` to what `b` says.
pub fn show(bar: &ProgressBar, b: &Boards, expected_lidar_frames: u64) {
    let f = b.fusion();
    bar.set_position(b.lidar.frames_written.min(expected_lidar_frames));
    bar.set_message(format!(
        "fused {}  epoch {}  held {}  dropped {}  rejected {}  torn {}  overruns {}",
        f.pairs,
        f.latest_epoch,
        f.held,
        f.dropped_no_calib,
        f.rejected_mismatch,
        b.camera.torn_retries + b.lidar.torn_retries,
        b.camera.overruns + b.lidar.overruns,
    ));
}

/// Restarts not yet recovered from: recovery runs from a restart to the next fused pair
/// made after the restarted producer wrote again.
#[derive(Default)]
pub struct Recovery {
    /// (restart time, fused pairs then, frames produced then).
    pending: Vec<(Instant, u64, u64)>,
}

impl Recovery {
    /// A role was restarted now, with the rings as `b` shows them.
    pub fn restarted(&mut self, b: &Boards) {
        self.pending.push((Instant::now(), b.fusion().pairs, b.produced()));
    }

    /// Ends the recoveries `b` shows complete; returns the longest of them, milliseconds.
    pub fn check(&mut self, b: &Boards) -> Option<f64> {
        let (pairs, produced) = (b.fusion().pairs, b.produced());
        let mut longest: Option<f64> = None;
        self.pending.retain(|(t, fused_then, frames_then)| {
            if produced > *frames_then && pairs > *fused_then {
                let ms = t.elapsed().as_secs_f64() * 1e3;
                longest = Some(longest.map_or(ms, |m| m.max(ms)));
                false
            } else {
                true
            }
        });
        longest
    }
}

/// How long no producer stream may move before the run is called stalled.
pub const STALL_LIMIT: Duration = Duration::from_secs(20);

/// The stall limit in force: [`STALL_LIMIT`], or `EPOCHFUSE_STALL_LIMIT_MS` (for tests that
/// must not wait 20 s to see the watchdog fire).
#[must_use]
pub fn stall_limit() -> Duration {
    std::env::var("EPOCHFUSE_STALL_LIMIT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(STALL_LIMIT, Duration::from_millis)
}

/// The progress watchdog: a run whose producer streams stop moving ends with one line naming
/// them (exit 3), instead of hanging. Progress is the writers' `frames_written`, read from
/// the scoreboards; a scribbled counter that keeps moving can hide a stall, but one that
/// stops cannot fake progress.
#[derive(Debug)]
pub struct StallWatch {
    last: (u64, u64),
    since: Instant,
}

impl Default for StallWatch {
    fn default() -> Self {
        Self { last: (0, 0), since: Instant::now() }
    }
}

impl StallWatch {
    /// The stalled streams' names when neither ring has moved for `limit`, else `None`.
    pub fn check(&mut self, b: &Boards, limit: Duration) -> Option<String> {
        let now = (b.camera.frames_written, b.lidar.frames_written);
        if now != self.last {
            (self.last, self.since) = (now, Instant::now());
            return None;
        }
        (self.since.elapsed() >= limit)
            .then(|| format!("the camera and lidar streams stalled: no new frame for {} s", limit.as_secs()))
    }
}

#[cfg(test)]
mod stall_tests {
    use super::*;

    #[test]
    fn a_moving_stream_resets_the_watch_and_a_still_one_trips_it() {
        let mut w = StallWatch::default();
        let mut b = Boards::default();
        assert_eq!(
            w.check(&b, Duration::ZERO),
            Some("the camera and lidar streams stalled: no new frame for 0 s".to_string())
        );
        b.lidar.frames_written = 1;
        assert_eq!(w.check(&b, Duration::from_secs(60)), None);
        assert_eq!(w.check(&b, Duration::from_secs(60)), None);
        assert!(w.check(&b, Duration::ZERO).is_some());
    }
}
