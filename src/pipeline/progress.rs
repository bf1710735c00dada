//! What the supervisor watches while a run goes: the rings' scoreboards, the progress bar
//! drawn from them, and how long a restarted role takes to bring fusion back.

use std::path::Path;
use std::time::Instant;

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
