//! Replaying logs with several cameras (issue 18 §3): each camera's pairs against an
//! independent projection.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{summary, Sandbox};
use serde_json::Value;

/// A calib file's matrices, row-major, by key.
fn calib_matrices(path: &Path) -> BTreeMap<String, Vec<f64>> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.split_whitespace().map(|t| t.parse().unwrap()).collect()))
        .collect()
}

/// A PNG's size, from its IHDR chunk.
fn png_size(path: &Path) -> (f64, f64) {
    let b = std::fs::read(path).unwrap();
    let be = |i: usize| f64::from(u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]));
    (be(16), be(20))
}

/// KITTI's devkit convention in float64 (../shared/data/README.md): pixel =
/// P · R0_rect · Tr_velo_to_cam · X; in image ⇔ depth > 0, 0 ≤ u < width, 0 ≤ v < height.
/// Returns the in-image count and the mean u.
fn project(velodyne: &Path, m: &BTreeMap<String, Vec<f64>>, p_key: &str, size: (f64, f64)) -> (u64, f64) {
    let (p, r0, tr) = (&m[p_key], &m["R0_rect"], &m["Tr_velo_to_cam"]);
    let bytes = std::fs::read(velodyne).unwrap();
    let (mut n, mut sum_u) = (0u64, 0.0);
    for pt in bytes.chunks_exact(16) {
        let f = |i: usize| f64::from(f32::from_le_bytes([pt[i], pt[i + 1], pt[i + 2], pt[i + 3]]));
        let x = [f(0), f(4), f(8), 1.0];
        let c: Vec<f64> = (0..3).map(|r| (0..4).map(|k| tr[r * 4 + k] * x[k]).sum()).collect();
        let rect: Vec<f64> = (0..3).map(|r| (0..3).map(|k| r0[r * 3 + k] * c[k]).sum()).collect();
        let h: Vec<f64> =
            (0..3).map(|r| (0..3).map(|k| p[r * 4 + k] * rect[k]).sum::<f64>() + p[r * 4 + 3]).collect();
        if h[2] <= 0.0 {
            continue;
        }
        let (u, v) = (h[0] / h[2], h[1] / h[2]);
        if (0.0..size.0).contains(&u) && (0.0..size.1).contains(&v) {
            n += 1;
            sum_u += u;
        }
    }
    (n, if n > 0 { sum_u / n as f64 } else { 0.0 })
}

/// `../shared/data/kitti` with its `image_2` PNGs copied as `image_3`.
fn two_camera_folder(data: &Path, dir: &Path) {
    for sub in ["velodyne", "calib", "image_2"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
        for e in std::fs::read_dir(data.join("kitti").join(sub)).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), dir.join(sub).join(e.file_name())).unwrap();
        }
    }
    std::fs::create_dir_all(dir.join("image_3")).unwrap();
    for e in std::fs::read_dir(dir.join("image_2")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.join("image_3").join(e.file_name())).unwrap();
    }
}

/// A sandbox holding [`two_camera_folder`] at `kitti2`, or None (with a notice) without data.
fn two_camera_sandbox() -> Option<(Sandbox, std::path::PathBuf)> {
    let data = common::shared_data()?;
    let sb = Sandbox::new();
    let dir = sb.path("kitti2");
    two_camera_folder(&data, &dir);
    Some((sb, dir))
}

/// Replays `source` into `<sandbox>/out`; the summary, or null if none was written.
fn replay(sb: &Sandbox, source: &Path, extra: &[&str]) -> (common::Run, Value) {
    let out = sb.path("out");
    let mut args = vec!["replay", source.to_str().unwrap(), "--out", out.to_str().unwrap(), "--quiet"];
    args.extend_from_slice(extra);
    let run = sb.run(&args);
    let path = out.join("summary.json");
    let s = if path.exists() { summary(&path) } else { Value::Null };
    (run, s)
}

#[test]
fn two_camera_kitti_replay_matches_p2_and_p3_per_camera() {
    let Some((sb, dir)) = two_camera_sandbox() else { return };
    let (run, s) = replay(&sb, &dir, &["--max-rate"]);
    run.expect_code(0);
    assert_eq!(s["streams"]["camera"]["kind"], "camera", "{s}");
    assert_eq!(s["streams"]["camera_3"]["kind"], "camera", "{s}");
    assert_eq!(s["streams"]["lidar"]["kind"], "lidar", "{s}");
    // 000000 is another rig: two rig-wide epochs, as for one camera.
    assert_eq!(s["calibration"]["epochs"], serde_json::json!([1, 2]));
    assert_eq!(s["pairs"]["fused_epoch_mismatch"], 0);
    let frames = s["frames"].as_array().unwrap();
    assert_eq!(frames.len(), 6, "{}", run.describe());
    for (camera, p_key) in [("camera", "P2"), ("camera_3", "P3")] {
        assert_eq!(s["per_camera"][camera]["pairs"]["fused"], 3, "{camera}: {s}");
        for (seq, name) in ["000000", "000001", "000002"].iter().enumerate() {
            let f = frames
                .iter()
                .find(|f| f["camera"] == camera && f["lidar_seq"] == seq as u64)
                .unwrap_or_else(|| panic!("no pair for {camera} sweep {seq}: {frames:?}"));
            assert_eq!(f["lidar"], "lidar");
            let m = calib_matrices(&dir.join(format!("calib/{name}.txt")));
            let size = png_size(&dir.join(format!("image_2/{name}.png")));
            let (n, mean_u) = project(&dir.join(format!("velodyne/{name}.bin")), &m, p_key, size);
            assert_eq!(f["points_in_image"], n, "{camera} {name}: {f}");
            let got = f["mean_u"].as_f64().unwrap();
            assert!((got - mean_u).abs() < 1e-3, "{camera} {name}: mean u {got} vs {mean_u}");
        }
    }
    // The two cameras see different parts of the sweep: P3 is not P2.
    let mean_u_of =
        |c: &str| frames.iter().find(|f| f["camera"] == c && f["lidar_seq"] == 1).unwrap()["mean_u"].clone();
    assert_ne!(mean_u_of("camera"), mean_u_of("camera_3"));
}

#[test]
fn one_camera_kitti_replay_keeps_its_names() {
    let Some(data) = common::shared_data() else { return };
    let sb = Sandbox::new();
    let (run, s) = replay(&sb, &data.join("kitti"), &["--max-rate"]);
    run.expect_code(0);
    let names: Vec<&String> = s["streams"].as_object().unwrap().keys().collect();
    assert_eq!(names, ["camera", "lidar"], "{s}");
}

#[test]
fn two_camera_kitti_replay_records_both_cameras() {
    let Some((sb, dir)) = two_camera_sandbox() else { return };
    let rec = sb.path("rec.mcap");
    let (run, live) = replay(&sb, &dir, &["--max-rate", "--record", rec.to_str().unwrap()]);
    run.expect_code(0);
    // The recording replays as the same rig: `/camera/...` and `/camera_3/...` by name.
    let out = sb.path("again");
    let run2 =
        sb.run(&["replay", rec.to_str().unwrap(), "--out", out.to_str().unwrap(), "--quiet", "--max-rate"]);
    run2.expect_code(0);
    let again = summary(&out.join("summary.json"));
    for camera in ["camera", "camera_3"] {
        assert_eq!(common::camera_pairs(&live, camera).len(), 3, "{camera}: {live}");
        assert_eq!(
            common::camera_pairs(&live, camera),
            common::camera_pairs(&again, camera),
            "{}",
            run2.describe()
        );
    }
}

#[test]
fn cameras_option_is_for_bags() {
    let Some(data) = common::shared_data() else { return };
    let sb = Sandbox::new();
    let (run, _) = replay(&sb, &data.join("kitti"), &["--max-rate", "--cameras", "camera"]);
    run.expect_code(2);
    assert!(run.stderr().contains("--cameras: chooses the cameras of a bag"), "{}", run.describe());
}
