//! `sim export --format kitti`: renders a scenario's frames with the simulator and writes them
//! with the `logs` crate's [`KittiWriter`] (see it for the layout).
//!
//! Frame `i` is lidar sweep `i`, captured at `i / lidar.rate_hz`; its image is rendered at the
//! same instant, RECTIFIED (the epoch's fx, fy, cx, cy and zero distortion, as KITTI images
//! are rectified), and its calib file is the epoch the sweep was rendered under. A
//! recalibration in the scenario shows as a change in the calib files. A rig of two or more
//! cameras also writes its second camera as `image_3` (P3); KITTI has no place for a third.

use std::path::Path;

use logs::{KittiWriteError, KittiWriter};
use sensor_sim::{CameraOptions, CameraRenderer, LidarRenderer, Scenario};
use shared::frames::{camera_image, lidar_points};

/// Writes `frames` frames of `scenario` into `dir` in the KITTI layout. `dir` is created if
/// missing and must be empty if present. `progress` is called with the number of frames
/// written after each frame. Returns the names of the cameras written (image_2 first).
///
/// # Errors
/// [`KittiWriteError`] naming the path.
pub fn export_kitti(
    scenario: &Scenario,
    frames: usize,
    dir: &Path,
    progress: &mut dyn FnMut(usize),
) -> Result<Vec<String>, KittiWriteError> {
    let mut writer = KittiWriter::create(dir)?;
    let schedule = scenario.calibration_schedule();
    let mut lidar = LidarRenderer::new(scenario);
    // The first two cameras (KITTI's image_2 and image_3), each seen through its own view.
    let rectified = CameraOptions { distortion: false };
    let names: Vec<String> = scenario.cameras().iter().take(2).map(|(n, _)| n.to_string()).collect();
    let mut cameras: Vec<(CameraRenderer, Vec<u8>)> = names
        .iter()
        .filter_map(|name| scenario.for_sensor(name))
        .map(|view| {
            let r = CameraRenderer::with_options(&view, rectified);
            let buf = Vec::with_capacity(r.payload_len());
            (r, buf)
        })
        .collect();
    let mut lidar_buf: Vec<u8> = Vec::with_capacity(lidar.max_payload_len());
    for i in 0..frames {
        let t = scenario.lidar_frame_time(i as u64);
        lidar_buf.clear();
        let sweep = lidar.render(t, i as u64, &mut lidar_buf).expect("a Vec sink never fills");
        for (camera, buf) in &mut cameras {
            buf.clear();
            camera.render(t, buf).expect("a Vec sink never fills");
        }
        let points = lidar_points(&lidar_buf).expect("whole points");
        let images: Vec<_> =
            cameras.iter().map(|(_, buf)| camera_image(buf).expect("own payload parses")).collect();
        let set = &schedule[(sweep.epoch.0 - 1) as usize];
        writer.write_frame(t, points, &images, set)?;
        progress(i + 1);
    }
    writer.finish()?;
    Ok(names)
}
