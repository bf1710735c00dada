//! KITTI object-layout folders: `velodyne/NNNNNN.bin`, `image_2/NNNNNN.png`,
//! `calib/NNNNNN.txt`.
//!
//! - Frames are sorted by their number and given synthetic stamps 100 ms apart (the first at
//!   0); each image carries the stamp of its sweep, and comes after it in the stream.
//! - `velodyne/*.bin` is float32 x, y, z, intensity, little-endian (16 bytes a point).
//! - The projection is KITTI's `pixel = P2 · R0_rect · Tr_velo_to_cam · X`, expressed as
//!   [`Projection::Rectified`] with `p = P2 · [R0_rect|0]` and the PNG's size,
//!   `lidar_to_vehicle = Tr_velo_to_cam` and `camera_to_vehicle = identity`: the camera (cam 0)
//!   frame serves as the vehicle frame, so `lidar_to_camera()` is `Tr_velo_to_cam`.
//! - `Tr_velo_to_cam`'s rotation, printed with 7 digits, is orthonormal only to about 1e-6;
//!   an [`Isometry3`] holds the nearest rotation. `p` absorbs the difference
//!   (`p = P2 · [R0|0] · Tr · Iso(Tr)⁻¹`), so that projecting with the set gives KITTI's
//!   pixels to rounding, not to 1e-6 of the depth.
//! - Each change of calibration (parsed calib values and image size) from one frame to the
//!   next opens a new epoch (see [`super::epochs`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use calib::{CalibrationSet, Projection, SensorName};
use nalgebra::{Isometry3, Matrix3, Matrix3x4, Matrix4, Rotation3, Translation3, UnitQuaternion};
use shared::frames::{
    ImageHeader, PayloadSink, PixelFormat, PointRecord, SinkFull, IMAGE_HEADER_SIZE, MAX_IMAGE_SIDE,
};
use shared::{CalibEpoch, TimestampNs};
use zerocopy::IntoBytes;

use super::epochs::EpochBuilder;
use super::{LogError, WriteError};

/// Time between KITTI frames.
pub(crate) const KITTI_PERIOD_NS: u64 = 100_000_000;
/// Largest velodyne sweep or PNG read: a frame must fit one ring slot anyway.
const MAX_FRAME_FILE: u64 = shared::layout::MAX_SLOT_CAPACITY;
/// Largest calib text file (a real one is under 1 KB).
pub(crate) const MAX_CALIB_FILE: u64 = 1 << 20;

/// One camera's image of a frame.
#[derive(Debug, Clone)]
pub(crate) struct KittiImage {
    pub path: PathBuf,
    pub width: u32,
    pub height: u32,
}

/// One frame of the folder.
#[derive(Debug, Clone)]
pub(crate) struct KittiFrame {
    pub name: String,
    pub velodyne: PathBuf,
    /// One image per camera of [`KittiIndex::cameras`], in that order.
    pub images: Vec<KittiImage>,
    pub stamp: TimestampNs,
    pub epoch: CalibEpoch,
    pub points: usize,
}

/// A scanned KITTI folder.
#[derive(Debug, Clone)]
pub(crate) struct KittiIndex {
    pub frames: Vec<KittiFrame>,
    pub sets: Vec<CalibrationSet>,
    /// The cameras' sensor names: `camera` (image_2), then `camera_3` (image_3) if present.
    pub cameras: Vec<SensorName>,
    /// Where the folder breaks (a frame after the first with a file missing or malformed):
    /// `frames` are those before it, and a replay yields this after them.
    pub error: Option<LogError>,
}

/// Frames scanned up to the first bad one: every frame before it, then the error, which
/// is the folder's break, or the whole scan's failure if no frame came before it.
pub(crate) fn until_break<T>(
    frames: &mut Vec<T>,
    scanned: Result<T, LogError>,
) -> Result<Option<LogError>, LogError> {
    match scanned {
        Ok(f) => {
            frames.push(f);
            Ok(None)
        }
        Err(e) if frames.is_empty() => Err(e),
        Err(e) => Ok(Some(e)),
    }
}

impl KittiIndex {
    /// Items a frame gives in [`crate::LogFrames`]: the sweep, then each camera's image.
    pub fn items_per_frame(&self) -> usize {
        1 + self.cameras.len()
    }
}

/// Whether `dir` looks like a KITTI folder.
pub(crate) fn is_kitti(dir: &Path) -> bool {
    ["velodyne", "image_2", "calib"].iter().all(|d| dir.join(d).is_dir())
}

pub(crate) fn list(dir: &Path, ext: &str) -> Result<BTreeMap<u64, (String, PathBuf)>, LogError> {
    let mut out = BTreeMap::new();
    let rd = std::fs::read_dir(dir).map_err(|e| LogError::io(dir, "list the folder", e))?;
    for entry in rd {
        let entry = entry.map_err(|e| LogError::io(dir, "list the folder", e))?;
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some(ext) {
            continue;
        }
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else { continue };
        let Ok(n) = stem.parse::<u64>() else { continue };
        if let Some((_, other)) = out.insert(n, (stem.to_owned(), path.clone())) {
            return Err(LogError::kitti(
                &path,
                None,
                None,
                format!("frame {n} also named {}", other.display()),
            ));
        }
    }
    Ok(out)
}

/// The matrices of a KITTI calib file that the projection uses (P3 for `image_3`, when the
/// file gives it).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct KittiCalib {
    pub p2: Matrix3x4<f64>,
    pub p3: Option<Matrix3x4<f64>>,
    pub r0_rect: Matrix3<f64>,
    pub tr_velo_to_cam: Matrix3x4<f64>,
}

/// Parses a calib file's text. Lines are `KEY: v1 v2 ...`; blank lines are skipped; keys
/// other than `P2`, `R0_rect` (or `R_rect`), `Tr_velo_to_cam` (or `Tr_velo_cam`) and `P3`
/// (optional) are ignored.
pub(crate) fn parse_calib(path: &Path, text: &str) -> Result<KittiCalib, LogError> {
    const WANTED: [(&str, &[&str], usize); 4] = [
        ("P2", &["P2"], 12),
        ("R0_rect", &["R0_rect", "R_rect"], 9),
        ("Tr_velo_to_cam", &["Tr_velo_to_cam", "Tr_velo_cam"], 12),
        ("P3", &["P3"], 12),
    ];
    let mut found: [Option<(usize, Vec<f64>)>; 4] = [None, None, None, None];
    for (i, line) in text.lines().enumerate() {
        let lineno = i + 1;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let Some((key, values)) = line.split_once(':') else {
            return Err(LogError::kitti(
                path,
                Some(lineno),
                None,
                format!("expected 'KEY: numbers', found '{line}'"),
            ));
        };
        let key = key.trim();
        let Some(slot) = WANTED.iter().position(|(_, names, _)| names.contains(&key)) else { continue };
        let (name, _, count) = WANTED[slot];
        if let Some((first, _)) = &found[slot] {
            return Err(LogError::kitti(
                path,
                Some(lineno),
                Some(key),
                format!("given twice (first on line {first})"),
            ));
        }
        let mut nums = Vec::with_capacity(count);
        for tok in values.split_whitespace() {
            let v: f64 = tok.parse().map_err(|_| {
                LogError::kitti(path, Some(lineno), Some(key), format!("'{tok}' is not a number"))
            })?;
            if !v.is_finite() {
                return Err(LogError::kitti(path, Some(lineno), Some(key), format!("'{tok}' is not finite")));
            }
            nums.push(v);
        }
        if nums.len() != count {
            return Err(LogError::kitti(
                path,
                Some(lineno),
                Some(key),
                format!("expected {count} numbers for {name}, found {}", nums.len()),
            ));
        }
        found[slot] = Some((lineno, nums));
    }
    let mut take = |slot: usize| -> Result<(usize, Vec<f64>), LogError> {
        found[slot].take().ok_or_else(|| LogError::kitti(path, None, Some(WANTED[slot].0), "missing"))
    };
    let (l_p2, p2) = take(0)?;
    let (l_r0, r0) = take(1)?;
    let (l_tr, tr) = take(2)?;
    let p2 = Matrix3x4::from_row_slice(&p2);
    let r0_rect = Matrix3::from_row_slice(&r0);
    let tr_velo_to_cam = Matrix3x4::from_row_slice(&tr);
    check_camera(path, l_p2, "P2", &p2)?;
    let p3 = match found[3].take() {
        Some((l_p3, p3)) => {
            let p3 = Matrix3x4::from_row_slice(&p3);
            check_camera(path, l_p3, "P3", &p3)?;
            Some(p3)
        }
        None => None,
    };
    check_rotation(&r0_rect).map_err(|e| LogError::kitti(path, Some(l_r0), Some("R0_rect"), e))?;
    check_rotation(&tr_velo_to_cam.fixed_view::<3, 3>(0, 0).into_owned())
        .map_err(|e| LogError::kitti(path, Some(l_tr), Some("Tr_velo_to_cam"), e))?;
    Ok(KittiCalib { p2, p3, r0_rect, tr_velo_to_cam })
}

/// A projective camera: the left 3×3 block `K·R` has a positive determinant (KITTI's own
/// rectified matrices are `[K | t]` with positive focal lengths; an exported second camera
/// that looks elsewhere, e.g. a side camera of a surround rig, is `K·[R | t]`).
fn check_camera(path: &Path, line: usize, key: &str, p: &Matrix3x4<f64>) -> Result<(), LogError> {
    let det = p.fixed_view::<3, 3>(0, 0).determinant();
    // An infinite determinant (absurd entries) is left to the calibration's own check,
    // which names the entry.
    if det.is_nan() || det <= 0.0 {
        return Err(LogError::kitti(
            path,
            Some(line),
            Some(key),
            format!("not a camera matrix (its left 3×3 block has determinant {det}, not > 0)"),
        ));
    }
    Ok(())
}

/// Orthonormal to 1e-3 (KITTI prints 7 digits) with determinant +1.
fn check_rotation(r: &Matrix3<f64>) -> Result<(), String> {
    let err = (r.transpose() * r - Matrix3::identity()).abs().max();
    if err > 1e-3 {
        return Err(format!("rotation is not orthonormal (RᵀR deviates from I by {err:.2e})"));
    }
    if r.determinant() <= 0.0 {
        return Err("rotation has a negative determinant".into());
    }
    Ok(())
}

impl KittiCalib {
    /// The calibration set (epoch and `valid_from` left at 0) for images of `width`×`height`.
    pub fn to_set(&self, width: u32, height: u32) -> CalibrationSet {
        self.to_set_with(&self.p2, width, height)
    }

    /// [`KittiCalib::to_set`] for the camera whose projection matrix is `p_cam` (P2 or P3:
    /// the rectified cameras share R0_rect and Tr_velo_to_cam).
    pub fn to_set_with(&self, p_cam: &Matrix3x4<f64>, width: u32, height: u32) -> CalibrationSet {
        let tr_rot = self.tr_velo_to_cam.fixed_view::<3, 3>(0, 0).into_owned();
        let rot = UnitQuaternion::from_rotation_matrix(&Rotation3::from_matrix(&tr_rot));
        let t = self.tr_velo_to_cam.column(3);
        let iso = Isometry3::from_parts(Translation3::new(t[0], t[1], t[2]), rot);
        let mut r0 = Matrix4::identity();
        r0.fixed_view_mut::<3, 3>(0, 0).copy_from(&self.r0_rect);
        let mut tr = Matrix4::identity();
        tr.fixed_view_mut::<3, 4>(0, 0).copy_from(&self.tr_velo_to_cam);
        // p · Iso(Tr) = P2 · R0 · Tr exactly (to rounding).
        let p = p_cam * r0 * tr * iso.inverse().to_homogeneous();
        CalibrationSet::single(
            CalibEpoch::NONE,
            TimestampNs(0),
            Projection::Rectified { p, width, height },
            Isometry3::identity(),
            iso,
        )
    }
}

/// Scans a KITTI folder: every frame needs its velodyne sweep, image and calib file. A bad
/// first frame refuses the folder; a bad later one is its break ([`KittiIndex::error`]).
pub(crate) fn scan(root: &Path) -> Result<KittiIndex, LogError> {
    let velo = list(&root.join("velodyne"), "bin")?;
    let images = list(&root.join("image_2"), "png")?;
    let calibs = list(&root.join("calib"), "txt")?;
    let mut numbers: Vec<u64> = velo.keys().chain(images.keys()).chain(calibs.keys()).copied().collect();
    numbers.sort_unstable();
    numbers.dedup();
    if numbers.is_empty() {
        return Err(LogError::missing(root, "KITTI folder has no frames (velodyne/NNNNNN.bin)"));
    }
    let mut frames = Vec::with_capacity(numbers.len());
    let mut builder = EpochBuilder::default();
    let mut error = None;
    for (i, n) in numbers.iter().enumerate() {
        let get = |m: &BTreeMap<u64, (String, PathBuf)>, dir: &str, ext: &str| {
            m.get(n).cloned().ok_or_else(|| {
                let name =
                    velo.get(n).or(images.get(n)).or(calibs.get(n)).map_or(String::new(), |v| v.0.clone());
                LogError::kitti(
                    &root.join(dir).join(format!("{name}.{ext}")),
                    None,
                    None,
                    format!("missing: frame {name} has no {dir} file"),
                )
            })
        };
        let scanned = (|| {
            let (name, velodyne) = get(&velo, "velodyne", "bin")?;
            let (_, image) = get(&images, "image_2", "png")?;
            let (_, calib_path) = get(&calibs, "calib", "txt")?;
            let points = sweep_points(&velodyne)?;
            let (width, height) = png_size(&image)?;
            let text = LogError::read_input_text(&calib_path, MAX_CALIB_FILE)?;
            let set = parse_calib(&calib_path, &text)?.to_set(width, height);
            Ok((name, velodyne, KittiImage { path: image, width, height }, points, set))
        })();
        // Observed only once the frame is whole: a broken frame adds no epoch.
        let scanned = scanned.map(|(name, velodyne, image, points, set)| {
            let stamp = TimestampNs(i as u64 * KITTI_PERIOD_NS);
            let epoch = builder.observe(
                stamp,
                Some(stamp),
                *set.camera(),
                set.camera_to_vehicle(),
                set.lidar_to_vehicle(),
            );
            KittiFrame { name, velodyne, images: vec![image], stamp, epoch, points }
        });
        error = until_break(&mut frames, scanned)?;
        if error.is_some() {
            break;
        }
    }
    Ok(KittiIndex { frames, sets: builder.finish(), cameras: vec![SensorName::camera()], error })
}

/// Points in a velodyne sweep, from its length (checked to be whole 16-byte points).
pub(crate) fn sweep_points(velodyne: &Path) -> Result<usize, LogError> {
    let len = LogError::open_input(velodyne, MAX_FRAME_FILE)?
        .metadata()
        .map_err(|e| LogError::io(velodyne, "read", e))?
        .len();
    if len % 16 != 0 {
        return Err(LogError::kitti(
            velodyne,
            None,
            None,
            format!("{len} bytes is not a whole number of 16-byte points"),
        ));
    }
    Ok((len / 16) as usize)
}

/// The size a PNG's header announces, checked against [`MAX_IMAGE_SIDE`].
pub(crate) fn png_size(image: &Path) -> Result<(u32, u32), LogError> {
    let png = std::io::BufReader::new(LogError::open_input(image, MAX_FRAME_FILE)?);
    let (width, height) = image::ImageReader::with_format(png, image::ImageFormat::Png)
        .into_dimensions()
        .map_err(|e| LogError::kitti(image, None, None, format!("cannot read PNG header: {e}")))?;
    if width == 0 || height == 0 || width > MAX_IMAGE_SIDE || height > MAX_IMAGE_SIDE {
        return Err(LogError::kitti(image, None, None, format!("image size {width}×{height} out of range")));
    }
    Ok((width, height))
}

/// Reads a velodyne sweep.
pub(crate) fn read_velodyne(path: &Path) -> Result<Vec<u8>, LogError> {
    let bytes = LogError::read_input(path, MAX_FRAME_FILE)?;
    if bytes.len() % 16 != 0 {
        return Err(LogError::kitti(
            path,
            None,
            None,
            format!("{} bytes is not a whole number of 16-byte points", bytes.len()),
        ));
    }
    Ok(bytes)
}

/// One velodyne point (16 bytes: x, y, z, intensity float32 LE) as a [`PointRecord`].
pub(crate) fn velodyne_point(p: &[u8]) -> PointRecord {
    let f = |i: usize| f32::from_le_bytes([p[i], p[i + 1], p[i + 2], p[i + 3]]);
    PointRecord { x: f(0), y: f(4), z: f(8), intensity: f(12), ring: 0, reserved: 0, instance: 0 }
}

/// Writes a sweep (x, y, z, intensity float32 LE per point) as [`PointRecord`]s, a batch at a
/// time: each point's 16 bytes copied as four words into a zeroed record (ring, reserved and
/// instance stay 0), a loop the compiler turns into plain moves on a little-endian host.
pub(crate) fn write_velodyne(
    bytes: &[u8],
    sink: &mut (impl PayloadSink + ?Sized),
) -> Result<usize, SinkFull> {
    const BATCH: usize = 2048;
    const RECORD: usize = size_of::<PointRecord>();
    let mut batch = vec![0u8; BATCH * RECORD];
    for chunk in bytes.chunks(16 * BATCH) {
        let points = chunk.len() / 16;
        for (src, dst) in chunk.chunks_exact(16).zip(batch.chunks_exact_mut(RECORD)) {
            for (s, d) in src.chunks_exact(4).zip(dst.chunks_exact_mut(4)) {
                d.copy_from_slice(&u32::from_le_bytes([s[0], s[1], s[2], s[3]]).to_ne_bytes());
            }
        }
        sink.push(&batch[..points * RECORD])?;
    }
    Ok(bytes.len() / 16 * RECORD)
}

/// Decodes a PNG to rgb8, checking it has the size its header announced at scan time.
/// An 8-bit RGB, non-interlaced PNG (every KITTI image, every export) is decoded row by row
/// straight into the returned buffer (no zero-filled frame first); any other kind goes
/// through `image`'s conversion to rgb8.
pub(crate) fn read_png(path: &Path, width: u32, height: u32) -> Result<Vec<u8>, LogError> {
    let Some(mut rows) = PngRows::open(path, width, height)? else {
        return read_png_any(path, width, height);
    };
    let mut rgb = Vec::with_capacity(rows.rgb_len());
    while let Some(row) = rows.next_row()? {
        rgb.extend_from_slice(row);
    }
    Ok(rgb)
}

/// Writes a PNG as a camera payload (see [`write_rgb`]), its rows pushed into `sink` as they
/// are decoded: no frame buffer between the decoder and the slot. Decodes as [`read_png`].
pub(crate) fn write_png(
    path: &Path,
    width: u32,
    height: u32,
    sink: &mut (impl PayloadSink + ?Sized),
) -> Result<usize, WriteError> {
    let Some(mut rows) = PngRows::open(path, width, height)? else {
        return Ok(write_rgb(width, height, &read_png_any(path, width, height)?, sink)?);
    };
    write_rgb(width, height, &[], sink)?;
    while let Some(row) = rows.next_row()? {
        sink.push(row)?;
    }
    Ok(IMAGE_HEADER_SIZE + rows.rgb_len())
}

/// The rows of an 8-bit RGB, non-interlaced PNG of the expected size, decoded one at a time.
struct PngRows<'a> {
    path: &'a Path,
    reader: png::Reader<std::io::BufReader<std::fs::File>>,
    rows_left: u32,
    row_len: usize,
}

impl<'a> PngRows<'a> {
    /// `None` for a PNG of another kind (grey, alpha, 16-bit, interlaced).
    fn open(path: &'a Path, width: u32, height: u32) -> Result<Option<Self>, LogError> {
        let file = std::io::BufReader::new(LogError::open_input(path, MAX_FRAME_FILE)?);
        let mut decoder = png::Decoder::new(file);
        decoder.set_transformations(png::Transformations::EXPAND);
        let reader = decoder.read_info().map_err(|e| png_error(path, &e))?;
        let info = reader.info();
        let (w, h, interlaced) = (info.width, info.height, info.interlaced);
        if interlaced || reader.output_color_type() != (png::ColorType::Rgb, png::BitDepth::Eight) {
            return Ok(None);
        }
        check_decoded_size(path, (w, h), width, height)?;
        Ok(Some(Self { path, reader, rows_left: h, row_len: w as usize * 3 }))
    }

    /// Bytes of rgb8 the image decodes to.
    fn rgb_len(&self) -> usize {
        self.row_len * self.reader.info().height as usize
    }

    /// The next row, `None` after the last.
    fn next_row(&mut self) -> Result<Option<&[u8]>, LogError> {
        if self.rows_left == 0 {
            return Ok(None);
        }
        self.rows_left -= 1;
        match self.reader.next_row() {
            Ok(Some(row)) if row.data().len() == self.row_len => Ok(Some(row.data())),
            Ok(_) => Err(png_error(self.path, &"image data ends early")),
            Err(e) => Err(png_error(self.path, &e)),
        }
    }
}

fn png_error(path: &Path, e: &dyn std::fmt::Display) -> LogError {
    LogError::kitti(path, None, None, format!("cannot decode image: {e}"))
}

/// [`read_png`] for any PNG `image` reads, converted to rgb8.
fn read_png_any(path: &Path, width: u32, height: u32) -> Result<Vec<u8>, LogError> {
    let img = image::ImageReader::new(std::io::BufReader::new(LogError::open_input(path, MAX_FRAME_FILE)?))
        .with_guessed_format()
        .map_err(|e| LogError::io(path, "read", e))?
        .decode()
        .map_err(|e| png_error(path, &e))?
        .into_rgb8();
    check_decoded_size(path, img.dimensions(), width, height)?;
    Ok(img.into_raw())
}

fn check_decoded_size(path: &Path, (w, h): (u32, u32), width: u32, height: u32) -> Result<(), LogError> {
    if (w, h) != (width, height) {
        return Err(LogError::kitti(
            path,
            None,
            None,
            format!("decoded {w}×{h}, header said {width}×{height}"),
        ));
    }
    Ok(())
}

/// Writes an rgb8 image as a camera payload without labels.
pub(crate) fn write_rgb(
    width: u32,
    height: u32,
    rgb: &[u8],
    sink: &mut (impl PayloadSink + ?Sized),
) -> Result<usize, SinkFull> {
    let header = ImageHeader { width, height, format: PixelFormat::Rgb8 as u32, has_labels: 0 };
    sink.push(header.as_bytes())?;
    sink.push(rgb)?;
    Ok(IMAGE_HEADER_SIZE + rgb.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "P0: 1 0 0 0 0 1 0 0 0 0 1 0\nP2: 700 0 600 45 0 700 170 0.2 0 0 1 0.003\n\
R0_rect: 1 0 0 0 1 0 0 0 1\nTr_velo_to_cam: 0 -1 0 0 0 0 -1 -0.07 1 0 0 -0.27\n   \n";

    #[test]
    fn parses_and_reports_lines() {
        let p = Path::new("c.txt");
        let c = parse_calib(p, GOOD).unwrap();
        assert_eq!(c.p2[(0, 3)], 45.0);
        let e = parse_calib(p, &GOOD.replace("R0_rect: 1 0 0 0 1 0 0 0 1", "R0_rect: 1 0 0 0 1 0 0 0"))
            .unwrap_err();
        assert_eq!(e.to_string(), "c.txt:3: R0_rect: expected 9 numbers for R0_rect, found 8");
        let e = parse_calib(p, &GOOD.replace("0.2 0 0 1", "0.2 x 0 1")).unwrap_err();
        assert_eq!(e.to_string(), "c.txt:2: P2: 'x' is not a number");
        let e = parse_calib(p, &GOOD.replace("Tr_velo_to_cam", "Tr_imu_to_velo")).unwrap_err();
        assert_eq!(e.to_string(), "c.txt: Tr_velo_to_cam: missing");
        let e = parse_calib(p, "garbage\n").unwrap_err();
        assert_eq!(e.to_string(), "c.txt:1: expected 'KEY: numbers', found 'garbage'");
        let e = parse_calib(p, &GOOD.replace("0 -1 0 0 0 0 -1", "0 -2 0 0 0 0 -1")).unwrap_err();
        assert!(e.to_string().starts_with("c.txt:4: Tr_velo_to_cam: rotation is not orthonormal"), "{e}");
    }

    #[test]
    fn folded_projection_matches_kitti_formula() {
        let mut c = parse_calib(Path::new("c.txt"), GOOD).unwrap();
        // Make Tr slightly non-orthonormal, as in real files.
        c.tr_velo_to_cam[(0, 0)] = 2e-6;
        let set = c.to_set(1242, 375);
        let x = nalgebra::Point3::new(20.0, 3.0, -1.0);
        let mut r0 = Matrix4::identity();
        r0.fixed_view_mut::<3, 3>(0, 0).copy_from(&c.r0_rect);
        let mut tr = Matrix4::identity();
        tr.fixed_view_mut::<3, 4>(0, 0).copy_from(&c.tr_velo_to_cam);
        let h = c.p2 * r0 * tr * x.to_homogeneous();
        let hit = set.project_point(x).unwrap();
        assert!((hit.u - h.x / h.z).abs() < 1e-9 && (hit.v - h.y / h.z).abs() < 1e-9);
        assert!((hit.depth - h.z).abs() < 1e-9);
    }

    /// The row-by-row decode gives `image`'s rgb8 exactly: real KITTI frames (when
    /// `../shared/data` is present), and written RGB, grey and RGBA images (the last two through
    /// the fallback).
    #[test]
    fn png_rows_match_image_decode() {
        let dir = tempfile::tempdir().unwrap();
        let (w, h) = (37u32, 11u32);
        let px = |i: u32, k: u32| ((i * 7 + k * 31) % 251) as u8;
        let mut files = Vec::new();
        for (name, color, channels) in [
            ("rgb.png", image::ColorType::Rgb8, 3),
            ("grey.png", image::ColorType::L8, 1),
            ("rgba.png", image::ColorType::Rgba8, 4),
        ] {
            let data: Vec<u8> = (0..w * h * channels).map(|i| px(i, channels)).collect();
            let path = dir.path().join(name);
            image::save_buffer_with_format(&path, &data, w, h, color, image::ImageFormat::Png).unwrap();
            files.push((path, w, h));
        }
        let real = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/kitti/image_2");
        match std::fs::read_dir(&real) {
            Ok(rd) => {
                for e in rd {
                    let path = e.unwrap().path();
                    let (w, h) = png_size(&path).unwrap();
                    files.push((path, w, h));
                }
            }
            Err(_) => eprintln!("note: {} absent, real KITTI images not checked", real.display()),
        }
        for (path, w, h) in &files {
            assert_eq!(
                read_png(path, *w, *h).unwrap(),
                read_png_any(path, *w, *h).unwrap(),
                "{}",
                path.display()
            );
            let e = read_png(path, *w + 1, *h).unwrap_err().to_string();
            assert!(e.contains(&format!("decoded {w}×{h}, header said {}×{h}", w + 1)), "{e}");
        }
    }
}
