//! The calibration table under a writer that never stops: readers never see a torn
//! calibration; a restarted service takes the table over.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use calib::table::{CalibTableReader, CalibTableWriter, TABLE_SLOTS};
use calib::wire;
use calib::{CalibStore, CalibrationSet};
use common::rig;
use shared::CalibEpoch;

/// What a reader must see for epoch `e`: exactly the decoded form of what was written.
fn expected(e: u64) -> CalibrationSet {
    wire::decode_update(&wire::encode_update(&rig(e, e * 10))).unwrap()
}

#[test]
fn concurrent_readers_never_see_a_torn_calibration() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("calib.seg");
    let mut writer = CalibTableWriter::create(&path).unwrap();
    writer.publish(&rig(1, 10));
    let done = Arc::new(AtomicBool::new(false));
    let checked = Arc::new(AtomicU64::new(0));
    const EPOCHS: u64 = 20_000;

    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (path, done, checked) = (path.clone(), Arc::clone(&done), Arc::clone(&checked));
            std::thread::spawn(move || {
                let mut t = CalibTableReader::attach(&path).unwrap();
                let mut last_current = 0;
                while !done.load(Ordering::Relaxed) {
                    let all = t.read_all();
                    assert!(all.len() <= TABLE_SLOTS as usize);
                    for w in all.windows(2) {
                        assert!(w[0].epoch < w[1].epoch);
                    }
                    for set in &all {
                        assert_eq!(*set, expected(set.epoch.0), "torn or mixed calibration");
                    }
                    if let Some(cur) = t.current() {
                        assert_eq!(cur, expected(cur.epoch.0));
                        assert!(cur.epoch.0 >= last_current, "current went backwards");
                        last_current = cur.epoch.0;
                    }
                    checked.fetch_add(all.len() as u64, Ordering::Relaxed);
                }
                assert_eq!(t.rejected(), 0, "a slot passed the seqlock but failed its checks");
            })
        })
        .collect();

    let start = Instant::now();
    for e in 2..=EPOCHS {
        writer.publish(&rig(e, e * 10));
        if e % 64 == 0 {
            std::thread::yield_now();
        }
    }
    // Let the readers go over the final table a few times too.
    std::thread::sleep(Duration::from_millis(50));
    done.store(true, Ordering::Relaxed);
    // A reader stuck in a read (a walk that never meets its end) fails the test rather
    // than hanging it: every read is bounded by the table's size.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !readers.iter().all(std::thread::JoinHandle::is_finished) {
        assert!(Instant::now() < deadline, "a reader did not finish its read within 60 s");
        std::thread::sleep(Duration::from_millis(10));
    }
    for r in readers {
        r.join().unwrap();
    }
    assert!(checked.load(Ordering::Relaxed) > 0);
    println!("{EPOCHS} epochs in {:?}, {} slots checked", start.elapsed(), checked.load(Ordering::Relaxed));

    let mut t = CalibTableReader::attach(&path).unwrap();
    let all = t.read_all();
    assert_eq!(all.len(), TABLE_SLOTS as usize);
    assert_eq!(all.last().unwrap().epoch, CalibEpoch(EPOCHS));
    assert_eq!(t.current_epoch(), CalibEpoch(EPOCHS));
}

#[test]
fn a_restarted_service_takes_the_table_over() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("calib.seg");
    let mut w = CalibTableWriter::create(&path).unwrap();
    w.publish(&rig(1, 0));
    w.publish(&rig(2, 100));
    // One writer at a time.
    assert!(CalibTableWriter::create(&path).is_err());
    drop(w);
    let mut w2 = CalibTableWriter::create(&path).unwrap();
    assert!(matches!(w2.start(), shared::ring::WriterStart::TookOver { .. }));
    // It republishes what it knows, and adds more.
    w2.publish(&rig(2, 100));
    w2.publish(&rig(3, 200));
    let mut store = CalibStore::new();
    assert_eq!(store.recover_from_table(&path).unwrap(), 3);
    assert_eq!(store.epochs(), [CalibEpoch(1), CalibEpoch(2), CalibEpoch(3)]);
    assert_eq!(*store.get(CalibEpoch(2)).unwrap(), expected_at(2, 100));
}

fn expected_at(e: u64, ms: u64) -> CalibrationSet {
    wire::decode_update(&wire::encode_update(&rig(e, ms))).unwrap()
}

#[test]
fn attach_refuses_what_is_not_a_table() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none.seg");
    assert!(CalibTableReader::attach(&missing).is_err());
    let mut store = CalibStore::new();
    let err = store.recover_from_table(&missing).unwrap_err();
    assert!(err.to_string().contains("none.seg"), "{err}");
    let junk = dir.path().join("junk.seg");
    std::fs::write(&junk, vec![0u8; 4096]).unwrap();
    std::fs::set_permissions(&junk, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    assert!(CalibTableReader::attach(&junk).is_err());
}
