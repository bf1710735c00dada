//! Writes hand-made ROS 2 bags for the log tests (any layout, any frame names).
#![allow(dead_code, clippy::too_many_arguments)]

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use mcap::records::MessageHeader;
use serde::Serialize;

#[derive(Serialize, Clone)]
pub struct Time {
    pub sec: i32,
    pub nanosec: u32,
}

pub fn time(ns: u64) -> Time {
    Time { sec: (ns / 1_000_000_000) as i32, nanosec: (ns % 1_000_000_000) as u32 }
}

#[derive(Serialize, Clone)]
pub struct Header {
    pub stamp: Time,
    pub frame_id: String,
}

pub fn header(ns: u64, frame: &str) -> Header {
    Header { stamp: time(ns), frame_id: frame.into() }
}

#[derive(Serialize, Clone)]
pub struct PointField {
    pub name: String,
    pub offset: u32,
    pub datatype: u8,
    pub count: u32,
}

pub fn field(name: &str, offset: u32, datatype: u8) -> PointField {
    PointField { name: name.into(), offset, datatype, count: 1 }
}

#[derive(Serialize, Clone)]
pub struct PointCloud2 {
    pub header: Header,
    pub height: u32,
    pub width: u32,
    pub fields: Vec<PointField>,
    pub is_bigendian: bool,
    pub point_step: u32,
    pub row_step: u32,
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
    pub is_dense: bool,
}

#[derive(Serialize, Clone)]
pub struct Image {
    pub header: Header,
    pub height: u32,
    pub width: u32,
    pub encoding: String,
    pub is_bigendian: u8,
    pub step: u32,
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

#[derive(Serialize, Clone)]
pub struct Roi {
    pub x_offset: u32,
    pub y_offset: u32,
    pub height: u32,
    pub width: u32,
    pub do_rectify: bool,
}

#[derive(Serialize, Clone)]
pub struct CameraInfo {
    pub header: Header,
    pub height: u32,
    pub width: u32,
    pub distortion_model: String,
    pub d: Vec<f64>,
    pub k: [f64; 9],
    pub r: [f64; 9],
    pub p: [f64; 12],
    pub binning_x: u32,
    pub binning_y: u32,
    pub roi: Roi,
}

pub fn camera_info(
    ns: u64,
    frame: &str,
    w: u32,
    h: u32,
    d: Vec<f64>,
    k: [f64; 9],
    r: [f64; 9],
    p: [f64; 12],
) -> CameraInfo {
    CameraInfo {
        header: header(ns, frame),
        height: h,
        width: w,
        distortion_model: "plumb_bob".into(),
        d,
        k,
        r,
        p,
        binning_x: 0,
        binning_y: 0,
        roi: Roi { x_offset: 0, y_offset: 0, height: 0, width: 0, do_rectify: false },
    }
}

#[derive(Serialize, Clone)]
pub struct TransformStamped {
    pub header: Header,
    pub child_frame_id: String,
    /// translation x y z, rotation x y z w
    pub transform: ([f64; 3], [f64; 4]),
}

#[derive(Serialize, Clone)]
pub struct TfMessage {
    pub transforms: Vec<TransformStamped>,
}

pub fn tf(ns: u64, parent: &str, child: &str, t: [f64; 3], q_xyzw: [f64; 4]) -> TransformStamped {
    TransformStamped { header: header(ns, parent), child_frame_id: child.into(), transform: (t, q_xyzw) }
}

/// The static transform of most test bags: camera `cam` ← lidar `velo`, the optical rotation
/// and no offset, unstamped.
pub fn static_tf() -> TfMessage {
    TfMessage { transforms: vec![tf(0, "cam", "velo", [0.0; 3], LIDAR_TO_OPTICAL_Q)] }
}

pub const IMAGE: &str = "sensor_msgs/msg/Image";
pub const CLOUD: &str = "sensor_msgs/msg/PointCloud2";
pub const INFO: &str = "sensor_msgs/msg/CameraInfo";
pub const TF: &str = "tf2_msgs/msg/TFMessage";

/// A bag being written: channels are made on first use.
pub struct Bag {
    w: mcap::Writer<BufWriter<File>>,
    channels: BTreeMap<String, u16>,
}

impl Bag {
    pub fn create(path: &Path) -> Self {
        let w = mcap::WriteOptions::new()
            .profile("ros2")
            .compression(None)
            .create(BufWriter::new(File::create(path).unwrap()))
            .unwrap();
        Self { w, channels: BTreeMap::new() }
    }

    pub fn raw(&mut self, topic: &str, schema: &str, log_ns: u64, data: &[u8]) {
        let id = match self.channels.get(topic) {
            Some(&id) => id,
            None => {
                let s = self.w.add_schema(schema, "ros2msg", b"").unwrap();
                let id = self.w.add_channel(s, topic, "cdr", &BTreeMap::new()).unwrap();
                self.channels.insert(topic.into(), id);
                id
            }
        };
        self.w
            .write_to_known_channel(
                &MessageHeader { channel_id: id, sequence: 0, log_time: log_ns, publish_time: log_ns },
                data,
            )
            .unwrap();
    }

    pub fn put<T: Serialize>(&mut self, topic: &str, schema: &str, log_ns: u64, msg: &T) {
        let data = cdr::serialize::<_, _, cdr::CdrLe>(msg, cdr::Infinite).unwrap();
        self.raw(topic, schema, log_ns, &data);
    }

    /// Big-endian CDR encapsulation.
    pub fn put_be<T: Serialize>(&mut self, topic: &str, schema: &str, log_ns: u64, msg: &T) {
        let data = cdr::serialize::<_, _, cdr::CdrBe>(msg, cdr::Infinite).unwrap();
        self.raw(topic, schema, log_ns, &data);
    }

    pub fn finish(mut self) {
        self.w.finish().unwrap();
    }

    /// A bag of one frame at `ns`: [`static_tf`], `info`, a 2-point cloud and a 4×3 image.
    pub fn one_frame(path: &Path, ns: u64, info: &CameraInfo) {
        let mut b = Self::create(path);
        b.put("/tf_static", TF, ns, &static_tf());
        b.put("/cam/camera_info", INFO, ns, info);
        b.put("/velo/points", CLOUD, ns, &simple_cloud(ns, "velo", 2));
        b.put("/cam/image", IMAGE, ns, &simple_image(ns, "cam"));
        b.finish();
    }
}

/// A 4×3 rgb8 image whose pixel (x, y) is (10x + y, 100 + x, 200 + y).
pub fn rgb_pixels() -> Vec<[u8; 3]> {
    let mut v = Vec::new();
    for y in 0..3u8 {
        for x in 0..4u8 {
            v.push([10 * x + y, 100 + x, 200 + y]);
        }
    }
    v
}

/// A simple cloud of `n` points with x, y, z, intensity FLOAT32 (16 bytes a point).
pub fn simple_cloud(ns: u64, frame: &str, n: u32) -> PointCloud2 {
    let mut data = Vec::new();
    for i in 0..n {
        for v in [5.0 + i as f32, 0.1 * i as f32, -0.2, 0.5] {
            data.extend_from_slice(&v.to_le_bytes());
        }
    }
    PointCloud2 {
        header: header(ns, frame),
        height: 1,
        width: n,
        fields: vec![field("x", 0, 7), field("y", 4, 7), field("z", 8, 7), field("intensity", 12, 7)],
        is_bigendian: false,
        point_step: 16,
        row_step: 16 * n,
        data,
        is_dense: true,
    }
}

pub fn simple_image(ns: u64, frame: &str) -> Image {
    Image {
        header: header(ns, frame),
        height: 3,
        width: 4,
        encoding: "rgb8".into(),
        is_bigendian: 0,
        step: 12,
        data: rgb_pixels().concat(),
    }
}

pub const K: [f64; 9] = [10.0, 0.0, 2.0, 0.0, 10.0, 1.5, 0.0, 0.0, 1.0];
pub const I3: [f64; 9] = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0];
pub const P: [f64; 12] = [10.0, 0.0, 2.0, 0.0, 0.0, 10.0, 1.5, 0.0, 0.0, 0.0, 1.0, 0.0];
/// Lidar (x fwd, y left, z up) to camera optical (x right, y down, z fwd): a rotation.
pub const LIDAR_TO_OPTICAL_Q: [f64; 4] = [0.5, -0.5, 0.5, 0.5];
