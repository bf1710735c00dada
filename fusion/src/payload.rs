//! A frame's payload as the engine holds it: copied bytes, or a versioned reference into its
//! ring ("frame #17 at slot X") that is read in place only when the frame is used, and
//! verified then (seqlock, header and checksum; see `shared::ring::inplace`).
//!
//! A reference that fails at use (the slot was overwritten, torn or forged meanwhile) yields
//! a [`UseError`]; what was computed from the slot is dropped, never used.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use shared::frames::{camera_image, PointRecord};
use shared::ring::{FrameInfo, FrameRef, InPlace, ReadOutcome, RingReader, SlotView};
use shared::{CalibEpoch, TimestampNs};

use crate::deskew::SweepDeskew;
use crate::project::{points_from_payload, StreamedSweep, SweepProjection, CHUNK_WORDS};
use crate::rig::RigProjector;
use crate::sample::{PixelSamples, Streamed};

/// Why a payload could not be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UseError {
    /// The slot no longer held the frame (overwritten or being rewritten): it was overrun
    /// before use.
    Overrun,
    /// The frame failed validation (checksum, header) or its payload is malformed.
    Invalid,
}

/// A frame in its ring, held by reference, with the header fields it was paired on.
#[derive(Clone)]
pub struct RingFrame {
    ring: Arc<RingReader>,
    frame: FrameRef,
    capture: TimestampNs,
    epoch: CalibEpoch,
}

impl RingFrame {
    /// Frame `frame` of `ring` as its header announced it (`RingReader::peek_next`). At use
    /// the validated header must still say the same capture time and epoch.
    #[must_use]
    pub fn new(ring: Arc<RingReader>, frame: FrameRef, info: &FrameInfo) -> Self {
        Self { ring, frame, capture: info.capture, epoch: info.epoch }
    }

    /// Whether a validated read saw the frame this reference was paired on (a header
    /// rewritten after it was peeked, even under a valid checksum, is not that frame).
    fn same(&self, info: &FrameInfo) -> bool {
        info.capture == self.capture && info.epoch == self.epoch
    }

    /// The reference.
    #[must_use]
    pub fn frame(&self) -> FrameRef {
        self.frame
    }
}

impl fmt::Debug for RingFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RingFrame").field("frame", &self.frame).finish_non_exhaustive()
    }
}

impl PartialEq for RingFrame {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.ring, &other.ring) && self.frame == other.frame
    }
}

impl Eq for RingFrame {}

/// A frame's payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload {
    /// Bytes owned by the engine (camera: `ImageHeader | rgb | labels`; lidar:
    /// `PointRecord[n]`).
    Owned(Vec<u8>),
    /// A reference into the ring, read in place at use.
    Ring(RingFrame),
    /// A reference that already failed (when it was to be copied out).
    Lost(UseError),
}

impl From<Vec<u8>> for Payload {
    fn from(v: Vec<u8>) -> Self {
        Self::Owned(v)
    }
}

/// What a read that did not deliver the frame means for its use.
fn use_error(o: ReadOutcome) -> UseError {
    match o {
        ReadOutcome::Invalid(_) => UseError::Invalid,
        // Overrun, stale, torn (a write holds the slot: it is being reused).
        _ => UseError::Overrun,
    }
}

impl Payload {
    /// Whether it refers into a ring.
    #[must_use]
    pub const fn is_ref(&self) -> bool {
        matches!(self, Self::Ring(_))
    }

    /// The sweep projected into camera `camera` of `rig` (see [`SweepProjection`]), in
    /// `out`'s buffers: from owned bytes, or straight from the slot during the one pass that
    /// verifies it (the checksum's), a chunk of records at a time, without copying the
    /// sweep. With `deskew`, the points are moved first (each chunk's copy in L1; never the
    /// slot). The projection comes back only if the frame was still there, untorn, when the
    /// pass was done (a failed read drops it).
    ///
    /// # Errors
    /// [`UseError`] if the frame is gone or malformed.
    ///
    /// # Panics
    /// If `camera` is not below [`RigProjector::len`].
    pub fn project(
        &self,
        (rig, camera): (&RigProjector, usize),
        deskew: Option<&SweepDeskew>,
        scratch: &mut PointScratch,
        out: SweepProjection,
    ) -> Result<SweepProjection, UseError> {
        self.project_watched((rig, camera), deskew, scratch, out, |_| {})
    }

    /// [`project`](Self::project), calling `between(first)` before the slot's words from
    /// word `first` on are taken (the tests overwrite the slot there).
    fn project_watched(
        &self,
        (rig, camera): (&RigProjector, usize),
        deskew: Option<&SweepDeskew>,
        scratch: &mut PointScratch,
        mut out: SweepProjection,
        mut between: impl FnMut(usize),
    ) -> Result<SweepProjection, UseError> {
        match self {
            Self::Owned(bytes) => {
                let points =
                    points_from_payload(bytes, &mut scratch.records).map_err(|_| UseError::Invalid)?;
                match deskew {
                    Some(d) => out.project(rig, camera, d.moved(points, &mut scratch.moved)),
                    None => out.project(rig, camera, points),
                }
                Ok(out)
            }
            Self::Lost(e) => Err(*e),
            Self::Ring(r) => {
                // Checked here: nothing may panic inside the read.
                assert!(camera < rig.len(), "camera {camera} of a rig of {}", rig.len());
                let state = StreamedSweep::new(rig, camera, deskew, out);
                let take = |st: &mut StreamedSweep<'_>, first: usize, words: &[u64]| {
                    between(first);
                    st.take(words);
                };
                match r.ring.read_at_chunks_of::<CHUNK_WORDS, _>(r.frame.seq(), state, take) {
                    InPlace::Frame(info, st) if r.same(&info) => st.finish(info.len).ok_or(UseError::Invalid),
                    InPlace::Frame(..) => Err(UseError::Invalid),
                    InPlace::Rejected(o) => Err(use_error(o)),
                }
            }
        }
    }

    /// The camera pixels under the points `(u, v)` (see [`PixelSamples`]): from owned bytes,
    /// or from the slot during the one pass that verifies it (the checksum's); the
    /// samples come back only if the frame was still there, untorn, when the pass was done
    /// (a failed read drops them).
    ///
    /// # Errors
    /// [`UseError`] if the frame is gone or malformed.
    pub fn samples(&self, u: &[f64], v: &[f64], mut samples: PixelSamples) -> Result<PixelSamples, UseError> {
        match self {
            Self::Owned(bytes) => {
                let img = camera_image(bytes).map_err(|_| UseError::Invalid)?;
                samples.fill_owned(&img, u, v);
                Ok(samples)
            }
            Self::Lost(e) => Err(*e),
            Self::Ring(r) => {
                let state = Streamed::new(samples, u, v);
                let take = |st: &mut Streamed<'_>, view: &SlotView<'_>, words: Range<usize>| {
                    st.take(words.end, |i| view.load_word(i).unwrap_or(0));
                };
                match r.ring.read_at_blocks(r.frame.seq(), state, take) {
                    InPlace::Frame(info, st) if r.same(&info) => st.finish(info.len).ok_or(UseError::Invalid),
                    InPlace::Frame(..) => Err(UseError::Invalid),
                    InPlace::Rejected(o) => Err(use_error(o)),
                }
            }
        }
    }

    /// The payload bytes, copied (validated) into `buf` for a consumer that keeps the frame
    /// (an overlay); owned bytes are moved.
    ///
    /// # Errors
    /// [`UseError`] if the frame is gone or malformed.
    pub fn into_bytes(self, mut buf: Vec<u8>) -> Result<Vec<u8>, UseError> {
        match self {
            Self::Owned(bytes) => Ok(bytes),
            Self::Lost(e) => Err(e),
            Self::Ring(r) => match r.ring.read_at(r.frame.seq(), &mut buf) {
                ReadOutcome::Frame(info) if r.same(&info) => Ok(buf),
                ReadOutcome::Frame(_) => Err(UseError::Invalid),
                o => Err(use_error(o)),
            },
        }
    }

    /// A reference becomes owned bytes (copied and validated into `buf`), so that its slot
    /// may be reused; a failed copy leaves [`Payload::Lost`].
    pub fn copy_out(&mut self, buf: Vec<u8>) {
        if self.is_ref() {
            let me = std::mem::replace(self, Self::Lost(UseError::Overrun));
            *self = me.into_bytes(buf).map_or_else(Self::Lost, Self::Owned);
        }
    }

    /// The frame leaves unused: a reference is accounted for in its ring (see
    /// `RingReader::let_go`); owned bytes are handed back for reuse.
    #[must_use]
    pub fn let_go(self) -> Option<Vec<u8>> {
        match self {
            Self::Owned(bytes) => Some(bytes),
            Self::Ring(r) => {
                r.ring.let_go(r.frame);
                None
            }
            Self::Lost(_) => None,
        }
    }

    /// The frame leaves after it was used: a reference was accounted for by the read that
    /// used it (counting it again would let a producer at full speed lap a held frame);
    /// owned bytes are handed back for reuse.
    #[must_use]
    pub fn used(self) -> Option<Vec<u8>> {
        match self {
            Self::Owned(bytes) => Some(bytes),
            Self::Ring(_) | Self::Lost(_) => None,
        }
    }
}

/// Buffers for a sweep's points from owned bytes: decoded where the bytes are not aligned,
/// and moved by a deskew.
#[derive(Debug, Default)]
pub struct PointScratch {
    records: Vec<PointRecord>,
    moved: Vec<PointRecord>,
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use calib::Distortion;
    use shared::frames::PayloadSink;
    use shared::ring::{FrameMeta, RingWriter};
    use shared::segment::{Segment, SegmentSpec};
    use shared::{layout, FrameSeq, StreamKind};

    use shared::frames::POINT_RECORD_SIZE;
    use zerocopy::IntoBytes;

    use super::*;
    use crate::project::tests::{cloud, pinhole, rectified};
    use crate::project::Projected;

    /// Slot capacity of the test rings: a sweep of up to 5,000 points.
    const CAPACITY: usize = 5_010 * POINT_RECORD_SIZE;

    struct Ring {
        _dir: tempfile::TempDir,
        path: PathBuf,
        w: RingWriter,
    }

    fn ring(slots: u32) -> Ring {
        let dir = tempfile::Builder::new().prefix("epochfuse-test-").tempdir().unwrap();
        let path = dir.path().join("lidar.seg");
        let spec = SegmentSpec::new(StreamKind::Lidar, slots, CAPACITY as u64);
        let (w, _) = RingWriter::create_or_takeover(&path, &spec).unwrap();
        Ring { _dir: dir, path, w }
    }

    fn commit(w: &mut RingWriter, bytes: &[u8]) -> FrameSeq {
        let mut loan = w.loan();
        loan.push(bytes).unwrap();
        loan.commit(FrameMeta { capture: TimestampNs(7), epoch: CalibEpoch(1) })
    }

    /// Frame `seq` held by reference, as the engine holds it (its header peeked).
    fn by_ref(path: &Path, seq: FrameSeq) -> Payload {
        let mut r = RingReader::attach(path, StreamKind::Lidar).unwrap();
        r.seek(seq);
        let (frame, info) = r.peek_next().expect("a committed frame");
        Payload::Ring(RingFrame::new(Arc::new(r), frame, &info))
    }

    /// `got` is bit for bit what projecting the whole `points` into camera 0 of `rig` gives,
    /// with the kept points' records in order.
    fn assert_same(got: &SweepProjection, rig: &RigProjector, points: &[PointRecord], what: &str) {
        let mut want = Projected::new();
        rig.project_camera(0, points, &mut want);
        let got_p = got.projected();
        let bits = |x: &[f64]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!((got_p.len(), got_p.total()), (want.len(), want.total()), "{what}");
        assert_eq!(bits(got_p.u()), bits(want.u()), "{what}: u");
        assert_eq!(bits(got_p.v()), bits(want.v()), "{what}: v");
        assert_eq!(bits(got_p.depth()), bits(want.depth()), "{what}: depth");
        assert_eq!(got_p.index(), want.index(), "{what}: index");
        let kept: Vec<PointRecord> = want.index().iter().map(|&i| points[i as usize]).collect();
        assert_eq!(got.kept().as_bytes(), kept.as_bytes(), "{what}: kept records");
    }

    #[test]
    fn a_sweep_streamed_from_its_slot_projects_as_copied_then_projected() {
        let distorted = Distortion { k1: -0.2, ..Distortion::default() };
        let calibs = [pinhole(Distortion::default()), pinhole(distorted), rectified()];
        let mut scratch = PointScratch::default();
        // Reused buffers, as the engine reuses them (a bigger sweep first, then smaller ones).
        let mut out = SweepProjection::default();
        for calib in &calibs {
            let rig = RigProjector::new(std::slice::from_ref(calib));
            // Across chunk and quad boundaries (every cloud has two extra points: NaN, behind).
            for n in [4998, 0, 1, 3, 253, 254, 255, 509, 1000] {
                let points = cloud(n);
                let mut g = ring(2);
                let seq = commit(&mut g.w, points.as_bytes());
                let what = format!("{} points, {:?}", points.len(), calib.camera());
                out = by_ref(&g.path, seq).project((&rig, 0), None, &mut scratch, out).expect(&what);
                assert_same(&out, &rig, &points, &what);
                assert!(
                    points.len() < 1000 || out.projected().len() > 100,
                    "{what}: the cloud hits the image"
                );
                out = Payload::Owned(points.as_bytes().to_vec())
                    .project((&rig, 0), None, &mut scratch, out)
                    .unwrap();
                assert_same(&out, &rig, &points, &format!("{what}, owned"));
            }
        }
    }

    #[test]
    fn a_deskewed_sweep_streamed_from_its_slot_projects_as_moved_whole_then_projected() {
        use crate::deskew::{EgoMotion, SweepDeskew};
        use nalgebra::{Isometry3, Translation3, UnitQuaternion};
        let mut ego = EgoMotion::default();
        for k in 0..20u64 {
            ego.push_speed(k * 10_000_000, 20.0 + k as f64);
            ego.push_yaw_rate(k * 10_000_000, 0.3);
        }
        let mount = Isometry3::from_parts(
            Translation3::new(1.2, 0.1, 1.9),
            UnitQuaternion::from_euler_angles(0.0, 0.02, 0.05),
        );
        let deskew = SweepDeskew::new(&ego, &mount, TimestampNs(0), 100_000_000).expect("ego-motion known");
        let rig = RigProjector::new(&[pinhole(Distortion::default())]);
        let mut scratch = PointScratch::default();
        let mut out = SweepProjection::default();
        for n in [4998, 0, 1, 255, 256, 257, 1000] {
            let points = cloud(n);
            let mut moved = points.clone();
            deskew.apply(&mut moved);
            let what = format!("{} points", points.len());
            let mut g = ring(2);
            let seq = commit(&mut g.w, points.as_bytes());
            out = by_ref(&g.path, seq).project((&rig, 0), Some(&deskew), &mut scratch, out).expect(&what);
            assert_same(&out, &rig, &moved, &what);
            out = Payload::Owned(points.as_bytes().to_vec())
                .project((&rig, 0), Some(&deskew), &mut scratch, out)
                .unwrap();
            assert_same(&out, &rig, &moved, &format!("{what}, owned"));
            if n == 4998 {
                // The motion is large enough to show: the points did move.
                let still =
                    by_ref(&g.path, seq).project((&rig, 0), None, &mut scratch, SweepProjection::default());
                assert_ne!(still.unwrap().kept().as_bytes(), out.kept().as_bytes(), "{what}: moved");
            }
        }
    }

    #[test]
    fn a_sweep_overwritten_torn_or_forged_during_the_streamed_read_gives_the_error_and_nothing() {
        let rig = RigProjector::new(&[pinhole(Distortion::default())]);
        let points = cloud(3000);
        let mut scratch = PointScratch::default();
        // While the read is a third of the way through, the writer laps the slot (twice round
        // a ring of two), or starts writing it (its seqlock word odd, as a loan leaves it).
        for torn in [false, true] {
            let mut g = ring(2);
            let seq = commit(&mut g.w, points.as_bytes());
            let seg = Segment::attach(&g.path, Some(StreamKind::Lidar)).unwrap();
            let seq_word = seg.map.word(seg.slot_offset_for(seq) + layout::SLOT_OFF_SEQ);
            let payload = by_ref(&g.path, seq);
            let at = points.len() * POINT_RECORD_SIZE / 8 / 3;
            let mut done = false;
            let res =
                payload.project_watched((&rig, 0), None, &mut scratch, SweepProjection::default(), |first| {
                    if first >= at && !done {
                        done = true;
                        if torn {
                            seq_word.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        } else {
                            commit(&mut g.w, cloud(10).as_bytes());
                            commit(&mut g.w, cloud(10).as_bytes());
                        }
                    }
                });
            assert!(done && matches!(res, Err(UseError::Overrun)), "torn {torn}: {res:?}");
        }
        // A bit flipped under the checksum: invalid.
        let mut g = ring(2);
        let seq = commit(&mut g.w, points.as_bytes());
        let seg = Segment::attach(&g.path, Some(StreamKind::Lidar)).unwrap();
        let off = seg.slot_offset_for(seq) + layout::SLOT_OFF_PAYLOAD;
        seg.map.word(off + 8 * 1001).fetch_xor(1 << 20, std::sync::atomic::Ordering::Relaxed);
        let res = by_ref(&g.path, seq).project((&rig, 0), None, &mut scratch, SweepProjection::default());
        assert!(matches!(res, Err(UseError::Invalid)), "{res:?}");
        // A valid frame that is not whole records: invalid.
        let seq = commit(&mut g.w, &points.as_bytes()[..1000]);
        let res = by_ref(&g.path, seq).project((&rig, 0), None, &mut scratch, SweepProjection::default());
        assert!(matches!(res, Err(UseError::Invalid)), "{res:?}");
        // Lapped before the read: overrun.
        let payload = by_ref(&g.path, seq);
        commit(&mut g.w, points.as_bytes());
        commit(&mut g.w, points.as_bytes());
        let res = payload.project((&rig, 0), None, &mut scratch, SweepProjection::default());
        assert!(matches!(res, Err(UseError::Overrun)), "{res:?}");
    }
}
