//! The calibration service end to end: schedules, delivery plans, late joiners, peers that
//! misbehave, the socket file, idleness.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use calib::{
    CalibService, CalibStore, CalibSubscriber, CalibTableReader, DeliveryPlan, PipelineClock, RecvError,
    Schedule, ServiceConfig, ServiceError,
};
use common::{config_in, epochs, eventually, recv_n, rig, Running};
use rustix::net::{
    connect, send, socket_with, AddressFamily, SendFlags, SocketAddrUnix, SocketFlags, SocketType,
};
use shared::{CalibEpoch, Role, TimestampNs};

const LONG: Duration = Duration::from_secs(10);

#[test]
fn backlog_then_updates_ahead_of_valid_from() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config_in(dir.path());
    cfg.schedule = Schedule::LeadTime(Duration::from_millis(100));
    let svc = Running::start(cfg, vec![rig(1, 0), rig(2, 300), rig(3, 600)]);
    let mut sub = CalibSubscriber::connect(&svc.socket, Role::Camera).unwrap();
    let got = recv_n(&mut sub, 3, LONG, svc.clock);
    assert_eq!(epochs(&got), [1, 2, 3], "{got:?}");
    // Never announced before valid_from − lead (the clock cannot run early).
    assert!(got[1].1 >= 200 && got[2].1 >= 500, "{got:?}");
    assert_eq!(sub.updates_received(), 3);
    assert_eq!(sub.rejected_messages(), 0);
    // A later subscriber gets every live epoch at once.
    let mut late = CalibSubscriber::connect(&svc.socket, Role::Monitor).unwrap();
    assert_eq!(epochs(&recv_n(&mut late, 3, LONG, svc.clock)), [1, 2, 3]);
    let stats = svc.stop();
    assert_eq!(stats.epochs_announced, 3);
    assert_eq!(stats.updates_sent, 6);
    assert_eq!(stats.subscribers_accepted, 2);
    assert_eq!(stats.table_writes, 3);
}

#[test]
fn all_at_start_announces_everything_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config_in(dir.path());
    cfg.schedule = Schedule::AllAtStart;
    let svc = Running::start(cfg, vec![rig(1, 0), rig(2, 60_000), rig(3, 120_000)]);
    let mut sub = CalibSubscriber::connect(&svc.socket, Role::Fusion).unwrap();
    let got = recv_n(&mut sub, 3, LONG, svc.clock);
    assert_eq!(epochs(&got), [1, 2, 3]);
    assert_eq!(sub.last_epoch(), CalibEpoch(3));
}

#[test]
fn delay_plan_delivers_late_to_that_role_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config_in(dir.path());
    cfg.schedule = Schedule::LeadTime(Duration::from_millis(500));
    cfg.plan = DeliveryPlan::new().delay(CalibEpoch(2), Role::Fusion, Duration::from_millis(400));
    // Epoch 2 is announced at 500 ms; epoch 3 at 2500 ms, long after the delayed message.
    let svc = Running::start(cfg, vec![rig(1, 0), rig(2, 1000), rig(3, 3000)]);
    let mut fusion = CalibSubscriber::connect(&svc.socket, Role::Fusion).unwrap();
    let mut camera = CalibSubscriber::connect(&svc.socket, Role::Camera).unwrap();
    let f = recv_n(&mut fusion, 2, LONG, svc.clock);
    let c = recv_n(&mut camera, 2, LONG, svc.clock);
    assert_eq!(epochs(&f), [1, 2]);
    assert_eq!(epochs(&c), [1, 2]);
    assert!(c[1].1 >= 500, "{c:?}");
    assert!(f[1].1 >= 900, "fusion got epoch 2 only 400 ms after the camera: {f:?} {c:?}");
    let stats = svc.stop();
    assert_eq!(stats.updates_delayed, 1);
}

#[test]
fn overtaken_delayed_message_is_rejected_and_the_table_recovers_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config_in(dir.path());
    cfg.schedule = Schedule::AllAtStart;
    cfg.plan = DeliveryPlan::new().delay(CalibEpoch(2), Role::Fusion, Duration::from_millis(200));
    let svc = Running::start(cfg, vec![rig(1, 0), rig(2, 1000), rig(3, 2000)]);
    let mut fusion = CalibSubscriber::connect(&svc.socket, Role::Fusion).unwrap();
    let mut store = CalibStore::new();
    for set in recv_n(&mut fusion, 2, LONG, svc.clock) {
        assert_ne!(set.0, 2);
    }
    // Epoch 2 arrives after 3: out of order, rejected and counted, not fatal.
    assert!(eventually(LONG, || {
        let _ = fusion.try_recv().unwrap();
        fusion.rejected_messages() == 1
    }));
    assert!(matches!(fusion.last_rejection(), Some(calib::subscriber::Rejection::OutOfOrder { .. })));
    assert_eq!(fusion.updates_received(), 2);
    assert_eq!(store.recover_from_table(svc.table.as_ref().unwrap()).unwrap(), 3);
    assert_eq!(store.get(CalibEpoch(2)).unwrap().epoch, CalibEpoch(2));
}

#[test]
fn drop_plan_skips_that_role_and_the_table_still_has_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config_in(dir.path());
    cfg.schedule = Schedule::AllAtStart;
    cfg.plan = DeliveryPlan::new().drop_epoch(CalibEpoch(2), Role::Fusion);
    let svc = Running::start(cfg, vec![rig(1, 0), rig(2, 1000), rig(3, 2000)]);
    let mut fusion = CalibSubscriber::connect(&svc.socket, Role::Fusion).unwrap();
    let mut lidar = CalibSubscriber::connect(&svc.socket, Role::Lidar).unwrap();
    assert_eq!(epochs(&recv_n(&mut fusion, 2, LONG, svc.clock)), [1, 3]);
    assert_eq!(epochs(&recv_n(&mut lidar, 3, LONG, svc.clock)), [1, 2, 3]);
    // Nothing else is coming to fusion.
    assert!(fusion.recv_timeout(Duration::from_millis(200)).unwrap().is_none());
    let mut store = CalibStore::new();
    store.insert(rig(1, 0));
    store.insert(rig(3, 2000));
    assert!(store.get(CalibEpoch(2)).is_none());
    assert_eq!(store.recover_from_table(svc.table.as_ref().unwrap()).unwrap(), 1);
    assert_eq!(
        *store.get(CalibEpoch(2)).unwrap(),
        calib::wire::decode_update(&calib::wire::encode_update(&rig(2, 1000))).unwrap()
    );
    assert_eq!(store.newest_valid_at(TimestampNs(1_500_000_000)), Some(CalibEpoch(2)));
    let stats = svc.stop();
    assert_eq!(stats.updates_dropped, 1);
    assert_eq!(stats.table_writes, 3);
}

#[test]
fn late_joiner_recovers_every_epoch_from_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config_in(dir.path());
    cfg.schedule = Schedule::AllAtStart;
    let svc = Running::start(cfg, (1..=5).map(|e| rig(e, e * 100)).collect());
    let table = svc.table.clone().unwrap();
    // Wait for the announcements without a subscriber: the table alone.
    assert!(eventually(LONG, || CalibTableReader::attach(&table).map(|mut t| t.current_epoch()).ok()
        == Some(CalibEpoch(5))));
    let mut store = CalibStore::new();
    assert_eq!(store.recover_from_table(&table).unwrap(), 5);
    assert_eq!(store.epochs(), (1..=5).map(CalibEpoch).collect::<Vec<_>>());
    assert_eq!(store.recover_from_table(&table).unwrap(), 0, "merging again adds nothing");
    assert_eq!(store.newest_valid_at(TimestampNs(250_000_000)), Some(CalibEpoch(2)));
    assert_eq!(store.latest().unwrap().epoch, CalibEpoch(5));
    // What the table holds is exactly what the socket delivers.
    let mut sub = CalibSubscriber::connect(&svc.socket, Role::Fusion).unwrap();
    for e in 1..=5 {
        let set = sub.recv_timeout(LONG).unwrap().unwrap();
        assert_eq!(*store.get(CalibEpoch(e)).unwrap(), set);
    }
    // The table outlives the service: a restarted fusion can still recover.
    drop(svc);
    let mut again = CalibStore::new();
    assert_eq!(again.recover_from_table(&table).unwrap(), 5);
}

fn raw_client(path: &std::path::Path) -> std::os::fd::OwnedFd {
    let fd = socket_with(AddressFamily::UNIX, SocketType::SEQPACKET, SocketFlags::CLOEXEC, None).unwrap();
    connect(&fd, &SocketAddrUnix::new(path).unwrap()).unwrap();
    fd
}

/// Steps a hand-driven service until `done` holds (at most 100 steps).
fn step_until(svc: &mut CalibService, done: impl Fn(&CalibService) -> bool) {
    for _ in 0..100 {
        if done(svc) {
            return;
        }
        svc.step(Duration::from_millis(5)).unwrap();
    }
}

#[test]
fn the_gatekeeper_refuses_a_subscriber_that_publishes_and_counts_why() {
    // The service is stepped by hand here, so the counters are read without a race.
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config_in(dir.path());
    cfg.schedule = Schedule::AllAtStart;
    let mut svc = CalibService::bind(cfg, vec![rig(1, 0)], PipelineClock::start()).unwrap();
    let mut sub = CalibSubscriber::connect(svc.socket_path(), Role::Camera).unwrap();
    step_until(&mut svc, |s| s.stats().updates_sent == 1);
    assert_eq!(sub.try_recv().unwrap().map(|s| s.epoch), Some(CalibEpoch(1)));
    // A producer tries to publish a calibration: refused, counted, disconnected.
    send(&sub, &calib::wire::encode_update(&rig(2, 5)), SendFlags::empty()).unwrap();
    step_until(&mut svc, |s| s.stats().refused.publish_not_allowed == 1);
    assert_eq!(svc.stats().refused.publish_not_allowed, 1);
    // Garbage after a hello: refused as unexpected.
    let junk = CalibSubscriber::connect(svc.socket_path(), Role::Monitor).unwrap();
    step_until(&mut svc, |s| s.stats().subscribers_accepted == 2);
    send(&junk, b"garbage", SendFlags::empty()).unwrap();
    step_until(&mut svc, |s| s.stats().refused.unexpected == 1);
    assert_eq!(svc.stats().refused.unexpected, 1);
    // Nobody receives the forged epoch; the two offenders are gone.
    let mut other = CalibSubscriber::connect(svc.socket_path(), Role::Fusion).unwrap();
    step_until(&mut svc, |s| s.stats().subscribers_accepted == 3);
    for _ in 0..10 {
        svc.step(Duration::from_millis(5)).unwrap();
    }
    assert_eq!(other.try_recv().unwrap().map(|s| s.epoch), Some(CalibEpoch(1)));
    assert!(other.try_recv().unwrap().is_none());
    assert_eq!(svc.stats().subscribers_connected, 1);
    assert_eq!(svc.stats().peers_refused, 2);
}

#[test]
fn the_gatekeeper_admits_only_the_roles_its_policy_lists() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config_in(dir.path());
    cfg.schedule = Schedule::AllAtStart;
    cfg.policy.roles = vec![Role::Camera];
    let mut svc = CalibService::bind(cfg, vec![rig(1, 0)], PipelineClock::start()).unwrap();
    let _fusion = CalibSubscriber::connect(svc.socket_path(), Role::Fusion).unwrap();
    step_until(&mut svc, |s| s.stats().refused.role_not_allowed == 1);
    assert_eq!(svc.stats().refused.role_not_allowed, 1);
    assert_eq!(svc.stats().subscribers_accepted, 0);
    let mut camera = CalibSubscriber::connect(svc.socket_path(), Role::Camera).unwrap();
    step_until(&mut svc, |s| s.stats().updates_sent == 1);
    assert_eq!(camera.try_recv().unwrap().map(|s| s.epoch), Some(CalibEpoch(1)));
}

#[test]
fn a_peer_without_a_valid_hello_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Running::start(config_in(dir.path()), vec![rig(1, 0)]);
    let bad = raw_client(&svc.socket);
    send(&bad, b"not a hello", SendFlags::empty()).unwrap();
    // The service closes it: our read sees the end of the stream.
    let mut buf = [0u8; 64];
    let n = rustix::net::recv(&bad, &mut buf[..], rustix::net::RecvFlags::empty()).map(|r| r.1);
    assert!(matches!(n, Ok(0) | Err(rustix::io::Errno::CONNRESET)), "{n:?}");
    let stats = svc.stop();
    assert_eq!(stats.bad_hellos, 1);
    assert_eq!(stats.subscribers_accepted, 0);
}

#[test]
fn socket_is_0600_replaces_a_stale_one_and_refuses_a_second_service() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = ServiceConfig::new(dir.path().join("calib.sock"));
    // A socket file left by a dead process.
    drop(std::os::unix::net::UnixListener::bind(&cfg.socket_path).unwrap());
    assert!(cfg.socket_path.exists());
    let svc = CalibService::bind(cfg.clone(), vec![rig(1, 0)], PipelineClock::start()).unwrap();
    let mode = std::fs::metadata(&cfg.socket_path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let second = CalibService::bind(cfg.clone(), vec![rig(1, 0)], PipelineClock::start());
    assert!(matches!(second, Err(ServiceError::AlreadyRunning(_))), "{second:?}");
    drop(svc);
    assert!(!cfg.socket_path.exists(), "the socket is removed when the service stops");
    std::fs::write(&cfg.socket_path, b"x").unwrap();
    let third = CalibService::bind(cfg, vec![rig(1, 0)], PipelineClock::start());
    assert!(matches!(third, Err(ServiceError::PathOccupied(_))), "{third:?}");
}

#[test]
fn bad_epoch_lists_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let clock = PipelineClock::start();
    let cfg = ServiceConfig::new(dir.path().join("a.sock"));
    let dup = CalibService::bind(cfg.clone(), vec![rig(1, 0), rig(1, 5)], clock);
    assert!(matches!(dup, Err(ServiceError::EpochOrder(_))));
    let backwards = CalibService::bind(cfg.clone(), vec![rig(1, 100), rig(2, 50)], clock);
    assert!(matches!(backwards, Err(ServiceError::EpochOrder(_))));
    let mut nan = rig(1, 0);
    nan.camera_to_vehicle_mut().translation.x = f64::NAN;
    let bad = CalibService::bind(cfg, vec![nan], clock);
    assert!(
        matches!(bad, Err(ServiceError::InvalidEpoch { ref error, .. }) if error.field == "camera_to_vehicle.translation")
    );
}

#[test]
fn idle_service_uses_no_cpu_and_stops_promptly() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config_in(dir.path());
    // One epoch far in the future: nothing is due for the whole test.
    cfg.schedule = Schedule::LeadTime(Duration::from_millis(500));
    let clock = PipelineClock::start();
    let mut svc = CalibService::bind(cfg, vec![rig(1, 0), rig(2, 3_600_000)], clock).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s = std::sync::Arc::clone(&stop);
    let h = std::thread::spawn(move || {
        let cpu = || {
            let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
            t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
        };
        let before = cpu();
        svc.run(&s).unwrap();
        (cpu() - before, svc.stats())
    });
    let _sub = CalibSubscriber::connect(&dir.path().join("calib.sock"), Role::Monitor).unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    let t = Instant::now();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (cpu_ns, stats) = h.join().unwrap();
    assert!(t.elapsed() < Duration::from_millis(500), "stop took {:?}", t.elapsed());
    assert!(cpu_ns < 50_000_000, "idle service used {} ms of CPU in 1 s", cpu_ns / 1_000_000);
    assert_eq!(stats.epochs_announced, 1);
}

#[test]
fn subscriber_sees_the_service_go_away() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Running::start(config_in(dir.path()), vec![rig(1, 0)]);
    let mut sub = CalibSubscriber::connect(&svc.socket, Role::Fusion).unwrap();
    assert_eq!(epochs(&recv_n(&mut sub, 1, LONG, svc.clock)), [1]);
    svc.stop();
    assert!(matches!(sub.recv_timeout(LONG), Err(RecvError::Disconnected)));
    assert!(sub.is_disconnected());
    // With no service, connecting fails (and retrying gives up at its timeout).
    assert!(CalibSubscriber::connect_retry(
        &dir.path().join("calib.sock"),
        Role::Fusion,
        Duration::from_millis(50),
        None
    )
    .is_err());
}
