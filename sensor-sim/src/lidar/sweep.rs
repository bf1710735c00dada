//! One sweep's parameters and the two halves of the work on a block of firings: casting its
//! rays, then turning its returns into points once its place in the noise stream is known.

use crate::rng::normals_from_uniforms;
use crate::trajectory::Trajectory;
use crate::world::{RayScratch, World};
use nalgebra::{Isometry3, Matrix3};
use shared::frames::PointRecord;
use std::ops::Range;
use std::sync::Arc;

/// Firings per block: the unit a thread claims (small, so a thread preempted by the camera
/// holds the sweep back by little).
pub(super) const BLOCK_FIRINGS: usize = 16;

/// One ray's return before the range noise, in 16 bytes.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Return {
    t: f64,
    /// The surface's reflectivity times (0.25 + 0.75·|cos incidence|), clamped to 0..1.
    intensity: f32,
    instance: u16,
    hit: bool,
}

const _: () = assert!(std::mem::size_of::<Return>() == 16);

/// A block of firings: its returns, then its points.
#[derive(Debug, Default)]
pub(super) struct Block {
    /// Every ray's return, firing by firing.
    returns: Vec<Return>,
    /// Returns that hit something: each takes one normal of the noise stream.
    pub hits: usize,
    /// The index in the sweep's noise stream of the block's first hit's normal.
    pub first_normal: usize,
    /// The block's points, in firing order.
    pub points: Vec<PointRecord>,
}

/// What every thread of one sweep reads.
#[derive(Debug)]
pub(super) struct Sweep {
    pub world: Arc<World>,
    pub trajectory: Arc<Trajectory>,
    pub mount: Isometry3<f64>,
    /// Capture time, seconds.
    pub t_s: f64,
    /// Whether each firing takes its own pose (a `scanning` lidar).
    pub scanning: bool,
    /// The sweep's duration, seconds.
    pub sweep_s: f64,
    /// (sin, cos) of each beam's elevation.
    pub beams: Arc<[(f64, f64)]>,
    /// (sin, cos) of each firing's azimuth.
    pub azimuths: Arc<[(f64, f64)]>,
    pub max_range: f64,
    /// The range noise's σ, metres (0: no noise, no normals drawn).
    pub sigma: f64,
}

impl Sweep {
    /// Blocks in the sweep.
    pub fn blocks(&self) -> usize {
        self.azimuths.len().div_ceil(BLOCK_FIRINGS)
    }

    /// The firings of block `b`.
    fn firings(&self, b: usize) -> Range<usize> {
        b * BLOCK_FIRINGS..((b + 1) * BLOCK_FIRINGS).min(self.azimuths.len())
    }

    /// The lidar's rotation and origin in the world at firing `i`.
    fn lidar_at(&self, i: usize) -> (Matrix3<f64>, [f64; 3]) {
        let dt = if self.scanning { i as f64 / self.azimuths.len() as f64 * self.sweep_s } else { 0.0 };
        let l2w = self.trajectory.pose_at(self.t_s + dt).to_isometry() * self.mount;
        let r: Matrix3<f64> = *l2w.rotation.to_rotation_matrix().matrix();
        (r, [l2w.translation.x, l2w.translation.y, l2w.translation.z])
    }

    /// Casts the rays of block `b` into `block` and counts its hits.
    pub fn cast_block(&self, b: usize, block: &mut Block, scratch: &mut RayScratch) {
        let firings = self.firings(b);
        block.returns.resize(firings.len() * self.beams.len(), Return::default());
        self.cast(firings.start, &mut block.returns, scratch);
        block.hits = block.returns.iter().filter(|r| r.hit).count();
    }

    /// Casts the rays of firings `first..` into `out` (all beams of a firing, then the next).
    fn cast(&self, first: usize, out: &mut [Return], scratch: &mut RayScratch) {
        let nb = self.beams.len();
        let (mut r, mut o) = self.lidar_at(0);
        for (k, firing) in out.chunks_mut(nb).enumerate() {
            let i = first + k;
            if self.scanning {
                (r, o) = self.lidar_at(i);
            }
            let (sa, ca) = self.azimuths[i];
            for (ret, &(se, ce)) in firing.iter_mut().zip(self.beams.iter()) {
                let dl = [ce * ca, ce * sa, se];
                let dw = [
                    r[(0, 0)] * dl[0] + r[(0, 1)] * dl[1] + r[(0, 2)] * dl[2],
                    r[(1, 0)] * dl[0] + r[(1, 1)] * dl[1] + r[(1, 2)] * dl[2],
                    r[(2, 0)] * dl[0] + r[(2, 1)] * dl[1] + r[(2, 2)] * dl[2],
                ];
                *ret = match self.world.cast(o, dw, self.max_range, scratch) {
                    Some(hit) => {
                        let n = hit.normal;
                        let cos_i = (n[0] * dw[0] + n[1] * dw[1] + n[2] * dw[2]).abs() as f32;
                        Return {
                            t: hit.t,
                            intensity: (hit.reflectivity * (0.25 + 0.75 * cos_i)).clamp(0.0, 1.0),
                            instance: hit.instance,
                            hit: true,
                        }
                    }
                    None => Return::default(),
                };
            }
        }
    }

    /// Writes the points of block `b` (cast, its `first_normal` set) into `block.points`:
    /// every hit takes the next normal of the stream `uniforms` gives ([`normals_from_uniforms`]),
    /// also a hit whose noisy range is then dropped. `normals` is scratch.
    pub fn emit_block(&self, b: usize, block: &mut Block, uniforms: &[f64], normals: &mut Vec<f64>) {
        let noisy = self.sigma > 0.0;
        normals.clear();
        if noisy {
            normals.resize(block.hits, 0.0);
            normals_from_uniforms(uniforms, block.first_normal, normals);
        }
        let mut noise = normals.iter();
        block.points.clear();
        let nb = self.beams.len();
        let firings = block.returns.chunks(nb).zip(&self.azimuths[self.firings(b)]);
        for (firing, &(sa, ca)) in firings {
            for (ring, (ret, &(se, ce))) in firing.iter().zip(self.beams.iter()).enumerate() {
                if !ret.hit {
                    continue;
                }
                let range = match noise.next() {
                    Some(z) if noisy => ret.t + self.sigma * z,
                    _ => ret.t,
                };
                if range > self.max_range || range <= 0.0 {
                    continue;
                }
                let dl = [ce * ca, ce * sa, se];
                block.points.push(PointRecord {
                    x: (dl[0] * range) as f32,
                    y: (dl[1] * range) as f32,
                    z: (dl[2] * range) as f32,
                    intensity: ret.intensity,
                    ring: ring as u16,
                    reserved: 0,
                    instance: u32::from(ret.instance),
                });
            }
        }
    }
}
