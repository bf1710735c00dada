//! Building a validated scenario: its world (explicit primitives and roads, then the
//! generator's) and the ego trajectory.

use super::spec::{corner_radius, Generator, ScenarioSpec, TrajectorySpec, WorldSpec};
use super::validate::{self, bad, check_colour_id, check_finite, check_range, Invalid};
use super::Scenario;
use crate::trajectory::Trajectory;
use crate::urban::{self, Ids, UrbanSpec};
use crate::world::{Prim, Road, Shape, World, FIRST_OBJECT_ID};
use std::sync::Arc;

impl Scenario {
    /// Validates `spec` in file order (header, sensors, rig and epochs, faults, world,
    /// trajectory) and builds it; the first failure names its field.
    pub(super) fn build(spec: ScenarioSpec, file: &str) -> Result<Self, Invalid> {
        validate::header(&spec)?;
        validate::camera(&spec.camera)?;
        validate::lidar(&spec.lidar)?;
        let sensors = validate::sensors(&spec)?;
        let epochs = validate::epochs(&spec, &sensors)?;
        validate::faults(&spec.faults, epochs.len())?;
        let (world, urban) = build_world(&spec.world, spec.seed)?;
        let trajectory = build_trajectory(&spec.trajectory, urban)?;
        Ok(Self {
            source: file.to_string(),
            world: Arc::new(world),
            trajectory: Arc::new(trajectory),
            epochs: epochs.iter().map(|e| e.view(0, 0)).collect(),
            sensors: epochs.into(),
            spec,
        })
    }
}

/// The world: the file's boxes, cylinders and roads, then the generator's (whose ids
/// follow the file's). Also returns the generator's spec, which a `Road` trajectory follows.
fn build_world(spec: &WorldSpec, seed: u64) -> Result<(World, Option<&UrbanSpec>), Invalid> {
    let mut prims = Vec::new();
    for (i, b) in spec.boxes.iter().enumerate() {
        let f = format!("world.boxes[{i}]");
        for v in [b.position.0, b.position.1] {
            check_range(&format!("{f}.position"), v, -1e5, 1e5)?;
        }
        check_range(&format!("{f}.position"), b.position.2, 0.0, 1e4)
            .map_err(|(f, m)| (f, format!("{m}: z is the bottom and must not be below the ground")))?;
        for v in [b.size.0, b.size.1, b.size.2] {
            check_range(&format!("{f}.size"), v, 1e-3, 1e4)?;
        }
        check_finite(&format!("{f}.yaw_deg"), b.yaw_deg)?;
        check_colour_id(&f, b.id, b.reflectivity)?;
        prims.push(Prim {
            shape: Shape::Box {
                centre: [b.position.0, b.position.1, b.position.2 + b.size.2 / 2.0],
                half: [b.size.0 / 2.0, b.size.1 / 2.0, b.size.2 / 2.0],
                yaw: b.yaw_deg.to_radians(),
            },
            instance: b.id,
            colour: [b.colour.0, b.colour.1, b.colour.2],
            reflectivity: b.reflectivity,
        });
    }
    for (i, c) in spec.cylinders.iter().enumerate() {
        let f = format!("world.cylinders[{i}]");
        for v in [c.position.0, c.position.1] {
            check_range(&format!("{f}.position"), v, -1e5, 1e5)?;
        }
        check_range(&format!("{f}.position"), c.position.2, 0.0, 1e4)?;
        check_range(&format!("{f}.radius"), c.radius, 1e-3, 1e3)?;
        check_range(&format!("{f}.height"), c.height, 1e-3, 1e4)?;
        check_colour_id(&f, c.id, c.reflectivity)?;
        prims.push(Prim {
            shape: Shape::Cylinder {
                x: c.position.0,
                y: c.position.1,
                z0: c.position.2,
                z1: c.position.2 + c.height,
                r: c.radius,
            },
            instance: c.id,
            colour: [c.colour.0, c.colour.1, c.colour.2],
            reflectivity: c.reflectivity,
        });
    }
    let mut roads = build_roads(spec)?;
    let urban = generate(spec, seed, &mut prims, &mut roads)?;
    if prims.len() > 2_000_000 {
        return bad("world", "more than 2 000 000 primitives");
    }
    Ok((World::new(prims, roads), urban))
}

/// The file's road strips.
fn build_roads(spec: &WorldSpec) -> Result<Vec<Road>, Invalid> {
    let mut roads = Vec::new();
    for (i, r) in spec.roads.iter().enumerate() {
        let f = format!("world.roads[{i}]");
        for v in [r.from.0, r.from.1, r.to.0, r.to.1] {
            check_range(&format!("{f}.from"), v, -1e5, 1e5)?;
        }
        if (r.to.0 - r.from.0).hypot(r.to.1 - r.from.1) < 0.1 {
            return bad(format!("{f}.to"), "must be at least 0.1 m from `from`");
        }
        check_range(&format!("{f}.width_m"), r.width_m, 0.1, 100.0)?;
        check_range(&format!("{f}.sidewalk_m"), r.sidewalk_m, 0.0, 100.0)?;
        roads.push(Road {
            from: [r.from.0, r.from.1],
            to: [r.to.0, r.to.1],
            width: r.width_m,
            sidewalk: r.sidewalk_m,
        });
    }
    Ok(roads)
}

/// Runs the world's generator, if any, with ids after the file's.
fn generate<'a>(
    spec: &'a WorldSpec,
    seed: u64,
    prims: &mut Vec<Prim>,
    roads: &mut Vec<Road>,
) -> Result<Option<&'a UrbanSpec>, Invalid> {
    let first_free = prims.iter().map(|p| p.instance).max().map_or(FIRST_OBJECT_ID, |m| m.saturating_add(1));
    let mut ids = Ids::new(first_free.max(FIRST_OBJECT_ID));
    match &spec.generate {
        Some(Generator::Urban(u)) => {
            u.validate().map_err(|(f, m)| (format!("world.generate.{f}"), m))?;
            urban::generate(u, seed, &mut ids, prims, roads);
            if ids.overflowed() {
                return bad("world.generate", "the world needs more than 65535 instance ids");
            }
            Ok(Some(u))
        }
        None => Ok(None),
    }
}

/// The ego path; a `Road` trajectory follows the generated loop road `urban`.
fn build_trajectory(spec: &TrajectorySpec, urban: Option<&UrbanSpec>) -> Result<Trajectory, Invalid> {
    match spec {
        TrajectorySpec::Road { speed_mps, lane_offset_m } => {
            check_range("trajectory.speed_mps", *speed_mps, 0.0, 100.0)?;
            let Some(u) = urban else {
                return bad(
                    "trajectory",
                    "`Road` follows the generated loop road: the world needs `generate: Urban(..)`",
                );
            };
            check_range(
                "trajectory.lane_offset_m",
                *lane_offset_m,
                -u.road_width_m / 2.0,
                u.road_width_m / 2.0,
            )?;
            Ok(Trajectory::new(&u.lane_waypoints(*lane_offset_m), *speed_mps, corner_radius()))
        }
        TrajectorySpec::Waypoints { points, speed_mps, corner_radius_m } => {
            check_range("trajectory.speed_mps", *speed_mps, 0.0, 100.0)?;
            check_range("trajectory.corner_radius_m", *corner_radius_m, 0.0, 1e4)?;
            if points.len() < 3 {
                return bad(
                    "trajectory.points",
                    format!("a loop needs at least 3 points (got {})", points.len()),
                );
            }
            for (i, p) in points.iter().enumerate() {
                check_range(&format!("trajectory.points[{i}]"), p.0, -1e5, 1e5)?;
                check_range(&format!("trajectory.points[{i}]"), p.1, -1e5, 1e5)?;
                let q = points[(i + 1) % points.len()];
                if (q.0 - p.0).hypot(q.1 - p.1) < 0.01 {
                    return bad(format!("trajectory.points[{i}]"), "consecutive points must be distinct");
                }
            }
            Ok(Trajectory::new(points, *speed_mps, *corner_radius_m))
        }
    }
}
