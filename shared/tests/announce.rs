//! A writer's announce of a long copy (`wait::announce`): parked readers are woken at its
//! start and follow the write until its commit instead of sleeping through it.
//!
//! The count these tests read (`wait::followed`) is the process's, so they run one at a time
//! (`ONE_AT_A_TIME`) and in a test binary of their own. None of them times anything: a broken
//! announce leaves the count at zero and the test fails at its 10 s deadline.
#![cfg(not(loom))]

mod common;

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::tempdir;
use shared::frames::PayloadSink;
use shared::ring::{FrameMeta, RingReader, RingWriter};
use shared::segment::SegmentSpec;
use shared::{wait, CalibEpoch, StreamKind, TimestampNs};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Calls `step` until it returns true; panics with `what` after 10 s.
fn until(what: &str, mut step: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !step() {
        assert!(Instant::now() < deadline, "{what} within 10 s");
        std::thread::yield_now();
    }
}

#[test]
fn an_announce_without_parked_readers_costs_nothing() {
    let (notify, waiters) = (AtomicU32::new(5), AtomicU64::new(0));
    wait::announce(&notify, &waiters);
    assert_eq!(notify.load(Ordering::Relaxed), 5, "nobody parked: no bump, no system call");
    waiters.store(1, Ordering::Relaxed);
    wait::announce(&notify, &waiters);
    assert_eq!(notify.load(Ordering::Relaxed), 6, "a parked reader: the word is bumped");
}

#[test]
fn a_parked_reader_woken_by_an_announce_follows_the_write_to_its_commit() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let (cursor, notify, waiters) = (AtomicU64::new(0), AtomicU32::new(0), AtomicU64::new(0));
    let before = wait::followed();
    std::thread::scope(|s| {
        let reader = s.spawn(|| wait::park(&cursor, &notify, &waiters, 0, Duration::from_secs(15), || false));
        until("the reader parks", || waiters.load(Ordering::Relaxed) == 1);
        // Repeated, because the first may come between the reader's load of `notify` and its
        // sleep; a later one finds it asleep or its word changed.
        until("the reader follows an announce", || {
            wait::announce(&notify, &waiters);
            wait::followed() > before
        });
        wait::publish(&cursor, &notify, &waiters, 1);
        assert!(reader.join().unwrap(), "the reader sees the commit");
    });
    assert_eq!(waiters.load(Ordering::Relaxed), 0);
}

#[test]
fn a_long_push_wakes_a_parked_reader_before_the_commit() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = tempdir();
    let path = dir.path().join("camera.seg");
    let len = wait::ANNOUNCE_MIN;
    let spec = SegmentSpec::new(StreamKind::Camera, 4, len as u64);
    let (mut w, _) = RingWriter::create_or_takeover(&path, &spec).unwrap();
    let r = RingReader::attach(&path, StreamKind::Camera).unwrap();
    let payload = vec![9u8; len];
    let before = wait::followed();
    std::thread::scope(|s| {
        let reader = s.spawn(|| r.wait(Duration::from_secs(15)));
        // A loan that saw no parked reader (the reader not asleep yet) is abandoned and the
        // next one tries again; the frame is committed only once a reader followed.
        until("a long push wakes the parked reader", || {
            let mut loan = w.loan();
            loan.push(&payload).unwrap();
            let followed = wait::followed() > before;
            if followed {
                loan.commit(FrameMeta { capture: TimestampNs(1), epoch: CalibEpoch(1) });
            }
            followed
        });
        assert!(reader.join().unwrap(), "the reader sees the commit");
    });
}
