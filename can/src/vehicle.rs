//! The ego car's bus in a pipeline: its ECUs send the DBC's messages, carrying the car's
//! motion ([`crate::ego`]), over the simulated bus ([`crate::bus`], worst-case stuffing, so
//! the bus is as slow as the analysis assumes); every delivered frame comes out as a
//! [`CanRecord`], and the run's observations against the analysed bounds as a
//! [`BusSummary`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::bus::{Bus, Delivery, SimMessage};
use crate::dbc::Message;
use crate::ego::{encode, EgoState};
use crate::frame::Bitrate;
use crate::record::CanRecord;
use crate::report::analyze;

/// The run summary's `can` key.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BusSummary {
    /// Frames delivered.
    pub frames: u64,
    /// Fraction of the time the bus was transmitting.
    pub bus_load: f64,
    /// Frames delivered after their deadline.
    pub deadline_misses: u64,
    /// Largest observed response time per message, µs, keyed by the identifier in hex.
    pub max_response_us: BTreeMap<String, f64>,
    /// The analysed bound per message, µs (null where the busy period does not converge).
    pub wcrt_us: BTreeMap<String, Option<f64>>,
}

impl BusSummary {
    /// Messages whose observed response time exceeds its bound (must be none).
    #[must_use]
    pub fn over_bound(&self) -> Vec<String> {
        self.max_response_us
            .iter()
            .filter(|(id, seen)| self.wcrt_us.get(*id).copied().flatten().is_none_or(|b| **seen > b + 1e-3))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// The message with the largest observed response time and that time, µs.
    #[must_use]
    pub fn worst(&self) -> Option<(&str, f64)> {
        self.max_response_us.iter().map(|(k, v)| (k.as_str(), *v)).max_by(|a, b| a.1.total_cmp(&b.1))
    }
}

/// A vehicle bus being run.
#[derive(Debug)]
pub struct VehicleBus {
    messages: Vec<Message>,
    bus: Bus,
    wcrt_ns: Vec<Option<u64>>,
    sent: Vec<u64>,
    end_ns: u64,
}

impl VehicleBus {
    /// The bus of `messages` at `bitrate`, release jitter drawn from `seed`.
    #[must_use]
    pub fn new(messages: Vec<Message>, bitrate: Bitrate, seed: u64) -> Self {
        let report = analyze(&messages, bitrate);
        let wcrt_ns = messages
            .iter()
            .map(|m| {
                report
                    .messages
                    .iter()
                    .find(|r| r.id == m.id.id && r.extended == m.id.extended)
                    .and_then(|r| r.wcrt_us)
                    .map(|us| (us * 1e3).round() as u64)
            })
            .collect();
        let sims: Vec<SimMessage> = messages.iter().map(|m| SimMessage::from_message(m, bitrate)).collect();
        let sent = vec![0; messages.len()];
        Self { bus: Bus::new(&sims, seed), messages, wcrt_ns, sent, end_ns: 0 }
    }

    /// The messages, as given.
    #[must_use]
    pub fn messages(&self) -> &[Message] {
        &self.messages
    }

    /// Runs the bus up to `end_ns`; each frame delivered by then carries the car's state at
    /// the instant its sender queued it (`ego(t_ns)`) and goes to `on_frame`.
    pub fn run_until(
        &mut self,
        end_ns: u64,
        ego: impl Fn(u64) -> EgoState,
        mut on_frame: impl FnMut(&CanRecord),
    ) {
        let (messages, sent) = (&self.messages, &mut self.sent);
        self.bus.run_until(end_ns, |d: &Delivery| {
            let m = &messages[d.index];
            let counter = sent[d.index];
            sent[d.index] += 1;
            on_frame(&CanRecord {
                id: m.id,
                dlc: m.dlc,
                data: encode(m, &ego(d.queued_ns), counter),
                nominal_ns: d.nominal_ns,
                queued_ns: d.queued_ns,
                done_ns: d.done_ns,
            });
        });
        self.end_ns = self.end_ns.max(end_ns);
    }

    /// What was seen so far against the analysis.
    #[must_use]
    pub fn summary(&self) -> BusSummary {
        let stats = self.bus.stats();
        let mut s = BusSummary {
            frames: stats.iter().map(|s| s.frames).sum(),
            bus_load: if self.end_ns > 0 {
                (self.bus.busy_ns() as f64 / self.end_ns as f64).min(1.0)
            } else {
                0.0
            },
            deadline_misses: stats.iter().map(|s| s.deadline_misses).sum(),
            ..BusSummary::default()
        };
        for ((m, st), wcrt) in self.messages.iter().zip(&stats).zip(&self.wcrt_ns) {
            let key = m.id.to_string();
            s.max_response_us.insert(key.clone(), st.max_response_ns as f64 / 1e3);
            s.wcrt_us.insert(key, wcrt.map(|ns| ns as f64 / 1e3));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vehicle_bus_stays_within_its_bounds() {
        let messages = crate::dbc::load(std::path::Path::new("../configs/can/vehicle.dbc")).unwrap();
        let mut bus = VehicleBus::new(messages, Bitrate::new(500_000).unwrap(), 7);
        let mut n = 0u64;
        bus.run_until(
            2_000_000_000,
            |t| EgoState::driving(25.0, t as f64 * 1e-10),
            |r| {
                assert!(r.done_ns >= r.queued_ns && r.queued_ns >= r.nominal_ns);
                n += 1;
            },
        );
        let s = bus.summary();
        assert_eq!(s.frames, n);
        assert!(n > 1000 && s.deadline_misses == 0, "{s:?}");
        assert!(s.bus_load > 0.1 && s.bus_load < 1.0, "{}", s.bus_load);
        assert!(s.over_bound().is_empty(), "{s:?}");
        assert!(s.max_response_us["0x1a0"] > 0.0 && s.wcrt_us["0x1a0"].is_some());
        assert!(s.worst().is_some());
    }
}
