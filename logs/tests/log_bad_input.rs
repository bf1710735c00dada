//! Truncated, corrupted and malformed logs: the valid frames, then a one-line error naming the
//! file and where it broke; never a panic.

mod log_common;

use std::path::{Path, PathBuf};

use calib::{CalibrationSet, CameraIntrinsics, Distortion, Projection};
use log_common::*;
use logs::{LogError, LogFrame, LogSource, McapRecorder};
use nalgebra::{Isometry3, Translation3, UnitQuaternion};
use proptest::prelude::*;
use shared::frames::{ImageHeader, ImageView, PointRecord};
use shared::{CalibEpoch, FrameSeq, TimestampNs};

const MS: u64 = 1_000_000;
const W: usize = 256;
const H: usize = 192;

fn set(epoch: u64, valid_from: u64, x: f64) -> CalibrationSet {
    CalibrationSet::single(
        CalibEpoch(epoch),
        TimestampNs(valid_from),
        Projection::Pinhole(CameraIntrinsics {
            fx: 10.0,
            fy: 10.0,
            cx: 4.0,
            cy: 3.0,
            width: W as u32,
            height: H as u32,
            distortion: Distortion { k1: -0.05, ..Distortion::default() },
        }),
        Isometry3::from_parts(Translation3::new(x, 0.0, 1.0), UnitQuaternion::identity()),
        Isometry3::translation(0.5, 0.0, 1.5),
    )
}

/// A small recording: 8 sweeps and 8 labelled images, a recalibration at 1.4 s.
fn recording(dir: &Path) -> PathBuf {
    let path = dir.join("rec.mcap");
    let mut rec = McapRecorder::create(&path).unwrap();
    let sets = [set(1, 0, 1.0), set(2, 1400 * MS, 1.1)];
    for s in &sets {
        rec.write_calibration(s, s.valid_from).unwrap();
    }
    // 256×192 pixels of noise: frames of ~250 kB that do not compress, so the file has
    // several chunks as a real recording does.
    let mut seed = 0x1234_5678u32;
    let mut noise = move || {
        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (seed >> 24) as u8
    };
    let rgb: Vec<u8> = (0..W * H * 3).map(|_| noise()).collect();
    let labels: Vec<u8> = (0..W * H * 2).map(|_| noise()).collect();
    for i in 0..8u64 {
        let t = 1000 * MS + i * 100 * MS;
        let e = if t >= 1400 * MS { CalibEpoch(2) } else { CalibEpoch(1) };
        let pts: Vec<PointRecord> = (0..40u32)
            .map(|j| PointRecord {
                x: 3.0 + j as f32,
                y: 0.1,
                z: 0.2,
                intensity: 0.5,
                ring: 1,
                reserved: 0,
                instance: j + 1,
            })
            .collect();
        rec.write_lidar(TimestampNs(t), e, FrameSeq(i), &pts).unwrap();
        let v = ImageView {
            header: ImageHeader { width: W as u32, height: H as u32, format: 1, has_labels: 1 },
            rgb: &rgb,
            labels: Some(&labels),
        };
        rec.write_camera(TimestampNs(t + 10 * MS), e, FrameSeq(i), &v).unwrap();
    }
    rec.finish().unwrap();
    path
}

/// Opens and replays; returns the frames before the first error and the error (from open or
/// from the iteration). Checks the error is one line naming the file.
fn replay(path: &Path) -> (Vec<LogFrame>, Option<LogError>) {
    let src = match LogSource::open(path) {
        Ok(s) => s,
        Err(e) => return (Vec::new(), Some(e)),
    };
    let mut frames = Vec::new();
    let mut error = None;
    for f in src.frames().unwrap() {
        match f {
            Ok(f) => {
                assert_eq!(f.to_payload().unwrap().len(), f.payload_len());
                frames.push(f);
            }
            Err(e) => {
                assert!(error.is_none(), "a second error");
                error = Some(e);
            }
        }
    }
    assert_eq!(src.index_error().map(ToString::to_string), error.as_ref().map(ToString::to_string));
    (frames, error)
}

fn check_error(e: &LogError, file: &Path) {
    let s = e.to_string();
    assert!(!s.contains('\n'), "{s}");
    assert!(s.contains(&file.file_name().unwrap().to_string_lossy().to_string()), "{s}");
    if let LogError::Corrupt { .. } = e {
        assert!(s.contains("broken at or before byte"), "{s}");
    }
    if let LogError::BadMessage { .. } = e {
        assert!(s.contains("message #"), "{s}");
    }
}

/// The frames of a damaged copy must be frames of the original, unchanged.
fn check_frames_valid(got: &[LogFrame], original: &[LogFrame]) {
    for f in got {
        let o = original
            .iter()
            .find(|o| o.stream == f.stream && o.stamp == f.stamp)
            .unwrap_or_else(|| panic!("frame {} is not in the original", f.name));
        assert_eq!(o.epoch, f.epoch);
        assert!(o.to_payload().unwrap() == f.to_payload().unwrap(), "{} differs", f.name);
    }
}

/// A recording in `dir`: its bytes and its frames, replayed whole.
fn original(dir: &Path) -> (Vec<u8>, Vec<LogFrame>) {
    let path = recording(dir);
    let (frames, e) = replay(&path);
    assert!(e.is_none(), "{e:?}");
    assert_eq!(frames.len(), 16);
    (std::fs::read(&path).unwrap(), frames)
}

#[test]
fn truncated_recordings_give_valid_frames_then_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let (bytes, orig) = original(dir.path());
    let cut_path = dir.path().join("cut.mcap");
    let mut partial_seen = false;
    for cut in [
        0,
        1,
        7,
        8,
        9,
        20,
        100,
        bytes.len() / 4,
        bytes.len() / 2,
        bytes.len() * 3 / 4,
        bytes.len() - 100,
        bytes.len() - 9,
        bytes.len() - 1,
    ] {
        std::fs::write(&cut_path, &bytes[..cut]).unwrap();
        let (frames, e) = replay(&cut_path);
        let e = e.unwrap_or_else(|| panic!("cut at {cut}: no error"));
        check_error(&e, &cut_path);
        check_frames_valid(&frames, &orig);
        if !frames.is_empty() && frames.len() < orig.len() {
            partial_seen = true;
            assert!(
                matches!(e, LogError::Corrupt { offset, .. } if offset as usize == cut),
                "cut at {cut}: {e}"
            );
        }
        if cut > bytes.len() - 200 {
            assert_eq!(frames.len(), orig.len(), "a cut in the summary keeps every frame");
        }
    }
    assert!(partial_seen, "no cut kept part of the frames");
}

#[test]
fn flipped_bytes_are_detected() {
    let dir = tempfile::tempdir().unwrap();
    let (bytes, orig) = original(dir.path());
    let bad_path = dir.path().join("flipped.mcap");
    let positions: Vec<usize> =
        (0..bytes.len()).step_by(bytes.len() / 150).chain(bytes.len() - 40..bytes.len()).collect();
    for pos in positions {
        let mut b = bytes.clone();
        b[pos] ^= 0x5a;
        std::fs::write(&bad_path, &b).unwrap();
        let (frames, e) = replay(&bad_path);
        let e = e.unwrap_or_else(|| panic!("flip at {pos}: not detected"));
        check_error(&e, &bad_path);
        if pos % 50 == 0 {
            eprintln!("flip at {pos}: {} frames, then: {e}", frames.len());
        }
        check_frames_valid(&frames, &orig);
    }
}

/// Frames of `src`, and the break they end with.
fn frames_of(src: &LogSource) -> (Vec<LogFrame>, Option<String>) {
    let (mut frames, mut error) = (Vec::new(), None);
    for f in src.frames().unwrap() {
        match f {
            Ok(f) => frames.push(f),
            Err(e) => error = Some(e.to_string()),
        }
    }
    (frames, error)
}

/// The saved index written to `dir/log-index.json`, then read back by `LogSource::open_saved`.
fn through_saved(bag: &Path, dir: &Path) -> Result<LogSource, LogError> {
    let bytes = LogSource::open(bag).unwrap().save_index().unwrap().expect("a bag has an index");
    let plan = dir.join("log-index.json");
    std::fs::write(&plan, &bytes).unwrap();
    LogSource::open_saved(bag, &plan, &bytes)
}

#[test]
fn a_saved_index_gives_the_same_log_as_indexing_again() {
    let dir = tempfile::tempdir().unwrap();
    let (bytes, orig) = original(dir.path());
    // Cut where part of the frames is left: the break must come through the saved index too.
    let cut = dir.path().join("cut.mcap");
    let broken = [bytes.len() / 2, bytes.len() * 3 / 4, bytes.len() - 100].into_iter().any(|at| {
        std::fs::write(&cut, &bytes[..at]).unwrap();
        LogSource::open(&cut).is_ok_and(|s| s.index_error().is_some())
    });
    assert!(broken, "no cut left part of the frames");
    // A path through `..`, as a user may give it.
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    for bag in [dir.path().join("rec.mcap"), cut, dir.path().join("sub/../rec.mcap")] {
        let fresh = LogSource::open(&bag).unwrap();
        let saved = through_saved(&bag, dir.path()).unwrap();
        assert_eq!(saved.calibrations(), fresh.calibrations());
        assert_eq!(saved.sensors(), fresh.sensors());
        assert_eq!((saved.start(), saved.duration()), (fresh.start(), fresh.duration()));
        let show = |e: Option<&LogError>| e.map(ToString::to_string);
        assert_eq!(show(saved.index_error()), show(fresh.index_error()));
        let ((got, got_break), (want, want_break)) = (frames_of(&saved), frames_of(&fresh));
        assert_eq!(got_break, want_break, "{}", bag.display());
        assert_eq!(got.len(), want.len(), "{}", bag.display());
        check_frames_valid(&got, &orig);
        for (g, w) in got.iter().zip(&want) {
            assert_eq!((g.stream, g.stamp, g.epoch, &g.sensor), (w.stream, w.stamp, w.epoch, &w.sensor));
        }
    }
}

#[test]
fn a_saved_index_is_used_in_place_of_reading_the_bag_again() {
    // The bag's identity (device, inode, size, time) is what is checked: bytes changed in
    // place with the time put back are not read until the frames are streamed. Opening them
    // afresh fails at once; opening them with the saved index does not index at all.
    let dir = tempfile::tempdir().unwrap();
    let bag = recording(dir.path());
    let bytes = LogSource::open(&bag).unwrap().save_index().unwrap().unwrap();
    let plan = dir.path().join("log-index.json");
    let mtime = std::fs::metadata(&bag).unwrap().modified().unwrap();
    let len = std::fs::metadata(&bag).unwrap().len() as usize;
    let f = std::fs::OpenOptions::new().write(true).open(&bag).unwrap();
    std::io::Write::write_all(&mut &f, &vec![0x5a; len]).unwrap();
    f.set_modified(mtime).unwrap();
    drop(f);
    assert!(LogSource::open(&bag).is_err(), "the garbage opens");
    let saved = LogSource::open_saved(&bag, &plan, &bytes).expect("the saved index is refused");
    assert_eq!(saved.frame_count(shared::StreamKind::Lidar), 8);
}

#[test]
fn a_saved_index_is_refused_in_one_line_when_it_is_not_this_bag_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let bag = recording(dir.path());
    let plan = dir.path().join("log-index.json");
    let bytes = LogSource::open(&bag).unwrap().save_index().unwrap().unwrap();
    let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let edited = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut j = json.clone();
        f(&mut j);
        serde_json::to_vec(&j).unwrap()
    };
    let other = dir.path().join("other.mcap");
    std::fs::copy(&bag, &other).unwrap();
    let cases: Vec<(&str, Vec<u8>, &Path)> = vec![
        ("not a saved index", b"{".to_vec(), &bag),
        ("format 7", edited(&|j| j["format"] = 7.into()), &bag),
        ("an index of", bytes.clone(), &other),
        ("frame 0 names", edited(&|j| j["frames"][0]["epoch"] = 9.into()), &bag),
        ("frame 3 names", edited(&|j| j["frames"][3]["sensor"] = 1.into()), &bag),
        ("out of replay order", edited(&|j| j["frames"].as_array_mut().unwrap().swap(0, 5)), &bag),
        ("ordinals or topics out of order", edited(&|j| j["wanted"].as_array_mut().unwrap().reverse()), &bag),
        ("is not a file of the bag", edited(&|j| j["files"][0]["path"] = "/etc/passwd".into()), &bag),
    ];
    for (want, bytes, path) in cases {
        let e = LogSource::open_saved(path, &plan, &bytes).expect_err(want);
        let line = e.to_string();
        assert!(
            line.contains(want) && line.contains("log-index.json") && !line.contains('\n'),
            "{want}: {line}"
        );
    }
    // The bag touched since it was indexed.
    let f = std::fs::OpenOptions::new().write(true).open(&bag).unwrap();
    f.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(5)).unwrap();
    let e = LogSource::open_saved(&bag, &plan, &bytes).expect_err("a changed bag").to_string();
    assert!(e.contains("changed since it was indexed"), "{e}");
}

#[test]
fn truncated_real_bag() {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data/rosbag/kitti_000001_000002/kitti_000001_000002.mcap");
    if !src.exists() {
        eprintln!("NOTICE: {} is absent; skipping", src.display());
        return;
    }
    let bytes = std::fs::read(&src).unwrap();
    let orig = {
        let s = LogSource::open(&src).unwrap();
        s.frames().unwrap().collect::<Result<Vec<_>, _>>().unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let cut_path = dir.path().join("kitti_cut.mcap");
    // After the first sweep's chunk: the sweep survives; the images are gone → no camera.
    // After the first image's chunk: a sweep and an image, then the error.
    let mut counts = Vec::new();
    for cut in [5000, 1_930_000, 3_400_000, 5_400_000, bytes.len() - 50] {
        std::fs::write(&cut_path, &bytes[..cut]).unwrap();
        let (frames, e) = replay(&cut_path);
        let e = e.expect("an error");
        check_error(&e, &cut_path);
        check_frames_valid(&frames, &orig);
        counts.push(frames.len());
        eprintln!("cut at {cut}: {} frames, then: {e}", frames.len());
    }
    assert_eq!(counts, [0, 0, 2, 3, 4]);
}

#[test]
fn malformed_messages_are_reported_with_topic_and_ordinal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("badmsg.mcap");
    let mut b = Bag::create(&path);
    b.put("/tf_static", TF, 1000 * MS, &static_tf());
    b.put("/cam/camera_info", INFO, 1000 * MS, &camera_info(1000 * MS, "cam", 4, 3, vec![], K, I3, P));
    for i in 0..4u64 {
        let t = 1000 * MS + i * 100 * MS;
        let mut c = simple_cloud(t, "velo", 5);
        if i == 2 {
            c.point_step = 12; // x, y, z fit; intensity at 12 overruns the point
        }
        b.put("/velo/points", CLOUD, t, &c);
        b.put("/cam/image", IMAGE, t + MS, &simple_image(t + MS, "cam"));
    }
    b.finish();
    let (frames, e) = replay(&path);
    let e = e.unwrap();
    // Messages: tf, info, (cloud, image) × 4; the third cloud is message #6.
    let s = e.to_string();
    assert!(
        s.contains("message #6 on /velo/points") && s.contains("intensity") && s.contains("point_step 12"),
        "{s}"
    );
    check_error(&e, &path);
    assert_eq!(frames.len(), 4, "the two sweeps and two images before the bad sweep");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Cuts anywhere in a recording.
    #[test]
    fn cut_anywhere(frac in 0.0f64..1.0) {
        let dir = tempfile::tempdir().unwrap();
        let path = recording(dir.path());
        let bytes = std::fs::read(&path).unwrap();
        let cut = ((bytes.len() as f64) * frac) as usize;
        let cut_path = dir.path().join("cut.mcap");
        std::fs::write(&cut_path, &bytes[..cut]).unwrap();
        let (frames, e) = replay(&cut_path);
        let e = e.expect("a truncated file must report an error");
        check_error(&e, &cut_path);
        prop_assert!(frames.len() <= 16);
    }

    /// Random damage to one message of a hand-made bag (no CRCs): never a panic, and any frame
    /// handed out has a consistent payload.
    #[test]
    fn damaged_messages_never_panic(which in 0usize..4, cut in 0usize..2000, flips in proptest::collection::vec((0usize..2000, any::<u8>()), 0..6)) {
        let mut msgs: Vec<(&str, &str, Vec<u8>)> = vec![
            ("/tf_static", TF, cdr::serialize::<_, _, cdr::CdrLe>(&static_tf(), cdr::Infinite).unwrap()),
            ("/cam/camera_info", INFO, cdr::serialize::<_, _, cdr::CdrLe>(&camera_info(MS, "cam", 4, 3, vec![0.1, 0.0, 0.0, 0.0, 0.0], K, I3, P), cdr::Infinite).unwrap()),
            ("/velo/points", CLOUD, cdr::serialize::<_, _, cdr::CdrLe>(&simple_cloud(MS, "velo", 20), cdr::Infinite).unwrap()),
            ("/cam/image", IMAGE, cdr::serialize::<_, _, cdr::CdrLe>(&simple_image(MS, "cam"), cdr::Infinite).unwrap()),
        ];
        let m = &mut msgs[which].2;
        for (pos, v) in flips {
            if !m.is_empty() {
                let i = pos % m.len();
                m[i] ^= v;
            }
        }
        let keep = m.len() - cut.min(m.len()) / 4;
        m.truncate(keep);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fuzz.mcap");
        let mut b = Bag::create(&path);
        for (topic, schema, data) in &msgs {
            b.raw(topic, schema, MS, data);
        }
        b.finish();
        let (frames, e) = replay(&path);
        if let Some(e) = e {
            check_error(&e, &path);
        }
        prop_assert!(frames.len() <= 2);
    }
}

fn write_png(path: &Path, w: u32, h: u32) {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 7]));
    img.save(path).unwrap();
}

/// A PNG with a header and no pixels (the scan reads the header only).
fn png_header(w: u32, h: u32) -> Vec<u8> {
    fn crc32(bytes: &[u8]) -> u32 {
        let mut c = !0u32;
        for &b in bytes {
            c ^= u32::from(b);
            for _ in 0..8 {
                c = if c & 1 == 1 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            }
        }
        !c
    }
    let mut chunk = b"IHDR".to_vec();
    chunk.extend_from_slice(&w.to_be_bytes());
    chunk.extend_from_slice(&h.to_be_bytes());
    chunk.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend_from_slice(&13u32.to_be_bytes());
    png.extend_from_slice(&chunk);
    png.extend_from_slice(&crc32(&chunk).to_be_bytes());
    for tag in [b"IDAT", b"IEND"] {
        png.extend_from_slice(&0u32.to_be_bytes());
        png.extend_from_slice(tag);
        png.extend_from_slice(&crc32(tag).to_be_bytes());
    }
    png
}

const CALIB: &str = "P0: 1 0 0 0 0 1 0 0 0 0 1 0
P2: 700 0 600 45 0 700 170 0.2 0 0 1 0.003
R0_rect: 1 0 0 0 1 0 0 0 1
Tr_velo_to_cam: 0 -1 0 0 0 0 -1 -0.07 1 0 0 -0.27
";

fn kitti_folder(dir: &Path, frames: &[(&str, &str)]) -> PathBuf {
    let root = dir.join("kitti");
    for d in ["velodyne", "image_2", "calib"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    for (name, calib) in frames {
        let mut bin = Vec::new();
        for i in 0..10 {
            for v in [10.0f32 + i as f32, 0.5, -0.5, 0.25] {
                bin.extend_from_slice(&v.to_le_bytes());
            }
        }
        std::fs::write(root.join("velodyne").join(format!("{name}.bin")), bin).unwrap();
        write_png(&root.join("image_2").join(format!("{name}.png")), 12, 8);
        std::fs::write(root.join("calib").join(format!("{name}.txt")), calib).unwrap();
    }
    root
}

#[test]
fn kitti_folder_synthetic_and_broken() {
    let dir = tempfile::tempdir().unwrap();
    let changed = CALIB.replace("700 0 600 45", "710 0 600 45");
    let root = kitti_folder(dir.path(), &[("000003", CALIB), ("000005", CALIB), ("000004", &changed)]);
    let src = LogSource::open(&root).unwrap();
    let frames: Vec<LogFrame> = src.frames().unwrap().collect::<Result<_, _>>().unwrap();
    // Sorted by number; epochs change with the calib content: 3 → 1, 4 → 2, 5 → 3.
    let got: Vec<(&str, u64, u64)> =
        frames.iter().map(|f| (f.name.as_str(), f.stamp.0 / MS, f.epoch.0)).collect();
    assert_eq!(
        got,
        [
            ("000003", 0, 1),
            ("000003", 0, 1),
            ("000004", 100, 2),
            ("000004", 100, 2),
            ("000005", 200, 3),
            ("000005", 200, 3)
        ]
    );
    let p = frames[0].to_payload().unwrap();
    let pts = shared::frames::lidar_points(&p).unwrap();
    assert_eq!((pts.len(), pts[3].x, pts[3].intensity, pts[3].instance), (10, 13.0, 0.25, 0));
    let p = frames[1].to_payload().unwrap();
    let img = shared::frames::camera_image(&p).unwrap();
    assert_eq!(img.rgb_at(5, 3), Some([5, 3, 7]));

    type Damage = Box<dyn Fn(&Path)>;
    // `None`: the folder is refused at open. `Some(k)`: it breaks at the damaged frame: it opens
    // with the `k` whole frames before it, which replay, and then the break comes once.
    let cases: Vec<(&str, Damage, &str, Option<usize>)> = vec![
        (
            "missing key",
            Box::new(|r: &Path| {
                std::fs::write(r.join("calib/000004.txt"), CALIB.replace("R0_rect", "R9_rect")).unwrap()
            }),
            "calib/000004.txt: R0_rect: missing",
            Some(1),
        ),
        (
            "bad number",
            Box::new(|r: &Path| {
                std::fs::write(r.join("calib/000005.txt"), CALIB.replace("0.2 0 0 1", "0.2 zz 0 1")).unwrap()
            }),
            "calib/000005.txt:2: P2: 'zz' is not a number",
            Some(2),
        ),
        (
            "short row",
            Box::new(|r: &Path| {
                std::fs::write(r.join("calib/000003.txt"), CALIB.replace("-0.07 1 0 0 -0.27", "-0.07 1 0 0"))
                    .unwrap()
            }),
            "calib/000003.txt:4: Tr_velo_to_cam: expected 12 numbers",
            None,
        ),
        (
            "no calib",
            Box::new(|r: &Path| std::fs::remove_file(r.join("calib/000005.txt")).unwrap()),
            "calib/000005.txt: missing: frame 000005 has no calib file",
            Some(2),
        ),
        (
            "ragged bin",
            Box::new(|r: &Path| std::fs::write(r.join("velodyne/000004.bin"), [0u8; 17]).unwrap()),
            "velodyne/000004.bin: 17 bytes is not a whole number of 16-byte points",
            Some(1),
        ),
        (
            "bad png",
            Box::new(|r: &Path| std::fs::write(r.join("image_2/000003.png"), b"not a png").unwrap()),
            "image_2/000003.png: cannot read PNG header",
            None,
        ),
        (
            "bad png later",
            Box::new(|r: &Path| std::fs::write(r.join("image_2/000004.png"), b"not a png").unwrap()),
            "image_2/000004.png: cannot read PNG header",
            Some(1),
        ),
        (
            "absurd focal length",
            Box::new(|r: &Path| {
                std::fs::write(r.join("calib/000003.txt"), CALIB.replace("700 0 600 45", "1e308 0 600 45"))
                    .unwrap()
            }),
            "kitti: calibration epoch 1: camera.",
            None,
        ),
        (
            "frame larger than a slot",
            Box::new(|r: &Path| {
                std::fs::write(r.join("image_2/000004.png"), png_header(16384, 16384)).unwrap()
            }),
            "a camera frame of 805306384 bytes is larger than the 268435456-byte slot limit",
            None,
        ),
    ];
    for (what, damage, want, before) in cases {
        let d = tempfile::tempdir().unwrap();
        let root = kitti_folder(d.path(), &[("000003", CALIB), ("000004", CALIB), ("000005", CALIB)]);
        damage(&root);
        let e = match before {
            None => LogSource::open(&root).unwrap_err().to_string(),
            Some(k) => {
                let src = LogSource::open(&root).unwrap_or_else(|e| panic!("{what}: refused whole: {e}"));
                assert_eq!(src.frame_count(shared::StreamKind::Lidar), k, "{what}");
                let items: Vec<_> = src.frames().unwrap().collect();
                assert_eq!(items.len(), 2 * k + 1, "{what}: the frames before the break, then it");
                assert!(items[..2 * k].iter().all(Result::is_ok), "{what}");
                let e = items[2 * k].as_ref().unwrap_err().to_string();
                assert_eq!(src.index_error().map(ToString::to_string), Some(e.clone()), "{what}");
                e
            }
        };
        assert!(e.contains(want), "{what}: '{e}' lacks '{want}'");
        assert!(!e.contains('\n'));
    }

    // A PNG whose pixels are cut short fails when its frame is read, after the frames before it.
    let d = tempfile::tempdir().unwrap();
    let root = kitti_folder(d.path(), &[("000003", CALIB), ("000004", CALIB)]);
    let png = root.join("image_2/000004.png");
    let bytes = std::fs::read(&png).unwrap();
    std::fs::write(&png, &bytes[..bytes.len() - 30]).unwrap();
    let src = LogSource::open(&root).unwrap();
    let items: Vec<_> = src.frames().unwrap().collect();
    assert_eq!(items.len(), 4);
    assert!(items[..3].iter().all(Result::is_ok));
    let e = items[3].as_ref().unwrap_err().to_string();
    assert!(e.contains("000004.png") && e.contains("cannot decode"), "{e}");

    // With the images deferred the same PNG fails when its payload is written, with the same
    // error; the frames before it write as they read eagerly.
    let deferred: Vec<_> = src.frames().unwrap().defer_images().collect();
    assert_eq!(deferred.len(), 4);
    let deferred: Vec<_> = deferred.into_iter().map(Result::unwrap).collect();
    for (d, f) in deferred[..3].iter().zip(&items) {
        assert!(d.to_payload().unwrap() == f.as_ref().unwrap().to_payload().unwrap(), "{}", d.name);
    }
    let mut sink = Vec::new();
    match deferred[3].write_payload(&mut sink) {
        Err(logs::WriteError::Log(d)) => assert_eq!(d.to_string(), e),
        other => panic!("expected the decode error, got {other:?}"),
    }
}
