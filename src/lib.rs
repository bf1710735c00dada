//! # epochfuse: the command line and the supervisor
//!
//! The binary (`src/main.rs`) parses arguments and calls [`run`]. This library builds a
//! typed configuration for each command and calls into the crates that do the work:
//! `shared` (rings), `calib` (calibration), `sensor-sim` (simulation and logs), `fusion`.
#![forbid(unsafe_code)]

pub mod cli;
pub mod error;
pub mod inspect;

use cli::{CalibCommand, Cli, Command};
pub use error::CliError;

/// Runs a parsed command line.
///
/// # Errors
/// A [`CliError`] with the exit code and the one line to print.
pub fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Inspect(a) => inspect::run(&a.segment, a.json),
        Command::Calib(CalibCommand::Check { file }) => Err(CliError::internal(format!("calib check {}: not wired yet", file.display()))),
        other => Err(CliError::internal(format!("{other:?}: not wired yet"))),
    }
}
