//! Helpers shared by calib's integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use calib::{
    default_rig, CalibService, CalibSubscriber, CalibrationSet, PipelineClock, ServiceConfig, ServiceStats,
};
use nalgebra::UnitQuaternion;
use shared::{CalibEpoch, TimestampNs};

/// Epoch `e` of a rig whose camera yaw changes with the epoch, valid from `valid_from_ms`.
pub fn rig(e: u64, valid_from_ms: u64) -> CalibrationSet {
    let mut s = default_rig();
    s.epoch = CalibEpoch(e);
    s.valid_from = TimestampNs(valid_from_ms * 1_000_000);
    s.camera_to_vehicle_mut().rotation =
        UnitQuaternion::from_euler_angles(0.0, 0.0, (e as f64 * 0.1).to_radians())
            * s.camera_to_vehicle().rotation;
    s
}

/// A service running on its own thread until stopped.
pub struct Running {
    pub stop: Arc<AtomicBool>,
    pub handle: Option<JoinHandle<ServiceStats>>,
    pub socket: PathBuf,
    pub table: Option<PathBuf>,
    pub clock: PipelineClock,
}

impl Running {
    /// Binds in this thread (so the socket exists on return), serves in another.
    pub fn start(config: ServiceConfig, epochs: Vec<CalibrationSet>) -> Self {
        let clock = PipelineClock::start();
        let socket = config.socket_path.clone();
        let table = config.table_path.clone();
        let mut svc = CalibService::bind(config, epochs, clock).expect("bind");
        let stop = Arc::new(AtomicBool::new(false));
        let s = Arc::clone(&stop);
        let handle = std::thread::spawn(move || svc.run(&s).expect("run"));
        Self { stop, handle: Some(handle), socket, table, clock }
    }

    /// Stops the service and returns its counters.
    pub fn stop(mut self) -> ServiceStats {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.take().unwrap().join().unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Socket and table paths in a temp dir.
pub fn config_in(dir: &Path) -> ServiceConfig {
    ServiceConfig::in_run_dir(dir)
}

/// Receives updates until `n` arrived or `timeout` passed; returns (epoch, ms since start).
pub fn recv_n(
    sub: &mut CalibSubscriber,
    n: usize,
    timeout: Duration,
    clock: PipelineClock,
) -> Vec<(u64, u64)> {
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    while out.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        if let Some(set) = sub.recv_timeout(left).expect("recv") {
            out.push((set.epoch.0, clock.now().0 / 1_000_000));
        }
    }
    out
}

/// Epoch numbers only.
pub fn epochs(v: &[(u64, u64)]) -> Vec<u64> {
    v.iter().map(|x| x.0).collect()
}

/// Polls `f` every 5 ms until it is true or `timeout` passes.
pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    f()
}
