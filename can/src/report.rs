//! The analysis of a bus, message by message, as JSON or as a table.

use std::fmt::Write as _;

use serde::Serialize;

use crate::dbc::Message;
use crate::frame::Bitrate;
use crate::rta::{self, Task};

/// The analysis of one bus. Serialises to exactly
/// `{"bitrate_bps", "utilization", "messages": [...]}`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// Bus speed, bit/s.
    pub bitrate_bps: u32,
    /// Σ C/T over all messages (worst-case stuffing), 0..; above 1 nothing can be guaranteed.
    pub utilization: f64,
    /// One entry per message, highest priority first.
    pub messages: Vec<MessageReport>,
}

/// The analysis of one message; times in ms (timing attributes) and µs (bus times).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MessageReport {
    /// The 11- or 29-bit identifier.
    pub id: u32,
    /// 29-bit identifier.
    pub extended: bool,
    /// Name in the DBC.
    pub name: String,
    /// Data bytes.
    pub dlc: u8,
    /// Period T.
    pub period_ms: f64,
    /// Deadline D.
    pub deadline_ms: f64,
    /// Release jitter J.
    pub jitter_ms: f64,
    /// Worst-case transmission time C (worst-case stuffing).
    pub c_us: f64,
    /// Blocking B: the longest lower-priority frame.
    pub blocking_us: f64,
    /// Worst-case response time R from the nominal release; `null` where the busy period
    /// does not converge.
    pub wcrt_us: Option<f64>,
    /// R exists and R ≤ D.
    pub schedulable: bool,
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1e3
}

/// The analysis task of a message on a bus of `bitrate`.
#[must_use]
pub fn task(m: &Message, bitrate: Bitrate) -> Task {
    Task {
        key: m.id.priority_key(),
        c: bitrate.frame_ns(m.dlc, m.id.extended),
        t: m.period_ns,
        j: m.jitter_ns,
    }
}

/// Analyses `messages` on a bus of `bitrate`.
#[must_use]
pub fn analyze(messages: &[Message], bitrate: Bitrate) -> Report {
    let mut sorted: Vec<&Message> = messages.iter().collect();
    sorted.sort_by_key(|m| m.id.priority_key());
    let tasks: Vec<Task> = sorted.iter().map(|m| task(m, bitrate)).collect();
    let bounds = rta::response_times(&tasks, bitrate.tau_ns());
    let utilization = tasks.iter().map(|t| t.c as f64 / t.t as f64).sum();
    let messages = sorted
        .iter()
        .zip(&tasks)
        .zip(&bounds)
        .map(|((m, t), b)| MessageReport {
            id: m.id.id,
            extended: m.id.extended,
            name: m.name.clone(),
            dlc: m.dlc,
            period_ms: ms(m.period_ns),
            deadline_ms: ms(m.deadline_ns),
            jitter_ms: ms(m.jitter_ns),
            c_us: us(t.c),
            blocking_us: us(b.blocking_ns),
            wcrt_us: b.wcrt_ns.map(us),
            schedulable: b.wcrt_ns.is_some_and(|r| r <= m.deadline_ns),
        })
        .collect();
    Report { bitrate_bps: bitrate.bps(), utilization, messages }
}

impl Report {
    /// Every message meets its deadline.
    #[must_use]
    pub fn schedulable(&self) -> bool {
        self.messages.iter().all(|m| m.schedulable)
    }

    /// The messages that do not.
    pub fn misses(&self) -> impl Iterator<Item = &MessageReport> {
        self.messages.iter().filter(|m| !m.schedulable)
    }

    /// A table for people, one line per message, highest priority first.
    #[must_use]
    pub fn table(&self) -> String {
        let mut s = format!(
            "bus {} bit/s, utilisation {:.1} % (worst-case stuffing)\n",
            self.bitrate_bps,
            self.utilization * 100.0
        );
        let _ = writeln!(
            s,
            "{:>10}  {:<28} {:>3} {:>9} {:>9} {:>7} {:>8} {:>8} {:>9}  ok",
            "id", "name", "dlc", "T ms", "D ms", "J ms", "C µs", "B µs", "R µs"
        );
        for m in &self.messages {
            let id = if m.extended { format!("{:#010x}", m.id) } else { format!("{:#05x}", m.id) };
            let r = m.wcrt_us.map_or_else(|| "none".to_string(), |r| format!("{r:.1}"));
            let _ = writeln!(
                s,
                "{id:>10}  {:<28} {:>3} {:>9.3} {:>9.3} {:>7.3} {:>8.1} {:>8.1} {r:>9}  {}",
                m.name,
                m.dlc,
                m.period_ms,
                m.deadline_ms,
                m.jitter_ms,
                m.c_us,
                m.blocking_us,
                if m.schedulable { "yes" } else { "NO" }
            );
        }
        s
    }
}
