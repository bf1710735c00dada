//! Which sandbox each role gets, and what the run's summary says about it.
//!
//! A role sandboxes itself first thing, before it reads its inputs or starts a thread
//! ([`enter`]), with the plan [`plan`] derives from its role and the run's spec:
//!
//! | role | read-write | read-only |
//! |---|---|---|
//! | every role | its run directory (segments, locks, socket, spec) | — |
//! | fusion | + the output directory (overlays) | |
//! | recorder | + the folder of the MCAP file | |
//! | replayer, calib (replay) | | the log being replayed |
//!
//! Everything else on the filesystem is refused (EACCES), another run's directory included;
//! no role may bind or connect a TCP port, and each has its own network, IPC and mount
//! namespaces when the privileges allow. Landlock rules cover whole directories, and the
//! segments of a run do not exist when its roles start, so within its own run directory a
//! role can open every segment: the checksum and the epoch checks, not the sandbox, are
//! what catch a scribbling neighbour there.
//!
//! The role reports what it got on its `ready` line; the supervisor gathers the reports into
//! [`SandboxSummary`] and prints one warning line per run when a step was refused.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use shared::sandbox::{self, SandboxPlan, SandboxReport, Step};
use shared::Role;

use super::spec::{RunSpec, SourceSpec};
use crate::error::CliError;

/// The report of this process's sandbox, for its `ready` line.
static REPORT: OnceLock<SandboxReport> = OnceLock::new();

/// What a role may touch, from its role and its run.
#[must_use]
pub fn plan(role: Role, spec: &RunSpec, run: &Path) -> SandboxPlan {
    let mut plan = SandboxPlan { read_write: vec![run.to_path_buf()], ..SandboxPlan::default() };
    match role {
        Role::Fusion => plan.read_write.push(spec.out.clone()),
        Role::Recorder => {
            if let Some(dir) = spec.record.as_deref().and_then(Path::parent) {
                plan.read_write.push(dir_or_cwd(dir));
            }
        }
        Role::Bridge => crate::remote::sandbox_plan(spec, &mut plan),
        _ => {}
    }
    if let (Role::Replayer | Role::Calib | Role::Vehicle, SourceSpec::Replay { path, .. }) =
        (role, &spec.source)
    {
        plan.read_only.push(path.clone());
    }
    plan
}

fn dir_or_cwd(dir: &Path) -> PathBuf {
    if dir.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        dir.to_path_buf()
    }
}

/// Sandboxes this role process if the run asks for it, and remembers the report for
/// [`ready_line`].
///
/// # Errors
/// Exit 3 when the sandbox cannot even be attempted (threads already running, a path of the
/// plan missing): a bug or a broken run directory, not a missing kernel feature.
pub fn enter(role: Role, spec: &RunSpec, run: &Path) -> Result<(), CliError> {
    if !spec.sandbox {
        return Ok(());
    }
    let report = sandbox::apply(&plan(role, spec, run))
        .map_err(|e| CliError::internal(format!("{role} role: {e}")))?;
    let _ = REPORT.set(report);
    Ok(())
}

/// `epochfuse sandbox-probe`: sandboxes this process as `role` of the run at `run` (whatever
/// the run's `--sandbox`), then tries each of `open` and `connect`, printing one JSON object:
/// `{"sandbox": report, "open": {path: outcome}, "connect": outcome}`, where an outcome is
/// `"ok"`, `"EACCES"` or the error's text.
///
/// # Errors
/// As [`enter`]; exit 3 if the spec cannot be read.
pub fn probe(role: Role, run: &Path, open: &[PathBuf], connect: Option<u16>) -> Result<(), CliError> {
    let spec = RunSpec::load(run)?;
    let report = sandbox::apply(&plan(role, &spec, run)).map_err(|e| CliError::internal(e.to_string()))?;
    let outcome = |r: std::io::Result<()>| match r {
        Ok(()) => "ok".to_string(),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => "EACCES".to_string(),
        Err(e) => e.to_string(),
    };
    let opened: BTreeMap<String, String> =
        open.iter().map(|p| (p.display().to_string(), outcome(std::fs::File::open(p).map(drop)))).collect();
    let connected = connect.map(|port| outcome(std::net::TcpStream::connect(("127.0.0.1", port)).map(drop)));
    let json = serde_json::json!({ "sandbox": report, "open": opened, "connect": connected });
    println!("{json}");
    Ok(())
}

/// The role's `ready` line: `ready`, then its sandbox report as JSON when it has one.
#[must_use]
pub fn ready_line() -> String {
    match REPORT.get().and_then(|r| serde_json::to_string(r).ok()) {
        Some(json) => format!("ready {json}"),
        None => "ready".to_string(),
    }
}

/// Parses a role's `ready` line: `Some(report)` for a sandboxed role, `Some(None)` for a
/// plain `ready`, `None` for any other line.
#[must_use]
pub fn parse_ready_line(line: &str) -> Option<Option<SandboxReport>> {
    let rest = line.trim().strip_prefix("ready")?;
    if rest.is_empty() {
        return Some(None);
    }
    rest.strip_prefix(' ').map(|json| serde_json::from_str(json).ok())
}

/// The summary's `sandbox` key: the Landlock ABI and, per role, the steps it got.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxSummary {
    /// The kernel's Landlock ABI (0: none, or the sandbox was off).
    pub landlock_abi: u32,
    /// Per role (by name), the steps in force in its last incarnation.
    pub roles: BTreeMap<String, Vec<Step>>,
}

impl SandboxSummary {
    /// The summary of the reports the roles gave.
    #[must_use]
    pub fn of(reports: &BTreeMap<Role, SandboxReport>) -> Self {
        Self {
            landlock_abi: reports.values().map(|r| r.landlock_abi).max().unwrap_or(0),
            roles: reports.iter().map(|(role, r)| (role.name().to_string(), r.got.clone())).collect(),
        }
    }

    /// One warning line for the whole run when some role did not get every step, naming
    /// each missing step once with its reason and the roles it concerns.
    #[must_use]
    pub fn warning(reports: &BTreeMap<Role, SandboxReport>) -> Option<String> {
        let mut missing: BTreeMap<Step, (String, Vec<&str>)> = BTreeMap::new();
        for (role, report) in reports {
            for (step, why) in &report.missing {
                missing.entry(*step).or_insert_with(|| (why.clone(), Vec::new())).1.push(role.name());
            }
        }
        if missing.is_empty() {
            return None;
        }
        let parts: Vec<String> = missing
            .iter()
            .map(|(step, (why, roles))| format!("{} ({why}) for {}", step_name(*step), roles.join(", ")))
            .collect();
        Some(format!("warning: the sandbox is incomplete, the run goes on without: {}", parts.join("; ")))
    }
}

fn step_name(step: Step) -> String {
    serde_json::to_value(step).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_lines_round_trip() {
        assert_eq!(parse_ready_line("ready"), Some(None));
        assert_eq!(parse_ready_line("readyx"), None);
        assert_eq!(parse_ready_line("hello"), None);
        let report = SandboxReport { landlock_abi: 7, got: vec![Step::NoNewPrivs], missing: vec![] };
        let line = format!("ready {}", serde_json::to_string(&report).unwrap());
        assert_eq!(parse_ready_line(&line), Some(Some(report)));
    }

    #[test]
    fn one_warning_names_each_missing_step_once() {
        let gap = SandboxReport {
            landlock_abi: 3,
            got: vec![Step::NoNewPrivs, Step::LandlockFs],
            missing: vec![(Step::LandlockNet, "needs ABI 4".into())],
        };
        let full = SandboxReport { landlock_abi: 3, got: vec![Step::NoNewPrivs], missing: vec![] };
        let reports = BTreeMap::from([(Role::Camera, gap.clone()), (Role::Lidar, gap), (Role::Fusion, full)]);
        let w = SandboxSummary::warning(&reports).unwrap();
        assert_eq!(w.matches("landlock_net").count(), 1, "{w}");
        assert!(w.contains("camera, lidar") && !w.contains("fusion") && !w.contains('\n'), "{w}");
        let s = SandboxSummary::of(&reports);
        assert_eq!(s.landlock_abi, 3);
        assert_eq!(s.roles["fusion"], vec![Step::NoNewPrivs]);
    }
}
