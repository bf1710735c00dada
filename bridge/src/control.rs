//! The run's start and end messages on `.../run` (JSON, bounded, checked at the door).
//!
//! The start message tells a remote how to lay out its own run (rates, slot sizes, how long);
//! the end message says how many frames of each stream were published, so a remote counts
//! the trailing ones it never got as lost, and knows it may stop.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Largest run message accepted.
pub const MAX_MESSAGE: usize = 64 * 1024;
/// Largest frame slot a remote will lay out for a publisher (1 GiB).
pub const MAX_CAPACITY: u64 = 1 << 30;

/// What a publishing run tells its remotes before its first frame.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunStart {
    /// The run id of the key prefix.
    pub run_id: String,
    /// `sim` or `replay`.
    pub source: String,
    /// Camera frames per second.
    pub camera_hz: f64,
    /// Lidar sweeps per second.
    pub lidar_hz: f64,
    /// Seconds of data the run produces.
    pub duration_s: f64,
    /// Whether the source runs as fast as its readers keep up.
    pub max_rate: bool,
    /// Largest camera payload (bytes): the remote's slot size.
    pub camera_capacity: u64,
    /// Largest lidar payload (bytes).
    pub lidar_capacity: u64,
    /// Lidar frames the source will write (progress).
    pub expected_lidar_frames: u64,
}

/// What a publishing run tells its remotes after its last frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunEnd {
    /// Camera frames published (the next sequence number after the last).
    pub camera_published: u64,
    /// Lidar frames published.
    pub lidar_published: u64,
    /// The highest camera sequence number published plus one (0: none).
    pub camera_next_seq: u64,
    /// The highest lidar sequence number published plus one (0: none).
    pub lidar_next_seq: u64,
}

/// A message on the run key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RunMessage {
    /// The run starts.
    Start(RunStart),
    /// The run ended.
    End(RunEnd),
}

/// A run message refused at the door.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControlError(pub String);

impl fmt::Display for ControlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "run message: {}", self.0)
    }
}

impl std::error::Error for ControlError {}

impl RunMessage {
    /// The message's bytes.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        // A plain struct of numbers and strings always serialises.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses and checks a received run message.
    ///
    /// # Errors
    /// [`ControlError`] for a message too large, not ours, or with values no run has.
    pub fn decode(bytes: &[u8]) -> Result<Self, ControlError> {
        if bytes.len() > MAX_MESSAGE {
            return Err(ControlError(format!("{} bytes (at most {MAX_MESSAGE})", bytes.len())));
        }
        let msg: Self = serde_json::from_slice(bytes).map_err(|e| ControlError(e.to_string()))?;
        if let Self::Start(s) = &msg {
            s.check()?;
        }
        Ok(msg)
    }
}

impl RunStart {
    fn check(&self) -> Result<(), ControlError> {
        let bad = |field: &str, why: &str| Err(ControlError(format!("{field}: {why}")));
        crate::Keys::new(&self.run_id).map_err(|e| ControlError(format!("run_id: {e}")))?;
        if !matches!(self.source.as_str(), "sim" | "replay") {
            return bad("source", "neither sim nor replay");
        }
        for (field, v) in [("camera_hz", self.camera_hz), ("lidar_hz", self.lidar_hz)] {
            if !(v.is_finite() && v > 0.0 && v <= 10_000.0) {
                return bad(field, "not a rate in (0, 10000] Hz");
            }
        }
        if !(self.duration_s.is_finite() && self.duration_s > 0.0 && self.duration_s <= 86_400.0) {
            return bad("duration_s", "not in (0, 86400] s");
        }
        for (field, v) in [("camera_capacity", self.camera_capacity), ("lidar_capacity", self.lidar_capacity)]
        {
            if v == 0 || v > MAX_CAPACITY {
                return bad(field, "not in 1..=1 GiB");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn start() -> RunStart {
        RunStart {
            run_id: "r1".into(),
            source: "sim".into(),
            camera_hz: 30.0,
            lidar_hz: 10.0,
            duration_s: 8.0,
            max_rate: true,
            camera_capacity: 1 << 20,
            lidar_capacity: 1 << 20,
            expected_lidar_frames: 80,
        }
    }

    #[test]
    fn messages_round_trip() {
        for m in
            [RunMessage::Start(start()), RunMessage::End(RunEnd { camera_published: 3, ..RunEnd::default() })]
        {
            assert_eq!(RunMessage::decode(&m.encode()).unwrap(), m);
        }
    }

    #[test]
    fn bad_messages_are_refused_with_the_field() {
        let mut s = start();
        s.lidar_hz = f64::NAN;
        assert!(RunMessage::decode(&RunMessage::Start(s).encode()).is_err());
        let mut s = start();
        s.lidar_hz = -1.0;
        let e = RunMessage::decode(&RunMessage::Start(s).encode()).unwrap_err();
        assert!(e.0.contains("lidar_hz"), "{e}");
        let mut s = start();
        s.camera_capacity = MAX_CAPACITY + 1;
        assert!(RunMessage::decode(&RunMessage::Start(s).encode())
            .unwrap_err()
            .0
            .contains("camera_capacity"));
        let mut s = start();
        s.run_id = "a/b".into();
        assert!(RunMessage::decode(&RunMessage::Start(s).encode()).unwrap_err().0.contains("run_id"));
        assert!(RunMessage::decode(b"{\"start\":{}}").is_err());
        assert!(RunMessage::decode(&vec![b' '; MAX_MESSAGE + 1]).is_err());
        assert!(RunMessage::decode(b"\xff\x00").is_err());
    }
}
