//! Calibration epochs on the wire: one sample per epoch on `.../calib/<epoch>`, its payload
//! the calibration wire format's update message (`calib::wire`), decoded and checked on
//! receipt like any message from the socket, and the key's epoch checked against the body's.
//!
//! The update message carries rotations as matrices, and matrix → quaternion → matrix is
//! not bit for bit the identity: a set that crossed it twice more than the publisher's did
//! would project a last bit differently. So the two rotations follow the message as their
//! quaternions `(w, x, y, z)`, 8 × f64 little endian, and a receiver takes them (after
//! checking them against the message's matrices): the remote starts from the very set the
//! publisher started from, and its fusion's results are the publisher's, bit for bit.

use calib::CalibrationSet;
use nalgebra::{Quaternion, UnitQuaternion};
use shared::{CalibEpoch, TimestampNs};

use crate::Keys;

/// Bytes of one exact rotation after the update message.
const QUAT_LEN: usize = 4 * 8;

/// Largest angle (rad) between a quaternion and the message's matrix it may stand for.
const QUAT_AGREEMENT: f64 = 1e-9;

/// The payload of an epoch's sample: the update message, then each camera's rotation and
/// each lidar's, in the message's order.
#[must_use]
pub fn encode(set: &CalibrationSet) -> Vec<u8> {
    let mut v = calib::wire::encode_update(set);
    let mounts = set.cameras.iter().map(|c| c.to_vehicle).chain(set.lidars.iter().map(|l| l.to_vehicle));
    for q in mounts.map(|m| m.rotation) {
        for c in [q.w, q.i, q.j, q.k] {
            v.extend_from_slice(&c.to_le_bytes());
        }
    }
    v
}

/// The exact rotation that follows the message, checked: finite, unit within the wire
/// format's tolerance, and within [`QUAT_AGREEMENT`] of the matrix the message carried.
fn exact(
    field: &str,
    bytes: &[u8],
    from_matrix: &UnitQuaternion<f64>,
) -> Result<UnitQuaternion<f64>, String> {
    let c: Vec<f64> =
        bytes.chunks_exact(8).map(|w| f64::from_le_bytes(w.try_into().unwrap_or_default())).collect();
    let [w, x, y, z] = c[..] else { return Err(format!("{field}: not 4 numbers")) };
    calib::validate::rotation_from_quaternion(field, w, x, y, z).map_err(|e| e.to_string())?;
    // Not renormalised: the publisher's quaternion, bit for bit.
    let q = UnitQuaternion::new_unchecked(Quaternion::new(w, x, y, z));
    if q.angle_to(from_matrix) > QUAT_AGREEMENT {
        return Err(format!("{field}: quaternion disagrees with the message's matrix"));
    }
    Ok(q)
}

/// Decodes and checks an epoch received on `key`.
///
/// # Errors
/// One line: not a calibration key of this run, a bad body, or a body whose epoch is not the
/// key's.
pub fn decode(keys: &Keys, key: &str, bytes: &[u8]) -> Result<CalibrationSet, String> {
    let epoch = keys.epoch_of(key).ok_or_else(|| format!("{key}: not a calibration key of this run"))?;
    // The message's own header says where it ends; the rotations follow it.
    let split = calib::wire::declared_len(bytes).filter(|&n| n <= bytes.len());
    let Some(split) = split else {
        return Err(format!("{key}: {} bytes, shorter than its message", bytes.len()));
    };
    let (message, quats) = bytes.split_at(split);
    let mut set = calib::wire::decode_update(message).map_err(|e| format!("{key}: {e}"))?;
    let expected = split + QUAT_LEN * (set.cameras.len() + set.lidars.len());
    if bytes.len() != expected {
        return Err(format!("{key}: {} bytes (expected {expected})", bytes.len()));
    }
    let cameras = set.cameras.iter_mut().map(|c| (format!("camera {}", c.name), &mut c.to_vehicle));
    let lidars = set.lidars.iter_mut().map(|l| (format!("lidar {}", l.name), &mut l.to_vehicle));
    for ((what, mount), q) in cameras.chain(lidars).zip(quats.chunks_exact(QUAT_LEN)) {
        mount.rotation = exact(&format!("{key}: {what} to_vehicle"), q, &mount.rotation)?;
    }
    if set.epoch != epoch {
        return Err(format!("{key}: carries epoch {}", set.epoch.0));
    }
    Ok(set)
}

/// The epochs a run has announced by pipeline time `now` (`None`: before its start): all of
/// them when the run announces every epoch at start (`all_at_start`: runs at max rate and
/// replays), else those due `lead` before their `valid_from`, as the calibration service
/// does. What a publisher may tell a late joiner before its table shows them.
#[must_use]
pub fn announced(
    epochs: &[CalibrationSet],
    all_at_start: bool,
    lead: std::time::Duration,
    now: Option<TimestampNs>,
) -> Vec<CalibEpoch> {
    let now = now.map_or(0, |t| t.0);
    let lead = u64::try_from(lead.as_nanos()).unwrap_or(u64::MAX);
    epochs
        .iter()
        .filter(|s| all_at_start || s.valid_from.0.saturating_sub(lead) <= now)
        .map(|s| s.epoch)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn set(epoch: u64, valid_from_ms: u64) -> CalibrationSet {
        let mut s = calib::default_rig();
        // An arbitrary rotation: matrix → quaternion is not exact for it.
        s.camera_to_vehicle_mut().rotation *= UnitQuaternion::from_euler_angles(0.01, -0.0261799, 0.3);
        s.epoch = CalibEpoch(epoch);
        s.valid_from = TimestampNs(valid_from_ms * 1_000_000);
        s
    }

    #[test]
    fn an_epoch_comes_back_checked_and_on_its_own_key() {
        let keys = Keys::new("r").unwrap();
        let s = set(2, 0);
        let bytes = encode(&s);
        assert_eq!(decode(&keys, &keys.calib(CalibEpoch(2)), &bytes).unwrap(), s);
        assert!(decode(&keys, &keys.calib(CalibEpoch(3)), &bytes).unwrap_err().contains("carries epoch 2"));
        assert!(decode(&keys, "epochfuse/other/calib/2", &bytes).is_err());
        let key = keys.calib(CalibEpoch(2));
        // Every truncation and every flipped byte is refused or decodes to a checked set.
        for n in 0..bytes.len() {
            assert!(decode(&keys, &key, &bytes[..n]).is_err());
        }
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x40;
            let _ = decode(&keys, &key, &bad);
        }
        // A quaternion that is not the matrix's rotation is refused.
        let mut bad = bytes.clone();
        let n = bad.len();
        bad[n - 8..].copy_from_slice(&0.5f64.to_le_bytes());
        assert!(decode(&keys, &key, &bad).is_err());
    }

    #[test]
    fn announced_follows_the_service_schedule() {
        let epochs = [set(1, 0), set(2, 4000), set(3, 8000)];
        let lead = Duration::from_millis(500);
        let e =
            |all, now: Option<u64>| announced(&epochs, all, lead, now.map(|ms| TimestampNs(ms * 1_000_000)));
        assert_eq!(e(true, None), [CalibEpoch(1), CalibEpoch(2), CalibEpoch(3)]);
        assert_eq!(e(false, None), [CalibEpoch(1)]);
        assert_eq!(e(false, Some(3499)), [CalibEpoch(1)]);
        assert_eq!(e(false, Some(3500)), [CalibEpoch(1), CalibEpoch(2)]);
    }
}
