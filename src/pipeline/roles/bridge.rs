//! The bridge role (`--zenoh`, `epochfuse remote`): see [`crate::remote`].

use std::path::Path;

use crate::error::CliError;

/// Runs the bridge role.
///
/// # Errors
/// See [`crate::remote::run_role`].
pub fn run(run: &Path) -> Result<(), CliError> {
    crate::remote::run_role(run)
}
