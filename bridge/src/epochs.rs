//! Calibration epochs on the wire: one sample per epoch on `.../calib/<epoch>`, its payload
//! the calibration wire format's update message (`calib::wire`), decoded and checked on
//! receipt like any message from the socket, and the key's epoch checked against the body's.

use calib::CalibrationSet;
use shared::{CalibEpoch, TimestampNs};

use crate::Keys;

/// The payload of an epoch's sample.
#[must_use]
pub fn encode(set: &CalibrationSet) -> Vec<u8> {
    calib::wire::encode_update(set).to_vec()
}

/// Decodes and checks an epoch received on `key`.
///
/// # Errors
/// One line: not a calibration key of this run, a bad body, or a body whose epoch is not the
/// key's.
pub fn decode(keys: &Keys, key: &str, bytes: &[u8]) -> Result<CalibrationSet, String> {
    let epoch = keys.epoch_of(key).ok_or_else(|| format!("{key}: not a calibration key of this run"))?;
    let set = calib::wire::decode_update(bytes).map_err(|e| format!("{key}: {e}"))?;
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
        let mut bad = bytes;
        let n = bad.len();
        bad[n - 1] ^= 0x40;
        let _ = decode(&keys, &keys.calib(CalibEpoch(2)), &bad);
        assert!(decode(&keys, &keys.calib(CalibEpoch(2)), &bad[..10]).is_err());
    }

    #[test]
    fn announced_follows_the_service_schedule() {
        let epochs = [set(1, 0), set(2, 4000), set(3, 8000)];
        let lead = Duration::from_millis(500);
        let e = |all, now: Option<u64>| announced(&epochs, all, lead, now.map(|ms| TimestampNs(ms * 1_000_000)));
        assert_eq!(e(true, None), [CalibEpoch(1), CalibEpoch(2), CalibEpoch(3)]);
        assert_eq!(e(false, None), [CalibEpoch(1)]);
        assert_eq!(e(false, Some(3499)), [CalibEpoch(1)]);
        assert_eq!(e(false, Some(3500)), [CalibEpoch(1), CalibEpoch(2)]);
    }
}
