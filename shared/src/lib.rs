//! # shared: epochfuse's shared-memory core
//!
//! Segments, seqlocked rings, frame layouts and scoreboards. This crate holds all of the
//! workspace's `unsafe` code (in [`mapping`] and [`sigbus`]); every other crate is
//! `#![forbid(unsafe_code)]`.
//!
//! - [`layout`]: the segment layout, drawn once, every offset a named const.
//! - [`seqlock`]: the per-slot seqlock protocol (also checked by the loom model).
//! - [`segment`]: creating segment files and checking them before trusting them.
//! - [`ring`]: [`ring::RingWriter`] (loan, write in place, commit) and [`ring::RingReader`]
//!   (wait, copy out, validate), with the outcome of every read counted.
//! - [`frames`]: payload layouts of camera, lidar and fused frames.
//! - [`clock`]: [`clock::monotonic_ns`], the one monotonic clock (heartbeats, pipeline time).
//! - [`rundir`]: the run directory under the shm root, and cleaning up after crashed runs.
//!
//! Under `--cfg loom` only the seqlock protocol and its atomics are built.

pub mod checksum;
pub mod frames;
pub mod ids;
pub mod seqlock;
pub mod sync;

#[cfg(not(loom))]
pub mod clock;
#[cfg(not(loom))]
pub mod layout;
#[cfg(not(loom))]
pub mod mapping;
#[cfg(not(loom))]
pub mod ring;
#[cfg(not(loom))]
pub mod rundir;
#[cfg(not(loom))]
pub mod segment;
#[cfg(not(loom))]
pub mod sigbus;
#[cfg(not(loom))]
pub mod wait;

pub use ids::{CalibEpoch, FrameSeq, Incarnation, Role, StreamKind, TimestampNs};
