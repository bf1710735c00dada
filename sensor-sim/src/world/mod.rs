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

//!
//! Code map: `grid` holds the uniform grid and the ray–primitive intersections, `ground`
//! the ground's material map; this module the types, the world and its faces.

mod grid;
mod ground;

pub use grid::intersect;
pub use ground::{ffloor, GROUND_MATERIALS};

use crate::rng::Rng;
use grid::{FastShape, Grid, WalkStart};
pub(crate) use ground::GroundMap;
use std::sync::OnceLock;

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
    /// The last ray origin's start of the grid walk.
    walk: WalkStart,
}

impl RayScratch {
    /// Scratch for a world with `prims` primitives.
    #[must_use]
    pub fn new(world: &World) -> Self {
        Self { mailbox: vec![0; world.prims.len()], stamp: 0, walk: WalkStart::default() }
    }
}

/// The world: primitives, roads, and the acceleration structures built from them.
#[derive(Clone, Debug)]
pub struct World {
    prims: Vec<Prim>,
    fast: Vec<FastShape>,
    roads: Vec<Road>,
    grid: Grid,
    /// Built on first use (or by [`World::build_ground_map`]): the processes that load a
    /// scenario but render nothing (supervisor, vehicle bus) never pay for it.
    ground: OnceLock<GroundMap>,
    max_height: f64,
    faces: Vec<Face>,
    face_vertices: Vec<[f64; 3]>,
    groups: Vec<FaceGroup>,
}

impl World {
    /// Builds the acceleration structures over `prims` and `roads`.
    #[must_use]
    pub fn new(prims: Vec<Prim>, roads: Vec<Road>) -> Self {
        let grid = Grid::build(&prims);
        let max_height = prims.iter().map(|p| p.bounds()[5]).fold(0.0, f64::max);
        let mut w = Self {
            fast: prims.iter().map(|p| FastShape::from(p.shape)).collect(),
            prims,
            roads,
            grid,
            ground: OnceLock::new(),
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

    /// Builds the ground's material map now if it is not built yet (otherwise the first
    /// [`World::ground_at`] or ground hit of [`World::cast`] does): a renderer calls this
    /// at construction so that its first frame is not late.
    pub fn build_ground_map(&self) {
        self.ground_map();
    }

    fn ground_map(&self) -> &GroundMap {
        self.ground.get_or_init(|| GroundMap::build(&self.roads))
    }

    /// The ground's colour and reflectivity at (x, y): grass checker, sidewalk slabs, asphalt
    /// with a dashed yellow centre line and solid white lane edges.
    #[must_use]
    #[inline]
    pub fn ground_at(&self, x: f64, y: f64) -> GroundSample {
        GROUND_MATERIALS[usize::from(self.ground_material(x, y))]
    }

    /// The material map of [`World::ground_material`], fetched once: for a caller that
    /// looks up many points in a row (the camera's ground pixels).
    pub(crate) fn ground_materials(&self) -> &GroundMap {
        self.ground_map()
    }

    /// Index into [`GROUND_MATERIALS`] at (x, y).
    #[inline]
    fn ground_material(&self, x: f64, y: f64) -> u8 {
        self.ground_map().material(x, y)
    }

    /// The material at (x, y) near `roads`, point by point: what the tiles sample.
    #[cfg(test)]
    fn ground_material_exact(&self, cell: [u16; 2], x: f64, y: f64) -> u8 {
        ground::material_exact(&self.ground_map().geo, cell, x, y)
    }

    /// Casts a ray from `o` along the unit vector `d`, up to `max_t`. Returns the nearest hit
    /// (ground or primitive) with `t > 0`, or `None` for sky / beyond range.
    #[must_use]
    #[inline]
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
}
