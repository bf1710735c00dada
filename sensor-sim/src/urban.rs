//! Procedural urban world: a rectangular loop road around a grid of city blocks.
//!
//! The loop's centre line runs around the rectangle (0, 0)–(Lx, Ly), Lx = blocks_x·block_m,
//! Ly = blocks_y·block_m. Each carriageway is `road_width_m` wide (two 3.5 m lanes plus a
//! parking strip on each side when the road is at least 9 m wide) with `sidewalk_m` sidewalks.
//! Cross streets cut the inner blocks and continue outwards as short stubs.
//!
//! Along the loop, from the centre line outwards on both sides: parked cars and vans in the
//! parking strips, street lights (thin poles with an arm over the road), sign posts and trees
//! on the sidewalk, and a row of buildings behind the sidewalk. The inner blocks are lined
//! with buildings along their edges. A few stopped cars wait in the oncoming lane. Everything
//! is drawn from the scenario's seed, so the same seed builds the same world.

use crate::rng::Rng;
use crate::world::{jitter_colour, Prim, Road, Shape};
use serde::{Deserialize, Serialize};

/// Parameters of the urban generator. Every field has a default.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UrbanSpec {
    /// Blocks along x.
    pub blocks_x: u32,
    /// Blocks along y.
    pub blocks_y: u32,
    /// Block pitch (centre line to centre line), metres.
    pub block_m: f64,
    /// Carriageway width, metres.
    pub road_width_m: f64,
    /// Sidewalk width, metres.
    pub sidewalk_m: f64,
    /// Building heights, (min, max) metres.
    pub building_height_m: (f64, f64),
    /// Fraction of parking spaces occupied, 0..1.
    pub parked_cars: f64,
    /// Mean spacing of street furniture (lights, signs, trees) along each curb, metres.
    pub pole_spacing_m: f64,
    /// Whether to plant trees between the poles.
    pub trees: bool,
    /// Stopped cars in the oncoming lane, over the whole loop.
    pub traffic: u32,
}

impl Default for UrbanSpec {
    fn default() -> Self {
        Self {
            blocks_x: 3,
            blocks_y: 2,
            block_m: 60.0,
            road_width_m: 12.0,
            sidewalk_m: 3.0,
            building_height_m: (6.0, 28.0),
            parked_cars: 0.8,
            pole_spacing_m: 12.0,
            trees: true,
            traffic: 8,
        }
    }
}

impl UrbanSpec {
    /// Checks the parameters; the error names the field.
    ///
    /// # Errors
    /// `(field, message)` for the first bad parameter.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let finite_pos = |v: f64| v.is_finite() && v > 0.0;
        if !(1..=50).contains(&self.blocks_x) {
            return Err(("blocks_x", format!("must be 1..=50 (got {})", self.blocks_x)));
        }
        if !(1..=50).contains(&self.blocks_y) {
            return Err(("blocks_y", format!("must be 1..=50 (got {})", self.blocks_y)));
        }
        if !finite_pos(self.road_width_m) || self.road_width_m < 3.0 || self.road_width_m > 40.0 {
            return Err(("road_width_m", format!("must be 3..=40 (got {})", self.road_width_m)));
        }
        if !self.sidewalk_m.is_finite() || !(0.0..=20.0).contains(&self.sidewalk_m) {
            return Err(("sidewalk_m", format!("must be 0..=20 (got {})", self.sidewalk_m)));
        }
        let min_block = 2.0 * (self.road_width_m / 2.0 + self.sidewalk_m) + 8.0;
        if !self.block_m.is_finite() || self.block_m < min_block || self.block_m > 1000.0 {
            return Err((
                "block_m",
                format!(
                    "must be {min_block}..=1000 for these road and sidewalk widths (got {})",
                    self.block_m
                ),
            ));
        }
        let (lo, hi) = self.building_height_m;
        if !(lo.is_finite() && hi.is_finite() && lo > 0.0 && hi >= lo && hi <= 500.0) {
            return Err((
                "building_height_m",
                format!("must be (min, max) with 0 < min ≤ max ≤ 500 (got ({lo}, {hi}))"),
            ));
        }
        if !(0.0..=1.0).contains(&self.parked_cars) {
            return Err(("parked_cars", format!("must be 0..=1 (got {})", self.parked_cars)));
        }
        if !self.pole_spacing_m.is_finite() || self.pole_spacing_m < 2.0 {
            return Err(("pole_spacing_m", format!("must be at least 2 (got {})", self.pole_spacing_m)));
        }
        if self.traffic > 1000 {
            return Err(("traffic", format!("must be at most 1000 (got {})", self.traffic)));
        }
        Ok(())
    }

    /// The loop's corners (centre line), counter-clockwise.
    #[must_use]
    pub fn loop_corners(&self) -> [(f64, f64); 4] {
        let lx = f64::from(self.blocks_x) * self.block_m;
        let ly = f64::from(self.blocks_y) * self.block_m;
        [(0.0, 0.0), (lx, 0.0), (lx, ly), (0.0, ly)]
    }

    /// Waypoints of the ego lane: driving counter-clockwise, `offset` metres to the right of
    /// the centre line (that is, outwards), starting half a block along the first side.
    #[must_use]
    pub fn lane_waypoints(&self, offset: f64) -> Vec<(f64, f64)> {
        let [_, (lx, _), (_, ly), _] = self.loop_corners();
        let d = offset;
        vec![(self.block_m * 0.5, -d), (lx + d, -d), (lx + d, ly + d), (-d, ly + d), (-d, -d)]
    }
}

const BUILDING_COLOURS: [[u8; 3]; 10] = [
    [196, 180, 150],
    [170, 92, 70],
    [150, 150, 155],
    [110, 130, 160],
    [210, 205, 190],
    [140, 110, 90],
    [185, 160, 120],
    [95, 100, 110],
    [160, 175, 180],
    [200, 140, 110],
];

const CAR_COLOURS: [[u8; 3]; 9] = [
    [200, 30, 30],
    [30, 60, 170],
    [235, 235, 235],
    [25, 25, 28],
    [140, 140, 145],
    [20, 120, 60],
    [230, 190, 30],
    [110, 40, 120],
    [90, 60, 40],
];

fn pick_colour(rng: &mut Rng, palette: &[[u8; 3]], amount: f64) -> [u8; 3] {
    let base = palette[rng.below(palette.len())];
    jitter_colour(rng, base, amount)
}

/// Allocates instance ids.
#[derive(Debug)]
pub struct Ids {
    next: u32,
}

impl Ids {
    /// Ids from `first` on.
    #[must_use]
    pub fn new(first: u16) -> Self {
        Self { next: u32::from(first) }
    }

    /// The next id; saturates at `u16::MAX` (the scenario checks the count first).
    pub fn take(&mut self) -> u16 {
        let id = self.next.min(u32::from(u16::MAX)) as u16;
        self.next += 1;
        id
    }

    /// How many ids would have been handed out past the u16 range.
    #[must_use]
    pub fn overflowed(&self) -> bool {
        self.next > u32::from(u16::MAX) + 1
    }
}

/// One side of the loop: a straight from `a` to `b` (centre line), with the outside to the
/// right of travel.
struct Side {
    a: (f64, f64),
    dir: (f64, f64),
    len: f64,
}

impl Side {
    /// World point at `along` metres from `a` and `lat` metres to the LEFT of travel.
    fn at(&self, along: f64, lat: f64) -> (f64, f64) {
        (self.a.0 + self.dir.0 * along - self.dir.1 * lat, self.a.1 + self.dir.1 * along + self.dir.0 * lat)
    }

    fn yaw(&self) -> f64 {
        self.dir.1.atan2(self.dir.0)
    }
}

#[allow(clippy::too_many_arguments)] // private helper: placement + look
fn push_box(
    out: &mut Vec<Prim>,
    centre_xy: (f64, f64),
    z0: f64,
    size: (f64, f64, f64),
    yaw: f64,
    id: u16,
    colour: [u8; 3],
    refl: f32,
) {
    out.push(Prim {
        shape: Shape::Box {
            centre: [centre_xy.0, centre_xy.1, z0 + size.2 / 2.0],
            half: [size.0 / 2.0, size.1 / 2.0, size.2 / 2.0],
            yaw,
        },
        instance: id,
        colour,
        reflectivity: refl,
    });
}

#[allow(clippy::too_many_arguments)] // private helper: placement + look
fn push_cyl(
    out: &mut Vec<Prim>,
    xy: (f64, f64),
    z0: f64,
    z1: f64,
    r: f64,
    id: u16,
    colour: [u8; 3],
    refl: f32,
) {
    out.push(Prim {
        shape: Shape::Cylinder { x: xy.0, y: xy.1, z0, z1, r },
        instance: id,
        colour,
        reflectivity: refl,
    });
}

/// A car (body + cabin) or a van, centred at `xy`, heading `yaw`.
fn push_vehicle(out: &mut Vec<Prim>, rng: &mut Rng, ids: &mut Ids, xy: (f64, f64), yaw: f64) -> f64 {
    let id = ids.take();
    let colour = pick_colour(rng, &CAR_COLOURS, 0.08);
    if rng.chance(0.15) {
        // Van / small truck.
        let len = rng.range(5.0, 6.5);
        push_box(out, xy, 0.3, (len, 2.1, rng.range(2.0, 2.6)), yaw, id, colour, 0.6);
        return len;
    }
    let len = rng.range(4.0, 4.9);
    push_box(out, xy, 0.25, (len, 1.8, 0.8), yaw, id, colour, 0.6);
    let back = rng.range(0.1, 0.4);
    let (c, s) = (yaw.cos(), yaw.sin());
    let cabin = (xy.0 - c * back, xy.1 - s * back);
    push_box(out, cabin, 1.05, (len * 0.5, 1.6, 0.5), yaw, id, [60, 70, 85], 0.3);
    len
}

/// Generates the world and its roads.
pub fn generate(spec: &UrbanSpec, seed: u64, ids: &mut Ids, prims: &mut Vec<Prim>, roads: &mut Vec<Road>) {
    let hw = spec.road_width_m / 2.0;
    let mut g = UrbanBuilder {
        spec,
        rng: Rng::new(crate::rng::mix(&[seed, 0x0000_7262_616e])),
        ids,
        prims,
        hw,
        edge: hw + spec.sidewalk_m,
    };
    let corners = spec.loop_corners();
    push_roads(spec, &corners, roads);
    let sides: Vec<Side> = (0..4)
        .map(|i| {
            let a = corners[i];
            let b = corners[(i + 1) % 4];
            let len = (b.0 - a.0).hypot(b.1 - a.1);
            Side { a, dir: ((b.0 - a.0) / len, (b.1 - a.1) / len), len }
        })
        .collect();
    for side in &sides {
        let open = openings(side.len, spec.block_m);
        // Lateral: negative = right of travel = outside of the loop.
        for outside in [true, false] {
            if hw >= 4.5 {
                g.parked_cars(side, &open, outside);
            }
            g.street_furniture(side, &open, outside);
        }
        g.traffic(side, &open);
        g.outer_buildings(side, &open);
    }
    g.inner_blocks();
}

/// Roads: the loop (extended so the corners are paved), inner cross streets, outer stubs.
fn push_roads(spec: &UrbanSpec, corners: &[(f64, f64); 4], roads: &mut Vec<Road>) {
    let hw = spec.road_width_m / 2.0;
    let sw = spec.sidewalk_m;
    let block = spec.block_m;
    let (lx, ly) = corners[2];
    for i in 0..4 {
        let a = corners[i];
        let b = corners[(i + 1) % 4];
        // Unit direction times hw (f64::signum(0.0) is 1, so normalise instead).
        let len = (b.0 - a.0).hypot(b.1 - a.1);
        let (dx, dy) = ((b.0 - a.0) / len * hw, (b.1 - a.1) / len * hw);
        roads.push(Road {
            from: [a.0 - dx, a.1 - dy],
            to: [b.0 + dx, b.1 + dy],
            width: spec.road_width_m,
            sidewalk: sw,
        });
    }
    let stub = 2.0 * block.min(60.0);
    for k in 1..spec.blocks_x {
        let x = f64::from(k) * block;
        roads.push(Road { from: [x, -stub], to: [x, ly + stub], width: spec.road_width_m, sidewalk: sw });
    }
    for k in 1..spec.blocks_y {
        let y = f64::from(k) * block;
        roads.push(Road { from: [-stub, y], to: [lx + stub, y], width: spec.road_width_m, sidewalk: sw });
    }
}

/// Positions along a side that are cross-street openings (measured from the side's start).
fn openings(side_len: f64, block: f64) -> Vec<f64> {
    let n = (side_len / block).round() as u32;
    (1..n).map(|k| f64::from(k) * block).collect()
}

/// Whether `along` is within `margin` of a side's ends or of one of its openings.
fn near_opening(along: f64, open: &[f64], len: f64, margin: f64) -> bool {
    along < margin || along > len - margin || open.iter().any(|&o| (along - o).abs() < margin)
}

/// The generator's state: every draw comes from one random stream, in a fixed order, so the
/// same seed builds the same world.
struct UrbanBuilder<'a> {
    spec: &'a UrbanSpec,
    rng: Rng,
    ids: &'a mut Ids,
    prims: &'a mut Vec<Prim>,
    /// Half the carriageway width, metres.
    hw: f64,
    /// Centre line to building line, metres.
    edge: f64,
}

impl UrbanBuilder<'_> {
    /// Parked cars in the parking strip on one side of the road (`outside` the loop or not).
    fn parked_cars(&mut self, side: &Side, open: &[f64], outside: bool) {
        let (hw, edge) = (self.hw, self.edge);
        let sgn = if outside { -1.0 } else { 1.0 };
        let yaw = side.yaw();
        let lat = sgn * (hw - 1.25);
        let mut along = edge + 2.0 + self.rng.range(0.0, 3.0);
        while along < side.len - edge - 4.0 {
            let slot = self.rng.range(5.2, 7.0);
            if !near_opening(along, open, side.len, edge + 3.0) && self.rng.chance(self.spec.parked_cars) {
                let jitter = self.rng.range(-0.02, 0.02);
                let (x, y) = side.at(along + slot / 2.0, lat + self.rng.range(-0.15, 0.15));
                let heading = if outside { yaw } else { yaw + std::f64::consts::PI };
                push_vehicle(self.prims, &mut self.rng, self.ids, (x, y), heading + jitter);
            }
            along += slot;
        }
    }

    /// Street furniture on the sidewalk: lights near the curb, signs, trees, in turn.
    fn street_furniture(&mut self, side: &Side, open: &[f64], outside: bool) {
        let sgn = if outside { -1.0 } else { 1.0 };
        let edge = self.edge;
        let mut along = edge + self.rng.range(0.0, self.spec.pole_spacing_m);
        let mut k = 0;
        while along < side.len - edge {
            if !near_opening(along, open, side.len, edge + 1.0) {
                let id = self.ids.take();
                match k % 3 {
                    0 => self.street_light(side, along, sgn, id),
                    1 if self.spec.trees => self.tree(side, along, sgn, id),
                    _ => self.sign_post(side, along, sgn, id),
                }
            }
            k += 1;
            along += self.spec.pole_spacing_m * self.rng.range(0.7, 1.3);
        }
    }

    /// A street light: pole plus an arm reaching over the road.
    fn street_light(&mut self, side: &Side, along: f64, sgn: f64, id: u16) {
        let lat = sgn * (self.hw + 0.4);
        let h = self.rng.range(6.5, 8.0);
        let r = self.rng.range(0.08, 0.13);
        push_cyl(self.prims, side.at(along, lat), 0.0, h, r, id, [120, 124, 130], 0.55);
        let arm = side.at(along, lat - sgn * 0.9);
        push_box(self.prims, arm, h - 0.15, (0.15, 1.8, 0.12), side.yaw(), id, [120, 124, 130], 0.55);
    }

    /// A tree: trunk and crown.
    fn tree(&mut self, side: &Side, along: f64, sgn: f64, id: u16) {
        let sw = self.spec.sidewalk_m;
        let lat = sgn * (self.hw + sw * 0.6);
        let top = self.rng.range(4.5, 6.5);
        let trunk = self.rng.range(0.15, 0.25);
        push_cyl(self.prims, side.at(along, lat), 0.0, top * 0.5, trunk, id, [90, 66, 44], 0.3);
        let crown = self.rng.range(1.2, 1.8).min(sw * 0.6 + 0.5);
        let green = jitter_colour(&mut self.rng, [60, 120, 50], 0.15);
        push_cyl(self.prims, side.at(along, lat), top * 0.45, top, crown, id, green, 0.35);
    }

    /// A sign post: thin pole with a plate facing the traffic.
    fn sign_post(&mut self, side: &Side, along: f64, sgn: f64, id: u16) {
        let lat = sgn * (self.hw + 0.3);
        let h = self.rng.range(2.4, 3.2);
        push_cyl(self.prims, side.at(along, lat), 0.0, h, 0.04, id, [150, 150, 150], 0.5);
        let colour = if self.rng.chance(0.5) { [200, 30, 30] } else { [30, 80, 190] };
        push_box(self.prims, side.at(along, lat), h - 0.3, (0.06, 0.7, 0.7), side.yaw(), id, colour, 0.9);
    }

    /// Stopped cars in the oncoming lane, spread over the sides.
    fn traffic(&mut self, side: &Side, open: &[f64]) {
        let edge = self.edge;
        for _ in 0..self.spec.traffic.div_ceil(4) {
            let along = self.rng.range(edge + 6.0, (side.len - edge - 6.0).max(edge + 6.5));
            if near_opening(along, open, side.len, edge + 4.0) {
                continue;
            }
            let (x, y) = side.at(along, 1.75);
            let heading = side.yaw() + std::f64::consts::PI + self.rng.range(-0.03, 0.03);
            push_vehicle(self.prims, &mut self.rng, self.ids, (x, y), heading);
        }
    }

    /// Outer buildings along a side, behind the sidewalk. The south and north rows (travel
    /// along ±x) run past the corners and fill them; the east and west rows stop at the
    /// building line so the rows never overlap.
    fn outer_buildings(&mut self, side: &Side, open: &[f64]) {
        let edge = self.edge;
        let runs_past = side.dir.0.abs() > 0.5;
        let (start, end) =
            if runs_past { (-edge - 15.0, side.len + edge + 15.0) } else { (-edge, side.len + edge) };
        let mut along = start;
        while along < end {
            let front = self.rng.range(10.0, 24.0).min(end - along);
            let gap = if self.rng.chance(0.3) { self.rng.range(2.0, 6.0) } else { self.rng.range(0.0, 1.0) };
            let mid = along + front / 2.0;
            let blocked = open.iter().any(|&o| (mid - o).abs() < edge + front / 2.0);
            if front > 4.0 && !blocked {
                let depth = self.rng.range(10.0, 18.0);
                let h = self.rng.range(self.spec.building_height_m.0, self.spec.building_height_m.1);
                let colour = pick_colour(&mut self.rng, &BUILDING_COLOURS, 0.06);
                let c = side.at(mid, -(edge + depth / 2.0));
                push_box(self.prims, c, 0.0, (front, depth, h), side.yaw(), self.ids.take(), colour, 0.3);
            }
            along += front + gap;
        }
    }

    /// Inner blocks: buildings along each block's four edges.
    fn inner_blocks(&mut self) {
        let (block, edge) = (self.spec.block_m, self.edge);
        for bx in 0..self.spec.blocks_x {
            for by in 0..self.spec.blocks_y {
                let x0 = f64::from(bx) * block + edge;
                let x1 = f64::from(bx + 1) * block - edge;
                let y0 = f64::from(by) * block + edge;
                let y1 = f64::from(by + 1) * block - edge;
                self.block_rows([x0, y0, x1, y1]);
            }
        }
    }

    /// One inner block, `[x0, y0, x1, y1]` inside its sidewalks: a row of buildings along
    /// each edge.
    fn block_rows(&mut self, [x0, y0, x1, y1]: [f64; 4]) {
        let max_depth = ((x1 - x0).min(y1 - y0) / 2.0).min(16.0);
        // South and north rows span the block; west and east rows fit between them.
        let depth_s = self.rng.range(max_depth * 0.6, max_depth);
        let depth_n = self.rng.range(max_depth * 0.6, max_depth);
        let between = y1 - y0 - depth_s - depth_n;
        let rows = [
            Side { a: (x0, y0), dir: (1.0, 0.0), len: x1 - x0 },
            Side { a: (x1, y1), dir: (-1.0, 0.0), len: x1 - x0 },
            Side { a: (x1, y0 + depth_s), dir: (0.0, 1.0), len: between },
            Side { a: (x0, y1 - depth_n), dir: (0.0, -1.0), len: between },
        ];
        let depths = [
            depth_s,
            depth_n,
            self.rng.range(max_depth * 0.6, max_depth),
            self.rng.range(max_depth * 0.6, max_depth),
        ];
        for (row, depth) in rows.iter().zip(depths) {
            if row.len >= 4.0 {
                self.block_row(row, depth);
            }
        }
    }

    /// Buildings `depth` deep along `row`, whose street is to the right of its direction:
    /// the buildings extend to its left.
    fn block_row(&mut self, row: &Side, depth: f64) {
        let len = row.len;
        let mut along = 0.0;
        while along < len - 3.0 {
            let front = self.rng.range(9.0, 22.0).min(len - along);
            let gap = if self.rng.chance(0.25) { self.rng.range(1.5, 4.0) } else { 0.0 };
            let h = self.rng.range(self.spec.building_height_m.0, self.spec.building_height_m.1);
            let colour = pick_colour(&mut self.rng, &BUILDING_COLOURS, 0.06);
            let c = row.at(along + front / 2.0, depth / 2.0);
            push_box(self.prims, c, 0.0, (front, depth, h), row.yaw(), self.ids.take(), colour, 0.3);
            along += front + gap;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_populated() {
        let spec = UrbanSpec::default();
        spec.validate().unwrap();
        let build = |seed| {
            let mut ids = Ids::new(2);
            let (mut p, mut r) = (Vec::new(), Vec::new());
            generate(&spec, seed, &mut ids, &mut p, &mut r);
            (p, r)
        };
        let (a, ra) = build(5);
        let (b, _) = build(5);
        let (c, _) = build(6);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.len() > 300, "{}", a.len());
        assert_eq!(ra.len(), 4 + 2 + 1);
        // Nothing stands in the ego lane (right lane, 0..3.5 m outside the centre line).
        let lane = spec.lane_waypoints(1.75);
        let traj = crate::trajectory::Trajectory::new(&lane, 10.0, 8.0);
        let w = crate::world::World::new(a, ra);
        let mut s = crate::world::RayScratch::new(&w);
        for i in 0..600 {
            let p = traj.pose_at(f64::from(i) * 0.1);
            // Looking straight down from 2.5 m over the ego car's footprint finds only ground.
            for lat in [-1.0, 0.0, 1.0] {
                let (x, y) = (p.x - p.heading.sin() * lat, p.y + p.heading.cos() * lat);
                let h = w.cast([x, y, 2.5], [0.0, 0.0, -1.0], 10.0, &mut s).unwrap();
                assert_eq!(h.instance, crate::world::GROUND_ID, "obstacle in the ego lane at {p:?}");
            }
        }
    }
}
