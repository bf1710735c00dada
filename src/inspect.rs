//! `epochfuse inspect`: a segment's header, scoreboard and slots, as tables or JSON.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;
use shared::ring::{self, Scoreboard, SlotState};

use crate::error::CliError;

#[derive(Debug, Serialize)]
struct SlotJson {
    index: u64,
    seq_word: u64,
    state: &'static str,
    frame_seq: Option<u64>,
    capture_ns: Option<u64>,
    epoch: Option<u64>,
    payload_len: Option<u64>,
    incarnation: Option<u64>,
}

#[derive(Debug, Serialize)]
struct InspectJson {
    path: String,
    stream: &'static str,
    layout_version: u64,
    slot_count: u64,
    slot_capacity: u64,
    slot_stride: u64,
    base_seq: u64,
    incarnation: u64,
    writer_pid: u64,
    writer_alive: bool,
    write_cursor: u64,
    frames_written: u64,
    bytes_written: u64,
    frames_read: u64,
    torn_retries: u64,
    overruns: u64,
    overrun_frames_lost: u64,
    stale: u64,
    invalid: u64,
    slots_repaired: u64,
    loans_aborted: u64,
    slots_reused: u64,
    aux: Vec<u64>,
    /// The slot each residue of the frame sequence goes to (layout v4's slot map); absent for
    /// a ring of more than 256 slots, which has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    slot_map: Option<Vec<u64>>,
    slots: Vec<SlotJson>,
}

/// `n thing` or `n things`.
fn count(n: u64, thing: &str) -> String {
    if n == 1 {
        format!("1 {thing}")
    } else {
        format!("{n} {thing}s")
    }
}

/// The slot map in a line: `identity`, or the residues that go elsewhere (`r→slot`, the first
/// sixteen) and how many (a writer that reuses released slots moves them), and whether two
/// residues name one slot (a scribbled word, or a writer killed between the two stores of a
/// swap; the writer puts it right).
fn map_line(map: &[u64]) -> String {
    let moved: Vec<String> = map
        .iter()
        .enumerate()
        .filter(|&(r, &slot)| r as u64 != slot)
        .map(|(r, slot)| format!("{r}→{slot}"))
        .collect();
    if moved.is_empty() {
        return "identity".into();
    }
    let more = moved.len().saturating_sub(16);
    let shown = moved[..moved.len() - more].join(" ");
    let tail = if more > 0 { format!(" … {more} more") } else { String::new() };
    let mut slots = map.to_vec();
    slots.sort_unstable();
    slots.dedup();
    let shared = if slots.len() < map.len() { "; two residues name one slot" } else { "" };
    format!("{shown}{tail}   ({} of {} moved{shared})", moved.len(), count(map.len() as u64, "residue"))
}

fn slot_state(s: &SlotState) -> &'static str {
    match (s.seq_word & 1, s.header) {
        (1, _) => "writing",
        (_, None) => "torn",
        (_, Some(_)) if s.seq_word == 0 => "empty",
        (_, Some(h)) if h.incarnation == 0 => "invalid",
        _ => "frame",
    }
}

/// Runs `inspect`.
///
/// # Errors
/// Exit code 2 with one line naming the file and what is wrong with it.
pub fn run(path: &Path, json: bool) -> Result<(), CliError> {
    let (seg, board, slots) =
        ring::inspect(path).map_err(|e| CliError::input(format!("{}: {e}", path.display())))?;
    let h = seg.header;
    let Scoreboard { .. } = board;
    let alive = ring::writer_alive(path);
    let out = InspectJson {
        path: path.display().to_string(),
        stream: seg.kind.name(),
        layout_version: h.layout_version,
        slot_count: h.slot_count,
        slot_capacity: h.slot_capacity,
        slot_stride: h.slot_stride,
        base_seq: h.base_seq,
        incarnation: board.incarnation.0,
        writer_pid: board.writer_pid,
        writer_alive: alive,
        write_cursor: board.cursor.0,
        frames_written: board.frames_written,
        bytes_written: board.bytes_written,
        frames_read: board.frames_read,
        torn_retries: board.torn_retries,
        overruns: board.overruns,
        overrun_frames_lost: board.overrun_frames_lost,
        stale: board.stale,
        invalid: board.invalid,
        slots_repaired: board.slots_repaired,
        loans_aborted: board.loans_aborted,
        slots_reused: board.slots_reused,
        aux: board.aux.to_vec(),
        slot_map: ring::slot_map(&seg),
        slots: slots
            .iter()
            .map(|s| SlotJson {
                index: s.index,
                seq_word: s.seq_word,
                state: slot_state(s),
                frame_seq: s.header.map(|h| h.frame_seq),
                capture_ns: s.header.map(|h| h.capture_ns),
                epoch: s.header.map(|h| h.epoch),
                payload_len: s.header.map(|h| h.payload_len),
                incarnation: s.header.map(|h| h.incarnation),
            })
            .collect(),
    };
    if json {
        let text = serde_json::to_string_pretty(&out).map_err(|e| CliError::internal(e.to_string()))?;
        crate::error::out(&format!("{text}\n"));
        return Ok(());
    }
    let mut s = String::new();
    let _ = writeln!(s, "segment   {}", out.path);
    let _ = writeln!(
        s,
        "stream    {}   layout v{}   {} slots × {} B (stride {})   base seq {}",
        out.stream, out.layout_version, out.slot_count, out.slot_capacity, out.slot_stride, out.base_seq
    );
    let _ = writeln!(
        s,
        "writer    pid {}   incarnation {}   {}   cursor {}",
        out.writer_pid,
        out.incarnation,
        if alive { "alive (lock held)" } else { "gone (lock free)" },
        out.write_cursor
    );
    let _ = writeln!(
        s,
        "written   {}, {:.1} MB   repaired {}   aborted {}   into a released slot {}",
        count(out.frames_written, "frame"),
        out.bytes_written as f64 / 1e6,
        out.slots_repaired,
        out.loans_aborted,
        out.slots_reused
    );
    let _ = writeln!(
        s,
        "readers   read {}   torn retries {}   overruns {} ({} lost)   stale {}   invalid {}",
        out.frames_read,
        out.torn_retries,
        out.overruns,
        count(out.overrun_frames_lost, "frame"),
        out.stale,
        out.invalid
    );
    if let Some(map) = &out.slot_map {
        let _ = writeln!(s, "slot map  {}", map_line(map));
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "{:>5}  {:<8}  {:>20}  {:>14}  {:>6}  {:>10}  {:>5}",
        "slot", "state", "frame seq", "capture ms", "epoch", "bytes", "inc"
    );
    for slot in &out.slots {
        let opt = |v: Option<u64>| v.map_or_else(|| "-".to_string(), |v| v.to_string());
        let _ = writeln!(
            s,
            "{:>5}  {:<8}  {:>20}  {:>14}  {:>6}  {:>10}  {:>5}",
            slot.index,
            slot.state,
            opt(slot.frame_seq),
            slot.capture_ns.map_or_else(|| "-".to_string(), |ns| format!("{:.3}", ns as f64 / 1e6)),
            opt(slot.epoch),
            opt(slot.payload_len),
            opt(slot.incarnation)
        );
    }
    crate::error::out(&s);
    Ok(())
}
