//! Where in a RON text an error is: the field being written at a byte offset, and the
//! position of a field's key.
//!
//! `ron` reports a line:column but not which field it was reading, and a value check done
//! after parsing knows the field but not where it is written. This small scanner bridges
//! both for every RON file of the workspace (calibration rigs and scenarios), so their
//! one-line errors can name the field, as in `FILE:LINE:COL: field world.boxes[2].size: ...`.
//!
//! It tracks brackets, keys (`name:`), list indices, strings, char literals and (nested)
//! comments; it is a best effort on broken text, which is what it is used on.

/// One open bracket (or the top level) while scanning.
#[derive(Clone, Debug, Default)]
struct Frame {
    /// `[...]`: counts elements instead of naming keys.
    list: bool,
    /// The key being written in a struct or map frame.
    key: Option<String>,
    /// The element being written in a list frame (0-based).
    index: usize,
}

/// How a path is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathStyle {
    /// Keys only, dotted, from the top level: `camera.distortion.k1` (calibration files,
    /// whose only lists are matrix rows).
    Keys,
    /// Keys and list indices inside the outermost value: `world.boxes[2].size` (scenarios).
    Indexed,
}

/// The path of fields enclosing a point of a RON text: one segment per open bracket.
#[derive(Clone, Debug, Default)]
pub struct RonPath {
    frames: Vec<Frame>,
}

impl RonPath {
    /// The path at byte `offset` of `src` (clamped to its length).
    #[must_use]
    pub fn at(src: &str, offset: usize) -> Self {
        let mut t = Self::default();
        t.scan(src, offset, None);
        t
    }

    /// The dotted path of the field being written.
    #[must_use]
    pub fn field(&self, style: PathStyle) -> String {
        self.render(self.frames.len(), style)
    }

    /// The dotted path of the struct enclosing the field being written.
    #[must_use]
    pub fn container(&self, style: PathStyle) -> String {
        self.render(self.frames.len().saturating_sub(1), style)
    }

    fn render(&self, to: usize, style: PathStyle) -> String {
        let from = match style {
            PathStyle::Keys => 0,
            PathStyle::Indexed => 1,
        };
        let mut path = String::new();
        for f in self.frames.get(from..to).unwrap_or_default() {
            if f.list {
                if style == PathStyle::Indexed {
                    path.push_str(&format!("[{}]", f.index));
                }
            } else if let Some(key) = &f.key {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
            }
        }
        path
    }

    /// Scans `src` up to byte `stop`; with `find`, stops at the key whose dotted path
    /// ([`PathStyle::Keys`]) equals it and returns the key's byte offset.
    fn scan(&mut self, src: &str, stop: usize, find: Option<&str>) -> Option<usize> {
        self.frames = vec![Frame::default()];
        let b = src.as_bytes();
        let end = stop.min(b.len());
        let mut i = 0;
        while i < end {
            let c = b[i];
            match c {
                b'/' if b.get(i + 1) == Some(&b'/') => i = skip_line_comment(b, i),
                b'/' if b.get(i + 1) == Some(&b'*') => i = skip_block_comment(b, i),
                b'"' | b'\'' => i = skip_quoted(b, i),
                b'(' | b'{' | b'[' => {
                    self.frames.push(Frame { list: c == b'[', ..Frame::default() });
                    i += 1;
                }
                b')' | b'}' | b']' => {
                    if self.frames.len() > 1 {
                        self.frames.pop();
                    }
                    i += 1;
                }
                b',' => {
                    if let Some(top) = self.frames.last_mut() {
                        if top.list {
                            top.index += 1;
                        } else {
                            top.key = None;
                        }
                    }
                    i += 1;
                }
                c if c.is_ascii_alphabetic() || c == b'_' => {
                    let start = i;
                    while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                        i += 1;
                    }
                    if !is_key(b, i) {
                        continue;
                    }
                    if let Some(top) = self.frames.last_mut().filter(|f| !f.list) {
                        top.key = Some(src[start..i].to_owned());
                    }
                    if find.is_some_and(|f| f == self.field(PathStyle::Keys)) {
                        return Some(start);
                    }
                }
                _ => i += 1,
            }
        }
        None
    }
}

/// Whether the identifier ending at `i` is a key: followed by a colon (after blanks).
fn is_key(b: &[u8], mut i: usize) -> bool {
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    b.get(i) == Some(&b':')
}

fn skip_line_comment(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i] != b'\n' {
        i += 1;
    }
    i
}

/// Skips a block comment starting at `i`; RON block comments nest.
fn skip_block_comment(b: &[u8], mut i: usize) -> usize {
    let mut depth = 0usize;
    while i < b.len() {
        if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
            depth += 1;
            i += 2;
        } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
            depth -= 1;
            i += 2;
            if depth == 0 {
                break;
            }
        } else {
            i += 1;
        }
    }
    i
}

/// Skips a string or char literal starting at `i` (with its escapes).
fn skip_quoted(b: &[u8], mut i: usize) -> usize {
    let quote = b[i];
    i += 1;
    while i < b.len() && b[i] != quote {
        i += if b[i] == b'\\' { 2 } else { 1 };
    }
    i + 1
}

/// 1-based (line, column in chars) of the key of the field whose dotted path is `field`
/// ([`PathStyle::Keys`]), if the text writes it.
#[must_use]
pub fn locate_field(src: &str, field: &str) -> Option<(usize, usize)> {
    RonPath::default().scan(src, usize::MAX, Some(field)).map(|b| line_col(&src[..b]))
}

/// 1-based (line, column in chars) of the end of `prefix`.
#[must_use]
pub fn line_col(prefix: &str) -> (usize, usize) {
    let line = prefix.matches('\n').count() + 1;
    let col = prefix.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Byte offset of a 1-based (line, column-in-chars) position, as `ron` reports it, clamped
/// to the text.
#[must_use]
pub fn byte_offset(src: &str, line: usize, col: usize) -> usize {
    let mut offset = 0;
    for (i, l) in src.split_inclusive('\n').enumerate() {
        if i + 1 == line {
            return offset + l.char_indices().nth(col.saturating_sub(1)).map_or(l.len(), |(b, _)| b);
        }
        offset += l.len();
    }
    src.len()
}

/// The field a `ron` error is about, as a path in `style`; `None` if it is outside any
/// field. A missing, duplicate or unknown field is named inside its struct (the error's
/// position is the struct's end or the key), any other error by the field being read.
#[must_use]
pub fn error_field(src: &str, e: &ron::error::SpannedError, style: PathStyle) -> Option<String> {
    let path = RonPath::at(src, byte_offset(src, e.position.line, e.position.col));
    let named = match &e.code {
        ron::Error::MissingStructField { field, .. } | ron::Error::DuplicateStructField { field, .. } => {
            Some(*field)
        }
        ron::Error::NoSuchStructField { found, .. } => Some(found.as_str()),
        _ => None,
    };
    let field = match named {
        Some(name) => match path.container(style) {
            base if base.is_empty() => name.to_owned(),
            base => format!("{base}.{name}"),
        },
        None => path.field(style),
    };
    (!field.is_empty()).then_some(field)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_indices() {
        let src = "Rig(\n  camera: ( fx: 1.0, // c: x\n fy: \"a,b\" , distortion: (k1: oops";
        let at_end = RonPath::at(src, src.len());
        assert_eq!(at_end.field(PathStyle::Keys), "camera.distortion.k1");
        assert_eq!(at_end.container(PathStyle::Keys), "camera.distortion");
        assert_eq!(locate_field(src, "camera.fy"), Some((3, 2)));
        assert_eq!(locate_field(src, "camera.cy"), None);
        let text = "Scenario(\n  name: \"x\",\n  world: (boxes: [(position: (1, 2, 0)), (size: \"no\"";
        assert_eq!(RonPath::at(text, text.len()).field(PathStyle::Indexed), "world.boxes[1].size");
        let text = "Scenario(lidar: (beams: 3, rate_hz: ";
        assert_eq!(RonPath::at(text, text.len()).field(PathStyle::Indexed), "lidar.rate_hz");
        let text = "Scenario(faults: [Kill(role: Camera), DropCalib(epoch: /* c */ 3";
        assert_eq!(RonPath::at(text, text.len()).field(PathStyle::Indexed), "faults[1].epoch");
        assert_eq!(RonPath::at("Scenario(", 9).field(PathStyle::Indexed), "");
    }

    #[test]
    fn positions() {
        assert_eq!(line_col("ab\ncd"), (2, 3));
        assert_eq!(byte_offset("ab\ncd", 2, 2), 4);
        assert_eq!(byte_offset("ab", 9, 1), 2);
    }
}
