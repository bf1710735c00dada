//! # shared: epochfuse's shared-memory core
//!
//! Segments, seqlocked rings, frame layouts and the scoreboard. This crate holds all of the
//! workspace's `unsafe` code; every other crate is `#![forbid(unsafe_code)]`.
//!
//! (The contract is documented in full in the `ring` and `layout` modules.)

pub mod frames;
pub mod ids;

pub use ids::{CalibEpoch, FrameSeq, Incarnation, StreamKind, TimestampNs};
