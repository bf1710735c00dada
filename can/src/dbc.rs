//! DBC input: the messages of a bus with their timing, read with the `can-dbc` parser.
//!
//! # Contract
//! - Input: a regular file of at most [`MAX_DBC_BYTES`]; UTF-8, or else read as Latin-1
//!   (DBC tools write Windows-1252; only comments and names can differ).
//! - Period: the message attribute [`CYCLE_TIME_ATTR`] (ms), else its `BA_DEF_DEF_` default.
//!   A message without a period > 0 is an **error**: an event-triggered message still
//!   interferes with and blocks others, so leaving it out would make every bound unsafe.
//!   Give such a message its minimum inter-arrival time as `GenMsgCycleTime`.
//! - Deadline: [`DEADLINE_ATTR`] (ms) if set (value or default) and > 0, else the period.
//! - Release jitter: [`JITTER_ATTR`] (ms, may be fractional), else 0.
//! - Attribute values may be INT, HEX or FLOAT, never negative; strings are errors.
//! - DLC at most 8 (classic CAN), standard identifiers at most 0x7ff, identifiers unique.
//! - Signals: 1..=64 bits inside the DLC, a finite non-zero factor (multiplexing is not
//!   interpreted: every signal is read as if present).
//!   Vector's pseudo-message `VECTOR__INDEPENDENT_SIG_MSG` is not a frame and is skipped.
//! - Every error is one line naming the file and, where known, `line:column`.

use std::fmt;
use std::io::Read as _;
use std::path::Path;

use can_dbc::{AttributeValue, ByteOrder, Dbc, MessageId, Transmitter, ValueType};

use crate::frame::CanId;
use crate::signal::Signal;

/// Largest DBC file read: production vehicle databases are a few hundred KiB.
pub const MAX_DBC_BYTES: u64 = 4 << 20;
/// Message attribute with the period, ms (Vector's name).
pub const CYCLE_TIME_ATTR: &str = "GenMsgCycleTime";
/// Message attribute with a deadline shorter (or longer) than the period, ms (this project's
/// name; DBC has no standard one).
pub const DEADLINE_ATTR: &str = "GenMsgDeadline";
/// Message attribute with the release jitter, ms (this project's name).
pub const JITTER_ATTR: &str = "GenMsgJitter";
const INDEPENDENT_SIGNALS: &str = "VECTOR__INDEPENDENT_SIG_MSG";

/// A periodic message of the bus, times in ns.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    /// Identifier (11 or 29 bits).
    pub id: CanId,
    /// Name in the DBC.
    pub name: String,
    /// Data bytes, 0..=8.
    pub dlc: u8,
    /// Period (minimum inter-arrival time), ns, > 0.
    pub period_ns: u64,
    /// Deadline relative to the nominal release, ns, > 0.
    pub deadline_ns: u64,
    /// Release jitter, ns.
    pub jitter_ns: u64,
    /// Sending node ("" when the DBC names none).
    pub sender: String,
    /// The signals in its data.
    pub signals: Vec<Signal>,
}

impl Message {
    /// The signal called `name`.
    #[must_use]
    pub fn signal(&self, name: &str) -> Option<&Signal> {
        self.signals.iter().find(|s| s.name == name)
    }
}

/// A position in the file, 1-based.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    /// Line, from 1.
    pub line: usize,
    /// Column in characters, from 1.
    pub column: usize,
}

/// Bad DBC input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DbcError {
    /// The file (as given).
    pub file: String,
    /// Where, when the parser or the check knows.
    pub position: Option<Position>,
    /// What is wrong, one line.
    pub message: String,
}

impl fmt::Display for DbcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some(p) => write!(f, "{}:{}:{}: {}", self.file, p.line, p.column, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

impl std::error::Error for DbcError {}

/// Reads the messages of a DBC file.
///
/// # Errors
/// A [`DbcError`] when the file is not a regular file, larger than [`MAX_DBC_BYTES`],
/// unreadable, malformed, or breaks the contract of this module.
pub fn load(path: &Path) -> Result<Vec<Message>, DbcError> {
    let file = path.display().to_string();
    let fail = |message: String| DbcError { file: file.clone(), position: None, message };
    let meta = std::fs::metadata(path).map_err(|e| fail(e.to_string()))?;
    if !meta.is_file() {
        return Err(fail("not a regular file".into()));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_DBC_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| fail(e.to_string()))?;
    if bytes.len() as u64 > MAX_DBC_BYTES {
        return Err(fail(format!("larger than {MAX_DBC_BYTES} bytes")));
    }
    let text = match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => e.into_bytes().iter().map(|&b| char::from(b)).collect(),
    };
    parse(&text, &file)
}

/// Parses DBC text; `file` names it in errors.
///
/// # Errors
/// As [`load`], for the text.
pub fn parse(text: &str, file: &str) -> Result<Vec<Message>, DbcError> {
    let at =
        |position: Option<Position>, message: String| DbcError { file: file.to_string(), position, message };
    let dbc = Dbc::try_from(text).map_err(|e| match e {
        can_dbc::DbcError::Pest(p) => {
            let (line, column) = match p.line_col {
                pest::error::LineColLocation::Pos(lc) | pest::error::LineColLocation::Span(lc, _) => lc,
            };
            at(Some(Position { line, column }), format!("syntax: {}", p.variant.message()))
        }
        other => at(None, other.to_string()),
    })?;
    let mut out: Vec<Message> = Vec::with_capacity(dbc.messages.len());
    for m in &dbc.messages {
        if m.name == INDEPENDENT_SIGNALS {
            continue;
        }
        let raw = m.id.raw();
        let where_bo = || locate(text, &["BO_", &raw.to_string()]);
        let id = match m.id {
            MessageId::Standard(s) => CanId::standard(u32::from(s)),
            MessageId::Extended(e) => CanId::extended(e),
        }
        .ok_or_else(|| at(where_bo(), format!("message {}: identifier {raw} out of range", m.name)))?;
        let dlc = u8::try_from(m.size)
            .ok()
            .filter(|&d| d <= 8)
            .ok_or_else(|| at(where_bo(), format!("message {}: DLC {} > 8 (classic CAN)", m.name, m.size)))?;
        if out.iter().any(|o| o.id == id) {
            return Err(at(where_bo(), format!("message {}: identifier {id} defined twice", m.name)));
        }
        let attr = |name: &str| attribute_ms(&dbc, text, m.id, name).map_err(|(p, msg)| at(p, msg));
        let period_ns = attr(CYCLE_TIME_ATTR)?.filter(|&p| p > 0).ok_or_else(|| {
            at(
                where_bo(),
                format!(
                    "message {} ({id}): no {CYCLE_TIME_ATTR} > 0; give event messages their \
                     minimum inter-arrival time",
                    m.name
                ),
            )
        })?;
        let deadline_ns = attr(DEADLINE_ATTR)?.filter(|&d| d > 0).unwrap_or(period_ns);
        let jitter_ns = attr(JITTER_ATTR)?.unwrap_or(0);
        let sender = match &m.transmitter {
            Transmitter::NodeName(n) => n.clone(),
            Transmitter::VectorXXX => String::new(),
        };
        let signals = m
            .signals
            .iter()
            .map(|s| {
                signal(s, dlc)
                    .map_err(|e| at(locate(text, &["SG_", &s.name]), format!("message {}: {e}", m.name)))
            })
            .collect::<Result<_, _>>()?;
        out.push(Message {
            id,
            name: m.name.clone(),
            dlc,
            period_ns,
            deadline_ns,
            jitter_ns,
            sender,
            signals,
        });
    }
    Ok(out)
}

/// A checked signal of a message with `dlc` data bytes.
fn signal(s: &can_dbc::Signal, dlc: u8) -> Result<Signal, String> {
    let size = u32::try_from(s.size).ok().filter(|n| (1..=64).contains(n));
    let (Some(size), Ok(start_bit)) = (size, u32::try_from(s.start_bit)) else {
        return Err(format!("signal {}: {} bits at {} (1..=64 bits)", s.name, s.size, s.start_bit));
    };
    if !s.factor.is_finite() || s.factor == 0.0 || !s.offset.is_finite() {
        return Err(format!("signal {}: factor {} offset {}", s.name, s.factor, s.offset));
    }
    let out = Signal {
        name: s.name.clone(),
        start_bit,
        size,
        little_endian: matches!(s.byte_order, ByteOrder::LittleEndian),
        signed: matches!(s.value_type, ValueType::Signed),
        factor: s.factor,
        offset: s.offset,
        unit: s.unit.clone(),
    };
    if start_bit >= 64 || out.last_bit() >= 8 * u32::from(dlc) {
        return Err(format!("signal {}: bits past the {dlc} data bytes", s.name));
    }
    Ok(out)
}

type Located = (Option<Position>, String);

/// A message attribute in ms as ns: the message's own value, else the default, else `None`.
fn attribute_ms(dbc: &Dbc, text: &str, id: MessageId, name: &str) -> Result<Option<u64>, Located> {
    let own = dbc.attribute_values_message.iter().rev().find(|a| a.name == name && a.message_id == id);
    let (value, position) = match own {
        Some(a) => (&a.value, locate(text, &["BA_", &format!("\"{name}\""), "BO_", &id.raw().to_string()])),
        None => match dbc.attribute_defaults.iter().rev().find(|d| d.name == name) {
            Some(d) => (&d.value, locate(text, &["BA_DEF_DEF_", &format!("\"{name}\"")])),
            None => return Ok(None),
        },
    };
    let ms = match value {
        AttributeValue::Uint(u) => *u as f64,
        AttributeValue::Int(i) => *i as f64,
        AttributeValue::Double(d) => *d,
        AttributeValue::String(s) => {
            return Err((position, format!("attribute {name}: \"{s}\" is not a number of ms")));
        }
    };
    if !(0.0..=3.6e6).contains(&ms) {
        return Err((position, format!("attribute {name}: {ms} ms outside 0..=3600000")));
    }
    // Whole ns: sub-ns precision is meaningless on a bus whose bit time is ≥ 1000 ns.
    Ok(Some((ms * 1e6).round() as u64))
}

/// The first line whose leading whitespace-separated tokens are `tokens` (a trailing `;` or
/// `:` ignored), as the position of its first token.
fn locate(text: &str, tokens: &[&str]) -> Option<Position> {
    text.lines().enumerate().find_map(|(i, line)| {
        let mut words = line.split_whitespace().map(|w| w.trim_end_matches([';', ':']));
        tokens.iter().all(|t| words.next() == Some(t)).then(|| Position {
            line: i + 1,
            column: line.chars().take_while(|c| c.is_whitespace()).count() + 1,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_finds_the_line_and_column() {
        let text = "VERSION \"\"\n\n  BO_ 416 Wheels: 8 ABS\n";
        assert_eq!(locate(text, &["BO_", "416"]), Some(Position { line: 3, column: 3 }));
        assert_eq!(locate(text, &["BO_", "41"]), None);
    }
}
