//! Shading a band's output rows from its visibility scratch, a row at a time in three
//! passes: look each pixel's scratch sample up and draw the pixels a face covers, collecting
//! the others (ground or sky); do the float work of those pixels' rays against the ground
//! plane, branch-free over the collected pixels so that the compiler vectorises it (it is
//! wasted on the sky's few pixels); then draw ground or sky per collected pixel.
//!
//! Each value is computed with the same operations in the same order as a pixel-by-pixel
//! loop would (no reassociation, no fused multiply-add), so the bytes are the same.

use super::bands::{BandOut, Scene};
use super::{ground_hazed, haze_weight, sky};
use crate::world::{GroundMap, GROUND_ID, SKY_ID};

/// One output row's pixels that no face covers, with their intermediates; reused row after
/// row.
#[derive(Debug, Default)]
pub(super) struct RowBufs {
    /// Pixels collected (the buffers hold a whole row; the first `n` entries count).
    n: usize,
    /// Pixel index in the row.
    at: Vec<u32>,
    /// Undistorted normalised coordinates of the pixel's ray.
    xu: Vec<f32>,
    yu: Vec<f32>,
    /// The ray's world z component (its rise).
    dz: Vec<f32>,
    /// World offsets from the camera to where the ray meets the ground, and the haze weight
    /// there (meaningful only where the ray points down).
    ox: Vec<f32>,
    oy: Vec<f32>,
    k: Vec<u32>,
    /// Where the ray meets the ground in the ground map (cell −1: off the map).
    sub: Vec<[i32; 2]>,
}

/// Shades the pixels of `map` (whole output rows) into `out`, from the band scratch `ids`
/// whose first row is scratch row `sy0`.
#[inline(always)]
pub(super) fn shade(
    scene: &Scene,
    (map, sy0): (&[[u16; 2]], usize),
    ids: &[u32],
    rows: &mut RowBufs,
    out: &mut BandOut,
) {
    let w = scene.table.intrinsics.width as usize;
    // Sized once for a whole row: the passes index them, with no pushes.
    for v in [&mut rows.xu, &mut rows.yu, &mut rows.dz, &mut rows.ox, &mut rows.oy] {
        v.resize(w, 0.0);
    }
    rows.at.resize(w, 0);
    rows.k.resize(w, 0);
    rows.sub.resize(w, [0; 2]);
    let lines = map.chunks_exact(w).zip(out.rgb.chunks_exact_mut(w * 3)).zip(out.label.chunks_exact_mut(w));
    for ((m, rgb), label) in lines {
        faces(scene, (m, sy0), ids, rows, rgb, label);
        ground_rays(scene, rows);
        background(scene, rows, rgb, label);
    }
}

/// Draws the pixels of row `m` a face covers; collects the others' rays into `rows`.
///
/// A pixel's sample `[gx, gy]` is at `(gy - sy0) · gw + gx` in the band scratch: computed
/// here rather than looked up, so that a row streams one table from memory, not two.
#[inline(always)]
fn faces(
    scene: &Scene,
    (m, sy0): (&[[u16; 2]], usize),
    ids: &[u32],
    rows: &mut RowBufs,
    rgb: &mut [u8],
    label: &mut [u16],
) {
    let table = &*scene.table;
    let (gw, info) = (table.gw, &scene.face_info[..]);
    let mut n = 0;
    let px = m.iter().zip(rgb.chunks_exact_mut(3).zip(label.iter_mut()));
    for (i, (&[gx, gy], (rgb, label))) in px.enumerate() {
        let (gx, gy) = (usize::from(gx), usize::from(gy));
        let f = ids[(gy - sy0) * gw + gx] as usize;
        if f != 0 {
            let (c, l) = info[f];
            rgb.copy_from_slice(&c);
            *label = l.to_le();
        } else {
            rows.at[n] = i as u32;
            rows.xu[n] = table.xs[gx];
            rows.yu[n] = table.ys[gy];
            n += 1;
        }
    }
    rows.n = n;
}

/// The ground-plane intersection of every collected pixel's ray, branch-free.
#[inline(always)]
fn ground_rays(scene: &Scene, rows: &mut RowBufs) {
    let r = &scene.r;
    let (r0, r1, r2) = (
        [r[(0, 0)], r[(0, 1)], r[(0, 2)]],
        [r[(1, 0)], r[(1, 1)], r[(1, 2)]],
        [r[(2, 0)], r[(2, 1)], r[(2, 2)]],
    );
    let cz = scene.centre.2;
    let n = rows.n;
    let (xu, yu) = (&rows.xu[..n], &rows.yu[..n]);
    let (dz, ox, oy, k) = (&mut rows.dz[..n], &mut rows.ox[..n], &mut rows.oy[..n], &mut rows.k[..n]);
    for i in 0..n {
        let (x, y) = (xu[i], yu[i]);
        let d = r2[0] * x + r2[1] * y + r2[2];
        // The ray (x, y, 1) in camera coordinates reaches the ground at depth t: its
        // inverse is -d / cz.
        let inv_t = -d / cz;
        let t = 1.0 / inv_t;
        dz[i] = d;
        ox[i] = t * (r0[0] * x + r0[1] * y + r0[2]);
        oy[i] = t * (r1[0] * x + r1[1] * y + r1[2]);
        // Used only where the ray meets the ground: there inv_t > 0, so k is in 0..=256.
        k[i] = haze_weight(inv_t);
    }
    let (cx, cy, _) = scene.centre;
    scene.world.ground_materials().locate((cx, cy), (ox, oy), &mut rows.sub[..n]);
}

/// Draws each collected pixel: the ground's colour where its ray points down, the sky's
/// otherwise.
#[inline(always)]
fn background(scene: &Scene, rows: &RowBufs, rgb: &mut [u8], label: &mut [u16]) {
    let (cx, cy, cz) = scene.centre;
    let map = scene.world.ground_materials();
    let n = rows.n;
    let px = rows.at[..n].iter().zip(&rows.dz).zip(rows.sub.iter().zip(&rows.k));
    for (j, ((&i, &dz), (&at, &k))) in px.enumerate() {
        let (c, l) = if dz < -1e-6 && cz > 0.0 {
            let m = if at[0] >= 0 {
                map.material_in(at)
            } else {
                GroundMap::outside(cx + f64::from(rows.ox[j]), cy + f64::from(rows.oy[j]))
            };
            (ground_hazed(m, k), GROUND_ID)
        } else {
            // Gradient on the ray's (unnormalised) rise: close enough to the elevation's
            // sine within the field of view, and no square root.
            (sky(dz), SKY_ID)
        };
        let i = i as usize;
        rgb[i * 3..i * 3 + 3].copy_from_slice(&c);
        label[i] = l.to_le();
    }
}
