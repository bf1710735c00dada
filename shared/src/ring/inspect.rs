//! Reading a segment's slots for `epochfuse inspect`, without modifying anything.

use std::path::Path;

use zerocopy::{FromBytes, IntoBytes};

use super::{Scoreboard, TORN_RETRIES};
use crate::layout::{self, FrameHeader};
use crate::mapping::ReadOnly;
use crate::segment::{AttachError, Segment};
use crate::seqlock;
use crate::sync::Ordering;

/// The state of one slot, for inspection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotState {
    /// Slot index.
    pub index: u64,
    /// The seqlock word.
    pub seq_word: u64,
    /// The frame header, if it could be read consistently.
    pub header: Option<FrameHeader>,
}

/// Reads the header and every slot's state of a segment without modifying it (for
/// `epochfuse inspect`). Opens the file read-only.
///
/// # Errors
/// The first failed attach check.
pub fn inspect(path: &Path) -> Result<(Segment<ReadOnly>, Scoreboard, Vec<SlotState>), AttachError> {
    let seg = Segment::<ReadOnly>::attach(path, None)?;
    let board = Scoreboard::load(&seg);
    let slots = (0..seg.slot_count())
        .map(|index| {
            let off = seg.slot_offset(index);
            let seq_word = seg.map.word_for_loads(off + layout::SLOT_OFF_SEQ);
            let mut header = None;
            for _ in 0..TORN_RETRIES {
                if let Some(s1) = seqlock::read_begin(seq_word) {
                    let words = seg
                        .map
                        .load_words::<{ layout::FRAME_HEADER_WORDS }>(off + layout::SLOT_OFF_FRAME_HEADER);
                    if seqlock::read_end(seq_word, s1) {
                        header = FrameHeader::read_from_bytes(words.as_bytes()).ok();
                        break;
                    }
                }
            }
            SlotState { index, seq_word: seq_word.load(Ordering::Relaxed), header }
        })
        .collect();
    Ok((seg, board, slots))
}

/// The slot map of a segment (layout v4): the slot each residue of the frame sequence modulo
/// the slot count goes to, as a reader resolves it (`Segment::slot_index_for`); the identity
/// unless the writer reuses released slots. `None` for a ring of more than
/// [`layout::SLOT_MAP_MAX`] slots, which has no map.
#[must_use]
pub fn slot_map(seg: &Segment<ReadOnly>) -> Option<Vec<u64>> {
    let n = seg.slot_count();
    (n <= layout::SLOT_MAP_MAX).then(|| (0..n).map(|r| seg.slot_index_for(crate::FrameSeq(r))).collect())
}
