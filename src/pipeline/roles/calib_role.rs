//! The calibration role: publishes the run's epochs (the scenario's schedule, or the log's
//! calibration states, both handed over in the run spec by the supervisor, so this role never
//! builds a world or re-indexes a log) over the socket and into the table, with the
//! scenario's delivery faults.

use std::path::Path;
use std::time::Duration;

use calib::service::{CalibService, DeliveryPlan, Schedule, ServiceConfig};
use sensor_sim::scenario::{Fault, Scenario};
use shared::{CalibEpoch, Role};

use super::{ready, stop_flag};
use crate::error::CliError;
use crate::pipeline::spec::{RunSpec, SourceSpec};

/// The subscriber a delivery fault names (`None` for a role the service delivers nothing to).
fn wire_role(r: Role) -> Option<Role> {
    r.subscribes_to_calibration().then_some(r)
}

/// The delivery faults a scenario asks for.
#[must_use]
pub fn delivery_plan(scenario: &Scenario) -> DeliveryPlan {
    let mut plan = DeliveryPlan::new();
    for f in scenario.faults() {
        match *f {
            Fault::DelayCalib { epoch, to, ms } => {
                if let Some(role) = wire_role(to) {
                    plan = plan.delay(CalibEpoch(epoch), role, Duration::from_millis(ms));
                }
            }
            Fault::DropCalib { epoch, to } => {
                if let Some(role) = wire_role(to) {
                    plan = plan.drop_epoch(CalibEpoch(epoch), role);
                }
            }
            Fault::Kill { .. } => {}
        }
    }
    plan
}

/// Runs the calibration role.
///
/// # Errors
/// Exit 2 for a bad epoch list; exit 3 if the socket or table cannot be created.
pub fn run(run: &Path) -> Result<(), CliError> {
    let spec = RunSpec::load(run)?;
    let stop = stop_flag()?;
    let mut config = ServiceConfig::in_run_dir(run);
    config.plan = spec.delivery.clone();
    config.policy = spec.socket_policy.clone();
    // Runs faster than real time, and replays, know their whole schedule up front.
    config.schedule = if spec.max_rate || !matches!(spec.source, SourceSpec::Sim) {
        Schedule::AllAtStart
    } else {
        Schedule::default()
    };
    let mut service = CalibService::bind(config, spec.epochs.clone(), calib::clock::PipelineClock::start())
        .map_err(|e| CliError::internal(e.to_string()))?;
    service.set_clock(ready()?);
    let stats = service.run(&stop).map_err(|e| CliError::internal(e.to_string()))?;
    tracing::info!(?stats, "calibration service stopped");
    let json = serde_json::to_vec(&stats).map_err(|e| CliError::internal(e.to_string()))?;
    let path = run.join(crate::pipeline::spec::CALIB_RESULT_FILE);
    crate::pipeline::spec::write_private(&path, &json)
        .map_err(|e| CliError::internal(format!("{}: {e}", path.display())))?;
    Ok(())
}
