//! The lidar: a spinning multi-beam scanner, ray cast against the world.
//!
//! A sweep at capture time t uses the lidar mount of the epoch in force at t and the vehicle
//! pose at t for every firing, so there is no motion distortion within a sweep; unless the
//! scenario's lidar is `scanning`: then firing i is taken with the vehicle pose at
//! `t + i/azimuth_steps/rate_hz`, and its points are in the lidar frame of that instant, as
//! a spinning lidar's are (fusion deskews them with the ego-motion from the vehicle bus).
//!
//! Beam `b` (the point's `ring`) has elevation `lo + (hi - lo)·b/(beams - 1)`, so ring 0 is
//! the LOWEST beam. Firing `i` points at azimuth `2π·i/azimuth_steps` counter-clockwise from
//! the lidar's x axis (forward). Points come out firing by firing (all beams of firing 0,
//! then of firing 1, ...), in the lidar's own frame (x forward, y left, z up).
//!
//! A return farther than `max_range_m` (after noise) is dropped, as is a ray that hits
//! nothing. Range noise, if configured, is Gaussian with σ = `range_noise_m`, drawn from a
//! generator seeded by (scenario seed, frame index): the same sweep index gives the same
//! bytes. Intensity is the surface's reflectivity times (0.25 + 0.75·|cos incidence|).
//!
//! Points go to the sink in chunks of [`CHUNK_POINTS`] as [`PointRecord`] bytes: no
//! full-sweep buffer.

use crate::rng::{mix, Rng};
use crate::scenario::{epoch_rig_at, EpochRig, LidarConfig, Scenario};
use crate::trajectory::Trajectory;
use crate::world::{RayScratch, World};
use nalgebra::Matrix3;
use shared::frames::{PayloadSink, PointRecord, SinkFull, POINT_RECORD_SIZE};
use shared::{CalibEpoch, TimestampNs};
use std::sync::Arc;
use zerocopy::IntoBytes;

/// Points per sink push.
pub const CHUNK_POINTS: usize = 1024;

/// What a rendered sweep was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LidarSweep {
    /// The epoch whose rig the sweep was taken with (the truth at the capture time).
    pub epoch: CalibEpoch,
    /// Points written.
    pub points: usize,
    /// Payload bytes written.
    pub bytes: usize,
}

/// The most threads a renderer casts a sweep's rays on.
pub const MAX_THREADS: usize = 8;

/// One ray's return before the range noise: what the in-order pass needs, in 16 bytes
/// (a full sweep's returns are written by the casting threads and read back once).
#[derive(Clone, Copy, Debug, Default)]
struct Return {
    t: f64,
    /// The surface's reflectivity times (0.25 + 0.75·|cos incidence|), clamped to 0..1.
    intensity: f32,
    instance: u16,
    hit: bool,
}

const _: () = assert!(std::mem::size_of::<Return>() == 16);

/// What every thread of one sweep reads.
struct Sweep<'a> {
    world: &'a World,
    trajectory: &'a Trajectory,
    mount: nalgebra::Isometry3<f64>,
    /// Capture time, seconds.
    t_s: f64,
    /// Whether each firing takes its own pose (a `scanning` lidar).
    scanning: bool,
    /// Firings per sweep and the sweep's duration, seconds.
    steps: f64,
    sweep_s: f64,
    beams: &'a [(f64, f64)],
    azimuths: &'a [(f64, f64)],
    max_range: f64,
}

impl Sweep<'_> {
    /// The lidar's rotation and origin in the world at firing `i`.
    fn lidar_at(&self, i: usize) -> (Matrix3<f64>, [f64; 3]) {
        let dt = if self.scanning { i as f64 / self.steps * self.sweep_s } else { 0.0 };
        let l2w = self.trajectory.pose_at(self.t_s + dt).to_isometry() * self.mount;
        let r: Matrix3<f64> = *l2w.rotation.to_rotation_matrix().matrix();
        (r, [l2w.translation.x, l2w.translation.y, l2w.translation.z])
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
            for (ret, &(se, ce)) in firing.iter_mut().zip(self.beams) {
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
}

/// Renders lidar sweeps of one scenario. Keep one per lidar thread.
///
/// A sweep's rays are cast on several threads ([`LidarRenderer::set_threads`]; the
/// machine's parallelism by default), each taking a contiguous run of firings; the range
/// noise is then drawn and the points written in firing order on the calling thread, so
/// the bytes do not depend on the number of threads.
#[derive(Debug)]
pub struct LidarRenderer {
    world: Arc<World>,
    trajectory: Arc<Trajectory>,
    epochs: Arc<[EpochRig]>,
    config: LidarConfig,
    seed: u64,
    /// (sin, cos) of each beam's elevation.
    beams: Vec<(f64, f64)>,
    /// (sin, cos) of each firing's azimuth.
    azimuths: Vec<(f64, f64)>,
    /// One per thread.
    scratch: Vec<RayScratch>,
    /// Every ray's return, firing by firing.
    returns: Vec<Return>,
    chunk: Vec<PointRecord>,
}

impl LidarRenderer {
    /// A renderer for `scenario`'s lidar.
    #[must_use]
    pub fn new(scenario: &Scenario) -> Self {
        let config = *scenario.lidar();
        let (lo, hi) = config.vertical_fov_deg;
        let nb = config.beams as usize;
        let beams = (0..nb)
            .map(|b| {
                let el = if nb > 1 { lo + (hi - lo) * b as f64 / (nb - 1) as f64 } else { (lo + hi) / 2.0 };
                el.to_radians().sin_cos()
            })
            .collect();
        let na = config.azimuth_steps as usize;
        let azimuths = (0..na).map(|i| (std::f64::consts::TAU * i as f64 / na as f64).sin_cos()).collect();
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(MAX_THREADS);
        scenario.world().build_ground_map();
        Self {
            world: Arc::clone(scenario.world()),
            trajectory: Arc::clone(scenario.trajectory()),
            epochs: Arc::clone(scenario.epochs()),
            config,
            seed: scenario.seed(),
            beams,
            azimuths,
            scratch: vec![RayScratch::new(scenario.world()); threads],
            returns: Vec::new(),
            chunk: Vec::with_capacity(CHUNK_POINTS),
        }
    }

    /// Casts each sweep's rays on `threads` threads (at least one; the calling thread is
    /// one of them). The sweep's bytes are the same for any number.
    pub fn set_threads(&mut self, threads: usize) {
        self.scratch = vec![RayScratch::new(&self.world); threads.clamp(1, MAX_THREADS)];
    }

    /// Threads each sweep's rays are cast on.
    #[must_use]
    pub fn threads(&self) -> usize {
        self.scratch.len()
    }

    /// The largest payload a sweep can have (every ray returning), bytes.
    #[must_use]
    pub fn max_payload_len(&self) -> usize {
        self.beams.len() * self.azimuths.len() * POINT_RECORD_SIZE
    }

    /// Renders sweep `frame_index`, captured at scenario time `t`, appending its points to
    /// `sink`.
    ///
    /// # Errors
    /// [`SinkFull`] if the sink runs out of room (part of the sweep may have been pushed).
    pub fn render<S: PayloadSink + ?Sized>(
        &mut self,
        t: TimestampNs,
        frame_index: u64,
        sink: &mut S,
    ) -> Result<LidarSweep, SinkFull> {
        let er = *epoch_rig_at(&self.epochs, t);
        let (nb, na) = (self.beams.len(), self.azimuths.len());
        let sweep = Sweep {
            world: &self.world,
            trajectory: &self.trajectory,
            mount: er.rig.lidar_to_vehicle(),
            t_s: t.0 as f64 * 1e-9,
            scanning: self.config.scanning,
            steps: na as f64,
            sweep_s: 1.0 / self.config.rate_hz,
            beams: &self.beams,
            azimuths: &self.azimuths,
            max_range: self.config.max_range_m,
        };
        self.returns.resize(nb * na, Return::default());
        let per = na.div_ceil(self.scratch.len()).max(1);
        let mut parts = self.returns.chunks_mut(per * nb).zip(self.scratch.iter_mut()).enumerate();
        std::thread::scope(|s| {
            let mine = parts.next();
            for (k, (out, scratch)) in parts {
                let sweep = &sweep;
                s.spawn(move || sweep.cast(k * per, out, scratch));
            }
            if let Some((_, (out, scratch))) = mine {
                sweep.cast(0, out, scratch);
            }
        });
        let points = self.emit(frame_index, sink)?;
        Ok(LidarSweep { epoch: er.epoch, points, bytes: points * POINT_RECORD_SIZE })
    }

    /// Draws the range noise and writes the points, in firing order: the number written.
    fn emit<S: PayloadSink + ?Sized>(&mut self, frame_index: u64, sink: &mut S) -> Result<usize, SinkFull> {
        let max_range = self.config.max_range_m;
        let sigma = self.config.range_noise_m;
        let mut rng = Rng::new(mix(&[self.seed, 0x6c_6964_6172, frame_index]));
        let mut points = 0;
        self.chunk.clear();
        let firings = self.returns.chunks(self.beams.len()).zip(&self.azimuths);
        for (firing, &(sa, ca)) in firings {
            for (ring, (ret, &(se, ce))) in firing.iter().zip(&self.beams).enumerate() {
                if !ret.hit {
                    continue;
                }
                let range = if sigma > 0.0 { ret.t + sigma * rng.normal() } else { ret.t };
                if range > max_range || range <= 0.0 {
                    continue;
                }
                let dl = [ce * ca, ce * sa, se];
                self.chunk.push(PointRecord {
                    x: (dl[0] * range) as f32,
                    y: (dl[1] * range) as f32,
                    z: (dl[2] * range) as f32,
                    intensity: ret.intensity,
                    ring: ring as u16,
                    reserved: 0,
                    instance: u32::from(ret.instance),
                });
                if self.chunk.len() == CHUNK_POINTS {
                    sink.push(self.chunk.as_bytes())?;
                    points += self.chunk.len();
                    self.chunk.clear();
                }
            }
        }
        if !self.chunk.is_empty() {
            sink.push(self.chunk.as_bytes())?;
            points += self.chunk.len();
            self.chunk.clear();
        }
        Ok(points)
    }
}
