//! The surround mosaic writer: every camera's overlay of one round (the N-th overlay of each
//! (lidar, camera) lane, N = the overlay cadence) composed into one image
//! ([`super::compose_mosaic`]) and written beside the overlays, so a rig of several cameras
//! gets one mosaic every `overlay_every` pairs.
//!
//! Each lane's overlay writer hands its drawn overlays over through an [`OverlayTap`]; the
//! mosaic thread gathers them by pair index and writes a round as soon as every camera's
//! overlay of it is in. Rounds a camera never reaches (it fused fewer pairs) are written at
//! the end, or when more than [`MosaicWriter::PENDING`] rounds wait, with that camera's cell
//! blank: memory stays bounded and no round is lost.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};
use image::RgbImage;

use super::{compose_mosaic, write_png, MosaicLayout, MosaicTile};

/// One drawn overlay, handed to the mosaic writer.
#[derive(Debug)]
pub struct RenderedOverlay {
    /// The camera's position in the mosaic writer's list.
    pub source: usize,
    /// Index of the pair in its lane (the overlay's file name has it too).
    pub pair_index: u64,
    /// The overlay.
    pub image: RgbImage,
}

/// Where an overlay writer sends what it drew, for the mosaic.
#[derive(Clone, Debug)]
pub struct OverlayTap {
    tx: Sender<RenderedOverlay>,
    source: usize,
}

impl PartialEq for OverlayTap {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source && self.tx.same_channel(&other.tx)
    }
}

impl OverlayTap {
    /// Hands `image`, the overlay of pair `pair_index`, to the mosaic writer (waits while
    /// its short queue is full; nothing if it is gone).
    pub fn send(&self, pair_index: u64, image: RgbImage) {
        let _ = self.tx.send(RenderedOverlay { source: self.source, pair_index, image });
    }
}

/// One mosaic file per round, on its own thread.
#[derive(Debug)]
pub struct MosaicWriter {
    done: Option<Sender<()>>,
    thread: Option<JoinHandle<u64>>,
}

/// What the mosaic thread needs.
struct Gather {
    dir: PathBuf,
    prefix: String,
    cameras: Vec<(String, f64)>,
    layout: MosaicLayout,
    written: u64,
}

impl MosaicWriter {
    /// Rounds held waiting for a camera before the oldest is written without it.
    pub const PENDING: usize = 4;

    /// Starts the writer of `dir/<prefix><pair index, 6 digits>.png` for `cameras` (name,
    /// yaw in the vehicle frame, radians); returns it and one tap per camera, in order.
    ///
    /// # Errors
    /// If the directory cannot be created or the thread cannot start.
    pub fn spawn(
        dir: &Path,
        prefix: &str,
        cameras: Vec<(String, f64)>,
    ) -> io::Result<(Self, Vec<OverlayTap>)> {
        std::fs::create_dir_all(dir)?;
        let (tx, rx) = crossbeam_channel::bounded(2 * cameras.len().max(1));
        let taps = (0..cameras.len()).map(|source| OverlayTap { tx: tx.clone(), source }).collect();
        let (done, done_rx) = crossbeam_channel::bounded::<()>(0);
        let gather = Gather {
            dir: dir.to_path_buf(),
            prefix: prefix.to_string(),
            cameras,
            layout: MosaicLayout::default(),
            written: 0,
        };
        let thread = std::thread::Builder::new()
            .name("fusion-mosaic".into())
            .spawn(move || gather.run(&rx, &done_rx))?;
        Ok((Self { done: Some(done), thread: Some(thread) }, taps))
    }

    /// Writes what is still waiting and ends the thread; mosaics written. Call once every
    /// overlay writer is finished (their last overlays are then queued).
    #[must_use]
    pub fn finish(mut self) -> u64 {
        self.stop()
    }

    fn stop(&mut self) -> u64 {
        self.done = None;
        self.thread.take().and_then(|t| t.join().ok()).unwrap_or(0)
    }
}

impl Drop for MosaicWriter {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

impl Gather {
    /// Gathers rounds until every tap is gone or `done` is dropped, then writes the rest.
    fn run(mut self, rx: &Receiver<RenderedOverlay>, done: &Receiver<()>) -> u64 {
        let mut pending: BTreeMap<u64, Vec<Option<RgbImage>>> = BTreeMap::new();
        let n = self.cameras.len();
        let take = |o: RenderedOverlay, pending: &mut BTreeMap<_, Vec<Option<RgbImage>>>| {
            let round = pending.entry(o.pair_index).or_insert_with(|| vec![None; n]);
            if let Some(cell) = round.get_mut(o.source) {
                *cell = Some(o.image);
            }
        };
        loop {
            crossbeam_channel::select! {
                recv(rx) -> o => match o {
                    Ok(o) => take(o, &mut pending),
                    Err(_) => break,
                },
                recv(done) -> _ => {
                    for o in rx.try_iter() {
                        take(o, &mut pending);
                    }
                    break;
                }
            }
            let full: Vec<u64> =
                pending.iter().filter(|(_, r)| r.iter().all(Option::is_some)).map(|(&i, _)| i).collect();
            for i in full {
                if let Some(round) = pending.remove(&i) {
                    self.write(i, &round);
                }
            }
            while pending.len() > MosaicWriter::PENDING {
                if let Some((i, round)) = pending.pop_first() {
                    self.write(i, &round);
                }
            }
        }
        for (i, round) in std::mem::take(&mut pending) {
            self.write(i, &round);
        }
        self.written
    }

    fn write(&mut self, pair_index: u64, round: &[Option<RgbImage>]) {
        let blank = RgbImage::new(0, 0);
        let tiles: Vec<MosaicTile<'_>> = self
            .cameras
            .iter()
            .zip(round)
            .map(|((name, yaw), image)| MosaicTile {
                name,
                yaw: *yaw,
                image: image.as_ref().unwrap_or(&blank),
            })
            .collect();
        let Some(mosaic) = compose_mosaic(&tiles, &self.layout) else { return };
        let path = self.dir.join(format!("{}{pair_index:06}.png", self.prefix));
        match write_png(&path, &mosaic) {
            Ok(()) => self.written += 1,
            Err(e) => eprintln!("fusion: {}: {e}; mosaic not written", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    /// Every complete round is one mosaic; a round a camera never reached is written at the
    /// end with its cell blank; an unknown source is ignored.
    #[test]
    fn one_mosaic_per_round_of_overlays() {
        let dir = tempfile::tempdir().unwrap();
        let cams = vec![("front".to_string(), 0.0), ("rear".to_string(), std::f64::consts::PI)];
        let (w, taps) = MosaicWriter::spawn(dir.path(), "mosaic_", cams).unwrap();
        let img = |rgb| RgbImage::from_pixel(32, 18, Rgb(rgb));
        for pair in [0, 10, 20] {
            taps[0].send(pair, img([200, 0, 0]));
        }
        for pair in [0, 10] {
            taps[1].send(pair, img([0, 0, 200]));
        }
        drop(taps);
        assert_eq!(w.finish(), 3);
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["mosaic_000000.png", "mosaic_000010.png", "mosaic_000020.png"]);
        let m = image::open(dir.path().join("mosaic_000000.png")).unwrap().to_rgb8();
        let l = MosaicLayout::default();
        assert_eq!(m.width(), super::super::MOSAIC_SEPARATOR * 3 + 2 * l.cell_width);
    }
}
