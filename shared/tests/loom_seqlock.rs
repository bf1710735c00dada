//! The loom model of the ring's concurrency protocols: every interleaving and every
//! weak-memory outcome loom allows (within the preemption bounds below), run against the
//! crate's own protocol code (`seqlock`, `wait`, `cursor`, `sync`), built with loom's atomics.
//!
//! Run with `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p shared --release
//! --test loom_seqlock`. The model must be able to fail: `scripts/loom-mutants.sh` weakens
//! each ordering and fence in `shared/src` in turn and checks that some test then fails.
//!
//! Each model counts what its executions saw (in std atomics, outside the model) and asserts
//! afterwards that the interesting cases were explored, so a model that only ever sees an
//! untouched slot cannot pass vacuously.
#![cfg(loom)]

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed as StdRelaxed};

use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use loom::sync::{Arc, Condvar, Mutex};
use shared::{cursor, seqlock, sync, wait, FrameSeq};

fn model(preemption_bound: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(preemption_bound);
    builder.check(f);
}

/// A slot: the sequence word, an incarnation word (0 = "holds no frame", as the ring's frame
/// header has it) and two payload words. Write `k` stores `k` in both payload words, so an
/// accepted copy of a valid frame is consistent iff both words equal `s1 / 2`.
struct Slot {
    seq: AtomicU64,
    incarnation: AtomicU64,
    data: [AtomicU64; 2],
}

impl Slot {
    fn new() -> Self {
        Self {
            seq: AtomicU64::new(0),
            incarnation: AtomicU64::new(0),
            data: [AtomicU64::new(0), AtomicU64::new(0)],
        }
    }

    fn write(&self, value: u64) {
        let s = seqlock::write_begin(&self.seq);
        self.incarnation.store(1, Ordering::Relaxed);
        for d in &self.data {
            d.store(value, Ordering::Relaxed);
        }
        seqlock::write_end(&self.seq, s);
    }

    /// `(s1, incarnation, data)` of an accepted copy.
    fn read(&self) -> Option<(u64, u64, [u64; 2])> {
        let s1 = seqlock::read_begin(&self.seq)?;
        let inc = self.incarnation.load(Ordering::Relaxed);
        let copy = [self.data[0].load(Ordering::Relaxed), self.data[1].load(Ordering::Relaxed)];
        seqlock::read_end(&self.seq, s1).then_some((s1, inc, copy))
    }
}

/// Outcome counters across executions: [refused, accepted untouched, accepted written].
static SEQLOCK_SEEN: [AtomicUsize; 3] = [AtomicUsize::new(0), AtomicUsize::new(0), AtomicUsize::new(0)];

#[test]
fn reader_never_accepts_a_torn_or_mislabelled_copy() {
    model(3, || {
        let slot = Arc::new(Slot::new());
        // The reader is spawned and the writer runs on the main thread, so the reader runs
        // both before and after (and during) each write.
        let reader = {
            let slot = slot.clone();
            loom::thread::spawn(move || match slot.read() {
                None => SEQLOCK_SEEN[0].fetch_add(1, StdRelaxed),
                Some((s1, _, copy)) => {
                    let writes = s1 / 2;
                    assert_eq!(copy, [writes, writes], "accepted a copy that is not write #{writes}");
                    SEQLOCK_SEEN[if writes == 0 { 1 } else { 2 }].fetch_add(1, StdRelaxed)
                }
            })
        };
        slot.write(1);
        slot.write(2);
        reader.join().unwrap();
        // After the writer is done, a read must succeed and see the last write.
        assert_eq!(slot.read(), Some((4, 1, [2, 2])), "quiescent slot refused or stale");
    });
    let seen: Vec<usize> = SEQLOCK_SEEN.iter().map(|c| c.load(StdRelaxed)).collect();
    assert!(seen.iter().all(|n| *n > 0), "not every outcome explored: {seen:?}");
}

static REPAIR_SEEN: [AtomicUsize; 2] = [AtomicUsize::new(0), AtomicUsize::new(0)];

/// A writer dies mid-write (its slot's word stays odd); the next writer takes over and
/// repairs the slot as `RingWriter::create_or_takeover` does: marks it as holding no frame
/// (incarnation 0) inside the still-open write, then settles the word with `seqlock::repair`.
/// A concurrent reader may accept only the complete first write or the repaired, empty slot.
#[test]
fn a_repaired_slot_is_never_accepted_half_written() {
    model(3, || {
        let slot = Arc::new(Slot::new());
        slot.write(1);
        let reader = {
            let slot = slot.clone();
            loom::thread::spawn(move || {
                if let Some((s1, inc, copy)) = slot.read() {
                    if inc != 0 {
                        assert_eq!((s1, copy), (2, [1, 1]), "accepted a half-written frame as valid");
                        REPAIR_SEEN[0].fetch_add(1, StdRelaxed);
                    } else {
                        REPAIR_SEEN[1].fetch_add(1, StdRelaxed);
                    }
                }
            })
        };
        // The dead writer: begins write #2, stores one payload word, dies. (Its death and the
        // takeover are ordered by the writer lock, as on one thread here.)
        let _ = seqlock::write_begin(&slot.seq);
        slot.data[0].store(2, Ordering::Relaxed);
        // The takeover's repair.
        slot.incarnation.store(0, Ordering::Relaxed);
        assert_eq!(seqlock::repair(&slot.seq), 4);
        reader.join().unwrap();
        assert_eq!(slot.read().map(|(s1, inc, _)| (s1, inc)), Some((4, 0)));
    });
    let seen: Vec<usize> = REPAIR_SEEN.iter().map(|c| c.load(StdRelaxed)).collect();
    assert!(seen.iter().all(|n| *n > 0), "not every outcome explored: {seen:?}");
}

const RING_SLOTS: u64 = 2;

/// A ring of two slots with its cursor and wake-up words. A slot's data word holds the frame
/// seq + 1 of the frame in it (0: never written).
struct Ring {
    cursor: AtomicU64,
    notify: AtomicU32,
    waiters: AtomicU64,
    slots: [Slot; RING_SLOTS as usize],
}

impl Ring {
    fn new() -> Self {
        Self {
            cursor: AtomicU64::new(0),
            notify: AtomicU32::new(0),
            waiters: AtomicU64::new(0),
            slots: [Slot::new(), Slot::new()],
        }
    }

    fn commit(&self, seq: u64, futex: &Futex) {
        self.slots[(seq % RING_SLOTS) as usize].write(seq + 1);
        wait::publish_with(&self.cursor, &self.notify, &self.waiters, seq + 1, |w, n| futex.wake(w, n));
    }
}

static CURSOR_SEEN: [AtomicUsize; 2] = [AtomicUsize::new(0), AtomicUsize::new(0)];

/// The reader's cursor logic, as `RingReader::read_next` has it: a frame announced by the
/// cursor is in its slot (or a later one is: the reader was lapped), never an older one; a
/// lapped reader resumes behind the writer and reads on from there.
#[test]
fn the_cursor_announces_only_frames_that_are_in_their_slots() {
    model(3, || {
        let ring = Arc::new(Ring::new());
        let futex = Arc::new(Futex::new());
        let reader = {
            let ring = ring.clone();
            loom::thread::spawn(move || {
                let mut next = FrameSeq(0);
                for _ in 0..2 {
                    let c = FrameSeq(sync::observe(&ring.cursor));
                    if c == next {
                        return;
                    }
                    if let Some((at, _lost)) = cursor::lapped(c, next, RING_SLOTS) {
                        assert!(c.distance_from(at) < RING_SLOTS, "resumed on the writer's next slot");
                        CURSOR_SEEN[1].fetch_add(1, StdRelaxed);
                        next = at;
                        continue;
                    }
                    let Some((_, _, [frame, _])) = ring.slots[(next.0 % RING_SLOTS) as usize].read() else {
                        continue;
                    };
                    assert!(frame > next.0, "cursor announced frame {} but its slot holds {frame}", next.0);
                    if frame == next.0 + 1 {
                        CURSOR_SEEN[0].fetch_add(1, StdRelaxed);
                        next = next.next();
                    } else {
                        next = cursor::resume_at(FrameSeq(sync::observe(&ring.cursor)), RING_SLOTS);
                    }
                }
            })
        };
        for seq in 0..3 {
            ring.commit(seq, &futex);
        }
        reader.join().unwrap();
    });
    let seen: Vec<usize> = CURSOR_SEEN.iter().map(|c| c.load(StdRelaxed)).collect();
    assert!(seen.iter().all(|n| *n > 0), "not every outcome explored: {seen:?}");
}

/// A ring of two slots with a slot map (layout version 4) whose writer reuses the slot of the
/// frame before, as `RingWriter::reuse_released` does once its readers are done: every frame
/// goes into slot 0, and the map words of its residue and the previous one swap, stored
/// (Relaxed) before the slot's `seqlock::write_begin`, as `ring/place.rs` stores them. Word
/// `r` holds the slot XOR `r`, so the zeroed words of a new ring say "slot r".
struct MappedRing {
    ring: Ring,
    map: [AtomicU64; RING_SLOTS as usize],
}

/// Loans the writer of [`MappedRing`] has begun, in the real schedule (a std atomic, outside
/// the model): a reader that finds an older frame than the one announced must see that the
/// writer has since begun the next loan, which is what moved the frame's map word.
static MAP_LOANS: AtomicUsize = AtomicUsize::new(0);

impl MappedRing {
    fn commit(&self, seq: u64, futex: &Futex) {
        MAP_LOANS.store(seq as usize + 1, StdRelaxed);
        let (r, prev) = (seq % RING_SLOTS, (seq + RING_SLOTS - 1) % RING_SLOTS);
        if seq > 0 {
            // The previous frame's word takes the other slot; this frame's takes slot 0.
            self.map[prev as usize].store(1 ^ prev, Ordering::Relaxed);
        }
        self.map[r as usize].store(r, Ordering::Relaxed);
        self.ring.slots[0].write(seq + 1);
        wait::publish_with(&self.ring.cursor, &self.ring.notify, &self.ring.waiters, seq + 1, |w, n| {
            futex.wake(w, n)
        });
    }

    /// `Segment::slot_index_for`: the map word, masked into range.
    fn slot_for(&self, seq: u64) -> usize {
        let r = seq % RING_SLOTS;
        ((self.map[r as usize].load(Ordering::Relaxed) ^ r) % RING_SLOTS) as usize
    }
}

/// Outcomes of the slot-map model: [frame found where the map said, lapped or moved on].
static MAP_SEEN: [AtomicUsize; 2] = [AtomicUsize::new(0), AtomicUsize::new(0)];

/// The slot map: a frame the cursor announces is found through its map word, unless a later
/// loan has already moved it (the reader then finds the reused slot holding a later frame,
/// or the other slot holding an older one, and moves on: never a wrong frame accepted, since
/// the slot's frame is checked). With the cursor's Acquire load weakened, the reader can see
/// frame 1 announced but the map word of a new ring, and finds the empty slot 1 while no
/// later loan has begun.
#[test]
fn a_slot_map_word_is_seen_with_the_frame_it_announces() {
    model(3, || {
        MAP_LOANS.store(0, StdRelaxed);
        let ring = Arc::new(MappedRing { ring: Ring::new(), map: [AtomicU64::new(0), AtomicU64::new(0)] });
        let futex = Arc::new(Futex::new());
        let reader = {
            let ring = ring.clone();
            loom::thread::spawn(move || {
                let mut next = 0;
                for _ in 0..2 {
                    let c = sync::observe(&ring.ring.cursor);
                    if c <= next {
                        return;
                    }
                    let Some((_, _, [frame, _])) = ring.ring.slots[ring.slot_for(next)].read() else {
                        continue;
                    };
                    if frame == next + 1 {
                        MAP_SEEN[0].fetch_add(1, StdRelaxed);
                    } else {
                        assert!(
                            MAP_LOANS.load(StdRelaxed) > next as usize + 1,
                            "frame {next} announced, its map word led to frame {} before any later loan",
                            frame as i64 - 1
                        );
                        MAP_SEEN[1].fetch_add(1, StdRelaxed);
                    }
                    next += 1;
                }
            })
        };
        for seq in 0..2 {
            ring.commit(seq, &futex);
        }
        reader.join().unwrap();
    });
    let seen: Vec<usize> = MAP_SEEN.iter().map(|c| c.load(StdRelaxed)).collect();
    assert!(seen.iter().all(|n| *n > 0), "not every outcome explored: {seen:?}");
}

/// A model of the futex: `wait` compares the word and sleeps under the lock the kernel's hash
/// bucket would hold; `wake` reads its count as the kernel does (an `int`: wakes one unless
/// the count is more than 1).
struct Futex {
    lock: Mutex<()>,
    cv: Condvar,
}

impl Futex {
    fn new() -> Self {
        Self { lock: Mutex::new(()), cv: Condvar::new() }
    }

    fn wait(&self, word: &AtomicU32, expected: u32) -> bool {
        let guard = self.lock.lock().unwrap();
        if word.load(Ordering::Relaxed) == expected {
            drop(self.cv.wait(guard).unwrap());
        }
        true
    }

    /// `futex_waitv`: sleeps while every word holds its expected value.
    fn wait_any(&self, words: &[(&AtomicU32, u32)]) -> bool {
        let guard = self.lock.lock().unwrap();
        if words.iter().all(|(w, n)| w.load(Ordering::Relaxed) == *n) {
            drop(self.cv.wait(guard).unwrap());
        }
        true
    }

    fn wake(&self, _word: &AtomicU32, count: u32) {
        let _guard = self.lock.lock().unwrap();
        #[allow(clippy::cast_possible_wrap)] // The kernel's reading of the count.
        if count as i32 > 1 {
            self.cv.notify_all();
        } else {
            self.cv.notify_one();
        }
    }
}

/// Two readers park (waiter count, SeqCst fences, notify word, futex wait) while the writer
/// publishes once: both must wake. A lost wake-up leaves a reader asleep forever, which loom
/// reports as a deadlock.
#[test]
fn one_publish_wakes_every_parked_reader() {
    model(2, || {
        let ring = Arc::new(Ring::new());
        let futex = Arc::new(Futex::new());
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (ring, futex) = (ring.clone(), futex.clone());
                loom::thread::spawn(move || {
                    let moved = wait::park_with(&ring.cursor, &ring.notify, &ring.waiters, 0, |w, n| {
                        futex.wait(w, n)
                    });
                    assert!(moved);
                })
            })
            .collect();
        wait::publish_with(&ring.cursor, &ring.notify, &ring.waiters, 1, |w, n| futex.wake(w, n));
        for r in readers {
            r.join().unwrap();
        }
    });
}

/// A reader parked on an idle ring, whose `give_up` reads a stop flag the waker stores with
/// Relaxed before `wake_parked_with`: the wake must end the wait. The Release bump of
/// `notify` is what makes the stop visible to the `give_up` asked after the wake; without it
/// the reader can sleep again on the bumped value, which loom reports as a deadlock.
#[test]
fn a_wake_without_a_frame_ends_a_wait_whose_give_up_says_stop() {
    model(3, || {
        let ring = Arc::new(Ring::new());
        let futex = Arc::new(Futex::new());
        let stop = Arc::new(loom::sync::atomic::AtomicBool::new(false));
        let reader = {
            let (ring, futex, stop) = (ring.clone(), futex.clone(), stop.clone());
            loom::thread::spawn(move || {
                let moved = wait::park_with(&ring.cursor, &ring.notify, &ring.waiters, 0, |w, n| {
                    !stop.load(Ordering::Relaxed) && futex.wait(w, n)
                });
                assert!(!moved, "no frame was published");
            })
        };
        stop.store(true, Ordering::Relaxed);
        wait::wake_parked_with(&ring.notify, |w, n| futex.wake(w, n));
        reader.join().unwrap();
    });
}

/// A parked thread waits on two rings at once (`park_any_with` against a model of
/// `futex_waitv`: asleep while every word holds its value) while one ring's writer publishes
/// once: it must wake, whichever ring the frame is on. A lost wake-up leaves it asleep
/// forever, which loom reports as a deadlock.
#[test]
fn a_wait_on_two_rings_wakes_for_a_frame_on_either() {
    for ring in 0..2 {
        model(3, move || {
            let rings = Arc::new([Ring::new(), Ring::new()]);
            let futex = Arc::new(Futex::new());
            let waiter = {
                let (rings, futex) = (rings.clone(), futex.clone());
                loom::thread::spawn(move || {
                    let watched = rings.each_ref().map(|r| wait::Watched {
                        cursor: &r.cursor,
                        notify: &r.notify,
                        waiters: &r.waiters,
                        seen: 0,
                    });
                    let moved = wait::park_any_with(&watched, |n| {
                        futex.wait_any(&[(&rings[0].notify, n[0]), (&rings[1].notify, n[1])])
                    });
                    assert!(moved);
                })
            };
            let r = &rings[ring];
            wait::publish_with(&r.cursor, &r.notify, &r.waiters, 1, |w, n| futex.wake(w, n));
            waiter.join().unwrap();
        });
    }
}

static HEADER_SEEN: [AtomicUsize; 2] = [AtomicUsize::new(0), AtomicUsize::new(0)];

/// A segment's creator writes the static header, then the layout version last
/// (`sync::publish`); an attacher that sees the version (`sync::observe`) sees the header.
#[test]
fn a_published_header_is_seen_whole() {
    model(3, || {
        let words = Arc::new([AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)]);
        let attacher = {
            let words = words.clone();
            loom::thread::spawn(move || {
                if sync::observe(&words[0]) == 2 {
                    let rest = [words[1].load(Ordering::Relaxed), words[2].load(Ordering::Relaxed)];
                    assert_eq!(rest, [7, 9], "saw the version before the header");
                    HEADER_SEEN[1].fetch_add(1, StdRelaxed);
                } else {
                    HEADER_SEEN[0].fetch_add(1, StdRelaxed);
                }
            })
        };
        words[1].store(7, Ordering::Relaxed);
        words[2].store(9, Ordering::Relaxed);
        sync::publish(&words[0], 2);
        attacher.join().unwrap();
    });
    let seen: Vec<usize> = HEADER_SEEN.iter().map(|c| c.load(StdRelaxed)).collect();
    assert!(seen.iter().all(|n| *n > 0), "not every outcome explored: {seen:?}");
}

static REGISTRY_SEEN: [AtomicUsize; 2] = [AtomicUsize::new(0), AtomicUsize::new(0)];

/// The SIGBUS guard's table entry changes hands: one mapping releases it while another thread
/// claims it for its own range, and the handler (a third thread) asks about an address that
/// is in neither range. Pairing the first range's start with the second's length would put
/// it inside; the entry's seqlock (kept single-writer by the claim's Acquire and the
/// release's Release) must never let that happen.
#[test]
fn a_registry_entry_changing_hands_is_never_read_torn() {
    const A: (usize, usize) = (0x1000, 0x1000);
    const B: (usize, usize) = (0x10000, 0x10000);
    const NEITHER: usize = 0x5000;
    model(2, || {
        let range = Arc::new(shared::registry::Range::new());
        assert!(range.claim(A.0, A.1));
        let claimer = {
            let range = range.clone();
            loom::thread::spawn(move || {
                if range.claim(B.0, B.1) {
                    REGISTRY_SEEN[1].fetch_add(1, StdRelaxed);
                }
            })
        };
        let handler = {
            let range = range.clone();
            loom::thread::spawn(move || {
                assert!(!range.contains(NEITHER), "paired one range's start with another's length");
                if range.contains(A.0) {
                    REGISTRY_SEEN[0].fetch_add(1, StdRelaxed);
                }
            })
        };
        range.release();
        claimer.join().unwrap();
        handler.join().unwrap();
    });
    let seen: Vec<usize> = REGISTRY_SEEN.iter().map(|c| c.load(StdRelaxed)).collect();
    assert!(seen.iter().all(|n| *n > 0), "not every outcome explored: {seen:?}");
}

/// Outcome counters of the in-place models across executions: [busy, changed, valid
/// untouched, valid written].
type Outcomes = [AtomicUsize; 4];
static IN_PLACE_SEEN: Outcomes =
    [AtomicUsize::new(0), AtomicUsize::new(0), AtomicUsize::new(0), AtomicUsize::new(0)];
static BLOCKS_SEEN: Outcomes =
    [AtomicUsize::new(0), AtomicUsize::new(0), AtomicUsize::new(0), AtomicUsize::new(0)];
static QUADS_SEEN: Outcomes =
    [AtomicUsize::new(0), AtomicUsize::new(0), AtomicUsize::new(0), AtomicUsize::new(0)];

/// Runs `compute` inside `seqlock::read_validated` on a spawned reader while the main thread
/// writes the slot twice. `compute` returns `(value, factor)` pairs, each value computed
/// from the slot's words so that it is `factor * k` only if every word it loaded holds write
/// `k`: a valid result must satisfy every pair. Asserts that every outcome was explored.
fn in_place_model(seen: &'static Outcomes, compute: fn(&Slot) -> Vec<(u64, u64)>) {
    model(3, move || {
        let slot = Arc::new(Slot::new());
        let reader = {
            let slot = slot.clone();
            loom::thread::spawn(move || {
                let i = match seqlock::read_validated(&slot.seq, || compute(&slot)) {
                    seqlock::Validated::Busy => 0,
                    seqlock::Validated::Changed => 1,
                    seqlock::Validated::Valid { s1, r } => {
                        let writes = s1 / 2;
                        for (value, factor) in r {
                            assert_eq!(
                                value,
                                factor * writes,
                                "a value computed from a torn slot escaped as write #{writes}"
                            );
                        }
                        if writes == 0 {
                            2
                        } else {
                            3
                        }
                    }
                };
                seen[i].fetch_add(1, StdRelaxed);
            })
        };
        slot.write(1);
        slot.write(2);
        reader.join().unwrap();
        let quiet = seqlock::read_validated(&slot.seq, || slot.data[0].load(Ordering::Relaxed));
        assert_eq!(quiet, seqlock::Validated::Valid { s1: 4, r: 2 }, "quiescent slot refused or stale");
    });
    let seen: Vec<usize> = seen.iter().map(|c| c.load(StdRelaxed)).collect();
    assert!(seen.iter().all(|n| *n > 0), "not every outcome explored: {seen:?}");
}

/// The in-place read (`seqlock::read_validated`, as `RingReader::read_next_in_place` runs
/// it): the reader computes a value straight from the slot's words inside the read (no copy:
/// a weighted sum, which is `3 * k` only if both words hold write `k`). A value computed from
/// a torn slot must never come back as valid; both the valid and the rejected cases must be
/// explored.
#[test]
fn an_in_place_result_from_a_torn_slot_never_escapes() {
    in_place_model(&IN_PLACE_SEEN, |slot| {
        vec![(slot.data[0].load(Ordering::Relaxed) + 2 * slot.data[1].load(Ordering::Relaxed), 3)]
    });
}

/// The block read (`RingReader::read_at_blocks`): inside one validated read the checksum's
/// pass loads the words first, then the consumer loads them again on its own (no copy). Both
/// the checksum and the consumer's value come back only if neither saw a torn slot, although
/// the two sets of loads are separate and a write may fall between them.
#[test]
fn a_block_read_sum_and_its_consumer_loads_never_escape_torn() {
    in_place_model(&BLOCKS_SEEN, |slot| {
        let sum = slot.data[0].load(Ordering::Relaxed) + slot.data[1].load(Ordering::Relaxed);
        let consumer = slot.data[0].load(Ordering::Relaxed) + 2 * slot.data[1].load(Ordering::Relaxed);
        vec![(sum, 2), (consumer, 3)]
    });
}

/// The quad read (`RingReader::read_at_quads`): inside one validated read each word is
/// loaded once, and that one value feeds both the checksum and the consumer (no copy, no
/// second load). Neither comes back unless the read validates.
#[test]
fn a_quad_read_sum_and_its_consumer_from_one_load_never_escape_torn() {
    in_place_model(&QUADS_SEEN, |slot| {
        let (d0, d1) = (slot.data[0].load(Ordering::Relaxed), slot.data[1].load(Ordering::Relaxed));
        vec![(d0 + d1, 2), (d0 + 2 * d1, 3)]
    });
}

/// A one-slot ring for the versioned-reference model: the seq word, the frame header's
/// frame-seq word and two payload words. Frame `k`'s payload is `[10k + 1, 10k + 2]`, so the
/// consumer's weighted sum `d0 + 2·d1` is `30k + 5` only if both words are frame `k`'s.
struct RefSlot {
    seq: AtomicU64,
    frame: AtomicU64,
    data: [AtomicU64; 2],
}

/// Why a use of a reference was refused.
#[derive(Debug)]
enum RefRejected {
    /// The slot holds a later frame: the writer lapped the reader (`Overrun` in the ring).
    Lapped,
    /// A write was under way or came in while the consumer computed (`Torn` or `Overrun`).
    Disturbed,
}

impl RefSlot {
    fn new() -> Self {
        Self {
            seq: AtomicU64::new(0),
            frame: AtomicU64::new(0),
            data: [AtomicU64::new(0), AtomicU64::new(0)],
        }
    }

    fn write(&self, k: u64) {
        let s = seqlock::write_begin(&self.seq);
        self.frame.store(k, Ordering::Relaxed);
        self.data[0].store(10 * k + 1, Ordering::Relaxed);
        self.data[1].store(10 * k + 2, Ordering::Relaxed);
        seqlock::write_end(&self.seq, s);
    }

    /// `RingReader::peek_next`: the header alone, read consistently; the frame it names.
    fn peek(&self) -> Option<u64> {
        match seqlock::read_validated(&self.seq, || self.frame.load(Ordering::Relaxed)) {
            seqlock::Validated::Valid { r, .. } => Some(r),
            _ => None,
        }
    }

    /// `RingReader::read_ref_in_place` on "frame #k in this slot": inside one seqlock read,
    /// the header is read and, if it still names frame `k`, the consumer computes straight
    /// from the payload words; the result is handed back only if the read validates.
    fn use_ref(&self, k: u64) -> Result<u64, RefRejected> {
        let read = seqlock::read_validated(&self.seq, || {
            let header = self.frame.load(Ordering::Relaxed);
            let computed = (header == k).then(|| {
                let d0 = self.data[0].load(Ordering::Relaxed);
                let d1 = self.data[1].load(Ordering::Relaxed);
                d0 + 2 * d1
            });
            (header, computed)
        });
        match read {
            seqlock::Validated::Valid { r: (_, Some(v)), .. } => Ok(v),
            seqlock::Validated::Valid { r: (header, None), .. } => {
                assert!(header > k, "a validated header went back from frame {k} to {header}");
                Err(RefRejected::Lapped)
            }
            seqlock::Validated::Busy | seqlock::Validated::Changed => Err(RefRejected::Disturbed),
        }
    }
}

/// Outcome counters of the versioned-reference model: [peek refused, used (valid), lapped
/// before the use, disturbed during the use].
static REF_SEEN: [AtomicUsize; 4] =
    [AtomicUsize::new(0), AtomicUsize::new(0), AtomicUsize::new(0), AtomicUsize::new(0)];

/// Issue 13's versioned references: the reader peeks "frame #k at slot X" and later computes
/// from the slot in place while the writer laps it (frame 1 lands where frame 0 was). Whatever
/// the consumer computed from a torn slot, or from a slot that holds another frame by then,
/// must never come back as frame `k`'s; the valid, lapped and disturbed cases must all be
/// explored.
#[test]
fn a_versioned_reference_never_yields_a_lapped_or_torn_result() {
    model(3, || {
        let slot = Arc::new(RefSlot::new());
        slot.write(0);
        let reader = {
            let slot = slot.clone();
            loom::thread::spawn(move || {
                let Some(k) = slot.peek() else {
                    REF_SEEN[0].fetch_add(1, StdRelaxed);
                    return;
                };
                let i = match slot.use_ref(k) {
                    Ok(v) => {
                        assert_eq!(v, 30 * k + 5, "a result not computed from frame {k} came back as valid");
                        1
                    }
                    Err(RefRejected::Lapped) => 2,
                    Err(RefRejected::Disturbed) => 3,
                };
                REF_SEEN[i].fetch_add(1, StdRelaxed);
            })
        };
        slot.write(1);
        reader.join().unwrap();
        assert_eq!(slot.use_ref(1).ok(), Some(35), "the quiescent slot's frame refused");
        assert!(matches!(slot.use_ref(0), Err(RefRejected::Lapped)), "a lapped reference accepted");
    });
    let seen: Vec<usize> = REF_SEEN.iter().map(|c| c.load(StdRelaxed)).collect();
    assert!(seen.iter().all(|n| *n > 0), "not every outcome explored: {seen:?}");
}
