//! # sensor-sim: simulated sensors and log replayers for epochfuse
#![forbid(unsafe_code)]

pub mod log;
