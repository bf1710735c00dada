//! The surround mosaic of a rig with several cameras: one [`MosaicWriter`] per lidar, fed by
//! the overlay writers of that lidar's (lidar, camera) lanes, writing
//! `overlays/mosaic_<pair index>.png` (`mosaic_<lidar>_<pair index>.png` for a lidar not
//! named `lidar`) at the overlay cadence: one mosaic every `--overlay-every` pairs.

use fusion::{MosaicWriter, OverlayTap};

use crate::error::CliError;
use crate::pipeline::spec::RunSpec;

/// Each lane's tap (by lane index) and the writers, to finish once the engines are done.
#[derive(Debug)]
pub struct Mosaics {
    /// The tap of each lane, in the lanes' order; `None` where no mosaic is drawn.
    pub taps: Vec<Option<OverlayTap>>,
    writers: Vec<MosaicWriter>,
}

impl Mosaics {
    /// The writers for `lanes` (camera, lidar) of `spec`: one per lidar seen by more than one
    /// camera, when overlays are drawn at all.
    ///
    /// # Errors
    /// Exit 3 if the overlay directory cannot be created or a thread cannot start.
    pub fn start(spec: &RunSpec, lanes: &[(String, String)]) -> Result<Self, CliError> {
        let mut out = Self { taps: vec![None; lanes.len()], writers: Vec::new() };
        if spec.overlay_every == 0 {
            return Ok(out);
        }
        let mut lidars: Vec<&str> = lanes.iter().map(|l| l.1.as_str()).collect();
        lidars.dedup();
        let dir = spec.out.join("overlays");
        for lidar in lidars {
            let mine: Vec<usize> = (0..lanes.len()).filter(|&i| lanes[i].1 == lidar).collect();
            if mine.len() < 2 {
                continue;
            }
            let cameras = mine.iter().map(|&i| (lanes[i].0.clone(), yaw(spec, &lanes[i].0))).collect();
            let prefix = if lidar == "lidar" { "mosaic_".to_string() } else { format!("mosaic_{lidar}_") };
            let (writer, taps) = MosaicWriter::spawn(&dir, &prefix, cameras)
                .map_err(|e| CliError::internal(format!("{}: {e}", dir.display())))?;
            for (&i, tap) in mine.iter().zip(taps) {
                out.taps[i] = Some(tap);
            }
            out.writers.push(writer);
        }
        Ok(out)
    }

    /// Writes the rounds still waiting; call after every engine has returned.
    pub fn finish(self) {
        drop(self.taps);
        for w in self.writers {
            let _ = w.finish();
        }
    }
}

/// The camera's viewing direction in the vehicle frame, as a yaw (radians, counter-clockwise
/// from forward), at the run's first epoch; 0 if unknown.
fn yaw(spec: &RunSpec, camera: &str) -> f64 {
    let mount = spec.epochs.first().and_then(|e| e.camera_named(camera));
    mount.map_or(0.0, |c| {
        // The optical axis is the camera frame's z.
        let d = c.to_vehicle.rotation * nalgebra::Vector3::z();
        d.y.atan2(d.x)
    })
}
