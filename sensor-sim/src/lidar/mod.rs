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
//! Points go to the sink in chunks of at most [`CHUNK_POINTS`] as
//! [`PointRecord`](shared::frames::PointRecord) bytes.
//!
//! A sweep is rendered in blocks of firings on the renderer's threads
//! ([`LidarRenderer::set_threads`]): each block's rays are cast and its hits counted (the
//! calling thread meanwhile draws the noise stream's uniforms, [`Rng::uniforms_for_normals`]);
//! each block then computes its normals (one per hit, in firing order) from its offset in that
//! stream ([`crate::rng::normals_from_uniforms`], the same values [`Rng::normal`] gives) and
//! writes its points, and the calling thread pushes the blocks to the sink in firing order. So
//! the bytes do not depend on the number of threads.

mod pool;
mod sweep;

use crate::rng::{mix, Rng};
use crate::scenario::{epoch_rig_at, EpochRig, LidarConfig, Scenario};
use crate::trajectory::Trajectory;
use crate::world::World;
use pool::{Job, Phase, Pool, Scratch};
use shared::frames::{PayloadSink, SinkFull, POINT_RECORD_SIZE};
use shared::{CalibEpoch, TimestampNs};
use std::sync::Arc;
use sweep::Sweep;
use zerocopy::IntoBytes;

/// Points per sink push, at most.
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

/// Renders lidar sweeps of one scenario. Keep one per lidar thread.
///
/// A sweep is rendered on several threads ([`LidarRenderer::set_threads`]; the machine's
/// parallelism by default): persistent workers started with the renderer and the calling
/// thread, each claiming blocks of firings as it gets to them. The bytes do not depend on
/// the number of threads.
#[derive(Debug)]
pub struct LidarRenderer {
    world: Arc<World>,
    trajectory: Arc<Trajectory>,
    epochs: Arc<[EpochRig]>,
    config: LidarConfig,
    seed: u64,
    /// (sin, cos) of each beam's elevation.
    beams: Arc<[(f64, f64)]>,
    /// (sin, cos) of each firing's azimuth.
    azimuths: Arc<[(f64, f64)]>,
    /// The calling thread's scratch.
    scratch: Scratch,
    pool: Pool,
    /// The last sweep's job, whose buffers the next sweep reuses.
    last: Option<Arc<Job>>,
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
        let world = Arc::clone(scenario.world());
        Self {
            trajectory: Arc::clone(scenario.trajectory()),
            epochs: Arc::clone(scenario.epochs()),
            config,
            seed: scenario.seed(),
            beams,
            azimuths,
            scratch: Scratch::new(&world),
            pool: Pool::new(threads - 1, &world),
            last: None,
            world,
        }
    }

    /// Renders each sweep on `threads` threads (at least one; the calling thread is one of
    /// them). The workers are started here, once, and wait between sweeps. The sweep's bytes
    /// are the same for any number.
    pub fn set_threads(&mut self, threads: usize) {
        self.pool = Pool::new(threads.clamp(1, MAX_THREADS) - 1, &self.world);
    }

    /// Threads each sweep is rendered on.
    #[must_use]
    pub fn threads(&self) -> usize {
        self.pool.workers() + 1
    }

    /// The largest payload a sweep can have (every ray returning), bytes.
    #[must_use]
    pub fn max_payload_len(&self) -> usize {
        self.beams.len() * self.azimuths.len() * POINT_RECORD_SIZE
    }

    /// A job for the sweep at `t_s` with `mount`, on the last sweep's buffers if nobody holds
    /// them any more.
    fn job(&mut self, mount: nalgebra::Isometry3<f64>, t_s: f64) -> Arc<Job> {
        let sweep = Sweep {
            world: Arc::clone(&self.world),
            trajectory: Arc::clone(&self.trajectory),
            mount,
            t_s,
            scanning: self.config.scanning,
            sweep_s: 1.0 / self.config.rate_hz,
            beams: Arc::clone(&self.beams),
            azimuths: Arc::clone(&self.azimuths),
            max_range: self.config.max_range_m,
            sigma: self.config.range_noise_m,
        };
        let (blocks, uniforms) = match self.last.take().map(Arc::try_unwrap) {
            Some(Ok(job)) => job.into_parts(),
            _ => (Vec::new(), Vec::new()),
        };
        Arc::new(Job::new(sweep, blocks, uniforms))
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
        let job = self.job(er.rig.lidar_to_vehicle(), t.0 as f64 * 1e-9);
        // The noise stream's uniforms, drawn on the calling thread while the workers cast: as
        // many as every ray hitting would take (the hits' are the first ones; the rest go
        // unused, as a generator dropped after the sweep would never have drawn them).
        let mut noise =
            (job.sweep.sigma > 0.0).then(|| Rng::new(mix(&[self.seed, 0x6c_6964_6172, frame_index])));
        let rays = self.beams.len() * self.azimuths.len();
        self.pool.run(&job, Phase::Cast, &mut self.scratch, || {
            if let Some(mut rng) = noise.take() {
                let mut uniforms = job.uniforms.write().unwrap_or_else(std::sync::PoisonError::into_inner);
                rng.uniforms_for_normals(rays, &mut uniforms);
            }
        });
        // Each block's place in the noise stream: one normal per hit, in firing order.
        let mut hits = 0;
        for b in 0..job.blocks.len() {
            let mut block = job.block(b);
            block.first_normal = hits;
            hits += block.hits;
        }
        let (mut pushed, mut points) = (0, Ok(0));
        self.pool
            .run(&job, Phase::Emit, &mut self.scratch, || push_ready(&job, &mut pushed, sink, &mut points));
        self.last = Some(job);
        let points = points?;
        Ok(LidarSweep { epoch: er.epoch, points, bytes: points * POINT_RECORD_SIZE })
    }
}

/// Pushes the points of the blocks from `*next` on that are written, in order, to `sink`,
/// counting them in `points` (or keeping the sink's error there, and pushing no more).
fn push_ready<S: PayloadSink + ?Sized>(
    job: &Job,
    next: &mut usize,
    sink: &mut S,
    points: &mut Result<usize, SinkFull>,
) {
    while *next < job.blocks.len() && job.is_done(Phase::Emit, *next) {
        let block = job.block(*next);
        *next += 1;
        for piece in block.points.chunks(CHUNK_POINTS) {
            let Ok(n) = points else { return };
            match sink.push(piece.as_bytes()) {
                Ok(()) => *n += piece.len(),
                Err(e) => *points = Err(e),
            }
        }
    }
}
