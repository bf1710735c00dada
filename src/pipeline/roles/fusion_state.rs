//! Fusion's counters across its own restarts: a killed and restarted fusion continues from
//! what its predecessors counted, so the summary of a run with a fusion crash counts every
//! pair of the run, not only the last incarnation's.
//!
//! Every time the engine publishes its counters, fusion rewrites `<run dir>/fusion-state.json`
//! (a temporary file and a rename: a SIGKILL leaves the old state or the new, never half)
//! with the run's totals *as if it died now*: the carried counts of the incarnations before
//! it, plus its own, where the frames it holds or has read but not yet decided count as
//! unpaired (they die with it). It also keeps where each reader stands, so a restarted
//! reader resumes there instead of re-reading (and re-fusing) what the ring still holds.
//! At the end, fusion adds the carried counts to its own report.
//!
//! The file is in the run directory, which only our user can write: a forged state is no
//! worse than a forged scoreboard, and is bounded the same way (cursors beyond the writer's
//! head are ignored).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use fusion::summary::{FusionResult, PairsSummary, StreamSummary, StreamsSummary};
use fusion::CountersSnapshot;
use serde::{Deserialize, Serialize};
use shared::ring::RingReader;
use shared::{FrameSeq, StreamKind};

/// The state file, in the run directory.
pub const FUSION_STATE_FILE: &str = "fusion-state.json";

/// The most a state file may hold (it is a few hundred bytes).
const STATE_CAP: u64 = 64 * 1024;

/// What the incarnations of fusion before this one counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Carried {
    /// Incarnations that counted into this state.
    pub incarnations: u64,
    /// Their pairing outcomes (frames they held or had read when they died: unpaired).
    pub pairs: PairsSummary,
    /// Their readers' counters.
    pub streams: StreamsSummary,
    /// Where each reader stood (camera, lidar): the next frame to read; `None` before it
    /// attached.
    pub resume: [Option<u64>; 2],
}

impl Carried {
    /// The state left in `run` by earlier incarnations (none: a first start). An unreadable
    /// or malformed file counts as none, with a warning: the run goes on, under-counted.
    #[must_use]
    pub fn load(run: &Path) -> Self {
        let path = run.join(FUSION_STATE_FILE);
        if !path.exists() {
            return Self::default();
        }
        let parsed = shared::input::read_bounded(&path, STATE_CAP)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| format!("{}: {e}", path.display())));
        parsed.unwrap_or_else(|e| {
            tracing::warn!("fusion state not carried over: {e}");
            Self::default()
        })
    }

    /// Moves a freshly attached `reader` to where this state says its stream stood, if that
    /// is a frame the writer has reached; otherwise to the oldest frame the ring holds. A
    /// position the writer has since overwritten is then reported by the ring as an overrun.
    pub fn seek(&self, reader: &mut RingReader, kind: StreamKind) {
        match self.resume[stream_index(kind)] {
            // Within the writer's head (a forged or stale position beyond it is ignored).
            Some(seq) if seq <= reader.cursor().0 => reader.seek(FrameSeq(seq)),
            _ => reader.seek_oldest(),
        }
    }

    /// Adds the carried counts to this incarnation's report.
    pub fn add_to(&self, result: &mut FusionResult) {
        add_pairs(&mut result.pairs, &self.pairs);
        add_stream(&mut result.streams.camera, &self.streams.camera);
        add_stream(&mut result.streams.lidar, &self.streams.lidar);
        if result.pairing == fusion::PairingMode::Epoch {
            result.checks.cross_epoch_fused += self.pairs.fused_epoch_mismatch;
        }
    }
}

/// A reader's position for the state: the next frame it reads, once attached.
#[derive(Debug)]
pub struct ReaderPosition(AtomicU64);

impl Default for ReaderPosition {
    fn default() -> Self {
        Self(AtomicU64::new(Self::NONE))
    }
}

impl ReaderPosition {
    const NONE: u64 = u64::MAX;

    /// Records where `reader` stands; called right after each read, before the frame is
    /// counted or sent, so a checkpoint that counts a frame as read also has it behind the
    /// position (Relaxed: another thread of this process reads it for the state file only;
    /// a position one frame behind would re-read one frame after a restart, never lose one).
    pub fn set(&self, reader: &RingReader) {
        self.0.store(reader.next_seq().0, Ordering::Relaxed);
    }

    fn get(&self) -> Option<u64> {
        Some(self.0.load(Ordering::Relaxed)).filter(|&v| v != Self::NONE)
    }
}

/// Writes the state at every publication of the engine's counters.
#[derive(Debug)]
pub struct Checkpoint {
    path: PathBuf,
    carried: Carried,
    positions: [Arc<ReaderPosition>; 2],
}

impl Checkpoint {
    /// A checkpoint of `run` continuing from `carried`; `positions` are the readers'.
    #[must_use]
    pub fn new(run: &Path, carried: Carried, positions: [Arc<ReaderPosition>; 2]) -> Self {
        Self { path: run.join(FUSION_STATE_FILE), carried, positions }
    }

    /// Saves the run's totals as if this incarnation died now. `reads`: this incarnation's
    /// reader counters (camera, lidar). A failed write is a warning: the run goes on.
    pub fn save(&self, snap: &CountersSnapshot, reads: [StreamSummary; 2]) {
        let state = self.totals(snap, reads);
        let tmp = self.path.with_extension("json.tmp");
        let written = serde_json::to_vec(&state)
            .map_err(std::io::Error::other)
            .and_then(|b| std::fs::write(&tmp, b))
            .and_then(|()| std::fs::rename(&tmp, &self.path));
        if let Err(e) = written {
            tracing::warn!("{}: {e}", self.path.display());
        }
    }

    /// The carried counts plus this incarnation's, its undecided frames as unpaired.
    fn totals(&self, s: &CountersSnapshot, reads: [StreamSummary; 2]) -> Carried {
        // Read by the readers but not yet received by the engine: in a channel, lost on a kill.
        let in_flight = |read: u64, received: u64| read.saturating_sub(received);
        let cam_lost = s.held_camera + in_flight(reads[0].frames_read, s.camera_frames);
        let lid_lost = s.held_lidar + in_flight(reads[1].frames_read, s.lidar_frames);
        let own = PairsSummary {
            fused: s.fused,
            fused_epoch_mismatch: s.fused_epoch_mismatch,
            rejected_epoch_mismatch: s.rejected_epoch_mismatch,
            dropped_no_calibration: s.dropped_no_calibration,
            unpaired_camera: s.unpaired_camera + cam_lost,
            unpaired_lidar: s.unpaired_lidar + lid_lost,
            duplicates: s.duplicates,
            camera_frames: s.camera_frames.max(reads[0].frames_read),
            lidar_frames: s.lidar_frames.max(reads[1].frames_read),
            invalid_payloads: s.invalid,
            ..PairsSummary::default()
        };
        let mut total = self.carried;
        total.incarnations += 1;
        add_pairs(&mut total.pairs, &own);
        add_stream(&mut total.streams.camera, &reads[0]);
        add_stream(&mut total.streams.lidar, &reads[1]);
        for (i, p) in self.positions.iter().enumerate() {
            total.resume[i] = p.get().or(self.carried.resume[i]);
        }
        total
    }
}

const fn stream_index(kind: StreamKind) -> usize {
    match kind {
        StreamKind::Lidar => 1,
        _ => 0,
    }
}

fn add_stream(to: &mut StreamSummary, from: &StreamSummary) {
    add_counts(to, from);
}

fn add_pairs(to: &mut PairsSummary, from: &PairsSummary) {
    add_counts(to, from);
}

/// Adds every integer field of `from` to `to` (both are flat records of counters), so a
/// counter added to the summary later is carried too.
fn add_counts<T: Serialize + serde::de::DeserializeOwned>(to: &mut T, from: &T) {
    use serde_json::Value;
    let (Ok(Value::Object(mut sum)), Ok(Value::Object(more))) =
        (serde_json::to_value(&*to), serde_json::to_value(from))
    else {
        return;
    };
    for (k, v) in more {
        if let (Some(a), Some(b)) = (sum.get(&k).and_then(Value::as_u64), v.as_u64()) {
            sum.insert(k, a.saturating_add(b).into());
        }
    }
    if let Ok(t) = serde_json::from_value(Value::Object(sum)) {
        *to = t;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_killed_incarnation_counts_its_undecided_frames_as_unpaired_and_state_adds_up() {
        let dir = tempfile::tempdir().unwrap();
        let positions = [Arc::new(ReaderPosition::default()), Arc::new(ReaderPosition::default())];
        let cp = Checkpoint::new(dir.path(), Carried::load(dir.path()), positions);
        let snap = CountersSnapshot {
            camera_frames: 30,
            lidar_frames: 10,
            fused: 8,
            unpaired_camera: 20,
            held_camera: 2,
            held_lidar: 2,
            ..CountersSnapshot::default()
        };
        let read = |n| StreamSummary { frames_read: n, ..StreamSummary::default() };
        cp.save(&snap, [read(31), read(10)]);
        let carried = Carried::load(dir.path());
        assert_eq!(carried.incarnations, 1);
        assert_eq!((carried.pairs.fused, carried.pairs.unpaired_camera), (8, 23));
        assert_eq!((carried.pairs.unpaired_lidar, carried.pairs.camera_frames), (2, 31));
        // The next incarnation's report gets them added.
        let mut result = FusionResult::new(fusion::PairingMode::Epoch);
        result.pairs.fused = 5;
        result.streams.lidar.frames_read = 4;
        carried.add_to(&mut result);
        assert_eq!((result.pairs.fused, result.streams.lidar.frames_read), (13, 14));
    }

    #[test]
    fn a_malformed_state_is_no_state() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FUSION_STATE_FILE), b"{ not json").unwrap();
        assert_eq!(Carried::load(dir.path()), Carried::default());
    }
}
