//! Projects a KITTI frame and writes its overlay PNG:
//! `cargo run -p fusion --example kitti_overlay -- [KITTI_DIR] [FRAME] [OUT.png]`
//! (defaults: `../shared/data/kitti`, `000001`, `kitti_overlay.png`).

use std::path::PathBuf;

use calib::{CalibrationSet, Projection};
use fusion::{write_overlay, OverlayStyle, Projected, Projector};
use nalgebra::{Isometry3, Matrix3, Matrix3x4, Matrix4, Rotation3, Translation3, UnitQuaternion};
use shared::frames::{ImageHeader, PointRecord};
use shared::{CalibEpoch, TimestampNs};
use zerocopy::IntoBytes;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = PathBuf::from(args.first().cloned().unwrap_or_else(|| "../shared/data/kitti".into()));
    let frame = args.get(1).cloned().unwrap_or_else(|| "000001".into());
    let out = PathBuf::from(args.get(2).cloned().unwrap_or_else(|| "kitti_overlay.png".into()));

    let img = image::open(dir.join(format!("image_2/{frame}.png")))?.to_rgb8();
    let (w, h) = img.dimensions();
    let mut payload = ImageHeader { width: w, height: h, format: 1, has_labels: 0 }.as_bytes().to_vec();
    payload.extend_from_slice(img.as_raw());

    let calib_txt = std::fs::read_to_string(dir.join(format!("calib/{frame}.txt")))?;
    let get = |key: &str| -> Result<Vec<f64>, Box<dyn std::error::Error>> {
        let line =
            calib_txt.lines().find(|l| l.starts_with(&format!("{key}:"))).ok_or(format!("no {key}"))?;
        Ok(line[key.len() + 1..].split_whitespace().map(str::parse).collect::<Result<_, _>>()?)
    };
    let p2 = Matrix3x4::from_row_slice(&get("P2")?);
    let mut r0 = Matrix4::identity();
    r0.fixed_view_mut::<3, 3>(0, 0).copy_from(&Matrix3::from_row_slice(&get("R0_rect")?));
    let tr = Matrix3x4::from_row_slice(&get("Tr_velo_to_cam")?);
    let rot = Rotation3::from_matrix(&tr.fixed_view::<3, 3>(0, 0).into_owned());
    let iso = Isometry3::from_parts(
        Translation3::new(tr[(0, 3)], tr[(1, 3)], tr[(2, 3)]),
        UnitQuaternion::from_rotation_matrix(&rot),
    );
    let mut trh = Matrix4::identity();
    trh.fixed_view_mut::<3, 4>(0, 0).copy_from(&tr);
    // Fold what the isometry cannot hold of Tr (orthonormal only to ~1e-7) into p.
    let p = p2 * r0 * trh * iso.inverse().to_homogeneous();
    let calib = CalibrationSet::single(
        CalibEpoch(1),
        TimestampNs(0),
        Projection::Rectified { p, width: w, height: h },
        Isometry3::identity(),
        iso,
    );

    let bytes = std::fs::read(dir.join(format!("velodyne/{frame}.bin")))?;
    let pts: Vec<PointRecord> = bytes
        .chunks_exact(16)
        .map(|c| {
            let f = |i: usize| f32::from_le_bytes([c[i], c[i + 1], c[i + 2], c[i + 3]]);
            PointRecord { x: f(0), y: f(4), z: f(8), intensity: f(12), ..PointRecord::default() }
        })
        .collect();
    let mut proj = Projected::new();
    Projector::new(&calib).project(&pts, &mut proj);
    let (mu, mv, md) = proj.means();
    println!(
        "{frame}: {} points, {} in image, mean u {mu:.6} v {mv:.6} depth {md:.6}",
        pts.len(),
        proj.len()
    );
    let uvd: Vec<[f32; 3]> =
        (0..proj.len()).map(|i| [proj.u()[i] as f32, proj.v()[i] as f32, proj.depth()[i] as f32]).collect();
    write_overlay(&out, &payload, &uvd, &OverlayStyle::default())?;
    println!("wrote {}", out.display());
    Ok(())
}
