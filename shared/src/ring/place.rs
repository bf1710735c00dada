//! Which slot the writer puts the next frame in: the slot map (layout version 4).
//!
//! By default frame `seq` goes into the slot frame `seq - slots` held, the oldest, as in any
//! ring. A writer told how many readers count their frames
//! ([`RingWriter::reuse_released`](super::RingWriter::reuse_released)) may instead put it
//! into the slot of frame `seq - 1` once the readers' counters say every one of them is done
//! with every frame: that slot was read last, so it is still in cache, as the sample an
//! iceoryx2 subscriber releases is for its publisher. The two frames' map words swap, so
//! frame `seq - 1`'s word now names the slot of frame `seq - slots`, and a reader that was
//! not counted and still wants `seq - 1` finds an older frame there (counted `Stale`) or the
//! new one (`Overrun`); never a wrong frame, since every read checks the slot's header.
//!
//! The writer keeps the map privately (a permutation of the slots) and checks a frame's word
//! at every loan, storing it if it differs, so a scribbled word misdirects readers until the
//! writer comes round to it, and never the writer. A new writer taking over rebuilds the map from the slots'
//! headers (the dead writer may have died between the two stores of a swap).

use std::sync::atomic::Ordering;

use crate::layout::{self, ReaderCounter, WriterCounter};
use crate::segment::Segment;
use crate::FrameSeq;

/// The writer's private slot map; empty for rings too large to have one.
#[derive(Debug)]
pub(super) struct Placement {
    /// `slots[r]`: the slot of the newest frame whose seq is `r` modulo the slot count.
    slots: Vec<u64>,
    /// Readers whose counters must cover every committed frame before a slot is reused.
    readers: Option<u64>,
}

/// Where a loan writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Place {
    /// The slot.
    pub index: u64,
    /// It is the slot of the frame just before (cache-hot): write it with ordinary stores.
    pub reused: bool,
}

impl Placement {
    /// The identity map (a new segment's, whose map words are all zero).
    pub fn identity(seg: &Segment) -> Self {
        let n = seg.slot_count();
        let slots = if n <= layout::SLOT_MAP_MAX { (0..n).collect() } else { Vec::new() };
        Self { slots, readers: None }
    }

    /// The map a new writer continues with: each residue's slot is the one whose header
    /// holds the newest frame of that residue, and residues with none get the slots left
    /// over, so the result is a permutation whatever the map words or headers held. Stored.
    pub fn rebuild(seg: &Segment) -> Self {
        let mut p = Self::identity(seg);
        let n = p.slots.len() as u64;
        if n == 0 {
            return p;
        }
        let mut newest: Vec<Option<(u64, u64)>> = vec![None; p.slots.len()];
        for index in 0..n {
            let Some(h) = super::inplace::header_at(&seg.map, seg.slot_offset(index)) else { continue };
            if h.incarnation == 0 {
                continue;
            }
            let r = (h.frame_seq & (n - 1)) as usize;
            if newest[r].is_none_or(|(seq, _)| h.frame_seq > seq) {
                newest[r] = Some((h.frame_seq, index));
            }
        }
        let mut used = vec![false; p.slots.len()];
        for (r, e) in newest.iter().enumerate() {
            if let Some((_, index)) = e {
                p.slots[r] = *index;
                used[*index as usize] = true;
            }
        }
        let mut free = (0..n).filter(|i| !used[*i as usize]);
        for (r, e) in newest.iter().enumerate() {
            if e.is_none() {
                p.slots[r] = free.next().unwrap_or(r as u64);
            }
        }
        for r in 0..n {
            p.store(seg, r);
        }
        p
    }

    /// Reuse the released slot when `readers` readers have counted every frame.
    pub fn set_readers(&mut self, readers: Option<u64>) {
        self.readers = readers;
    }

    /// The slot for frame `next`, `committed` frames having been committed before it; the
    /// map words it changes are stored (before the caller opens the slot's seqlock).
    pub fn place(&mut self, seg: &Segment, next: FrameSeq, committed: u64) -> Place {
        let n = seg.slot_count();
        let r = next.0 & (n - 1);
        if self.slots.is_empty() {
            return Place { index: r, reused: false };
        }
        let prev = r.wrapping_sub(1) & (n - 1);
        let reused = committed > 0 && self.readers.is_some_and(|k| done_with_all(seg, k, committed));
        if reused {
            self.slots.swap(r as usize, prev as usize);
            self.store(seg, prev);
            seg.map
                .word(layout::writer_counter_offset(WriterCounter::SlotsReused))
                .fetch_add(1, Ordering::Relaxed);
        }
        self.store(seg, r);
        Place { index: self.slots[r as usize], reused }
    }

    /// Stores word `r` if it does not already hold the writer's value (a scribbled word is
    /// put right; an unchanged one is not rewritten, so the line stays shared in the
    /// readers' caches instead of being taken from them at every frame).
    fn store(&self, seg: &Segment, r: u64) {
        let word = seg.map.word(layout::slot_map_offset(r));
        let value = self.slots[r as usize] ^ r;
        // Relaxed, both: only this writer stores the word (a scribbler aside), and the store
        // comes before the Release fence of the slot's `seqlock::write_begin`, which orders
        // the cursor store that announces the frame (see `Segment::slot_index_for`).
        if word.load(Ordering::Relaxed) != value {
            word.store(value, Ordering::Relaxed);
        }
    }
}

/// Whether `readers` readers' counters account for all `committed` frames: every frame read,
/// let go or lost by each of them (the counters are summed, as back-pressure sums them).
/// A scribbled counter can only make the writer reuse a slot early: frames are lost, counted.
fn done_with_all(seg: &Segment, readers: u64, committed: u64) -> bool {
    consumed(seg) >= readers.saturating_mul(committed)
}

/// The readers' counters summed: frames read (or let go), lost to overruns, stale, invalid.
pub(super) fn consumed(seg: &Segment) -> u64 {
    [
        ReaderCounter::FramesRead,
        ReaderCounter::OverrunFramesLost,
        ReaderCounter::Stale,
        ReaderCounter::Invalid,
    ]
    .into_iter()
    .map(|c| seg.map.load(layout::reader_counter_offset(c), Ordering::Relaxed))
    .fold(0u64, u64::saturating_add)
}
