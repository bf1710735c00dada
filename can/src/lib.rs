//! # can: the vehicle bus, its worst-case response times, and a simulation of it
//!
//! - [`frame`]: bit time, frame length with worst-case stuffing, arbitration order.
//! - [`dbc`]: messages and their timing from a DBC file (contract in the module).
//! - [`rta`]: the response-time analysis of Davis, Burns, Bril and Lukkien, "Controller Area
//!   Network (CAN) schedulability analysis: Refuted, revisited and revised", Real-Time
//!   Systems 35 (2007) — not the 1994 analysis that paper refutes.
//! - [`report`]: the result per message, as JSON or a table.
//! - [`signal`]: signal values in a frame's data (encode, decode).
//! - [`bus`]: a bit-time simulation of the bus to check the bounds against.
//! - [`ego`]: the ego car's signals (sent from its motion, read back for deskew).
//! - [`record`]: a delivered frame's bytes, for rings and recordings.
//! - [`vehicle`]: the car's bus in a pipeline, and its summary against the bounds.
//!
//! All times are integer nanoseconds inside; reports give µs and ms as numbers.
#![forbid(unsafe_code)]

pub mod bus;
pub mod dbc;
pub mod ego;
pub mod frame;
pub mod record;
pub mod report;
pub mod rta;
pub mod signal;
pub mod vehicle;

pub use dbc::{DbcError, Message};
pub use frame::{Bitrate, CanId};
pub use report::{MessageReport, Report};
