//! A simulated CAN bus, to check the analysis against.
//!
//! # Model
//! - Each message is sent periodically: instance k is due at `offset + k·T` (its nominal
//!   release) and is queued at its sender after a release jitter drawn uniformly from
//!   [0, J] with a seeded generator (deterministic per seed). A sender queues a message's
//!   instances in order (FIFO per message).
//! - When the bus goes idle (after a frame and its inter-frame space, or at the first
//!   release on an idle bus, where the sender hard-synchronises), every frame queued at that
//!   instant competes; the lowest [`crate::CanId::priority_key`] wins. A frame queued during
//!   a transmission waits for the next arbitration: transmission is never preempted.
//! - A frame lasts its worst-case stuffed length ([`crate::frame::frame_bits`] bit times,
//!   inter-frame space included) by default ([`Stuffing::WorstCase`]), so the bus is as slow
//!   as the analysis assumes. With [`Stuffing::DataDependent`] it lasts the bits its current
//!   payload ([`Bus::set_payload`], zeros until set) really needs
//!   ([`crate::frame::exact_frame_bits`]). No errors, no retransmissions.
//! - Response time = end of the frame − nominal release, as in the analysis.

use std::collections::VecDeque;

use crate::dbc::Message;
use crate::frame::{exact_frame_bits, frame_bits, Bitrate, CanId};
use crate::report::task;
use crate::rta::Task;

/// One message on the simulated bus, ns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SimMessage {
    /// Priority, transmission time, period and jitter.
    pub task: Task,
    /// Deadline from the nominal release.
    pub deadline_ns: u64,
    /// Nominal release of the first instance.
    pub offset_ns: u64,
    /// Identifier, for data-dependent stuffing.
    pub id: CanId,
    /// Data bytes, for data-dependent stuffing.
    pub dlc: u8,
}

/// How long a frame is on the wire.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Stuffing {
    /// Every frame gets the most stuff bits its length allows (the analysis's assumption).
    #[default]
    WorstCase,
    /// Every frame gets the stuff bits its identifier, DLC, payload and CRC really need.
    DataDependent,
}

impl SimMessage {
    /// A DBC message on a bus of `bitrate`, first released at 0.
    #[must_use]
    pub fn from_message(m: &Message, bitrate: Bitrate) -> Self {
        Self { task: task(m, bitrate), deadline_ns: m.deadline_ns, offset_ns: 0, id: m.id, dlc: m.dlc }
    }
}

/// What was observed of one message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Frames sent.
    pub frames: u64,
    /// Largest response time seen, ns.
    pub max_response_ns: u64,
    /// Frames that ended after their deadline.
    pub deadline_misses: u64,
}

/// One frame sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// Index of the message in the list given to [`Bus::new`].
    pub index: usize,
    /// Nominal release, ns.
    pub nominal_ns: u64,
    /// When the sender queued it (nominal + jitter), ns.
    pub queued_ns: u64,
    /// End of the frame, ns.
    pub done_ns: u64,
}

#[derive(Debug)]
struct Source {
    m: SimMessage,
    next_k: u64,
    next_queued: u64,
    queue: VecDeque<(u64, u64)>,
    stats: Stats,
    payload: [u8; 8],
}

/// The bus: deterministic for a given message list and seed.
#[derive(Debug)]
pub struct Bus {
    sources: Vec<Source>,
    now: u64,
    in_flight: Option<Delivery>,
    busy_ns: u64,
    rng: SplitMix64,
    stuffing: Stuffing,
}

impl Bus {
    /// A bus carrying `messages` (periods must be > 0), jitter drawn from `seed`, frames
    /// with worst-case stuffing.
    #[must_use]
    pub fn new(messages: &[SimMessage], seed: u64) -> Self {
        Self::with_stuffing(messages, seed, Stuffing::WorstCase)
    }

    /// As [`Bus::new`], with the given frame lengths.
    #[must_use]
    pub fn with_stuffing(messages: &[SimMessage], seed: u64, stuffing: Stuffing) -> Self {
        let mut rng = SplitMix64(seed);
        let sources = messages
            .iter()
            .map(|m| {
                let first = m.offset_ns + rng.upto(m.task.j);
                Source {
                    m: *m,
                    next_k: 0,
                    next_queued: first,
                    queue: VecDeque::new(),
                    stats: Stats::default(),
                    payload: [0; 8],
                }
            })
            .collect();
        Self { sources, now: 0, in_flight: None, busy_ns: 0, rng, stuffing }
    }

    /// The data message `index` sends from now on (bytes past its DLC are ignored); only
    /// [`Stuffing::DataDependent`] looks at it.
    pub fn set_payload(&mut self, index: usize, data: &[u8]) {
        if let Some(s) = self.sources.get_mut(index) {
            let n = data.len().min(8);
            s.payload = [0; 8];
            s.payload[..n].copy_from_slice(&data[..n]);
        }
    }

    /// Runs the bus up to `end_ns`, calling `on_frame` for each frame that ends by then.
    pub fn run_until(&mut self, end_ns: u64, mut on_frame: impl FnMut(&Delivery)) {
        loop {
            if let Some(f) = self.in_flight {
                if f.done_ns > end_ns {
                    return;
                }
                self.finish(&f);
                on_frame(&f);
                self.in_flight = None;
                self.now = f.done_ns;
            }
            self.queue_released();
            if let Some(i) = self.arbitrate() {
                let length = self.length_ns(i);
                let (nominal_ns, queued_ns) =
                    self.sources[i].queue.pop_front().unwrap_or((self.now, self.now));
                self.in_flight =
                    Some(Delivery { index: i, nominal_ns, queued_ns, done_ns: self.now + length });
                self.busy_ns += length;
                continue;
            }
            match self.sources.iter().map(|s| s.next_queued).min() {
                Some(next) if next <= end_ns => self.now = next,
                _ => return,
            }
        }
    }

    /// What was seen of each message, in the order given to [`Bus::new`].
    #[must_use]
    pub fn stats(&self) -> Vec<Stats> {
        self.sources.iter().map(|s| s.stats).collect()
    }

    /// Time the bus spent transmitting, ns (frames started, the one in flight included).
    #[must_use]
    pub fn busy_ns(&self) -> u64 {
        self.busy_ns
    }

    /// How long source `i`'s next frame is on the wire.
    fn length_ns(&self, i: usize) -> u64 {
        let m = &self.sources[i].m;
        match self.stuffing {
            Stuffing::WorstCase => m.task.c,
            Stuffing::DataDependent => {
                let tau = m.task.c / frame_bits(m.dlc, m.id.extended);
                let data = &self.sources[i].payload[..usize::from(m.dlc.min(8))];
                exact_frame_bits(m.id, data) * tau
            }
        }
    }

    fn finish(&mut self, f: &Delivery) {
        let s = &mut self.sources[f.index];
        let response = f.done_ns - f.nominal_ns;
        s.stats.frames += 1;
        s.stats.max_response_ns = s.stats.max_response_ns.max(response);
        s.stats.deadline_misses += u64::from(response > s.m.deadline_ns);
    }

    /// Moves every instance queued by `now` into its sender's queue.
    fn queue_released(&mut self) {
        for s in &mut self.sources {
            while s.next_queued <= self.now {
                let nominal = s.m.offset_ns + s.next_k * s.m.task.t;
                s.queue.push_back((nominal, s.next_queued));
                s.next_k += 1;
                let due = s.m.offset_ns + s.next_k * s.m.task.t + self.rng.upto(s.m.task.j);
                // In order: a sender does not queue instance k+1 before instance k.
                s.next_queued = due.max(s.next_queued);
            }
        }
    }

    /// The source whose queued frame wins arbitration now.
    fn arbitrate(&self) -> Option<usize> {
        self.sources
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.queue.is_empty())
            .min_by_key(|(_, s)| s.m.task.key)
            .map(|(i, _)| i)
    }
}

/// Runs `messages` for `duration_ns` and returns what was seen of each.
#[must_use]
pub fn simulate(messages: &[SimMessage], seed: u64, duration_ns: u64) -> Vec<Stats> {
    let mut bus = Bus::new(messages, seed);
    bus.run_until(duration_ns, |_| {});
    bus.stats()
}

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, seedable, good enough for jitter.
#[derive(Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in 0..=max (modulo bias negligible for jitter).
    fn upto(&mut self, max: u64) -> u64 {
        if max == 0 {
            0
        } else {
            self.next() % (max + 1)
        }
    }
}
