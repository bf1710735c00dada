//! `sim export --format kitti`: renders a scenario's frames with the simulator and writes them
//! with the `logs` crate's [`KittiWriter`] (see it for the layout).
//!
//! Frame `i` is lidar sweep `i`, captured at `i / lidar.rate_hz`; its image is rendered at the
//! same instant, RECTIFIED (the epoch's fx, fy, cx, cy and zero distortion, as KITTI images
//! are rectified), and its calib file is the epoch the sweep was rendered under. A
//! recalibration in the scenario shows as a change in the calib files.

use std::path::Path;

use logs::{KittiWriteError, KittiWriter};
use sensor_sim::{CameraOptions, CameraRenderer, LidarRenderer, Scenario};
use shared::frames::{camera_image, lidar_points};

/// Writes `frames` frames of `scenario` into `dir` in the KITTI layout. `dir` is created if
/// missing and must be empty if present. `progress` is called with the number of frames
/// written after each frame.
///
/// # Errors
/// [`KittiWriteError`] naming the path.
pub fn export_kitti(
    scenario: &Scenario,
    frames: usize,
    dir: &Path,
    progress: &mut dyn FnMut(usize),
) -> Result<(), KittiWriteError> {
    let mut writer = KittiWriter::create(dir)?;
    let schedule = scenario.calibration_schedule();
    let mut lidar = LidarRenderer::new(scenario);
    let mut camera = CameraRenderer::with_options(scenario, CameraOptions { distortion: false });
    let mut lidar_buf: Vec<u8> = Vec::with_capacity(lidar.max_payload_len());
    let mut cam_buf: Vec<u8> = Vec::with_capacity(camera.payload_len());
    for i in 0..frames {
        let t = scenario.lidar_frame_time(i as u64);
        lidar_buf.clear();
        let sweep = lidar.render(t, i as u64, &mut lidar_buf).expect("a Vec sink never fills");
        cam_buf.clear();
        camera.render(t, &mut cam_buf).expect("a Vec sink never fills");
        let points = lidar_points(&lidar_buf).expect("whole points");
        let image = camera_image(&cam_buf).expect("own payload parses");
        let set = &schedule[(sweep.epoch.0 - 1) as usize];
        writer.write_frame(t, points, &image, set)?;
        progress(i + 1);
    }
    writer.finish()
}
