//! The geometry of a run's segments, in one place: the roles create them with it and the
//! supervisor adds them up to check, before anything starts, that the shm root has room.

use shared::frames::{FUSED_HEADER_SIZE, FUSED_POINT_SIZE, POINT_RECORD_SIZE};
use shared::segment::SegmentSpec;
use shared::StreamKind;

/// Slots of a producer's ring (camera, lidar): enough for fusion to wait for a partner frame
/// of the other stream without being lapped.
pub const PRODUCER_SLOTS: u32 = 8;
/// Slots of the fused ring.
pub const FUSED_SLOTS: u32 = 8;

/// Slots of the CAN ring: a second of a busy bus's frames, so fusion's reader may lag.
pub const CAN_SLOTS: u32 = 4096;

/// A sensor's segment file in the run directory, `<name>.seg` (`camera.seg` and `lidar.seg`
/// for a one-camera rig, as ever).
#[must_use]
pub fn sensor_file(name: &calib::SensorName) -> String {
    format!("{name}.seg")
}

/// The ring of frames delivered by the vehicle bus, one record per slot.
#[must_use]
pub fn can() -> SegmentSpec {
    SegmentSpec::new(StreamKind::Can, CAN_SLOTS, can::record::RECORD_SIZE as u64)
}

/// A producer's ring for frames of at most `capacity` payload bytes.
#[must_use]
pub fn producer(kind: StreamKind, capacity: usize) -> SegmentSpec {
    SegmentSpec::new(kind, PRODUCER_SLOTS, capacity.max(64) as u64)
}

/// The fused ring for a lidar ring whose slots hold `lidar_capacity` bytes: a fused frame
/// holds at most every point of one sweep.
#[must_use]
pub fn fused(lidar_capacity: usize) -> SegmentSpec {
    let max_points = lidar_capacity / POINT_RECORD_SIZE;
    SegmentSpec::new(
        StreamKind::Fused,
        FUSED_SLOTS,
        (FUSED_HEADER_SIZE + max_points * FUSED_POINT_SIZE) as u64,
    )
}

/// Bytes of shared memory a run with these producer capacities needs: camera, lidar, fused
/// and the calibration table. `None` when a geometry is out of range (the roles would refuse
/// it too).
#[must_use]
pub fn run_bytes(camera_capacity: usize, lidar_capacity: usize) -> Option<u64> {
    rig_bytes(&[camera_capacity], &[lidar_capacity])
}

/// [`run_bytes`] for a rig: every camera's and lidar's ring, the fused ring (sized by the
/// largest lidar) and the calibration table.
#[must_use]
pub fn rig_bytes(cameras: &[usize], lidars: &[usize]) -> Option<u64> {
    let largest = lidars.iter().copied().max().unwrap_or(0);
    let specs = cameras
        .iter()
        .map(|&c| producer(StreamKind::Camera, c))
        .chain(lidars.iter().map(|&l| producer(StreamKind::Lidar, l)))
        .chain([fused(largest.max(64)), calib::table::table_spec()]);
    specs.map(|s| s.file_size().ok()).try_fold(0u64, |sum, b| b.and_then(|b| sum.checked_add(b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_drive_needs_a_few_hundred_mib() {
        // 1280×720 rgb8 + labels, 64×1024 lidar.
        let camera = 1280 * 720 * 5 + 64;
        let lidar = 64 * 1024 * POINT_RECORD_SIZE;
        let mib = run_bytes(camera, lidar).unwrap() >> 20;
        assert!((40..400).contains(&mib), "{mib} MiB");
        assert!(run_bytes(usize::MAX / 2, lidar).is_none());
    }
}
