//! The ground's material map: grass, sidewalks and roads with their lane marks, looked up
//! per ray hit by [`World::ground_at`](super::World::ground_at).

use super::{GroundSample, Road};

/// The ground's material map.
///
/// A grid of square cells (1 m unless the world is huge) over the roads' surroundings. A cell
/// holds either one material (most cells: grass squares of the 2 m checker, plain asphalt
/// between lane marks) or a [`TILE`] × [`TILE`] tile of materials sampled at the sub-cell
/// centres (cells with lane marks, sidewalk slab joints, road edges). Looking a point up is
/// then two float→int conversions and two loads, with no pattern arithmetic; lane marks are
/// resolved to 1/16 of a cell (6.25 cm). Outside the map the ground is grass.
#[derive(Clone, Debug)]
pub(crate) struct GroundMap {
    x0: f64,
    y0: f64,
    /// Sub-cell samples per metre.
    inv_sub: f64,
    nx: usize,
    /// Sub-cell samples across and along the map (`nx`·[`TILE`], `ny`·[`TILE`]), as floats.
    lim: (f64, f64),
    /// Per cell: a material, or [`TILED`] | tile index.
    cells: Vec<u32>,
    /// Tiles, [`TILE`]² materials each, row-major.
    tiles: Vec<u8>,
    /// The roads, for tests that compare the tiles with point evaluation.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(super) geo: Vec<RoadGeo>,
}

/// Samples per tile side.
const TILE: usize = 16;
/// Cell value flag: the low bits index a tile.
const TILED: u32 = 1 << 31;

/// A road, precomputed for [`World::ground_at`].
#[derive(Clone, Copy, Debug)]
pub(super) struct RoadGeo {
    x: f64,
    y: f64,
    ux: f64,
    uy: f64,
    len: f64,
    hw: f64,
    /// Half width plus sidewalk.
    reach: f64,
    /// Lateral offset of the solid white lane-edge lines.
    edge_line: f64,
}

/// Materials of the ground, indexed by the `M_*` constants.
pub const GROUND_MATERIALS: [GroundSample; 7] = [
    GroundSample { colour: [72, 72, 78], reflectivity: 0.12 }, // asphalt
    GroundSample { colour: [232, 232, 228], reflectivity: 0.85 }, // white lane edge
    GroundSample { colour: [226, 190, 60], reflectivity: 0.75 }, // yellow centre dash
    GroundSample { colour: [172, 170, 162], reflectivity: 0.35 }, // sidewalk
    GroundSample { colour: [132, 130, 124], reflectivity: 0.30 }, // sidewalk joint
    GroundSample { colour: [92, 134, 70], reflectivity: 0.25 }, // grass
    GroundSample { colour: [78, 118, 60], reflectivity: 0.22 }, // grass, other checker square
];
const M_ASPHALT: u8 = 0;
const M_WHITE: u8 = 1;
const M_YELLOW: u8 = 2;
const M_SIDEWALK: u8 = 3;
const M_GRASS_A: u8 = 5;
/// Not a material: "compute per point".
const M_VARIES: u8 = u8::MAX;

impl GroundMap {
    /// Cell size, metres: the grass checker's squares (2 m) are whole cells, and lanes are
    /// wide enough that most carriageway cells hold no lane mark.
    const CELL: f64 = 1.0;

    /// Index into [`GROUND_MATERIALS`] at (x, y).
    #[inline]
    pub(super) fn material(&self, x: f64, y: f64) -> u8 {
        let g = self;
        let fx = (x - g.x0) * g.inv_sub;
        let fy = (y - g.y0) * g.inv_sub;
        // For fx ≥ 0, floor(fx) < n exactly when fx < n (n whole): the test in floats
        // spares the saturating float → usize conversions, and the ones after it are exact.
        if !(fx >= 0.0 && fy >= 0.0 && fx < g.lim.0 && fy < g.lim.1) {
            return grass_at(x, y);
        }
        self.material_in(self.cell_of(fx as i32, fy as i32))
    }

    /// For each point `(cx + ox[i], cy + oy[i])`: where [`GroundMap::material`] finds it in
    /// the map (for [`GroundMap::material_in`]), or cell −1 outside the map (then the point's
    /// material is [`GroundMap::outside`]). Branch-free, so that the compiler vectorises the
    /// float work, the conversions and the index arithmetic of a whole row of points (the
    /// camera's ground pixels).
    #[inline(always)]
    pub(crate) fn locate(&self, (cx, cy): (f64, f64), (ox, oy): (&[f32], &[f32]), at: &mut [[i32; 2]]) {
        let g = self;
        for ((&ox, &oy), s) in ox.iter().zip(oy).zip(at) {
            let fx = (cx + f64::from(ox) - g.x0) * g.inv_sub;
            let fy = (cy + f64::from(oy) - g.y0) * g.inv_sub;
            let inside = (fx >= 0.0) & (fy >= 0.0) & (fx < g.lim.0) & (fy < g.lim.1);
            let [cell, sub] = g.cell_of(floor_small(fx), floor_small(fy));
            *s = [if inside { cell } else { -1 }, sub];
        }
    }

    /// Sub-cell (`ix`, `iy`) of the map (both ≥ 0, inside): the index of its cell and its
    /// index within the cell's tile.
    #[inline(always)]
    fn cell_of(&self, ix: i32, iy: i32) -> [i32; 2] {
        let t = TILE as i32;
        [(iy / t) * self.nx as i32 + ix / t, (iy % t) * t + ix % t]
    }

    /// The material at `[cell, sub]` of [`GroundMap::locate`] (a cell inside the map).
    #[inline(always)]
    pub(crate) fn material_in(&self, [cell, sub]: [i32; 2]) -> u8 {
        let c = self.cells[cell as usize];
        if c & TILED == 0 {
            c as u8
        } else {
            self.tiles[(c & !TILED) as usize * TILE * TILE + sub as usize]
        }
    }

    /// The material at (x, y) outside the map: grass.
    #[inline(always)]
    pub(crate) fn outside(x: f64, y: f64) -> u8 {
        grass_at(x, y)
    }

    pub(super) fn build(roads: &[Road]) -> Self {
        if roads.is_empty() {
            return Self {
                x0: 0.0,
                y0: 0.0,
                inv_sub: 1.0,
                nx: 0,
                lim: (0.0, 0.0),
                cells: Vec::new(),
                tiles: Vec::new(),
                geo: Vec::new(),
            };
        }
        let geo: Vec<RoadGeo> = roads
            .iter()
            .map(|r| {
                let (dx, dy) = (r.to[0] - r.from[0], r.to[1] - r.from[1]);
                let len = dx.hypot(dy);
                let hw = r.width / 2.0;
                RoadGeo {
                    x: r.from[0],
                    y: r.from[1],
                    ux: dx / len,
                    uy: dy / len,
                    len,
                    hw,
                    reach: hw + r.sidewalk,
                    edge_line: if hw >= 4.5 { 3.6 } else { hw - 0.25 },
                }
            })
            .collect();
        let mut lo = [f64::INFINITY; 2];
        let mut hi = [f64::NEG_INFINITY; 2];
        for (r, g) in roads.iter().zip(&geo) {
            let m = g.reach + 2.0;
            lo = [lo[0].min(r.from[0].min(r.to[0]) - m), lo[1].min(r.from[1].min(r.to[1]) - m)];
            hi = [hi[0].max(r.from[0].max(r.to[0]) + m), hi[1].max(r.from[1].max(r.to[1]) + m)];
        }
        // Align the origin to the 2 m checker.
        let (x0, y0) = (ffloor(lo[0] / 2.0) * 2.0, ffloor(lo[1] / 2.0) * 2.0);
        let cell = Self::CELL.max(((hi[0] - x0).max(hi[1] - y0) / 2048.0).ceil());
        let nx = ((hi[0] - x0) / cell).ceil() as usize;
        let ny = ((hi[1] - y0) / cell).ceil() as usize;
        let mut near: Vec<[u16; 2]> = vec![[0; 2]; nx * ny];
        let half_diag = cell * std::f64::consts::FRAC_1_SQRT_2;
        for (ri, (r, g)) in roads.iter().zip(&geo).enumerate() {
            let m = g.reach + half_diag;
            let cx0 = ((r.from[0].min(r.to[0]) - m - x0) / cell).floor().max(0.0) as usize;
            let cy0 = ((r.from[1].min(r.to[1]) - m - y0) / cell).floor().max(0.0) as usize;
            let cx1 = (((r.from[0].max(r.to[0]) + m - x0) / cell).ceil() as usize).min(nx);
            let cy1 = (((r.from[1].max(r.to[1]) + m - y0) / cell).ceil() as usize).min(ny);
            for cy in cy0..cy1 {
                for cx in cx0..cx1 {
                    let x = x0 + (cx as f64 + 0.5) * cell;
                    let y = y0 + (cy as f64 + 0.5) * cell;
                    let (px, py) = (x - g.x, y - g.y);
                    let along = px * g.ux + py * g.uy;
                    let lat = (px * g.uy - py * g.ux).abs();
                    if lat <= m && along >= -m && along <= g.len + m {
                        let slot = &mut near[cy * nx + cx];
                        let id = ri as u16 + 1;
                        if slot[0] == 0 {
                            slot[0] = id;
                        } else if slot[1] == 0 {
                            slot[1] = id;
                        }
                    }
                }
            }
        }
        // One material per cell where it is uniform, else a tile sampled at sub-cell centres.
        let mut cells = vec![0u32; nx * ny];
        let mut tiles = Vec::new();
        let sub = cell / TILE as f64;
        for cy in 0..ny {
            for cx in 0..nx {
                let (xa, ya) = (x0 + cx as f64 * cell, y0 + cy as f64 * cell);
                let roads = near[cy * nx + cx];
                let m = uniform_material(roads, &geo, [xa, ya, xa + cell, ya + cell]);
                cells[cy * nx + cx] = if m == M_VARIES {
                    let index = (tiles.len() / (TILE * TILE)) as u32;
                    for ty in 0..TILE {
                        for tx in 0..TILE {
                            let x = xa + (tx as f64 + 0.5) * sub;
                            let y = ya + (ty as f64 + 0.5) * sub;
                            tiles.push(material_exact(&geo, roads, x, y));
                        }
                    }
                    TILED | index
                } else {
                    u32::from(m)
                };
            }
        }
        let lim = ((nx * TILE) as f64, (ny * TILE) as f64);
        Self { x0, y0, inv_sub: 1.0 / sub, nx, lim, cells, tiles, geo }
    }
}

/// The material at (x, y) given the roads near it, point by point.
pub(super) fn material_exact(geo: &[RoadGeo], cell: [u16; 2], x: f64, y: f64) -> u8 {
    if cell[0] == 0 {
        return grass_at(x, y);
    }
    // (on the carriageway, on the sidewalk, lane mark material or 0) for one road.
    let probe = |r: u16| -> (bool, bool, u8) {
        let road = &geo[usize::from(r - 1)];
        let (px, py) = (x - road.x, y - road.y);
        let along = px * road.ux + py * road.uy;
        let lat = (px * road.uy - py * road.ux).abs();
        let in_len = along >= 0.0 && along <= road.len;
        let in_reach = along >= -road.reach && along <= road.len + road.reach;
        let on = lat <= road.hw && in_len;
        let side = in_reach && lat <= road.reach && !on;
        let dash = lat < 0.08 && fmod_pos(along, 6.0, 1.0 / 6.0) < 3.0;
        let edge = (lat - road.edge_line).abs() < 0.07;
        let mark = if dash {
            M_YELLOW
        } else if edge {
            M_WHITE
        } else {
            0
        };
        (on, side, mark)
    };
    let (on0, side0, mark0) = probe(cell[0]);
    let (on, side, mark) = if cell[1] == 0 {
        (on0, side0, mark0)
    } else {
        let (on1, side1, mark1) = probe(cell[1]);
        // Where two carriageways cross, plain asphalt (no marks).
        let mark = if on0 && on1 {
            0
        } else if on0 {
            mark0
        } else {
            mark1
        };
        (on0 || on1, side0 || side1, mark)
    };
    if on {
        return if mark != 0 { mark } else { M_ASPHALT };
    }
    if side {
        let joint = fmod_pos(x, 1.5, 1.0 / 1.5) < 0.05 || fmod_pos(y, 1.5, 1.0 / 1.5) < 0.05;
        return M_SIDEWALK + u8::from(joint);
    }
    grass_at(x, y)
}

/// Grass: a 2 m checker of two greens.
#[inline(always)]
fn grass_at(x: f64, y: f64) -> u8 {
    M_GRASS_A + ((ffloor(x * 0.5) as i64 + ffloor(y * 0.5) as i64) & 1) as u8
}

/// The one material covering the square `[x0, y0, x1, y1]` as [`material_exact`] would
/// compute it point by point with the roads `roads`, or [`M_VARIES`].
fn uniform_material(roads: [u16; 2], geo: &[RoadGeo], [x0, y0, x1, y1]: [f64; 4]) -> u8 {
    let grass = || {
        let (a, b) = (ffloor(x0 * 0.5), ffloor((x1 - 1e-9) * 0.5));
        let (c, d) = (ffloor(y0 * 0.5), ffloor((y1 - 1e-9) * 0.5));
        if a == b && c == d {
            M_GRASS_A + ((a as i64 + c as i64) & 1) as u8
        } else {
            M_VARIES
        }
    };
    if roads[0] == 0 {
        return grass();
    }
    if roads[1] != 0 {
        return M_VARIES;
    }
    let g = &geo[usize::from(roads[0] - 1)];
    let (mut amin, mut amax, mut lmin, mut lmax) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for (x, y) in [(x0, y0), (x1, y0), (x0, y1), (x1, y1)] {
        let (px, py) = (x - g.x, y - g.y);
        let along = px * g.ux + py * g.uy;
        let lat = px * g.uy - py * g.ux;
        amin = amin.min(along);
        amax = amax.max(along);
        lmin = lmin.min(lat);
        lmax = lmax.max(lat);
    }
    const M: f64 = 0.01; // margin against rounding
    if lmin > g.reach + M || lmax < -g.reach - M || amax < -g.reach - M || amin > g.len + g.reach + M {
        return grass();
    }
    let overlaps = |a: f64, b: f64| lmin < b + M && lmax > a - M;
    let on_carriageway = lmin > -g.hw + M && lmax < g.hw - M && amin > M && amax < g.len - M;
    let marks = overlaps(-0.08, 0.08)
        || overlaps(g.edge_line - 0.07, g.edge_line + 0.07)
        || overlaps(-g.edge_line - 0.07, -g.edge_line + 0.07);
    if on_carriageway && !marks {
        M_ASPHALT
    } else {
        M_VARIES
    }
}

/// `floor` without a libm call (x86-64's baseline has no SSE4.1 `roundsd`). Exact for
/// |x| < 2^52; clamps beyond ±2^62.
#[inline(always)]
#[must_use]
pub fn ffloor(x: f64) -> f64 {
    let i = x as i64 as f64;
    if i > x {
        i - 1.0
    } else {
        i
    }
}

/// `x as i32` for 0 ≤ x < 2^31 (anything else for other x), in float arithmetic and bit
/// moves that vectorise, where the saturating conversion does not: x + 2^52 is x rounded to
/// the nearest integer (exact in this range), less one where that rounded up.
#[inline(always)]
fn floor_small(x: f64) -> i32 {
    const MAGIC: f64 = 4_503_599_627_370_496.0; // 2^52
    let r = x + MAGIC;
    (r.to_bits() as u32 as i32).wrapping_sub(i32::from(r - MAGIC > x))
}

/// `x mod m` in [0, m) for m > 0, via [`ffloor`].
#[inline(always)]
fn fmod_pos(x: f64, m: f64, inv_m: f64) -> f64 {
    x - ffloor(x * inv_m) * m
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use crate::world::World;

    #[test]
    fn ground_map_agrees_with_point_evaluation() {
        let roads = vec![
            Road { from: [-6.0, 0.0], to: [186.0, 0.0], width: 12.0, sidewalk: 3.0 },
            Road { from: [60.0, -100.0], to: [60.0, 100.0], width: 12.0, sidewalk: 3.0 },
            Road { from: [10.0, 30.0], to: [90.0, 70.0], width: 7.0, sidewalk: 1.0 },
        ];
        let w = World::new(vec![], roads);
        let mut rng = Rng::new(11);
        let g = w.ground_map();
        let (mut uniform, mut differ) = (0, 0);
        let n = 400_000;
        for _ in 0..n {
            let (x, y) = (rng.range(-30.0, 200.0), rng.range(-110.0, 110.0));
            let fast = w.ground_material(x, y);
            let (fx, fy) = ((x - g.x0) * g.inv_sub, (y - g.y0) * g.inv_sub);
            let c = g.cells[(fy as usize / TILE) * g.nx + fx as usize / TILE];
            if c & TILED == 0 {
                uniform += 1;
                assert_eq!(fast, w.ground_material_exact(nearby(&w, x, y), x, y), "at ({x}, {y})");
            } else {
                // Tiles sample sub-cell centres: exact there.
                let sub = 1.0 / g.inv_sub;
                let (sx, sy) = (g.x0 + (fx.floor() + 0.5) * sub, g.y0 + (fy.floor() + 0.5) * sub);
                assert_eq!(fast, w.ground_material_exact(nearby(&w, sx, sy), sx, sy), "at ({sx}, {sy})");
                differ += usize::from(fast != w.ground_material_exact(nearby(&w, x, y), x, y));
            }
        }
        assert!(uniform > n * 3 / 4, "{uniform}");
        assert!(differ < n / 100, "{differ}");
        assert_eq!(w.ground_material(-1000.0, 3.0), grass_at(-1000.0, 3.0));
    }

    /// The roads near (x, y), by brute force.
    fn nearby(w: &World, x: f64, y: f64) -> [u16; 2] {
        let mut out = [0u16; 2];
        let mut k = 0;
        for (i, r) in w.ground_map().geo.iter().enumerate() {
            let (px, py) = (x - r.x, y - r.y);
            let along = px * r.ux + py * r.uy;
            let lat = (px * r.uy - py * r.ux).abs();
            if lat <= r.reach + 1.0 && along >= -r.reach - 1.0 && along <= r.len + r.reach + 1.0 && k < 2 {
                out[k] = i as u16 + 1;
                k += 1;
            }
        }
        out
    }
}
