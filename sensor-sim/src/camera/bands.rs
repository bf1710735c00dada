//! Band rendering: the visible faces of a frame are projected once, then the image is drawn
//! in bands of [`BAND_ROWS`] output rows, on as many threads as the renderer has.
//!
//! A band needs only the scratch rows its pixels sample (a few more than its own rows under
//! distortion), so each thread rasterises every projected face into a band-sized scratch
//! that stays in its core's cache, shades the band's rows into band buffers, and the calling
//! thread writes them into the sink: two `write_at`s per band, in whatever order bands
//! finish. The other threads are a persistent pool ([`Pool`]), started with the renderer. Each scratch sample is computed from the same polygon with the same arithmetic
//! whatever band or thread computes it, so the bytes do not depend on the split.

use super::pool::{Job, Pool};
use super::shade::{shade, RowBufs};
use super::RayTable;
use crate::world::{ffloor, World};
use nalgebra::Matrix3;
use shared::frames::{PayloadSink, SinkFull};
use std::ops::Range;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use zerocopy::IntoBytes;

/// Output rows per band: a 1920-pixel band's scratch and output fit a 2 MiB L2 cache.
pub(super) const BAND_ROWS: usize = 32;

/// A visible face projected for the current frame.
#[derive(Clone, Copy, Debug)]
pub(super) struct Poly {
    /// Its polygon: `pts[first..first + count]`, scratch pixel coordinates.
    pub first: u32,
    pub count: u32,
    /// Index into [`Scene::face_info`] (from 1: 0 is no face).
    pub face: u32,
    /// Inverse depth `a·u + b·v + c` over the scratch grid.
    pub plane: (f64, f64, f64),
    /// Scratch rows it covers.
    pub rows: (u32, u32),
}

/// What every band of one frame reads: owned, so that the persistent workers can share it
/// (the renderer moves its buffers in for the frame and takes them back after).
#[derive(Clone, Debug)]
pub(super) struct Scene {
    pub world: Arc<World>,
    pub table: Arc<RayTable>,
    pub polys: Vec<Poly>,
    pub pts: Vec<(f64, f64)>,
    /// Hazed colour and instance of each visible face, indexed by [`Poly::face`].
    pub face_info: Vec<([u8; 3], u16)>,
    /// Camera to world rotation.
    pub r: Matrix3<f32>,
    /// Camera centre in the world.
    pub centre: (f64, f64, f32),
    /// Byte offsets of the rgb and the label planes in the payload.
    pub planes: (usize, usize),
}

/// One thread's band-sized visibility scratch: face id and inverse depth per sample.
#[derive(Debug, Default)]
pub(super) struct Scratch {
    ids: Vec<u32>,
    invz: Vec<f32>,
    /// Per scratch row of the last band drawn: the flat range `[start, end)` of `ids` and
    /// `invz` its polygons wrote (empty when `start >= end`). Only these are cleared for the
    /// next band: the rest is still zero, and most of a band is ground or sky.
    dirty: Vec<(usize, usize)>,
    /// Per-row buffers of the shading passes.
    rows: RowBufs,
}

/// One band's shaded rows.
#[derive(Debug, Default)]
pub(super) struct BandOut {
    pub rgb: Vec<u8>,
    /// Instance ids, each stored little-endian (`to_le`), so that the plane's bytes are the
    /// payload's on any machine.
    pub label: Vec<u16>,
}

/// Per-thread state a renderer keeps between frames.
#[derive(Debug)]
pub(super) struct Bands {
    /// The calling thread's scratch and band buffers.
    scratch: Scratch,
    out: BandOut,
    /// The other threads, started once.
    pool: Pool,
}

impl Bands {
    /// State for `threads` threads (at least one; the calling thread is one of them).
    pub fn new(threads: usize) -> Self {
        Self { scratch: Scratch::default(), out: BandOut::default(), pool: Pool::new(threads.max(1) - 1) }
    }

    /// Threads a frame is drawn on.
    pub fn threads(&self) -> usize {
        self.pool.workers() + 1
    }

    /// Draws every band of `scene` into `sink`, and gives the scene back.
    pub fn draw<S: PayloadSink + ?Sized>(
        &mut self,
        scene: Scene,
        sink: &mut S,
    ) -> (Scene, Result<(), SinkFull>) {
        let (mine, out) = (&mut self.scratch, &mut self.out);
        if self.pool.workers() == 0 {
            let mut result = Ok(());
            for b in 0..scene.table.bands.len() {
                draw_band(&scene, b, mine, out);
                result = write_band(&scene, b, out, sink);
                if result.is_err() {
                    break;
                }
            }
            return (scene, result);
        }
        let job = Arc::new(Job { scene, next: AtomicUsize::new(0) });
        let mut result = Ok(());
        self.pool.run(&job, mine, out, |b, band| {
            if result.is_ok() {
                result = write_band(&job.scene, b, band, sink);
            }
        });
        // Every worker has let go of the job: the scene comes back without a copy.
        let scene = Arc::try_unwrap(job).map_or_else(|job| job.scene.clone(), |job| job.scene);
        (scene, result)
    }
}

/// Writes band `b`'s rows into both planes of the payload.
fn write_band<S: PayloadSink + ?Sized>(
    scene: &Scene,
    b: usize,
    band: &BandOut,
    sink: &mut S,
) -> Result<(), SinkFull> {
    let w = scene.table.intrinsics.width as usize;
    let j0 = b * BAND_ROWS;
    sink.write_at(scene.planes.0 + j0 * w * 3, &band.rgb)?;
    sink.write_at(scene.planes.1 + j0 * w * 2, band.label.as_bytes())
}

/// Rasterises and shades band `b` into `out`: the camera's hot loops, compiled 512 or 256
/// bits wide where the CPU can ([`shared::simd::vectorised`]: the same bytes either way).
pub(super) fn draw_band(scene: &Scene, b: usize, scratch: &mut Scratch, out: &mut BandOut) {
    shared::simd::vectorised(
        #[inline(always)]
        || draw_band_as_built(scene, b, scratch, out),
    );
}

/// [`draw_band`]'s work, inlined into it with every pass it calls.
#[inline(always)]
fn draw_band_as_built(scene: &Scene, b: usize, scratch: &mut Scratch, out: &mut BandOut) {
    let table = &*scene.table;
    let (w, h, gw) = (table.intrinsics.width as usize, table.intrinsics.height as usize, table.gw);
    let rows = b * BAND_ROWS..((b + 1) * BAND_ROWS).min(h);
    let (sy0, sy1) = table.bands[b];
    let (sy0, sy1) = (sy0 as usize, sy1 as usize);
    let n = (sy1 - sy0) * gw;
    for &(a, e) in &scratch.dirty {
        if a < e {
            scratch.ids[a..e].fill(0);
            scratch.invz[a..e].fill(0.0);
        }
    }
    if scratch.ids.len() < n {
        scratch.ids.resize(n, 0);
        scratch.invz.resize(n, 0.0);
    }
    scratch.dirty.clear();
    scratch.dirty.resize(sy1 - sy0, (usize::MAX, 0));
    let (ids, invz, dirty) = (&mut scratch.ids[..], &mut scratch.invz[..], &mut scratch.dirty[..]);
    for p in &scene.polys {
        let y0 = (p.rows.0 as usize).max(sy0);
        let y1 = (p.rows.1 as usize).min(sy1);
        if y0 < y1 {
            let poly = &scene.pts[p.first as usize..(p.first + p.count) as usize];
            raster_rows(poly, p.plane, p.face, gw, (y0..y1, sy0), (&mut *ids, &mut *invz, &mut *dirty));
        }
    }
    let npx = rows.len() * w;
    out.rgb.resize(npx * 3, 0);
    out.label.resize(npx, 0);
    let map = &table.map[rows.start * w..rows.end * w];
    shade(scene, (map, sy0), &scratch.ids, &mut scratch.rows, out);
}

/// Scan-converts scratch rows `rows` of a convex polygon (scratch pixel coordinates) with
/// inverse depth `a·u + b·v + c`, keeping the nearest face per sample (sample centres at
/// i + 0.5), into band buffers whose first row is scratch row `first`, widening each row's
/// `dirty` range over what it writes.
#[inline(always)]
fn raster_rows(
    poly: &[(f64, f64)],
    (a, b, c): (f64, f64, f64),
    face: u32,
    gw: usize,
    (rows, first): (Range<usize>, usize),
    (ids, invz, dirty): (&mut [u32], &mut [f32], &mut [(usize, usize)]),
) {
    let n = poly.len();
    for y in rows {
        let yc = y as f64 + 0.5;
        let (mut xl, mut xr) = (f64::MAX, f64::MIN);
        for (k, &(ua, va)) in poly.iter().enumerate() {
            // The next vertex, cyclically (no division per edge and row).
            let (ub, vb) = if k + 1 < n { poly[k + 1] } else { poly[0] };
            if (va <= yc && yc < vb) || (vb <= yc && yc < va) {
                let x = ua + (yc - va) * (ub - ua) / (vb - va);
                xl = xl.min(x);
                xr = xr.max(x);
            }
        }
        if xl > xr {
            continue;
        }
        let x0 = fceil(xl - 0.5).max(0.0) as usize;
        let x1 = (fceil(xr - 0.5).max(0.0) as usize).min(gw);
        if x0 >= x1 {
            continue;
        }
        let row = (y - first) * gw;
        let d = &mut dirty[y - first];
        *d = (d.0.min(row + x0), d.1.max(row + x1));
        let base = (b * yc + c + a * (x0 as f64 + 0.5)) as f32;
        let af = a as f32;
        let zs = &mut invz[row + x0..row + x1];
        let is = &mut ids[row + x0..row + x1];
        // k < 65536: exact through i32, whose conversion to f32 vectorises (u64's does not).
        for (k, (z, id)) in (0i32..).zip(zs.iter_mut().zip(is.iter_mut())) {
            let v = base + af * k as f32;
            // Selected with a bit mask and stored unconditionally: written as `if`, the
            // compiler turns the stores into per-lane branches.
            let keep = u32::from(v > *z).wrapping_neg();
            *z = f32::from_bits((v.to_bits() & keep) | (z.to_bits() & !keep));
            *id = (face & keep) | (*id & !keep);
        }
    }
}

/// `x.ceil()` without a libm call (x86-64's baseline has none): exact for |x| < 2^52, as
/// [`ffloor`] is.
#[inline(always)]
fn fceil(x: f64) -> f64 {
    -ffloor(-x)
}

/// Scratch rows `[first, end)` each band of [`BAND_ROWS`] output rows samples, for an
/// output `w` pixels wide whose pixels sample `map`.
pub(super) fn band_rows(map: &[[u16; 2]], w: usize) -> Vec<(u32, u32)> {
    map.chunks(BAND_ROWS * w)
        .map(|band| {
            let lo = band.iter().map(|p| p[1]).min().unwrap_or(0);
            let hi = band.iter().map(|p| p[1]).max().unwrap_or(0);
            (u32::from(lo), u32::from(hi) + 1)
        })
        .collect()
}
