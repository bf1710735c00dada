//! `check_file` on the shipped rig and on each broken fixture: the error is one line naming
//! the file, the field and (for syntax) line:column.

use std::path::{Path, PathBuf};

use calib::{check_file, default_rig, CalibFileError};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn broken(name: &str) -> CalibFileError {
    let e = check_file(&fixture(name)).expect_err(name);
    let line = e.to_string();
    println!("{line}");
    assert!(!line.contains('\n'), "one line: {line}");
    assert!(line.starts_with(&fixture(name).display().to_string()), "names the file: {line}");
    e
}

fn assert_field(e: &CalibFileError, field: &str) {
    assert_eq!(e.field.as_deref(), Some(field), "{e}");
    assert!(e.to_string().contains(&format!(": {field}: ")), "{e}");
}

#[test]
fn default_rig_file_checks() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/calib/default.ron");
    let set = check_file(&path).unwrap();
    assert_eq!(set, default_rig());
}

#[test]
fn syntax_error_has_line_and_column() {
    let e = broken("syntax_error.ron");
    // The missing comma after `fy: 1000.0` (line 9) is noticed at the next field, `cx`, on
    // line 10, column 9.
    assert_eq!(e.position, Some((10, 9)), "{e}");
    assert!(e.to_string().contains(":10:9: camera.fy: "), "{e}");
    assert!(e.message.contains("comma"), "{e}");
}

#[test]
fn non_orthonormal_matrix_names_lidar_rotation() {
    let e = broken("non_orthonormal.ron");
    assert_field(&e, "lidar.rotation");
    assert!(e.message.contains("orthonormal"), "{e}");
    assert!(e.position.is_some(), "{e}");
}

#[test]
fn nan_names_camera_fx() {
    let e = broken("nan.ron");
    assert_field(&e, "camera.fx");
    assert!(e.message.contains("finite"), "{e}");
}

#[test]
fn negative_focal_length_names_camera_fy() {
    let e = broken("negative_focal.ron");
    assert_field(&e, "camera.fy");
    assert!(e.message.contains("positive"), "{e}");
}

#[test]
fn other_broken_files() {
    for (file, field, word) in [
        ("reflection.ron", "camera.rotation", "determinant"),
        ("non_unit_quaternion.ron", "lidar.rotation", "norm"),
        ("principal_point_outside.ron", "camera.cy", "outside"),
        ("zero_width.ron", "camera.width", "1..="),
        ("infinite_translation.ron", "camera.translation", "finite"),
        // Finite but absurd: refused by the plausible ranges.
        ("absurd_focal.ron", "camera.fx", "1..=100000"),
        ("absurd_translation.ron", "lidar.translation", "±100 m"),
        ("unknown_field.ron", "camera.cxx", "cxx"),
        ("missing_field.ron", "lidar.translation", "translation"),
    ] {
        let e = broken(file);
        assert_field(&e, field);
        assert!(e.message.contains(word), "{file}: {e}");
    }
}

#[test]
fn missing_file_is_one_line() {
    let e = check_file(Path::new("/nonexistent/rig.ron")).unwrap_err();
    assert_eq!(e.to_string().lines().count(), 1);
    assert!(e.to_string().starts_with("/nonexistent/rig.ron: cannot read"), "{e}");
}
