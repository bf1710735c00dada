//! The simulated world and its ray caster.
//!
//! A world is a flat ground plane (z = 0) plus primitives standing on it: oriented boxes
//! (buildings, vehicles, signs: yaw about z only) and vertical cylinders (poles, tree trunks
//! and crowns). Every primitive carries a ground-truth instance id. Reserved ids:
//!
//! | id | surface |
//! |---|---|
//! | 0 | sky (no hit) |
//! | 1 | the ground plane |
//! | 2.. | primitives (several primitives may share one id: a car's body and cabin) |
//!
//! Ray casting ([`World::cast`]) intersects the ground analytically, then walks a uniform
//! grid over x-y (Amanatides–Woo) whose cells list the primitives overlapping them, with a
//! per-cell height bound to skip cells the ray passes over, and a mailbox so a primitive that
//! spans many cells is tested once per ray.
//!
//! The camera does not ray cast: it rasterises [`World::faces`], the primitives' planar faces
//! (cylinders as 16-sided prisms), with flat Lambert shading baked in per face.

use crate::rng::Rng;

/// Instance id of the sky (a ray that hits nothing).
pub const SKY_ID: u16 = 0;
/// Instance id of the ground plane.
pub const GROUND_ID: u16 = 1;
/// First id available to primitives.
pub const FIRST_OBJECT_ID: u16 = 2;

/// Sides of the prism that stands in for a cylinder in the camera.
pub const CYLINDER_SIDES: usize = 16;

/// Unit vector towards the sun, for the camera's Lambert shading.
pub const SUN: [f64; 3] = [0.455_842_305_838_552_4, 0.303_894_870_559_034_9, 0.836_710_917_205_963];

/// A primitive's shape.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Shape {
    /// A box with a yaw about z.
    Box {
        /// Centre of the box (not of its base).
        centre: [f64; 3],
        /// Half extents along the box's own x (length), y (width), z (height).
        half: [f64; 3],
        /// Yaw, radians.
        yaw: f64,
    },
    /// A vertical cylinder from `z0` to `z1`.
    Cylinder {
        /// Axis x.
        x: f64,
        /// Axis y.
        y: f64,
        /// Bottom.
        z0: f64,
        /// Top.
        z1: f64,
        /// Radius.
        r: f64,
    },
}

/// A primitive: shape, instance id and surface.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Prim {
    /// The shape.
    pub shape: Shape,
    /// Ground-truth instance id (≥ 2).
    pub instance: u16,
    /// Base colour.
    pub colour: [u8; 3],
    /// Lidar reflectivity, 0..1.
    pub reflectivity: f32,
}

impl Prim {
    /// Axis-aligned bounds: (min x, min y, min z, max x, max y, max z).
    #[must_use]
    pub fn bounds(&self) -> [f64; 6] {
        match self.shape {
            Shape::Box { centre, half, yaw } => {
                let (s, c) = yaw.sin_cos();
                let ex = (half[0] * c).abs() + (half[1] * s).abs();
                let ey = (half[0] * s).abs() + (half[1] * c).abs();
                [
                    centre[0] - ex,
                    centre[1] - ey,
                    centre[2] - half[2],
                    centre[0] + ex,
                    centre[1] + ey,
                    centre[2] + half[2],
                ]
            }
            Shape::Cylinder { x, y, z0, z1, r } => [x - r, y - r, z0, x + r, y + r, z1],
        }
    }
}

/// A road strip on the ground: asphalt with lane marks, flanked by sidewalks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Road {
    /// Start of the centre line.
    pub from: [f64; 2],
    /// End of the centre line.
    pub to: [f64; 2],
    /// Carriageway width, metres.
    pub width: f64,
    /// Sidewalk width on each side, metres.
    pub sidewalk: f64,
}

/// What a ray hit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hit {
    /// Distance along the (unit) ray, metres.
    pub t: f64,
    /// Instance id ([`GROUND_ID`] for the ground).
    pub instance: u16,
    /// Surface colour at the hit (unshaded).
    pub colour: [u8; 3],
    /// Unit surface normal, facing the ray.
    pub normal: [f64; 3],
    /// Lidar reflectivity, 0..1.
    pub reflectivity: f32,
}

/// Ground surface sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GroundSample {
    /// Colour (flat ground: the sun's shading is baked in).
    pub colour: [u8; 3],
    /// Lidar reflectivity.
    pub reflectivity: f32,
}

/// One planar face for the camera's rasteriser.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Face {
    /// Index of the first vertex in [`World::face_vertices`].
    pub first: u32,
    /// Number of vertices (a convex polygon, counter-clockwise seen from outside).
    pub count: u32,
    /// Outward unit normal.
    pub normal: [f64; 3],
    /// Shaded colour (Lambert, baked).
    pub colour: [u8; 3],
    /// Instance id.
    pub instance: u16,
}

/// A primitive's faces for the rasteriser, with a bounding sphere for culling.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FaceGroup {
    /// First face index.
    pub first: u32,
    /// Number of faces.
    pub count: u32,
    /// Bounding sphere centre.
    pub centre: [f64; 3],
    /// Bounding sphere radius.
    pub radius: f64,
}

/// Scratch a caller keeps per thread for [`World::cast`].
#[derive(Clone, Debug, Default)]
pub struct RayScratch {
    mailbox: Vec<u32>,
    stamp: u32,
}

impl RayScratch {
    /// Scratch for a world with `prims` primitives.
    #[must_use]
    pub fn new(world: &World) -> Self {
        Self { mailbox: vec![0; world.prims.len()], stamp: 0 }
    }
}

#[derive(Clone, Debug)]
struct Grid {
    x0: f64,
    y0: f64,
    cell: f64,
    inv_cell: f64,
    nx: usize,
    ny: usize,
    /// CSR: primitives of cell c are `items[offsets[c]..offsets[c + 1]]`.
    offsets: Vec<u32>,
    items: Vec<u32>,
    zmax: Vec<f32>,
}

/// The ground's material map.
///
/// A grid of square cells (1 m unless the world is huge) over the roads' surroundings. A cell
/// holds either one material (most cells: grass squares of the 2 m checker, plain asphalt
/// between lane marks) or a [`TILE`] × [`TILE`] tile of materials sampled at the sub-cell
/// centres (cells with lane marks, sidewalk slab joints, road edges). Looking a point up is
/// then two float→int conversions and two loads, with no pattern arithmetic; lane marks are
/// resolved to 1/16 of a cell (6.25 cm). Outside the map the ground is grass.
#[derive(Clone, Debug)]
struct GroundMap {
    x0: f64,
    y0: f64,
    /// Sub-cell samples per metre.
    inv_sub: f64,
    nx: usize,
    ny: usize,
    /// Per cell: a material, or [`TILED`] | tile index.
    cells: Vec<u32>,
    /// Tiles, [`TILE`]² materials each, row-major.
    tiles: Vec<u8>,
    /// The roads, for tests that compare the tiles with point evaluation.
    #[cfg_attr(not(test), allow(dead_code))]
    geo: Vec<RoadGeo>,
}

/// Samples per tile side.
const TILE: usize = 16;
/// Cell value flag: the low bits index a tile.
const TILED: u32 = 1 << 31;

/// A road, precomputed for [`World::ground_at`].
#[derive(Clone, Copy, Debug)]
struct RoadGeo {
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

/// The world: primitives, roads, and the acceleration structures built from them.
#[derive(Clone, Debug)]
pub struct World {
    prims: Vec<Prim>,
    fast: Vec<FastShape>,
    roads: Vec<Road>,
    grid: Grid,
    ground: GroundMap,
    max_height: f64,
    faces: Vec<Face>,
    face_vertices: Vec<[f64; 3]>,
    groups: Vec<FaceGroup>,
}

/// Grid cell size, metres.
const CELL: f64 = 4.0;

impl World {
    /// Builds the acceleration structures over `prims` and `roads`.
    #[must_use]
    pub fn new(prims: Vec<Prim>, roads: Vec<Road>) -> Self {
        let grid = Grid::build(&prims);
        let ground = GroundMap::build(&roads);
        let max_height = prims.iter().map(|p| p.bounds()[5]).fold(0.0, f64::max);
        let mut w = Self {
            fast: prims.iter().map(|p| FastShape::from(p.shape)).collect(),
            prims,
            roads,
            grid,
            ground,
            max_height,
            faces: vec![Face { first: 0, count: 0, normal: [0.0; 3], colour: [0; 3], instance: SKY_ID }],
            face_vertices: Vec::new(),
            groups: Vec::new(),
        };
        w.build_faces();
        w
    }

    /// The primitives.
    #[must_use]
    pub fn prims(&self) -> &[Prim] {
        &self.prims
    }

    /// The roads.
    #[must_use]
    pub fn roads(&self) -> &[Road] {
        &self.roads
    }

    /// Faces for the rasteriser. Index 0 is a placeholder meaning "no face".
    #[must_use]
    pub fn faces(&self) -> &[Face] {
        &self.faces
    }

    /// Vertices referenced by [`Face::first`] / [`Face::count`].
    #[must_use]
    pub fn face_vertices(&self) -> &[[f64; 3]] {
        &self.face_vertices
    }

    /// One face group per primitive.
    #[must_use]
    pub fn face_groups(&self) -> &[FaceGroup] {
        &self.groups
    }

    /// The ground's colour and reflectivity at (x, y): grass checker, sidewalk slabs, asphalt
    /// with a dashed yellow centre line and solid white lane edges.
    #[must_use]
    #[inline]
    pub fn ground_at(&self, x: f64, y: f64) -> GroundSample {
        GROUND_MATERIALS[usize::from(self.ground_material(x, y))]
    }

    /// Index into [`GROUND_MATERIALS`] at (x, y).
    #[inline]
    fn ground_material(&self, x: f64, y: f64) -> u8 {
        let g = &self.ground;
        let fx = (x - g.x0) * g.inv_sub;
        let fy = (y - g.y0) * g.inv_sub;
        let (ix, iy) = (fx as usize, fy as usize); // saturating: negative → 0
        if !(fx >= 0.0 && fy >= 0.0 && ix < g.nx * TILE && iy < g.ny * TILE) {
            return grass_at(x, y);
        }
        let c = g.cells[(iy / TILE) * g.nx + ix / TILE];
        if c & TILED == 0 {
            c as u8
        } else {
            g.tiles[(c & !TILED) as usize * TILE * TILE + (iy % TILE) * TILE + ix % TILE]
        }
    }

    /// The material at (x, y) near `roads`, point by point: what the tiles sample.
    #[cfg(test)]
    fn ground_material_exact(&self, cell: [u16; 2], x: f64, y: f64) -> u8 {
        material_exact(&self.ground.geo, cell, x, y)
    }

    /// Casts a ray from `o` along the unit vector `d`, up to `max_t`. Returns the nearest hit
    /// (ground or primitive) with `t > 0`, or `None` for sky / beyond range.
    #[must_use]
    pub fn cast(&self, o: [f64; 3], d: [f64; 3], max_t: f64, scratch: &mut RayScratch) -> Option<Hit> {
        let mut t_end = max_t;
        let mut ground = false;
        if d[2] < -1e-12 && o[2] > 0.0 {
            let tg = -o[2] / d[2];
            if tg < t_end {
                t_end = tg;
                ground = true;
            }
        }
        if let Some(h) = self.cast_prims(o, d, t_end, scratch) {
            return Some(h);
        }
        if ground {
            let (x, y) = (o[0] + d[0] * t_end, o[1] + d[1] * t_end);
            let g = self.ground_at(x, y);
            return Some(Hit {
                t: t_end,
                instance: GROUND_ID,
                colour: g.colour,
                normal: [0.0, 0.0, 1.0],
                reflectivity: g.reflectivity,
            });
        }
        None
    }

    /// Nearest primitive hit with 0 < t < t_end.
    fn cast_prims(&self, o: [f64; 3], d: [f64; 3], t_end: f64, scratch: &mut RayScratch) -> Option<Hit> {
        let g = &self.grid;
        if g.nx == 0 {
            return None;
        }
        // Clip the ray to the grid's x-y bounds and to the tallest primitive.
        let mut t0: f64 = 0.0;
        let mut t1 = t_end;
        let bx = [g.x0, g.x0 + g.cell * g.nx as f64];
        let by = [g.y0, g.y0 + g.cell * g.ny as f64];
        for (axis, b) in [(0usize, bx), (1, by)] {
            if d[axis].abs() < 1e-15 {
                if o[axis] < b[0] || o[axis] > b[1] {
                    return None;
                }
            } else {
                let inv = 1.0 / d[axis];
                let (mut ta, mut tb) = ((b[0] - o[axis]) * inv, (b[1] - o[axis]) * inv);
                if ta > tb {
                    std::mem::swap(&mut ta, &mut tb);
                }
                t0 = t0.max(ta);
                t1 = t1.min(tb);
            }
        }
        if d[2] > 1e-12 {
            t1 = t1.min((self.max_height - o[2]) / d[2]);
        }
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

        let px = o[0] + d[0] * t0;
        let py = o[1] + d[1] * t0;
        let mut ix = (((px - g.x0) * g.inv_cell).floor() as isize).clamp(0, g.nx as isize - 1);
        let mut iy = (((py - g.y0) * g.inv_cell).floor() as isize).clamp(0, g.ny as isize - 1);
        let (step_x, mut next_x, delta_x) = axis_setup(o[0], d[0], g.x0, g.cell, ix);
        let (step_y, mut next_y, delta_y) = axis_setup(o[1], d[1], g.y0, g.cell, iy);

        let mut best_t = t1;
        let mut best: Option<(usize, [f64; 3])> = None;
        let mut t_in = t0;
        loop {
            let t_out = next_x.min(next_y).min(t1);
            let c = iy as usize * g.nx + ix as usize;
            let (a, b) = (g.offsets[c] as usize, g.offsets[c + 1] as usize);
            if a != b {
                let z_low = (o[2] + d[2] * t_in).min(o[2] + d[2] * t_out);
                if z_low <= f64::from(g.zmax[c]) {
                    for &pi in &g.items[a..b] {
                        let pi = pi as usize;
                        if scratch.mailbox[pi] == stamp {
                            continue;
                        }
                        scratch.mailbox[pi] = stamp;
                        if let Some((t, n)) = intersect_fast(&self.fast[pi], o, d, best_t) {
                            best_t = t;
                            best = Some((pi, n));
                        }
                    }
                }
            }
            if best_t <= t_out || t_out >= t1 {
                break;
            }
            if next_x < next_y {
                ix += step_x;
                if ix < 0 || ix >= g.nx as isize {
                    break;
                }
                t_in = next_x;
                next_x += delta_x;
            } else {
                iy += step_y;
                if iy < 0 || iy >= g.ny as isize {
                    break;
                }
                t_in = next_y;
                next_y += delta_y;
            }
        }
        best.map(|(pi, normal)| {
            let p = &self.prims[pi];
            Hit { t: best_t, instance: p.instance, colour: p.colour, normal, reflectivity: p.reflectivity }
        })
    }

    fn build_faces(&mut self) {
        for p in &self.prims {
            let first = self.faces.len() as u32;
            let b = p.bounds();
            let centre = [(b[0] + b[3]) / 2.0, (b[1] + b[4]) / 2.0, (b[2] + b[5]) / 2.0];
            let radius = 0.5 * ((b[3] - b[0]).powi(2) + (b[4] - b[1]).powi(2) + (b[5] - b[2]).powi(2)).sqrt();
            let mut polys: Vec<(Vec<[f64; 3]>, [f64; 3])> = Vec::new();
            match p.shape {
                Shape::Box { centre: c, half: h, yaw } => {
                    let (s, co) = yaw.sin_cos();
                    let ax = [co, s, 0.0];
                    let ay = [-s, co, 0.0];
                    let corner = |sx: f64, sy: f64, sz: f64| {
                        [
                            c[0] + ax[0] * h[0] * sx + ay[0] * h[1] * sy,
                            c[1] + ax[1] * h[0] * sx + ay[1] * h[1] * sy,
                            c[2] + h[2] * sz,
                        ]
                    };
                    // Each face: corners counter-clockwise seen from outside, and its normal.
                    #[allow(clippy::type_complexity)]
                    let faces: [([(f64, f64, f64); 4], [f64; 3]); 6] = [
                        ([(1., -1., -1.), (1., 1., -1.), (1., 1., 1.), (1., -1., 1.)], ax),
                        (
                            [(-1., 1., -1.), (-1., -1., -1.), (-1., -1., 1.), (-1., 1., 1.)],
                            [-ax[0], -ax[1], 0.0],
                        ),
                        ([(1., 1., -1.), (-1., 1., -1.), (-1., 1., 1.), (1., 1., 1.)], ay),
                        (
                            [(-1., -1., -1.), (1., -1., -1.), (1., -1., 1.), (-1., -1., 1.)],
                            [-ay[0], -ay[1], 0.0],
                        ),
                        ([(1., -1., 1.), (1., 1., 1.), (-1., 1., 1.), (-1., -1., 1.)], [0.0, 0.0, 1.0]),
                        ([(1., 1., -1.), (1., -1., -1.), (-1., -1., -1.), (-1., 1., -1.)], [0.0, 0.0, -1.0]),
                    ];
                    for (corners, n) in faces {
                        if n[2] < -0.5 && c[2] - h[2] < 1e-3 {
                            continue; // bottom face resting on the ground: never visible
                        }
                        polys.push((corners.iter().map(|&(a, b, z)| corner(a, b, z)).collect(), n));
                    }
                }
                Shape::Cylinder { x, y, z0, z1, r } => {
                    // A prism with its vertices on the true surface: its faces lie within
                    // r·(1 - cos(π/16)) ≈ 2 % of the radius inside it.
                    let ang = |k: usize| std::f64::consts::TAU * k as f64 / CYLINDER_SIDES as f64;
                    for k in 0..CYLINDER_SIDES {
                        let (a0, a1) = (ang(k), ang(k + 1));
                        let mid = (a0 + a1) / 2.0;
                        let v = |a: f64, z: f64| [x + r * a.cos(), y + r * a.sin(), z];
                        polys.push((
                            vec![v(a0, z0), v(a1, z0), v(a1, z1), v(a0, z1)],
                            [mid.cos(), mid.sin(), 0.0],
                        ));
                    }
                    let cap = |z: f64, up: bool| {
                        let mut v: Vec<[f64; 3]> = (0..CYLINDER_SIDES)
                            .map(|k| [x + r * ang(k).cos(), y + r * ang(k).sin(), z])
                            .collect();
                        if !up {
                            v.reverse();
                        }
                        v
                    };
                    polys.push((cap(z1, true), [0.0, 0.0, 1.0]));
                    if z0 > 1e-3 {
                        polys.push((cap(z0, false), [0.0, 0.0, -1.0]));
                    }
                }
            }
            for (verts, n) in polys {
                let lambert = (n[0] * SUN[0] + n[1] * SUN[1] + n[2] * SUN[2]).max(0.0);
                let k = 0.42 + 0.58 * lambert;
                let colour = p.colour.map(|c| (f64::from(c) * k).round().clamp(0.0, 255.0) as u8);
                self.faces.push(Face {
                    first: self.face_vertices.len() as u32,
                    count: verts.len() as u32,
                    normal: n,
                    colour,
                    instance: p.instance,
                });
                self.face_vertices.extend(verts);
            }
            self.groups.push(FaceGroup { first, count: self.faces.len() as u32 - first, centre, radius });
        }
    }
}

#[inline]
fn axis_setup(o: f64, d: f64, origin: f64, cell: f64, i: isize) -> (isize, f64, f64) {
    if d > 1e-15 {
        let boundary = origin + (i + 1) as f64 * cell;
        (1, (boundary - o) / d, cell / d)
    } else if d < -1e-15 {
        let boundary = origin + i as f64 * cell;
        (-1, (boundary - o) / d, -cell / d)
    } else {
        (0, f64::INFINITY, f64::INFINITY)
    }
}

/// Ray–primitive intersection: the entering hit with 1e-6 < t < t_max, and its outward normal.
#[inline]
#[must_use]
pub fn intersect(shape: &Shape, o: [f64; 3], d: [f64; 3], t_max: f64) -> Option<(f64, [f64; 3])> {
    intersect_fast(&FastShape::from(*shape), o, d, t_max)
}

/// A shape with its yaw's sine and cosine precomputed.
#[derive(Clone, Copy, Debug)]
enum FastShape {
    Box { centre: [f64; 3], half: [f64; 3], c: f64, s: f64 },
    Cylinder { x: f64, y: f64, z0: f64, z1: f64, r: f64 },
}

impl From<Shape> for FastShape {
    fn from(shape: Shape) -> Self {
        match shape {
            Shape::Box { centre, half, yaw } => {
                let (s, c) = yaw.sin_cos();
                Self::Box { centre, half, c, s }
            }
            Shape::Cylinder { x, y, z0, z1, r } => Self::Cylinder { x, y, z0, z1, r },
        }
    }
}

#[inline]
fn intersect_fast(shape: &FastShape, o: [f64; 3], d: [f64; 3], t_max: f64) -> Option<(f64, [f64; 3])> {
    const EPS: f64 = 1e-6;
    match *shape {
        FastShape::Box { centre, half, c, s } => {
            let (rx, ry) = (o[0] - centre[0], o[1] - centre[1]);
            let lo = [rx * c + ry * s, -rx * s + ry * c, o[2] - centre[2]];
            let ld = [d[0] * c + d[1] * s, -d[0] * s + d[1] * c, d[2]];
            let mut tmin = f64::NEG_INFINITY;
            let mut tmax = t_max;
            let mut axis = 0;
            let mut sign = 1.0;
            for k in 0..3 {
                if ld[k].abs() < 1e-15 {
                    if lo[k].abs() > half[k] {
                        return None;
                    }
                    continue;
                }
                let inv = 1.0 / ld[k];
                let ta = (-half[k] - lo[k]) * inv;
                let tb = (half[k] - lo[k]) * inv;
                let (near, far, sg) = if ta < tb { (ta, tb, -1.0) } else { (tb, ta, 1.0) };
                if near > tmin {
                    tmin = near;
                    axis = k;
                    sign = sg;
                }
                tmax = tmax.min(far);
                if tmin > tmax {
                    return None;
                }
            }
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
    fn build(prims: &[Prim]) -> Self {
        if prims.is_empty() {
            return Self {
                x0: 0.0,
                y0: 0.0,
                cell: CELL,
                inv_cell: 1.0 / CELL,
                nx: 0,
                ny: 0,
                offsets: vec![0],
                items: Vec::new(),
                zmax: Vec::new(),
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
                    zmax[c] = zmax[c].max(top as f32 + 1e-3);
                }
            }
        }
        for c in 0..nx * ny {
            counts[c + 1] += counts[c];
        }
        let offsets = counts;
        let mut fill = offsets.clone();
        let mut items = vec![0u32; offsets[nx * ny] as usize];
        for (i, p) in prims.iter().enumerate() {
            let (cx0, cy0, cx1, cy1, _) = cell_range(p);
            for cy in cy0..=cy1 {
                for cx in cx0..=cx1 {
                    let c = cy * nx + cx;
                    items[fill[c] as usize] = i as u32;
                    fill[c] += 1;
                }
            }
        }
        Self { x0, y0, cell, inv_cell, nx, ny, offsets, items, zmax }
    }
}

impl GroundMap {
    /// Cell size, metres: the grass checker's squares (2 m) are whole cells, and lanes are
    /// wide enough that most carriageway cells hold no lane mark.
    const CELL: f64 = 1.0;

    fn build(roads: &[Road]) -> Self {
        if roads.is_empty() {
            return Self {
                x0: 0.0,
                y0: 0.0,
                inv_sub: 1.0,
                nx: 0,
                ny: 0,
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
        Self { x0, y0, inv_sub: 1.0 / sub, nx, ny, cells, tiles, geo }
    }
}

/// The material at (x, y) given the roads near it, point by point.
fn material_exact(geo: &[RoadGeo], cell: [u16; 2], x: f64, y: f64) -> u8 {
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
#[inline]
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

/// `x mod m` in [0, m) for m > 0, via [`ffloor`].
#[inline(always)]
fn fmod_pos(x: f64, m: f64, inv_m: f64) -> f64 {
    x - ffloor(x * inv_m) * m
}

/// Small helper used by world generators: a random colour near `base`.
#[must_use]
pub fn jitter_colour(rng: &mut Rng, base: [u8; 3], amount: f64) -> [u8; 3] {
    let k = 1.0 + rng.range(-amount, amount);
    base.map(|c| (f64::from(c) * k).round().clamp(0.0, 255.0) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_box() -> World {
        World::new(
            vec![Prim {
                shape: Shape::Box { centre: [20.0, 0.0, 1.0], half: [1.0, 2.0, 1.0], yaw: 0.0 },
                instance: 7,
                colour: [200, 0, 0],
                reflectivity: 0.5,
            }],
            vec![],
        )
    }

    #[test]
    fn ray_hits_box_front_face() {
        let w = one_box();
        let mut s = RayScratch::new(&w);
        let h = w.cast([0.0, 0.0, 1.0], [1.0, 0.0, 0.0], 100.0, &mut s).unwrap();
        assert!((h.t - 19.0).abs() < 1e-9);
        assert_eq!(h.instance, 7);
        assert_eq!(h.normal, [-1.0, 0.0, 0.0]);
        // Upwards misses, downwards hits the ground.
        assert!(w.cast([0.0, 0.0, 1.0], [0.0, 0.0, 1.0], 100.0, &mut s).is_none());
        let d = [0.6f64, 0.0, -0.8];
        let g = w.cast([0.0, 0.0, 1.0], d, 100.0, &mut s).unwrap();
        assert_eq!(g.instance, GROUND_ID);
        assert!((g.t - 1.25).abs() < 1e-9);
    }

    #[test]
    fn rotated_box_and_cylinder() {
        let prims = vec![
            Prim {
                shape: Shape::Box {
                    centre: [10.0, 0.0, 1.0],
                    half: [1.0, 1.0, 1.0],
                    yaw: std::f64::consts::FRAC_PI_4,
                },
                instance: 3,
                colour: [0; 3],
                reflectivity: 0.5,
            },
            Prim {
                shape: Shape::Cylinder { x: 0.0, y: 10.0, z0: 0.0, z1: 5.0, r: 0.5 },
                instance: 4,
                colour: [0; 3],
                reflectivity: 0.5,
            },
        ];
        let w = World::new(prims, vec![]);
        let mut s = RayScratch::new(&w);
        let h = w.cast([0.0, 0.0, 1.0], [1.0, 0.0, 0.0], 100.0, &mut s).unwrap();
        assert!((h.t - (10.0 - std::f64::consts::SQRT_2)).abs() < 1e-9, "{}", h.t);
        let h = w.cast([0.0, 0.0, 1.0], [0.0, 1.0, 0.0], 100.0, &mut s).unwrap();
        assert_eq!(h.instance, 4);
        assert!((h.t - 9.5).abs() < 1e-9);
        assert!((h.normal[1] + 1.0).abs() < 1e-9);
    }

    #[test]
    fn ground_map_agrees_with_point_evaluation() {
        let roads = vec![
            Road { from: [-6.0, 0.0], to: [186.0, 0.0], width: 12.0, sidewalk: 3.0 },
            Road { from: [60.0, -100.0], to: [60.0, 100.0], width: 12.0, sidewalk: 3.0 },
            Road { from: [10.0, 30.0], to: [90.0, 70.0], width: 7.0, sidewalk: 1.0 },
        ];
        let w = World::new(vec![], roads);
        let mut rng = Rng::new(11);
        let g = &w.ground;
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
        for (i, r) in w.ground.geo.iter().enumerate() {
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

    #[test]
    fn grid_agrees_with_brute_force() {
        let mut rng = Rng::new(3);
        let prims: Vec<Prim> = (0..300)
            .map(|i| {
                let shape = if i % 3 == 0 {
                    Shape::Cylinder {
                        x: rng.range(-80.0, 80.0),
                        y: rng.range(-80.0, 80.0),
                        z0: 0.0,
                        z1: rng.range(1.0, 9.0),
                        r: rng.range(0.05, 1.0),
                    }
                } else {
                    let h = rng.range(0.5, 12.0);
                    Shape::Box {
                        centre: [rng.range(-80.0, 80.0), rng.range(-80.0, 80.0), h],
                        half: [rng.range(0.2, 9.0), rng.range(0.2, 9.0), h],
                        yaw: rng.range(-3.0, 3.0),
                    }
                };
                Prim { shape, instance: i as u16 + 2, colour: [0; 3], reflectivity: 0.5 }
            })
            .collect();
        let w = World::new(prims.clone(), vec![]);
        let mut s = RayScratch::new(&w);
        for _ in 0..20000 {
            let o = [rng.range(-90.0, 90.0), rng.range(-90.0, 90.0), rng.range(0.2, 3.0)];
            let az = rng.range(-3.2, 3.2);
            let el = rng.range(-0.5, 0.3);
            let d = [el.cos() * az.cos(), el.cos() * az.sin(), el.sin()];
            let fast = w.cast_prims(o, d, 150.0, &mut s).map(|h| (h.t, h.instance));
            let mut slow: Option<(f64, u16)> = None;
            for p in &prims {
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
    }
}
