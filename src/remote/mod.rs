//! Runs across hosts over Zenoh (issue 17): the publishing side's settings (`drive`/`replay
//! --zenoh`), the bridge role's two faces (`publish`: rings to the network; `mirror`:
//! the network to rings, in `epochfuse remote`), and the `remote` command itself. The
//! protocol (keys, sample header, run messages, epoch gate, loss counters) is the `bridge`
//! crate's; this module only wires it to Zenoh sessions and rings. Without the `zenoh` build
//! feature every entry point says so in one line (exit 2).

#[cfg(feature = "zenoh")]
mod discover;
#[cfg(feature = "zenoh")]
pub mod mirror;
#[cfg(feature = "zenoh")]
pub mod publish;
#[cfg(feature = "zenoh")]
mod relay;
#[cfg(feature = "zenoh")]
mod session;

use std::path::Path;

use shared::sandbox::SandboxPlan;

use crate::error::CliError;
use crate::pipeline::spec::{RunSpec, SourceSpec, ZenohSpec};

/// Most seconds a run waits for its first subscriber: the supervisor gives a role 20 s to
/// say it is ready.
pub const MAX_WAIT_S: f64 = 15.0;

/// File (in `<out>/logs/`) where the mirror leaves its network counters for the summary.
pub const MIRROR_RESULT_FILE: &str = "bridge-result.json";

/// The one line of a binary built without the feature.
#[must_use]
pub fn without_zenoh() -> CliError {
    CliError::input("this binary was built without zenoh (rebuild with `cargo build --features zenoh`)")
}

/// The TCP port of an endpoint (`tcp/127.0.0.1:7447`, `tcp/[::1]:7447`, `tcp/localhost:7447`).
///
/// # Errors
/// One line for an endpoint that is not `tcp/HOST:PORT` (the only transport built in).
pub fn endpoint_port(endpoint: &str) -> Result<u16, CliError> {
    let bad = |why: &str| CliError::input(format!("--zenoh: {endpoint:?}: {why}"));
    let rest = endpoint
        .strip_prefix("tcp/")
        .ok_or_else(|| bad("not tcp/HOST:PORT (TCP is the transport built in)"))?;
    // Zenoh endpoints may carry `?metadata` or `#config` after the address.
    let addr = rest.split(['?', '#']).next().unwrap_or_default();
    let (host, port) = addr.rsplit_once(':').ok_or_else(|| bad("no :PORT"))?;
    if host.is_empty() {
        return Err(bad("no host"));
    }
    port.parse::<u16>().ok().filter(|&p| p != 0).ok_or_else(|| bad("the port is not in 1..=65535"))
}

/// The bridge settings of `drive`/`replay --zenoh`, checked at the door (`None` without
/// `--zenoh`).
///
/// # Errors
/// Exit 2 for a bad endpoint, wait or config file, or a binary built without zenoh.
pub fn publish_spec(
    args: &crate::cli::PipelineArgs,
    capacities: (usize, usize),
    expected_lidar_frames: u64,
    epochs: &[calib::CalibrationSet],
) -> Result<Option<ZenohSpec>, CliError> {
    let Some(endpoint) = &args.zenoh else { return Ok(None) };
    if cfg!(not(feature = "zenoh")) {
        return Err(without_zenoh());
    }
    endpoint_port(endpoint)?;
    if !(args.zenoh_wait.is_finite() && (0.0..=MAX_WAIT_S).contains(&args.zenoh_wait)) {
        return Err(CliError::input(format!(
            "--zenoh-wait: {} is not a number of seconds in [0, {MAX_WAIT_S}]",
            args.zenoh_wait
        )));
    }
    let config = args.zenoh_config.as_deref().map(checked_config).transpose()?;
    let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    Ok(Some(ZenohSpec {
        endpoint: endpoint.clone(),
        config,
        run_id: format!("run-{}-{ms}", std::process::id()),
        wait_s: args.zenoh_wait,
        camera_capacity: capacities.0 as u64,
        lidar_capacity: capacities.1 as u64,
        expected_lidar_frames,
        epochs: exact_epochs(epochs),
    }))
}

#[cfg(feature = "zenoh")]
fn exact_epochs(epochs: &[calib::CalibrationSet]) -> Vec<(u64, Vec<u8>)> {
    epochs.iter().map(|s| (s.epoch.0, bridge::epochs::encode(s))).collect()
}

#[cfg(not(feature = "zenoh"))]
fn exact_epochs(_: &[calib::CalibrationSet]) -> Vec<(u64, Vec<u8>)> {
    Vec::new()
}

/// A Zenoh config file, made absolute and read once here so a bad one is reported before
/// any process starts.
fn checked_config(path: &Path) -> Result<std::path::PathBuf, CliError> {
    let abs = std::path::absolute(path).map_err(|e| CliError::input(format!("{}: {e}", path.display())))?;
    shared::input::read_bounded(&abs, 1 << 20)
        .map_err(|e| CliError::input(format!("--zenoh-config: {e}")))?;
    #[cfg(feature = "zenoh")]
    zenoh::Config::from_file(&abs)
        .map_err(|e| CliError::input(format!("--zenoh-config: {}: {e}", abs.display())))?;
    Ok(abs)
}

/// The bridge role's sandbox: the host's network (it talks to other hosts), TCP to or
/// from its endpoint's port only, its config file, and (mirroring) the output folder for its
/// counters.
pub fn sandbox_plan(spec: &RunSpec, plan: &mut SandboxPlan) {
    let (net, mirror) = match &spec.source {
        SourceSpec::Remote(r) => (Some(&r.net), true),
        _ => (spec.zenoh.as_ref(), false),
    };
    let Some(net) = net else { return };
    plan.keep_network = true;
    if let Ok(port) = endpoint_port(&net.endpoint) {
        if mirror {
            plan.tcp_connect.push(port);
        } else {
            plan.tcp_bind.push(port);
        }
    }
    plan.read_only.extend(net.config.iter().cloned());
    if mirror {
        plan.read_write.push(spec.out.clone());
    }
}

/// Runs the bridge role.
///
/// # Errors
/// Exit 2 for a bad endpoint or config; exit 3 if the session or the rings fail.
pub fn run_role(run: &Path) -> Result<(), CliError> {
    #[cfg(feature = "zenoh")]
    {
        let spec = RunSpec::load(run)?;
        match (&spec.source, &spec.zenoh) {
            (SourceSpec::Remote(r), _) => mirror::run(run, &spec, &r.net),
            (_, Some(net)) => publish::run(run, &spec, net),
            _ => Err(CliError::internal("bridge role in a run without --zenoh")),
        }
    }
    #[cfg(not(feature = "zenoh"))]
    {
        let _ = run;
        Err(without_zenoh())
    }
}

/// Runs `epochfuse remote`: returns the summary and where it was written.
///
/// # Errors
/// Exit 2 for bad options, no run found, or a binary built without zenoh; 1 if an
/// invariant broke; 3 if a role failed.
pub fn run(
    args: &crate::cli::RemoteArgs,
) -> Result<(crate::pipeline::summary::Summary, std::path::PathBuf), CliError> {
    #[cfg(feature = "zenoh")]
    {
        discover::remote(args)
    }
    #[cfg(not(feature = "zenoh"))]
    {
        let _ = args;
        Err(without_zenoh())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_tcp_host_port() {
        assert_eq!(endpoint_port("tcp/127.0.0.1:7447").unwrap(), 7447);
        assert_eq!(endpoint_port("tcp/[::1]:7448").unwrap(), 7448);
        assert_eq!(endpoint_port("tcp/localhost:9?iface=lo").unwrap(), 9);
        for bad in ["udp/127.0.0.1:7447", "tcp/127.0.0.1", "tcp/:7447", "tcp/h:0", "tcp/h:70000", "7447"] {
            assert!(endpoint_port(bad).is_err(), "{bad}");
        }
    }
}
