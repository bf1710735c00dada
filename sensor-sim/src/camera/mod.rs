//! The camera renderer: a pinhole with plumb-bob distortion, rasterised straight into the
//! frame's payload.
//!
//! # How a frame is made
//!
//! The image is the RAW, distorted image a real lens would produce. For each output pixel the
//! renderer needs the ray through its centre, that is the pixel undistorted. That depends only
//! on the intrinsics, so a [`RayTable`] is computed once per distinct intrinsics (at
//! construction, for every epoch of the scenario) and reused.
//!
//! Per frame:
//! 1. **Visibility.** The world's planar faces (boxes; cylinders as 16-sided prisms) that face
//!    the camera and survive frustum culling are clipped at the near plane and projected with
//!    the UNDISTORTED pinhole onto a scratch grid laid over the undistorted image plane (it
//!    covers the undistorted footprint of the output image, so it is a little bigger than the
//!    image under barrel distortion), once per frame.
//! 2. **Bands** (see `bands`). The output is drawn in bands of rows, on both cores by
//!    default ([`CameraRenderer::set_threads`]). A band scan-converts the projected faces
//!    into a face-id + inverse-depth scratch covering only the scratch rows it samples (so it
//!    stays in cache); inverse depth is affine in screen space for a plane, so the inner loop
//!    is a compare-and-select. Then each pixel: the ray table gives the scratch sample
//!    (nearest sample: the label is exact to half a pixel); a face gives its baked Lambert
//!    colour (hazed by its primitive's distance) and instance id; no face means ground
//!    (analytic plane z = 0: road, lane marks, sidewalk slabs, grass checker, hazed with
//!    distance) if the ray points down, otherwise a sky gradient. Bands are written into the
//!    sink with [`PayloadSink::write_at`]: the frame itself is never assembled elsewhere.
//!    The bytes do not depend on the number of threads. A band's passes run compiled for
//!    AVX-512 or AVX2 where the CPU has it ([`shared::simd::vectorised`]), with the same
//!    bytes.
//!
//! Payload: [`ImageHeader`] | rgb8 plane | u16 little-endian instance-id plane (sky 0,
//! ground 1, objects ≥ 2).

use crate::scenario::{epoch_rig_at, EpochRig, Scenario};
use crate::trajectory::Trajectory;
use crate::world::{ffloor, World, GROUND_MATERIALS, SKY_ID};
use bands::{Bands, Poly, Scene};
use nalgebra::{Matrix3, Point3, Vector3};
use shared::frames::{ImageHeader, PayloadSink, SinkFull, IMAGE_HEADER_SIZE};
use shared::{CalibEpoch, TimestampNs};
use std::sync::Arc;
use zerocopy::IntoBytes;

mod bands;
mod pool;
mod shade;

/// Per-intrinsics lookup from output pixels to the undistorted scratch grid.
#[derive(Clone, Debug)]
pub struct RayTable {
    intrinsics: calib::CameraIntrinsics,
    /// Scratch grid size.
    gw: usize,
    gh: usize,
    /// Scratch grid pinhole: u_s = fx·x + cxs, v_s = fy·y + cys (x, y normalised).
    fx: f64,
    fy: f64,
    cxs: f64,
    cys: f64,
    /// Per output pixel: scratch sample (column, row).
    map: Vec<[u16; 2]>,
    /// Normalised x of each scratch column's centre, y of each scratch row's centre.
    xs: Vec<f32>,
    ys: Vec<f32>,
    /// Scratch rows `[first, end)` each band of output rows samples.
    bands: Vec<(u32, u32)>,
}

impl RayTable {
    /// Builds the table for `k` (width and height from `k`).
    ///
    /// # Panics
    /// If the distortion cannot be inverted over the image (the scenario validates this).
    #[must_use]
    pub fn new(k: &calib::CameraIntrinsics) -> Self {
        let (w, h) = (k.width as usize, k.height as usize);
        let d = k.distortion;
        let mut und = Vec::with_capacity(w * h);
        let (mut umin, mut umax, mut vmin, mut vmax) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        let mut row_start = None;
        for j in 0..h {
            let mut guess = row_start;
            for i in 0..w {
                let xd = (i as f64 + 0.5 - k.cx) / k.fx;
                let yd = (j as f64 + 0.5 - k.cy) / k.fy;
                // The table needs a small fraction of a pixel: 1e-9 of the focal length.
                let (x, y) = d
                    .undistort_from(xd, yd, guess.unwrap_or((xd, yd)), 1e-9)
                    .or_else(|| d.undistort(xd, yd))
                    .expect("distortion invertible over the image");
                guess = Some((x, y));
                if i == 0 {
                    row_start = Some((x, y));
                }
                let (u, v) = (k.fx * x + k.cx, k.fy * y + k.cy);
                umin = umin.min(u);
                umax = umax.max(u);
                vmin = vmin.min(v);
                vmax = vmax.max(v);
                und.push((u, v));
            }
        }
        let gx0 = umin.floor() - 1.0;
        let gy0 = vmin.floor() - 1.0;
        let gw = (umax.ceil() - gx0 + 2.0) as usize;
        let gh = (vmax.ceil() - gy0 + 2.0) as usize;
        assert!(gw < 65536 && gh < 65536, "distortion spreads the image too far");
        let map: Vec<[u16; 2]> = und
            .iter()
            .map(|&(u, v)| {
                // u - gx0, v - gy0 ≥ 1 and small: `ffloor` is `floor` without a libm call.
                let gx = (ffloor(u - gx0) as usize).min(gw - 1);
                let gy = (ffloor(v - gy0) as usize).min(gh - 1);
                [gx as u16, gy as u16]
            })
            .collect();
        let cxs = k.cx - gx0;
        let cys = k.cy - gy0;
        let xs = (0..gw).map(|g| ((g as f64 + 0.5 - cxs) / k.fx) as f32).collect();
        let ys = (0..gh).map(|g| ((g as f64 + 0.5 - cys) / k.fy) as f32).collect();
        let bands = bands::band_rows(&map, w);
        Self { intrinsics: *k, gw, gh, fx: k.fx, fy: k.fy, cxs, cys, map, xs, ys, bands }
    }

    /// The intrinsics this table was built for.
    #[must_use]
    pub fn intrinsics(&self) -> &calib::CameraIntrinsics {
        &self.intrinsics
    }

    /// Scratch grid size (columns, rows).
    #[must_use]
    pub fn scratch_size(&self) -> (usize, usize) {
        (self.gw, self.gh)
    }
}

/// Options for [`CameraRenderer::with_options`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CameraOptions {
    /// Render with the lens distortion (the raw image). `false` renders a rectified image
    /// with the same focal lengths and principal point (as KITTI stores), used by export.
    pub distortion: bool,
}

impl Default for CameraOptions {
    fn default() -> Self {
        Self { distortion: true }
    }
}

/// What a rendered camera frame was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CameraFrame {
    /// The epoch whose rig the image was rendered with (the truth at the capture time).
    pub epoch: CalibEpoch,
    /// Payload bytes written.
    pub bytes: usize,
}

/// The most threads a renderer draws a frame on.
pub const MAX_THREADS: usize = 8;

/// The machine's parallelism, at most [`MAX_THREADS`].
fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).min(MAX_THREADS)
}

/// Near clipping plane, metres.
const NEAR: f64 = 0.05;
/// Faces whose bounding sphere is entirely beyond this are skipped, metres.
const FAR: f64 = 600.0;
/// Depth at which haze reaches half strength, metres.
const HAZE_HALF: f32 = 220.0;
const HAZE: [u32; 3] = [196, 206, 218];
const SKY_HORIZON: [f32; 3] = [205.0, 222.0, 240.0];
const SKY_ZENITH: [f32; 3] = [70.0, 125.0, 210.0];

/// Renders camera frames of one scenario. Holds the ray tables and the scratch buffers; keep
/// one per camera thread.
#[derive(Debug)]
pub struct CameraRenderer {
    world: Arc<World>,
    trajectory: Arc<Trajectory>,
    epochs: Arc<[EpochRig]>,
    width: usize,
    height: usize,
    /// Table for each epoch (shared between epochs with the same intrinsics).
    tables: Vec<Arc<RayTable>>,
    /// Hazed colour and instance of each of the frame's visible faces, in `polys`' order
    /// after a placeholder (index 0: no face): small enough to stay in L1 for the shading.
    face_info: Vec<([u8; 3], u16)>,
    /// The frame's visible faces, projected; their polygons are in `screen`.
    polys: Vec<Poly>,
    screen: Vec<(f64, f64)>,
    clip: Vec<Vector3<f64>>,
    clip_tmp: Vec<Vector3<f64>>,
    bands: Bands,
}

impl CameraRenderer {
    /// A renderer for `scenario`'s camera, with the lens distortion.
    #[must_use]
    pub fn new(scenario: &Scenario) -> Self {
        Self::with_options(scenario, CameraOptions::default())
    }

    /// A renderer with options (see [`CameraOptions`]).
    #[must_use]
    pub fn with_options(scenario: &Scenario, options: CameraOptions) -> Self {
        let cam = scenario.camera();
        let mut tables: Vec<Arc<RayTable>> = Vec::new();
        let mut per_epoch = Vec::new();
        for e in scenario.epochs().iter() {
            let lens = if options.distortion { e.rig.intrinsics } else { e.rig.intrinsics.undistorted() };
            let k = lens.to_calib(cam.width, cam.height);
            let table = match tables.iter().find(|t| t.intrinsics == k) {
                Some(t) => Arc::clone(t),
                None => {
                    let t = Arc::new(RayTable::new(&k));
                    tables.push(Arc::clone(&t));
                    t
                }
            };
            per_epoch.push(table);
        }
        let (w, h) = (cam.width as usize, cam.height as usize);
        scenario.world().build_ground_map();
        Self {
            world: Arc::clone(scenario.world()),
            trajectory: Arc::clone(scenario.trajectory()),
            epochs: Arc::clone(scenario.epochs()),
            width: w,
            height: h,
            tables: per_epoch,
            face_info: Vec::new(),
            polys: Vec::new(),
            screen: Vec::new(),
            clip: Vec::new(),
            clip_tmp: Vec::new(),
            bands: Bands::new(default_threads()),
        }
    }

    /// Draws each frame on `threads` threads (at least one; the calling thread is one of
    /// them). The default is the machine's parallelism, at most [`MAX_THREADS`]. The other
    /// threads are started here, once, and wait between frames (no thread is spawned per
    /// frame). The frame's bytes are the same for any number.
    pub fn set_threads(&mut self, threads: usize) {
        self.bands = Bands::new(threads.clamp(1, MAX_THREADS));
    }

    /// Threads each frame is drawn on.
    #[must_use]
    pub fn threads(&self) -> usize {
        self.bands.threads()
    }

    /// The payload's header.
    #[must_use]
    pub fn header(&self) -> ImageHeader {
        ImageHeader::rgb8_labelled(self.width as u32, self.height as u32)
    }

    /// Bytes of every frame's payload.
    #[must_use]
    pub fn payload_len(&self) -> usize {
        self.header().payload_len()
    }

    /// Renders the frame captured at scenario time `t` into `sink`, which should be empty: the
    /// payload is written at offsets 0..[`CameraRenderer::payload_len`].
    ///
    /// # Errors
    /// [`SinkFull`] if the sink cannot hold the frame (checked before any pixel is drawn).
    pub fn render<S: PayloadSink + ?Sized>(
        &mut self,
        t: TimestampNs,
        sink: &mut S,
    ) -> Result<CameraFrame, SinkFull> {
        let header = self.header();
        let total = header.payload_len();
        // Probe the far end first so a too-small slot fails before any work.
        sink.write_at(total - 1, &[0])?;
        sink.write_at(0, header.as_bytes())?;

        let idx = self.epochs.partition_point(|e| e.valid_from <= t).saturating_sub(1);
        let er = *epoch_rig_at(&self.epochs, t);
        let table = Arc::clone(&self.tables[idx]);
        let world = Arc::clone(&self.world);
        let pose = self.trajectory.pose_at(t.0 as f64 * 1e-9).to_isometry();
        let cam_to_world = pose * er.rig.camera_to_vehicle();
        let world_to_cam = cam_to_world.inverse();
        self.project(&world, &table, &world_to_cam);

        let r_wc: Matrix3<f64> = *cam_to_world.rotation.to_rotation_matrix().matrix();
        let c = cam_to_world.translation.vector;
        let scene = Scene {
            world,
            table,
            polys: std::mem::take(&mut self.polys),
            pts: std::mem::take(&mut self.screen),
            face_info: std::mem::take(&mut self.face_info),
            r: r_wc.map(|v| v as f32),
            centre: (c.x, c.y, c.z as f32),
            planes: (IMAGE_HEADER_SIZE, IMAGE_HEADER_SIZE + self.width * self.height * 3),
        };
        let (scene, drawn) = self.bands.draw(scene, sink);
        (self.polys, self.screen, self.face_info) = (scene.polys, scene.pts, scene.face_info);
        drawn?;
        Ok(CameraFrame { epoch: er.epoch, bytes: total })
    }

    /// Projects the faces visible from `w2c` into `polys` (and their colour into `face_info`).
    fn project(&mut self, world: &World, table: &RayTable, w2c: &nalgebra::Isometry3<f64>) {
        let (gw, gh) = (table.gw, table.gh);
        self.polys.clear();
        self.screen.clear();
        self.face_info.clear();
        self.face_info.push(([0; 3], SKY_ID));
        let r: Matrix3<f64> = *w2c.rotation.to_rotation_matrix().matrix();
        let tr = w2c.translation.vector;
        let cam_centre_w = w2c.inverse().translation.vector;
        // Frustum side planes in normalised coordinates.
        let xmin = (0.0 - table.cxs) / table.fx;
        let xmax = (gw as f64 - table.cxs) / table.fx;
        let ymin = (0.0 - table.cys) / table.fy;
        let ymax = (gh as f64 - table.cys) / table.fy;
        let planes = [
            (Vector3::new(1.0, 0.0, -xmax) / (1.0 + xmax * xmax).sqrt()),
            (Vector3::new(-1.0, 0.0, xmin) / (1.0 + xmin * xmin).sqrt()),
            (Vector3::new(0.0, 1.0, -ymax) / (1.0 + ymax * ymax).sqrt()),
            (Vector3::new(0.0, -1.0, ymin) / (1.0 + ymin * ymin).sqrt()),
        ];
        let faces = world.faces();
        let verts = world.face_vertices();
        'groups: for g in world.face_groups() {
            let c = r * Vector3::from(g.centre) + tr;
            if c.z < -g.radius || c.z - g.radius > FAR {
                continue;
            }
            for p in &planes {
                if p.dot(&c) > g.radius {
                    continue 'groups;
                }
            }
            // Haze per primitive, by the distance of its centre.
            let inv_dist = (1.0 / c.norm().max(1e-3)) as f32;
            for fi in g.first..g.first + g.count {
                let f = &faces[fi as usize];
                let v0 = Vector3::from(verts[f.first as usize]);
                let n = Vector3::from(f.normal);
                if n.dot(&(cam_centre_w - v0)) <= 1e-9 {
                    continue; // back face
                }
                // To camera frame, clip at the near plane.
                self.clip.clear();
                for v in &verts[f.first as usize..(f.first + f.count) as usize] {
                    self.clip.push(r * Vector3::from(*v) + tr);
                }
                if self.clip.iter().all(|v| v.z < NEAR) {
                    continue;
                }
                if self.clip.iter().any(|v| v.z < NEAR) {
                    clip_near(&self.clip, &mut self.clip_tmp);
                    std::mem::swap(&mut self.clip, &mut self.clip_tmp);
                    if self.clip.len() < 3 {
                        continue;
                    }
                }
                let nc = r * n;
                let dc = nc.dot(&self.clip[0]);
                if dc > -1e-12 {
                    continue;
                }
                let first = self.screen.len();
                let (mut vmin, mut vmax) = (f64::MAX, f64::MIN);
                for v in &self.clip {
                    let sv = table.fy * v.y / v.z + table.cys;
                    self.screen.push((table.fx * v.x / v.z + table.cxs, sv));
                    vmin = vmin.min(sv);
                    vmax = vmax.max(sv);
                }
                let y0 = (vmin - 0.5).ceil().max(0.0) as usize;
                let y1 = ((vmax - 0.5).ceil().max(0.0) as usize).min(gh);
                if y0 >= y1 {
                    self.screen.truncate(first);
                    continue;
                }
                let a = nc.x / (table.fx * dc);
                let b = nc.y / (table.fy * dc);
                let cc = (nc.z - nc.x * table.cxs / table.fx - nc.y * table.cys / table.fy) / dc;
                let count = (self.screen.len() - first) as u32;
                let (first, rows) = (first as u32, (y0 as u32, y1 as u32));
                let face = self.face_info.len() as u32;
                self.face_info.push((haze(f.colour, inv_dist), f.instance));
                self.polys.push(Poly { first, count, face, plane: (a, b, cc), rows });
            }
        }
    }
}

/// Blends towards the haze colour with depth z, given 1/z: weight z / (z + HAZE_HALF).
#[inline(always)]
fn haze(c: [u8; 3], inv_z: f32) -> [u8; 3] {
    haze_mix(c, haze_weight(inv_z))
}

/// The haze's weight in 1/256 at depth z, given 1/z (0..=256 for z ≥ 0; meaningless
/// otherwise).
#[inline(always)]
fn haze_weight(inv_z: f32) -> u32 {
    // Fixed point: `w as u32` for w in 0..=256, in float arithmetic and bit moves that
    // vectorise (the saturating conversion does not): w + 2^23 is w rounded to the nearest
    // integer (exact here), less one where that rounded up.
    const MAGIC: f32 = 8_388_608.0; // 2^23
    let w = 256.0 / (1.0 + HAZE_HALF * inv_z);
    let r = w + MAGIC;
    (r.to_bits() & 0x7f_ffff).wrapping_sub(u32::from(r - MAGIC > w))
}

/// Blends towards the haze colour with weight `k` / 256.
#[inline(always)]
const fn haze_mix(c: [u8; 3], k: u32) -> [u8; 3] {
    const fn mix(v: u8, h: u32, k: u32) -> u8 {
        ((v as u32 * (256 - k) + h * k) >> 8) as u8
    }
    [mix(c[0], HAZE[0], k), mix(c[1], HAZE[1], k), mix(c[2], HAZE[2], k)]
}

/// Haze weights a ground pixel can have: 0..=256.
const HAZE_LEVELS: usize = 257;

/// Every ground material's colour at every haze weight: [`haze_mix`] of
/// `GROUND_MATERIALS[m].colour` with weight `k` is entry `m · HAZE_LEVELS + k`. A ground pixel
/// looks its colour up instead of blending it (the same integers, computed at compile time).
static GROUND_HAZE: [[u8; 3]; GROUND_MATERIALS.len() * HAZE_LEVELS] = {
    let mut t = [[0u8; 3]; GROUND_MATERIALS.len() * HAZE_LEVELS];
    let mut i = 0;
    while i < t.len() {
        t[i] = haze_mix(GROUND_MATERIALS[i / HAZE_LEVELS].colour, (i % HAZE_LEVELS) as u32);
        i += 1;
    }
    t
};

/// The hazed colour of ground material `m` (an index into [`GROUND_MATERIALS`]) at haze
/// weight `k` (0..=256: [`haze_weight`] of a positive 1/z): `haze_mix(GROUND_MATERIALS[m].colour, k)`.
#[inline(always)]
fn ground_hazed(m: u8, k: u32) -> [u8; 3] {
    GROUND_HAZE[usize::from(m) * HAZE_LEVELS + k as usize]
}

#[inline(always)]
fn sky(elev: f32) -> [u8; 3] {
    let k = (elev * 2.5).clamp(0.0, 1.0);
    let mix = |a: f32, b: f32| (a + (b - a) * k) as u8;
    [
        mix(SKY_HORIZON[0], SKY_ZENITH[0]),
        mix(SKY_HORIZON[1], SKY_ZENITH[1]),
        mix(SKY_HORIZON[2], SKY_ZENITH[2]),
    ]
}

/// Sutherland–Hodgman against z ≥ NEAR.
fn clip_near(input: &[Vector3<f64>], out: &mut Vec<Vector3<f64>>) {
    out.clear();
    let n = input.len();
    for k in 0..n {
        let a = input[k];
        let b = input[(k + 1) % n];
        let (ina, inb) = (a.z >= NEAR, b.z >= NEAR);
        if ina {
            out.push(a);
        }
        if ina != inb {
            let s = (NEAR - a.z) / (b.z - a.z);
            out.push(a + (b - a) * s);
        }
    }
}

/// Projects a world point into the output image of `scenario`'s camera at time `t` (with
/// the epoch's distortion): (u, v, depth). A convenience for tests and tools.
#[must_use]
pub fn project_world_point(scenario: &Scenario, t: TimestampNs, p: Point3<f64>) -> Option<calib::PixelHit> {
    let er = scenario.epoch_rig_at(t);
    let cam = scenario.camera();
    let k = er.rig.intrinsics.to_calib(cam.width, cam.height);
    let c2w = scenario.vehicle_to_world_at(t) * er.rig.camera_to_vehicle();
    calib::project_camera_point(&calib::Projection::Pinhole(k), c2w.inverse() * p)
}
