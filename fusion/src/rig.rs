//! One lidar sweep into N cameras, the projection work shared (issue 18 §5).
//!
//! Each camera's *horizontal frustum*, a wedge with its apex at the camera's centre of
//! projection, decides which points go through that camera's arithmetic. With three or more
//! wedges the rig does not test every wedge on every point: one look-up per point in an
//! azimuth table (`rig/azimuth.rs`) names the cameras whose wedge can hold it, and only where
//! a sector is partly inside a wedge does that camera test it (four multiply-adds and two
//! compares). With fewer, each camera tests its wedge on every point.
//! "Horizontal" is the lidar's own x-y plane: the transform of the rig is folded into each
//! camera's wedge once per calibration (apex and sides expressed in the lidar frame), so a
//! point is read once and needs no per-point transform at all. (The vehicle frame would not
//! do: KITTI's is camera 0's optical frame, whose x-y plane is the image plane, and there no
//! camera has a wedge; a spinning lidar's z is the rig's up in every log.) Only the
//! points inside a camera's wedge go through that camera's [`Projector`], with exactly the
//! arithmetic of the single-camera path (`Projector::project_chunk`), so every camera's
//! [`Projected`] is bit-identical to `Projector::new(calib).project(points, ..)`. The wedge
//! is conservative: it is widened by [`WEDGE_SLACK_RAD`] and [`WEDGE_SLACK_M`], far more
//! than the rounding of either path, so it never drops a point the camera keeps.
//!
//! Why a wedge is exact enough: for a rectified camera or a pinhole without distortion, the
//! points kept are `apex + λ·ray`, λ > 0, with `ray` in the cone spanned by the rays through
//! the four image corners; the horizontal projection of that cone is the wedge spanned by
//! the projected corner rays. A lens with radial distortion whose distorted radius grows
//! everywhere (`radial_bound`) keeps only points within an undistorted radius `r1` of the
//! axis: their rays lie in the cone over the square ±`r1`. A camera gets no wedge (every
//! point is tested as today) when its corner rays do not fit in a half-plane (looking
//! steeply up or down), or when its lens has tangential distortion or a radial curve that
//! turns back (the plumb-bob polynomial can then fold far-off points into the image).

use calib::{CalibrationSet, Projection};
use nalgebra::{Matrix3, Point3, Vector2, Vector3};
use shared::frames::PointRecord;

use crate::project::{Projected, Projector, CHUNK};
use azimuth::{AzimuthTable, MASK_CAMERAS};

mod azimuth;

/// Angular widening of each wedge side, radians (rounding is below 1e-12 rad).
pub const WEDGE_SLACK_RAD: f64 = 1e-5;
/// Distance widening of each wedge side, metres (covers points next to the apex).
pub const WEDGE_SLACK_M: f64 = 1e-6;

/// Wedges from which the azimuth table pays for its look-up (below, each camera tests its
/// own wedge on every point).
const TABLE_MIN_CAMERAS: usize = 3;

/// A camera's horizontal frustum in the rig frame: `a·x + b·y ≥ c` for both sides; also
/// as angles (for the azimuth table): directions `centre ± half` (widened) from `apex`.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Wedge {
    sides: [(f64, f64, f64); 2],
    centre: f64,
    half: f64,
    apex: Vector2<f64>,
}

impl Wedge {
    /// The wedge of the camera of `calib`, in the lidar frame's x-y plane.
    fn of(calib: &CalibrationSet) -> Option<Self> {
        let (apex, rays) = cone(calib)?;
        let lidar_from_camera = calib.lidar_to_camera().inverse();
        let apex = lidar_from_camera * Point3::from(apex);
        let rays = rays.map(|r| {
            let r = lidar_from_camera.rotation * r;
            Vector2::new(r.x, r.y)
        });
        let mean: Vector2<f64> = rays.iter().map(|r| r.normalize()).sum();
        // NaN-safe: a NaN is not above any bound, so it gives no wedge.
        let above = |x: f64, bound: f64| x > bound;
        if rays.iter().any(|r| !above(r.norm(), 1e-9)) || !above(mean.norm(), 1e-6) {
            return None;
        }
        let angle = |r: &Vector2<f64>| (mean.x * r.y - mean.y * r.x).atan2(mean.dot(r));
        let lo = rays.iter().map(angle).fold(f64::INFINITY, f64::min) - WEDGE_SLACK_RAD;
        let hi = rays.iter().map(angle).fold(f64::NEG_INFINITY, f64::max) + WEDGE_SLACK_RAD;
        if !above(std::f64::consts::PI - 1e-3, hi - lo) {
            return None;
        }
        let base = mean.y.atan2(mean.x);
        let side = |theta: f64, sign: f64| {
            // Inside is to the left of the low side (cross ≥ 0), right of the high side.
            let (bx, by) = (theta.cos() * sign, theta.sin() * sign);
            (-by, bx, -by * apex.x + bx * apex.y - WEDGE_SLACK_M)
        };
        Some(Self {
            sides: [side(base + lo, 1.0), side(base + hi, -1.0)],
            centre: base + (lo + hi) / 2.0,
            half: (hi - lo) / 2.0,
            apex: Vector2::new(apex.x, apex.y),
        })
    }

    #[inline(always)]
    fn contains(&self, x: f64, y: f64) -> bool {
        let [(a0, b0, c0), (a1, b1, c1)] = self.sides;
        a0 * x + b0 * y >= c0 && a1 * x + b1 * y >= c1
    }
}

/// The camera's centre of projection and four rays (camera frame) whose cone holds every
/// point its [`Projector`] keeps; `None` where no such cone is known.
fn cone(calib: &CalibrationSet) -> Option<(Vector3<f64>, [Vector3<f64>; 4])> {
    let (a, b) = match calib.camera() {
        Projection::Rectified { p, .. } => {
            (p.fixed_view::<3, 3>(0, 0).into_owned(), p.column(3).into_owned())
        }
        Projection::Pinhole(k) if k.distortion.is_zero() => {
            (Matrix3::new(k.fx, 0.0, k.cx, 0.0, k.fy, k.cy, 0.0, 0.0, 1.0), Vector3::zeros())
        }
        Projection::Pinhole(k) => {
            // Kept points have |(x/z, y/z)| ≤ r: inside the cone over the square ±r.
            let r = radial_bound(k)?;
            let rays = [(-r, -r), (r, -r), (-r, r), (r, r)].map(|(x, y)| Vector3::new(x, y, 1.0));
            return Some((Vector3::zeros(), rays));
        }
    };
    // pixel·depth = A·X + b, so X = A⁻¹·(depth·(u, v, 1)) + apex with apex = −A⁻¹·b.
    let inv = a.try_inverse()?;
    let (w, h) = (f64::from(calib.camera().width()), f64::from(calib.camera().height()));
    let rays = [(0.0, 0.0), (w, 0.0), (0.0, h), (w, h)].map(|(u, v)| inv * Vector3::new(u, v, 1.0));
    Some((-(inv * b), rays))
}

/// Smallest slope of the radial distortion curve accepted (below, rounding could move a
/// point's radius by more than the bound's slack).
const MIN_RADIAL_SLOPE: f64 = 1e-3;

/// For a lens with radial distortion only whose distorted radius `f(r) = r·(1 + k1·r² +
/// k2·r⁴ + k3·r⁶)` grows on all of `[0, ∞)` (slope ≥ [`MIN_RADIAL_SLOPE`]): a bound `r1` on
/// the undistorted radius `|(x/z, y/z)|` of every point whose distorted pixel lands in the
/// image. The distorted radius of such a pixel is at most `ρ`, the farthest image corner's,
/// and `f` is increasing, so `r ≤ f⁻¹(ρ)`. `None` for tangential distortion or a lens that
/// folds (`f` decreasing somewhere: far-off points could come back into the image).
fn radial_bound(k: &calib::CameraIntrinsics) -> Option<f64> {
    let d = k.distortion;
    if d.p1 != 0.0 || d.p2 != 0.0 || !radius_increases(d.k1, d.k2, d.k3) {
        return None;
    }
    let (w, h) = (f64::from(k.width), f64::from(k.height));
    let corner = |u: f64, v: f64| ((u - k.cx) / k.fx).hypot((v - k.cy) / k.fy);
    let rho = corner(0.0, 0.0).max(corner(w, 0.0)).max(corner(0.0, h)).max(corner(w, h)) * (1.0 + 1e-9);
    let f = |r: f64| {
        let s = r * r;
        r * (1.0 + s * (d.k1 + s * (d.k2 + s * d.k3)))
    };
    if !rho.is_finite() {
        return None;
    }
    let mut hi = rho.max(1e-3);
    while f(hi) <= rho {
        hi *= 2.0;
        if !hi.is_finite() || hi > 1e6 {
            return None;
        }
    }
    let mut lo = 0.0;
    for _ in 0..200 {
        let mid = (lo + hi) / 2.0;
        if f(mid) <= rho {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    // f(hi) > ρ; the slack covers the projector's own rounding of the polynomial (its
    // slope is at least MIN_RADIAL_SLOPE, so an error of 1e-12 in f is 1e-9 in r).
    Some(hi * (1.0 + 1e-6) + 1e-9)
}

/// Whether `f'(r) = h(r²)` with `h(s) = 1 + 3·k1·s + 5·k2·s² + 7·k3·s³` stays at or above
/// [`MIN_RADIAL_SLOPE`] for every `s ≥ 0`: `h` must not fall to −∞, and its value at `s = 0`
/// and at each critical point `s ≥ 0` (where `h'(s) = 3·k1 + 10·k2·s + 21·k3·s² = 0`) must
/// clear the bound.
fn radius_increases(k1: f64, k2: f64, k3: f64) -> bool {
    let finite = k1.is_finite() && k2.is_finite() && k3.is_finite();
    let leading_ok = k3 > 0.0 || (k3 == 0.0 && (k2 > 0.0 || (k2 == 0.0 && k1 >= 0.0)));
    if !finite || !leading_ok {
        return false;
    }
    let h = |s: f64| 1.0 + s * (3.0 * k1 + s * (5.0 * k2 + s * 7.0 * k3));
    let critical: Vec<f64> = if k3 == 0.0 {
        if k2 == 0.0 {
            Vec::new()
        } else {
            vec![-3.0 * k1 / (10.0 * k2)]
        }
    } else {
        let disc = 100.0 * k2 * k2 - 252.0 * k3 * k1;
        if disc < 0.0 {
            Vec::new()
        } else {
            let q = disc.sqrt();
            vec![(-10.0 * k2 - q) / (42.0 * k3), (-10.0 * k2 + q) / (42.0 * k3)]
        }
    };
    critical.into_iter().filter(|s| *s >= 0.0).all(|s| h(s) >= MIN_RADIAL_SLOPE)
}

#[derive(Clone, Debug)]
struct RigCamera {
    projector: Projector,
    wedge: Option<Wedge>,
}

impl RigCamera {
    /// Projects one chunk (its first point being input point `base`) from position `k` of
    /// `out`, each point tested against the wedge first if the camera has one.
    #[inline]
    fn project_chunk(&self, chunk: &[PointRecord], base: usize, k: usize, out: &mut Projected) -> usize {
        match &self.wedge {
            Some(w) => self.projector.project_chunk(chunk, base, k, out, |j| {
                w.contains(f64::from(chunk[j].x), f64::from(chunk[j].y))
            }),
            None => self.projector.project_chunk(chunk, base, k, out, |_| true),
        }
    }
}

/// N cameras around one lidar, prepared for projecting many sweeps.
///
/// Each camera's calibration set describes its own lidar → camera transform, and the
/// cameras are placed through the lidar, so the sets need not agree on what "vehicle"
/// means.
#[derive(Clone, Debug)]
pub struct RigProjector {
    cameras: Vec<RigCamera>,
    /// The cameras each point may fall in; `None` below [`TABLE_MIN_CAMERAS`] wedges.
    table: Option<AzimuthTable>,
}

/// Per-camera projected points of one sweep, reused across calls.
#[derive(Clone, Debug, Default)]
pub struct RigProjected {
    cameras: Vec<Projected>,
}

impl RigProjected {
    /// Empty buffers.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The points camera `i` keeps (in the order the cameras were given).
    ///
    /// # Panics
    /// If `i` is not below the number of cameras of the last projection.
    #[must_use]
    pub fn camera(&self, i: usize) -> &Projected {
        &self.cameras[i]
    }

    /// Every camera's points, in order.
    #[must_use]
    pub fn cameras(&self) -> &[Projected] {
        &self.cameras
    }

    /// Points kept, summed over the cameras (a point seen by two counts twice).
    #[must_use]
    pub fn total_kept(&self) -> usize {
        self.cameras.iter().map(Projected::len).sum()
    }
}

impl RigProjector {
    /// Prepares every camera of `calibs` (one set per camera, all for the same lidar).
    #[must_use]
    pub fn new(calibs: &[CalibrationSet]) -> Self {
        let cameras: Vec<RigCamera> =
            calibs.iter().map(|c| RigCamera { projector: Projector::new(c), wedge: Wedge::of(c) }).collect();
        let wedges: Vec<Option<Wedge>> = cameras.iter().map(|c| c.wedge).collect();
        let table =
            (wedges.iter().flatten().count() >= TABLE_MIN_CAMERAS).then(|| AzimuthTable::new(&wedges));
        Self { cameras, table }
    }

    /// Number of cameras.
    #[must_use]
    pub fn len(&self) -> usize {
        self.cameras.len()
    }

    /// Whether the rig has no camera.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.cameras.is_empty()
    }

    /// Camera `i`'s own projector (its image size, or projecting it alone).
    ///
    /// # Panics
    /// If `i` is not below [`RigProjector::len`].
    #[must_use]
    pub fn camera(&self, i: usize) -> &Projector {
        &self.cameras[i].projector
    }

    /// How many cameras have a horizontal frustum to cull with (the others test every point).
    #[must_use]
    pub fn culled_cameras(&self) -> usize {
        self.cameras.iter().filter(|c| c.wedge.is_some()).count()
    }

    /// Projects `points` into camera `i` alone, culled by its wedge, replacing the contents
    /// of `out`: the points and values camera `i` gets from [`RigProjector::project`] (and
    /// from its own [`Projector`]). A fusion engine of one (lidar, camera) pair uses this.
    ///
    /// # Panics
    /// If `i` is not below [`RigProjector::len`].
    pub fn project_camera(&self, i: usize, points: &[PointRecord], out: &mut Projected) {
        let camera = &self.cameras[i];
        out.prepare(points.len());
        let mut k = 0usize;
        for (c, chunk) in points.chunks(CHUNK).enumerate() {
            k = camera.project_chunk(chunk, c * CHUNK, k, out);
        }
        out.set_len(k);
    }

    /// One chunk's step of [`project_camera`](Self::project_camera): `chunk` (at most
    /// [`CHUNK`] points, the first being input point `base`) into camera `i`, appended to
    /// `out` from position `k` (`out` has room up to `base + chunk.len()`); returns the new
    /// count. For a sweep projected chunk by chunk as it streams from its slot.
    pub(crate) fn project_camera_chunk(
        &self,
        i: usize,
        chunk: &[PointRecord],
        base: usize,
        k: usize,
        out: &mut Projected,
    ) -> usize {
        self.cameras[i].project_chunk(chunk, base, k, out)
    }

    /// Projects `points` into every camera, replacing the contents of `out`.
    pub fn project(&self, points: &[PointRecord], out: &mut RigProjected) {
        out.cameras.resize_with(self.cameras.len(), Projected::new);
        for o in &mut out.cameras {
            o.prepare(points.len());
        }
        let mut counts = vec![0usize; self.cameras.len()];
        let mut masks = [0u32; CHUNK];
        for (c, chunk) in points.chunks(CHUNK).enumerate() {
            let base = c * CHUNK;
            // The shared part: each point's cameras, one table look-up for all of them.
            let any = self.table.as_ref().map_or(0, |t| t.fill(chunk, &mut masks));
            let masks = &masks[..chunk.len()];
            for (i, ((cam, o), k)) in self.cameras.iter().zip(&mut out.cameras).zip(&mut counts).enumerate() {
                *k = match (&cam.wedge, &self.table) {
                    (Some(w), Some(_)) if i < MASK_CAMERAS => {
                        let bit = 1u32 << i;
                        if any & bit == 0 {
                            continue;
                        }
                        // Sweeps come in azimuth order: the camera's points are a short run.
                        let lo = masks.iter().position(|m| m & bit != 0).unwrap_or(0);
                        let hi = masks.iter().rposition(|m| m & bit != 0).map_or(lo, |h| h + 1);
                        let (run, points) = (&masks[lo..hi], &chunk[lo..hi]);
                        let test = 1u32 << (i + MASK_CAMERAS);
                        cam.projector.project_chunk(points, base + lo, *k, o, |j| {
                            let m = run[j];
                            m & bit != 0
                                && (m & test == 0
                                    || w.contains(f64::from(points[j].x), f64::from(points[j].y)))
                        })
                    }
                    _ => cam.project_chunk(chunk, base, *k, o),
                };
            }
        }
        for (o, k) in out.cameras.iter_mut().zip(counts) {
            o.set_len(k);
        }
    }
}

#[cfg(test)]
mod tests;
