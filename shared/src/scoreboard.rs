//! Typed views of a segment's aux words ([`crate::layout::aux`]): what a producer and fusion
//! publish for `epochfuse top` and the supervisor, named instead of indexed.
//!
//! The reader and writer counters of every ring are already named ([`Scoreboard`]); the aux
//! words mean something different per stream kind, so each kind gets its own view here, with
//! one way to read it (from a [`Scoreboard`] or a live [`RingWriter`]) and one to write it.

use crate::layout::{aux, AUX_WORDS};
use crate::ring::{RingWriter, Scoreboard};
use crate::{CalibEpoch, TimestampNs};

/// A camera or lidar ring's aux words, written by its producer (or the replayer).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProducerScoreboard {
    /// The epoch the producer tags frames with now.
    pub epoch: CalibEpoch,
    /// Frames rendered late (behind real time).
    pub late: u64,
    /// Frames tagged with another epoch than the one the sensor was physically in (must
    /// stay 0; simulation only).
    pub mistagged: u64,
    /// Capture time of the newest frame; [`ProducerScoreboard::DONE`] once the producer has
    /// produced its last one. Producers at `--max-rate` keep in step by it.
    pub sim_time: TimestampNs,
}

impl ProducerScoreboard {
    /// The `sim_time` of a producer that has produced its last frame.
    pub const DONE: TimestampNs = TimestampNs(u64::MAX);

    /// The view of aux words `a`.
    #[must_use]
    pub const fn from_aux(a: &[u64; AUX_WORDS]) -> Self {
        Self {
            epoch: CalibEpoch(a[aux::PRODUCER_EPOCH]),
            late: a[aux::PRODUCER_LATE],
            mistagged: a[aux::PRODUCER_MISTAGGED],
            sim_time: TimestampNs(a[aux::PRODUCER_SIM_TIME]),
        }
    }

    /// The view of a ring's scoreboard.
    #[must_use]
    pub const fn of(board: &Scoreboard) -> Self {
        Self::from_aux(&board.aux)
    }

    /// The words as `writer`'s ring holds them now (a restarted producer continues its
    /// predecessor's counts).
    #[must_use]
    pub fn read(writer: &RingWriter) -> Self {
        Self::from_aux(&words(writer))
    }

    /// Publishes every word (Relaxed: statistics, no ordering partner).
    pub fn store(&self, writer: &RingWriter) {
        writer.set_aux(aux::PRODUCER_EPOCH, self.epoch.0);
        writer.set_aux(aux::PRODUCER_LATE, self.late);
        writer.set_aux(aux::PRODUCER_MISTAGGED, self.mistagged);
        writer.set_aux(aux::PRODUCER_SIM_TIME, self.sim_time.0);
    }
}

/// The fused ring's aux words, written by fusion's engine publisher.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FusedScoreboard {
    /// Pairs fused.
    pub pairs: u64,
    /// Frames held waiting for a partner or a calibration.
    pub held: u64,
    /// Frames dropped because their calibration never came.
    pub dropped_no_calib: u64,
    /// Sweeps whose nearest camera frame had another epoch.
    pub rejected_mismatch: u64,
    /// Fused pairs whose epochs differ (only `--pairing latest` makes them).
    pub epoch_mismatch: u64,
    /// Newest calibration epoch fusion knows.
    pub latest_epoch: CalibEpoch,
    /// Frames left unpaired (camera + lidar).
    pub unpaired: u64,
    /// Last capture → fused latency, microseconds.
    pub last_latency_us: u64,
    /// Calibration updates received.
    pub calib_updates: u64,
    /// Calibration messages rejected.
    pub calib_rejected: u64,
    /// Last published → fused latency (the pipeline's part of `last_latency_us`), µs.
    pub last_pipeline_us: u64,
}

impl FusedScoreboard {
    /// The view of aux words `a`.
    #[must_use]
    pub const fn from_aux(a: &[u64; AUX_WORDS]) -> Self {
        Self {
            pairs: a[aux::FUSED_PAIRS],
            held: a[aux::FUSED_HELD],
            dropped_no_calib: a[aux::FUSED_DROPPED_NO_CALIB],
            rejected_mismatch: a[aux::FUSED_REJECTED_MISMATCH],
            epoch_mismatch: a[aux::FUSED_EPOCH_MISMATCH],
            latest_epoch: CalibEpoch(a[aux::FUSED_LATEST_EPOCH]),
            unpaired: a[aux::FUSED_UNPAIRED],
            last_latency_us: a[aux::FUSED_LAST_LATENCY_US],
            calib_updates: a[aux::FUSED_CALIB_UPDATES],
            calib_rejected: a[aux::FUSED_CALIB_REJECTED],
            last_pipeline_us: a[aux::FUSED_LAST_PIPELINE_US],
        }
    }

    /// The view of the fused ring's scoreboard.
    #[must_use]
    pub const fn of(board: &Scoreboard) -> Self {
        Self::from_aux(&board.aux)
    }

    /// Publishes every word (Relaxed: statistics, no ordering partner).
    pub fn store(&self, writer: &RingWriter) {
        for (i, v) in [
            (aux::FUSED_PAIRS, self.pairs),
            (aux::FUSED_HELD, self.held),
            (aux::FUSED_DROPPED_NO_CALIB, self.dropped_no_calib),
            (aux::FUSED_REJECTED_MISMATCH, self.rejected_mismatch),
            (aux::FUSED_EPOCH_MISMATCH, self.epoch_mismatch),
            (aux::FUSED_LATEST_EPOCH, self.latest_epoch.0),
            (aux::FUSED_UNPAIRED, self.unpaired),
            (aux::FUSED_LAST_LATENCY_US, self.last_latency_us),
            (aux::FUSED_CALIB_UPDATES, self.calib_updates),
            (aux::FUSED_CALIB_REJECTED, self.calib_rejected),
            (aux::FUSED_LAST_PIPELINE_US, self.last_pipeline_us),
        ] {
            writer.set_aux(i, v);
        }
    }
}

/// The CAN ring's aux words, written by the vehicle role.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CanScoreboard {
    /// Share of time the bus was busy, parts per million.
    pub bus_load_ppm: u64,
    /// Largest response time seen, ns.
    pub worst_response_ns: u64,
    /// Its identifier (bit 31: extended).
    pub worst_id: u64,
}

impl CanScoreboard {
    /// The view of a ring's scoreboard.
    #[must_use]
    pub const fn of(board: &Scoreboard) -> Self {
        Self {
            bus_load_ppm: board.aux[aux::CAN_BUS_LOAD_PPM],
            worst_response_ns: board.aux[aux::CAN_WORST_RESPONSE_NS],
            worst_id: board.aux[aux::CAN_WORST_ID],
        }
    }

    /// Publishes every word (Relaxed: statistics, no ordering partner).
    pub fn store(&self, writer: &RingWriter) {
        writer.set_aux(aux::CAN_BUS_LOAD_PPM, self.bus_load_ppm);
        writer.set_aux(aux::CAN_WORST_RESPONSE_NS, self.worst_response_ns);
        writer.set_aux(aux::CAN_WORST_ID, self.worst_id);
    }
}

fn words(writer: &RingWriter) -> [u64; AUX_WORDS] {
    std::array::from_fn(|i| writer.aux(i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_read_the_documented_words() {
        let mut a = [0u64; AUX_WORDS];
        a[aux::PRODUCER_MISTAGGED] = 3;
        a[aux::PRODUCER_SIM_TIME] = 7;
        let p = ProducerScoreboard::from_aux(&a);
        assert_eq!((p.mistagged, p.sim_time, p.late), (3, TimestampNs(7), 0));
        a[aux::FUSED_LATEST_EPOCH] = 2;
        a[aux::FUSED_CALIB_REJECTED] = 9;
        let f = FusedScoreboard::from_aux(&a);
        assert_eq!((f.latest_epoch, f.calib_rejected, f.pairs), (CalibEpoch(2), 9, 0));
    }
}
