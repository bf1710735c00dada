//! `CalibFollower` against a scripted "service" socket and a real calibration table: a lost
//! message comes back from the table, every epoch is returned once, an out-of-order socket
//! message is refused, and `epoch_for` draws its boundaries at `valid_from`, inclusive.

mod common;

use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use calib::table::CalibTableWriter;
use calib::wire::{self, Message};
use calib::{CalibFollower, CalibrationSet};
use common::rig;
use rustix::net::{
    accept, bind, listen, recv, send, socket_with, AddressFamily, RecvFlags, SendFlags, SocketAddrUnix,
    SocketFlags, SocketType,
};
use shared::{rundir, CalibEpoch, Role, TimestampNs};

const MS: u64 = 1_000_000;

/// A scripted service in `dir`: accepts one subscriber, checks its hello, sends `updates`
/// in order, then keeps the connection open until told to close (or the sender is dropped).
fn scripted_service(dir: &Path, updates: Vec<CalibrationSet>) -> (mpsc::Sender<()>, JoinHandle<()>) {
    let listener: OwnedFd =
        socket_with(AddressFamily::UNIX, SocketType::SEQPACKET, SocketFlags::CLOEXEC, None).unwrap();
    bind(&listener, &SocketAddrUnix::new(dir.join(rundir::CALIB_SOCKET)).unwrap()).unwrap();
    listen(&listener, 4).unwrap();
    let (close_tx, close_rx) = mpsc::channel::<()>();
    let handle = std::thread::spawn(move || {
        let conn = accept(&listener).unwrap();
        let mut buf = [0u8; 64];
        let (n, _) = recv(&conn, &mut buf[..], RecvFlags::empty()).unwrap();
        assert_eq!(wire::decode(&buf[..n]).unwrap(), Message::Hello(Role::Fusion));
        for set in &updates {
            send(&conn, &wire::encode_update(set), SendFlags::empty()).unwrap();
        }
        let _ = close_rx.recv();
    });
    (close_tx, handle)
}

/// Polls until `n` epochs were learned in all (or 10 s passed); returns them in order.
fn learn(f: &mut CalibFollower, n: usize) -> Vec<u64> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    while got.len() < n && Instant::now() < deadline {
        got.extend(f.wait(Duration::from_millis(20)).iter().map(|s| s.epoch.0));
    }
    got
}

fn sorted(mut v: Vec<u64>) -> Vec<u64> {
    v.sort_unstable();
    v
}

#[test]
fn a_lost_message_is_recovered_from_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let mut table = CalibTableWriter::create(&CalibFollower::table_in(dir.path())).unwrap();
    for e in 1..=3 {
        table.publish(&rig(e, e * 100));
    }
    // The socket loses epoch 2.
    let (close, service) = scripted_service(dir.path(), vec![rig(1, 100), rig(3, 300)]);
    let mut f = CalibFollower::connect(dir.path(), Role::Fusion, Duration::from_secs(5), None).unwrap();
    assert!(f.is_subscribed());
    let mut got = learn(&mut f, 3);
    // Both socket messages arrive too; neither is returned a second time.
    let deadline = Instant::now() + Duration::from_secs(10);
    while f.stats().updates_received < 2 && Instant::now() < deadline {
        got.extend(f.wait(Duration::from_millis(20)).iter().map(|s| s.epoch.0));
    }
    assert_eq!(f.stats().updates_received, 2);
    assert_eq!(sorted(got), [1, 2, 3]);
    assert!(f.wait(Duration::from_millis(50)).is_empty());
    assert_eq!(f.store().epochs(), [CalibEpoch(1), CalibEpoch(2), CalibEpoch(3)]);
    assert_eq!(f.epoch_for(TimestampNs(250 * MS)), CalibEpoch(2));
    drop(close);
    service.join().unwrap();
}

#[test]
fn duplicate_epochs_are_skipped_and_a_conflicting_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut table = CalibTableWriter::create(&CalibFollower::table_in(dir.path())).unwrap();
    table.publish(&rig(1, 0));
    table.publish(&rig(2, 100));
    // The socket repeats both (a late join), and then brings epoch 2 with other contents.
    let mut other2 = rig(2, 100);
    other2.valid_from = TimestampNs(150 * MS);
    let (close, service) = scripted_service(dir.path(), vec![rig(1, 0), rig(2, 100), other2, rig(3, 200)]);
    let mut f = CalibFollower::connect(dir.path(), Role::Fusion, Duration::from_secs(5), None).unwrap();
    let got = learn(&mut f, 3);
    assert_eq!(sorted(got.clone()), [1, 2, 3], "each epoch exactly once: {got:?}");
    assert!(f.wait(Duration::from_millis(50)).is_empty());
    // The first epoch 2 stays.
    assert_eq!(f.store().get(CalibEpoch(2)).unwrap().valid_from, TimestampNs(100 * MS));
    assert_eq!(f.epoch_for(TimestampNs(120 * MS)), CalibEpoch(2));
    drop(close);
    service.join().unwrap();
}

#[test]
fn an_out_of_order_message_is_refused_then_the_table_recovers_the_epoch() {
    let dir = tempfile::tempdir().unwrap();
    // Epoch 2 arrives after 3 on the socket: refused, counted, not learned.
    let (close, service) = scripted_service(dir.path(), vec![rig(3, 300), rig(2, 200)]);
    let mut f = CalibFollower::connect(dir.path(), Role::Fusion, Duration::from_secs(5), None).unwrap();
    assert_eq!(learn(&mut f, 1), [3]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while f.stats().rejected_messages == 0 && Instant::now() < deadline {
        assert!(f.wait(Duration::from_millis(20)).is_empty(), "the out-of-order epoch was learned");
    }
    assert_eq!(f.stats().rejected_messages, 1);
    assert_eq!(f.stats().updates_received, 1);
    assert!(!f.store().contains(CalibEpoch(2)));
    assert_eq!(f.epoch_for(TimestampNs(250 * MS)), CalibEpoch::NONE);
    // The table, published later, brings it.
    let mut table = CalibTableWriter::create(&CalibFollower::table_in(dir.path())).unwrap();
    table.publish(&rig(2, 200));
    table.publish(&rig(3, 300));
    assert_eq!(learn(&mut f, 1), [2]);
    assert_eq!(f.epoch_for(TimestampNs(250 * MS)), CalibEpoch(2));
    drop(close);
    service.join().unwrap();
}

#[test]
fn a_closed_socket_leaves_the_table_and_keeps_the_counters() {
    let dir = tempfile::tempdir().unwrap();
    let (close, service) = scripted_service(dir.path(), vec![rig(1, 0)]);
    let mut f = CalibFollower::connect(dir.path(), Role::Fusion, Duration::from_secs(5), None).unwrap();
    assert_eq!(learn(&mut f, 1), [1]);
    drop(close);
    service.join().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while f.is_subscribed() && Instant::now() < deadline {
        f.poll();
    }
    assert!(!f.is_subscribed());
    assert_eq!(f.stats().updates_received, 1);
    let mut table = CalibTableWriter::create(&CalibFollower::table_in(dir.path())).unwrap();
    table.publish(&rig(2, 100));
    assert_eq!(learn(&mut f, 1), [2]);
}

#[test]
fn epoch_for_tags_at_valid_from_inclusive() {
    let dir = tempfile::tempdir().unwrap();
    let table_path = CalibFollower::table_in(dir.path());
    let mut f = CalibFollower::table_only(&table_path);
    // No table yet: nothing known, nothing fails.
    assert!(f.poll().is_empty());
    assert_eq!(f.epoch_for(TimestampNs(u64::MAX)), CalibEpoch::NONE);
    let mut table = CalibTableWriter::create(&table_path).unwrap();
    table.publish(&rig(1, 10));
    table.publish(&rig(2, 100));
    assert_eq!(sorted(f.poll().iter().map(|s| s.epoch.0).collect()), [1, 2]);
    assert!(f.poll().is_empty());
    let at = |ns| f.epoch_for(TimestampNs(ns));
    assert_eq!(at(0), CalibEpoch::NONE);
    assert_eq!(at(10 * MS - 1), CalibEpoch::NONE);
    assert_eq!(at(10 * MS), CalibEpoch(1));
    assert_eq!(at(100 * MS - 1), CalibEpoch(1));
    assert_eq!(at(100 * MS), CalibEpoch(2));
    assert_eq!(at(u64::MAX), CalibEpoch(2));
}

#[test]
fn the_table_is_read_at_most_once_per_interval() {
    let dir = tempfile::tempdir().unwrap();
    let table_path = CalibFollower::table_in(dir.path());
    let mut table = CalibTableWriter::create(&table_path).unwrap();
    table.publish(&rig(1, 0));
    let mut f = CalibFollower::table_only(&table_path).table_every(Duration::from_secs(3600));
    assert_eq!(f.poll().len(), 1);
    table.publish(&rig(2, 100));
    assert!(f.poll().is_empty(), "read again before the interval passed");
    let mut g = CalibFollower::table_only(&table_path);
    assert_eq!(g.poll().len(), 2);
}
