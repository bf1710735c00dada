//! Where fused frames go: the [`FusedSink`] trait (the fused shared-memory ring in the
//! product, a [`VecSink`] in tests), and PNG overlays of the projected points.

use std::fs::File;
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{ExtendedColorType, ImageEncoder, RgbImage};
use shared::frames::{camera_image, FusedHeader, FusedPoint, FusedView, ImageView, PayloadError};
use zerocopy::IntoBytes;

mod mosaic;
mod surround;
pub use mosaic::{
    compose_mosaic, mosaic_order, MosaicLayout, MosaicTile, MOSAIC_LABEL_HEIGHT, MOSAIC_SEPARATOR,
};
pub use surround::{MosaicWriter, OverlayTap, RenderedOverlay};

/// An error from a sink.
pub type SinkError = Box<dyn std::error::Error + Send + Sync>;

/// Receives each fused frame: its header and its points, in order. The payload on the wire
/// is `header.as_bytes()` followed by `points.as_bytes()` (see [`shared::frames`]).
pub trait FusedSink {
    /// Publishes one fused frame. A failure is counted by the engine, never fatal.
    ///
    /// # Errors
    /// Whatever the sink could not do (a full slot, say).
    fn write(&mut self, header: &FusedHeader, points: &[FusedPoint]) -> Result<(), SinkError>;
}

impl<S: FusedSink + ?Sized> FusedSink for Box<S> {
    fn write(&mut self, header: &FusedHeader, points: &[FusedPoint]) -> Result<(), SinkError> {
        (**self).write(header, points)
    }
}

impl<S: FusedSink + ?Sized> FusedSink for &mut S {
    fn write(&mut self, header: &FusedHeader, points: &[FusedPoint]) -> Result<(), SinkError> {
        (**self).write(header, points)
    }
}

/// Keeps every fused payload as bytes, for tests.
#[derive(Clone, Debug, Default)]
pub struct VecSink {
    /// One payload per fused frame: `FusedHeader | FusedPoint[points]`.
    pub frames: Vec<Vec<u8>>,
}

impl VecSink {
    /// An empty sink.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses frame `i`.
    ///
    /// # Errors
    /// If the stored bytes do not parse (never, for bytes this sink wrote).
    ///
    /// # Panics
    /// If `i` is out of range.
    pub fn frame(&self, i: usize) -> Result<FusedView<'_>, PayloadError> {
        shared::frames::fused_frame(&self.frames[i])
    }
}

impl FusedSink for VecSink {
    fn write(&mut self, header: &FusedHeader, points: &[FusedPoint]) -> Result<(), SinkError> {
        let mut p = Vec::with_capacity(header.as_bytes().len() + points.as_bytes().len());
        p.extend_from_slice(header.as_bytes());
        p.extend_from_slice(points.as_bytes());
        self.frames.push(p);
        Ok(())
    }
}

/// Discards fused frames but counts them (benchmarks).
#[derive(Clone, Copy, Debug, Default)]
pub struct NullSink {
    /// Frames received.
    pub frames: u64,
    /// Points received.
    pub points: u64,
}

impl FusedSink for NullSink {
    fn write(&mut self, _header: &FusedHeader, points: &[FusedPoint]) -> Result<(), SinkError> {
        self.frames += 1;
        self.points += points.len() as u64;
        Ok(())
    }
}

/// The turbo colormap (Mikhailov, Google 2019; polynomial fit): `t` in 0..=1, blue → red.
#[must_use]
pub fn turbo(t: f64) -> [u8; 3] {
    let x = if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) };
    let (x2, x3) = (x * x, x * x * x);
    let (x4, x5) = (x2 * x2, x2 * x3);
    let r = 0.135_721_38 + 4.615_392_60 * x - 42.660_322_58 * x2 + 132.131_082_34 * x3 - 152.942_393_96 * x4
        + 59.286_379_43 * x5;
    let g = 0.091_402_61 + 2.194_188_39 * x + 4.842_966_58 * x2 - 14.185_033_33 * x3
        + 4.277_298_57 * x4
        + 2.829_566_04 * x5;
    let b = 0.106_673_30 + 12.641_946_08 * x - 60.582_048_36 * x2 + 110.362_767_71 * x3 - 89.903_109_12 * x4
        + 27.348_249_73 * x5;
    let q = |c: f64| (c.clamp(0.0, 1.0) * 255.0).round() as u8;
    [q(r), q(g), q(b)]
}

/// How overlays colour depth.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OverlayStyle {
    /// Depth drawn red (and anything nearer), metres (> 0).
    pub near_m: f64,
    /// Depth drawn blue (and anything farther), metres.
    pub far_m: f64,
}

impl Default for OverlayStyle {
    fn default() -> Self {
        Self { near_m: 2.0, far_m: 60.0 }
    }
}

impl OverlayStyle {
    /// The colour of `depth`: near is red, far is blue, along turbo, on a log scale (so the
    /// many near points of a sweep are not all one colour).
    #[must_use]
    pub fn colour(&self, depth: f64) -> [u8; 3] {
        let near = self.near_m.max(1e-3);
        let span = (self.far_m.max(near * 1.001) / near).ln();
        turbo(1.0 - (depth.max(near) / near).ln() / span)
    }
}

/// Draws the camera image with each point as a 2×2 dot coloured by depth, and a text-free
/// colour bar (near at the top, far at the bottom, the same log scale) along the right edge.
///
/// `points` are (u, v, depth); points outside the image are skipped.
#[must_use]
pub fn render_overlay(image: &ImageView<'_>, points: &[[f32; 3]], style: &OverlayStyle) -> RgbImage {
    let (w, h) = (image.header.width, image.header.height);
    let mut img = RgbImage::from_raw(w, h, image.rgb[..image.header.rgb_len()].to_vec())
        .unwrap_or_else(|| RgbImage::new(w, h));
    let mut put = |x: u32, y: u32, c: [u8; 3]| {
        if x < w && y < h {
            img.put_pixel(x, y, image::Rgb(c));
        }
    };
    for &[u, v, d] in points {
        if !(u >= 0.0 && v >= 0.0) {
            continue;
        }
        let (x, y) = (u as u32, v as u32);
        let c = style.colour(f64::from(d));
        put(x, y, c);
        put(x + 1, y, c);
        put(x, y + 1, c);
        put(x + 1, y + 1, c);
    }
    // Colour bar: 10 px wide, 4 px from the right edge, 10 % margins, 1 px black frame.
    if w >= 32 && h >= 32 {
        let (x0, x1) = (w - 15, w - 4);
        let (y0, y1) = (h / 10, h - h / 10);
        for y in y0..=y1 {
            for x in x0..=x1 {
                let frame = x == x0 || x == x1 || y == y0 || y == y1;
                let t = f64::from(y - y0) / f64::from((y1 - y0).max(1));
                put(x, y, if frame { [0, 0, 0] } else { turbo(1.0 - t) });
            }
        }
    }
    img
}

/// Writes `img` as a PNG (fast compression).
///
/// # Errors
/// I/O or encoding errors.
pub fn write_png(path: &Path, img: &RgbImage) -> io::Result<()> {
    let file = BufWriter::new(File::create(path)?);
    PngEncoder::new_with_quality(file, CompressionType::Fast, FilterType::Sub)
        .write_image(img.as_raw(), img.width(), img.height(), ExtendedColorType::Rgb8)
        .map_err(io::Error::other)
}

/// Renders and writes one overlay from a camera payload.
///
/// # Errors
/// An unparsable camera payload, I/O or encoding errors.
pub fn write_overlay(
    path: &Path,
    camera_payload: &[u8],
    points: &[[f32; 3]],
    style: &OverlayStyle,
) -> io::Result<()> {
    draw_and_write(path, camera_payload, points, style).map(drop)
}

/// Renders one overlay from a camera payload and writes it; the drawn image.
fn draw_and_write(
    path: &Path,
    camera_payload: &[u8],
    points: &[[f32; 3]],
    style: &OverlayStyle,
) -> io::Result<RgbImage> {
    let view = camera_image(camera_payload).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    let img = render_overlay(&view, points, style);
    write_png(path, &img)?;
    Ok(img)
}

/// Overlay settings of the engine.
#[derive(Clone, Debug, PartialEq)]
pub struct OverlayConfig {
    /// Output directory (created if missing).
    pub dir: PathBuf,
    /// One overlay every this many fused pairs (the 1st, the N+1st, …). 0 disables.
    pub every: u64,
    /// Depth colouring.
    pub style: OverlayStyle,
    /// Where drawn overlays also go, for the surround mosaic ([`MosaicWriter`]).
    pub tap: Option<OverlayTap>,
}

impl OverlayConfig {
    /// One overlay every `every` pairs into `dir`, default style.
    #[must_use]
    pub fn new(dir: impl Into<PathBuf>, every: u64) -> Self {
        Self { dir: dir.into(), every, style: OverlayStyle::default(), tap: None }
    }

    /// The same, with every drawn overlay also handed to `tap`.
    #[must_use]
    pub fn with_tap(mut self, tap: OverlayTap) -> Self {
        self.tap = Some(tap);
        self
    }
}

/// One overlay to draw.
#[derive(Debug)]
pub struct OverlayJob {
    /// Index of the pair in the run (0-based).
    pub pair_index: u64,
    /// Camera frame sequence number.
    pub camera_seq: u64,
    /// Sweep sequence number.
    pub lidar_seq: u64,
    /// Applied epoch.
    pub epoch: u64,
    /// The camera payload (returned to the recycle channel afterwards).
    pub camera_payload: Vec<u8>,
    /// (u, v, depth) of the in-image points.
    pub points: Vec<[f32; 3]>,
}

impl OverlayJob {
    /// The file name of this overlay.
    #[must_use]
    pub fn file_name(&self) -> String {
        format!("overlay_{:06}_e{}_c{}_l{}.png", self.pair_index, self.epoch, self.camera_seq, self.lidar_seq)
    }
}

/// What an [`OverlayWriter`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OverlayCounts {
    /// PNGs written.
    pub written: u64,
    /// PNGs that failed.
    pub errors: u64,
}

/// Draws overlays on a background thread so PNG encoding never stalls fusion. The queue is
/// bounded (4 jobs): when the writer falls that far behind, [`OverlayWriter::submit`] waits,
/// so every requested overlay is written.
#[derive(Debug)]
pub struct OverlayWriter {
    tx: Option<Sender<OverlayJob>>,
    thread: Option<JoinHandle<OverlayCounts>>,
}

impl OverlayWriter {
    /// Starts the writer thread. Camera payloads go back on `recycle` after drawing; drawn
    /// overlays also go to `tap`, if any.
    ///
    /// # Errors
    /// If the directory cannot be created or the thread cannot start.
    pub fn spawn(
        dir: &Path,
        style: OverlayStyle,
        recycle: Option<Sender<Vec<u8>>>,
        tap: Option<OverlayTap>,
    ) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let (tx, rx) = crossbeam_channel::bounded::<OverlayJob>(4);
        let dir = dir.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("fusion-overlay".into())
            .spawn(move || overlay_loop(&rx, &dir, &style, recycle.as_ref(), tap.as_ref()))?;
        Ok(Self { tx: Some(tx), thread: Some(thread) })
    }

    /// Queues a job (waits if 4 are queued).
    pub fn submit(&self, job: OverlayJob) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(job);
        }
    }

    /// Waits for the queue to drain and the thread to end.
    #[must_use]
    pub fn finish(mut self) -> OverlayCounts {
        self.stop()
    }

    fn stop(&mut self) -> OverlayCounts {
        self.tx = None;
        self.thread.take().and_then(|t| t.join().ok()).unwrap_or_default()
    }
}

impl Drop for OverlayWriter {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

fn overlay_loop(
    rx: &Receiver<OverlayJob>,
    dir: &Path,
    style: &OverlayStyle,
    recycle: Option<&Sender<Vec<u8>>>,
    tap: Option<&OverlayTap>,
) -> OverlayCounts {
    let mut counts = OverlayCounts::default();
    for job in rx {
        let path = dir.join(job.file_name());
        match draw_and_write(&path, &job.camera_payload, &job.points, style) {
            Ok(img) => {
                counts.written += 1;
                if let Some(t) = tap {
                    t.send(job.pair_index, img);
                }
            }
            Err(_) => counts.errors += 1,
        }
        if let Some(r) = recycle {
            let _ = r.try_send(job.camera_payload);
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::frames::ImageHeader;

    #[test]
    fn turbo_ends_and_middle() {
        let lo = turbo(0.0);
        let blue = turbo(0.15);
        let red = turbo(0.9);
        assert!(blue[2] > 200 && blue[0] < 100, "low end is blue: {blue:?}");
        assert!(red[0] > 150 && red[2] < 50, "high end is red: {red:?}");
        let mid = turbo(0.5);
        assert!(mid[1] > 200, "middle is green-ish: {mid:?}");
        assert_eq!(turbo(f64::NAN), turbo(0.0));
        assert_eq!(turbo(-3.0), lo);
    }

    #[test]
    fn overlay_png_round_trip() {
        let (w, h) = (64u32, 48u32);
        let mut payload = ImageHeader { width: w, height: h, format: 1, has_labels: 0 }.as_bytes().to_vec();
        payload.extend(std::iter::repeat_n(128u8, (w * h * 3) as usize));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.png");
        write_overlay(
            &path,
            &payload,
            &[[10.5, 20.2, 2.0], [63.9, 47.9, 100.0], [-1.0, 5.0, 1.0]],
            &OverlayStyle::default(),
        )
        .unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (w, h));
        let near = OverlayStyle::default().colour(2.0);
        assert_eq!(img.get_pixel(10, 20).0, near);
        assert_eq!(img.get_pixel(11, 21).0, near);
        assert_eq!(img.get_pixel(12, 22).0, [128, 128, 128]);
        assert_eq!(img.get_pixel(63 - 15, 47 - 4).0, [128, 128, 128]);
    }

    #[test]
    fn writer_thread_writes_and_recycles() {
        let dir = tempfile::tempdir().unwrap();
        let (rtx, rrx) = crossbeam_channel::unbounded();
        let w =
            OverlayWriter::spawn(&dir.path().join("ov"), OverlayStyle::default(), Some(rtx), None).unwrap();
        let mut payload = ImageHeader { width: 8, height: 8, format: 1, has_labels: 0 }.as_bytes().to_vec();
        payload.extend(std::iter::repeat_n(0u8, 8 * 8 * 3));
        for i in 0..3 {
            w.submit(OverlayJob {
                pair_index: i,
                camera_seq: i,
                lidar_seq: i,
                epoch: 1,
                camera_payload: payload.clone(),
                points: vec![[1.0, 1.0, 5.0]],
            });
        }
        w.submit(OverlayJob {
            pair_index: 3,
            camera_seq: 0,
            lidar_seq: 0,
            epoch: 1,
            camera_payload: vec![1, 2, 3],
            points: vec![],
        });
        assert_eq!(w.finish(), OverlayCounts { written: 3, errors: 1 });
        assert_eq!(rrx.try_iter().count(), 4);
        assert_eq!(std::fs::read_dir(dir.path().join("ov")).unwrap().count(), 3);
    }
}
