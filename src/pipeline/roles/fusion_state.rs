//! Fusion's counters across its own restarts: a killed and restarted fusion continues from
//! what its predecessors counted, so the summary of a run with a fusion crash counts every
//! pair of the run, not only the last incarnation's.
//!
//! Two files in the run directory:
//! - `fusion-state.bin`, the live record ([`shared::checkpoint`]): every time the engine
//!   publishes its counters, fusion stores its own counts and where each reader stands, as
//!   words in a mapped file: no system call, no serialisation, and a SIGKILL leaves the last
//!   complete record, never half of one. The record is tagged with the incarnation it
//!   belongs to.
//! - `fusion-state.json`, the carried totals of the incarnations before this one, written
//!   once when an incarnation starts (a temporary file and a rename).
//!
//! Each (lidar, camera) lane of the rig has its own pair of files ([`StateFiles`]): the
//! primary pair's keep the names above, every other pair's are named after its sensors
//! (`fusion-state.<camera>.<lidar>.bin`, a `.` no sensor name holds), so a restart resumes
//! every pair, each from its own record.
//!
//! A restarted fusion loads the carried totals and adds its predecessor's live record *as
//! if it died then*: the frames it held or had read but not yet decided count as unpaired
//! (they died with it). It saves the sum as the new carried totals before its own first
//! record, whose tag then no longer matches the old record: nothing is added twice. A
//! restarted reader resumes where its predecessor stood instead of re-reading (and re-fusing)
//! what the ring still holds. At the end, fusion adds the carried counts to its own report.
//!
//! The files are in the run directory, which only our user can write: a forged state is no
//! worse than a forged scoreboard, and is bounded the same way (cursors beyond the writer's
//! head are ignored).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use fusion::summary::{FusionResult, PairsSummary, StreamSummary, StreamsSummary};
use fusion::CountersSnapshot;
use serde::{Deserialize, Serialize};
use shared::checkpoint::CheckpointRecord;
use shared::ring::RingReader;
use shared::{FrameSeq, StreamKind};

/// The carried totals, in the run directory.
pub const FUSION_STATE_FILE: &str = "fusion-state.json";

/// The live record of the running incarnation, in the run directory.
pub const FUSION_LIVE_FILE: &str = "fusion-state.bin";

/// One lane's state files in the run directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateFiles {
    /// The carried totals.
    json: PathBuf,
    /// The live record.
    live: PathBuf,
}

impl StateFiles {
    /// The files of the (`camera`, `lidar`) lane of `run`; the primary pair's are
    /// [`FUSION_STATE_FILE`] and [`FUSION_LIVE_FILE`].
    #[must_use]
    pub fn of(run: &Path, camera: &str, lidar: &str, primary: bool) -> Self {
        if primary {
            return Self { json: run.join(FUSION_STATE_FILE), live: run.join(FUSION_LIVE_FILE) };
        }
        Self {
            json: run.join(format!("fusion-state.{camera}.{lidar}.json")),
            live: run.join(format!("fusion-state.{camera}.{lidar}.bin")),
        }
    }

    /// The primary pair's files of `run`.
    #[must_use]
    pub fn primary(run: &Path) -> Self {
        Self::of(run, "", "", true)
    }
}

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
    /// The state left in `files` by earlier incarnations (none: a first start): the
    /// carried totals plus the last incarnation's live record. An unreadable or malformed
    /// file counts as none, with a warning: the run goes on, under-counted.
    #[must_use]
    pub fn load(files: &StateFiles) -> Self {
        let carried = Self::load_json(files);
        let path = &files.live;
        let live = path.exists().then(|| CheckpointRecord::open(path, Own::WORDS)).and_then(|r| {
            r.map_err(|e| tracing::warn!("fusion state not carried over: {}: {e}", path.display())).ok()
        });
        let live = live.and_then(|r| r.load());
        match live.as_deref().and_then(Own::from_words) {
            // The record of the incarnation after those carried: not counted yet.
            Some((tag, own)) if tag == carried.incarnations + 1 => carried.plus(&own),
            _ => carried,
        }
    }

    fn load_json(files: &StateFiles) -> Self {
        let path = &files.json;
        if !path.exists() {
            return Self::default();
        }
        let parsed = shared::input::read_bounded(path, STATE_CAP)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| format!("{}: {e}", path.display())));
        parsed.unwrap_or_else(|e| {
            tracing::warn!("fusion state not carried over: {e}");
            Self::default()
        })
    }

    /// Writes these totals as the carried state (a temporary file and a rename).
    fn save_json(&self, files: &StateFiles) -> std::io::Result<()> {
        let tmp = files.json.with_extension("json.tmp");
        let bytes = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, &files.json)
    }

    /// These totals plus an incarnation's own counts, as if it died when it stored them: its
    /// undecided frames count as unpaired.
    fn plus(&self, own: &Own) -> Self {
        let (s, reads) = (&own.snap, &own.reads);
        // Read by the readers but not yet received by the engine: in a channel, lost on a kill.
        let in_flight = |read: u64, received: u64| read.saturating_sub(received);
        let cam_lost = s.held_camera + in_flight(reads[0].frames_read, s.camera_frames);
        let lid_lost = s.held_lidar + in_flight(reads[1].frames_read, s.lidar_frames);
        let pairs = PairsSummary {
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
        let mut total = *self;
        total.incarnations += 1;
        add_pairs(&mut total.pairs, &pairs);
        add_stream(&mut total.streams.camera, &reads[0]);
        add_stream(&mut total.streams.lidar, &reads[1]);
        for (i, p) in own.resume.iter().enumerate() {
            total.resume[i] = p.or(self.resume[i]);
        }
        total
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

/// What one incarnation counted so far, as its live record stores it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Own {
    snap: CountersSnapshot,
    /// Its reader counters (camera, lidar).
    reads: [StreamSummary; 2],
    /// Where each reader stood.
    resume: [Option<u64>; 2],
}

impl Own {
    /// Words of a record: the incarnation's tag, the snapshot, both readers, both positions.
    const WORDS: usize = Self::RESUME + 2;
    /// Where the two readers' counters start: after the tag and the 16 snapshot words.
    const READS: usize = 1 + 16;
    /// Where the two resume positions start.
    const RESUME: usize = Self::READS + 2 * 8;

    /// The record tagged `tag`. Every field is named (no `..`): a counter added to either
    /// struct later fails to compile here until it is carried too.
    fn to_words(self, tag: u64) -> [u64; Self::WORDS] {
        let CountersSnapshot {
            camera_frames,
            lidar_frames,
            fused,
            fused_epoch_mismatch,
            rejected_epoch_mismatch,
            dropped_no_calibration,
            unpaired_camera,
            unpaired_lidar,
            duplicates,
            invalid,
            held_camera,
            held_lidar,
            latest_epoch,
            last_latency_ns,
            last_pipeline_ns,
            max_latency_ns,
        } = self.snap;
        let [c, l] = self.reads.map(stream_words);
        let [rc, rl] = self.resume.map(|p| p.unwrap_or(u64::MAX));
        let head = [
            tag,
            camera_frames,
            lidar_frames,
            fused,
            fused_epoch_mismatch,
            rejected_epoch_mismatch,
            dropped_no_calibration,
            unpaired_camera,
            unpaired_lidar,
            duplicates,
            invalid,
            held_camera,
            held_lidar,
            latest_epoch,
            last_latency_ns,
            last_pipeline_ns,
            max_latency_ns,
        ];
        let mut w = [0; Self::WORDS];
        w[..Self::READS].copy_from_slice(&head);
        w[Self::READS..Self::READS + 8].copy_from_slice(&c);
        w[Self::READS + 8..Self::RESUME].copy_from_slice(&l);
        w[Self::RESUME..].copy_from_slice(&[rc, rl]);
        w
    }

    /// The record's (tag, counts); `None` if it is too short.
    fn from_words(w: &[u64]) -> Option<(u64, Self)> {
        let w: &[u64; Self::WORDS] = w.get(..Self::WORDS)?.try_into().ok()?;
        let snap = CountersSnapshot {
            camera_frames: w[1],
            lidar_frames: w[2],
            fused: w[3],
            fused_epoch_mismatch: w[4],
            rejected_epoch_mismatch: w[5],
            dropped_no_calibration: w[6],
            unpaired_camera: w[7],
            unpaired_lidar: w[8],
            duplicates: w[9],
            invalid: w[10],
            held_camera: w[11],
            held_lidar: w[12],
            latest_epoch: w[13],
            last_latency_ns: w[14],
            last_pipeline_ns: w[15],
            max_latency_ns: w[16],
        };
        let (r, p) = (Self::READS, Self::RESUME);
        let reads = [stream_from(&w[r..r + 8]), stream_from(&w[r + 8..p])];
        let resume = [w[p], w[p + 1]].map(|p| Some(p).filter(|&p| p != u64::MAX));
        Some((w[0], Self { snap, reads, resume }))
    }
}

fn stream_words(s: StreamSummary) -> [u64; 8] {
    let StreamSummary {
        frames_written,
        frames_read,
        torn_retries,
        overruns,
        stale,
        invalid,
        overrun_before_use,
        unknown_epoch,
    } = s;
    [frames_written, frames_read, torn_retries, overruns, stale, invalid, overrun_before_use, unknown_epoch]
}

fn stream_from(w: &[u64]) -> StreamSummary {
    StreamSummary {
        frames_written: w[0],
        frames_read: w[1],
        torn_retries: w[2],
        overruns: w[3],
        stale: w[4],
        invalid: w[5],
        overrun_before_use: w[6],
        unknown_epoch: w[7],
    }
}

/// Stores the live record at every publication of the engine's counters.
#[derive(Debug)]
pub struct Checkpoint {
    /// `None` if the record could not be opened (warned once: the run goes on).
    record: Option<CheckpointRecord>,
    /// This incarnation's tag: one more than the incarnations carried.
    tag: u64,
    positions: [Arc<ReaderPosition>; 2],
}

impl Checkpoint {
    /// A checkpoint in `files` continuing from `carried` (what [`Carried::load`] found);
    /// `positions` are the readers'. Saves `carried` as the carried totals first, so that
    /// the predecessor's record, already in them, is never added again.
    #[must_use]
    pub fn new(files: &StateFiles, carried: Carried, positions: [Arc<ReaderPosition>; 2]) -> Self {
        let saved = if carried == Carried::load_json(files) { Ok(()) } else { carried.save_json(files) };
        let path = &files.live;
        let record = saved.and_then(|()| CheckpointRecord::open(path, Own::WORDS));
        let record = record.map_err(|e| tracing::warn!("{}: {e}", path.display())).ok();
        Self { record, tag: carried.incarnations + 1, positions }
    }

    /// Stores this incarnation's counts; `reads`: its reader counters (camera, lidar).
    pub fn save(&mut self, snap: &CountersSnapshot, reads: [StreamSummary; 2]) {
        let Some(record) = &mut self.record else { return };
        let own = Own { snap: *snap, reads, resume: self.positions.each_ref().map(|p| p.get()) };
        record.store(&own.to_words(self.tag));
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
        let files = StateFiles::primary(dir.path());
        let mut cp = Checkpoint::new(&files, Carried::load(&files), positions);
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
        let carried = Carried::load(&files);
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
    fn each_incarnation_is_carried_once_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let files = StateFiles::primary(dir.path());
        let positions = || [Arc::new(ReaderPosition::default()), Arc::new(ReaderPosition::default())];
        let snap =
            CountersSnapshot { camera_frames: 3, lidar_frames: 1, fused: 1, ..CountersSnapshot::default() };
        let read = |n| StreamSummary { frames_read: n, ..StreamSummary::default() };
        for (n, fused) in [(1, 1), (2, 2), (3, 3)] {
            // A start: loads what the last one stored, then stores its own counts and dies.
            let carried = Carried::load(&files);
            assert_eq!((carried.incarnations, carried.pairs.fused), (n - 1, fused - 1));
            let mut cp = Checkpoint::new(&files, carried, positions());
            // Loading again before this incarnation stored anything adds nothing twice.
            assert_eq!(Carried::load(&files), carried);
            cp.save(&snap, [read(3), read(1)]);
            cp.save(&snap, [read(3), read(1)]);
        }
        let carried = Carried::load(&files);
        assert_eq!(
            (carried.incarnations, carried.pairs.fused, carried.streams.camera.frames_read),
            (3, 3, 9)
        );
    }

    #[test]
    fn a_malformed_state_is_no_state() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FUSION_STATE_FILE), b"{ not json").unwrap();
        assert_eq!(Carried::load(&StateFiles::primary(dir.path())), Carried::default());
    }

    /// Each lane keeps its own record: one lane's restart state never lands in another's.
    #[test]
    fn every_lane_carries_its_own_state() {
        let dir = tempfile::tempdir().unwrap();
        let lanes = [
            StateFiles::of(dir.path(), "front", "lidar", true),
            StateFiles::of(dir.path(), "left", "lidar", false),
            StateFiles::of(dir.path(), "left", "roof", false),
        ];
        assert_eq!(lanes[0], StateFiles::primary(dir.path()));
        let read = |n| StreamSummary { frames_read: n, ..StreamSummary::default() };
        for (i, files) in lanes.iter().enumerate() {
            let position = Arc::new(ReaderPosition::default());
            let fused = 10 * (i as u64 + 1);
            let mut cp = Checkpoint::new(files, Carried::load(files), [Arc::clone(&position), position]);
            let snap = CountersSnapshot { fused, ..CountersSnapshot::default() };
            cp.save(&snap, [read(fused), read(fused)]);
        }
        for (i, files) in lanes.iter().enumerate() {
            let carried = Carried::load(files);
            assert_eq!((carried.incarnations, carried.pairs.fused), (1, 10 * (i as u64 + 1)), "lane {i}");
        }
    }
}
