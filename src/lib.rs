//! # epochfuse: the command line and the supervisor
//!
//! The binary (`src/main.rs`) parses arguments and calls [`run`]. This library builds a
//! typed configuration for each command and calls into the crates that do the work:
//! `shared` (rings), `calib` (calibration), `sensor-sim` (simulation), `logs` (recorded logs),
//! `fusion`.
#![forbid(unsafe_code)]

pub mod can_cmd;
pub mod cli;
pub mod error;
pub mod export;
pub mod inspect;
pub mod pipeline;
pub mod remote;
pub mod top;

use std::time::Duration;

use cli::{CalibCommand, Cli, Command, SimCommand};
pub use error::CliError;
use sensor_sim::scenario::Scenario;

/// Sends `tracing` output of role processes to stderr (their log file), quiet by default in
/// interactive commands.
fn init_tracing(role: bool) {
    // Zenoh logs every refused connection attempt while a remote waits for its publisher.
    let default = if role { "info,zenoh=warn" } else { "warn,zenoh=error" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("EPOCHFUSE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}

/// Runs a parsed command line.
///
/// # Errors
/// A [`CliError`] with the exit code and the one line to print.
pub fn run(cli: Cli) -> Result<(), CliError> {
    init_tracing(matches!(cli.command, Command::Role(_)));
    match cli.command {
        Command::Drive(a) => {
            let summary = pipeline::drive(&a)?;
            finish(&summary, &a.pipeline)
        }
        Command::Replay(a) => {
            let summary = pipeline::replay(&a)?;
            finish(&summary, &a.pipeline)
        }
        Command::Top(a) => top::run(&top::TopConfig {
            run: a.run,
            root: shared::rundir::resolve_root(a.shm_root.as_deref()),
            once: a.once,
            interval: Duration::from_millis(a.interval_ms.max(50)),
        }),
        Command::Inspect(a) => inspect::run(&a.segment, a.json),
        Command::Calib(CalibCommand::Check { file }) => {
            let text = calib::file::read_source(&file).map_err(|e| CliError::input(e.to_string()))?;
            if calib::policy::is_policy_text(&text) {
                let p =
                    calib::policy::check_policy_file(&file).map_err(|e| CliError::input(e.to_string()))?;
                let roles: Vec<&str> = p.roles.iter().map(|r| r.name()).collect();
                error::out(&format!("{}: ok (socket policy; roles {})\n", file.display(), roles.join(", ")));
                return Ok(());
            }
            let set = calib::check_file(&file).map_err(|e| CliError::input(e.to_string()))?;
            error::out(&format!(
                "{}: ok (epoch {}, camera {}×{})\n",
                file.display(),
                set.epoch,
                set.camera().width(),
                set.camera().height()
            ));
            Ok(())
        }
        Command::Sim(SimCommand::Export { format: _, frames, dir, scenario }) => {
            let scenario = match scenario {
                Some(p) => Scenario::load(&p).map_err(|e| CliError::input(e.to_string()))?,
                None => Scenario::builtin_default(),
            };
            let bar = indicatif::ProgressBar::new(frames as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template("[{elapsed_precise}] [{bar:30}] {pos}/{len} frames")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            let written = export::export_kitti(&scenario, frames, &dir, &mut |n| bar.set_position(n as u64))
                .map_err(|e| CliError::input(e.to_string()))?;
            bar.finish_and_clear();
            let left_out = scenario.cameras().len().saturating_sub(written.len());
            let cameras = match (written.as_slice(), left_out) {
                ([_], _) => String::new(),
                (w, 0) => format!(" (cameras {} as image_2, image_3)", w.join(", ")),
                (w, n) => format!(
                    " (cameras {} as image_2, image_3; the KITTI layout holds two colour cameras, {n} left out)",
                    w.join(", ")
                ),
            };
            error::out(&format!("wrote {frames} frames in KITTI layout to {}{cameras}\n", dir.display()));
            Ok(())
        }
        Command::Remote(a) => {
            let (summary, path) = remote::run(&a)?;
            finish_at(&summary, &path)
        }
        Command::Can(c) => can_cmd::run(&c),
        Command::Role(a) => pipeline::roles::run(a.role, &a.run, a.sensor.as_ref()),
        Command::SandboxProbe(a) => pipeline::sandbox::probe(a.role, &a.run, &a.open, a.connect),
    }
}

fn finish(summary: &pipeline::summary::Summary, args: &cli::PipelineArgs) -> Result<(), CliError> {
    finish_at(summary, &args.local.summary.clone().unwrap_or_else(|| args.local.out.join("summary.json")))
}

/// Prints the run's line; exit 1 if it broke an invariant.
fn finish_at(summary: &pipeline::summary::Summary, path: &std::path::Path) -> Result<(), CliError> {
    error::out(&format!("{}\n", pipeline::human_summary(summary, path)));
    if !summary.invariants.ok {
        let i = &summary.invariants;
        return Err(CliError::invariant(format!(
            "invariant broken: cross-epoch fused {}, fused twice {}, torn accepted {}, mistagged {}, missing calibration {}, accounted lidar {} camera {}",
            i.cross_epoch_fused,
            i.fused_twice,
            i.torn_frames_accepted,
            i.mistagged_frames,
            i.missing_calibration,
            i.lidar_accounted,
            i.camera_accounted
        )));
    }
    Ok(())
}
