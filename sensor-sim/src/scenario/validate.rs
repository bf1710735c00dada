//! Validation: every value of a scenario in range and consistent, each failure naming its
//! field as a path (`calibration[1].changes[0]`, `faults[2].to`).

use super::spec::{CameraConfig, Fault, LidarConfig, RigChange, ScenarioSpec};
use super::{secs_to_ns, EpochRig};
use crate::rig::{Intrinsics, Mount, Rig};
use crate::world::FIRST_OBJECT_ID;
use shared::{CalibEpoch, Role, TimestampNs};

/// The name and the default duration.
pub(super) fn header(spec: &ScenarioSpec) -> Check {
    if spec.name.trim().is_empty() {
        return bad("name", "must not be empty");
    }
    check_range("duration_s", spec.duration_s, 1e-3, 1e6)
}

/// The camera's image size and rate.
pub(super) fn camera(cam: &CameraConfig) -> Check {
    if !(16..=shared::frames::MAX_IMAGE_SIDE).contains(&cam.width) {
        return bad(
            "camera.width",
            format!("must be 16..={} (got {})", shared::frames::MAX_IMAGE_SIDE, cam.width),
        );
    }
    if !(16..=shared::frames::MAX_IMAGE_SIDE).contains(&cam.height) {
        return bad(
            "camera.height",
            format!("must be 16..={} (got {})", shared::frames::MAX_IMAGE_SIDE, cam.height),
        );
    }
    // A frame must fit one ring slot: refused here, not when the segment is created.
    let bytes = shared::frames::ImageHeader::rgb8_labelled(cam.width, cam.height).payload_len() as u64;
    fits_a_slot("camera.width", bytes, &format!("{}×{} needs", cam.width, cam.height), "a frame")?;
    check_range("camera.rate_hz", cam.rate_hz, 0.1, 1000.0)
}

/// The lidar's geometry, range, rate and noise.
pub(super) fn lidar(l: &LidarConfig) -> Check {
    if !(1..=1024).contains(&l.beams) {
        return bad("lidar.beams", format!("must be 1..=1024 (got {})", l.beams));
    }
    if !(1..=1 << 16).contains(&l.azimuth_steps) {
        return bad("lidar.azimuth_steps", format!("must be 1..=65536 (got {})", l.azimuth_steps));
    }
    // A full sweep must fit one ring slot.
    let bytes = u64::from(l.beams) * u64::from(l.azimuth_steps) * shared::frames::POINT_RECORD_SIZE as u64;
    let what = format!("{} beams × {} steps need", l.beams, l.azimuth_steps);
    fits_a_slot("lidar.azimuth_steps", bytes, &what, "a sweep")?;
    let (lo, hi) = l.vertical_fov_deg;
    check_range("lidar.vertical_fov_deg", lo, -90.0, 90.0)?;
    check_range("lidar.vertical_fov_deg", hi, -90.0, 90.0)?;
    if hi < lo || (hi == lo && l.beams > 1) {
        return bad(
            "lidar.vertical_fov_deg",
            format!("must be (lowest, highest) with lowest < highest (got ({lo}, {hi}))"),
        );
    }
    check_range("lidar.max_range_m", l.max_range_m, 0.1, 2000.0)?;
    check_range("lidar.rate_hz", l.rate_hz, 0.1, 100.0)?;
    check_range("lidar.range_noise_m", l.range_noise_m, 0.0, 10.0)
}

/// Refuses a frame of `bytes` larger than one ring slot ([`shared::layout::MAX_SLOT_CAPACITY`]).
fn fits_a_slot(field: &str, bytes: u64, what: &str, unit: &str) -> Check {
    let cap = shared::layout::MAX_SLOT_CAPACITY;
    if bytes > cap {
        return bad(field, format!("{what} {bytes} bytes {unit}, more than the {cap}-byte slot limit"));
    }
    Ok(())
}

/// The initial rig and every recalibration: the rig of each epoch, epoch 1 first.
pub(super) fn epochs(spec: &ScenarioSpec) -> Result<Vec<EpochRig>, Invalid> {
    let cam = spec.camera;
    let def = Rig::default_for(cam.width, cam.height);
    let rig = Rig {
        intrinsics: spec.rig.intrinsics.unwrap_or(def.intrinsics),
        camera: spec.rig.camera.unwrap_or(def.camera),
        lidar: spec.rig.lidar.unwrap_or(def.lidar),
    };
    check_intrinsics("rig.intrinsics", &rig.intrinsics, cam.width, cam.height)?;
    check_mount("rig.camera", &rig.camera)?;
    check_mount("rig.lidar", &rig.lidar)?;
    let mut epochs = vec![EpochRig { epoch: CalibEpoch(1), valid_from: TimestampNs(0), rig }];
    let mut current = rig;
    let mut last_at = 0.0;
    for (i, ev) in spec.calibration.iter().enumerate() {
        let f = format!("calibration[{i}]");
        check_range(&format!("{f}.at_s"), ev.at_s, 1e-6, 1e6)?;
        if ev.at_s <= last_at {
            return bad(
                format!("{f}.at_s"),
                format!("must be after the previous event ({last_at} s) and after 0 (got {})", ev.at_s),
            );
        }
        if secs_to_ns(ev.at_s) <= secs_to_ns(last_at) {
            return bad(format!("{f}.at_s"), "must be at least 1 ns after the previous event");
        }
        last_at = ev.at_s;
        if ev.changes.is_empty() {
            return bad(format!("{f}.changes"), "must list at least one change");
        }
        for (j, ch) in ev.changes.iter().enumerate() {
            let fc = format!("{f}.changes[{j}]");
            rig_change(&fc, ch)?;
            ch.apply(&mut current);
            check_intrinsics(&fc, &current.intrinsics, cam.width, cam.height)?;
            check_mount(&fc, &current.camera)?;
            check_mount(&fc, &current.lidar)?;
        }
        epochs.push(EpochRig {
            epoch: CalibEpoch(i as u64 + 2),
            valid_from: secs_to_ns(ev.at_s),
            rig: current,
        });
    }
    // The same plausibility checks as `calib check` and the calibration service.
    for (i, e) in epochs.iter().enumerate() {
        let set = e.rig.to_calibration_set(e.epoch, e.valid_from, cam.width, cam.height);
        if let Err(bad_set) = calib::validate::check_set(&set) {
            let at = if i == 0 { "rig".to_string() } else { format!("calibration[{}]", i - 1) };
            return bad(format!("{at}: {}", bad_set.field), bad_set.reason);
        }
    }
    Ok(epochs)
}

/// One change's own values (the rig it leads to is checked after applying it).
fn rig_change(fc: &str, ch: &RigChange) -> Check {
    match *ch {
        RigChange::FocalScale(k) => check_range(fc, k, 0.1, 10.0)?,
        RigChange::CameraRollDeg(v)
        | RigChange::CameraPitchDeg(v)
        | RigChange::CameraYawDeg(v)
        | RigChange::LidarRollDeg(v)
        | RigChange::LidarPitchDeg(v)
        | RigChange::LidarYawDeg(v) => check_range(fc, v, -180.0, 180.0)?,
        RigChange::CameraOffsetM(x, y, z) | RigChange::LidarOffsetM(x, y, z) => {
            for v in [x, y, z] {
                check_range(fc, v, -10.0, 10.0)?;
            }
        }
        RigChange::PrincipalPointShift(dx, dy) => {
            check_finite(fc, dx)?;
            check_finite(fc, dy)?;
        }
        RigChange::CameraMount(_) | RigChange::LidarMount(_) | RigChange::Intrinsics(_) => {}
    }
    Ok(())
}

/// The faults, for a scenario with `n_epochs` epochs.
pub(super) fn faults(faults: &[Fault], n_epochs: usize) -> Check {
    for (i, fault) in faults.iter().enumerate() {
        let f = format!("faults[{i}]");
        match *fault {
            Fault::Kill { role, at_s, .. } => {
                check_drive_role(&f, role)?;
                check_range(&format!("{f}.at_s"), at_s, 0.0, 1e6)?;
            }
            Fault::DelayCalib { epoch, to, ms } => {
                check_epoch(&f, epoch, n_epochs)?;
                check_subscriber(&f, to)?;
                if !(1..=60_000).contains(&ms) {
                    return bad(format!("{f}.ms"), format!("must be 1..=60000 (got {ms})"));
                }
            }
            Fault::DropCalib { epoch, to } => {
                check_epoch(&f, epoch, n_epochs)?;
                check_subscriber(&f, to)?;
            }
        }
    }
    Ok(())
}

/// A failed check: the field, as a path, and what is wrong with it.
pub(super) type Invalid = (String, String);

/// The outcome of one check.
pub(super) type Check = Result<(), Invalid>;

pub(super) fn bad<T>(field: impl Into<String>, message: impl Into<String>) -> Result<T, Invalid> {
    Err((field.into(), message.into()))
}

pub(super) fn check_finite(field: &str, v: f64) -> Check {
    if v.is_finite() {
        Ok(())
    } else {
        bad(field, format!("must be a finite number (got {v})"))
    }
}

pub(super) fn check_range(field: &str, v: f64, lo: f64, hi: f64) -> Check {
    if v.is_finite() && v >= lo && v <= hi {
        Ok(())
    } else {
        bad(field, format!("must be in {lo}..={hi} (got {v})"))
    }
}

pub(super) fn check_positive(field: &str, v: f64) -> Check {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        bad(field, format!("must be a positive finite number (got {v})"))
    }
}

pub(super) fn check_mount(field: &str, m: &Mount) -> Check {
    for (name, v) in [("x", m.xyz.0), ("y", m.xyz.1), ("z", m.xyz.2)] {
        check_range(&format!("{field}.xyz.{name}"), v, -100.0, 100.0)?;
    }
    for (name, v) in [("roll", m.rpy_deg.0), ("pitch", m.rpy_deg.1), ("yaw", m.rpy_deg.2)] {
        check_range(&format!("{field}.rpy_deg.{name}"), v, -360.0, 360.0)?;
    }
    Ok(())
}

/// Checks a lens for an image of `w × h`: positive focal lengths, principal point inside
/// the image, and a distortion that stays invertible (monotonic) out to the image corners
/// and edge midpoints.
pub(super) fn check_intrinsics(field: &str, k: &Intrinsics, w: u32, h: u32) -> Check {
    check_positive(&format!("{field}.fx"), k.fx)?;
    check_positive(&format!("{field}.fy"), k.fy)?;
    check_range(&format!("{field}.cx"), k.cx, 0.0, f64::from(w))?;
    check_range(&format!("{field}.cy"), k.cy, 0.0, f64::from(h))?;
    for (name, v) in [("k1", k.k1), ("k2", k.k2), ("p1", k.p1), ("p2", k.p2), ("k3", k.k3)] {
        check_range(&format!("{field}.{name}"), v, -10.0, 10.0)?;
    }
    let (wf, hf) = (f64::from(w), f64::from(h));
    let corners = [
        (0.0, 0.0),
        (wf, 0.0),
        (0.0, hf),
        (wf, hf),
        (wf / 2.0, 0.0),
        (wf / 2.0, hf),
        (0.0, hf / 2.0),
        (wf, hf / 2.0),
    ];
    let dist = k.distortion();
    for (u, v) in corners {
        let xd = (u - k.cx) / k.fx;
        let yd = (v - k.cy) / k.fy;
        match dist.undistort(xd, yd) {
            Some((x, y)) => {
                // Monotonic along the ray through the corner: a slightly bigger undistorted
                // radius must give a bigger distorted radius.
                let (a, b) = dist.apply(x, y);
                let (c, d) = dist.apply(x * 1.01, y * 1.01);
                if c.hypot(d) <= a.hypot(b) {
                    return bad(field, "distortion folds over inside the image");
                }
            }
            None => return bad(field, "distortion cannot be inverted out to the image corners"),
        }
    }
    Ok(())
}

pub(super) fn check_colour_id(field: &str, id: u16, refl: f32) -> Check {
    if id < FIRST_OBJECT_ID {
        return bad(
            format!("{field}.id"),
            format!("must be at least {FIRST_OBJECT_ID} (0 is the sky, 1 the ground)"),
        );
    }
    if !(refl.is_finite() && (0.0..=1.0).contains(&refl)) {
        return bad(format!("{field}.reflectivity"), format!("must be in 0..=1 (got {refl})"));
    }
    Ok(())
}

fn check_epoch(f: &str, epoch: u64, n: usize) -> Check {
    if epoch == 0 || epoch > n as u64 {
        return bad(
            format!("{f}.epoch"),
            format!("must name an epoch of this scenario, 1..={n} (got {epoch})"),
        );
    }
    Ok(())
}

/// A fault's `to`: a role the calibration service delivers to.
fn check_subscriber(f: &str, to: Role) -> Check {
    if to.subscribes_to_calibration() {
        return Ok(());
    }
    let allowed: Vec<_> = Role::ALL.into_iter().filter(|r| r.subscribes_to_calibration()).collect();
    bad(
        format!("{f}.to"),
        format!("must be one of the calibration service's subscribers, {} (got {to})", one_of(&allowed)),
    )
}

/// The roles a drive runs as processes: the ones a `Kill` may name.
const DRIVE_ROLES: [Role; 4] = [Role::Camera, Role::Lidar, Role::Fusion, Role::Calib];

/// A `Kill`'s `role`: a process the drive runs.
fn check_drive_role(f: &str, role: Role) -> Check {
    if DRIVE_ROLES.contains(&role) {
        return Ok(());
    }
    bad(format!("{f}.role"), format!("must be a role a drive runs, {} (got {role})", one_of(&DRIVE_ROLES)))
}

/// `camera, lidar or fusion`.
fn one_of(roles: &[Role]) -> String {
    let names: Vec<_> = roles.iter().map(|r| r.name()).collect();
    match names.split_last() {
        Some((last, [])) => (*last).to_string(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}
