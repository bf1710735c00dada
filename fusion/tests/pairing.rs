//! Pairing rules: unit cases and a property test over random event interleavings.

use std::collections::{BTreeSet, HashMap};

use fusion::pairing::{Fate, FrameMeta, Output, PairCounters, Pairer, PairingConfig, PairingMode};
use proptest::prelude::*;
use shared::{CalibEpoch, FrameSeq, StreamKind, TimestampNs};

const MS: u64 = 1_000_000;

/// A pairer driven in milliseconds, with payload = a unique id per push.
struct H {
    p: Pairer<u64>,
    out: Vec<Output<u64>>,
    now: u64,
    next_id: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fused {
    cam: u64,
    lid: u64,
    calib: u64,
}

impl H {
    fn new(cfg: PairingConfig) -> Self {
        Self { p: Pairer::new(cfg), out: Vec::new(), now: 0, next_id: 0 }
    }

    fn epoch() -> Self {
        Self::new(PairingConfig::for_camera_rate(30.0))
    }

    fn meta(seq: u64, t_ms: u64, e: u64) -> FrameMeta {
        FrameMeta {
            seq: FrameSeq(seq),
            capture: TimestampNs(t_ms * MS),
            epoch: CalibEpoch(e),
            published: TimestampNs(0),
        }
    }

    fn at(&mut self, now_ms: u64) -> &mut Self {
        self.now = self.now.max(now_ms * MS);
        self
    }

    fn cam(&mut self, seq: u64, t_ms: u64, e: u64) -> &mut Self {
        self.next_id += 1;
        self.now = self.now.max(t_ms * MS);
        self.p.push(
            StreamKind::Camera,
            Self::meta(seq, t_ms, e),
            self.next_id,
            TimestampNs(self.now),
            &mut self.out,
        );
        self
    }

    fn lid(&mut self, seq: u64, t_ms: u64, e: u64) -> &mut Self {
        self.next_id += 1;
        self.now = self.now.max(t_ms * MS);
        self.p.push(
            StreamKind::Lidar,
            Self::meta(seq, t_ms, e),
            self.next_id,
            TimestampNs(self.now),
            &mut self.out,
        );
        self
    }

    fn calib(&mut self, e: u64) -> &mut Self {
        self.p.add_calibration(CalibEpoch(e), TimestampNs(self.now), &mut self.out);
        self
    }

    fn tick(&mut self, now_ms: u64) -> &mut Self {
        self.at(now_ms);
        self.p.tick(TimestampNs(self.now), &mut self.out);
        self
    }

    fn finish(&mut self) -> &mut Self {
        self.p.finish(TimestampNs(self.now), &mut self.out);
        self
    }

    fn fused(&self) -> Vec<Fused> {
        self.out
            .iter()
            .filter_map(|o| match o {
                Output::Fuse { camera, lidar, calib, .. } => {
                    Some(Fused { cam: camera.meta.seq.0, lid: lidar.meta.seq.0, calib: calib.0 })
                }
                Output::Release { .. } => None,
            })
            .collect()
    }

    fn released(&self, stream: StreamKind, fate: Fate) -> Vec<u64> {
        self.out
            .iter()
            .filter_map(|o| match o {
                Output::Release { stream: s, frame, fate: f } if *s == stream && *f == fate => {
                    Some(frame.meta.seq.0)
                }
                _ => None,
            })
            .collect()
    }

    fn c(&self) -> PairCounters {
        *self.p.counters()
    }
}

fn f(cam: u64, lid: u64, calib: u64) -> Fused {
    Fused { cam, lid, calib }
}

#[test]
fn matching_epochs_pair() {
    let mut h = H::epoch();
    h.calib(1).cam(1, 0, 1).lid(1, 2, 1);
    assert!(h.fused().is_empty(), "not safe yet: no camera frame at or after the sweep");
    h.cam(2, 33, 1);
    assert_eq!(h.fused(), vec![f(1, 1, 1)]);
    let c = h.c();
    assert_eq!(
        (c.fused, c.fused_epoch_mismatch, c.rejected_epoch_mismatch, c.forced_decisions),
        (1, 0, 0, 0)
    );
    h.finish();
    assert_eq!(h.c().unpaired_camera, 1);
    assert_eq!(h.p.held(), (0, 0));
}

#[test]
fn decides_as_soon_as_a_camera_frame_at_or_after_the_sweep_exists() {
    let mut h = H::epoch();
    h.calib(1).cam(1, 100, 1).lid(1, 100, 1);
    assert_eq!(h.fused(), vec![f(1, 1, 1)]);
}

#[test]
fn cross_epoch_nearest_is_rejected_and_same_epoch_used() {
    let mut h = H::epoch();
    // Sweep of epoch 1 at 48 ms: nearest is camera 2 (epoch 2, 2 ms away): rejected; camera 1
    // (epoch 1, 15 ms away, within 16.7 ms) is used instead.
    h.calib(1).calib(2).cam(1, 33, 1).cam(2, 50, 2).lid(1, 48, 1);
    assert_eq!(h.fused(), vec![f(1, 1, 1)]);
    assert_eq!(h.c().rejected_epoch_mismatch, 1);
    assert_eq!(h.c().fused_epoch_mismatch, 0);
}

#[test]
fn cross_epoch_nearest_without_same_epoch_leaves_sweep_unpaired() {
    let mut h = H::epoch();
    h.calib(1).calib(2).cam(1, 0, 1).cam(2, 10, 2).lid(1, 12, 1).cam(3, 40, 2);
    // Camera 1 is 12 ms away and epoch 1: it is used; then a sweep of epoch 2 whose only
    // in-skew frame is epoch 1.
    assert_eq!(h.fused(), vec![f(1, 1, 1)]);
    let mut h = H::epoch();
    h.calib(1).calib(2).cam(1, 0, 1).lid(1, 5, 2).cam(2, 33, 2);
    assert!(h.fused().is_empty());
    assert_eq!(h.released(StreamKind::Lidar, Fate::Unpaired), vec![1]);
    assert_eq!(h.c().rejected_epoch_mismatch, 1);
}

#[test]
fn waits_for_delayed_calibration_then_fuses() {
    let mut h = H::epoch();
    h.cam(1, 0, 1).lid(1, 0, 1).cam(2, 33, 1).tick(500);
    assert!(h.fused().is_empty());
    assert_eq!(h.p.held(), (2, 1));
    h.calib(1);
    assert_eq!(h.fused(), vec![f(1, 1, 1)]);
    assert_eq!(h.c().dropped_no_calibration(), 0);
}

#[test]
fn drops_at_the_calibration_timeout() {
    let mut h = H::epoch();
    h.cam(1, 0, 1).lid(1, 0, 1).cam(2, 33, 1);
    let deadline = h.p.next_deadline().unwrap();
    assert_eq!(deadline, TimestampNs(1000 * MS), "the sweep and camera 1 waited since 0 ms");
    h.tick(999);
    assert!(h.out.is_empty());
    h.tick(1000);
    assert_eq!(h.released(StreamKind::Lidar, Fate::DroppedNoCalibration), vec![1]);
    assert_eq!(h.released(StreamKind::Camera, Fate::DroppedNoCalibration), vec![1]);
    h.tick(1033).calib(1).finish();
    let c = h.c();
    assert_eq!((c.fused, c.dropped_no_calibration_lidar, c.dropped_no_calibration_camera), (0, 1, 2));
}

#[test]
fn epoch_zero_is_dropped_on_arrival() {
    let mut h = H::epoch();
    h.calib(1).cam(1, 0, 0).lid(1, 0, 0);
    assert_eq!(h.c().dropped_no_calibration(), 2);
    assert_eq!(h.p.held(), (0, 0));
}

#[test]
fn no_frame_is_fused_twice() {
    let mut h = H::epoch();
    // Two sweeps both nearest to camera 1; the second cannot have it.
    h.calib(1).cam(1, 0, 1).lid(1, 0, 1).lid(2, 4, 1).cam(2, 100, 1);
    assert_eq!(h.fused(), vec![f(1, 1, 1)]);
    assert_eq!(h.released(StreamKind::Lidar, Fate::Unpaired), vec![2]);
    h.finish();
    let fused_cams: Vec<_> = h.fused().iter().map(|x| x.cam).collect();
    assert_eq!(fused_cams, vec![1]);
}

#[test]
fn out_of_order_sweeps_and_cameras() {
    let mut h = H::epoch();
    h.calib(1);
    // Sweeps arrive newest first, before any camera frame.
    h.lid(2, 100, 1).lid(1, 0, 1);
    for (seq, t) in [(1, 0), (2, 33), (3, 66), (4, 100), (5, 133)] {
        h.cam(seq, t, 1);
    }
    assert_eq!(h.fused(), vec![f(1, 1, 1), f(4, 2, 1)]);
    // A camera frame arriving late (after a later one) is still used if the sweep comes after.
    let mut h = H::epoch();
    h.calib(1).cam(2, 233, 1).cam(1, 200, 1).lid(1, 201, 1);
    assert_eq!(h.fused(), vec![f(1, 1, 1)]);
}

#[test]
fn duplicates_are_ignored_and_counted() {
    let mut h = H::epoch();
    h.calib(1).cam(1, 0, 1).cam(1, 0, 1).lid(1, 0, 1).lid(1, 0, 1).cam(1, 7, 1);
    assert_eq!(h.fused(), vec![f(1, 1, 1)]);
    assert_eq!(h.released(StreamKind::Camera, Fate::Duplicate), vec![1, 1]);
    assert_eq!(h.released(StreamKind::Lidar, Fate::Duplicate), vec![1]);
    let c = h.c();
    assert_eq!((c.duplicate_camera, c.duplicate_lidar, c.camera_accepted, c.lidar_accepted), (2, 1, 1, 1));
}

#[test]
fn epoch_switch() {
    // Camera 30 Hz; calibration switches at 45 ms: frames at 0 and 33 carry epoch 1, at 66
    // and later epoch 2.
    let cams = [(1, 0, 1), (2, 33, 1), (3, 66, 2), (4, 100, 2)];
    let run = |sweep: (u64, u64)| {
        let mut h = H::epoch();
        h.calib(1).calib(2);
        for (s, t, e) in cams {
            h.cam(s, t, e);
        }
        h.lid(1, sweep.0, sweep.1).finish();
        (h.fused(), h.c().rejected_epoch_mismatch, h.c().unpaired_lidar)
    };
    // Sweep just after the switch (epoch 2), nearest frame is epoch 1 (12 ms) and the
    // epoch-2 frame is 21 ms away, beyond max_skew: rejected, unpaired.
    assert_eq!(run((45, 2)), (vec![], 1, 1));
    // Sweep of epoch 2 at 52: nearest frame is 66 (14 ms, epoch 2): fused, nothing rejected.
    assert_eq!(run((52, 2)), (vec![f(3, 1, 2)], 0, 0));
    // Sweep of epoch 2 at 48: nearest is 33 (15 ms, epoch 1), 66 is 18 ms: rejected, unpaired.
    assert_eq!(run((48, 2)), (vec![], 1, 1));
    // Sweep of epoch 1 at 44: 33 (11 ms, epoch 1) is nearest: fused.
    assert_eq!(run((44, 1)), (vec![f(2, 1, 1)], 0, 0));
    // Sweep of epoch 2 at 50: 33 is 17 ms (out of skew), 66 is 16 ms, epoch 2: fused.
    assert_eq!(run((50, 2)), (vec![f(3, 1, 2)], 0, 0));
}

#[test]
fn latest_mode_fuses_mismatched_pairs_and_counts_them() {
    let mut h = H::new(PairingConfig::for_camera_rate(30.0).with_mode(PairingMode::Latest));
    h.calib(1).calib(2);
    h.cam(1, 0, 1).lid(1, 0, 1); // both epoch 1, projected with epoch 2: mismatch
    h.cam(2, 100, 2).lid(2, 100, 2); // all epoch 2: fine
    h.cam(3, 200, 1).lid(3, 201, 2).cam(4, 233, 2); // frames differ: mismatch
    assert_eq!(h.fused(), vec![f(1, 1, 2), f(2, 2, 2), f(3, 3, 2)]);
    let c = h.c();
    assert_eq!((c.fused, c.fused_epoch_mismatch, c.rejected_epoch_mismatch), (3, 2, 0));
}

#[test]
fn latest_mode_waits_for_any_calibration() {
    let mut h = H::new(PairingConfig::for_camera_rate(30.0).with_mode(PairingMode::Latest));
    h.cam(1, 0, 3).lid(1, 0, 3);
    assert!(h.fused().is_empty());
    h.calib(1);
    assert_eq!(h.fused(), vec![f(1, 1, 1)]);
    assert_eq!(h.c().fused_epoch_mismatch, 1);
}

#[test]
fn sweep_is_decided_at_its_timeout_when_the_camera_stalls() {
    let mut h = H::epoch();
    h.calib(1).cam(1, 0, 1).lid(1, 10, 1);
    assert_eq!(h.p.next_deadline(), Some(TimestampNs(260 * MS)));
    h.tick(259);
    assert!(h.fused().is_empty());
    h.tick(260);
    assert_eq!(h.fused(), vec![f(1, 1, 1)]);
    assert_eq!(h.c().forced_decisions, 1);
}

#[test]
fn min_interval_hint_decides_early() {
    let mut cfg = PairingConfig::for_camera_rate(30.0);
    cfg.camera_min_interval_ns = Some(30 * MS);
    let mut h = H::new(cfg);
    // Next camera frame comes at ≥ 63 ms: 23 ms from the sweep, farther than camera 1 (7 ms).
    h.calib(1).cam(1, 33, 1).lid(1, 40, 1);
    assert_eq!(h.fused(), vec![f(1, 1, 1)]);
    // Without the hint it waits.
    let mut h = H::epoch();
    h.calib(1).cam(1, 33, 1).lid(1, 40, 1);
    assert!(h.fused().is_empty());
    // With the hint, a sweep whose best frame could still be beaten waits: the next frame
    // may come at 63 ms, 3 ms away, nearer than camera 1 (27 ms, out of skew anyway).
    let mut h = H::new(cfg);
    h.calib(1).cam(1, 33, 1).lid(1, 60, 1);
    assert!(h.fused().is_empty());
}

#[test]
fn buffers_are_bounded() {
    let mut cfg = PairingConfig::for_camera_rate(30.0);
    cfg.max_held_camera = 4;
    cfg.max_pending_lidar = 2;
    let mut h = H::new(cfg);
    for i in 0..10 {
        h.cam(i, i * 33, 1);
        if i % 3 == 0 {
            h.lid(i, i * 33, 1);
        }
        let (c, l) = h.p.held();
        assert!(c <= 4 && l <= 2, "held {c} {l}");
    }
    h.calib(1).finish();
    let c = h.c();
    assert_eq!(c.camera_accepted, c.fused + c.dropped_no_calibration_camera + c.unpaired_camera);
    assert_eq!(c.lidar_accepted, c.fused + c.dropped_no_calibration_lidar + c.unpaired_lidar);
    assert!(c.dropped_no_calibration_lidar >= 2 && c.dropped_no_calibration_camera >= 6);
}

#[test]
fn stale_cameras_leave_as_unpaired() {
    let mut h = H::epoch();
    h.calib(1);
    for i in 0..30 {
        h.cam(i, i * 33, 1);
        if i % 3 == 0 {
            h.lid(i, i * 33, 1);
        }
    }
    let (held_cams, _) = h.p.held();
    assert!(held_cams <= 4, "{held_cams}");
    assert_eq!(h.c().fused, 10);
    assert_eq!(h.c().unpaired_camera + held_cams as u64, 20);
}

// ---------------------------------------------------------------------------------------
// Property test.

#[derive(Clone, Debug)]
enum Ev {
    Cam { seq: u64, t: u64, e: u64 },
    Lid { seq: u64, t: u64, e: u64 },
    Calib(u64),
    Tick(u64),
}

fn ev() -> impl Strategy<Value = Ev> {
    prop_oneof![
        4 => (0u64..60, 0u64..1500, 0u64..4).prop_map(|(seq, t, e)| Ev::Cam { seq, t, e }),
        2 => (0u64..30, 0u64..1500, 0u64..4).prop_map(|(seq, t, e)| Ev::Lid { seq, t, e }),
        1 => (1u64..4).prop_map(Ev::Calib),
        2 => (0u64..200).prop_map(Ev::Tick),
    ]
}

fn cfg() -> impl Strategy<Value = PairingConfig> {
    (
        prop_oneof![Just(PairingMode::Epoch), Just(PairingMode::Latest)],
        1u64..40,
        proptest::option::of(5u64..40),
        50u64..600,
        20u64..300,
        50u64..600,
        1usize..10,
        1usize..6,
    )
        .prop_map(|(mode, skew, mi, ct, lt, camt, mc, ml)| PairingConfig {
            mode,
            max_skew_ns: skew * MS,
            camera_min_interval_ns: mi.map(|m| m * MS),
            calib_timeout_ns: ct * MS,
            lidar_timeout_ns: lt * MS,
            camera_timeout_ns: camt * MS,
            max_held_camera: mc,
            max_pending_lidar: ml,
            duplicate_window: 4096,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn invariants_hold_over_random_interleavings(cfg in cfg(), events in proptest::collection::vec(ev(), 0..160)) {
        let mut p: Pairer<u64> = Pairer::new(cfg);
        let mut out = Vec::new();
        let mut now = 0u64;
        let mut known = BTreeSet::new();
        // id → (stream, meta, duplicate expected)
        let mut pushed: HashMap<u64, (StreamKind, FrameMeta, bool)> = HashMap::new();
        let mut seen: [BTreeSet<u64>; 2] = [BTreeSet::new(), BTreeSet::new()];
        let mut outputs: Vec<(u64, Output<u64>)> = Vec::new(); // (now, output) in order
        let mut known_at: Vec<(u64, BTreeSet<u64>)> = Vec::new();
        for (id, evt) in events.iter().enumerate() {
            let id = id as u64;
            now += 3 * MS;
            match *evt {
                Ev::Cam { seq, t, e } | Ev::Lid { seq, t, e } => {
                    let stream = if matches!(evt, Ev::Cam { .. }) { StreamKind::Camera } else { StreamKind::Lidar };
                    let meta = FrameMeta { seq: FrameSeq(seq), capture: TimestampNs(t * MS), epoch: CalibEpoch(e), published: TimestampNs(0) };
                    let dup = !seen[usize::from(stream == StreamKind::Lidar)].insert(seq);
                    pushed.insert(id, (stream, meta, dup));
                    p.push(stream, meta, id, TimestampNs(now), &mut out);
                }
                Ev::Calib(e) => {
                    known.insert(e);
                    p.add_calibration(CalibEpoch(e), TimestampNs(now), &mut out);
                }
                Ev::Tick(ms) => {
                    now += ms * MS;
                    p.tick(TimestampNs(now), &mut out);
                }
            }
            for o in out.drain(..) {
                known_at.push((outputs.len() as u64, known.clone()));
                outputs.push((now, o));
            }
            let (hc, hl) = p.held();
            prop_assert!(hc <= cfg.max_held_camera && hl <= cfg.max_pending_lidar);
        }
        p.finish(TimestampNs(now), &mut out);
        for o in out.drain(..) {
            known_at.push((outputs.len() as u64, known.clone()));
            outputs.push((now, o));
        }
        prop_assert_eq!(p.held(), (0, 0));

        // Every pushed frame comes back exactly once.
        let mut returned: HashMap<u64, usize> = HashMap::new();
        let mut fused_seqs: [BTreeSet<u64>; 2] = [BTreeSet::new(), BTreeSet::new()];
        let (mut n_fused, mut n_mismatch) = (0u64, 0u64);
        for (i, (_, o)) in outputs.iter().enumerate() {
            let known_then = &known_at[i].1;
            match o {
                Output::Fuse { camera, lidar, calib, .. } => {
                    *returned.entry(camera.payload).or_default() += 1;
                    *returned.entry(lidar.payload).or_default() += 1;
                    prop_assert_eq!(pushed[&camera.payload].0, StreamKind::Camera);
                    prop_assert_eq!(pushed[&lidar.payload].0, StreamKind::Lidar);
                    // No frame fused twice.
                    prop_assert!(fused_seqs[0].insert(camera.meta.seq.0), "camera fused twice");
                    prop_assert!(fused_seqs[1].insert(lidar.meta.seq.0), "lidar fused twice");
                    // Within max_skew.
                    prop_assert!(camera.meta.capture.abs_diff(lidar.meta.capture) <= cfg.max_skew_ns);
                    // The applied calibration is known.
                    prop_assert!(known_then.contains(&calib.0));
                    n_fused += 1;
                    let (ce, le) = (camera.meta.epoch, lidar.meta.epoch);
                    if ce != le || *calib != le || *calib != ce {
                        n_mismatch += 1;
                    }
                    match cfg.mode {
                        PairingMode::Epoch => {
                            prop_assert_eq!(ce, le);
                            prop_assert_eq!(*calib, le);
                        }
                        PairingMode::Latest => {
                            prop_assert_eq!(Some(&calib.0), known_then.last());
                        }
                    }
                }
                Output::Release { stream, frame, fate } => {
                    *returned.entry(frame.payload).or_default() += 1;
                    let (s, meta, dup) = pushed[&frame.payload];
                    prop_assert_eq!(*stream, s);
                    prop_assert_eq!(frame.meta, meta);
                    prop_assert_eq!(*fate == Fate::Duplicate, dup);
                }
            }
        }
        prop_assert_eq!(returned.len(), pushed.len());
        prop_assert!(returned.values().all(|&n| n == 1));

        // Counters add up.
        let c = *p.counters();
        prop_assert_eq!(c.fused, n_fused);
        prop_assert_eq!(c.fused_epoch_mismatch, n_mismatch);
        if cfg.mode == PairingMode::Epoch {
            prop_assert_eq!(c.fused_epoch_mismatch, 0);
        } else {
            prop_assert_eq!(c.rejected_epoch_mismatch, 0);
        }
        prop_assert_eq!(c.camera_accepted, c.fused + c.dropped_no_calibration_camera + c.unpaired_camera);
        prop_assert_eq!(c.lidar_accepted, c.fused + c.dropped_no_calibration_lidar + c.unpaired_lidar);
        prop_assert!(c.rejected_epoch_mismatch <= c.lidar_accepted);
        let dups = pushed.values().filter(|v| v.2).count() as u64;
        prop_assert_eq!(c.duplicates(), dups);
        prop_assert_eq!(c.camera_accepted + c.lidar_accepted + dups, pushed.len() as u64);
    }

    #[test]
    fn deterministic(cfg in cfg(), events in proptest::collection::vec(ev(), 0..80)) {
        let run = || {
            let mut p: Pairer<u64> = Pairer::new(cfg);
            let mut out = Vec::new();
            let mut now = 0;
            for (id, e) in events.iter().enumerate() {
                now += 3 * MS;
                match *e {
                    Ev::Cam { seq, t, e } => p.push(StreamKind::Camera, FrameMeta { seq: FrameSeq(seq), capture: TimestampNs(t * MS), epoch: CalibEpoch(e), published: TimestampNs(0) }, id as u64, TimestampNs(now), &mut out),
                    Ev::Lid { seq, t, e } => p.push(StreamKind::Lidar, FrameMeta { seq: FrameSeq(seq), capture: TimestampNs(t * MS), epoch: CalibEpoch(e), published: TimestampNs(0) }, id as u64, TimestampNs(now), &mut out),
                    Ev::Calib(e) => p.add_calibration(CalibEpoch(e), TimestampNs(now), &mut out),
                    Ev::Tick(ms) => { now += ms * MS; p.tick(TimestampNs(now), &mut out); }
                }
            }
            p.finish(TimestampNs(now), &mut out);
            (out, *p.counters())
        };
        prop_assert_eq!(run(), run());
    }
}
