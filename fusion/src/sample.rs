//! Sampling a camera frame at many pixels in one sequential pass over its slot.
//!
//! Colouring a sweep reads a few bytes at each of thousands of scattered pixels. Read at
//! random straight from a 2.7 MB slot, nearly every one is a cache (and TLB) miss, and the
//! checksum then needs a second pass over the whole frame anyway. Here the requests are
//! sorted by where they end in the payload (a counting sort by 64-byte line), and the frame
//! is streamed once in order ([`RingReader::read_at_chunks`]: private chunks, the checksum
//! folded into the same loads); each request is served as soon as the stream has passed its
//! last byte. The bytes served are exactly those a random read would have returned.

use shared::frames::{check_image_header, ImageHeader, IMAGE_HEADER_SIZE};
use shared::ring::{FrameRef, InPlace, RingReader};
use zerocopy::FromBytes;

/// The colour and label of one pixel (black and 0 outside the image; label 0 without a
/// label plane).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PixelSample {
    /// R, G, B.
    pub rgb: [u8; 3],
    /// The instance label.
    pub label: u16,
}

/// What a sampled image is: its size and whether it has a label plane.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageFacts {
    /// Width and height in pixels.
    pub size: (usize, usize),
    /// Whether it has a label plane.
    pub labels: bool,
}

/// Bytes per line of the counting sort.
const LINE: usize = 64;
/// Words kept from before the current chunk: a line's requests may start up to this far back.
const CARRY: usize = LINE / 8;

/// Reusable buffers for [`gather`].
#[derive(Debug, Default)]
pub struct SampleScratch {
    /// Requests per line, then the start of each line's run in `order`.
    lines: Vec<u32>,
    /// Requests (`2 * k` colour, `2 * k + 1` label, of coordinate `k`) sorted by line.
    order: Vec<u32>,
    /// The samples, one per coordinate.
    pub(crate) out: Vec<PixelSample>,
}

/// A request's first byte and length.
fn request(h: &ImageHeader, px: usize, label: bool) -> (usize, usize) {
    if label {
        (IMAGE_HEADER_SIZE + h.rgb_len() + 2 * px, 2)
    } else {
        (IMAGE_HEADER_SIZE + 3 * px, 3)
    }
}

/// The pixel index of coordinate `(x, y)`, if inside the image.
fn pixel(h: &ImageHeader, (x, y): (usize, usize)) -> Option<usize> {
    let (w, ht) = (h.width as usize, h.height as usize);
    (x < w && y < ht).then(|| y * w + x)
}

/// The streaming state: the header once seen, the sorted requests, and the words carried
/// over from the previous chunk.
struct Gather<'a> {
    at: &'a [(usize, usize)],
    scratch: &'a mut SampleScratch,
    /// Bound for a header seen before validation (the slot's capacity).
    capacity: usize,
    header: Option<ImageHeader>,
    /// The header failed its check.
    bad: bool,
    /// The next line to serve, and the last payload word any request needs.
    next_line: usize,
    last_word: usize,
    /// Words `[first - CARRY, first)` of the previous chunks (zero before the payload).
    carry: [u64; CARRY],
}

impl Gather<'_> {
    /// Parses the header from the first chunk and sorts the requests by line.
    fn plan(&mut self, words: &[u64]) {
        let mut bytes = [0u8; IMAGE_HEADER_SIZE];
        for (k, b) in bytes.iter_mut().enumerate() {
            *b = words.get(k / 8).map_or(0, |w| w.to_le_bytes()[k % 8]);
        }
        let header = ImageHeader::read_from_bytes(&bytes).ok();
        // Checked against the capacity now (sizes bounded, planes fit in the slot); against
        // the frame's own length once the read is validated.
        let Some(h) = header
            .filter(|h| words.len() * 8 >= IMAGE_HEADER_SIZE && check_image_header(h, self.capacity).is_ok())
        else {
            self.bad = true;
            return;
        };
        self.header = Some(h);
        self.last_word = (h.payload_len() - 1) / 8;
        let s = &mut *self.scratch;
        s.out.clear();
        s.out.resize(self.at.len(), PixelSample::default());
        s.lines.clear();
        s.lines.resize(h.payload_len().div_ceil(LINE) + 1, 0);
        let labels = h.has_labels != 0;
        let line_of = |px, label| {
            let (start, n) = request(&h, px, label);
            (start + n - 1) / LINE
        };
        for &c in self.at {
            if let Some(px) = pixel(&h, c) {
                s.lines[line_of(px, false)] += 1;
                if labels {
                    s.lines[line_of(px, true)] += 1;
                }
            }
        }
        // Exclusive prefix sums: the start of each line's run.
        let mut total = 0u32;
        for n in &mut s.lines {
            (*n, total) = (total, total + *n);
        }
        s.order.clear();
        s.order.resize(total as usize, 0);
        for (k, &c) in self.at.iter().enumerate() {
            if let Some(px) = pixel(&h, c) {
                for label in [false, true].into_iter().take(1 + usize::from(labels)) {
                    let slot = &mut s.lines[line_of(px, label)];
                    s.order[*slot as usize] = (2 * k + usize::from(label)) as u32;
                    *slot += 1;
                }
            }
        }
        // Each entry now holds the end of its line's run; the start is the previous entry's.
    }

    /// Serves every line whose requests all end before word `end`, from `words` (starting at
    /// word `first`) and the carried words before them.
    fn serve(&mut self, first: usize, words: &[u64], end: usize) {
        let Some(h) = self.header else { return };
        let word = |i: usize| if i >= first { words[i - first] } else { self.carry[i + CARRY - first] };
        let s = &mut *self.scratch;
        while self.next_line + 1 < s.lines.len() {
            let b = self.next_line;
            if ((b + 1) * LINE / 8 - 1).min(self.last_word) >= end {
                break;
            }
            let from = if b == 0 { 0 } else { s.lines[b - 1] as usize };
            for &r in &s.order[from..s.lines[b] as usize] {
                let (k, label) = (r as usize / 2, r % 2 == 1);
                let Some(px) = pixel(&h, self.at[k]) else { continue };
                let (start, n) = request(&h, px, label);
                let (i, skip) = (start / 8, start % 8);
                let mut v = word(i) >> (8 * skip);
                if skip + n > 8 {
                    v |= word(i + 1) << (8 * (8 - skip));
                }
                let b = v.to_le_bytes();
                let out = &mut s.out[k];
                if label {
                    out.label = u16::from_le_bytes([b[0], b[1]]);
                } else {
                    out.rgb = [b[0], b[1], b[2]];
                }
            }
            self.next_line += 1;
        }
    }

    /// One chunk of the stream: words `first..first + words.len()`.
    fn chunk(&mut self, first: usize, words: &[u64]) {
        if first == 0 {
            self.plan(words);
        }
        if self.bad {
            return;
        }
        self.serve(first, words, first + words.len());
        // Keep the last CARRY words seen for the next chunk.
        if words.len() >= CARRY {
            self.carry.copy_from_slice(&words[words.len() - CARRY..]);
        } else {
            self.carry.rotate_left(words.len());
            self.carry[CARRY - words.len()..].copy_from_slice(words);
        }
    }
}

/// Samples frame `frame` of `ring` at pixel coordinates `at` (column, row) into
/// `scratch.out`, in one validated pass over the slot. `Ok` only if the slot held the frame,
/// untorn, with a valid checksum and image header, throughout.
///
/// # Errors
/// The read's outcome if it was rejected; `Err(None)` if the frame's image is malformed.
pub fn gather(
    ring: &RingReader,
    frame: FrameRef,
    at: &[(usize, usize)],
    scratch: &mut SampleScratch,
) -> Result<(shared::ring::FrameInfo, ImageFacts), Option<shared::ring::ReadOutcome>> {
    let state = Gather {
        at,
        scratch,
        capacity: ring.slot_capacity(),
        header: None,
        bad: false,
        next_line: 0,
        last_word: 0,
        carry: [0; CARRY],
    };
    match ring.read_at_chunks(frame.seq(), state, |g, first, words| g.chunk(first, words)) {
        InPlace::Frame(info, g) => {
            let h = g.header.filter(|h| !g.bad && check_image_header(h, info.len).is_ok()).ok_or(None)?;
            // Every line was served: the stream covered the whole payload.
            if g.next_line + 1 < g.scratch.lines.len() {
                return Err(None);
            }
            Ok((info, ImageFacts { size: (h.width as usize, h.height as usize), labels: h.has_labels != 0 }))
        }
        InPlace::Rejected(o) => Err(Some(o)),
    }
}

#[cfg(test)]
mod tests {
    use shared::frames::camera_image;
    use shared::ring::{FrameMeta, RingWriter};
    use shared::segment::SegmentSpec;
    use shared::{CalibEpoch, StreamKind, TimestampNs};
    use zerocopy::IntoBytes;

    use super::*;
    use crate::payload::Pixels;

    /// A labelled `w × h` image whose every byte differs from its neighbours.
    fn image(w: u32, h: u32) -> Vec<u8> {
        let header = ImageHeader::rgb8_labelled(w, h);
        let mut bytes = header.as_bytes().to_vec();
        bytes.extend((0..header.rgb_len() + header.labels_len()).map(|i| (i * 7 + i / 251) as u8));
        bytes
    }

    /// The stream serves exactly the bytes a random read returns, at every offset in a word
    /// and across chunk boundaries, inside and outside the image.
    #[test]
    fn one_pass_samples_equal_random_reads() {
        for (w, h) in [(1, 1), (5, 3), (37, 23), (613, 97)] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("camera.seg");
            let bytes = image(w, h);
            let spec = SegmentSpec::new(StreamKind::Camera, 2, bytes.len() as u64 + 64);
            let (mut wr, _) = RingWriter::create_or_takeover(&path, &spec).unwrap();
            let mut loan = wr.loan();
            loan.push(&bytes).unwrap();
            loan.commit(FrameMeta { capture: TimestampNs(1), epoch: CalibEpoch(1) });
            let mut reader = RingReader::attach(&path, StreamKind::Camera).unwrap();
            let (frame, _) = reader.peek_next().unwrap();
            let (w, h) = (w as usize, h as usize);
            // Every pixel, in a scattered order, plus some outside.
            let mut at: Vec<(usize, usize)> = (0..w * h).map(|i| ((i * 31) % w, (i * 17) % h)).collect();
            at.extend([(w, 0), (0, h), (w + 5, h + 5), (usize::MAX, 0)]);
            let mut scratch = SampleScratch::default();
            let (_, facts) = gather(&reader, frame, &at, &mut scratch).unwrap();
            assert_eq!(facts, ImageFacts { size: (w, h), labels: true });
            let img = camera_image(&bytes).unwrap();
            for (k, &(x, y)) in at.iter().enumerate() {
                let want = if x < w && y < h {
                    PixelSample { rgb: img.rgb(y * w + x), label: img.label(y * w + x) }
                } else {
                    PixelSample::default()
                };
                assert_eq!(scratch.out[k], want, "{w}×{h} at ({x}, {y})");
            }
        }
    }
}
