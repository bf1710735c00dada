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

/// A scripted service: accepts one subscriber, checks its hello, sends its updates in
/// order, then keeps the connection open until [`Scripted::close`].
struct Scripted {
    close: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

impl Scripted {
    fn close(self) {
        drop(self.close);
        self.thread.join().unwrap();
    }
}

/// A follower subscribed (as fusion) to a scripted service in `dir` that sends `updates`.
fn follow_scripted(dir: &Path, updates: Vec<CalibrationSet>) -> (CalibFollower, Scripted) {
    let listener: OwnedFd =
        socket_with(AddressFamily::UNIX, SocketType::SEQPACKET, SocketFlags::CLOEXEC, None).unwrap();
    bind(&listener, &SocketAddrUnix::new(dir.join(rundir::CALIB_SOCKET)).unwrap()).unwrap();
    listen(&listener, 4).unwrap();
    let (close, close_rx) = mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        let conn = accept(&listener).unwrap();
        let mut buf = [0u8; 64];
        let (n, _) = recv(&conn, &mut buf[..], RecvFlags::empty()).unwrap();
        assert_eq!(wire::decode(&buf[..n]).unwrap(), Message::Hello(Role::Fusion));
        for set in &updates {
            send(&conn, &wire::encode_update(set), SendFlags::empty()).unwrap();
        }
        let _ = close_rx.recv();
    });
    let f = CalibFollower::connect(dir, Role::Fusion, Duration::from_secs(5), None).unwrap();
    assert!(f.is_subscribed());
    (f, Scripted { close, thread })
}

/// The run's calibration table in `dir`, holding `sets`.
fn table_with(dir: &Path, sets: &[CalibrationSet]) -> CalibTableWriter {
    let mut table = CalibTableWriter::create(&CalibFollower::table_in(dir)).unwrap();
    for set in sets {
        table.publish(set);
    }
    table
}

/// Waits on the follower until `done` (or 10 s); returns the epochs learned, in order.
fn learn_until(f: &mut CalibFollower, mut done: impl FnMut(&CalibFollower, &[u64]) -> bool) -> Vec<u64> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    while !done(f, &got) && Instant::now() < deadline {
        got.extend(f.wait(Duration::from_millis(20)).iter().map(|s| s.epoch.0));
    }
    got
}

/// Waits until `n` epochs were learned.
fn learn(f: &mut CalibFollower, n: usize) -> Vec<u64> {
    learn_until(f, |_, got| got.len() >= n)
}

fn sorted(mut v: Vec<u64>) -> Vec<u64> {
    v.sort_unstable();
    v
}

#[test]
fn a_lost_message_is_recovered_from_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let _table = table_with(dir.path(), &[rig(1, 100), rig(2, 200), rig(3, 300)]);
    // The socket loses epoch 2.
    let (mut f, service) = follow_scripted(dir.path(), vec![rig(1, 100), rig(3, 300)]);
    // Both socket messages arrive too; neither is returned a second time.
    let got = learn_until(&mut f, |f, got| got.len() >= 3 && f.stats().updates_received >= 2);
    assert_eq!(f.stats().updates_received, 2);
    assert_eq!(sorted(got), [1, 2, 3]);
    assert!(f.wait(Duration::from_millis(50)).is_empty());
    assert_eq!(f.store().epochs(), [CalibEpoch(1), CalibEpoch(2), CalibEpoch(3)]);
    assert_eq!(f.epoch_for(TimestampNs(250 * MS)), CalibEpoch(2));
    service.close();
}

#[test]
fn duplicate_epochs_are_skipped_and_a_conflicting_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _table = table_with(dir.path(), &[rig(1, 0), rig(2, 100)]);
    // The socket repeats both (a late join), and then brings epoch 2 with other contents.
    let mut other2 = rig(2, 100);
    other2.valid_from = TimestampNs(150 * MS);
    let (mut f, service) = follow_scripted(dir.path(), vec![rig(1, 0), rig(2, 100), other2, rig(3, 200)]);
    let got = learn(&mut f, 3);
    assert_eq!(sorted(got.clone()), [1, 2, 3], "each epoch exactly once: {got:?}");
    assert!(f.wait(Duration::from_millis(50)).is_empty());
    // The first epoch 2 stays.
    assert_eq!(f.store().get(CalibEpoch(2)).unwrap().valid_from, TimestampNs(100 * MS));
    assert_eq!(f.epoch_for(TimestampNs(120 * MS)), CalibEpoch(2));
    service.close();
}

#[test]
fn an_out_of_order_message_is_refused_then_the_table_recovers_the_epoch() {
    let dir = tempfile::tempdir().unwrap();
    // Epoch 2 arrives after 3 on the socket: refused, counted, not learned.
    let (mut f, service) = follow_scripted(dir.path(), vec![rig(3, 300), rig(2, 200)]);
    assert_eq!(learn_until(&mut f, |f, _| f.stats().rejected_messages > 0), [3]);
    assert_eq!(f.stats().rejected_messages, 1);
    assert_eq!(f.stats().updates_received, 1);
    assert!(!f.store().contains(CalibEpoch(2)));
    assert_eq!(f.epoch_for(TimestampNs(250 * MS)), CalibEpoch::NONE);
    // The table, published later, brings it.
    let _table = table_with(dir.path(), &[rig(2, 200), rig(3, 300)]);
    assert_eq!(learn(&mut f, 1), [2]);
    assert_eq!(f.epoch_for(TimestampNs(250 * MS)), CalibEpoch(2));
    service.close();
}

#[test]
fn a_closed_socket_leaves_the_table_and_keeps_the_counters() {
    let dir = tempfile::tempdir().unwrap();
    let (mut f, service) = follow_scripted(dir.path(), vec![rig(1, 0)]);
    assert_eq!(learn(&mut f, 1), [1]);
    service.close();
    assert!(learn_until(&mut f, |f, _| !f.is_subscribed()).is_empty());
    assert!(!f.is_subscribed());
    assert_eq!(f.stats().updates_received, 1);
    let _table = table_with(dir.path(), &[rig(2, 100)]);
    assert_eq!(learn(&mut f, 1), [2]);
}

#[test]
fn a_waker_ends_a_long_wait_at_once_and_the_counters_stay() {
    let dir = tempfile::tempdir().unwrap();
    let (mut f, service) = follow_scripted(dir.path(), vec![rig(1, 0)]);
    assert_eq!(learn(&mut f, 1), [1]);
    let waker = f.waker();
    let (done, done_rx) = mpsc::channel();
    let waiting = std::thread::spawn(move || {
        // Far longer than the test runs: only the waker can end it.
        let got = f.wait(Duration::from_secs(3600));
        done.send(()).unwrap();
        (f, got)
    });
    waker.wake();
    assert!(done_rx.recv_timeout(Duration::from_secs(30)).is_ok(), "the wait ignored the waker");
    let (f, got) = waiting.join().unwrap();
    assert!(got.is_empty(), "{got:?}");
    assert!(!f.is_subscribed(), "the woken socket counts as closed");
    assert_eq!(f.stats().updates_received, 1);
    service.close();
    // Without a socket there is nothing to wake.
    CalibFollower::table_only(&CalibFollower::table_in(dir.path())).waker().wake();
}

#[test]
fn epoch_for_tags_at_valid_from_inclusive() {
    let dir = tempfile::tempdir().unwrap();
    let table_path = CalibFollower::table_in(dir.path());
    let mut f = CalibFollower::table_only(&table_path);
    // No table yet: nothing known, nothing fails.
    assert!(f.poll().is_empty());
    assert_eq!(f.epoch_for(TimestampNs(u64::MAX)), CalibEpoch::NONE);
    let _table = table_with(dir.path(), &[rig(1, 10), rig(2, 100)]);
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
    let mut table = table_with(dir.path(), &[rig(1, 0)]);
    let mut f = CalibFollower::table_only(&table_path).table_every(Duration::from_secs(3600));
    assert_eq!(f.poll().len(), 1);
    table.publish(&rig(2, 100));
    assert!(f.poll().is_empty(), "read again before the interval passed");
    let mut g = CalibFollower::table_only(&table_path);
    assert_eq!(g.poll().len(), 2);
}
