//! ROS 2 messages read from a bag: `sensor_msgs/msg/{PointCloud2, Image, CameraInfo}` and
//! `tf2_msgs/msg/TFMessage`, decoded with [`CdrReader`] and converted to epochfuse payloads.
//!
//! Parsing validates every size against the message, once; the conversions afterwards only
//! index within what was validated.

use calib::{CameraIntrinsics, Distortion, Projection};
use nalgebra::{Isometry3, Matrix3, Matrix3x4, Matrix4, Quaternion, Translation3, UnitQuaternion};
use shared::frames::{ImageHeader, PayloadSink, PixelFormat, PointRecord, SinkFull, MAX_IMAGE_SIDE};
use zerocopy::IntoBytes;

use super::cdr_read::{CdrError, CdrReader};

/// `std_msgs/msg/Header`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Header<'a> {
    /// The stamp in ns, or `None` if it is zero or negative (then the log time stands in).
    pub stamp: Option<u64>,
    /// The frame id, without a leading `/`.
    pub frame_id: &'a str,
}

fn header<'a>(r: &mut CdrReader<'a>) -> Result<Header<'a>, CdrError> {
    let sec = r.i32("header.stamp.sec")?;
    let nanosec = r.u32("header.stamp.nanosec")?;
    let frame_id = r.string("header.frame_id")?;
    let stamp = u64::try_from(sec).ok().map(|s| s * 1_000_000_000 + u64::from(nanosec)).filter(|&ns| ns != 0);
    Ok(Header { stamp, frame_id: frame_id.trim_start_matches('/') })
}

// PointField datatypes.
const INT8: u8 = 1;
const UINT8: u8 = 2;
const INT16: u8 = 3;
const UINT16: u8 = 4;
const INT32: u8 = 5;
const UINT32: u8 = 6;
const FLOAT32: u8 = 7;
const FLOAT64: u8 = 8;

fn datatype_size(dt: u8) -> Option<usize> {
    match dt {
        INT8 | UINT8 => Some(1),
        INT16 | UINT16 => Some(2),
        INT32 | UINT32 | FLOAT32 => Some(4),
        FLOAT64 => Some(8),
        _ => None,
    }
}

/// One field of a point, validated to lie inside `point_step`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Field {
    offset: usize,
    datatype: u8,
}

impl Field {
    #[inline]
    fn read(self, point: &[u8], big_endian: bool) -> f64 {
        let o = self.offset;
        macro_rules! get {
            ($t:ty, $n:expr) => {{
                let mut b = [0u8; $n];
                b.copy_from_slice(&point[o..o + $n]);
                if big_endian {
                    <$t>::from_be_bytes(b)
                } else {
                    <$t>::from_le_bytes(b)
                }
            }};
        }
        match self.datatype {
            INT8 => f64::from(point[o] as i8),
            UINT8 => f64::from(point[o]),
            INT16 => f64::from(get!(i16, 2)),
            UINT16 => f64::from(get!(u16, 2)),
            INT32 => f64::from(get!(i32, 4)),
            UINT32 => f64::from(get!(u32, 4)),
            FLOAT32 => f64::from(get!(f32, 4)),
            _ => get!(f64, 8),
        }
    }

    #[inline]
    fn read_f32(self, point: &[u8], big_endian: bool) -> f32 {
        if self.datatype == FLOAT32 && !big_endian {
            let mut b = [0u8; 4];
            b.copy_from_slice(&point[self.offset..self.offset + 4]);
            f32::from_le_bytes(b)
        } else {
            self.read(point, big_endian) as f32
        }
    }
}

/// A validated `sensor_msgs/msg/PointCloud2` layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CloudLayout {
    height: usize,
    width: usize,
    point_step: usize,
    row_step: usize,
    data_offset: usize,
    big_endian: bool,
    x: Field,
    y: Field,
    z: Field,
    intensity: Option<Field>,
    ring: Option<Field>,
    instance: Option<Field>,
}

impl CloudLayout {
    /// Where the point data starts in the message (every field before it was read).
    pub fn data_offset(&self) -> usize {
        self.data_offset
    }

    /// Number of points.
    pub fn points(&self) -> usize {
        self.height * self.width
    }

    /// Bytes of the epochfuse lidar payload.
    pub fn payload_len(&self) -> usize {
        self.points() * size_of::<PointRecord>()
    }

    /// Whether a point is a [`PointRecord`] in this host's byte order: x, y, z, intensity
    /// FLOAT32 at 0, 4, 8, 12, ring UINT16 at 16, instance UINT32 at 20, 24 bytes a point.
    fn is_point_record(&self) -> bool {
        let at = |f: Option<Field>, offset: usize, datatype: u8| f == Some(Field { offset, datatype });
        cfg!(target_endian = "little")
            && !self.big_endian
            && self.point_step == size_of::<PointRecord>()
            && at(Some(self.x), 0, FLOAT32)
            && at(Some(self.y), 4, FLOAT32)
            && at(Some(self.z), 8, FLOAT32)
            && at(self.intensity, 12, FLOAT32)
            && at(self.ring, 16, UINT16)
            && at(self.instance, 20, UINT32)
    }
}

fn fail(offset: usize, what: impl Into<String>) -> CdrError {
    CdrError { offset, what: what.into() }
}

/// Parses a `PointCloud2`, validating its layout against its data.
///
/// Needs `x`, `y`, `z` (FLOAT32 or FLOAT64); takes `intensity` (any numeric type; UINT8 and
/// UINT16 are scaled to 0..1, others are taken as they are), `ring` and `instance` if present.
pub(crate) fn parse_cloud(msg: &[u8]) -> Result<(Header<'_>, CloudLayout), CdrError> {
    let mut r = CdrReader::new(msg)?;
    let hdr = header(&mut r)?;
    let height = r.u32("height")? as usize;
    let width = r.u32("width")? as usize;
    // A PointField is at least 4 (name length) + 4 + 1 + 4 bytes.
    let n_fields = r.seq_len("fields", 13)?;
    let mut fields = Vec::with_capacity(n_fields);
    for _ in 0..n_fields {
        let name = r.string("fields[].name")?;
        let offset = r.u32("fields[].offset")? as usize;
        let datatype = r.u8("fields[].datatype")?;
        let count = r.u32("fields[].count")?;
        fields.push((name, offset, datatype, count));
    }
    let big_endian = r.bool("is_bigendian")?;
    let point_step = r.u32("point_step")? as usize;
    let row_step = r.u32("row_step")? as usize;
    let (data_offset, data) = r.bytes("data")?;
    let at = data_offset;
    let points = (height as u64) * (width as u64);
    let layout = |x, y, z, intensity, ring, instance| CloudLayout {
        height,
        width,
        point_step,
        row_step,
        data_offset,
        big_endian,
        x,
        y,
        z,
        intensity,
        ring,
        instance,
    };
    if points == 0 {
        // An empty cloud (drivers publish default-constructed ones) has no layout to check.
        let none = Field { offset: 0, datatype: FLOAT32 };
        return Ok((hdr, layout(none, none, none, None, None, None)));
    }

    let find = |name: &str| -> Result<Option<Field>, CdrError> {
        let Some(&(_, offset, datatype, _)) = fields.iter().find(|f| f.0 == name) else {
            return Ok(None);
        };
        let size = datatype_size(datatype)
            .ok_or_else(|| fail(at, format!("field '{name}' has unknown datatype {datatype}")))?;
        if offset.checked_add(size).is_none_or(|end| end > point_step) {
            return Err(fail(
                at,
                format!("field '{name}' at offset {offset} ({size} bytes) overruns point_step {point_step}"),
            ));
        }
        Ok(Some(Field { offset, datatype }))
    };
    let names = || fields.iter().map(|f| f.0).collect::<Vec<_>>().join(", ");
    let xyz = |name: &str| -> Result<Field, CdrError> {
        let f = find(name)?.ok_or_else(|| fail(at, format!("no '{name}' field (fields: {})", names())))?;
        if f.datatype != FLOAT32 && f.datatype != FLOAT64 {
            return Err(fail(
                at,
                format!("field '{name}' has datatype {} (need FLOAT32 or FLOAT64)", f.datatype),
            ));
        }
        Ok(f)
    };
    let (x, y, z) = (xyz("x")?, xyz("y")?, xyz("z")?);
    let intensity = find("intensity")?;
    let ring = find("ring")?;
    let instance = find("instance")?;

    if height > 1 && row_step < width.saturating_mul(point_step) {
        return Err(fail(
            at,
            format!("row_step {row_step} is less than width {width} × point_step {point_step}"),
        ));
    }
    let rows = if height > 1 { row_step } else { 0 };
    let needed = (height as u128 - 1) * rows as u128 + width as u128 * point_step as u128;
    if needed > data.len() as u128 {
        return Err(fail(
            at,
            format!(
                "{height}×{width} points of {point_step} bytes (row_step {row_step}) need {needed} data bytes, found {}",
                data.len()
            ),
        ));
    }
    Ok((hdr, layout(x, y, z, intensity, ring, instance)))
}

/// Writes the cloud as [`PointRecord`]s, in batches.
pub(crate) fn write_cloud(
    msg: &[u8],
    l: &CloudLayout,
    sink: &mut (impl PayloadSink + ?Sized),
) -> Result<usize, SinkFull> {
    if l.points() == 0 {
        return Ok(0);
    }
    if l.is_point_record() {
        write_record_cloud(msg, l, sink)
    } else {
        write_cloud_fields(msg, l, sink)
    }
}

/// [`write_cloud`] for a cloud whose points are laid out as [`PointRecord`]s on this host (what
/// the recorder writes): rows are copied a batch at a time with `reserved` cleared, which is
/// what the field-by-field conversion gives for such a cloud, at a fraction of its cost.
fn write_record_cloud(
    msg: &[u8],
    l: &CloudLayout,
    sink: &mut (impl PayloadSink + ?Sized),
) -> Result<usize, SinkFull> {
    const RECORD: usize = size_of::<PointRecord>();
    const RESERVED: usize = std::mem::offset_of!(PointRecord, reserved);
    let data = &msg[l.data_offset..];
    let mut batch = Vec::with_capacity(2048 * RECORD);
    for row in 0..l.height {
        let row_start = row * l.row_step;
        for chunk in data[row_start..row_start + l.width * RECORD].chunks(2048 * RECORD) {
            batch.clear();
            batch.extend_from_slice(chunk);
            for p in batch.chunks_exact_mut(RECORD) {
                p[RESERVED..RESERVED + 2].fill(0);
            }
            sink.push(&batch)?;
        }
    }
    Ok(l.payload_len())
}

/// [`write_cloud`] for any layout: each field read and converted.
fn write_cloud_fields(
    msg: &[u8],
    l: &CloudLayout,
    sink: &mut (impl PayloadSink + ?Sized),
) -> Result<usize, SinkFull> {
    const BATCH: usize = 2048;
    let mut batch: Vec<PointRecord> = Vec::with_capacity(BATCH.min(l.points()));
    let data = &msg[l.data_offset..];
    let be = l.big_endian;
    let intensity_scale = match l.intensity.map(|f| f.datatype) {
        Some(UINT8) => 1.0 / 255.0,
        Some(UINT16) => 1.0 / 65535.0,
        _ => 1.0,
    };
    for row in 0..l.height {
        let row_start = row * l.row_step;
        for p in data[row_start..row_start + l.width * l.point_step].chunks_exact(l.point_step) {
            let intensity = match l.intensity {
                None => 0.0,
                Some(f) if f.datatype == FLOAT32 => f.read_f32(p, be),
                Some(f) => (f.read(p, be) * intensity_scale) as f32,
            };
            let ring = l.ring.map_or(0, |f| f.read(p, be).clamp(0.0, f64::from(u16::MAX)) as u16);
            let instance = l.instance.map_or(0, |f| f.read(p, be).clamp(0.0, f64::from(u32::MAX)) as u32);
            batch.push(PointRecord {
                x: l.x.read_f32(p, be),
                y: l.y.read_f32(p, be),
                z: l.z.read_f32(p, be),
                intensity,
                ring,
                reserved: 0,
                instance,
            });
            if batch.len() == BATCH {
                sink.push(batch.as_bytes())?;
                batch.clear();
            }
        }
    }
    if !batch.is_empty() {
        sink.push(batch.as_bytes())?;
    }
    Ok(l.payload_len())
}

/// Pixel encodings read from `sensor_msgs/msg/Image`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    Rgb8,
    Bgr8,
    Mono8,
    Rgba8,
    Bgra8,
    /// Only for label planes.
    Mono16,
}

impl Encoding {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "rgb8" => Self::Rgb8,
            "bgr8" => Self::Bgr8,
            "mono8" => Self::Mono8,
            "rgba8" => Self::Rgba8,
            "bgra8" => Self::Bgra8,
            "mono16" | "16UC1" => Self::Mono16,
            _ => return None,
        })
    }

    fn bytes_per_pixel(self) -> usize {
        match self {
            Self::Mono8 => 1,
            Self::Mono16 => 2,
            Self::Rgb8 | Self::Bgr8 => 3,
            Self::Rgba8 | Self::Bgra8 => 4,
        }
    }
}

/// A validated `sensor_msgs/msg/Image` layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ImageLayout {
    pub width: u32,
    pub height: u32,
    pub encoding: Encoding,
    step: usize,
    big_endian: bool,
    data_offset: usize,
}

impl ImageLayout {
    /// Where the pixel data starts in the message (every field before it was read).
    pub fn data_offset(&self) -> usize {
        self.data_offset
    }

    /// Bytes of the epochfuse camera payload, without labels.
    pub fn payload_len(&self) -> usize {
        shared::frames::IMAGE_HEADER_SIZE + self.width as usize * self.height as usize * 3
    }

    /// Bytes of a label plane of this size.
    pub fn labels_len(&self) -> usize {
        self.width as usize * self.height as usize * 2
    }
}

/// Parses an `Image`, validating size, encoding and `step` against the data.
pub(crate) fn parse_image(msg: &[u8]) -> Result<(Header<'_>, ImageLayout), CdrError> {
    let mut r = CdrReader::new(msg)?;
    let hdr = header(&mut r)?;
    let height = r.u32("height")?;
    let width = r.u32("width")?;
    let enc_at = r.position();
    let encoding = r.string("encoding")?;
    let big_endian = r.u8("is_bigendian")? != 0;
    let step = r.u32("step")? as usize;
    let (data_offset, data) = r.bytes("data")?;
    let encoding = Encoding::parse(encoding).ok_or_else(|| {
        fail(enc_at, format!("unsupported image encoding '{encoding}' (rgb8, bgr8, mono8, rgba8, bgra8 are)"))
    })?;
    if width == 0 || height == 0 || width > MAX_IMAGE_SIDE || height > MAX_IMAGE_SIDE {
        return Err(fail(
            data_offset,
            format!("image size {width}×{height} out of range (1..={MAX_IMAGE_SIDE})"),
        ));
    }
    let row = width as usize * encoding.bytes_per_pixel();
    if step < row {
        return Err(fail(data_offset, format!("step {step} is less than width × bytes per pixel = {row}")));
    }
    let needed = (height as usize - 1) * step + row;
    if data.len() < needed {
        return Err(fail(
            data_offset,
            format!("{width}×{height} image with step {step} needs {needed} bytes, found {}", data.len()),
        ));
    }
    Ok((hdr, ImageLayout { width, height, encoding, step, big_endian, data_offset }))
}

/// Writes the camera payload: header, rgb8 plane, and the label plane if `labels` is given
/// (a mono16 image of the same size).
pub(crate) fn write_image(
    msg: &[u8],
    l: &ImageLayout,
    labels: Option<(&[u8], &ImageLayout)>,
    sink: &mut (impl PayloadSink + ?Sized),
) -> Result<usize, SinkFull> {
    let header = ImageHeader {
        width: l.width,
        height: l.height,
        format: PixelFormat::Rgb8 as u32,
        has_labels: u32::from(labels.is_some()),
    };
    sink.push(header.as_bytes())?;
    let (w, h) = (l.width as usize, l.height as usize);
    let data = &msg[l.data_offset..];
    if l.encoding == Encoding::Rgb8 && l.step == w * 3 {
        sink.push(&data[..w * h * 3])?;
    } else {
        let mut row = vec![0u8; w * 3];
        let bpp = l.encoding.bytes_per_pixel();
        for y in 0..h {
            let src = &data[y * l.step..y * l.step + w * bpp];
            match l.encoding {
                Encoding::Rgb8 => row.copy_from_slice(src),
                Encoding::Bgr8 => {
                    for (d, s) in row.chunks_exact_mut(3).zip(src.chunks_exact(3)) {
                        d.copy_from_slice(&[s[2], s[1], s[0]]);
                    }
                }
                Encoding::Rgba8 => {
                    for (d, s) in row.chunks_exact_mut(3).zip(src.chunks_exact(4)) {
                        d.copy_from_slice(&s[..3]);
                    }
                }
                Encoding::Bgra8 => {
                    for (d, s) in row.chunks_exact_mut(3).zip(src.chunks_exact(4)) {
                        d.copy_from_slice(&[s[2], s[1], s[0]]);
                    }
                }
                Encoding::Mono8 => {
                    for (d, &s) in row.chunks_exact_mut(3).zip(src) {
                        d.copy_from_slice(&[s, s, s]);
                    }
                }
                Encoding::Mono16 => {
                    for (d, s) in row.chunks_exact_mut(3).zip(src.chunks_exact(2)) {
                        let v = if l.big_endian { s[0] } else { s[1] };
                        d.copy_from_slice(&[v, v, v]);
                    }
                }
            }
            sink.push(&row)?;
        }
    }
    let mut len = l.payload_len();
    if let Some((lmsg, ll)) = labels {
        let data = &lmsg[ll.data_offset..];
        if !ll.big_endian && ll.step == w * 2 {
            // Little-endian rows without padding are the payload's plane as they are.
            sink.push(&data[..w * h * 2])?;
            return Ok(len + ll.labels_len());
        }
        let mut row = vec![0u8; w * 2];
        for y in 0..h {
            let src = &data[y * ll.step..y * ll.step + w * 2];
            for (d, s) in row.chunks_exact_mut(2).zip(src.chunks_exact(2)) {
                let v = if ll.big_endian {
                    u16::from_be_bytes([s[0], s[1]])
                } else {
                    u16::from_le_bytes([s[0], s[1]])
                };
                d.copy_from_slice(&v.to_le_bytes());
            }
            sink.push(&row)?;
        }
        len += ll.labels_len();
    }
    Ok(len)
}

/// The calibration content of a `CameraInfo` (its header aside), compared by value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CamInfo {
    pub width: u32,
    pub height: u32,
    pub distortion_model: String,
    pub d: Vec<f64>,
    pub k: [f64; 9],
    pub r: [f64; 9],
    pub p: [f64; 12],
}

/// Parses a `CameraInfo`.
pub(crate) fn parse_camera_info(msg: &[u8]) -> Result<(Header<'_>, CamInfo), CdrError> {
    let mut r = CdrReader::new(msg)?;
    let hdr = header(&mut r)?;
    let height = r.u32("height")?;
    let width = r.u32("width")?;
    let distortion_model = r.string("distortion_model")?.to_owned();
    let n = r.seq_len("d", 8)?;
    let mut d = Vec::with_capacity(n);
    for _ in 0..n {
        d.push(r.finite_f64("d")?);
    }
    let k = r.f64_array::<9>("k")?;
    let rr = r.f64_array::<9>("r")?;
    let p = r.f64_array::<12>("p")?;
    // binning_x, binning_y and the region of interest are read for validation and not used.
    r.u32("binning_x")?;
    r.u32("binning_y")?;
    for what in ["roi.x_offset", "roi.y_offset", "roi.height", "roi.width"] {
        r.u32(what)?;
    }
    r.bool("roi.do_rectify")?;
    Ok((hdr, CamInfo { width, height, distortion_model, d, k, r: rr, p }))
}

const I3: [f64; 9] = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0];

impl CamInfo {
    /// The camera model this `CameraInfo` describes, for images of `image_size` if the
    /// `CameraInfo` leaves its size at zero.
    ///
    /// - `R = I`, `P = [K|0]` and `K` a plain pinhole matrix: [`Projection::Pinhole`] with
    ///   `K` and `D` (what [`super::McapRecorder`] writes; it is exact, whatever `D` is).
    /// - Non-zero `D` (plumb_bob): the images are raw (distorted), so [`Projection::Pinhole`]
    ///   with `K` and `D`. `R` and `P` describe the *rectified* image and do not apply to raw
    ///   pixels, so they are not used.
    /// - Otherwise (zero or empty `D`): the images are rectified,
    ///   [`Projection::Rectified`] with `p = P · [R|0]`. If `P` is all zero, `K` is used as a
    ///   pinhole instead.
    pub fn projection(&self, image_size: (u32, u32)) -> Result<Projection, String> {
        let (width, height) =
            if self.width == 0 || self.height == 0 { image_size } else { (self.width, self.height) };
        if width == 0 || height == 0 || width > MAX_IMAGE_SIDE || height > MAX_IMAGE_SIDE {
            return Err(format!("camera_info image size {width}×{height} out of range"));
        }
        let k = &self.k;
        let plain_k = k[1] == 0.0 && k[3] == 0.0 && k[6] == 0.0 && k[7] == 0.0 && k[8] == 1.0;
        let k_ok = plain_k && k[0] > 0.0 && k[4] > 0.0;
        let nonzero_d = self.d.iter().any(|&v| v != 0.0);
        let distortion = || -> Result<Distortion, String> {
            if !nonzero_d {
                return Ok(Distortion::default());
            }
            let model = self.distortion_model.as_str();
            let extra_zero = self.d.iter().skip(5).all(|&v| v == 0.0);
            if !(model == "plumb_bob" || (model == "rational_polynomial" && extra_zero)) {
                return Err(format!(
                    "camera_info distortion model '{model}' with {} coefficients is not supported (plumb_bob is)",
                    self.d.len()
                ));
            }
            let c = |i: usize| self.d.get(i).copied().unwrap_or(0.0);
            Ok(Distortion { k1: c(0), k2: c(1), p1: c(2), p2: c(3), k3: c(4) })
        };
        let pinhole = |distortion: Distortion| -> Result<Projection, String> {
            if !k_ok {
                return Err(format!(
                    "camera_info K {k:?} is not a pinhole matrix with positive focal lengths"
                ));
            }
            Ok(Projection::Pinhole(CameraIntrinsics {
                fx: k[0],
                fy: k[4],
                cx: k[2],
                cy: k[5],
                width,
                height,
                distortion,
            }))
        };
        let p = &self.p;
        let p_is_k0 = p[0..3] == k[0..3]
            && p[4..7] == k[3..6]
            && p[8..11] == k[6..9]
            && p[3] == 0.0
            && p[7] == 0.0
            && p[11] == 0.0;
        if self.r == I3 && p_is_k0 && k_ok {
            return pinhole(distortion()?);
        }
        if nonzero_d {
            return pinhole(distortion()?);
        }
        if p.iter().all(|&v| v == 0.0) {
            return pinhole(Distortion::default());
        }
        let pm = Matrix3x4::from_row_slice(p);
        if pm.fixed_view::<1, 3>(2, 0).iter().all(|&v| v == 0.0) {
            return Err(format!("camera_info P {p:?} has a zero third row"));
        }
        let folded = if self.r == I3 {
            pm
        } else {
            let r = Matrix3::from_row_slice(&self.r);
            let mut r4 = Matrix4::identity();
            r4.fixed_view_mut::<3, 3>(0, 0).copy_from(&r);
            pm * r4
        };
        Ok(Projection::Rectified { p: folded, width, height })
    }
}

/// One `geometry_msgs/msg/TransformStamped`: `iso` maps `child` coordinates into `parent`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Transform {
    pub parent: String,
    pub child: String,
    pub stamp: Option<u64>,
    pub iso: Isometry3<f64>,
}

/// Parses a `TFMessage`.
pub(crate) fn parse_tf(msg: &[u8]) -> Result<Vec<Transform>, CdrError> {
    let mut r = CdrReader::new(msg)?;
    // header (8 + 4) + child (4) + 7 f64 (56): at least 72 bytes per transform.
    let n = r.seq_len("transforms", 72)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let hdr = header(&mut r)?;
        let child = r.string("child_frame_id")?.trim_start_matches('/').to_owned();
        let at = r.position();
        let t = r.f64_array::<3>("transform.translation")?;
        let q = r.f64_array::<4>("transform.rotation")?;
        let q = Quaternion::new(q[3], q[0], q[1], q[2]);
        let norm2 = q.norm_squared();
        if !(0.5..=2.0).contains(&norm2) {
            return Err(fail(
                at,
                format!(
                    "transform {} → {child}: rotation quaternion has norm {}",
                    hdr.frame_id,
                    norm2.sqrt()
                ),
            ));
        }
        // Keep a quaternion that is unit to rounding as it is, so a recording round-trips
        // bit for bit.
        let rot = if (norm2 - 1.0).abs() <= 8.0 * f64::EPSILON {
            UnitQuaternion::new_unchecked(q)
        } else {
            UnitQuaternion::from_quaternion(q)
        };
        out.push(Transform {
            parent: hdr.frame_id.to_owned(),
            child,
            stamp: hdr.stamp,
            iso: Isometry3::from_parts(Translation3::new(t[0], t[1], t[2]), rot),
        });
    }
    Ok(out)
}

/// `epochfuse_msgs/msg/FrameEpoch`, written by [`super::McapRecorder`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FrameEpochMsg {
    pub stamp: Option<u64>,
    pub topic: String,
    pub epoch: u64,
}

pub(crate) fn parse_frame_epoch(msg: &[u8]) -> Result<FrameEpochMsg, CdrError> {
    let mut r = CdrReader::new(msg)?;
    let hdr = header(&mut r)?;
    let topic = r.string("topic")?.to_owned();
    let _seq = r.u64("seq")?;
    let epoch = r.u64("epoch")?;
    Ok(FrameEpochMsg { stamp: hdr.stamp, topic, epoch })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Hand-encodes a little-endian PointCloud2 or Image with arbitrary fields.
    struct W(Vec<u8>);

    impl W {
        fn new() -> Self {
            Self(vec![0, 1, 0, 0])
        }
        fn align(&mut self, n: usize) {
            while !(self.0.len() - 4).is_multiple_of(n) {
                self.0.push(0);
            }
        }
        fn u8(&mut self, v: u8) {
            self.0.push(v);
        }
        fn u32(&mut self, v: u32) {
            self.align(4);
            self.0.extend_from_slice(&v.to_le_bytes());
        }
        fn bytes(&mut self, b: &[u8]) {
            self.u32(b.len() as u32);
            self.0.extend_from_slice(b);
        }
        fn string(&mut self, s: &str) {
            self.u32(s.len() as u32 + 1);
            self.0.extend_from_slice(s.as_bytes());
            self.0.push(0);
        }
        fn header(&mut self) {
            self.u32(1);
            self.u32(2);
            self.string("f");
        }
    }

    fn cloud(h: u32, w: u32, fields: &[(&str, u32, u8)], be: bool, ps: u32, rs: u32, data: &[u8]) -> Vec<u8> {
        let mut m = W::new();
        m.header();
        m.u32(h);
        m.u32(w);
        m.u32(fields.len() as u32);
        for &(n, o, d) in fields {
            m.string(n);
            m.u32(o);
            m.u8(d);
            m.u32(1);
        }
        m.u8(u8::from(be));
        m.u32(ps);
        m.u32(rs);
        m.bytes(data);
        m.u8(1);
        m.0
    }

    #[test]
    fn empty_clouds_write_nothing() {
        let f = [("x", 0, FLOAT32), ("y", 4, FLOAT32), ("z", 8, FLOAT32)];
        for (h, w, ps, rs) in [(5, 0, 12, 1000), (0, 7, 0, 0), (3, 0, 0, 0)] {
            let msg = cloud(h, w, &f, false, ps, rs, &[]);
            let (_, l) = parse_cloud(&msg).unwrap();
            let mut out = Vec::new();
            assert_eq!(write_cloud(&msg, &l, &mut out), Ok(0));
            assert!(out.is_empty());
        }
    }

    #[test]
    fn header_stamp_zero_and_negative_are_absent() {
        let mut m = W::new();
        m.u32(0);
        m.u32(0);
        m.string("/a");
        let msg = m.0;
        let mut r = CdrReader::new(&msg).unwrap();
        assert_eq!(header(&mut r).unwrap(), Header { stamp: None, frame_id: "a" });
    }

    proptest! {
        /// A cloud laid out as PointRecords (the recorder's) takes the copying path and gives
        /// exactly the field-by-field conversion, whatever its bytes, rows and row padding.
        #[test]
        fn record_clouds_copy_as_converted(h in 1u32..4, w in 1u32..3000, pad in 0u32..30, seed: u8) {
            let f = [
                ("x", 0, FLOAT32), ("y", 4, FLOAT32), ("z", 8, FLOAT32),
                ("intensity", 12, FLOAT32), ("ring", 16, UINT16), ("instance", 20, UINT32),
            ];
            let rs = w * 24 + pad;
            let data: Vec<u8> = (0..(h * rs) as usize).map(|i| (i * 37 + usize::from(seed)) as u8).collect();
            let msg = cloud(h, w, &f, false, 24, rs, &data);
            let (_, l) = parse_cloud(&msg).unwrap();
            prop_assert!(l.is_point_record());
            let (mut fast, mut slow) = (Vec::new(), Vec::new());
            prop_assert_eq!(write_cloud(&msg, &l, &mut fast), Ok(l.payload_len()));
            prop_assert_eq!(write_cloud_fields(&msg, &l, &mut slow), Ok(l.payload_len()));
            prop_assert!(fast == slow);
        }

        #[test]
        fn any_cloud_layout_is_safe(
            h in 0u32..4, w in 0u32..6, ps in 0u32..40, rs in 0u32..200, be: bool,
            fields in proptest::collection::vec((0usize..6, 0u32..44, 0u8..10), 0..7),
            len in 0usize..600,
        ) {
            let names = ["x", "y", "z", "intensity", "ring", "instance"];
            let fields: Vec<(&str, u32, u8)> = fields.iter().map(|&(n, o, d)| (names[n], o, d)).collect();
            let data: Vec<u8> = (0..len).map(|i| (i * 37 % 251) as u8).collect();
            let msg = cloud(h, w, &fields, be, ps, rs, &data);
            if let Ok((_, l)) = parse_cloud(&msg) {
                let mut out = Vec::new();
                prop_assert_eq!(write_cloud(&msg, &l, &mut out), Ok(l.payload_len()));
                prop_assert_eq!(out.len(), l.payload_len());
            }
            // Any truncation of the message is rejected or parsed safely.
            for cut in [msg.len() / 2, msg.len().saturating_sub(1)] {
                if let Ok((_, l)) = parse_cloud(&msg[..cut]) {
                    let mut out = Vec::new();
                    prop_assert!(write_cloud(&msg[..cut], &l, &mut out).is_ok());
                }
            }
        }

        #[test]
        fn any_image_layout_is_safe(
            h in 0u32..5, w in 0u32..5, step in 0u32..30, enc in 0usize..7, be: u8, len in 0usize..200,
        ) {
            let encs = ["rgb8", "bgr8", "mono8", "rgba8", "bgra8", "mono16", "yuv422"];
            let mut m = W::new();
            m.header();
            m.u32(h);
            m.u32(w);
            m.string(encs[enc]);
            m.u8(be);
            m.u32(step);
            let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
            m.bytes(&data);
            let msg = m.0;
            if let Ok((_, l)) = parse_image(&msg) {
                let mut out = Vec::new();
                let labels = (l.encoding == Encoding::Mono16).then_some((msg.as_slice(), &l));
                let n = write_image(&msg, &l, labels, &mut out).unwrap();
                prop_assert_eq!(n, out.len());
                prop_assert!(shared::frames::camera_image(&out).is_ok());
            }
        }
    }
}
