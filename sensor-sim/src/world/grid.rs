//! The uniform grid over the primitives and the ray–primitive intersections of
//! [`World::cast`].

use super::{ffloor, Hit, Prim, RayScratch, Shape, World};
use std::sync::atomic::{AtomicU64, Ordering};

/// The grid: cells over x-y listing the primitives that overlap them.
#[derive(Clone, Debug)]
pub(super) struct Grid {
    /// Unique among the grids of this process (from 1): what a [`WalkStart`] is keyed on.
    id: u64,
    x0: f64,
    y0: f64,
    /// The far x and y bounds: `x0 + cell·nx`, `y0 + cell·ny`.
    x1: f64,
    y1: f64,
    cell: f64,
    inv_cell: f64,
    nx: usize,
    ny: usize,
    cells: Vec<Cell>,
    items: Vec<Item>,
}

/// One cell: its primitives are `items[start..end]`; `zmax` is the top of the tallest,
/// widened by [`Z_MARGIN`] (-∞ for an empty cell; an `f32` bound, held as `f64` so the
/// walk compares without a conversion). One load per cell the walk visits.
#[derive(Clone, Copy, Debug)]
struct Cell {
    start: u32,
    end: u32,
    zmax: f64,
}

/// A primitive a cell lists, with its bottom and top widened by [`Z_MARGIN`] beside it
/// (`f32` bounds held as `f64`), so the walk's height test needs no second load.
#[derive(Clone, Copy, Debug)]
struct Item {
    bottom: f64,
    top: f64,
    prim: u32,
}

/// A new [`Grid::id`].
fn next_grid_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    // Relaxed: only uniqueness matters, and the counter orders nothing else (no partner).
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Margin of the grid's height bounds, metres: far above the rounding of the heights the
/// traversal computes, so the bounds are conservative.
const Z_MARGIN: f32 = 1e-3;

/// Grid cell size, metres.
const CELL: f64 = 4.0;

impl World {
    /// Nearest primitive hit with 0 < t < t_end. Inlined through [`World::cast`] into the
    /// lidar's per-ray loop: the hit then stays in registers instead of being returned
    /// through two stack frames (measured: about a fifth of a sweep's CPU time).
    #[inline(always)]
    pub(super) fn cast_prims(
        &self,
        o: [f64; 3],
        d: [f64; 3],
        t_end: f64,
        scratch: &mut RayScratch,
    ) -> Option<Hit> {
        let g = &self.grid;
        if g.nx == 0 {
            return None;
        }
        // One division per axis for the whole walk: the clip, the cell boundaries and the
        // boxes' height slabs multiply by these.
        let inv = [1.0 / d[0], 1.0 / d[1], 1.0 / d[2]];
        let mut t1 = t_end;
        if d[2] > 1e-12 {
            t1 = fmin(t1, (self.max_height - o[2]) * inv[2]);
        }
        // From inside the grid the walk starts at t = 0 and ends where it leaves the grid
        // (no primitive lies beyond); from outside, the ray is clipped to the grid first.
        let inside = o[0] >= g.x0 && o[0] <= g.x1 && o[1] >= g.y0 && o[1] <= g.y1;
        let (t0, start) = if inside {
            if scratch.walk.from != [o[0], o[1]] || scratch.walk.grid != g.id {
                scratch.walk = g.walk_start(o, [o[0], o[1]]);
            }
            (0.0, scratch.walk)
        } else {
            let (t0, t1_grid) = g.clip(o, d, inv)?;
            t1 = fmin(t1, t1_grid);
            (t0, g.walk_start(o, [o[0] + d[0] * t0, o[1] + d[1] * t0]))
        };
        if t0 >= t1 {
            return None;
        }
        scratch.stamp = scratch.stamp.wrapping_add(1);
        if scratch.stamp == 0 {
            scratch.mailbox.iter_mut().for_each(|m| *m = 0);
            scratch.stamp = 1;
        }
        if scratch.mailbox.len() < self.prims.len() {
            scratch.mailbox.resize(self.prims.len(), 0);
        }
        let stamp = scratch.stamp;
        let [mut ix, mut iy] = start.cell;
        let (step_x, mut next_x, delta_x) = axis_setup(d[0], inv[0], start.edges[0], g.cell);
        let (step_y, mut next_y, delta_y) = axis_setup(d[1], inv[1], start.edges[1], g.cell);

        // The cell index follows the walk: ±1 along x, ±nx along y.
        let mut c = iy as usize * g.nx + ix as usize;
        let stride_y = step_y * g.nx as isize;
        let mut best_t = t1;
        let mut best: Option<(usize, [f64; 3])> = None;
        // A cell's entry height is the previous cell's exit height (the same `t`).
        let mut z_in = o[2] + d[2] * t0;
        loop {
            let t_out = fmin(fmin(next_x, next_y), t1);
            let cell = g.cells[c];
            let z_out = o[2] + d[2] * t_out;
            let (z_low, z_high) = if z_in < z_out { (z_in, z_out) } else { (z_out, z_in) };
            // An empty cell's top is -∞.
            if z_low <= cell.zmax {
                for item in &g.items[cell.start as usize..cell.end as usize] {
                    // Over this cell the ray passes above or below the primitive: any hit on
                    // it lies in another cell that lists it, so it is left unmarked for that
                    // cell to test.
                    if z_low > item.top || z_high < item.bottom {
                        continue;
                    }
                    let pi = item.prim as usize;
                    if scratch.mailbox[pi] == stamp {
                        continue;
                    }
                    scratch.mailbox[pi] = stamp;
                    if let Some((t, n)) = intersect_fast(&self.fast[pi], o, d, inv[2], best_t) {
                        best_t = t;
                        best = Some((pi, n));
                    }
                }
            }
            if best_t <= t_out || t_out >= t1 {
                break;
            }
            z_in = z_out;
            if next_x < next_y {
                ix += step_x;
                if ix < 0 || ix >= g.nx as isize {
                    break;
                }
                c = c.wrapping_add_signed(step_x);
                next_x += delta_x;
            } else {
                iy += step_y;
                if iy < 0 || iy >= g.ny as isize {
                    break;
                }
                c = c.wrapping_add_signed(stride_y);
                next_y += delta_y;
            }
        }
        best.map(|(pi, normal)| {
            let p = &self.prims[pi];
            Hit { t: best_t, instance: p.instance, colour: p.colour, normal, reflectivity: p.reflectivity }
        })
    }
}

/// The smaller of two `t`s that are never NaN: a compare, not [`f64::min`]'s NaN handling.
#[inline(always)]
fn fmin(a: f64, b: f64) -> f64 {
    if a < b {
        a
    } else {
        b
    }
}

/// Where a walk from a ray origin starts: what every ray from one origin shares (the
/// lidar's beams of one firing), kept in [`RayScratch`].
#[derive(Clone, Copy, Debug)]
pub(super) struct WalkStart {
    /// The grid it is for ([`Grid::id`]; 0 before the first ray: no grid's), so a scratch
    /// used on another world does not start a walk in this one's cells.
    grid: u64,
    /// The origin's x and y.
    from: [f64; 2],
    /// The start cell.
    cell: [isize; 2],
    /// Per axis, the offsets from the origin to the start cell's upper and lower edges.
    edges: [[f64; 2]; 2],
}

impl Default for WalkStart {
    fn default() -> Self {
        Self { grid: 0, from: [0.0; 2], cell: [0; 2], edges: [[0.0; 2]; 2] }
    }
}

impl Grid {
    /// The walk from `o` whose first point in the grid is `p` (x, y).
    fn walk_start(&self, o: [f64; 3], p: [f64; 2]) -> WalkStart {
        // `ffloor`, not libm's `floor` (a call per ray): the same integer for every input.
        let ix = (ffloor((p[0] - self.x0) * self.inv_cell) as isize).clamp(0, self.nx as isize - 1);
        let iy = (ffloor((p[1] - self.y0) * self.inv_cell) as isize).clamp(0, self.ny as isize - 1);
        let edges = |origin: f64, i: isize, o: f64| {
            [origin + (i + 1) as f64 * self.cell - o, origin + i as f64 * self.cell - o]
        };
        WalkStart {
            grid: self.id,
            from: [o[0], o[1]],
            cell: [ix, iy],
            edges: [edges(self.x0, ix, o[0]), edges(self.y0, iy, o[1])],
        }
    }

    /// The ray's entry and exit `t` of the grid's x-y bounds (`inv`: the reciprocals of
    /// `d`), or `None` if it passes beside them.
    fn clip(&self, o: [f64; 3], d: [f64; 3], inv: [f64; 3]) -> Option<(f64, f64)> {
        let (mut t0, mut t1) = (0.0f64, f64::INFINITY);
        for (axis, b) in [(0usize, [self.x0, self.x1]), (1, [self.y0, self.y1])] {
            if d[axis].abs() < 1e-15 {
                if o[axis] < b[0] || o[axis] > b[1] {
                    return None;
                }
            } else {
                let (mut ta, mut tb) = ((b[0] - o[axis]) * inv[axis], (b[1] - o[axis]) * inv[axis]);
                if ta > tb {
                    std::mem::swap(&mut ta, &mut tb);
                }
                t0 = t0.max(ta);
                t1 = t1.min(tb);
            }
        }
        Some((t0, t1))
    }
}

/// The walk along one axis: the step, the `t` of the first cell boundary and the `t`
/// between boundaries, from the direction's component `d`, its reciprocal `inv` and the
/// offsets to the start cell's upper and lower edges.
#[inline]
fn axis_setup(d: f64, inv: f64, edges: [f64; 2], cell: f64) -> (isize, f64, f64) {
    if d > 1e-15 {
        (1, edges[0] * inv, cell * inv)
    } else if d < -1e-15 {
        (-1, edges[1] * inv, -cell * inv)
    } else {
        (0, f64::INFINITY, f64::INFINITY)
    }
}

/// Ray–primitive intersection: the entering hit with 1e-6 < t < t_max, and its outward normal.
#[inline]
#[must_use]
pub fn intersect(shape: &Shape, o: [f64; 3], d: [f64; 3], t_max: f64) -> Option<(f64, [f64; 3])> {
    intersect_fast(&FastShape::from(*shape), o, d, 1.0 / d[2], t_max)
}

/// A shape with its yaw's sine and cosine precomputed, and for a box `reach2`: the square
/// of a radius (with a margin) about `centre` in x-y that holds its footprint.
#[derive(Clone, Copy, Debug)]
pub(super) enum FastShape {
    Box { centre: [f64; 3], half: [f64; 3], c: f64, s: f64, reach2: f64 },
    Cylinder { x: f64, y: f64, z0: f64, z1: f64, r: f64 },
}

impl From<Shape> for FastShape {
    fn from(shape: Shape) -> Self {
        match shape {
            Shape::Box { centre, half, yaw } => {
                let (s, c) = yaw.sin_cos();
                // A relative and an absolute margin far above the rounding of the test.
                let reach = half[0].hypot(half[1]) * (1.0 + 1e-6) + 1e-6;
                Self::Box { centre, half, c, s, reach2: reach * reach }
            }
            Shape::Cylinder { x, y, z0, z1, r } => Self::Cylinder { x, y, z0, z1, r },
        }
    }
}

/// Whether the ray from `o` along `d` certainly misses, or meets only behind its origin, a
/// footprint within `√reach2` of a centre at `-(rx, ry)` from `o` in x-y: a test without a
/// division that spares most boxes a cell lists the slab test (conservative: when it says
/// so, the slab test finds no hit with t > 0 either, so results do not change).
#[inline(always)]
fn misses_footprint(rx: f64, ry: f64, d: [f64; 3], reach2: f64) -> bool {
    // |d_xy|², and the ray line's offset from the centre times |d_xy| (cross) and its
    // distance along the ray to the centre's foot times |d_xy| (along).
    let a2 = d[0] * d[0] + d[1] * d[1];
    let cross = rx * d[1] - ry * d[0];
    let along = -(rx * d[0] + ry * d[1]);
    let r2a2 = reach2 * a2;
    cross * cross > r2a2 || (along < 0.0 && along * along > r2a2)
}

/// The box test's interval along the ray: the last axis and side that raised `tmin`.
struct Slabs {
    tmin: f64,
    tmax: f64,
    axis: usize,
    sign: f64,
}

impl Slabs {
    /// Narrows the interval to axis `k`'s slab `|lo + t·ld| ≤ half` (`inv` = `1 / ld`):
    /// false if the ray misses it. Plain compares (no value here is NaN).
    #[inline(always)]
    fn narrow(&mut self, k: usize, lo: f64, ld: f64, inv: f64, half: f64) -> bool {
        if ld.abs() < 1e-15 {
            return lo.abs() <= half;
        }
        let ta = (-half - lo) * inv;
        let tb = (half - lo) * inv;
        let (near, far, sg) = if ta < tb { (ta, tb, -1.0) } else { (tb, ta, 1.0) };
        if near > self.tmin {
            self.tmin = near;
            self.axis = k;
            self.sign = sg;
        }
        if far < self.tmax {
            self.tmax = far;
        }
        self.tmin <= self.tmax
    }
}

/// [`intersect`] for a [`FastShape`]; `inv_dz` is `1.0 / d[2]`, computed once per ray.
/// Inlined into the walk, as the walk is into the lidar's loop (its result then needs no
/// trip through memory).
#[inline(always)]
fn intersect_fast(
    shape: &FastShape,
    o: [f64; 3],
    d: [f64; 3],
    inv_dz: f64,
    t_max: f64,
) -> Option<(f64, [f64; 3])> {
    const EPS: f64 = 1e-6;
    match *shape {
        FastShape::Box { centre, half, c, s, reach2 } => {
            let (rx, ry) = (o[0] - centre[0], o[1] - centre[1]);
            if misses_footprint(rx, ry, d, reach2) {
                return None;
            }
            let lo = [rx * c + ry * s, -rx * s + ry * c, o[2] - centre[2]];
            let ld = [d[0] * c + d[1] * s, -d[0] * s + d[1] * c, d[2]];
            let inv = [1.0 / ld[0], 1.0 / ld[1], inv_dz];
            let mut slabs = Slabs { tmin: f64::NEG_INFINITY, tmax: t_max, axis: 0, sign: 1.0 };
            // The axes in order 0, 1, 2 (a tie keeps the earlier axis's normal).
            if !(slabs.narrow(0, lo[0], ld[0], inv[0], half[0])
                && slabs.narrow(1, lo[1], ld[1], inv[1], half[1])
                && slabs.narrow(2, lo[2], ld[2], inv[2], half[2]))
            {
                return None;
            }
            let Slabs { tmin, axis, sign, .. } = slabs;
            if tmin <= EPS || tmin >= t_max {
                return None;
            }
            let n = match axis {
                0 => [c * sign, s * sign, 0.0],
                1 => [-s * sign, c * sign, 0.0],
                _ => [0.0, 0.0, sign],
            };
            Some((tmin, n))
        }
        FastShape::Cylinder { x, y, z0, z1, r } => {
            let (ox, oy) = (o[0] - x, o[1] - y);
            let a = d[0] * d[0] + d[1] * d[1];
            let mut best: Option<(f64, [f64; 3])> = None;
            if a > 1e-18 {
                let b = ox * d[0] + oy * d[1];
                let cc = ox * ox + oy * oy - r * r;
                let disc = b * b - a * cc;
                if disc < 0.0 {
                    return None;
                }
                let t = (-b - disc.sqrt()) / a;
                if t > EPS && t < t_max {
                    let z = o[2] + d[2] * t;
                    if z >= z0 && z <= z1 {
                        let (hx, hy) = (ox + d[0] * t, oy + d[1] * t);
                        return Some((t, [hx / r, hy / r, 0.0]));
                    }
                }
            } else if ox * ox + oy * oy > r * r {
                return None;
            }
            // Caps.
            if d[2].abs() > 1e-15 {
                let (zc, nz) = if d[2] < 0.0 { (z1, 1.0) } else { (z0, -1.0) };
                let t = (zc - o[2]) / d[2];
                if t > EPS && t < t_max {
                    let (hx, hy) = (ox + d[0] * t, oy + d[1] * t);
                    if hx * hx + hy * hy <= r * r {
                        best = Some((t, [0.0, 0.0, nz]));
                    }
                }
            }
            best
        }
    }
}

impl Grid {
    pub(super) fn build(prims: &[Prim]) -> Self {
        if prims.is_empty() {
            return Self {
                id: next_grid_id(),
                x0: 0.0,
                y0: 0.0,
                x1: 0.0,
                y1: 0.0,
                cell: CELL,
                inv_cell: 1.0 / CELL,
                nx: 0,
                ny: 0,
                cells: Vec::new(),
                items: Vec::new(),
            };
        }
        let mut lo = [f64::INFINITY; 2];
        let mut hi = [f64::NEG_INFINITY; 2];
        for p in prims {
            let b = p.bounds();
            lo = [lo[0].min(b[0]), lo[1].min(b[1])];
            hi = [hi[0].max(b[3]), hi[1].max(b[4])];
        }
        // Keep the grid within 2048 × 2048 cells; grow the cell for huge worlds.
        let extent = (hi[0] - lo[0]).max(hi[1] - lo[1]);
        let cell = CELL.max(extent / 2048.0);
        let x0 = lo[0] - cell;
        let y0 = lo[1] - cell;
        let nx = ((hi[0] + cell - x0) / cell).ceil() as usize;
        let ny = ((hi[1] + cell - y0) / cell).ceil() as usize;
        let inv_cell = 1.0 / cell;
        let cell_range = |p: &Prim| {
            let b = p.bounds();
            let cx0 = ((b[0] - x0) * inv_cell).floor().max(0.0) as usize;
            let cy0 = ((b[1] - y0) * inv_cell).floor().max(0.0) as usize;
            let cx1 = (((b[3] - x0) * inv_cell).floor() as usize).min(nx - 1);
            let cy1 = (((b[4] - y0) * inv_cell).floor() as usize).min(ny - 1);
            (cx0, cy0, cx1, cy1, b[5])
        };
        let mut counts = vec![0u32; nx * ny + 1];
        let mut zmax = vec![f32::NEG_INFINITY; nx * ny];
        for p in prims {
            let (cx0, cy0, cx1, cy1, top) = cell_range(p);
            for cy in cy0..=cy1 {
                for cx in cx0..=cx1 {
                    let c = cy * nx + cx;
                    counts[c + 1] += 1;
                    zmax[c] = zmax[c].max(top as f32 + Z_MARGIN);
                }
            }
        }
        for c in 0..nx * ny {
            counts[c + 1] += counts[c];
        }
        let mut fill = counts.clone();
        let mut items = vec![Item { bottom: 0.0, top: 0.0, prim: 0 }; counts[nx * ny] as usize];
        for (i, p) in prims.iter().enumerate() {
            let (cx0, cy0, cx1, cy1, _) = cell_range(p);
            let b = p.bounds();
            let item = Item {
                bottom: f64::from(b[2] as f32 - Z_MARGIN),
                top: f64::from(b[5] as f32 + Z_MARGIN),
                prim: i as u32,
            };
            for cy in cy0..=cy1 {
                for cx in cx0..=cx1 {
                    let c = cy * nx + cx;
                    items[fill[c] as usize] = item;
                    fill[c] += 1;
                }
            }
        }
        let cells = (0..nx * ny)
            .map(|c| Cell { start: counts[c], end: counts[c + 1], zmax: f64::from(zmax[c]) })
            .collect();
        let (x1, y1) = (x0 + cell * nx as f64, y0 + cell * ny as f64);
        Self { id: next_grid_id(), x0, y0, x1, y1, cell, inv_cell, nx, ny, cells, items }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    #[test]
    fn grid_agrees_with_brute_force() {
        agrees_with_brute_force(3, 0.0);
    }

    /// Primitives raised off the ground (tree crowns, signs, lamp arms): rays pass below
    /// them as well as above, so the per-cell height test defers them both ways.
    #[test]
    fn grid_agrees_with_brute_force_for_raised_primitives() {
        agrees_with_brute_force(4, 4.0);
    }

    /// One scratch used on two worlds from the same origin: the walk's start cached for one
    /// world is not taken for the other.
    #[test]
    fn one_scratch_on_two_worlds() {
        let mut rng = Rng::new(5);
        let (a, b) = (random_prims(&mut rng, 0.0), random_prims(&mut rng, 2.0));
        let (wa, wb) = (World::new(a.clone(), vec![]), World::new(b.clone(), vec![]));
        let mut s = RayScratch::new(&wa);
        for _ in 0..2000 {
            let o = [rng.range(-90.0, 90.0), rng.range(-90.0, 90.0), rng.range(0.2, 3.0)];
            check_ray(&wa, &a, o, random_direction(&mut rng), &mut s);
            check_ray(&wb, &b, o, random_direction(&mut rng), &mut s);
        }
    }

    /// 300 random boxes and cylinders whose bottoms are up to `lift` metres off the ground.
    fn random_prims(rng: &mut Rng, lift: f64) -> Vec<Prim> {
        (0..300)
            .map(|i| {
                let z0 = if lift > 0.0 { rng.range(0.0, lift) } else { 0.0 };
                let shape = if i % 3 == 0 {
                    Shape::Cylinder {
                        x: rng.range(-80.0, 80.0),
                        y: rng.range(-80.0, 80.0),
                        z0,
                        z1: z0 + rng.range(1.0, 9.0),
                        r: rng.range(0.05, 1.0),
                    }
                } else {
                    let h = rng.range(0.5, 12.0);
                    Shape::Box {
                        centre: [rng.range(-80.0, 80.0), rng.range(-80.0, 80.0), z0 + h],
                        half: [rng.range(0.2, 9.0), rng.range(0.2, 9.0), h],
                        yaw: rng.range(-3.0, 3.0),
                    }
                };
                Prim { shape, instance: i as u16 + 2, colour: [0; 3], reflectivity: 0.5 }
            })
            .collect()
    }

    /// A unit direction from 29° down to 17° up, any azimuth.
    fn random_direction(rng: &mut Rng) -> [f64; 3] {
        let az = rng.range(-3.2, 3.2);
        let el = rng.range(-0.5, 0.3);
        [el.cos() * az.cos(), el.cos() * az.sin(), el.sin()]
    }

    /// The grid's hit on `w` from `o` along `d` is the nearest of testing every primitive.
    fn check_ray(w: &World, prims: &[Prim], o: [f64; 3], d: [f64; 3], s: &mut RayScratch) {
        let fast = w.cast_prims(o, d, 150.0, s).map(|h| (h.t, h.instance));
        let mut slow: Option<(f64, u16)> = None;
        for p in prims {
            if let Some((t, _)) = intersect(&p.shape, o, d, slow.map_or(150.0, |s| s.0)) {
                slow = Some((t, p.instance));
            }
        }
        match (fast, slow) {
            (None, None) => {}
            (Some(a), Some(b)) => assert!((a.0 - b.0).abs() < 1e-9, "{a:?} vs {b:?}"),
            other => panic!("{other:?} from {o:?} along {d:?}"),
        }
    }

    /// Random primitives ([`random_prims`]), cast from random origins, several rays from
    /// each (as a lidar's beams share one): the grid finds what testing every primitive
    /// finds.
    fn agrees_with_brute_force(seed: u64, lift: f64) {
        let mut rng = Rng::new(seed);
        let prims = random_prims(&mut rng, lift);
        let w = World::new(prims.clone(), vec![]);
        let mut s = RayScratch::new(&w);
        for _ in 0..5000 {
            let o = [rng.range(-90.0, 90.0), rng.range(-90.0, 90.0), rng.range(0.2, 3.0)];
            for _ in 0..4 {
                check_ray(&w, &prims, o, random_direction(&mut rng), &mut s);
            }
        }
    }
}
