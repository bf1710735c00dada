//! Render timing: milliseconds per camera frame (`camera/N`: drawn on N threads, 1 and the
//! renderer's default) and per lidar sweep, for the default and the full scenarios. Plain
//! `std::time::Instant`; run with `cargo bench -p sensor-sim --bench render`.
//!
//! Each renderer writes into a preallocated fixed-size sink reused for every frame, as a
//! producer writes into a ring slot. Frames are spread along one lap of the trajectory. The
//! table gives mean, min, median, p99 and max wall-clock milliseconds (the min is the least
//! disturbed by other processes on a shared machine) and the process's CPU milliseconds per
//! frame (all threads; what a loaded machine does not stretch). Arguments other than
//! `--quick` keep the rows whose "scenario sensor" contains one of them (`camera/1`,
//! `full lidar`).
//!
//! `--gap-ms=N` waits N ms before each timed frame, as a producer in a real-time drive sleeps
//! between frames (a frame after an idle gap can render slower than one back to back: the
//! idle core's caches go cold); with `--spin` the wait is a busy-wait instead, which keeps the
//! core awake (its CPU column then includes the wait).
//!
//! `pair` (default scenario only) renders a camera frame and a lidar sweep of the same
//! instant at the same time, each on its own thread released together, as a drive does at a
//! fused-pair instant (both sensors then share the cores): its times are the wall time until
//! both are done, what the capture → fused latency of a pair starts with.

#[path = "../tests/sim_common/mod.rs"]
mod sim_common;

use sensor_sim::{CameraRenderer, LidarRenderer, Scenario};
use sim_common::Slot;
use std::path::Path;
use std::time::{Duration, Instant};

/// (mean, min, median, p99, max) in milliseconds.
fn stats(mut v: Vec<Duration>) -> (f64, f64, f64, f64, f64) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mean = v.iter().map(|d| ms(*d)).sum::<f64>() / v.len() as f64;
    let p99 = v[(v.len() * 99).div_ceil(100) - 1];
    (mean, ms(v[0]), ms(v[v.len() / 2]), ms(p99), ms(v[v.len() - 1]))
}

/// CPU time of the whole process so far (every thread, live or ended), milliseconds, from
/// `/proc/self/stat` (user + system, in the kernel's fixed 100 Hz ticks); 0 elsewhere. A
/// loaded machine stretches wall-clock times but not this.
fn cpu_ms() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let tick = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    // After the command name: state is field 3, utime 14, stime 15.
    (tick(11) + tick(12)) as f64 * 10.0
}

/// One row of the table: the timings `d` of `sensor` in scenario `name`, and the CPU
/// milliseconds they took in all, per frame.
fn report(name: &str, sensor: &str, size: &str, (d, cpu): (Vec<Duration>, f64), budget: f64) {
    let cpu = cpu / d.len() as f64;
    let (mean, min, p50, p99, max) = stats(d);
    println!(
        "{name:<10} {sensor:<8} {size:>10} {mean:>9.2} {min:>9.2} {p50:>9.2} {p99:>9.2} {max:>9.2} {cpu:>9.2} \
         {budget:>10.1}"
    );
}

/// What happens before each timed frame (`--gap-ms=N`, `--spin`).
#[derive(Clone, Copy)]
enum Gap {
    None,
    Sleep(Duration),
    Spin(Duration),
}

impl Gap {
    fn from_args() -> Self {
        let ms = std::env::args().find_map(|a| a.strip_prefix("--gap-ms=").map(str::to_owned));
        let ms: u64 =
            ms.map(|v| v.parse().unwrap_or_else(|_| panic!("--gap-ms={v}: not a number"))).unwrap_or(0);
        let d = Duration::from_millis(ms);
        match (ms, std::env::args().any(|a| a == "--spin")) {
            (0, _) => Self::None,
            (_, false) => Self::Sleep(d),
            (_, true) => Self::Spin(d),
        }
    }

    fn wait(self) {
        match self {
            Self::None => {}
            Self::Sleep(d) => std::thread::sleep(d),
            Self::Spin(d) => {
                let end = Instant::now() + d;
                while Instant::now() < end {
                    std::hint::spin_loop();
                }
            }
        }
    }
}

/// Renders a camera frame at each of `times`, into a reused slot: wall times, CPU ms in all.
fn time_camera(
    cam: &mut CameraRenderer,
    times: &[shared::TimestampNs],
    len: usize,
    gap: Gap,
) -> (Vec<Duration>, f64) {
    let mut slot = Slot::new(vec![0; len]);
    cam.render(times[0], &mut slot).expect("slot fits");
    let cpu0 = cpu_ms();
    let d = times
        .iter()
        .map(|&t| {
            slot.len = 0;
            gap.wait();
            let t0 = Instant::now();
            cam.render(t, &mut slot).expect("slot fits");
            t0.elapsed()
        })
        .collect();
    (d, cpu_ms() - cpu0)
}

/// Renders a camera frame and a lidar sweep of each of `times` at once (the lidar on a second
/// thread, both released by one barrier): wall times until both are done, CPU ms in all.
fn time_pair(
    cam: &mut CameraRenderer,
    lidar: &mut LidarRenderer,
    times: &[shared::TimestampNs],
    lens: (usize, usize),
    gap: Gap,
) -> (Vec<Duration>, f64) {
    let mut cam_slot = Slot::new(vec![0; lens.0]);
    let mut lidar_slot = Slot::new(vec![0; lens.1]);
    cam.render(times[0], &mut cam_slot).expect("slot fits");
    lidar.render(times[0], 0, &mut lidar_slot).expect("slot fits");
    let (start, end) = (std::sync::Barrier::new(2), std::sync::Barrier::new(2));
    let cpu0 = cpu_ms();
    let d = std::thread::scope(|s| {
        s.spawn(|| {
            for (i, &t) in times.iter().enumerate() {
                lidar_slot.len = 0;
                start.wait();
                lidar.render(t, i as u64, &mut lidar_slot).expect("slot fits");
                end.wait();
            }
        });
        times
            .iter()
            .map(|&t| {
                cam_slot.len = 0;
                gap.wait();
                start.wait();
                let t0 = Instant::now();
                cam.render(t, &mut cam_slot).expect("slot fits");
                end.wait();
                t0.elapsed()
            })
            .collect()
    });
    (d, cpu_ms() - cpu0)
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let quick = std::env::args().any(|a| a == "--quick");
    // Other arguments (not flags) keep only the rows whose "scenario sensor" contains one.
    let filters: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let wanted = |row: &str| filters.is_empty() || filters.iter().any(|f| row.contains(f.as_str()));
    let frames = if quick { 10 } else { 120 };
    let gap = Gap::from_args();
    println!(
        "{:<10} {:<8} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>10}",
        "scenario",
        "sensor",
        "size",
        "mean ms",
        "min ms",
        "p50 ms",
        "p99 ms",
        "max ms",
        "cpu ms",
        "budget ms"
    );
    for (name, file) in [("default", "configs/drives/default.ron"), ("full", "configs/drives/full.ron")] {
        let scenario = Scenario::load(&root.join(file)).unwrap_or_else(|e| panic!("{e}"));
        let lap = scenario.trajectory().length() / scenario.trajectory().speed();
        let times: Vec<shared::TimestampNs> =
            (0..frames).map(|i| shared::TimestampNs((lap * i as f64 / frames as f64 * 1e9) as u64)).collect();

        let c = scenario.camera();
        let budget = if name == "default" { 10.0 } else { 33.0 };
        let size = format!("{}x{}", c.width, c.height);
        let mut cam = CameraRenderer::new(&scenario);
        let threads = cam.threads();
        for n in [1, threads] {
            if !wanted(&format!("{name} camera/{n}")) {
                continue;
            }
            cam.set_threads(n);
            let d = time_camera(&mut cam, &times, scenario.camera_payload_len(), gap);
            report(name, &format!("camera/{n}"), &size, d, budget);
        }

        if name == "default" && wanted("default pair") {
            let mut lidar = LidarRenderer::new(&scenario);
            let lens = (scenario.camera_payload_len(), scenario.lidar_max_payload_len());
            let d = time_pair(&mut cam, &mut lidar, &times, lens, gap);
            report(name, "pair", "cam+lidar", d, budget);
        }

        if !wanted(&format!("{name} lidar")) {
            continue;
        }
        let mut lidar = LidarRenderer::new(&scenario);
        let mut slot = Slot::new(vec![0; scenario.lidar_max_payload_len()]);
        lidar.render(times[0], 0, &mut slot).expect("slot fits");
        let mut d = Vec::new();
        let mut points = 0;
        let cpu0 = cpu_ms();
        for (i, &t) in times.iter().enumerate() {
            slot.len = 0;
            gap.wait();
            let t0 = Instant::now();
            points += lidar.render(t, i as u64, &mut slot).expect("slot fits").points;
            d.push(t0.elapsed());
        }
        let l = scenario.lidar();
        let budget = if name == "default" { 20.0 } else { 100.0 };
        report(name, "lidar", &format!("{}x{}", l.beams, l.azimuth_steps), (d, cpu_ms() - cpu0), budget);
        println!("{:<10} {:<8} mean points per sweep: {}", "", "", points / frames);
    }
}
