//! The loom model of the slot protocol: every interleaving and every weak-memory outcome
//! loom allows, of one writer and one reader on one slot.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p shared --release --test loom_seqlock`.
//! The model must be able to fail: `scripts/loom-mutants.sh` builds it again with either
//! fence of the recipe removed (`--cfg loom_mutant_no_release_fence` or
//! `--cfg loom_mutant_no_acquire_fence`) and checks that loom then finds a torn read.
#![cfg(loom)]

use loom::sync::atomic::{AtomicU64, Ordering};
use loom::sync::Arc;
use shared::seqlock;

/// A slot: the sequence word and two payload words. A write stores its write number in
/// both payload words, so an accepted read is consistent iff both words equal the number
/// of completed writes the sequence word announces (`s1 / 2`).
struct Slot {
    seq: AtomicU64,
    data: [AtomicU64; 2],
}

fn write(slot: &Slot, value: u64) {
    let s = seqlock::write_begin(&slot.seq);
    for d in &slot.data {
        d.store(value, Ordering::Relaxed);
    }
    seqlock::write_end(&slot.seq, s);
}

fn read(slot: &Slot) -> Option<(u64, [u64; 2])> {
    let s1 = seqlock::read_begin(&slot.seq)?;
    let copy = [slot.data[0].load(Ordering::Relaxed), slot.data[1].load(Ordering::Relaxed)];
    seqlock::read_end(&slot.seq, s1).then_some((s1, copy))
}

#[test]
fn reader_never_accepts_a_torn_or_mislabelled_copy() {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(|| {
        let slot = Arc::new(Slot { seq: AtomicU64::new(0), data: [AtomicU64::new(0), AtomicU64::new(0)] });
        let writer = {
            let slot = slot.clone();
            loom::thread::spawn(move || {
                write(&slot, 1);
                write(&slot, 2);
            })
        };
        if let Some((s1, copy)) = read(&slot) {
            let writes = s1 / 2;
            assert_eq!(copy, [writes, writes], "accepted a copy that is not write #{writes}");
        }
        writer.join().unwrap();
        // After the writer is done, a read must succeed and see the last write.
        let (s1, copy) = read(&slot).expect("quiescent slot refused");
        assert_eq!((s1, copy), (4, [2, 2]));
    });
}
