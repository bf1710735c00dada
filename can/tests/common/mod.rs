//! Helpers shared by the tests of the `can` crate.
#![allow(dead_code)]

use can::{Bitrate, CanId, Message};

/// A message with times in µs.
pub fn msg(id: CanId, name: &str, dlc: u8, period_us: u64, deadline_us: u64, jitter_us: u64) -> Message {
    Message {
        id,
        name: name.to_string(),
        dlc,
        period_ns: period_us * 1000,
        deadline_ns: deadline_us * 1000,
        jitter_ns: jitter_us * 1000,
        sender: String::new(),
        signals: Vec::new(),
    }
}

pub fn std_id(id: u32) -> CanId {
    CanId::standard(id).unwrap()
}

pub fn ext_id(id: u32) -> CanId {
    CanId::extended(id).unwrap()
}

pub fn rate(bps: u32) -> Bitrate {
    Bitrate::new(bps).unwrap()
}

/// Davis et al. 2007 §3, Table 2: A, B, C; C = 1 ms each (7 data bytes = 125 bits at
/// 125 kbit/s); T = 2.5, 3.5, 3.5 ms; D = 2.5, 3.25, 3.25 ms.
pub fn davis_counter_example() -> Vec<Message> {
    vec![
        msg(std_id(1), "A", 7, 2500, 2500, 0),
        msg(std_id(2), "B", 7, 3500, 3250, 0),
        msg(std_id(3), "C", 7, 3500, 3250, 0),
    ]
}

/// The manifest directory's `configs/can/NAME`.
pub fn config(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/can").join(name)
}
