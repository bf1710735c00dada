//! Newtypes for the numbers that cross process boundaries.
//!
//! Each is a plain `u64` (or `u32`) on the wire and in the segment, but a distinct type in
//! Rust so that a frame sequence number can never be passed where an epoch is expected.

use std::fmt;

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
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
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
/// stamps for replays).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Debug)]
pub struct TimestampNs(pub u64);

impl TimestampNs {
    /// Absolute difference between two timestamps, in nanoseconds.
    #[must_use]
    pub const fn abs_diff(self, other: Self) -> u64 {
        self.0.abs_diff(other.0)
    }
}

/// What a segment carries. Stored in the segment header as a `u32`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[repr(u32)]
pub enum StreamKind {
    /// Camera images ([`crate::frames::ImageHeader`] + planes).
    Camera = 1,
    /// Lidar sweeps ([`crate::frames::PointRecord`] array).
    Lidar = 2,
    /// Fused frames ([`crate::frames::FusedHeader`] + [`crate::frames::FusedPoint`] array).
    Fused = 3,
    /// The calibration table: one encoded calibration set per slot.
    CalibTable = 4,
}

impl StreamKind {
    /// Parses the header's `u32`, if it names a known kind.
    #[must_use]
    pub const fn from_u32(v: u32) -> Option<Self> {
        match v {
            1 => Some(Self::Camera),
            2 => Some(Self::Lidar),
            3 => Some(Self::Fused),
            4 => Some(Self::CalibTable),
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
        }
    }
}

impl fmt::Display for StreamKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
