//! Sensor names: how a rig's cameras and lidars are told apart everywhere (segment files
//! `<name>.seg`, producer processes, summary keys). Checked once, at the door.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest sensor name, bytes.
pub const MAX_NAME_LEN: usize = 32;

/// Names a sensor may not take: the run directory's other segments and files, and the
/// roles' log files.
pub const RESERVED_NAMES: [&str; 11] = [
    "calib", "fused", "can", "fusion", "replayer", "recorder", "monitor", "vehicle", "bridge", "pipeline",
    "scenario",
];

/// A validated sensor name: 1..=32 of `[a-z0-9_-]`, not one of [`RESERVED_NAMES`].
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SensorName(String);

/// Why a string is not a [`SensorName`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadName(pub String);

impl fmt::Display for BadName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadName {}

impl SensorName {
    /// The default camera's name, `camera` (a one-camera rig's only camera).
    #[must_use]
    pub fn camera() -> Self {
        Self("camera".into())
    }

    /// The default lidar's name, `lidar`.
    #[must_use]
    pub fn lidar() -> Self {
        Self("lidar".into())
    }

    /// Checks `s`.
    ///
    /// # Errors
    /// [`BadName`] saying what is wrong.
    pub fn new(s: &str) -> Result<Self, BadName> {
        if s.is_empty() || s.len() > MAX_NAME_LEN {
            return Err(BadName(format!("sensor name {s:?} must be 1 to {MAX_NAME_LEN} characters")));
        }
        if !s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-') {
            return Err(BadName(format!("sensor name {s:?} may only hold a-z, 0-9, '_' and '-'")));
        }
        if RESERVED_NAMES.contains(&s) {
            return Err(BadName(format!("sensor name {s:?} is reserved")));
        }
        Ok(Self(s.to_string()))
    }

    /// The name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for SensorName {
    type Error = BadName;

    fn try_from(s: String) -> Result<Self, BadName> {
        Self::new(&s)
    }
}

impl From<SensorName> for String {
    fn from(n: SensorName) -> Self {
        n.0
    }
}

impl std::str::FromStr for SensorName {
    type Err = BadName;

    fn from_str(s: &str) -> Result<Self, BadName> {
        Self::new(s)
    }
}

impl fmt::Display for SensorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SensorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for good in ["camera", "lidar", "front_left", "cam-0", "a", &"x".repeat(32)] {
            assert_eq!(SensorName::new(good).unwrap().as_str(), good);
        }
        for bad in ["", "Front", "cam 0", "cam/0", "..", "calib", "fused", "can", "fusion", &"x".repeat(33)] {
            assert!(SensorName::new(bad).is_err(), "{bad:?}");
        }
        let n: SensorName = serde_json::from_str("\"rear\"").unwrap();
        assert_eq!(serde_json::to_string(&n).unwrap(), "\"rear\"");
        assert!(serde_json::from_str::<SensorName>("\"Rear\"").is_err());
    }
}
