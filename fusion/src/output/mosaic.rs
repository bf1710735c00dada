//! The surround mosaic (issue 18 §2): every camera's overlay, downscaled, in one image, in
//! order around the car.
//!
//! Order: by yaw (the camera's azimuth in the vehicle frame, counter-clockwise from forward,
//! any range), decreasing from just below +180°, so a row reads like a panorama seen from
//! inside the car: rear, rear-left, front-left, front, front-right, rear-right. Ties go by
//! name, then by input position: the same tiles always give the same image. Each tile is
//! fitted into a fixed cell (aspect kept, area-averaged, centred), with a label strip above
//! it naming the camera, and a thin separator between cells. Tiles of any size, including
//! empty ones, are accepted: an empty image leaves its cell blank.

use image::{Rgb, RgbImage};

/// One camera's overlay, as the mosaic takes it.
#[derive(Clone, Copy, Debug)]
pub struct MosaicTile<'a> {
    /// The camera's name, drawn in its label (letters, digits, `_ - . :` and space; other
    /// characters show as a small box).
    pub name: &'a str,
    /// The camera's yaw in the vehicle frame, radians, counter-clockwise from forward.
    pub yaw: f64,
    /// The overlay (any size).
    pub image: &'a RgbImage,
}

/// Cell size and grid of the mosaic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MosaicLayout {
    /// Width of a cell, pixels (at least 1).
    pub cell_width: u32,
    /// Height of a cell's image area, pixels, without the label (at least 1).
    pub cell_height: u32,
    /// Cells per row; 0 chooses: one row up to four tiles, else two rows.
    pub columns: usize,
}

impl Default for MosaicLayout {
    /// 320×180 cells (a 16:9 frame at a quarter of 1280×720), columns chosen.
    fn default() -> Self {
        Self { cell_width: 320, cell_height: 180, columns: 0 }
    }
}

/// Separator between cells and around the mosaic, pixels.
pub const MOSAIC_SEPARATOR: u32 = 2;
/// Height of the label strip above each cell, pixels.
pub const MOSAIC_LABEL_HEIGHT: u32 = 9;
const SEPARATOR_RGB: [u8; 3] = [96, 96, 96];
const LABEL_RGB: [u8; 3] = [24, 24, 24];
const TEXT_RGB: [u8; 3] = [235, 235, 235];
const EMPTY_RGB: [u8; 3] = [0, 0, 0];

/// The order in which `tiles` are placed (indices into `tiles`), see the module docs.
#[must_use]
pub fn mosaic_order(tiles: &[MosaicTile<'_>]) -> Vec<usize> {
    // Yaw wrapped into (−π, π]; NaN sorts last.
    let key = |t: &MosaicTile<'_>| {
        let tau = std::f64::consts::TAU;
        let w = t.yaw - tau * (t.yaw / tau).round();
        if w <= -std::f64::consts::PI {
            w + tau
        } else {
            w
        }
    };
    let mut order: Vec<usize> = (0..tiles.len()).collect();
    order.sort_by(|&a, &b| {
        let (ka, kb) = (key(&tiles[a]), key(&tiles[b]));
        // Decreasing yaw; a NaN after every number.
        let by_yaw = match (ka.is_nan(), kb.is_nan()) {
            (false, false) => kb.total_cmp(&ka),
            (a_nan, b_nan) => a_nan.cmp(&b_nan),
        };
        by_yaw.then_with(|| tiles[a].name.cmp(tiles[b].name)).then(a.cmp(&b))
    });
    order
}

/// Columns and rows of the grid for `n` tiles (n ≥ 1).
fn grid(n: usize, layout: &MosaicLayout) -> (usize, usize) {
    let columns = match layout.columns {
        0 if n <= 4 => n,
        0 => n.div_ceil(2),
        c => c.min(n),
    };
    (columns, n.div_ceil(columns))
}

/// Composes `tiles` into one surround mosaic; `None` if there is no tile.
#[must_use]
pub fn compose_mosaic(tiles: &[MosaicTile<'_>], layout: &MosaicLayout) -> Option<RgbImage> {
    if tiles.is_empty() {
        return None;
    }
    let (cw, ch) = (layout.cell_width.max(1), layout.cell_height.max(1));
    let (columns, rows) = grid(tiles.len(), layout);
    let step_x = cw + MOSAIC_SEPARATOR;
    let step_y = MOSAIC_LABEL_HEIGHT + ch + MOSAIC_SEPARATOR;
    let width = MOSAIC_SEPARATOR + step_x * columns as u32;
    let height = MOSAIC_SEPARATOR + step_y * rows as u32;
    let mut out = RgbImage::from_pixel(width, height, Rgb(SEPARATOR_RGB));
    for (cell, &i) in mosaic_order(tiles).iter().enumerate() {
        let x0 = MOSAIC_SEPARATOR + step_x * (cell % columns) as u32;
        let y0 = MOSAIC_SEPARATOR + step_y * (cell / columns) as u32;
        fill(&mut out, (x0, y0), (cw, MOSAIC_LABEL_HEIGHT), LABEL_RGB);
        draw_text(&mut out, (x0 + 2, y0 + 2), cw.saturating_sub(2), tiles[i].name);
        fill(&mut out, (x0, y0 + MOSAIC_LABEL_HEIGHT), (cw, ch), EMPTY_RGB);
        blit_fitted(&mut out, tiles[i].image, (x0, y0 + MOSAIC_LABEL_HEIGHT), (cw, ch));
    }
    // Cells of the last row left empty stay separator-coloured: nothing to show there.
    Some(out)
}

fn fill(out: &mut RgbImage, (x0, y0): (u32, u32), (w, h): (u32, u32), rgb: [u8; 3]) {
    for y in y0..y0 + h {
        for x in x0..x0 + w {
            out.put_pixel(x, y, Rgb(rgb));
        }
    }
}

/// The size of `(w, h)` fitted into `(cw, ch)`, aspect kept, at least 1×1.
fn fitted((w, h): (u32, u32), (cw, ch): (u32, u32)) -> (u32, u32) {
    let (w64, h64, cw64, ch64) = (u64::from(w), u64::from(h), u64::from(cw), u64::from(ch));
    if w64 * ch64 >= h64 * cw64 {
        (cw, ((h64 * cw64) / w64).clamp(1, ch64) as u32)
    } else {
        (((w64 * ch64) / h64).clamp(1, cw64) as u32, ch)
    }
}

/// Draws `src` fitted and centred into the cell at `at` of size `cell`: each output pixel
/// is the mean of the source pixels it covers (at least one), in integers.
fn blit_fitted(out: &mut RgbImage, src: &RgbImage, at: (u32, u32), cell: (u32, u32)) {
    let (w, h) = src.dimensions();
    if w == 0 || h == 0 {
        return;
    }
    let (dw, dh) = fitted((w, h), cell);
    let (ox, oy) = (at.0 + (cell.0 - dw) / 2, at.1 + (cell.1 - dh) / 2);
    let span = |d: u32, n: u32, len: u32| {
        let a = (u64::from(d) * u64::from(len) / u64::from(n)) as u32;
        let b = ((u64::from(d) + 1) * u64::from(len) / u64::from(n)) as u32;
        (a.min(len - 1), b.clamp(a.min(len - 1) + 1, len))
    };
    for dy in 0..dh {
        let (sy0, sy1) = span(dy, dh, h);
        for dx in 0..dw {
            let (sx0, sx1) = span(dx, dw, w);
            let mut sum = [0u64; 3];
            for sy in sy0..sy1 {
                for sx in sx0..sx1 {
                    let p = src.get_pixel(sx, sy).0;
                    for c in 0..3 {
                        sum[c] += u64::from(p[c]);
                    }
                }
            }
            let n = u64::from((sy1 - sy0) * (sx1 - sx0));
            out.put_pixel(ox + dx, oy + dy, Rgb(sum.map(|s| ((s + n / 2) / n) as u8)));
        }
    }
}

/// A 3×5 glyph, rows top to bottom, 3 bits each (bit 2 the left column); `None` for a
/// character without one.
fn glyph(c: char) -> Option<[u8; 5]> {
    Some(match c.to_ascii_uppercase() {
        'A' => [2, 5, 7, 5, 5],
        'B' => [6, 5, 6, 5, 6],
        'C' => [3, 4, 4, 4, 3],
        'D' => [6, 5, 5, 5, 6],
        'E' => [7, 4, 6, 4, 7],
        'F' => [7, 4, 6, 4, 4],
        'G' => [3, 4, 5, 5, 3],
        'H' => [5, 5, 7, 5, 5],
        'I' => [7, 2, 2, 2, 7],
        'J' => [1, 1, 1, 5, 2],
        'K' => [5, 5, 6, 5, 5],
        'L' => [4, 4, 4, 4, 7],
        'M' => [5, 7, 7, 5, 5],
        'N' => [6, 5, 5, 5, 5],
        'O' => [2, 5, 5, 5, 2],
        'P' => [6, 5, 6, 4, 4],
        'Q' => [2, 5, 5, 6, 3],
        'R' => [6, 5, 6, 5, 5],
        'S' => [3, 4, 2, 1, 6],
        'T' => [7, 2, 2, 2, 2],
        'U' => [5, 5, 5, 5, 7],
        'V' => [5, 5, 5, 5, 2],
        'W' => [5, 5, 7, 7, 5],
        'X' => [5, 5, 2, 5, 5],
        'Y' => [5, 5, 2, 2, 2],
        'Z' => [7, 1, 2, 4, 7],
        '0' => [7, 5, 5, 5, 7],
        '1' => [2, 6, 2, 2, 7],
        '2' => [6, 1, 2, 4, 7],
        '3' => [6, 1, 2, 1, 6],
        '4' => [5, 5, 7, 1, 1],
        '5' => [7, 4, 6, 1, 6],
        '6' => [3, 4, 7, 5, 7],
        '7' => [7, 1, 2, 2, 2],
        '8' => [7, 5, 7, 5, 7],
        '9' => [7, 5, 7, 1, 6],
        '_' => [0, 0, 0, 0, 7],
        '-' => [0, 0, 7, 0, 0],
        '.' => [0, 0, 0, 0, 2],
        ':' => [0, 2, 0, 2, 0],
        ' ' => [0; 5],
        _ => return None,
    })
}

/// Draws `text` from `at` in the 3×5 font (4 px a character), clipped to `max_width`.
fn draw_text(out: &mut RgbImage, at: (u32, u32), max_width: u32, text: &str) {
    for (k, c) in text.chars().enumerate() {
        let x0 = at.0 + 4 * k as u32;
        if 4 * (k as u32 + 1) > max_width {
            break;
        }
        let rows = glyph(c).unwrap_or([7; 5]);
        for (dy, bits) in rows.iter().enumerate() {
            for dx in 0..3u32 {
                if bits >> (2 - dx) & 1 == 1 {
                    out.put_pixel(x0 + dx, at.1 + dy as u32, Rgb(TEXT_RGB));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
