//! Numbering the calibration epochs of a log (DESIGN §6, "Epochs in a log").
//!
//! Frames are visited in time order, each with the calibration state it observes. A frame
//! whose state differs from the previous frame's opens a new epoch (numbers 1, 2, 3, ...).
//! States are compared by value, so a `CameraInfo` repeated with every image opens no epoch.
//! A state that comes back after a change (A, B, A) opens a third epoch: epochs only ever
//! increase, and each covers one contiguous span of time.

use calib::{CalibrationSet, CameraMount, LidarMount, Projection};
use nalgebra::Isometry3;
use shared::{CalibEpoch, TimestampNs};

/// Builds the epochs of a log, one frame at a time.
#[derive(Debug, Default)]
pub(crate) struct EpochBuilder {
    sets: Vec<CalibrationSet>,
    last_stamp: Option<TimestampNs>,
}

impl EpochBuilder {
    /// The epoch of a frame at `stamp` (frames must come in time order) that observes a
    /// one-camera rig: `camera`, `camera_to_vehicle` and `lidar_to_vehicle` (see
    /// [`Self::observe_rig`]).
    pub fn observe(
        &mut self,
        stamp: TimestampNs,
        since: Option<TimestampNs>,
        camera: Projection,
        camera_to_vehicle: Isometry3<f64>,
        lidar_to_vehicle: Isometry3<f64>,
    ) -> CalibEpoch {
        let set =
            CalibrationSet::single(CalibEpoch::NONE, stamp, camera, camera_to_vehicle, lidar_to_vehicle);
        self.observe_rig(stamp, since, set.cameras, set.lidars)
    }

    /// The epoch of a frame at `stamp` (frames must come in time order) that observes the
    /// rig state `cameras` and `lidars` (every camera's model and mount, every lidar's mount):
    /// a change of any sensor opens an epoch for the whole rig.
    ///
    /// `since` is when this state took effect (the latest calibration message it is made of,
    /// at or before `stamp`); it becomes the epoch's `valid_from` if the state is new. It is
    /// clamped into (previous frame, `stamp`], so `valid_from` always separates the epochs'
    /// frames. The first epoch is valid from its first frame.
    pub fn observe_rig(
        &mut self,
        stamp: TimestampNs,
        since: Option<TimestampNs>,
        cameras: Vec<CameraMount>,
        lidars: Vec<LidarMount>,
    ) -> CalibEpoch {
        let prev = self.last_stamp.replace(stamp);
        if let Some(last) = self.sets.last() {
            if last.cameras == cameras && last.lidars == lidars {
                return last.epoch;
            }
        }
        let valid_from = match prev {
            None => stamp,
            Some(prev) => {
                let lo = TimestampNs(prev.0.saturating_add(1).min(stamp.0));
                since.unwrap_or(stamp).clamp(lo, stamp)
            }
        };
        let epoch = CalibEpoch(self.sets.len() as u64 + 1);
        self.sets.push(CalibrationSet { epoch, valid_from, cameras, lidars });
        epoch
    }

    /// The epochs, numbered from 1.
    pub fn finish(self) -> Vec<CalibrationSet> {
        self.sets
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use calib::{CameraIntrinsics, Distortion};

    fn cam(fx: f64) -> Projection {
        Projection::Pinhole(CameraIntrinsics {
            fx,
            fy: fx,
            cx: 1.0,
            cy: 1.0,
            width: 2,
            height: 2,
            distortion: Distortion::default(),
        })
    }

    #[test]
    fn numbers_changes_in_order() {
        let mut b = EpochBuilder::default();
        let id = Isometry3::identity();
        let e: Vec<u64> = [(10, 1.0), (20, 1.0), (30, 2.0), (40, 2.0), (50, 1.0)]
            .iter()
            .map(|&(t, fx)| b.observe(TimestampNs(t), Some(TimestampNs(t - 5)), cam(fx), id, id).0)
            .collect();
        assert_eq!(e, [1, 1, 2, 2, 3]);
        let sets = b.finish();
        assert_eq!(sets.iter().map(|s| s.valid_from.0).collect::<Vec<_>>(), [10, 25, 45]);
    }

    #[test]
    fn valid_from_is_clamped_between_frames() {
        let mut b = EpochBuilder::default();
        let id = Isometry3::identity();
        b.observe(TimestampNs(10), None, cam(1.0), id, id);
        b.observe(TimestampNs(20), Some(TimestampNs(3)), cam(2.0), id, id);
        b.observe(TimestampNs(30), Some(TimestampNs(99)), cam(3.0), id, id);
        let v: Vec<u64> = b.finish().iter().map(|s| s.valid_from.0).collect();
        assert_eq!(v, [10, 11, 30]);
    }

    #[test]
    fn a_change_of_any_camera_is_a_new_epoch_for_the_rig() {
        let set = |fx_b: f64| {
            let mut s = CalibrationSet::single(
                CalibEpoch(1),
                TimestampNs(0),
                cam(1.0),
                Isometry3::identity(),
                Isometry3::identity(),
            );
            let mut b = s.cameras[0].clone();
            b.name = calib::SensorName::new("b").unwrap();
            b.projection = cam(fx_b);
            s.cameras.push(b);
            s
        };
        let mut builder = EpochBuilder::default();
        let e: Vec<u64> = [(10, 2.0), (20, 2.0), (30, 3.0)]
            .iter()
            .map(|&(t, fx)| {
                let s = set(fx);
                builder.observe_rig(TimestampNs(t), None, s.cameras, s.lidars).0
            })
            .collect();
        assert_eq!(e, [1, 1, 2]);
        let sets = builder.finish();
        assert_eq!(sets[1].cameras.len(), 2);
        assert_eq!(sets[1].valid_from, TimestampNs(30));
    }
}
