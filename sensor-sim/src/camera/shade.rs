//! Shading a band's output rows from its visibility scratch, a row at a time in three
//! passes: gather each pixel's scratch sample; do the float work of the pixel's ray against
//! the ground plane for every pixel of the row, branch-free, so that the compiler vectorises
//! it (it is wasted on face and sky pixels, but four lanes at a time it is cheaper than one
//! branchy pixel at a time); then pick face, ground or sky per pixel.
//!
//! Each value is computed with the same operations in the same order as a pixel-by-pixel
//! loop would (no reassociation, no fused multiply-add), so the bytes are the same.

use super::bands::{BandOut, Scene};
use super::{haze_mix, haze_weight, sky};
use crate::world::{GROUND_ID, SKY_ID};

/// One output row's per-pixel intermediates, reused row after row.
#[derive(Debug, Default)]
pub(super) struct RowBufs {
    /// Face id of the pixel's scratch sample (0: none).
    id: Vec<u32>,
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
}

/// Shades the pixels of `map` (whole output rows) from the band scratch `ids` starting at
/// scratch row `sy0`, into `out`.
pub(super) fn shade(
    scene: &Scene,
    map: &[[u16; 2]],
    sy0: usize,
    ids: &[u32],
    rows: &mut RowBufs,
    out: &mut BandOut,
) {
    let w = scene.table.intrinsics.width as usize;
    for v in [&mut rows.xu, &mut rows.yu, &mut rows.dz, &mut rows.ox, &mut rows.oy] {
        v.resize(w, 0.0);
    }
    rows.id.resize(w, 0);
    rows.k.resize(w, 0);
    let lines =
        map.chunks_exact(w).zip(out.rgb.chunks_exact_mut(w * 3)).zip(out.label.chunks_exact_mut(w * 2));
    for ((m, rgb), label) in lines {
        gather(scene, m, sy0, ids, rows);
        ground_rays(scene, rows);
        pick(scene, rows, rgb, label);
    }
}

/// Each pixel's face id and ray.
fn gather(scene: &Scene, m: &[[u16; 2]], sy0: usize, ids: &[u32], rows: &mut RowBufs) {
    let table = &*scene.table;
    let gw = table.gw;
    let px = m.iter().zip(rows.id.iter_mut()).zip(rows.xu.iter_mut().zip(rows.yu.iter_mut()));
    for ((&[gx, gy], id), (xu, yu)) in px {
        let (gx, gy) = (usize::from(gx), usize::from(gy));
        *id = ids[(gy - sy0) * gw + gx];
        *xu = table.xs[gx];
        *yu = table.ys[gy];
    }
}

/// The ground-plane intersection of every pixel's ray, branch-free.
fn ground_rays(scene: &Scene, rows: &mut RowBufs) {
    let r = &scene.r;
    let (r0, r1, r2) = (
        [r[(0, 0)], r[(0, 1)], r[(0, 2)]],
        [r[(1, 0)], r[(1, 1)], r[(1, 2)]],
        [r[(2, 0)], r[(2, 1)], r[(2, 2)]],
    );
    let cz = scene.centre.2;
    let n = rows.xu.len();
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
        k[i] = haze_weight(inv_t);
    }
}

/// Each pixel's colour and label: its face's, the ground's or the sky's.
fn pick(scene: &Scene, rows: &RowBufs, rgb: &mut [u8], label: &mut [u8]) {
    let (cx, cy, cz) = scene.centre;
    let world = &*scene.world;
    let px = rows.id.iter().zip(&rows.dz).zip(rows.ox.iter().zip(&rows.oy).zip(&rows.k));
    for (((&f, &dz), ((&ox, &oy), &k)), (rgb, label)) in
        px.zip(rgb.chunks_exact_mut(3).zip(label.chunks_exact_mut(2)))
    {
        let (c, l) = if f != 0 {
            scene.face_info[f as usize]
        } else if dz < -1e-6 && cz > 0.0 {
            let g = world.ground_at(cx + f64::from(ox), cy + f64::from(oy));
            (haze_mix(g.colour, k), GROUND_ID)
        } else {
            // Gradient on the ray's (unnormalised) rise: close enough to the elevation's
            // sine within the field of view, and no square root.
            (sky(dz), SKY_ID)
        };
        rgb.copy_from_slice(&c);
        label.copy_from_slice(&l.to_le_bytes());
    }
}
