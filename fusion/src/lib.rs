//! # fusion: epoch-matched pairing and projection for epochfuse
//!
//! - [`pairing`]: the pure pairing state machine (which sweep goes with which camera frame,
//!   and with which calibration), with its exact counting rules;
//! - [`project`]: lidar points → pixels with one epoch's calibration, in f64;
//! - [`rig`]: one sweep into N cameras, each point moved into the rig frame once and culled
//!   per camera by its horizontal frustum, bit-identical to projecting per camera;
//! - [`deskew`]: motion compensation of a scanning lidar's sweep with the ego-motion;
//! - [`engine`]: the channel-driven engine that ties them together and feeds a
//!   [`FusedSink`];
//! - [`output`]: sinks and PNG overlays; [`stats`] and [`summary`]: what fusion reports of a
//!   run ([`FusionResult`]; the run summary itself is the binary's).
#![forbid(unsafe_code)]

pub mod deskew;
pub mod engine;
pub mod output;
pub mod pairing;
pub mod payload;
pub mod project;
pub mod rig;
pub mod sample;
pub mod stats;
pub mod summary;

pub use engine::{Engine, EngineChannels, EngineConfig, FusionReport, InFrame};
pub use output::{
    render_overlay, turbo, write_overlay, FusedSink, MosaicWriter, NullSink, OverlayConfig, OverlayStyle,
    OverlayTap, OverlayWriter, SinkError, VecSink,
};
pub use pairing::{FrameMeta, PairCounters, Pairer, PairingConfig, PairingMode};
pub use payload::{Payload, RingFrame, UseError};
pub use project::{project_points, Projected, Projector};
pub use rig::{RigProjected, RigProjector};
pub use stats::{CountersSnapshot, FusionStats, LatencyRecorder, PairMetrics, StatsHandle};
pub use summary::FusionResult;
