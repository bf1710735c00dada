//! The bridge role of `epochfuse remote`: takes the producers' place. It subscribes to the
//! run's keys, checks every sample at the door, counts lost and reordered ones, passes
//! frames through the epoch gate (a frame whose epoch it does not know yet waits, bounded,
//! or is dropped and counted) and writes each received buffer straight into a slot of the
//! local ring (one copy). It exits 0 on the source run's end message.
//!
//! The gate learns an epoch from the local calibration service only (`relay`):
//! epochs received at run time are relayed to it first, so fusion here never meets a frame
//! whose calibration its service does not have.

use std::path::Path;
use std::time::Duration;

use bridge::control::RunMessage;
use bridge::gate::GateCounts;
use bridge::seq::Verdict;
use bridge::{EpochGate, Keys, SampleHeader, SeqTracker};
use serde::Serialize;
use shared::frames::PayloadSink as _;
use shared::ring::{FrameMeta, RingWriter};
use shared::scoreboard::ProducerScoreboard;
use shared::segment::SegmentSpec;
use shared::{rundir, CalibEpoch, StreamKind};
use zenoh::sample::Sample;
use zenoh::Wait as _;

use super::relay::LocalCalib;
use super::session::{self, broke, Side};
use crate::error::CliError;
use crate::pipeline::roles::{ready, stop_flag, wait_for_readers};
use crate::pipeline::segments::PRODUCER_SLOTS;
use crate::pipeline::spec::{RunSpec, ZenohSpec};

/// Frames a stream's gate holds while their epoch is unknown (a little over a ring's worth).
const GATE_FRAMES: usize = 2 * PRODUCER_SLOTS as usize;

/// The mirror's counters of one stream, for the summary (`streams.<sensor>.network_*`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct StreamNet {
    /// Samples never received (gaps in the source's sequence numbers).
    pub network_lost: u64,
    /// Samples received out of order or twice (not written).
    pub network_reordered: u64,
    /// Samples refused at the door (bad header, wrong size).
    pub network_invalid: u64,
    /// Frames that waited for their epoch.
    pub held_unknown_epoch: u64,
    /// Frames dropped because their epoch never became known in time.
    pub dropped_unknown_epoch: u64,
    /// Frames written into the local ring.
    pub mirrored: u64,
    /// Payload bytes written into the local ring.
    pub mirrored_bytes: u64,
}

/// Publisher send → ring commit, from the samples' `sent` stamps: meaningful on one host
/// (loopback) only, where both ends read the same monotonic clock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct TransportMs {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

impl TransportMs {
    fn of(mut ms: Vec<f64>) -> Self {
        ms.sort_by(f64::total_cmp);
        let at = |q: f64| ms.get(((ms.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(0.0);
        Self { p50: at(0.5), p99: at(0.99), max: at(1.0) }
    }
}

/// Which source frame each local ring sequence number holds. The local ring numbers the
/// frames it is given one after the other; the source's numbers skip the frames the remote
/// never got (lost on the way, skipped by a lapped publishing bridge, or before a late
/// joiner came). Kept as the points where the offset changes: one per gap.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Renumbering(Vec<(u64, u64)>);

impl Renumbering {
    /// Local frame `local` holds source frame `source`.
    fn note(&mut self, local: u64, source: u64) {
        let offset = |(l, s): (u64, u64)| s.wrapping_sub(l);
        if self.0.last().is_none_or(|&last| offset(last) != offset((local, source))) {
            self.0.push((local, source));
        }
    }

    /// The source's number of local frame `local` (itself before the first frame noted).
    #[must_use]
    pub fn source_of(&self, local: u64) -> u64 {
        match self.0.partition_point(|&(l, _)| l <= local).checked_sub(1) {
            Some(i) => local.wrapping_add(self.0[i].1.wrapping_sub(self.0[i].0)),
            None => local,
        }
    }
}

/// What the mirror leaves for the summary.
#[derive(Clone, Debug, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct MirrorResult {
    /// The camera stream.
    pub camera: StreamNet,
    /// The lidar stream.
    pub lidar: StreamNet,
    /// Calibration samples refused at the door.
    pub calib_invalid: u64,
    /// Epochs received at run time and taken by the local calibration service.
    pub epochs_relayed: u64,
    /// Whether the source's end message arrived.
    pub source_ended: bool,
    /// Seconds from the first frame written to the last.
    pub mirror_s: f64,
    /// The transport's latency (loopback only).
    pub transport_ms: TransportMs,
    /// The source's numbers of the camera frames in the local ring.
    #[serde(default)]
    pub camera_seqs: Renumbering,
    /// The source's numbers of the sweeps in the local ring.
    #[serde(default)]
    pub lidar_seqs: Renumbering,
}

/// One mirrored stream: its ring, sequence tracker and epoch gate.
struct Stream {
    kind: StreamKind,
    writer: RingWriter,
    capacity: u64,
    seq: SeqTracker,
    gate: EpochGate<(SampleHeader, Sample)>,
    invalid: u64,
    mirrored: u64,
    mirrored_bytes: u64,
    seqs: Renumbering,
}

impl Stream {
    fn create(run: &Path, kind: StreamKind, capacity: u64) -> Result<Self, CliError> {
        let path = run.join(rundir::segment_file(kind));
        let spec = SegmentSpec::new(kind, PRODUCER_SLOTS, capacity.max(64));
        let (writer, _) = RingWriter::create_or_takeover(&path, &spec)
            .map_err(|e| CliError::internal(format!("{}: {e}", path.display())))?;
        Ok(Self {
            kind,
            writer,
            capacity,
            seq: SeqTracker::default(),
            gate: EpochGate::new(GATE_FRAMES),
            invalid: 0,
            mirrored: 0,
            mirrored_bytes: 0,
            seqs: Renumbering::default(),
        })
    }

    fn net(&mut self) -> StreamNet {
        let GateCounts { held, dropped_unknown_epoch } = self.gate.finish();
        StreamNet {
            network_lost: self.seq.lost,
            network_reordered: self.seq.reordered,
            network_invalid: self.invalid,
            held_unknown_epoch: held,
            dropped_unknown_epoch,
            mirrored: self.mirrored,
            mirrored_bytes: self.mirrored_bytes,
        }
    }
}

/// The mirror's state.
struct Mirror<'a> {
    keys: Keys,
    streams: [Stream; 2],
    spec: &'a RunSpec,
    stop: calib::StopFlag,
    stalled: bool,
    calib_invalid: u64,
    calib: LocalCalib,
    /// Send → commit of each frame (ms), and the first and last commit.
    transport: Vec<f64>,
    span: Option<(u64, u64)>,
}

impl Mirror<'_> {
    /// Handles one sample; `true` on the source's end message.
    fn handle(&mut self, sample: Sample) -> Result<bool, CliError> {
        let key = sample.key_expr().as_str().to_owned();
        if let Some(kind) = self.keys.stream_of(&key) {
            let s = &mut self.streams[usize::from(kind == StreamKind::Lidar)];
            let bytes = sample.payload().to_bytes();
            let header = match SampleHeader::decode(&bytes, kind, s.capacity) {
                Ok((h, _)) => h,
                Err(e) => {
                    s.invalid += 1;
                    tracing::warn!("{key}: {e}; sample refused");
                    return Ok(false);
                }
            };
            drop(bytes);
            if s.seq.observe(header.seq) == Verdict::Late {
                return Ok(false);
            }
            let out = s.gate.offer(header.epoch, (header, sample));
            self.write(usize::from(kind == StreamKind::Lidar), out)?;
        } else if self.keys.epoch_of(&key).is_some() {
            match bridge::epochs::decode(&self.keys, &key, &sample.payload().to_bytes()) {
                Ok(set) => {
                    let learned = self.calib.relay(&set)?;
                    self.learn(&learned)?;
                }
                Err(e) => {
                    self.calib_invalid += 1;
                    tracing::warn!("{e}; calibration sample refused");
                }
            }
        } else if key == self.keys.run() {
            match RunMessage::decode(&sample.payload().to_bytes()) {
                Ok(RunMessage::End(end)) => {
                    self.streams[0].seq.finish(end.camera_next_seq);
                    self.streams[1].seq.finish(end.lidar_next_seq);
                    return Ok(true);
                }
                Ok(RunMessage::Start(_)) => {}
                Err(e) => tracing::warn!("{key}: {e}"),
            }
        }
        Ok(false)
    }

    /// The gates learn epochs the local service announced, and release what waited.
    fn learn(&mut self, epochs: &[CalibEpoch]) -> Result<(), CliError> {
        for &epoch in epochs {
            for i in 0..2 {
                let out = self.streams[i].gate.learn(epoch);
                self.write(i, out)?;
            }
        }
        Ok(())
    }

    /// Writes released frames into stream `i`'s ring, straight from the received buffers.
    fn write(&mut self, i: usize, frames: Vec<(SampleHeader, Sample)>) -> Result<(), CliError> {
        let readers = self.spec.ring_readers();
        let s = &mut self.streams[i];
        for (header, sample) in frames {
            if self.spec.max_rate {
                // As at the source: at max rate no local reader is lapped.
                wait_for_readers(
                    &s.writer,
                    readers,
                    u64::from(PRODUCER_SLOTS) - 2,
                    &self.stop,
                    &mut self.stalled,
                );
            }
            let bytes = sample.payload().to_bytes();
            let payload = &bytes[bridge::sample::HEADER_LEN..];
            let mut loan = s.writer.loan();
            loan.push(payload).map_err(|_| {
                CliError::internal(format!("{} frame {}: larger than a slot", s.kind, header.seq))
            })?;
            let local = loan.commit(FrameMeta { capture: header.capture, epoch: header.epoch });
            s.seqs.note(local.0, header.seq);
            let mut board = ProducerScoreboard::read(&s.writer);
            board.epoch = header.epoch;
            board.store(&s.writer);
            s.mirrored += 1;
            s.mirrored_bytes += payload.len() as u64;
            let now = calib::clock::monotonic_ns();
            self.transport.push(now.saturating_sub(header.sent_ns) as f64 / 1e6);
            self.span = Some((self.span.map_or(now, |(a, _)| a), now));
        }
        Ok(())
    }
}

/// Runs the mirroring bridge role.
///
/// # Errors
/// Exit 2 for a bad endpoint or config; exit 3 if the session or the rings fail.
pub fn run(run: &Path, spec: &RunSpec, net: &ZenohSpec) -> Result<(), CliError> {
    let stop = stop_flag()?;
    let keys = Keys::new(&net.run_id).map_err(|e| CliError::internal(e.to_string()))?;
    let streams = [
        Stream::create(run, StreamKind::Camera, net.camera_capacity)?,
        Stream::create(run, StreamKind::Lidar, net.lidar_capacity)?,
    ];
    let calib = LocalCalib::connect(run, &spec.epochs, &stop)?;
    let session = session::open(net, Side::Connect)?;
    // One subscriber for every key of the run: one queue, in the order the source sent.
    let sub = session.declare_subscriber(keys.all()).wait().map_err(|e| broke("subscriber", &e))?;
    let mut m = Mirror {
        keys,
        streams,
        spec,
        stop,
        stalled: false,
        calib_invalid: 0,
        calib,
        transport: Vec::new(),
        span: None,
    };
    ready()?;
    let mut ended = false;
    while !ended {
        // The table so far (a late joiner's whole past) comes from the service at start,
        // then whatever it announces; frames wait in the gates meanwhile.
        let announced = m.calib.poll();
        m.learn(&announced)?;
        let holding = m.streams.iter().any(|s| s.gate.waiting() > 0);
        let wait = Duration::from_millis(if holding { 2 } else { 100 });
        match sub.recv_timeout(wait) {
            Ok(Some(sample)) => ended = m.handle(sample)?,
            Ok(None) if m.stop.is_raised() => break,
            Ok(None) => {}
            Err(e) => return Err(broke("subscriber", &e)),
        }
    }
    let result = MirrorResult {
        camera: m.streams[0].net(),
        lidar: m.streams[1].net(),
        calib_invalid: m.calib_invalid,
        epochs_relayed: m.calib.relayed(),
        source_ended: ended,
        mirror_s: m.span.map_or(0.0, |(a, b)| (b - a) as f64 / 1e9),
        transport_ms: TransportMs::of(std::mem::take(&mut m.transport)),
        camera_seqs: std::mem::take(&mut m.streams[0].seqs),
        lidar_seqs: std::mem::take(&mut m.streams[1].seqs),
    };
    let path = spec.out.join("logs").join(super::MIRROR_RESULT_FILE);
    let json = serde_json::to_vec_pretty(&result).map_err(|e| CliError::internal(e.to_string()))?;
    crate::pipeline::spec::write_private(&path, &json)
        .map_err(|e| CliError::internal(format!("{}: {e}", path.display())))?;
    let _ = session.close().wait();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Renumbering;

    #[test]
    fn local_numbers_map_back_to_the_sources_across_gaps() {
        let mut r = Renumbering::default();
        // A late joiner's first frame is the source's 10th; 13 and 14 never came.
        for (local, source) in [(0, 10), (1, 11), (2, 12), (3, 15), (4, 16)] {
            r.note(local, source);
        }
        assert_eq!(r.0.len(), 2, "one point per gap");
        let back: Vec<u64> = (0..5).map(|l| r.source_of(l)).collect();
        assert_eq!(back, [10, 11, 12, 15, 16]);
        assert_eq!(Renumbering::default().source_of(7), 7);
    }
}
