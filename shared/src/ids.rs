//! Newtypes for the numbers that cross process boundaries.
//!
//! Each is a plain `u64` (or `u32`) on the wire and in the segment, but a distinct type in
//! Rust so that a frame sequence number can never be passed where an epoch is expected.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A frame's position in its stream. Starts at a per-segment base and increases by one per
/// committed frame, wrapping at `u64::MAX` (compare with [`FrameSeq::distance_from`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct FrameSeq(pub u64);

impl FrameSeq {
    /// The next sequence number, wrapping.
    #[must_use]
    pub const fn next(self) -> Self {
        Self(self.0.wrapping_add(1))
    }

    /// How many frames `self` is ahead of `earlier`, in wrapping arithmetic.
    #[must_use]
    pub const fn distance_from(self, earlier: Self) -> u64 {
        self.0.wrapping_sub(earlier.0)
    }

    /// `self` moved forward by `n`, wrapping.
    #[must_use]
    pub const fn advance(self, n: u64) -> Self {
        Self(self.0.wrapping_add(n))
    }
}

impl fmt::Debug for FrameSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

impl fmt::Display for FrameSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A calibration epoch. Epochs start at 1 and strictly increase; 0 means "none".
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CalibEpoch(pub u64);

impl CalibEpoch {
    /// No calibration: the value a frame carries before any epoch is known.
    pub const NONE: Self = Self(0);

    /// Whether this is a real epoch (not [`CalibEpoch::NONE`]).
    #[must_use]
    pub const fn is_some(self) -> bool {
        self.0 != 0
    }
}

impl fmt::Debug for CalibEpoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "epoch {}", self.0)
    }
}

impl fmt::Display for CalibEpoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Which life of a segment's writer produced a frame. Starts at 1 and is bumped by every
/// takeover; 0 marks a slot that holds no valid frame (never written, or repaired).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Debug)]
pub struct Incarnation(pub u64);

/// Capture time in nanoseconds on the pipeline's clock (monotonic for live runs, the log's
/// stamps for replays). Serialised as its number of nanoseconds.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TimestampNs(pub u64);

impl TimestampNs {
    /// Absolute difference between two timestamps, in nanoseconds.
    #[must_use]
    pub const fn abs_diff(self, other: Self) -> u64 {
        self.0.abs_diff(other.0)
    }
}

/// What a segment carries: the one sensor/stream type of the workspace. Stored in the segment
/// header as a `u32`; serialised (JSON, RON, command line) by its lower-case [`name`](Self::name).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[repr(u32)]
pub enum StreamKind {
    /// Camera images ([`crate::frames::ImageHeader`] + planes).
    #[serde(alias = "Camera")]
    Camera = 1,
    /// Lidar sweeps ([`crate::frames::PointRecord`] array).
    #[serde(alias = "Lidar")]
    Lidar = 2,
    /// Fused frames ([`crate::frames::FusedHeader`] + [`crate::frames::FusedPoint`] array).
    #[serde(alias = "Fused")]
    Fused = 3,
    /// The calibration table: one encoded calibration set per slot.
    #[serde(rename = "calib", alias = "CalibTable")]
    CalibTable = 4,
    /// Frames delivered by the simulated vehicle bus, one per slot (`can::record`).
    #[serde(alias = "Can")]
    Can = 5,
}

impl StreamKind {
    /// Every kind, in header order.
    pub const ALL: [Self; 5] = [Self::Camera, Self::Lidar, Self::Fused, Self::CalibTable, Self::Can];
    /// The two sensor kinds, the ones a producer writes and fusion pairs.
    pub const SENSORS: [Self; 2] = [Self::Camera, Self::Lidar];

    /// Parses the header's `u32`, if it names a known kind.
    #[must_use]
    pub const fn from_u32(v: u32) -> Option<Self> {
        match v {
            1 => Some(Self::Camera),
            2 => Some(Self::Lidar),
            3 => Some(Self::Fused),
            4 => Some(Self::CalibTable),
            5 => Some(Self::Can),
            _ => None,
        }
    }

    /// The lower-case name used in file names, JSON and messages.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Camera => "camera",
            Self::Lidar => "lidar",
            Self::Fused => "fused",
            Self::CalibTable => "calib",
            Self::Can => "can",
        }
    }

    /// Whether this kind is a sensor (camera or lidar) rather than a derived stream.
    #[must_use]
    pub const fn is_sensor(self) -> bool {
        matches!(self, Self::Camera | Self::Lidar)
    }
}

/// `Display` and `FromStr` by an enum's one lower-case `name()`, over its `ALL` list: the
/// names are spelled once, in `name()`.
macro_rules! named {
    ($t:ty, $what:literal) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }

        impl FromStr for $t {
            type Err = UnknownName;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::ALL
                    .into_iter()
                    .find(|v| v.name().eq_ignore_ascii_case(s))
                    .ok_or_else(|| UnknownName::new($what, s, &Self::ALL.map(Self::name)))
            }
        }
    };
}

named!(StreamKind, "stream");

/// A pipeline role: one OS process of a run, the one name every crate uses for it (the
/// supervisor's process table, faults in scenarios, the calibration wire format's `Hello`,
/// the hidden `role` subcommand).
///
/// The `u32` values are the calibration wire format's (`calib::wire`, `Hello`): 1–4 are
/// fixed by the documented format; later roles take the next numbers.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[repr(u32)]
pub enum Role {
    /// The camera producer.
    #[serde(alias = "Camera")]
    Camera = 1,
    /// The lidar producer.
    #[serde(alias = "Lidar")]
    Lidar = 2,
    /// The fusion process.
    #[serde(alias = "Fusion")]
    Fusion = 3,
    /// A monitor (`epochfuse top`, tests): subscribes to calibration, runs no process of a run.
    #[serde(alias = "Monitor")]
    Monitor = 4,
    /// The calibration service.
    #[serde(alias = "Calib")]
    Calib = 5,
    /// The log replayer (takes the producers' place in `replay`).
    #[serde(alias = "Replayer")]
    Replayer = 6,
    /// The MCAP recorder.
    #[serde(alias = "Recorder")]
    Recorder = 7,
    /// The vehicle: the ego car's ECUs on the simulated CAN bus (drives with a bus).
    #[serde(alias = "Vehicle")]
    Vehicle = 8,
    /// The Zenoh bridge: publishes a run to other hosts (`--zenoh`), or mirrors another
    /// host's run into local rings (`epochfuse remote`, where it takes the producers' place).
    #[serde(alias = "Bridge")]
    Bridge = 9,
}

impl Role {
    /// Every role.
    pub const ALL: [Self; 9] = [
        Self::Camera,
        Self::Lidar,
        Self::Fusion,
        Self::Monitor,
        Self::Calib,
        Self::Replayer,
        Self::Recorder,
        Self::Vehicle,
        Self::Bridge,
    ];

    /// Parses the wire `u32`.
    #[must_use]
    pub const fn from_u32(v: u32) -> Option<Self> {
        match v {
            1 => Some(Self::Camera),
            2 => Some(Self::Lidar),
            3 => Some(Self::Fusion),
            4 => Some(Self::Monitor),
            5 => Some(Self::Calib),
            6 => Some(Self::Replayer),
            7 => Some(Self::Recorder),
            8 => Some(Self::Vehicle),
            9 => Some(Self::Bridge),
            _ => None,
        }
    }

    /// Lower-case name: command line, run directory, JSON, messages.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Camera => "camera",
            Self::Lidar => "lidar",
            Self::Fusion => "fusion",
            Self::Monitor => "monitor",
            Self::Calib => "calib",
            Self::Replayer => "replayer",
            Self::Recorder => "recorder",
            Self::Vehicle => "vehicle",
            Self::Bridge => "bridge",
        }
    }

    /// The sensor stream this role produces, if it is a producer.
    #[must_use]
    pub const fn produces(self) -> Option<StreamKind> {
        match self {
            Self::Camera => Some(StreamKind::Camera),
            Self::Lidar => Some(StreamKind::Lidar),
            _ => None,
        }
    }

    /// The producer role of a sensor stream.
    #[must_use]
    pub const fn producer_of(kind: StreamKind) -> Option<Self> {
        match kind {
            StreamKind::Camera => Some(Self::Camera),
            StreamKind::Lidar => Some(Self::Lidar),
            _ => None,
        }
    }

    /// Whether the calibration service delivers epochs to this role (so a delivery fault
    /// may name it). The bridge subscribes in `epochfuse remote` only, where it relays the
    /// publishing host's epochs to the local service and learns back what the service took.
    #[must_use]
    pub const fn subscribes_to_calibration(self) -> bool {
        matches!(
            self,
            Self::Camera | Self::Lidar | Self::Fusion | Self::Monitor | Self::Recorder | Self::Bridge
        )
    }
}

named!(Role, "role");

/// A name that is not one of an enum's: `unknown role "x" (camera, lidar, …)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownName(String);

impl UnknownName {
    fn new(what: &str, got: &str, known: &[&str]) -> Self {
        Self(format!("unknown {what} {got:?} ({})", known.join(", ")))
    }
}

impl fmt::Display for UnknownName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UnknownName {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for r in Role::ALL {
            assert_eq!(r.name().parse::<Role>(), Ok(r));
            assert_eq!(Role::from_u32(r as u32), Some(r));
        }
        for k in StreamKind::ALL {
            assert_eq!(k.name().parse::<StreamKind>(), Ok(k));
            assert_eq!(StreamKind::from_u32(k as u32), Some(k));
        }
        assert!("nope".parse::<Role>().unwrap_err().to_string().contains("camera, lidar"));
    }

    #[test]
    fn wire_values_are_the_documented_ones() {
        assert_eq!([Role::Camera, Role::Lidar, Role::Fusion, Role::Monitor].map(|r| r as u32), [1, 2, 3, 4]);
    }
}
