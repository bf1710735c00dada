//! The ROS 2 message schemas and CDR message types [`super::McapRecorder`] writes.

use serde::Serialize;

pub(super) const SEP: &str =
    "================================================================================\n";
pub(crate) const HEADER_DEPS: &str =
    "================================================================================
MSG: std_msgs/Header
builtin_interfaces/Time stamp
string frame_id
================================================================================
MSG: builtin_interfaces/Time
int32 sec
uint32 nanosec
";

pub(super) fn schema_point_cloud2() -> String {
    format!(
        "std_msgs/Header header
uint32 height
uint32 width
sensor_msgs/PointField[] fields
bool is_bigendian
uint32 point_step
uint32 row_step
uint8[] data
bool is_dense
{HEADER_DEPS}{SEP}MSG: sensor_msgs/PointField
uint8 INT8=1
uint8 UINT8=2
uint8 INT16=3
uint8 UINT16=4
uint8 INT32=5
uint8 UINT32=6
uint8 FLOAT32=7
uint8 FLOAT64=8
string name
uint32 offset
uint8 datatype
uint32 count
"
    )
}

pub(super) fn schema_image() -> String {
    format!(
        "std_msgs/Header header
uint32 height
uint32 width
string encoding
uint8 is_bigendian
uint32 step
uint8[] data
{HEADER_DEPS}"
    )
}

pub(super) fn schema_camera_info() -> String {
    format!(
        "std_msgs/Header header
uint32 height
uint32 width
string distortion_model
float64[] d
float64[9] k
float64[9] r
float64[12] p
uint32 binning_x
uint32 binning_y
sensor_msgs/RegionOfInterest roi
{HEADER_DEPS}{SEP}MSG: sensor_msgs/RegionOfInterest
uint32 x_offset
uint32 y_offset
uint32 height
uint32 width
bool do_rectify
"
    )
}

pub(super) fn schema_tf() -> String {
    format!(
        "geometry_msgs/TransformStamped[] transforms
{SEP}MSG: geometry_msgs/TransformStamped
std_msgs/Header header
string child_frame_id
geometry_msgs/Transform transform
{HEADER_DEPS}{SEP}MSG: geometry_msgs/Transform
geometry_msgs/Vector3 translation
geometry_msgs/Quaternion rotation
{SEP}MSG: geometry_msgs/Vector3
float64 x
float64 y
float64 z
{SEP}MSG: geometry_msgs/Quaternion
float64 x
float64 y
float64 z
float64 w
"
    )
}

pub(super) fn schema_frame_epoch() -> String {
    format!(
        "# The calibration epoch an epochfuse camera or lidar frame was captured under.
std_msgs/Header header  # the frame's stamp and frame_id
string topic            # the topic of the frame's message
uint64 seq              # the frame's sequence number in its stream
uint64 epoch            # the calibration epoch (1, 2, ...)
{HEADER_DEPS}"
    )
}

#[derive(Serialize)]
pub(crate) struct Time {
    pub(super) sec: i32,
    pub(super) nanosec: u32,
}

#[derive(Serialize)]
pub(crate) struct Header<'a> {
    pub(super) stamp: Time,
    pub(super) frame_id: &'a str,
}

#[derive(Serialize)]
pub(super) struct PointField {
    pub(super) name: &'static str,
    pub(super) offset: u32,
    pub(super) datatype: u8,
    pub(super) count: u32,
}

#[derive(Serialize)]
pub(super) struct PointCloud2<'a> {
    pub(super) header: Header<'a>,
    pub(super) height: u32,
    pub(super) width: u32,
    pub(super) fields: &'a [PointField],
    pub(super) is_bigendian: bool,
    pub(super) point_step: u32,
    pub(super) row_step: u32,
    #[serde(with = "serde_bytes")]
    pub(super) data: &'a [u8],
    pub(super) is_dense: bool,
}

#[derive(Serialize)]
pub(super) struct Image<'a> {
    pub(super) header: Header<'a>,
    pub(super) height: u32,
    pub(super) width: u32,
    pub(super) encoding: &'a str,
    pub(super) is_bigendian: u8,
    pub(super) step: u32,
    #[serde(with = "serde_bytes")]
    pub(super) data: &'a [u8],
}

#[derive(Serialize)]
pub(super) struct RegionOfInterest {
    pub(super) x_offset: u32,
    pub(super) y_offset: u32,
    pub(super) height: u32,
    pub(super) width: u32,
    pub(super) do_rectify: bool,
}

#[derive(Serialize)]
pub(super) struct CameraInfo<'a> {
    pub(super) header: Header<'a>,
    pub(super) height: u32,
    pub(super) width: u32,
    pub(super) distortion_model: &'a str,
    pub(super) d: Vec<f64>,
    pub(super) k: [f64; 9],
    pub(super) r: [f64; 9],
    pub(super) p: [f64; 12],
    pub(super) binning_x: u32,
    pub(super) binning_y: u32,
    pub(super) roi: RegionOfInterest,
}

#[derive(Serialize)]
pub(super) struct Vector3 {
    pub(super) x: f64,
    pub(super) y: f64,
    pub(super) z: f64,
}

#[derive(Serialize)]
pub(super) struct QuaternionMsg {
    pub(super) x: f64,
    pub(super) y: f64,
    pub(super) z: f64,
    pub(super) w: f64,
}

#[derive(Serialize)]
pub(super) struct TransformMsg {
    pub(super) translation: Vector3,
    pub(super) rotation: QuaternionMsg,
}

#[derive(Serialize)]
pub(super) struct TransformStamped<'a> {
    pub(super) header: Header<'a>,
    pub(super) child_frame_id: &'a str,
    pub(super) transform: TransformMsg,
}

#[derive(Serialize)]
pub(super) struct TfMessage<'a> {
    pub(super) transforms: Vec<TransformStamped<'a>>,
}

#[derive(Serialize)]
pub(super) struct FrameEpoch<'a> {
    pub(super) header: Header<'a>,
    pub(super) topic: &'a str,
    pub(super) seq: u64,
    pub(super) epoch: u64,
}

pub(super) const POINT_FIELDS: [PointField; 6] = [
    PointField { name: "x", offset: 0, datatype: 7, count: 1 },
    PointField { name: "y", offset: 4, datatype: 7, count: 1 },
    PointField { name: "z", offset: 8, datatype: 7, count: 1 },
    PointField { name: "intensity", offset: 12, datatype: 7, count: 1 },
    PointField { name: "ring", offset: 16, datatype: 4, count: 1 },
    PointField { name: "instance", offset: 20, datatype: 6, count: 1 },
];
