//! The bridge role of a publishing run (`drive`/`replay --zenoh`): a third reader of the
//! camera and lidar rings (copy-out reads, validated like fusion's) that puts every frame on
//! the network with its header, every calibration epoch the run announces (also served to
//! late joiners by a queryable), and the run's start and end (also queryable).
//!
//! It says `ready` only once a subscriber matches both streams, or after `--zenoh-wait`:
//! the run starts then, so a remote started just after sees the whole run. Delivery is
//! reliable and blocking: a remote that cannot keep up slows this role, and at
//! `--max-rate` (where producers wait for every reader) the run.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bridge::control::{RunEnd, RunMessage, RunStart};
use bridge::drop_plan::{DropPlan, What};
use bridge::{Keys, SampleHeader};
use calib::CalibFollower;
use parking_lot::Mutex;
use shared::ring::{ReadOutcome, RingReader};
use shared::{rundir, StreamKind};
use zenoh::qos::CongestionControl;
use zenoh::Wait as _;

use super::session::{self, broke, Side};
use crate::error::CliError;
use crate::pipeline::roles::{attach_when_ready, ready, stop_flag};
use crate::pipeline::spec::{RunSpec, SourceSpec, ZenohSpec};

/// What the queryables answer: the latest run message, and every epoch announced so far
/// (key → sample), so a late joiner gets the whole table.
#[derive(Debug, Default)]
struct Served {
    run: Vec<u8>,
    epochs: BTreeMap<String, Vec<u8>>,
}

type Publisher = zenoh::pubsub::Publisher<'static>;

/// The role's session and what it declared.
struct Net {
    session: zenoh::Session,
    keys: Keys,
    served: Arc<Mutex<Served>>,
    streams: [Publisher; 2],
    _queryables: Vec<zenoh::query::Queryable<()>>,
    drops: DropPlan,
    /// The schedule's epochs as published (exact rotations), by epoch.
    exact: BTreeMap<u64, Vec<u8>>,
}

impl Net {
    fn open(spec: &RunSpec, net: &ZenohSpec) -> Result<Self, CliError> {
        let keys = Keys::new(&net.run_id).map_err(|e| CliError::internal(e.to_string()))?;
        let drops = DropPlan::from_env().map_err(CliError::input)?;
        let session = session::open(net, Side::Listen)?;
        let start = RunStart {
            run_id: net.run_id.clone(),
            source: spec.source_kind().to_string(),
            camera_hz: spec.camera_hz,
            lidar_hz: spec.lidar_hz,
            duration_s: spec.duration_s,
            max_rate: spec.max_rate,
            camera_capacity: net.camera_capacity,
            lidar_capacity: net.lidar_capacity,
            expected_lidar_frames: net.expected_lidar_frames,
        };
        let served =
            Arc::new(Mutex::new(Served { run: RunMessage::Start(start).encode(), epochs: BTreeMap::new() }));
        // Before the start, a late joiner may already learn what the calibration service
        // will announce at once (the whole table at max rate and in replays).
        let all_at_start = spec.max_rate || !matches!(spec.source, SourceSpec::Sim);
        let due =
            bridge::epochs::announced(&spec.epochs, all_at_start, calib::service::DEFAULT_LEAD_TIME, None);
        let exact: BTreeMap<u64, Vec<u8>> = net.epochs.iter().cloned().collect();
        for epoch in due {
            if let Some(bytes) = exact.get(&epoch.0) {
                served.lock().epochs.insert(keys.calib(epoch), bytes.clone());
            }
        }
        let run_q = {
            let served = Arc::clone(&served);
            let key = keys.run();
            session
                .declare_queryable(keys.run())
                .callback(move |q| {
                    let bytes = served.lock().run.clone();
                    let _ = q.reply(key.clone(), bytes).wait();
                })
                .wait()
                .map_err(|e| broke("queryable", &e))?
        };
        let calib_q = {
            let served = Arc::clone(&served);
            session
                .declare_queryable(keys.calib_all())
                .callback(move |q| {
                    let table: Vec<_> =
                        served.lock().epochs.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                    for (k, v) in table {
                        let _ = q.reply(k, v).wait();
                    }
                })
                .wait()
                .map_err(|e| broke("queryable", &e))?
        };
        let publisher = |kind: StreamKind| {
            session
                .declare_publisher(keys.stream(kind))
                .congestion_control(CongestionControl::Block)
                .wait()
                .map_err(|e| broke("publisher", &e))
        };
        let streams = [publisher(StreamKind::Camera)?, publisher(StreamKind::Lidar)?];
        Ok(Self { session, keys, served, streams, _queryables: vec![run_q, calib_q], drops, exact })
    }

    /// Waits until a subscriber matches both streams, `wait` passes, or the role is stopped.
    fn wait_for_subscriber(&self, wait: Duration, stop: &calib::StopFlag) -> bool {
        let deadline = Instant::now() + wait;
        loop {
            let matched = self.streams.iter().all(|p| p.matching_status().wait().is_ok_and(|m| m.matching()));
            if matched {
                return true;
            }
            if Instant::now() >= deadline || stop.is_raised() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn put(&self, key: String, bytes: Vec<u8>) -> Result<(), CliError> {
        self.session
            .put(key, bytes)
            .congestion_control(CongestionControl::Block)
            .wait()
            .map_err(|e| broke("put", &e))
    }

    fn publish_epoch(&mut self, set: &calib::CalibrationSet) -> Result<(), CliError> {
        let key = self.keys.calib(set.epoch);
        // The schedule's own set where there is one, before any wire round trip: a remote
        // puts every set it takes through the round trip of a run spec (as this run's calib
        // role did with the schedule), so the table's copy, already round-tripped, would be
        // rounded twice there and differ in the last bit.
        let bytes = self.exact.get(&set.epoch.0).cloned().unwrap_or_else(|| bridge::epochs::encode(set));
        self.served.lock().epochs.insert(key.clone(), bytes.clone());
        if self.drops.drop_next(What::Calib) {
            return Ok(());
        }
        self.put(key, bytes)
    }

    fn publish_frame(
        &mut self,
        kind: StreamKind,
        header: &SampleHeader,
        payload: &[u8],
    ) -> Result<(), CliError> {
        if self.drops.drop_next(What::Frame(kind)) {
            return Ok(());
        }
        let i = usize::from(kind == StreamKind::Lidar);
        let header = SampleHeader { sent_ns: calib::clock::monotonic_ns(), ..*header };
        self.streams[i].put(header.sample(payload)).wait().map_err(|e| broke("put", &e))
    }

    fn end(&self, end: RunEnd) -> Result<(), CliError> {
        let bytes = RunMessage::End(end).encode();
        self.served.lock().run.clone_from(&bytes);
        self.put(self.keys.run(), bytes)
    }
}

/// Runs the publishing bridge role.
///
/// # Errors
/// Exit 2 for a bad endpoint or config; exit 3 if the session or the rings fail.
pub fn run(run: &Path, spec: &RunSpec, net: &ZenohSpec) -> Result<(), CliError> {
    let stop = stop_flag()?;
    let mut z = Net::open(spec, net)?;
    if !z.wait_for_subscriber(Duration::from_secs_f64(net.wait_s), &stop) {
        tracing::info!("no subscriber within {} s: the run starts anyway", net.wait_s);
    }
    let start = z.served.lock().run.clone();
    z.put(z.keys.run(), start)?;
    ready()?;
    let attach = |kind| {
        attach_when_ready(&run.join(rundir::segment_file(kind)), kind, &stop, Duration::from_secs(30))
            .map_err(|e| CliError::internal(format!("{kind} ring: {e}")))
    };
    let (Some(camera), Some(lidar)) = (attach(StreamKind::Camera)?, attach(StreamKind::Lidar)?) else {
        return z.end(RunEnd::default());
    };
    let end = pump(&mut z, run, [camera, lidar], &stop)?;
    z.end(end)?;
    // The end message is queued behind every frame; closing flushes the queues.
    let _ = z.session.close().wait();
    Ok(())
}

/// Reads the rings until stopped and they are drained; returns what was published.
fn pump(
    z: &mut Net,
    run: &Path,
    mut rings: [RingReader; 2],
    stop: &calib::StopFlag,
) -> Result<RunEnd, CliError> {
    for r in &mut rings {
        r.seek_oldest();
    }
    let mut calib = CalibFollower::table_only(&CalibFollower::table_in(run));
    let mut end = RunEnd::default();
    let mut buf = Vec::new();
    loop {
        // Epochs first, so a remote learns an epoch before the frames that carry it.
        for set in calib.poll() {
            z.publish_epoch(&set)?;
        }
        let mut idle = true;
        for (reader, kind) in rings.iter_mut().zip([StreamKind::Camera, StreamKind::Lidar]) {
            match reader.read_next(&mut buf) {
                ReadOutcome::Frame(info) => {
                    idle = false;
                    let header = SampleHeader {
                        kind,
                        seq: info.seq.0,
                        capture: info.capture,
                        epoch: info.epoch,
                        size: buf.len() as u64,
                        sent_ns: 0,
                    };
                    z.publish_frame(kind, &header, &buf)?;
                    let (published, next) = if kind == StreamKind::Camera {
                        (&mut end.camera_published, &mut end.camera_next_seq)
                    } else {
                        (&mut end.lidar_published, &mut end.lidar_next_seq)
                    };
                    *published += 1;
                    *next = info.seq.0 + 1;
                }
                ReadOutcome::Empty | ReadOutcome::Torn => {}
                _ => idle = false,
            }
        }
        if idle {
            if stop.is_raised() {
                return Ok(end);
            }
            if rings[0].lag() == 0 {
                rings[1].wait(Duration::from_millis(5));
            }
        }
    }
}
