//! Frame payload layouts, defined once for producers, replayers, fusion and tools.
//!
//! A payload is little-endian bytes in a ring slot. Producers append these records to a
//! [`crate::ring::Loan`]; readers copy the payload out of the ring into their own buffer and
//! parse it here with zerocopy (never a transmute, never a reference into the mapping).
//!
//! ```text
//! lidar  payload: PointRecord[n]                                  n = len / 24
//! camera payload: ImageHeader | rgb8 plane (w*h*3) | label plane (w*h u16, if has_labels)
//! fused  payload: FusedHeader | FusedPoint[points]
//! ```

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// One lidar return. 24 bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct PointRecord {
    /// Position in the lidar's own frame, metres.
    pub x: f32,
    /// Position in the lidar's own frame, metres.
    pub y: f32,
    /// Position in the lidar's own frame, metres.
    pub z: f32,
    /// Return intensity, 0..1.
    pub intensity: f32,
    /// Beam (laser) index.
    pub ring: u16,
    /// Reserved, zero.
    pub reserved: u16,
    /// Ground-truth instance id of the surface hit (simulation only): 0 sky or unknown,
    /// 1 ground, 2 and up objects.
    pub instance: u32,
}

/// Size of one [`PointRecord`].
pub const POINT_RECORD_SIZE: usize = size_of::<PointRecord>();
const _: () = assert!(POINT_RECORD_SIZE == 24);

/// Pixel encoding of an image plane.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum PixelFormat {
    /// Three bytes per pixel, R G B.
    Rgb8 = 1,
}

/// Header of a camera payload. 16 bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct ImageHeader {
    /// Image width in pixels.
    pub width: u32,
    /// Image height in pixels.
    pub height: u32,
    /// [`PixelFormat`] as `u32`.
    pub format: u32,
    /// 1 if a ground-truth label plane (u16 instance id per pixel) follows the colour plane.
    pub has_labels: u32,
}

/// Size of an [`ImageHeader`].
pub const IMAGE_HEADER_SIZE: usize = size_of::<ImageHeader>();
const _: () = assert!(IMAGE_HEADER_SIZE == 16);

impl ImageHeader {
    /// The header of a `width × height` rgb8 image with a label plane (a simulated camera's
    /// payload).
    #[must_use]
    pub const fn rgb8_labelled(width: u32, height: u32) -> Self {
        Self { width, height, format: PixelFormat::Rgb8 as u32, has_labels: 1 }
    }

    /// Bytes of the rgb8 plane.
    #[must_use]
    pub const fn rgb_len(&self) -> usize {
        self.width as usize * self.height as usize * 3
    }

    /// Bytes of the label plane (0 if absent).
    #[must_use]
    pub const fn labels_len(&self) -> usize {
        if self.has_labels != 0 {
            self.width as usize * self.height as usize * 2
        } else {
            0
        }
    }

    /// Total payload bytes: header, colour plane and label plane.
    #[must_use]
    pub const fn payload_len(&self) -> usize {
        IMAGE_HEADER_SIZE + self.rgb_len() + self.labels_len()
    }
}

/// Header of a fused payload. 40 bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct FusedHeader {
    /// Sequence number of the camera frame in the camera ring.
    pub camera_seq: u64,
    /// Sequence number of the lidar sweep in the lidar ring.
    pub lidar_seq: u64,
    /// The calibration epoch both frames carried and that was applied.
    pub epoch: u64,
    /// Number of [`FusedPoint`]s that follow.
    pub points: u32,
    /// Image width the points were projected into.
    pub width: u32,
    /// Image height the points were projected into.
    pub height: u32,
    /// Reserved, zero.
    pub reserved: u32,
}

/// Size of a [`FusedHeader`].
pub const FUSED_HEADER_SIZE: usize = size_of::<FusedHeader>();
const _: () = assert!(FUSED_HEADER_SIZE == 40);

/// One lidar point projected into the image. 16 bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct FusedPoint {
    /// Column, pixels.
    pub u: f32,
    /// Row, pixels.
    pub v: f32,
    /// Depth along the camera's optical axis, metres.
    pub depth: f32,
    /// Colour sampled from the image at (u, v), R G B, and the lidar intensity as 0..255.
    pub rgbi: [u8; 4],
}

/// Size of a [`FusedPoint`].
pub const FUSED_POINT_SIZE: usize = size_of::<FusedPoint>();
const _: () = assert!(FUSED_POINT_SIZE == 16);

/// Why a payload could not be parsed. Payloads come from another process: never trusted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PayloadError {
    /// The payload is shorter than its header says.
    TooShort {
        /// Bytes the header requires.
        needed: usize,
        /// Bytes present.
        got: usize,
    },
    /// The lidar payload is not a whole number of point records.
    RaggedPoints {
        /// Payload length in bytes.
        len: usize,
    },
    /// An image header field is out of range.
    BadImageHeader(&'static str),
    /// The buffer is not 4-byte aligned (buffers from `Vec<u8>` are, with the system
    /// allocator; a sub-slice at an odd offset is not).
    Misaligned,
}

impl std::fmt::Display for PayloadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooShort { needed, got } => {
                write!(f, "payload too short: needs {needed} bytes, has {got}")
            }
            Self::RaggedPoints { len } => {
                write!(f, "lidar payload of {len} bytes is not a whole number of 24-byte points")
            }
            Self::BadImageHeader(what) => write!(f, "bad image header: {what}"),
            Self::Misaligned => write!(f, "payload buffer is not 4-byte aligned"),
        }
    }
}

impl std::error::Error for PayloadError {}

/// Largest image side accepted from a segment, to bound allocations driven by untrusted input.
pub const MAX_IMAGE_SIDE: u32 = 16384;

/// Views a lidar payload as point records.
///
/// # Errors
/// [`PayloadError::RaggedPoints`] if the length is not a multiple of 24 bytes,
/// [`PayloadError::Misaligned`] if the buffer is not 4-byte aligned.
pub fn lidar_points(payload: &[u8]) -> Result<&[PointRecord], PayloadError> {
    <[PointRecord]>::ref_from_bytes(payload).map_err(|e| match e {
        zerocopy::ConvertError::Alignment(_) => PayloadError::Misaligned,
        _ => PayloadError::RaggedPoints { len: payload.len() },
    })
}

/// A parsed camera payload: header and plane slices borrowed from the reader's buffer.
#[derive(Debug, Clone, Copy)]
pub struct ImageView<'a> {
    /// The header.
    pub header: ImageHeader,
    /// rgb8 plane, row-major, `width * height * 3` bytes.
    pub rgb: &'a [u8],
    /// Label plane, row-major little-endian u16 per pixel, if present.
    pub labels: Option<&'a [u8]>,
}

impl ImageView<'_> {
    /// The ground-truth instance id at pixel (x, y), if the frame has labels and the pixel is
    /// inside the image.
    #[must_use]
    pub fn label_at(&self, x: u32, y: u32) -> Option<u16> {
        if x >= self.header.width || y >= self.header.height {
            return None;
        }
        let labels = self.labels?;
        let i = (y as usize * self.header.width as usize + x as usize) * 2;
        Some(u16::from_le_bytes([labels[i], labels[i + 1]]))
    }

    /// The colour at pixel (x, y), if inside the image.
    #[must_use]
    pub fn rgb_at(&self, x: u32, y: u32) -> Option<[u8; 3]> {
        if x >= self.header.width || y >= self.header.height {
            return None;
        }
        let i = (y as usize * self.header.width as usize + x as usize) * 3;
        Some([self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]])
    }
}

/// Parses a camera payload, checking every length against the bytes present.
///
/// # Errors
/// [`PayloadError`] if the header is malformed or the planes are cut short.
pub fn camera_image(payload: &[u8]) -> Result<ImageView<'_>, PayloadError> {
    let (header, rest) = ImageHeader::read_from_prefix(payload)
        .map_err(|_| PayloadError::TooShort { needed: IMAGE_HEADER_SIZE, got: payload.len() })?;
    check_image_header(&header, payload.len())?;
    let (rgb, rest) = rest.split_at(header.rgb_len());
    let labels = (header.has_labels != 0).then(|| &rest[..header.labels_len()]);
    Ok(ImageView { header, rgb, labels })
}

/// Checks a camera payload's header against the `len` bytes of its payload (the rules of
/// [`camera_image`], for readers that look at the planes in place).
///
/// # Errors
/// [`PayloadError`] if the header is malformed or the planes need more than `len` bytes.
pub fn check_image_header(header: &ImageHeader, len: usize) -> Result<(), PayloadError> {
    if header.width == 0
        || header.height == 0
        || header.width > MAX_IMAGE_SIDE
        || header.height > MAX_IMAGE_SIDE
    {
        return Err(PayloadError::BadImageHeader("width or height out of range"));
    }
    if header.format != PixelFormat::Rgb8 as u32 {
        return Err(PayloadError::BadImageHeader("unknown pixel format"));
    }
    if header.has_labels > 1 {
        return Err(PayloadError::BadImageHeader("has_labels is neither 0 nor 1"));
    }
    let needed = header.payload_len();
    if len < needed {
        return Err(PayloadError::TooShort { needed, got: len });
    }
    Ok(())
}

/// A parsed fused payload.
#[derive(Debug, Clone, Copy)]
pub struct FusedView<'a> {
    /// The header.
    pub header: FusedHeader,
    /// The projected points.
    pub points: &'a [FusedPoint],
}

/// Parses a fused payload.
///
/// # Errors
/// [`PayloadError::TooShort`] if the points are cut short.
pub fn fused_frame(payload: &[u8]) -> Result<FusedView<'_>, PayloadError> {
    let (header, rest) = FusedHeader::read_from_prefix(payload)
        .map_err(|_| PayloadError::TooShort { needed: FUSED_HEADER_SIZE, got: payload.len() })?;
    let needed = FUSED_HEADER_SIZE + header.points as usize * FUSED_POINT_SIZE;
    if payload.len() < needed {
        return Err(PayloadError::TooShort { needed, got: payload.len() });
    }
    let points = <[FusedPoint]>::ref_from_bytes(&rest[..header.points as usize * FUSED_POINT_SIZE])
        .map_err(|_| PayloadError::Misaligned)?;
    Ok(FusedView { header, points })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camera_round_trip_and_bounds() {
        let h = ImageHeader { width: 2, height: 1, format: 1, has_labels: 1 };
        let mut p = h.as_bytes().to_vec();
        p.extend_from_slice(&[1, 2, 3, 4, 5, 6]);
        p.extend_from_slice(&7u16.to_le_bytes());
        p.extend_from_slice(&9u16.to_le_bytes());
        let v = camera_image(&p).unwrap();
        assert_eq!(v.rgb_at(1, 0), Some([4, 5, 6]));
        assert_eq!(v.label_at(1, 0), Some(9));
        assert_eq!(v.label_at(2, 0), None);
        assert!(matches!(camera_image(&p[..p.len() - 1]), Err(PayloadError::TooShort { .. })));
    }

    #[test]
    fn ragged_lidar_is_rejected() {
        let buf = vec![0u8; 48];
        assert!(lidar_points(&buf).is_ok());
        assert_eq!(lidar_points(&buf[..47]), Err(PayloadError::RaggedPoints { len: 47 }));
        assert_eq!(lidar_points(&buf[1..25]), Err(PayloadError::Misaligned));
    }

    #[test]
    fn huge_image_header_is_rejected() {
        let h = ImageHeader { width: u32::MAX, height: u32::MAX, format: 1, has_labels: 1 };
        assert!(camera_image(h.as_bytes()).is_err());
    }
}

/// Where a producer appends a payload: a ring slot loan in production, a `Vec<u8>` in tests.
///
/// Renderers write through this so that a frame goes straight into shared memory with no
/// intermediate frame buffer.
pub trait PayloadSink {
    /// Appends `bytes`.
    ///
    /// # Errors
    /// [`SinkFull`] if the sink cannot hold them; nothing is appended then.
    fn push(&mut self, bytes: &[u8]) -> Result<(), SinkFull>;

    /// Writes `bytes` at `offset`, extending the payload if it ends past the current length.
    /// Lets a renderer fill a frame out of order (a z-buffered rasteriser, say) straight in
    /// the slot.
    ///
    /// # Errors
    /// [`SinkFull`] if `offset + bytes.len()` exceeds the capacity; nothing is written then.
    fn write_at(&mut self, offset: usize, bytes: &[u8]) -> Result<(), SinkFull>;

    /// Bytes appended so far (the highest end of any write).
    fn len(&self) -> usize;

    /// Whether nothing was appended yet.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A [`PayloadSink`] ran out of room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SinkFull {
    /// Bytes the push needed in total.
    pub needed: usize,
    /// The sink's capacity.
    pub capacity: usize,
}

impl std::fmt::Display for SinkFull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "frame of {} bytes does not fit a slot of {} bytes", self.needed, self.capacity)
    }
}

impl std::error::Error for SinkFull {}

impl PayloadSink for Vec<u8> {
    fn push(&mut self, bytes: &[u8]) -> Result<(), SinkFull> {
        self.extend_from_slice(bytes);
        Ok(())
    }

    fn write_at(&mut self, offset: usize, bytes: &[u8]) -> Result<(), SinkFull> {
        let end =
            offset.checked_add(bytes.len()).ok_or(SinkFull { needed: usize::MAX, capacity: usize::MAX })?;
        if end > self.len() {
            self.resize(end, 0);
        }
        self[offset..end].copy_from_slice(bytes);
        Ok(())
    }

    fn len(&self) -> usize {
        Vec::len(self)
    }
}
