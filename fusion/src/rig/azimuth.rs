//! The rig's shared per-point work: one table look-up gives the cameras that may keep a point.
//!
//! A point's azimuth around the lidar (a *pseudo-angle*: one division, no `atan2`) picks one
//! of [`BINS`] sectors, and its horizontal range one of the bands of [`BAND_RADII`]; the table
//! holds, for each (band, sector), a bitmask of the cameras whose wedge can hold a point there,
//! and of those for which the sector is only partly inside the wedge: only there does the
//! camera test its wedge. Only the cameras named run their arithmetic on a point, so a point
//! costs one look-up plus the one or two cameras around it, not a test per camera.
//!
//! Why a sector from the lidar's origin is enough although a wedge's apex is the camera's
//! centre `A`, elsewhere: for a point `P` in the wedge with `|P| ≥ R > |A|`, the angle
//! between `P` and its direction from the apex, `P − A`, is at most `asin(|A| / R)` (in the
//! triangle O, A, P the angle at P faces the side `|A|`, the shortest, so it is acute and
//! its sine is at most `|A| / |P|`). So in band `b` (ranges from `R_b` on) a camera's
//! sectors are those within `half + asin(|A| / R_b)` of its wedge's centre line, and in
//! band 0 (ranges below `1.5 s`, `s` the farthest apex) every camera's. Rounding: the range
//! is compared in `f32` (relative error below 1e-6; the band radius is taken 1e-4 smaller),
//! and the sector is the `f32` pseudo-angle rounded to the nearest sector boundary, so each
//! entry holds the cameras of the two sectors beside that boundary (the `f32` error is
//! below 1e-4 of a sector). Non-finite points go to band 0: every camera sees them
//! and rejects them as when projected alone.

use shared::frames::PointRecord;

use super::Wedge;
use crate::project::CHUNK;

/// Azimuth sectors (a power of two), about 1.4° each.
pub(super) const BINS: usize = 256;
/// Lower radius of each range band, in units of the rig's scale `s` (the farthest apex from
/// the lidar's z axis, at least [`MIN_SCALE_M`]); band 0 holds every camera.
const BAND_RADII: [f64; 12] = [0.0, 1.5, 2.0, 2.6, 3.4, 4.5, 6.0, 8.0, 11.0, 15.0, 20.0, 28.0];
const BANDS: usize = BAND_RADII.len();
/// Floor of the scale, metres (a rig whose cameras all sit on the lidar's axis).
const MIN_SCALE_M: f64 = 0.05;
/// Added to every apex distance, metres (covers the wedge sides' parallel widening).
const APEX_PAD_M: f64 = 1e-3;
/// 1.5·2²³: adding it to an `f32` in [0, 2²²) leaves that number rounded in the low bits.
const ROUNDING_MAGIC: f32 = 12_582_912.0;
/// Cameras a mask can name (bit `i`: camera `i` may keep the point; bit `16 + i`: only if
/// its wedge test says so); cameras past these test their wedge on every point.
pub(super) const MASK_CAMERAS: usize = 16;

/// Per (band, sector), the cameras that may keep a point there.
#[derive(Clone, Debug)]
pub(super) struct AzimuthTable {
    masks: Box<[u32]>,
    /// Squared lower radii of bands 1.. (a point at least this far is in that band or later).
    radii2: [f32; BANDS - 1],
}

/// A pseudo-angle in [−2, 2], increasing with `atan2(y, x)` (±2 both mean ±π).
#[inline(always)]
fn pseudo_angle(x: f32, y: f32) -> f32 {
    let a = y / (x.abs() + y.abs());
    if x < 0.0 {
        2f32.copysign(y) - a
    } else {
        a
    }
}

/// The angle, radians in [−π, π], of pseudo-angle `a` (exact inverse of [`pseudo_angle`]).
fn angle_of(a: f64) -> f64 {
    if a.abs() <= 1.0 {
        a.atan2(1.0 - a.abs())
    } else if a > 1.0 {
        (2.0 - a).atan2(1.0 - a)
    } else {
        (-(a + 2.0)).atan2(a + 1.0)
    }
}

/// `x` wrapped into [−π, π].
fn wrap(x: f64) -> f64 {
    let tau = std::f64::consts::TAU;
    x - tau * (x / tau).round()
}

impl AzimuthTable {
    /// The table of `wedges` (camera `i` is bit `i`; cameras without a wedge or past
    /// [`MASK_CAMERAS`] are in no mask).
    pub(super) fn new(wedges: &[Option<Wedge>]) -> Self {
        let named: Vec<(usize, &Wedge)> = wedges
            .iter()
            .enumerate()
            .take(MASK_CAMERAS)
            .filter_map(|(i, w)| Some((i, w.as_ref()?)))
            .collect();
        let scale = named.iter().map(|(_, w)| w.apex.norm()).fold(MIN_SCALE_M, f64::max);
        let mut masks = vec![0u32; BANDS * BINS].into_boxed_slice();
        let sector = |j: usize| {
            let a0 = angle_of(-2.0 + 4.0 * j as f64 / BINS as f64);
            let a1 = angle_of(-2.0 + 4.0 * (j + 1) as f64 / BINS as f64);
            ((a0 + a1) / 2.0, (a1 - a0) / 2.0)
        };
        for (band, row) in masks.chunks_exact_mut(BINS).enumerate() {
            let radius = scale * BAND_RADII[band] * (1.0 - 1e-4);
            for &(i, w) in &named {
                let apex = w.apex.norm() + APEX_PAD_M;
                // How far a point's azimuth may be from its direction seen from the apex.
                let off = if radius > apex { (apex / radius).asin() + 1e-6 } else { f64::INFINITY };
                let covers = |j: usize| {
                    let (mid, half_bin) = sector(j);
                    let room = w.half + off + half_bin;
                    room >= std::f64::consts::PI || wrap(mid - w.centre).abs() <= room
                };
                // Every point of the sector is inside the wedge's angles seen from the apex.
                let inside = |j: usize| {
                    let (mid, half_bin) = sector(j);
                    wrap(mid - w.centre).abs() + half_bin + off < w.half
                };
                let (bit, test) = (1u32 << i, 1u32 << (i + MASK_CAMERAS));
                for (j, entry) in row.iter_mut().enumerate() {
                    // Entry j: the points whose scaled pseudo-angle rounds to j, in sector
                    // j − 1 or j (the f32 error, below 1e-4 of a sector, cannot reach further).
                    let before = (j + BINS - 1) % BINS;
                    if covers(before) || covers(j) {
                        *entry |= bit;
                        if !(inside(before) && inside(j)) {
                            *entry |= test;
                        }
                    }
                }
            }
        }
        let radii2 = std::array::from_fn(|b| {
            let r = scale * BAND_RADII[b + 1];
            (r * r) as f32
        });
        Self { masks, radii2 }
    }

    /// The table index (band × [`BINS`] + sector) of a point at (`x`, `y`) in the lidar's
    /// x-y plane. Branch-free `f32`, so that [`fill`](Self::fill) runs it four points at a time.
    #[inline(always)]
    fn index(&self, x: f32, y: f32) -> u32 {
        let r2 = x * x + y * y;
        // NaN and infinite points (and overflowing ones) go to band 0: every camera.
        let r2 = if r2 < f32::INFINITY { r2 } else { 0.0 };
        let band: u32 = self.radii2.iter().map(|&t| u32::from(r2 >= t)).sum();
        // Rounded to the nearest integer by the 1.5·2²³ trick (the low mantissa bits hold it):
        // entry j covers sectors j − 1 and j. π (256 after the shift) wraps to 0; a NaN
        // lands anywhere in band 0.
        let v = (pseudo_angle(x, y) + 2.0) * (BINS as f32 / 4.0) + ROUNDING_MAGIC;
        band * BINS as u32 + (v.to_bits() & (BINS as u32 - 1))
    }

    /// The mask of a point at (`x`, `y`) in the lidar's x-y plane.
    #[cfg(test)]
    pub(super) fn mask(&self, x: f32, y: f32) -> u32 {
        self.masks[self.index(x, y) as usize]
    }

    /// Fills `masks` with the mask of each point of `chunk`; returns their union.
    #[inline]
    pub(super) fn fill(&self, chunk: &[PointRecord], masks: &mut [u32; CHUNK]) -> u32 {
        // Three passes: the arithmetic vectorises only apart from the strided loads and
        // the table look-ups.
        let (mut xs, mut ys, mut idx) = ([0f32; CHUNK], [0f32; CHUNK], [0u32; CHUNK]);
        for ((x, y), p) in xs.iter_mut().zip(&mut ys).zip(chunk) {
            (*x, *y) = (p.x, p.y);
        }
        for ((i, &x), &y) in idx.iter_mut().zip(&xs).zip(&ys) {
            *i = self.index(x, y);
        }
        let mut any = 0;
        for (m, &i) in masks.iter_mut().zip(&idx[..chunk.len()]) {
            *m = self.masks[i as usize % (BANDS * BINS)];
            any |= *m;
        }
        any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudo_angle_is_monotone_and_inverted_exactly() {
        let mut last = f64::NEG_INFINITY;
        for k in 0..=3600 {
            let theta = -std::f64::consts::PI + std::f64::consts::TAU * f64::from(k) / 3600.0;
            let a = f64::from(pseudo_angle(theta.cos() as f32, theta.sin() as f32));
            assert!((-2.0..=2.0).contains(&a), "{theta}: {a}");
            if k > 0 && k < 3600 {
                assert!(a > last, "not increasing at {theta}");
                assert!(wrap(angle_of(a) - theta).abs() < 1e-5, "{theta}: {}", angle_of(a));
            }
            last = a;
        }
        assert!(pseudo_angle(0.0, 0.0).is_nan());
    }
}
