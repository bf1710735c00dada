//! The calibration wire format: what travels on the service's `SOCK_SEQPACKET` socket, and
//! what each slot of the calibration table holds.
//!
//! One message per packet (a seqpacket keeps boundaries). All integers and floats are
//! little-endian; all structs are `#[repr(C)]` of byte-order-explicit zerocopy types, so they
//! have alignment 1 and no padding, and are read with zerocopy, never a transmute.
//!
//! ```text
//! Header, 16 bytes
//!  0       4       6       8              12             16
//!  +-------+-------+-------+--------------+--------------+
//!  | magic |version| kind  |   body_len   |  reserved=0  |
//!  | "EFCL"|  u16  |  u16  |     u32      |     u32      |
//!  +-------+-------+-------+--------------+--------------+
//!  kind 1 = Hello (subscriber → service), body 8 bytes
//!  kind 2 = CalibUpdate (service → subscriber; also a table slot), body
//!  24 + 240·cameras + 128·lidars bytes (264 + 128 = 392 for one camera and one lidar)
//!  body_len must equal the body size of `kind` (for an update: as its counts say) and the
//!  packet must be exactly 16 + body_len bytes.
//!
//! Hello body, 8 bytes
//!  0              4              8
//!  +--------------+--------------+
//!  |  role  u32   |  reserved=0  |     role: 1 camera, 2 lidar, 3 fusion, 4 monitor,
//!  +--------------+--------------+           7 recorder (shared::Role as u32); 5 calib
//!                                            and 6 replayer do not subscribe: refused
//!
//! CalibUpdate body (version 2: a rig of named sensors)
//!    0  epoch            u64     ≥ 1
//!    8  valid_from_ns    u64     pipeline time
//!   16  cameras          u16     1..=8
//!   18  lidars           u16     1..=4
//!   20  reserved         u32     0
//!   24  camera entry × cameras, 240 bytes each:
//!         0  name             [u8;32] a sensor name, NUL-padded
//!        32  camera_model     u32     1 pinhole, 2 rectified
//!        36  width            u32     pixels, 1..=16384
//!        40  height           u32     pixels, 1..=16384
//!        44  reserved         u32     0
//!        48  camera_params    f64×12  pinhole:   fx fy cx cy k1 k2 p1 p2 k3 0 0 0
//!                                     rectified: P·[R|0], 3×4 row-major
//!       144  rotation         f64×9   camera OPTICAL frame → vehicle, 3×3 row-major
//!       216  translation      f64×3   metres
//!       240  end
//!    …  lidar entry × lidars, 128 bytes each:
//!         0  name             [u8;32]
//!        32  rotation         f64×9   lidar → vehicle, 3×3 row-major
//!       104  translation      f64×3   metres
//!       128  end
//! ```
//!
//! Names are [`SensorName`]s, unique within the set; the bytes after a name's first NUL
//! must be NUL.
//!
//! Rotations travel as matrices so that the receiver checks orthonormality (within 1e-5,
//! determinant +1) itself. A decoded update passes every check of [`crate::validate`]; the
//! reserved words and the unused pinhole parameters must be zero (bit pattern). Anything else
//! is a [`WireError`]; decoding never panics. A hello's role is a [`shared::Role`] (its wire
//! numbers are the enum's `u32` values); a hello naming a role that does not subscribe to
//! calibration (the service itself, the replayer) is refused as
//! [`WireError::NotASubscriber`], so a delivery plan can only name a real subscriber.

use std::fmt;

use nalgebra::{Isometry3, Matrix3, Matrix3x4, Translation3};
use shared::{CalibEpoch, Role, TimestampNs};
use zerocopy::byteorder::little_endian::{F64, U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::name::SensorName;
use crate::types::{CalibrationSet, CameraIntrinsics, CameraMount, Distortion, LidarMount, Projection};
use crate::validate::{self, Invalid};

/// First four bytes of every message.
pub const MAGIC: [u8; 4] = *b"EFCL";
/// The wire format version this build speaks (2: a rig of named sensors).
pub const VERSION: u16 = 2;
/// `kind` of a [`HelloBody`].
pub const KIND_HELLO: u16 = 1;
/// `kind` of a calibration update ([`CalibPrefix`] and its entries).
pub const KIND_CALIB_UPDATE: u16 = 2;
/// `camera_model` of a pinhole camera.
pub const CAMERA_PINHOLE: u32 = 1;
/// `camera_model` of a rectified (3×4 projection) camera.
pub const CAMERA_RECTIFIED: u32 = 2;

/// The message header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct MsgHeader {
    /// [`MAGIC`].
    pub magic: [u8; 4],
    /// [`VERSION`].
    pub version: U16,
    /// [`KIND_HELLO`] or [`KIND_CALIB_UPDATE`].
    pub kind: U16,
    /// Bytes after the header.
    pub body_len: U32,
    /// Zero.
    pub reserved: U32,
}

/// A subscriber's hello.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct HelloBody {
    /// [`Role`] as `u32`.
    pub role: U32,
    /// Zero.
    pub reserved: U32,
}

/// The fixed start of a calibration update's body.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct CalibPrefix {
    /// The epoch, ≥ 1.
    pub epoch: U64,
    /// Pipeline time from which frames carry it.
    pub valid_from_ns: U64,
    /// Camera entries that follow, 1..=[`validate::MAX_CAMERAS`].
    pub cameras: U16,
    /// Lidar entries after the cameras, 1..=[`validate::MAX_LIDARS`].
    pub lidars: U16,
    /// Zero.
    pub reserved: U32,
}

/// One camera on the wire.
#[derive(Clone, Copy, Debug, PartialEq, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct CameraEntry {
    /// The name, NUL-padded.
    pub name: [u8; 32],
    /// [`CAMERA_PINHOLE`] or [`CAMERA_RECTIFIED`].
    pub camera_model: U32,
    /// Image width, pixels.
    pub width: U32,
    /// Image height, pixels.
    pub height: U32,
    /// Zero.
    pub reserved: U32,
    /// Pinhole: fx fy cx cy k1 k2 p1 p2 k3 0 0 0. Rectified: the 3×4 matrix, row-major.
    pub camera_params: [F64; 12],
    /// Camera optical → vehicle rotation, row-major.
    pub rotation: [F64; 9],
    /// Camera optical → vehicle translation, metres.
    pub translation: [F64; 3],
}

/// One lidar on the wire.
#[derive(Clone, Copy, Debug, PartialEq, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct LidarEntry {
    /// The name, NUL-padded.
    pub name: [u8; 32],
    /// Lidar → vehicle rotation, row-major.
    pub rotation: [F64; 9],
    /// Lidar → vehicle translation, metres.
    pub translation: [F64; 3],
}

/// Size of [`MsgHeader`].
pub const HEADER_LEN: usize = size_of::<MsgHeader>();
/// Size of [`HelloBody`].
pub const HELLO_BODY_LEN: usize = size_of::<HelloBody>();
/// Size of [`CalibPrefix`].
pub const PREFIX_LEN: usize = size_of::<CalibPrefix>();
/// Size of a [`CameraEntry`].
pub const CAMERA_ENTRY_LEN: usize = size_of::<CameraEntry>();
/// Size of a [`LidarEntry`].
pub const LIDAR_ENTRY_LEN: usize = size_of::<LidarEntry>();
/// A whole hello message.
pub const HELLO_LEN: usize = HEADER_LEN + HELLO_BODY_LEN;

/// Body bytes of an update with `cameras` cameras and `lidars` lidars.
#[must_use]
pub const fn calib_body_len(cameras: usize, lidars: usize) -> usize {
    PREFIX_LEN + cameras * CAMERA_ENTRY_LEN + lidars * LIDAR_ENTRY_LEN
}

/// A whole update message of a one-camera, one-lidar rig.
pub const UPDATE_LEN: usize = HEADER_LEN + calib_body_len(1, 1);
/// Largest valid message (a full rig); receive buffers are bigger so oversize packets are
/// detected.
pub const MAX_MESSAGE_LEN: usize = HEADER_LEN + calib_body_len(validate::MAX_CAMERAS, validate::MAX_LIDARS);

const _: () = assert!(HEADER_LEN == 16);
const _: () = assert!(HELLO_BODY_LEN == 8);
const _: () = assert!(PREFIX_LEN == 24 && CAMERA_ENTRY_LEN == 240 && LIDAR_ENTRY_LEN == 128);
const _: () = assert!(std::mem::align_of::<MsgHeader>() == 1 && std::mem::align_of::<CameraEntry>() == 1);
const _: () = assert!(std::mem::offset_of!(CameraEntry, camera_params) == 48);
const _: () = assert!(std::mem::offset_of!(CameraEntry, rotation) == 144);
const _: () = assert!(std::mem::offset_of!(CameraEntry, translation) == 216);
const _: () = assert!(std::mem::offset_of!(LidarEntry, rotation) == 32);
const _: () = assert!(std::mem::offset_of!(LidarEntry, translation) == 104);

/// A calibration set as its `CalibUpdate` bytes: the serde form of [`CalibrationSet`]
/// (every `f64` bit for bit, so a set survives JSON unchanged), checked on the way back in.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct EncodedSet(Vec<u8>);

impl From<CalibrationSet> for EncodedSet {
    fn from(set: CalibrationSet) -> Self {
        Self(encode_update(&set))
    }
}

impl TryFrom<EncodedSet> for CalibrationSet {
    type Error = String;

    fn try_from(e: EncodedSet) -> Result<Self, Self::Error> {
        match decode(&e.0) {
            Ok(Message::Update(set)) => Ok(set),
            Ok(Message::Hello(_)) => Err("a hello, not a calibration set".into()),
            Err(err) => Err(err.to_string()),
        }
    }
}

/// A decoded message.
#[derive(Clone, Debug, PartialEq)]
#[allow(clippy::large_enum_variant)] // short-lived; boxing would cost an allocation per update
pub enum Message {
    /// A subscriber introduces itself: always a role that
    /// [subscribes to calibration](Role::subscribes_to_calibration).
    Hello(Role),
    /// A calibration epoch, checked.
    Update(CalibrationSet),
}

/// Why bytes are not a valid message.
#[derive(Clone, Debug, PartialEq)]
pub enum WireError {
    /// Fewer bytes than a header.
    TooShort(usize),
    /// Larger than any message (the packet was cut by the receive buffer).
    Oversize(usize),
    /// Wrong magic.
    BadMagic([u8; 4]),
    /// A version this build does not speak.
    UnsupportedVersion(u16),
    /// An unknown `kind`.
    UnknownKind(u16),
    /// `body_len` disagrees with the kind or with the packet.
    BadLength {
        /// The kind's body size.
        expected: usize,
        /// `body_len` from the header.
        declared: usize,
        /// Body bytes present.
        actual: usize,
    },
    /// A reserved word (or an unused parameter) is not zero.
    ReservedNotZero(&'static str),
    /// A hello names no known role.
    UnknownRole(u32),
    /// A hello names a role that does not subscribe to calibration
    /// ([`Role::subscribes_to_calibration`]): the service itself, or the replayer.
    NotASubscriber(Role),
    /// An update's sensor counts are out of range.
    SensorCount {
        /// Cameras it declares.
        cameras: u16,
        /// Lidars it declares.
        lidars: u16,
    },
    /// A sensor name is not a [`SensorName`].
    BadName(String),
    /// An unknown camera model.
    UnknownCameraModel(u32),
    /// The calibration fails a check.
    Invalid(Invalid),
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooShort(n) => {
                write!(f, "message of {n} bytes is shorter than the {HEADER_LEN}-byte header")
            }
            Self::Oversize(n) => write!(f, "message of {n} bytes is larger than any valid message"),
            Self::BadMagic(m) => write!(f, "bad magic {m:02x?}"),
            Self::UnsupportedVersion(v) => {
                write!(f, "unsupported wire version {v} (this build speaks {VERSION})")
            }
            Self::UnknownKind(k) => write!(f, "unknown message kind {k}"),
            Self::BadLength { expected, declared, actual } => {
                write!(
                    f,
                    "bad body length: kind needs {expected}, header says {declared}, packet has {actual}"
                )
            }
            Self::ReservedNotZero(what) => write!(f, "{what} is not zero"),
            Self::UnknownRole(r) => write!(f, "unknown role {r}"),
            Self::NotASubscriber(r) => write!(f, "role {r} does not subscribe to calibration"),
            Self::SensorCount { cameras, lidars } => write!(
                f,
                "{cameras} cameras and {lidars} lidars (expected 1..={} and 1..={})",
                validate::MAX_CAMERAS,
                validate::MAX_LIDARS
            ),
            Self::BadName(why) => write!(f, "{why}"),
            Self::UnknownCameraModel(m) => write!(f, "unknown camera model {m}"),
            Self::Invalid(inv) => write!(f, "invalid calibration: {inv}"),
        }
    }
}

impl std::error::Error for WireError {}

impl From<Invalid> for WireError {
    fn from(v: Invalid) -> Self {
        Self::Invalid(v)
    }
}

fn header(kind: u16, body_len: usize) -> MsgHeader {
    MsgHeader {
        magic: MAGIC,
        version: U16::new(VERSION),
        kind: U16::new(kind),
        body_len: U32::new(u32::try_from(body_len).unwrap_or(u32::MAX)),
        reserved: U32::ZERO,
    }
}

/// Encodes a hello.
#[must_use]
pub fn encode_hello(role: Role) -> [u8; HELLO_LEN] {
    let mut out = [0u8; HELLO_LEN];
    out[..HEADER_LEN].copy_from_slice(header(KIND_HELLO, HELLO_BODY_LEN).as_bytes());
    out[HEADER_LEN..]
        .copy_from_slice(HelloBody { role: U32::new(role as u32), reserved: U32::ZERO }.as_bytes());
    out
}

fn f64s<const N: usize>(v: impl IntoIterator<Item = f64>) -> [F64; N] {
    let mut out = [F64::ZERO; N];
    for (o, x) in out.iter_mut().zip(v) {
        *o = F64::new(x);
    }
    out
}

fn rotation_rows(iso: &Isometry3<f64>) -> [F64; 9] {
    let m = iso.rotation.to_rotation_matrix().into_inner();
    f64s((0..3).flat_map(|i| (0..3).map(move |j| m[(i, j)])))
}

fn name_bytes(name: &SensorName) -> [u8; 32] {
    let mut out = [0u8; 32];
    out[..name.as_str().len()].copy_from_slice(name.as_str().as_bytes());
    out
}

fn camera_entry(c: &CameraMount) -> CameraEntry {
    let (model, width, height, params) = match c.projection {
        Projection::Pinhole(k) => {
            let d = k.distortion;
            (CAMERA_PINHOLE, k.width, k.height, f64s([k.fx, k.fy, k.cx, k.cy, d.k1, d.k2, d.p1, d.p2, d.k3]))
        }
        Projection::Rectified { p, width, height } => {
            (CAMERA_RECTIFIED, width, height, f64s((0..3).flat_map(|i| (0..4).map(move |j| p[(i, j)]))))
        }
    };
    CameraEntry {
        name: name_bytes(&c.name),
        camera_model: U32::new(model),
        width: U32::new(width),
        height: U32::new(height),
        reserved: U32::ZERO,
        camera_params: params,
        rotation: rotation_rows(&c.to_vehicle),
        translation: translation(&c.to_vehicle),
    }
}

fn translation(iso: &Isometry3<f64>) -> [F64; 3] {
    f64s(iso.translation.vector.iter().copied())
}

/// Encodes a calibration update (header + body). Does not check the set: the service checks
/// every epoch before it encodes it.
#[must_use]
pub fn encode_update(set: &CalibrationSet) -> Vec<u8> {
    let (nc, nl) = (set.cameras.len(), set.lidars.len());
    let body_len = calib_body_len(nc, nl);
    let mut out = Vec::with_capacity(HEADER_LEN + body_len);
    out.extend_from_slice(header(KIND_CALIB_UPDATE, body_len).as_bytes());
    let prefix = CalibPrefix {
        epoch: U64::new(set.epoch.0),
        valid_from_ns: U64::new(set.valid_from.0),
        cameras: U16::new(u16::try_from(nc).unwrap_or(u16::MAX)),
        lidars: U16::new(u16::try_from(nl).unwrap_or(u16::MAX)),
        reserved: U32::ZERO,
    };
    out.extend_from_slice(prefix.as_bytes());
    for c in &set.cameras {
        out.extend_from_slice(camera_entry(c).as_bytes());
    }
    for l in &set.lidars {
        let e = LidarEntry {
            name: name_bytes(&l.name),
            rotation: rotation_rows(&l.to_vehicle),
            translation: translation(&l.to_vehicle),
        };
        out.extend_from_slice(e.as_bytes());
    }
    out
}

fn isometry(prefix: &str, rot: &[F64; 9], trans: &[F64; 3]) -> Result<Isometry3<f64>, Invalid> {
    let m = Matrix3::from_fn(|i, j| rot[i * 3 + j].get());
    let q = validate::rotation_from_matrix(&format!("{prefix}.rotation"), &m)?;
    let [x, y, z] = trans.map(F64::get);
    for v in [x, y, z] {
        validate::finite(&format!("{prefix}.translation"), v)?;
    }
    Ok(Isometry3::from_parts(Translation3::new(x, y, z), q))
}

fn decode_name(bytes: &[u8; 32]) -> Result<SensorName, WireError> {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    if bytes[end..].iter().any(|&b| b != 0) {
        return Err(WireError::ReservedNotZero("sensor name padding"));
    }
    let text = std::str::from_utf8(&bytes[..end])
        .map_err(|_| WireError::BadName("sensor name is not UTF-8".into()))?;
    SensorName::new(text).map_err(|e| WireError::BadName(e.0))
}

fn decode_camera(e: &CameraEntry, field: &str) -> Result<CameraMount, WireError> {
    if e.reserved.get() != 0 {
        return Err(WireError::ReservedNotZero("camera entry reserved word"));
    }
    let p: [f64; 12] = e.camera_params.map(F64::get);
    let (width, height) = (e.width.get(), e.height.get());
    let projection = match e.camera_model.get() {
        CAMERA_PINHOLE => {
            if p[9..].iter().any(|v| v.to_bits() != 0) {
                return Err(WireError::ReservedNotZero("unused pinhole parameter"));
            }
            Projection::Pinhole(CameraIntrinsics {
                fx: p[0],
                fy: p[1],
                cx: p[2],
                cy: p[3],
                width,
                height,
                distortion: Distortion { k1: p[4], k2: p[5], p1: p[6], p2: p[7], k3: p[8] },
            })
        }
        CAMERA_RECTIFIED => Projection::Rectified { p: Matrix3x4::from_row_slice(&p), width, height },
        other => return Err(WireError::UnknownCameraModel(other)),
    };
    Ok(CameraMount {
        name: decode_name(&e.name)?,
        projection,
        to_vehicle: isometry(field, &e.rotation, &e.translation)?,
    })
}

/// Decodes and checks a calibration body (the bytes after the header, exactly).
///
/// # Errors
/// [`WireError`] for sensor counts out of range or a body of another length, an unknown
/// camera model, a bad name, non-zero reserved bytes, or a calibration that fails a check.
pub fn decode_calib_body(body: &[u8]) -> Result<CalibrationSet, WireError> {
    let (prefix, mut rest) = CalibPrefix::read_from_prefix(body).map_err(|_| WireError::BadLength {
        expected: PREFIX_LEN,
        declared: body.len(),
        actual: body.len(),
    })?;
    let (cameras, lidars) = (prefix.cameras.get(), prefix.lidars.get());
    let (nc, nl) = (usize::from(cameras), usize::from(lidars));
    if !(1..=validate::MAX_CAMERAS).contains(&nc) || !(1..=validate::MAX_LIDARS).contains(&nl) {
        return Err(WireError::SensorCount { cameras, lidars });
    }
    let expected = calib_body_len(nc, nl);
    if body.len() != expected {
        return Err(WireError::BadLength { expected, declared: body.len(), actual: body.len() });
    }
    if prefix.reserved.get() != 0 {
        return Err(WireError::ReservedNotZero("update reserved word"));
    }
    let single = nc == 1 && nl == 1;
    let mut set = CalibrationSet {
        epoch: CalibEpoch(prefix.epoch.get()),
        valid_from: TimestampNs(prefix.valid_from_ns.get()),
        cameras: Vec::with_capacity(nc),
        lidars: Vec::with_capacity(nl),
    };
    for i in 0..nc {
        let (e, r) = CameraEntry::read_from_prefix(rest).map_err(|_| WireError::TooShort(body.len()))?;
        rest = r;
        let field = if single { "camera_to_vehicle".to_string() } else { format!("cameras[{i}].to_vehicle") };
        set.cameras.push(decode_camera(&e, &field)?);
    }
    for i in 0..nl {
        let (e, r) = LidarEntry::read_from_prefix(rest).map_err(|_| WireError::TooShort(body.len()))?;
        rest = r;
        let field = if single { "lidar_to_vehicle".to_string() } else { format!("lidars[{i}].to_vehicle") };
        let to_vehicle = isometry(&field, &e.rotation, &e.translation)?;
        set.lidars.push(LidarMount { name: decode_name(&e.name)?, to_vehicle });
    }
    validate::check_set(&set)?;
    Ok(set)
}

/// Bytes of the message at the start of `bytes` as its header declares them (header +
/// `body_len`), for framings that put something after a message. `None` without a header.
#[must_use]
pub fn declared_len(bytes: &[u8]) -> Option<usize> {
    let (h, _) = MsgHeader::read_from_prefix(bytes).ok()?;
    Some(HEADER_LEN + h.body_len.get() as usize)
}

/// Decodes one message, checking its header, its length and (for an update) every value.
///
/// # Errors
/// [`WireError`]; never panics, whatever the bytes.
pub fn decode(bytes: &[u8]) -> Result<Message, WireError> {
    let (h, body) = MsgHeader::read_from_prefix(bytes).map_err(|_| WireError::TooShort(bytes.len()))?;
    if h.magic != MAGIC {
        return Err(WireError::BadMagic(h.magic));
    }
    if h.version.get() != VERSION {
        return Err(WireError::UnsupportedVersion(h.version.get()));
    }
    let declared = h.body_len.get() as usize;
    let expected = match h.kind.get() {
        KIND_HELLO => HELLO_BODY_LEN,
        // Checked against the counts by `decode_calib_body`; here only that the header and
        // the packet agree, within the largest update.
        KIND_CALIB_UPDATE => declared.min(MAX_MESSAGE_LEN - HEADER_LEN),
        k => return Err(WireError::UnknownKind(k)),
    };
    if declared != expected || body.len() != expected {
        return Err(WireError::BadLength { expected, declared, actual: body.len() });
    }
    if h.reserved.get() != 0 {
        return Err(WireError::ReservedNotZero("header reserved word"));
    }
    match h.kind.get() {
        KIND_HELLO => {
            let hello = HelloBody::read_from_bytes(body).map_err(|_| WireError::TooShort(bytes.len()))?;
            if hello.reserved.get() != 0 {
                return Err(WireError::ReservedNotZero("hello reserved word"));
            }
            let r = hello.role.get();
            match Role::from_u32(r) {
                Some(role) if role.subscribes_to_calibration() => Ok(Message::Hello(role)),
                Some(role) => Err(WireError::NotASubscriber(role)),
                None => Err(WireError::UnknownRole(r)),
            }
        }
        _ => decode_calib_body(body).map(Message::Update),
    }
}

/// Decodes a message that must be a calibration update.
///
/// # Errors
/// [`WireError`]; a hello is [`WireError::UnknownKind`].
pub fn decode_update(bytes: &[u8]) -> Result<CalibrationSet, WireError> {
    match decode(bytes)? {
        Message::Update(set) => Ok(set),
        Message::Hello(_) => Err(WireError::UnknownKind(KIND_HELLO)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibration_sets_survive_json_bit_for_bit_and_are_checked_coming_back() {
        let set = crate::file::default_rig();
        let json = serde_json::to_string(&set).unwrap();
        let back: CalibrationSet = serde_json::from_str(&json).unwrap();
        assert_eq!(back, set);
        // A scribbled byte in the encoding is refused like a bad message.
        let mut bytes: Vec<u8> = serde_json::from_str(&json).unwrap();
        bytes[0] ^= 0xFF;
        let bad = serde_json::to_string(&bytes).unwrap();
        assert!(serde_json::from_str::<CalibrationSet>(&bad).is_err());
    }
    use crate::file::default_rig;

    fn rectified() -> CalibrationSet {
        let mut set = default_rig();
        set.epoch = CalibEpoch(9);
        *set.camera_mut() = Projection::Rectified {
            p: Matrix3x4::new(721.5, 0.0, 609.5, 44.8, 0.0, 721.5, 172.8, 0.2, 0.0, 0.0, 1.0, 0.003),
            width: 1242,
            height: 375,
        };
        set
    }

    #[test]
    fn round_trip() {
        for set in [default_rig(), rectified()] {
            let bytes = encode_update(&set);
            let Message::Update(back) = decode(&bytes).unwrap() else { panic!() };
            assert_eq!(back.epoch, set.epoch);
            assert_eq!(back.valid_from, set.valid_from);
            assert_eq!(back.camera(), set.camera());
            for (a, b) in [
                (back.camera_to_vehicle(), set.camera_to_vehicle()),
                (back.lidar_to_vehicle(), set.lidar_to_vehicle()),
            ] {
                assert!(a.rotation.angle_to(&b.rotation) < 1e-12);
                assert_eq!(a.translation, b.translation);
            }
            // Re-encoding is stable.
            assert_eq!(encode_update(&back)[..], bytes[..]);
        }
        for role in Role::ALL.into_iter().filter(|r| r.subscribes_to_calibration()) {
            assert_eq!(decode(&encode_hello(role)).unwrap(), Message::Hello(role));
        }
    }

    #[test]
    fn a_surround_rig_round_trips_and_duplicate_names_are_refused() {
        let base = default_rig();
        let mut set = base.clone();
        for (i, name) in ["front", "left", "rear"].into_iter().enumerate() {
            let mut c = base.cameras[0].clone();
            c.name = SensorName::new(name).unwrap();
            c.to_vehicle.translation.vector.y += i as f64;
            set.cameras.push(c);
        }
        let bytes = encode_update(&set);
        assert_eq!(bytes.len(), HEADER_LEN + calib_body_len(4, 1));
        assert_eq!(declared_len(&bytes), Some(bytes.len()));
        let back = decode_update(&bytes).unwrap();
        assert_eq!(encode_update(&back), bytes);
        assert_eq!(back.cameras.len(), 4);
        assert_eq!(back.camera_named("rear").unwrap().to_vehicle.translation.vector.y, 2.0);
        set.cameras[2].name = SensorName::camera();
        assert!(matches!(decode(&encode_update(&set)), Err(WireError::Invalid(ref i)) if i.field == "names"));
    }

    #[test]
    fn rejects_each_kind_of_damage() {
        let good = encode_update(&default_rig());
        assert!(matches!(decode(&good[..10]), Err(WireError::TooShort(10))));
        assert!(matches!(decode(&good[..UPDATE_LEN - 1]), Err(WireError::BadLength { .. })));
        let mut long = good.to_vec();
        long.push(0);
        assert!(matches!(decode(&long), Err(WireError::BadLength { .. })));
        let mut m = good.clone();
        m[0] = b'X';
        assert!(matches!(decode(&m), Err(WireError::BadMagic(_))));
        let mut m = good.clone();
        m[4] = 1;
        assert!(matches!(decode(&m), Err(WireError::UnsupportedVersion(1))));
        let mut m = good.clone();
        m[6] = 9;
        assert!(matches!(decode(&m), Err(WireError::UnknownKind(9))));
        let mut m = good.clone();
        m[HEADER_LEN + 16] = 9;
        assert!(matches!(decode(&m), Err(WireError::SensorCount { cameras: 9, lidars: 1 })));
        let mut m = good.clone();
        m[HEADER_LEN + 16] = 2;
        assert!(matches!(decode(&m), Err(WireError::BadLength { .. })));
        let mut m = good.clone();
        m[HEADER_LEN + 24 + 31] = b'x';
        assert!(matches!(decode(&m), Err(WireError::ReservedNotZero(_))));
        let mut m = good.clone();
        m[HEADER_LEN + 24] = b'C';
        assert!(matches!(decode(&m), Err(WireError::BadName(_))));
        let mut m = good.clone();
        m[HEADER_LEN..HEADER_LEN + 8].fill(0);
        assert!(matches!(decode(&m), Err(WireError::Invalid(ref i)) if i.field == "epoch"));
        // Shear the lidar rotation.
        let lidar_rot = HEADER_LEN + 24 + 240 + 32;
        let mut m = good.clone();
        m[lidar_rot + 8..lidar_rot + 16].copy_from_slice(&0.1f64.to_le_bytes());
        assert!(
            matches!(decode(&m), Err(WireError::Invalid(ref i)) if i.field == "lidar_to_vehicle.rotation")
        );
        // NaN focal length.
        let mut m = good;
        m[HEADER_LEN + 72..HEADER_LEN + 80].copy_from_slice(&f64::NAN.to_le_bytes());
        assert!(matches!(decode(&m), Err(WireError::Invalid(ref i)) if i.field == "camera.fx"));
        let mut h = encode_hello(Role::Fusion);
        h[HEADER_LEN] = 77;
        assert!(matches!(decode(&h), Err(WireError::UnknownRole(77))));
        // Known roles that do not subscribe are refused by name, not as unknown numbers.
        for role in [Role::Calib, Role::Replayer] {
            assert_eq!(decode(&encode_hello(role)), Err(WireError::NotASubscriber(role)));
        }
    }
}
