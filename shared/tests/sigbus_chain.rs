//! The SIGBUS guard passes every SIGBUS that is not its own to the handler it replaced,
//! every time, and keeps guarding afterwards. Its own test binary: handlers are per process.
#![cfg(not(loom))]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use common::{tempdir, write_frame};
use shared::ring::{InvalidFrame, ReadOutcome, RingReader, RingWriter};
use shared::segment::SegmentSpec;
use shared::{FrameSeq, StreamKind};

static PRIOR_CALLS: AtomicUsize = AtomicUsize::new(0);

extern "C" fn prior(_sig: libc::c_int, _info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    PRIOR_CALLS.fetch_add(1, Ordering::Relaxed);
}

#[test]
fn foreign_sigbus_reaches_the_previous_handler_every_time() {
    // SAFETY: installs a valid three-argument handler for SIGBUS with SA_SIGINFO; the zeroed
    // sigaction is a valid "no flags, empty mask" value.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = prior as *const () as usize;
        action.sa_flags = libc::SA_SIGINFO;
        libc::sigemptyset(&mut action.sa_mask);
        assert_eq!(libc::sigaction(libc::SIGBUS, &action, std::ptr::null_mut()), 0);
    }
    let dir = tempdir();
    let path = dir.path().join("lidar.seg");
    let spec = SegmentSpec {
        kind: StreamKind::Lidar,
        slot_count: 4,
        slot_capacity: 64 * 1024,
        base_seq: FrameSeq(0),
    };
    // Creating a segment installs the guard's handler over `prior`.
    let (mut w, _) = RingWriter::create_or_takeover(&path, &spec).unwrap();
    for n in 1..=3 {
        // SAFETY: raising a signal whose handler only counts.
        assert_eq!(unsafe { libc::raise(libc::SIGBUS) }, 0);
        assert_eq!(PRIOR_CALLS.load(Ordering::Relaxed), n, "SIGBUS #{n} did not reach the previous handler");
    }
    // And the guard still guards.
    let mut r = RingReader::attach(&path, StreamKind::Lidar).unwrap();
    write_frame(&mut w, 60_000);
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(4096).unwrap();
    let mut buf = Vec::new();
    assert_eq!(r.read_next(&mut buf), ReadOutcome::Invalid(InvalidFrame::SegmentTruncated));
    assert_eq!(PRIOR_CALLS.load(Ordering::Relaxed), 3);
}
