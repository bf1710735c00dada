//! KITTI with two colour cameras on the real data (`../shared/data`, skipped with a notice
//! when absent): the folder's sweep projected through P2 and P3, each camera alone and both
//! through `fusion::RigProjector`, gives the same per-camera points; P2 matches the
//! independently computed reference and P3 the devkit formula.

use std::path::{Path, PathBuf};

use fusion::{Projected, Projector, RigProjected, RigProjector};
use nalgebra::{Matrix3x4, Matrix4, Vector4};

fn kitti_dir() -> Option<PathBuf> {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/kitti");
    if d.join("calib/000001.txt").is_file() {
        Some(d)
    } else {
        eprintln!("notice: {} is absent; skipping the two-camera KITTI test", d.display());
        None
    }
}

/// Test-only reading of one matrix of a KITTI calib file.
fn matrix(path: &Path, key: &str) -> Vec<f64> {
    let text = std::fs::read_to_string(path).unwrap();
    let line = text.lines().find(|l| l.starts_with(&format!("{key}:"))).unwrap();
    line.split_once(':').unwrap().1.split_whitespace().map(|t| t.parse().unwrap()).collect()
}

#[test]
fn p2_and_p3_alone_and_through_the_rig_projector() {
    let Some(data) = kitti_dir() else { return };
    // The shared folder has image_2 only: a rig folder whose image_3 shows the same PNGs
    // (only their size matters to projection) and the real calib files, with P3.
    let dir = tempfile::tempdir().unwrap();
    for d in ["velodyne", "calib", "image_2"] {
        std::os::unix::fs::symlink(data.join(d), dir.path().join(d)).unwrap();
    }
    std::os::unix::fs::symlink(data.join("image_2"), dir.path().join("image_3")).unwrap();
    let frames = logs::kitti_cameras(dir.path()).unwrap();
    assert_eq!(frames.len(), 3);
    let f = frames.iter().find(|f| f.name == "000001").unwrap();
    assert_eq!(f.cameras.len(), 2);
    let (c2, c3) = (&f.cameras[0].calib, &f.cameras[1].calib);
    // 000000 is another rig: 000001 opens epoch 2, both cameras.
    assert_eq!((c2.epoch.0, c3.epoch.0), (2, 2));
    let pts = f.points().unwrap();
    assert_eq!(pts.len(), 120_268);

    let mut p2 = Projected::new();
    let mut p3 = Projected::new();
    Projector::new(c2).project(&pts, &mut p2);
    Projector::new(c3).project(&pts, &mut p3);
    let rig = RigProjector::new(&[c2.clone(), c3.clone()]);
    assert_eq!(rig.culled_cameras(), 2);
    let mut both = RigProjected::new();
    rig.project(&pts, &mut both);
    for (alone, joint, name) in [(&p2, both.camera(0), "P2"), (&p3, both.camera(1), "P3")] {
        let bits = |x: &[f64]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(alone.index(), joint.index(), "{name}");
        assert_eq!(bits(alone.u()), bits(joint.u()), "{name}");
        assert_eq!(bits(alone.v()), bits(joint.v()), "{name}");
        assert_eq!(bits(alone.depth()), bits(joint.depth()), "{name}");
    }

    // P2: the reference of ../shared/data/README.md.
    assert_eq!(p2.len(), 18_630);
    let (u, v, d) = p2.means();
    assert!((u - 631.863492).abs() < 1e-5 && (v - 257.150175).abs() < 1e-5 && (d - 16.530317).abs() < 1e-5);
    // P3: the devkit formula, P3 · R0_rect · Tr_velo_to_cam · X, for every kept point.
    let calib = dir.path().join("calib/000001.txt");
    let mut r0 = Matrix4::identity();
    r0.fixed_view_mut::<3, 3>(0, 0).copy_from(&nalgebra::Matrix3::from_row_slice(&matrix(&calib, "R0_rect")));
    let mut tr = Matrix4::identity();
    tr.fixed_view_mut::<3, 4>(0, 0).copy_from(&Matrix3x4::from_row_slice(&matrix(&calib, "Tr_velo_to_cam")));
    let m = Matrix3x4::from_row_slice(&matrix(&calib, "P3")) * r0 * tr;
    assert!(p3.len() > 15_000, "P3 keeps {}", p3.len());
    for (j, &i) in p3.index().iter().enumerate() {
        let p = &pts[i as usize];
        let h = m * Vector4::new(f64::from(p.x), f64::from(p.y), f64::from(p.z), 1.0);
        assert!((h.x / h.z - p3.u()[j]).abs() < 1e-6 && (h.y / h.z - p3.v()[j]).abs() < 1e-6, "point {i}");
        assert!((h.z - p3.depth()[j]).abs() < 1e-6, "point {i}");
    }
    // The two cameras are 0.54 m apart: they keep different points.
    assert_ne!(p2.index(), p3.index());
}
