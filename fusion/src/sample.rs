//! The camera pixels under the projected points (colour and label), sampled from owned bytes
//! or straight from the camera slot in the one pass that checks the frame.
//!
//! From a slot, the samples are taken during the checksum's pass over the frame, 4 KiB at a
//! time (`RingReader::read_at_blocks`): the points are first sorted by row (a counting
//! sort), so that each row's samples are loaded right after the pass has brought the row
//! into L1, instead of one scattered load from a 2.7 MB frame per sample plus a second pass
//! for the checksum.

use shared::frames::{
    check_image_header, FusedPoint, ImageHeader, ImageView, PointRecord, IMAGE_HEADER_SIZE,
};
use zerocopy::{FromBytes, IntoBytes};

use crate::project::Projected;

/// Per projected point, the colour and label of its pixel, and the image they came from.
/// Filled whole only by a successful read; a failed read does not hand it back.
#[derive(Debug, Default)]
pub struct PixelSamples {
    /// Colour per point (black outside the image).
    rgb: Vec<[u8; 3]>,
    /// Label per point (`None` outside the image or without a label plane).
    label: Vec<Option<u16>>,
    /// Whether the image has a label plane.
    labelled: bool,
    /// Pixel index per point (meaningful for the points in `order`).
    px: Vec<u32>,
    /// The points inside the image, by row.
    order: Vec<u32>,
    /// Where row `y`'s points end in `order` (after the counting sort).
    rows: Vec<u32>,
    /// The points inside the image, unsorted.
    tmp: Vec<u32>,
}

impl PixelSamples {
    /// The colour and label under point `k`.
    #[must_use]
    pub fn at(&self, k: usize) -> ([u8; 3], Option<u16>) {
        (self.rgb.get(k).copied().unwrap_or([0; 3]), self.label.get(k).copied().flatten())
    }

    /// Whether the image had a label plane.
    #[must_use]
    pub fn labelled(&self) -> bool {
        self.labelled
    }

    /// Resets for the points `(u, v)` of an image with header `h` (its sides checked: at
    /// most `MAX_IMAGE_SIDE`, so the pixel indices fit in `u32` and the sort's buckets are
    /// bounded) and sorts the points inside it by row.
    fn plan(&mut self, h: &ImageHeader, u: &[f64], v: &[f64]) {
        let (iw, ih) = (h.width as usize, h.height as usize);
        let n = u.len().min(v.len());
        self.labelled = h.has_labels != 0;
        self.rgb.clear();
        self.rgb.resize(n, [0; 3]);
        self.label.clear();
        self.label.resize(n, None);
        self.px.clear();
        self.px.resize(n, 0);
        self.tmp.clear();
        for (k, (&u, &v)) in u.iter().zip(v).enumerate() {
            let (x, y) = (u as usize, v as usize);
            if x < iw && y < ih {
                self.px[k] = (y * iw + x) as u32;
                self.tmp.push(k as u32);
            }
        }
        // The row again from `v` (as above), not `px / iw`: two integer divisions per point.
        counting_sort(&self.tmp, &mut self.order, &mut self.rows, ih, |k| v[k as usize] as usize);
    }

    /// The indices in `order` of row `y`'s points.
    fn row(&self, y: usize) -> std::ops::Range<usize> {
        let start = y.checked_sub(1).map_or(0, |p| self.rows[p] as usize);
        start..self.rows[y] as usize
    }

    /// Samples an owned image at the points `(u, v)`.
    pub(crate) fn fill_owned(&mut self, img: &ImageView<'_>, u: &[f64], v: &[f64]) {
        self.plan(&img.header, u, v);
        for &k in &self.order {
            let (k, px) = (k as usize, self.px[k as usize] as usize);
            if let Some(c) = img.rgb.get(px * 3..px * 3 + 3) {
                self.rgb[k] = [c[0], c[1], c[2]];
            }
            if let Some(l) = img.labels {
                self.label[k] =
                    Some(l.get(px * 2..px * 2 + 2).map_or(0, |b| u16::from_le_bytes([b[0], b[1]])));
            }
        }
    }
}

/// Stable counting sort of `src` into `dst` by `key` (< `buckets`); `counts[b]` ends up
/// where bucket `b` ends in `dst`.
fn counting_sort(
    src: &[u32],
    dst: &mut Vec<u32>,
    counts: &mut Vec<u32>,
    buckets: usize,
    key: impl Fn(u32) -> usize,
) {
    counts.clear();
    counts.resize(buckets + 1, 0);
    for &k in src {
        counts[key(k) + 1] += 1;
    }
    for b in 1..counts.len() {
        counts[b] += counts[b - 1];
    }
    dst.clear();
    dst.resize(src.len(), 0);
    for &k in src {
        let b = key(k);
        dst[counts[b] as usize] = k;
        counts[b] += 1;
    }
}

/// The sampler's state while a camera frame streams through its checked pass
/// (`RingReader::read_at_blocks`): what it computes from the untrusted words is handed back
/// only with a validated frame.
#[derive(Debug)]
pub(crate) struct Streamed<'p> {
    samples: PixelSamples,
    u: &'p [f64],
    v: &'p [f64],
    /// The image header, once read and its sides checked.
    header: Option<ImageHeader>,
    /// How many rows' points have their colour, and their label.
    next_rgb: usize,
    next_label: usize,
}

impl<'p> Streamed<'p> {
    pub(crate) fn new(samples: PixelSamples, u: &'p [f64], v: &'p [f64]) -> Self {
        Self { samples, u, v, header: None, next_rgb: 0, next_label: 0 }
    }

    /// Takes the samples of the rows that lie in the payload words `0..end` (those passed
    /// so far), loading what it needs through `word`.
    pub(crate) fn take(&mut self, end: usize, word: impl Fn(usize) -> u64) {
        if self.header.is_none() && end >= IMAGE_HEADER_SIZE / 8 {
            let h = ImageHeader::read_from_bytes([word(0), word(1)].as_bytes()).ok();
            // Sides and format now (the length is judged once the frame is validated).
            if let Some(h) = h.filter(|h| check_image_header(h, usize::MAX).is_ok()) {
                self.samples.plan(&h, self.u, self.v);
                self.header = Some(h);
            }
        }
        let Some(h) = self.header else { return };
        // A row's points once the pass has gone past the whole row, which is then still in
        // L1 (a 1280-pixel row is 3.75 KiB of colour; the pass brings 4 KiB at a time).
        let (iw, ih, end) = (h.width as usize, h.height as usize, 8 * end);
        let s = &mut self.samples;
        while self.next_rgb < ih && IMAGE_HEADER_SIZE + 3 * iw * (self.next_rgb + 1) <= end {
            for i in s.row(self.next_rgb) {
                let k = s.order[i] as usize;
                let c = bytes_at(&word, IMAGE_HEADER_SIZE + 3 * s.px[k] as usize, 3).to_le_bytes();
                s.rgb[k] = [c[0], c[1], c[2]];
            }
            self.next_rgb += 1;
        }
        let base = IMAGE_HEADER_SIZE + h.rgb_len();
        while s.labelled && self.next_label < ih && base + 2 * iw * (self.next_label + 1) <= end {
            for i in s.row(self.next_label) {
                let k = s.order[i] as usize;
                s.label[k] = Some(bytes_at(&word, base + 2 * s.px[k] as usize, 2) as u16);
            }
            self.next_label += 1;
        }
    }

    /// The samples, if the validated frame of `len` bytes is a well-formed image (then every
    /// sample lay inside it and was taken).
    pub(crate) fn finish(self, len: usize) -> Option<PixelSamples> {
        let h = self.header?;
        check_image_header(&h, len).ok()?;
        let ih = h.height as usize;
        let done = self.next_rgb == ih && (!self.samples.labelled || self.next_label == ih);
        done.then_some(self.samples)
    }
}

/// The `n` (up to 8) little-endian bytes from byte `at`: one word, or two if they straddle.
fn bytes_at(word: &impl Fn(usize) -> u64, at: usize, n: usize) -> u64 {
    let (i, skip) = (at / 8, at % 8);
    if skip + n <= 8 {
        word(i) >> (8 * skip)
    } else {
        (word(i) >> (8 * skip)) | (word(i + 1) << (8 * (8 - skip)))
    }
}

/// Fused points: the colour at each projected point's pixel, its intensity as 0..255, into
/// `out` (`kept[k]` is projected point `k`'s record). Returns how many points land on a pixel
/// labelled with their own instance (the consistency check; 0 without labels).
pub(crate) fn colour_points(
    pr: &Projected,
    kept: &[PointRecord],
    samples: &PixelSamples,
    out: &mut Vec<FusedPoint>,
) -> u64 {
    let mut matches = 0u64;
    out.clear();
    out.reserve(pr.len());
    let projected = pr.u().iter().zip(pr.v()).zip(pr.depth()).zip(kept);
    for (k, (((&u, &v), &d), p)) in projected.enumerate() {
        // Black and unlabelled outside the image.
        let (rgb, label) = samples.at(k);
        if label.is_some_and(|l| u32::from(l) == p.instance) {
            matches += 1;
        }
        let intensity = intensity_u8(p.intensity);
        out.push(FusedPoint {
            u: u as f32,
            v: v as f32,
            depth: d as f32,
            rgbi: [rgb[0], rgb[1], rgb[2], intensity],
        });
    }
    matches
}

/// `(x.clamp(0, 1) · 255).round() as u8`, exactly (half away from zero; NaN gives 0), without
/// the call to `roundf` that `f32::round` costs on the baseline x86-64 target: for `y` in
/// `[0, 255]` the truncation and the fraction `y − trunc(y)` are exact.
fn intensity_u8(x: f32) -> u8 {
    let y = x.clamp(0.0, 1.0) * 255.0;
    let t = y as u32;
    (t + u32::from(y - t as f32 >= 0.5)) as u8
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::frames::camera_image;

    /// A `w × h` labelled image whose every byte depends on its position.
    fn image(w: u32, h: u32) -> Vec<u8> {
        let head = ImageHeader::rgb8_labelled(w, h);
        let mut b = head.as_bytes().to_vec();
        b.extend((0..head.rgb_len() + head.labels_len()).map(|i| (i * 7 + i / 251) as u8));
        b
    }

    /// The payload's little-endian words, the last one zero-padded.
    fn words(b: &[u8]) -> Vec<u64> {
        (0..b.len().div_ceil(8)).map(|i| shared::checksum::word_at(b, i)).collect()
    }

    #[test]
    fn streamed_samples_match_the_owned_image_whatever_the_chunking() {
        let bytes = image(37, 23);
        let img = camera_image(&bytes).unwrap();
        // Points all over, outside too, unsorted, some on the same pixel.
        let u: Vec<f64> = (0..300).map(|k| f64::from((k * 13) % 45) - 3.5).collect();
        let v: Vec<f64> = (0..300).map(|k| f64::from((k * 29) % 31) - 2.0).collect();
        let mut owned = PixelSamples::default();
        owned.fill_owned(&img, &u, &v);
        let ws = words(&bytes);
        for chunk in [2, 3, 5, 64, 256, ws.len()] {
            let mut st = Streamed::new(PixelSamples::default(), &u, &v);
            for end in (chunk..ws.len()).step_by(chunk).chain([ws.len()]) {
                st.take(end, |i| ws[i]);
            }
            let got = st.finish(bytes.len()).expect("a whole image");
            for k in 0..u.len() {
                assert_eq!(got.at(k), owned.at(k), "point {k}, chunks of {chunk} words");
                let (x, y) = (u[k] as usize, v[k] as usize);
                let inside = x < 37 && y < 23;
                let label = inside.then(|| img.label_at(x as u32, y as u32)).flatten();
                let rgb = inside.then(|| img.rgb_at(x as u32, y as u32)).flatten().unwrap_or([0; 3]);
                assert_eq!(owned.at(k), (rgb, label), "point {k}");
            }
        }
        // A frame shorter than its header says is refused.
        let mut st = Streamed::new(PixelSamples::default(), &u, &v);
        st.take(ws.len() - 2, |i| ws[i]);
        assert!(st.finish(bytes.len() - 16).is_none());
    }

    #[test]
    fn intensity_rounds_as_f32_round() {
        let reference = |x: f32| (x.clamp(0.0, 1.0) * 255.0).round() as u8;
        let mut xs =
            vec![f32::NAN, -0.0, 0.0, 1.0, -1.0, 2.0, f32::INFINITY, f32::NEG_INFINITY, f32::MIN_POSITIVE];
        // Around every half step and every step, a few ulps each side.
        for k in 0..=510u32 {
            let x = k as f32 / 510.0;
            let b = x.to_bits();
            xs.extend((b.saturating_sub(40)..=b + 40).map(f32::from_bits));
        }
        // And a dense sweep of the whole range.
        xs.extend((0..=1_000_000u32).map(|i| i as f32 / 1e6));
        for x in xs {
            assert_eq!(intensity_u8(x), reference(x), "{x} ({:#x})", x.to_bits());
        }
    }
}
