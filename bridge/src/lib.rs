//! # bridge: a run across hosts, the protocol without the network
//!
//! The `epochfuse` binary publishes a run over Zenoh (`drive --zenoh`) and fuses it on
//! another host (`epochfuse remote`). Everything that decides what goes on the wire and what
//! a receiver accepts lives here, free of any network code, so it is tested without one:
//!
//! - [`keys`]: one key prefix per run, `epochfuse/<run-id>/{camera,lidar,calib/<epoch>,run}`.
//! - [`sample`]: the header in front of every frame (sequence, capture time, calibration
//!   epoch, size, kind), checked at the door: a sample from the network is untrusted input.
//! - [`control`]: the run's start and end messages (JSON, bounded).
//! - [`gate`]: the epoch gate: a frame whose epoch the receiver does not know yet is held
//!   (bounded, in order) or dropped and counted, never fused with a guess.
//! - [`seq`]: lost and reordered samples, counted, never fatal.
//! - [`epochs`]: calibration epochs as samples, and what a run has announced so far.
//! - [`drop_plan`]: the test-only knob that drops samples on purpose.
#![forbid(unsafe_code)]

pub mod control;
pub mod drop_plan;
pub mod epochs;
pub mod gate;
pub mod keys;
pub mod sample;
pub mod seq;

pub use control::{RunEnd, RunStart};
pub use gate::EpochGate;
pub use keys::Keys;
pub use sample::{SampleError, SampleHeader};
pub use seq::SeqTracker;
