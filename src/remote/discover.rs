//! `epochfuse remote`: finds the run published at an endpoint (its start message and the
//! calibration table so far, both by query, so a remote may join at any time), lays out a
//! local run with the same rates and slot sizes, and runs it under the pipeline supervisor
//! with the bridge role mirroring the streams in the producers' place. The mirror's network
//! counters go into the summary as `streams.<sensor>.network_*`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bridge::control::{RunMessage, RunStart};
use bridge::Keys;
use zenoh::Wait as _;

use super::mirror::MirrorResult;
use super::session::{self, Side};
use crate::cli::{OnOff, RemoteArgs};
use crate::error::CliError;
use crate::pipeline::spec::{RemoteSpec, RunSpec, SourceSpec, ZenohSpec};
use crate::pipeline::summary::{Source, Summary};
use crate::pipeline::supervisor::{self, Supervise};

/// Runs `epochfuse remote`.
///
/// # Errors
/// Exit 2 for bad options or no run at the endpoint; 1 if an invariant broke; 3 if a role
/// failed.
pub fn remote(args: &RemoteArgs) -> Result<(Summary, PathBuf), CliError> {
    if !(args.wait.is_finite() && args.wait > 0.0 && args.wait <= 3600.0) {
        return Err(CliError::input(format!(
            "--wait: {} is not a number of seconds in (0, 3600]",
            args.wait
        )));
    }
    super::endpoint_port(&args.endpoint)?;
    let config = args.zenoh_config.as_deref().map(super::checked_config).transpose()?;
    let out = std::path::absolute(&args.local.out)
        .map_err(|e| CliError::input(format!("{}: {e}", args.local.out.display())))?;
    std::fs::create_dir_all(&out).map_err(|e| {
        CliError::input(format!("{}: cannot create the output directory: {e}", out.display()))
    })?;
    let summary_path = match &args.local.summary {
        Some(p) => std::path::absolute(p).map_err(|e| CliError::input(format!("{}: {e}", p.display())))?,
        None => out.join("summary.json"),
    };
    let mut net = ZenohSpec {
        endpoint: args.endpoint.clone(),
        config,
        run_id: String::new(),
        wait_s: 0.0,
        camera_capacity: 0,
        lidar_capacity: 0,
        expected_lidar_frames: 0,
        epochs: Vec::new(),
    };
    let (start, epochs) = find_run(&net, Instant::now() + Duration::from_secs_f64(args.wait))?;
    net.run_id.clone_from(&start.run_id);
    net.camera_capacity = start.camera_capacity;
    net.lidar_capacity = start.lidar_capacity;
    net.expected_lidar_frames = start.expected_lidar_frames;
    let source = if start.source == "replay" { Source::Replay } else { Source::Sim };
    let spec = RunSpec {
        source: SourceSpec::Remote(RemoteSpec { net, source }),
        pairing: args.local.pairing,
        camera_hz: start.camera_hz,
        lidar_hz: start.lidar_hz,
        max_rate: start.max_rate,
        rate: 1.0,
        duration_s: start.duration_s,
        out: out.clone(),
        overlay_every: args.local.overlay_every,
        per_pair: args.per_pair,
        record: None,
        sandbox: args.local.sandbox == OnOff::On,
        // The bridge relays the epochs the publisher announces after we started.
        socket_policy: calib::policy::SocketPolicy::default().relaying(shared::Role::Bridge),
        epochs,
        delivery: calib::DeliveryPlan::default(),
        // The CAN stream is not bridged: a remote fuses without deskew.
        vehicle: None,
        deskew: false,
        zenoh: None,
        sensors: Vec::new(),
    };
    let capacity = |c: u64| usize::try_from(c).unwrap_or(usize::MAX);
    let shm_bytes =
        crate::pipeline::segments::run_bytes(capacity(start.camera_capacity), capacity(start.lidar_capacity))
            .ok_or_else(|| CliError::input("the remote run's frames do not fit a segment"))?;
    let result_path = out.join("logs").join(super::MIRROR_RESULT_FILE);
    let _ = std::fs::remove_file(&result_path);
    let summary = supervisor::supervise(Supervise {
        spec,
        root: shared::rundir::resolve_root(args.local.shm_root.as_deref()),
        run_files: Vec::new(),
        kills: Vec::new(),
        quiet: args.local.quiet,
        summary_path: summary_path.clone(),
        expected_lidar_frames: start.expected_lidar_frames,
        lidar_period_s: 1.0 / start.lidar_hz,
        shm_bytes,
    })?;
    add_network_counters(&summary_path, &result_path)?;
    Ok((summary, summary_path))
}

/// Connects (retrying until `deadline`: the publisher may not be up yet), queries the run's
/// start message and its calibration table.
fn find_run(net: &ZenohSpec, deadline: Instant) -> Result<(RunStart, Vec<calib::CalibrationSet>), CliError> {
    let session = loop {
        match session::open(net, Side::Connect) {
            Ok(s) => break s,
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    };
    let start = loop {
        if let Some(found) = query_start(&session)? {
            break found;
        }
        if Instant::now() >= deadline {
            return Err(CliError::input(format!("{}: no run published there", net.endpoint)));
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let keys = Keys::new(&start.run_id).map_err(|e| CliError::input(e.to_string()))?;
    let mut epochs = Vec::new();
    let replies = session.get(keys.calib_all()).wait().map_err(|e| session::broke("query", &e))?;
    while let Ok(reply) = replies.recv() {
        let Ok(sample) = reply.result() else { continue };
        match bridge::epochs::decode(&keys, sample.key_expr().as_str(), &sample.payload().to_bytes()) {
            Ok(set) => epochs.push(set),
            Err(e) => tracing::warn!("{e}; calibration sample refused"),
        }
    }
    epochs.sort_by_key(|s| s.epoch);
    epochs.dedup_by_key(|s| s.epoch);
    let _ = session.close().wait();
    Ok((start, epochs))
}

/// The start message of the run published at the session's endpoint, if one answers.
fn query_start(session: &zenoh::Session) -> Result<Option<RunStart>, CliError> {
    let selector = format!("{}/*/run", bridge::keys::ROOT);
    let replies = session.get(selector).wait().map_err(|e| session::broke("query", &e))?;
    let mut ended = None;
    while let Ok(reply) = replies.recv() {
        let Ok(sample) = reply.result() else { continue };
        match RunMessage::decode(&sample.payload().to_bytes()) {
            Ok(RunMessage::Start(start)) => return Ok(Some(start)),
            Ok(RunMessage::End(_)) => ended = Some(sample.key_expr().as_str().to_owned()),
            Err(e) => tracing::warn!("{}: {e}", sample.key_expr()),
        }
    }
    match ended {
        Some(key) => Err(CliError::input(format!("{key}: that run has already ended"))),
        None => Ok(None),
    }
}

/// Adds the mirror's counters to the summary's streams (`network_lost`, ...).
fn add_network_counters(summary_path: &Path, result_path: &Path) -> Result<(), CliError> {
    let Ok(bytes) = std::fs::read(result_path) else {
        return Err(CliError::internal(format!("{}: the bridge left no counters", result_path.display())));
    };
    let result: MirrorResult = serde_json::from_slice(&bytes)
        .map_err(|e| CliError::internal(format!("{}: {e}", result_path.display())))?;
    let io = |e: &dyn std::fmt::Display| CliError::input(format!("{}: {e}", summary_path.display()));
    let text = std::fs::read(summary_path).map_err(|e| io(&e))?;
    let mut json: serde_json::Value = serde_json::from_slice(&text).map_err(|e| io(&e))?;
    // The pairs name their frames by the source's numbers, as the publisher's summary does.
    for f in json.get_mut("frames").and_then(|v| v.as_array_mut()).into_iter().flatten() {
        for (key, seqs) in [("camera_seq", &result.camera_seqs), ("lidar_seq", &result.lidar_seqs)] {
            if let Some(local) = f.get(key).and_then(serde_json::Value::as_u64) {
                f[key] = seqs.source_of(local).into();
            }
        }
    }
    for (name, net) in [("camera", result.camera), ("lidar", result.lidar)] {
        let (Some(stream), Ok(serde_json::Value::Object(extra))) = (
            json.pointer_mut(&format!("/streams/{name}")).and_then(|v| v.as_object_mut()),
            serde_json::to_value(net),
        ) else {
            continue;
        };
        stream.extend(extra);
    }
    if let Some(obj) = json.as_object_mut() {
        obj.insert(
            "remote".into(),
            serde_json::json!({
                "calib_invalid": result.calib_invalid,
                "epochs_relayed": result.epochs_relayed,
                "source_ended": result.source_ended,
                "mirror_s": result.mirror_s,
                "transport_ms": result.transport_ms,
            }),
        );
    }
    let text = serde_json::to_string_pretty(&json).map_err(|e| io(&e))? + "\n";
    std::fs::write(summary_path, text).map_err(|e| io(&e))
}
