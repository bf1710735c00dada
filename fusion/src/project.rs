//! Lidar points → pixels, with one epoch's calibration.
//!
//! Exactly the semantics of [`calib::project_camera_point`] applied to
//! `CalibrationSet::lidar_to_camera() * p`: a point is kept iff depth > 0 and
//! 0 ≤ u < width and 0 ≤ v < height, computed in f64. The lidar → camera transform (and, for
//! [`Projection::Rectified`], the 3×4 projection) is folded into one 3×4 matrix once per
//! call; the loop then does 9 multiply-adds, two divisions and the bounds test per point, and
//! writes the kept points (structure of arrays) into reusable buffers with branch-free
//! compaction.

use calib::{CalibrationSet, Distortion, Projection};
use nalgebra::Matrix3x4;
use shared::frames::{PayloadError, PointRecord, POINT_RECORD_SIZE};
use zerocopy::{FromBytes, IntoBytes};

use crate::deskew::SweepDeskew;
use crate::rig::RigProjector;

/// Points handled per inner block (keeps the working set in L1).
pub(crate) const CHUNK: usize = 256;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Model {
    /// `pixel = M · [x y z 1]`, `M = P · [R|0] · T`.
    Rectified,
    /// `M = T`; then `K · (x/z, y/z)`.
    Pinhole { fx: f64, fy: f64, cx: f64, cy: f64 },
    /// `M = T`; then `K · distort(x/z, y/z)`.
    PinholeDistorted { fx: f64, fy: f64, cx: f64, cy: f64, d: Distortion },
}

/// A calibration prepared for projecting many points.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Projector {
    m: [f64; 12],
    model: Model,
    width: u32,
    height: u32,
}

/// Projected points, structure of arrays, reused across calls (no allocation once grown).
#[derive(Clone, Debug, Default)]
pub struct Projected {
    count: usize,
    total: usize,
    u: Vec<f64>,
    v: Vec<f64>,
    depth: Vec<f64>,
    index: Vec<u32>,
}

impl Projected {
    /// Empty buffers.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Points kept (in the image).
    #[must_use]
    pub const fn len(&self) -> usize {
        self.count
    }

    /// Whether no point was kept.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Points that went in.
    #[must_use]
    pub const fn total(&self) -> usize {
        self.total
    }

    /// Columns of the kept points, pixels.
    #[must_use]
    pub fn u(&self) -> &[f64] {
        &self.u[..self.count]
    }

    /// Rows of the kept points, pixels.
    #[must_use]
    pub fn v(&self) -> &[f64] {
        &self.v[..self.count]
    }

    /// Depths of the kept points, metres.
    #[must_use]
    pub fn depth(&self) -> &[f64] {
        &self.depth[..self.count]
    }

    /// Indices of the kept points in the input slice, ascending.
    #[must_use]
    pub fn index(&self) -> &[u32] {
        &self.index[..self.count]
    }

    /// Mean column, row and depth of the kept points (zeros if none).
    #[must_use]
    pub fn means(&self) -> (f64, f64, f64) {
        if self.count == 0 {
            return (0.0, 0.0, 0.0);
        }
        let n = self.count as f64;
        let s = |x: &[f64]| x.iter().sum::<f64>() / n;
        (s(self.u()), s(self.v()), s(self.depth()))
    }

    pub(crate) fn prepare(&mut self, n: usize) {
        self.grow(n);
        self.count = 0;
        self.total = n;
    }

    /// Room for `n` points (never shrinks).
    fn grow(&mut self, n: usize) {
        if self.u.len() < n {
            self.u.resize(n, 0.0);
            self.v.resize(n, 0.0);
            self.depth.resize(n, 0.0);
            self.index.resize(n, 0);
        }
    }

    /// Sets the number of kept points after chunks were appended with
    /// [`Projector::project_chunk`].
    pub(crate) fn set_len(&mut self, count: usize) {
        self.count = count;
    }
}

impl Projector {
    /// Prepares `calib` (folds lidar → camera and the camera matrix into one 3×4).
    #[must_use]
    pub fn new(calib: &CalibrationSet) -> Self {
        let t = calib.lidar_to_camera().to_homogeneous();
        let t34: Matrix3x4<f64> = t.fixed_view::<3, 4>(0, 0).into_owned();
        let (m, model) = match calib.camera() {
            Projection::Rectified { p, .. } => (p * t, Model::Rectified),
            Projection::Pinhole(k) => {
                let (fx, fy, cx, cy) = (k.fx, k.fy, k.cx, k.cy);
                let model = if k.distortion.is_zero() {
                    Model::Pinhole { fx, fy, cx, cy }
                } else {
                    Model::PinholeDistorted { fx, fy, cx, cy, d: k.distortion }
                };
                (t34, model)
            }
        };
        let mut rows = [0.0; 12];
        for r in 0..3 {
            for c in 0..4 {
                rows[r * 4 + c] = m[(r, c)];
            }
        }
        Self { m: rows, model, width: calib.camera().width(), height: calib.camera().height() }
    }

    /// Image width in pixels.
    #[must_use]
    pub const fn width(&self) -> u32 {
        self.width
    }

    /// Image height in pixels.
    #[must_use]
    pub const fn height(&self) -> u32 {
        self.height
    }

    /// Projects `points`, replacing the contents of `out` with the kept ones.
    pub fn project(&self, points: &[PointRecord], out: &mut Projected) {
        out.prepare(points.len());
        let mut k = 0usize;
        for (c, chunk) in points.chunks(CHUNK).enumerate() {
            k = self.project_chunk(chunk, c * CHUNK, k, out, |_| true);
        }
        out.count = k;
    }

    /// Projects one chunk (at most [`CHUNK`] points, the first being input point `base`),
    /// appending the kept ones to `out` from position `k`; returns the new count. Only points
    /// `i` (index within the chunk) with `candidate(i)` are looked at: the rig projector
    /// passes its frustum test here, the single-camera path `|_| true`. Either way a point
    /// looked at goes through the same arithmetic, so the results are bit-identical.
    #[inline]
    pub(crate) fn project_chunk(
        &self,
        chunk: &[PointRecord],
        base: usize,
        k: usize,
        out: &mut Projected,
        candidate: impl Fn(usize) -> bool,
    ) -> usize {
        match self.model {
            Model::Rectified => {
                self.chunk(chunk, base, k, out, candidate, |hx, hy, hz| (hx / hz, hy / hz, hz))
            }
            Model::Pinhole { fx, fy, cx, cy } => self
                .chunk(chunk, base, k, out, candidate, |x, y, z| (fx * (x / z) + cx, fy * (y / z) + cy, z)),
            Model::PinholeDistorted { fx, fy, cx, cy, d } => {
                self.chunk(chunk, base, k, out, candidate, |x, y, z| {
                    let (xd, yd) = d.apply(x / z, y / z);
                    (fx * xd + cx, fy * yd + cy, z)
                })
            }
        }
    }

    #[inline(always)]
    fn chunk(
        &self,
        chunk: &[PointRecord],
        base: usize,
        mut k: usize,
        out: &mut Projected,
        candidate: impl Fn(usize) -> bool,
        pix: impl Fn(f64, f64, f64) -> (f64, f64, f64),
    ) -> usize {
        let m = &self.m;
        let (w, h) = (f64::from(self.width), f64::from(self.height));
        let n = chunk.len();
        // The output slices from k on have room for every remaining input point.
        let end = k + n;
        let (uo, vo, dout, io) =
            (&mut out.u[k..end], &mut out.v[k..end], &mut out.depth[k..end], &mut out.index[k..end]);
        let mut j = 0usize;
        for (i, p) in chunk.iter().enumerate() {
            if !candidate(i) {
                continue;
            }
            let (x, y, z) = (f64::from(p.x), f64::from(p.y), f64::from(p.z));
            let hx = m[0] * x + m[1] * y + m[2] * z + m[3];
            let hy = m[4] * x + m[5] * y + m[6] * z + m[7];
            let hz = m[8] * x + m[9] * y + m[10] * z + m[11];
            // Behind the camera (or NaN): never kept. Sweeps come in azimuth order, so this
            // branch is well predicted and skips the division and the distortion polynomial
            // for the half of a 360° sweep behind the camera.
            if hz.is_nan() || hz <= 0.0 {
                continue;
            }
            let (u, v, d) = pix(hx, hy, hz);
            let keep = d > 0.0 && u >= 0.0 && u < w && v >= 0.0 && v < h;
            // j ≤ i < n: always in bounds.
            uo[j] = u;
            vo[j] = v;
            dout[j] = d;
            io[j] = (base + i) as u32;
            j += usize::from(keep);
        }
        k += j;
        k
    }
}

/// A sweep projected into one camera, with what colouring needs of the kept points: their
/// records, compacted in the order of [`Projected`] (so that no copy of the whole sweep
/// outlives the projection; from a slot, none is made: see `StreamedSweep`).
#[derive(Clone, Debug, Default)]
pub struct SweepProjection {
    projected: Projected,
    kept: Vec<PointRecord>,
    /// The words of the chunk being gathered while a sweep streams from its slot.
    words: Vec<u64>,
    /// A chunk's records moved by a deskew, while a sweep streams from its slot.
    moved: Vec<PointRecord>,
}

impl SweepProjection {
    /// The kept points' pixels, depths and indices ([`Projected::total`]: the sweep's size).
    #[must_use]
    pub fn projected(&self) -> &Projected {
        &self.projected
    }

    /// The kept points' records, `kept()[k]` being input point `projected().index()[k]`.
    #[must_use]
    pub fn kept(&self) -> &[PointRecord] {
        &self.kept
    }

    /// Projects `points` into camera `camera` of `rig` (as [`RigProjector::project_camera`])
    /// and keeps the records of the points kept.
    ///
    /// # Panics
    /// If `camera` is not below [`RigProjector::len`].
    pub fn project(&mut self, rig: &RigProjector, camera: usize, points: &[PointRecord]) {
        rig.project_camera(camera, points, &mut self.projected);
        self.kept.clear();
        self.kept.extend(self.projected.index().iter().filter_map(|&i| points.get(i as usize).copied()));
    }
}

/// Words of one chunk of [`CHUNK`] records (768: whole quads, as the slot is read in).
pub(crate) const CHUNK_WORDS: usize = CHUNK * POINT_RECORD_SIZE / 8;

/// A sweep projected while it streams through its slot's checked pass
/// (`RingReader::read_at_chunks_of`, in chunks of [`CHUNK_WORDS`]): each chunk, a private
/// copy on the stack that stays in L1, is viewed as [`CHUNK`] records and projected right
/// there (only the words of a last, partial chunk are gathered first), with the
/// arithmetic and chunking of [`RigProjector::project_camera`] (so the results are
/// bit-identical). What it computes from the untrusted words is handed back only by
/// [`finish`](Self::finish), which the caller calls only with a validated frame.
#[derive(Debug)]
pub(crate) struct StreamedSweep<'r> {
    rig: &'r RigProjector,
    camera: usize,
    /// Moves each chunk's records before they are projected (a copy of the chunk: the slot
    /// is never written).
    deskew: Option<&'r SweepDeskew>,
    out: SweepProjection,
    /// Words gathered in `out.words`.
    filled: usize,
    /// Points projected so far (the next chunk's first index).
    base: usize,
    /// Points kept so far.
    kept: usize,
}

impl<'r> StreamedSweep<'r> {
    /// A projection into camera `camera` of `rig` (checked by the caller), in `out`'s buffers,
    /// of the points moved by `deskew` if any.
    pub(crate) fn new(
        rig: &'r RigProjector,
        camera: usize,
        deskew: Option<&'r SweepDeskew>,
        mut out: SweepProjection,
    ) -> Self {
        out.projected.prepare(0);
        out.kept.clear();
        out.words.clear();
        out.words.resize(CHUNK_WORDS, 0);
        Self { rig, camera, deskew, out, filled: 0, base: 0, kept: 0 }
    }

    /// The next payload words, in order: each chunk of records is projected once whole.
    pub(crate) fn take(&mut self, mut words: &[u64]) {
        if self.filled == 0 && words.len() == CHUNK_WORDS {
            self.project_words(words);
            return;
        }
        while !words.is_empty() {
            let n = (CHUNK_WORDS - self.filled).min(words.len());
            self.out.words[self.filled..self.filled + n].copy_from_slice(&words[..n]);
            self.filled += n;
            words = &words[n..];
            if self.filled == CHUNK_WORDS {
                self.project_gathered(CHUNK);
            }
        }
    }

    /// Projects the first `n` records gathered and starts the next chunk.
    fn project_gathered(&mut self, n: usize) {
        let words = std::mem::take(&mut self.out.words);
        self.project_words(&words[..n * POINT_RECORD_SIZE / 8]);
        (self.out.words, self.filled) = (words, 0);
    }

    /// Projects the records that `words` (whole records) hold, moved by the deskew if any,
    /// and keeps the kept ones'.
    fn project_words(&mut self, words: &[u64]) {
        // u64 words are aligned for records (align 4), and the words are whole records.
        let Ok(chunk) = <[PointRecord]>::ref_from_bytes(words.as_bytes()) else { return };
        let Some(deskew) = self.deskew else {
            self.project_records(chunk);
            return;
        };
        let mut buf = std::mem::take(&mut self.out.moved);
        self.project_records(deskew.moved(chunk, &mut buf));
        self.out.moved = buf;
    }

    /// Projects `chunk`, the sweep's records from index `base` on, and keeps the kept ones'.
    fn project_records(&mut self, chunk: &[PointRecord]) {
        let (n, SweepProjection { projected, kept, .. }) = (chunk.len(), &mut self.out);
        projected.grow(self.base + n);
        let k = self.rig.project_camera_chunk(self.camera, chunk, self.base, self.kept, projected);
        let base = self.base;
        kept.extend(
            projected.index[self.kept..k].iter().filter_map(|&i| chunk.get((i as usize).wrapping_sub(base))),
        );
        (self.kept, self.base) = (k, base + n);
    }

    /// The projection, once the frame was validated with `len` payload bytes: `None` unless
    /// they are whole records and every word was taken.
    pub(crate) fn finish(mut self, len: usize) -> Option<SweepProjection> {
        let n = len / POINT_RECORD_SIZE;
        let rest = n.checked_sub(self.base)?;
        if !len.is_multiple_of(POINT_RECORD_SIZE) || self.filled != rest * POINT_RECORD_SIZE / 8 {
            return None;
        }
        self.project_gathered(rest);
        self.out.projected.count = self.kept;
        self.out.projected.total = n;
        Some(self.out)
    }
}

/// Projects `points` with `calib` into `out` (a one-shot [`Projector`]).
pub fn project_points(calib: &CalibrationSet, points: &[PointRecord], out: &mut Projected) {
    Projector::new(calib).project(points, out);
}

/// Views a lidar payload as points, copying into `scratch` only if the buffer is not aligned
/// for [`PointRecord`] (a `Vec<u8>` from the global allocator normally is).
///
/// # Errors
/// [`PayloadError::RaggedPoints`] if the length is not a multiple of 24 bytes.
pub fn points_from_payload<'a>(
    payload: &'a [u8],
    scratch: &'a mut Vec<PointRecord>,
) -> Result<&'a [PointRecord], PayloadError> {
    if !payload.len().is_multiple_of(POINT_RECORD_SIZE) {
        return Err(PayloadError::RaggedPoints { len: payload.len() });
    }
    if let Ok(p) = <[PointRecord]>::ref_from_bytes(payload) {
        return Ok(p);
    }
    scratch.clear();
    scratch
        .extend(payload.chunks_exact(POINT_RECORD_SIZE).filter_map(|c| PointRecord::read_from_bytes(c).ok()));
    Ok(scratch)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use calib::{project_camera_point, CameraIntrinsics};
    use nalgebra::{Isometry3, Matrix3, Point3, Rotation3, Translation3, UnitQuaternion, Vector3};
    use shared::{CalibEpoch, TimestampNs};

    fn cam_rot() -> UnitQuaternion<f64> {
        UnitQuaternion::from_rotation_matrix(&Rotation3::from_matrix_unchecked(Matrix3::new(
            0.0, 0.0, 1.0, -1.0, 0.0, 0.0, 0.0, -1.0, 0.0,
        )))
    }

    pub(crate) fn pinhole(distortion: Distortion) -> CalibrationSet {
        CalibrationSet::single(
            CalibEpoch(1),
            TimestampNs(0),
            Projection::Pinhole(CameraIntrinsics {
                fx: 900.0,
                fy: 910.0,
                cx: 640.5,
                cy: 359.5,
                width: 1280,
                height: 720,
                distortion,
            }),
            Isometry3::from_parts(
                Translation3::new(1.5, 0.1, 1.5),
                UnitQuaternion::from_euler_angles(0.01, -0.02, 0.03) * cam_rot(),
            ),
            Isometry3::from_parts(
                Translation3::new(1.0, 0.0, 1.8),
                UnitQuaternion::from_euler_angles(0.0, 0.01, -0.015),
            ),
        )
    }

    pub(crate) fn rectified() -> CalibrationSet {
        let mut c = pinhole(Distortion::default());
        let p = Matrix3x4::new(700.0, 0.0, 600.0, 40.0, 0.0, 700.0, 180.0, 0.2, 0.0, 0.0, 1.0, 0.003);
        *c.camera_mut() = Projection::Rectified { p, width: 1242, height: 375 };
        c
    }

    /// A deterministic uniform generator on [0, 1) (xorshift), for the tests of projection.
    pub(crate) fn uniform(seed: u64) -> impl FnMut() -> f64 {
        let mut s = seed | 1;
        move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// A deterministic cloud around the vehicle, including points behind, far off-axis,
    /// on the camera plane, and NaN.
    pub(crate) fn cloud(n: usize) -> Vec<PointRecord> {
        let mut next = uniform(0x9E37_79B9_7F4A_7C15);
        let mut pts: Vec<PointRecord> = (0..n)
            .map(|_| {
                let r = 0.5 + 60.0 * next();
                let az = std::f64::consts::TAU * next();
                let el = -0.4 + 0.5 * next();
                PointRecord {
                    x: (r * az.cos() * el.cos()) as f32,
                    y: (r * az.sin() * el.cos()) as f32,
                    z: (r * el.sin()) as f32,
                    intensity: next() as f32,
                    ..PointRecord::default()
                }
            })
            .collect();
        pts.push(PointRecord { x: f32::NAN, ..PointRecord::default() });
        pts.push(PointRecord { x: 0.5, y: 0.0, z: -0.3, ..PointRecord::default() });
        pts
    }

    fn agree(calib: &CalibrationSet) {
        let pts = cloud(50_000);
        let mut out = Projected::new();
        project_points(calib, &pts, &mut out);
        let iso = calib.lidar_to_camera();
        let mut j = 0;
        for (i, p) in pts.iter().enumerate() {
            let pc = iso * Point3::new(f64::from(p.x), f64::from(p.y), f64::from(p.z));
            let reference = project_camera_point(calib.camera(), pc);
            let ours = (j < out.len() && out.index()[j] as usize == i).then(|| {
                let r = (out.u()[j], out.v()[j], out.depth()[j]);
                j += 1;
                r
            });
            match (reference, ours) {
                (None, None) => {}
                (Some(h), Some((u, v, d))) => {
                    assert!(
                        (h.u - u).abs() < 1e-9 && (h.v - v).abs() < 1e-9 && (h.depth - d).abs() < 1e-9,
                        "{i}"
                    );
                }
                (r, o) => panic!("point {i}: reference {r:?}, ours {o:?}"),
            }
        }
        assert_eq!(j, out.len());
        assert!(out.len() > 1000, "the test cloud should hit the image ({})", out.len());
    }

    #[test]
    fn agrees_with_project_camera_point_pinhole() {
        agree(&pinhole(Distortion::default()));
    }

    #[test]
    fn agrees_with_project_camera_point_distorted() {
        agree(&pinhole(Distortion { k1: -0.28, k2: 0.07, p1: 0.0005, p2: -0.0003, k3: 0.01 }));
    }

    #[test]
    fn agrees_with_project_camera_point_rectified() {
        agree(&rectified());
    }

    #[test]
    fn buffers_are_reused_and_counts_reset() {
        let calib = pinhole(Distortion::default());
        let mut out = Projected::new();
        project_points(&calib, &cloud(1000), &mut out);
        let first = out.len();
        project_points(&calib, &cloud(10), &mut out);
        assert!(out.len() <= 12 && out.total() == 12);
        project_points(&calib, &[], &mut out);
        assert!(out.is_empty() && first > 0);
        assert_eq!(out.means(), (0.0, 0.0, 0.0));
    }

    #[test]
    fn straight_ahead_hits_principal_point() {
        let mut c = pinhole(Distortion::default());
        *c.camera_to_vehicle_mut() = Isometry3::from_parts(Translation3::new(1.5, 0.0, 1.5), cam_rot());
        *c.lidar_to_vehicle_mut() = Isometry3::translation(1.0, 0.0, 1.8);
        let p = PointRecord { x: 9.5, y: 0.0, z: -0.3, ..PointRecord::default() };
        let mut out = Projected::new();
        project_points(&c, &[p], &mut out);
        assert_eq!(out.len(), 1);
        assert!((out.u()[0] - 640.5).abs() < 1e-9 && (out.depth()[0] - 9.0).abs() < 1e-9);
        let _ = Vector3::<f64>::zeros();
    }

    #[test]
    fn payload_views_and_misaligned_copies() {
        let pts = cloud(10);
        let bytes: Vec<u8> = pts.iter().flat_map(|p| zerocopy::IntoBytes::as_bytes(p).to_vec()).collect();
        let mut scratch = Vec::new();
        assert_eq!(points_from_payload(&bytes, &mut scratch).unwrap().len(), pts.len());
        let mut shifted = vec![0u8; bytes.len() + 1];
        shifted[1..].copy_from_slice(&bytes);
        let view = points_from_payload(&shifted[1..], &mut scratch).unwrap();
        assert_eq!(view[3].x.to_bits(), pts[3].x.to_bits());
        assert!(points_from_payload(&bytes[..23], &mut scratch).is_err());
    }
}
