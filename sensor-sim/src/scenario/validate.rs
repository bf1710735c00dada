//! Validation: every value of a scenario in range and consistent, each failure naming its
//! field as a path (`calibration[1].changes[0]`, `faults[2].to`).

use super::spec::{CameraConfig, Fault, LidarConfig, NamedCamera, RigChange, ScenarioSpec};
use super::{secs_to_ns, CameraRig, LidarRig, SensorRig};
use crate::rig::{Intrinsics, Mount, Rig};
use crate::world::FIRST_OBJECT_ID;
use calib::SensorName;
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

/// A sensor name of a list, checked.
fn sensor_name(field: &str, name: &str) -> Result<SensorName, Invalid> {
    SensorName::new(name).map_err(|e| (format!("{field}.name"), e.0))
}

/// The initial rig (epoch 1): `cameras`/`lidars` lists, or the one camera `camera` and the
/// one lidar `lidar` of `camera`, `lidar` and `rig`. Sizes, rates, lenses and mounts checked.
pub(super) fn sensors(spec: &ScenarioSpec) -> Result<SensorRig, Invalid> {
    let cam = spec.camera;
    let def = Rig::default_for(cam.width, cam.height);
    let cameras = if spec.cameras.is_empty() {
        camera(&cam)?;
        let intrinsics = spec.rig.intrinsics.unwrap_or(def.intrinsics);
        check_intrinsics("rig.intrinsics", &intrinsics, cam.width, cam.height)?;
        let mount = spec.rig.camera.unwrap_or(def.camera);
        check_mount("rig.camera", &mount)?;
        vec![(SensorName::camera(), CameraRig { config: cam, intrinsics, mount })]
    } else {
        if cam != CameraConfig::default() || spec.rig.camera.is_some() || spec.rig.intrinsics.is_some() {
            return bad(
                "cameras",
                "give `cameras`, or `camera` with `rig.camera`/`rig.intrinsics`, not both",
            );
        }
        let mut out = Vec::new();
        for (i, c) in spec.cameras.iter().enumerate() {
            out.push(named_camera(&format!("cameras[{i}]"), c)?);
        }
        out
    };
    let lidars = if spec.lidars.is_empty() {
        lidar(&spec.lidar)?;
        let mount = spec.rig.lidar.unwrap_or(def.lidar);
        check_mount("rig.lidar", &mount)?;
        vec![(SensorName::lidar(), LidarRig { config: spec.lidar, mount })]
    } else {
        if spec.lidar != LidarConfig::default() || spec.rig.lidar.is_some() {
            return bad("lidars", "give `lidars`, or `lidar` with `rig.lidar`, not both");
        }
        let mut out = Vec::new();
        for (i, l) in spec.lidars.iter().enumerate() {
            let f = format!("lidars[{i}]");
            lidar(&l.config).map_err(|(field, m)| (field.replacen("lidar", &format!("{f}.config"), 1), m))?;
            check_mount(&format!("{f}.mount"), &l.mount)?;
            out.push((sensor_name(&f, &l.name)?, LidarRig { config: l.config, mount: l.mount }));
        }
        out
    };
    Ok(SensorRig { epoch: CalibEpoch(1), valid_from: TimestampNs(0), cameras, lidars })
}

/// One camera of a `cameras` list.
fn named_camera(f: &str, c: &NamedCamera) -> Result<(SensorName, CameraRig), Invalid> {
    let name = sensor_name(f, &c.name)?;
    let config = c.config();
    camera(&config).map_err(|(field, m)| (field.replacen("camera", f, 1), m))?;
    let intrinsics = match (c.intrinsics, c.hfov_deg) {
        (Some(_), Some(_)) => {
            return bad(format!("{f}.hfov_deg"), "give `hfov_deg` or `intrinsics`, not both")
        }
        (Some(k), None) => k,
        (None, Some(hfov)) => {
            check_range(&format!("{f}.hfov_deg"), hfov, 1.0, 150.0)?;
            let focal = f64::from(config.width) / 2.0 / (hfov.to_radians() / 2.0).tan();
            Intrinsics { fx: focal, fy: focal, ..Intrinsics::default_for(config.width, config.height) }
        }
        (None, None) => Intrinsics::default_for(config.width, config.height),
    };
    check_intrinsics(&format!("{f}.intrinsics"), &intrinsics, config.width, config.height)?;
    check_mount(&format!("{f}.mount"), &c.mount)?;
    Ok((name, CameraRig { config, intrinsics, mount: c.mount }))
}

/// Every recalibration after the initial rig: the rig of each epoch, epoch 1 first.
pub(super) fn epochs(spec: &ScenarioSpec, initial: &SensorRig) -> Result<Vec<SensorRig>, Invalid> {
    let mut epochs = vec![initial.clone()];
    let mut current = initial.clone();
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
            apply_change(&fc, ch, &mut current)?;
        }
        current.epoch = CalibEpoch(i as u64 + 2);
        current.valid_from = secs_to_ns(ev.at_s);
        epochs.push(current.clone());
    }
    // The same plausibility checks as `calib check` and the calibration service.
    for (i, e) in epochs.iter().enumerate() {
        if let Err(bad_set) = calib::validate::check_set(&e.to_calibration_set(TimestampNs(0))) {
            let at = if i == 0 { "rig".to_string() } else { format!("calibration[{}]", i - 1) };
            return bad(format!("{at}: {}", bad_set.field), bad_set.reason);
        }
    }
    Ok(epochs)
}

/// Applies one change to the rig and checks what it moved.
fn apply_change(fc: &str, ch: &RigChange, rig: &mut SensorRig) -> Check {
    let Some(name) = ch.sensor() else {
        let mut view = rig.view(0, 0).rig;
        ch.apply(&mut view);
        let (cam, lidar) = (&mut rig.cameras[0].1, &mut rig.lidars[0].1);
        (cam.intrinsics, cam.mount, lidar.mount) = (view.intrinsics, view.camera, view.lidar);
        check_intrinsics(fc, &cam.intrinsics, cam.config.width, cam.config.height)?;
        check_mount(fc, &cam.mount)?;
        return check_mount(fc, &lidar.mount);
    };
    let mount = rig
        .cameras
        .iter_mut()
        .find(|(n, _)| n.as_str() == name)
        .map(|(_, c)| &mut c.mount)
        .or_else(|| rig.lidars.iter_mut().find(|(n, _)| n.as_str() == name).map(|(_, l)| &mut l.mount));
    let Some(mount) = mount else {
        return bad(fc, format!("the rig has no sensor named {name:?}"));
    };
    ch.apply_to_mount(mount);
    check_mount(fc, mount)
}

/// One change's own values (the rig it leads to is checked after applying it).
fn rig_change(fc: &str, ch: &RigChange) -> Check {
    match ch {
        RigChange::FocalScale(k) => check_range(fc, *k, 0.1, 10.0)?,
        RigChange::CameraRollDeg(v)
        | RigChange::CameraPitchDeg(v)
        | RigChange::CameraYawDeg(v)
        | RigChange::LidarRollDeg(v)
        | RigChange::LidarPitchDeg(v)
        | RigChange::LidarYawDeg(v)
        | RigChange::SensorRollDeg(_, v)
        | RigChange::SensorPitchDeg(_, v)
        | RigChange::SensorYawDeg(_, v) => check_range(fc, *v, -180.0, 180.0)?,
        RigChange::CameraOffsetM(x, y, z)
        | RigChange::LidarOffsetM(x, y, z)
        | RigChange::SensorOffsetM(_, x, y, z) => {
            for v in [x, y, z] {
                check_range(fc, *v, -10.0, 10.0)?;
            }
        }
        RigChange::PrincipalPointShift(dx, dy) => {
            check_finite(fc, *dx)?;
            check_finite(fc, *dy)?;
        }
        RigChange::CameraMount(_)
        | RigChange::LidarMount(_)
        | RigChange::Intrinsics(_)
        | RigChange::Remount(..) => {}
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
