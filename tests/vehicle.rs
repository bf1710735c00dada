//! The vehicle bus in a drive (issue 16): the `vehicle` role's CAN frames reach fusion, every
//! observed response time stays within its analysed bound, and deskewing the scanning lidar's
//! sweeps with the bus's ego-motion raises consistency.

mod common;

use common::{summary, Sandbox};

fn drive(sb: &Sandbox, name: &str, extra: &[&str]) -> serde_json::Value {
    let _turn = common::pipeline_turn();
    let out = sb.path(name);
    let mut args = vec!["drive"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--out", out.to_str().unwrap(), "--quiet", "--overlay-every", "0"]);
    let run = sb.run(&args);
    run.expect_code(0);
    summary(&out.join("summary.json"))
}

#[test]
fn highway_bus_meets_its_bounds_and_deskew_beats_no_deskew() {
    let sb = Sandbox::new();
    let scenario = common::root().join("configs/drives/highway.ron");
    let sc = scenario.to_str().unwrap();
    let on = drive(&sb, "on", &[sc, "--max-rate", "--duration", "6"]);
    let off = drive(&sb, "off", &[sc, "--max-rate", "--duration", "6", "--deskew", "off"]);
    for s in [&on, &off] {
        let can = &s["can"];
        assert!(can["frames"].as_u64().unwrap() > 5_000, "{can}");
        assert_eq!(can["deadline_misses"], 0, "{can}");
        let load = can["bus_load"].as_f64().unwrap();
        assert!(load > 0.1 && load < 1.0, "{can}");
        let wcrt = can["wcrt_us"].as_object().unwrap();
        for (id, seen) in can["max_response_us"].as_object().unwrap() {
            let bound = wcrt[id].as_f64().unwrap_or_else(|| panic!("{id}: no bound"));
            let seen = seen.as_f64().unwrap();
            assert!(seen > 0.0 && seen <= bound, "{id}: observed {seen} µs > bound {bound} µs");
        }
        assert!(wcrt.contains_key("0x1a0") && wcrt.contains_key("0x1a8"), "{can}");
        assert_eq!(s["invariants"]["ok"], true, "{s}");
    }
    let (c_on, c_off) =
        (on["consistency"]["mean"].as_f64().unwrap(), off["consistency"]["mean"].as_f64().unwrap());
    eprintln!("highway consistency: deskew on {c_on:.4}, off {c_off:.4}");
    assert!(c_on >= c_off + 0.02, "deskew on {c_on} vs off {c_off}");
}

#[test]
fn a_drive_without_a_bus_has_no_can_key_and_refuses_deskew_on() {
    let sb = Sandbox::new();
    let s = drive(&sb, "plain", &["--duration", "1", "--max-rate"]);
    assert!(s.get("can").is_none(), "{s}");
    let run = sb.run(&["drive", "--duration", "1", "--deskew", "on", "--quiet"]);
    run.expect_code(2);
    assert!(run.stderr().contains("--deskew on"), "{}", run.describe());
}

#[test]
fn a_bad_dbc_is_refused_at_the_door() {
    let sb = Sandbox::new();
    let text = std::fs::read_to_string(common::root().join("configs/drives/highway.ron")).unwrap();
    let bad = sb.path("bad.ron");
    std::fs::write(&bad, text.replace("../can/vehicle.dbc", "/nonexistent/x.dbc")).unwrap();
    let run = sb.run(&["drive", bad.to_str().unwrap(), "--quiet"]);
    run.expect_code(2);
    assert!(run.stderr().contains("vehicle.dbc"), "{}", run.describe());
    assert_eq!(run.stderr().trim().lines().count(), 1, "{}", run.describe());
}

#[test]
fn a_recorded_bus_round_trips_and_the_replay_deskews_the_same_way() {
    let sb = Sandbox::new();
    let scenario = common::root().join("configs/drives/highway.ron");
    let mcap = sb.path("hw.mcap");
    let m = mcap.to_str().unwrap();
    let drive_s =
        drive(&sb, "drive", &[scenario.to_str().unwrap(), "--max-rate", "--duration", "4", "--record", m]);
    let log = logs::can::read_can(&mcap).unwrap().expect("no CAN channel in the recording");
    assert_eq!(log.frames.len() as u64, drive_s["can"]["frames"].as_u64().unwrap());
    assert!(log.dbc.contains("WheelSpeeds") && log.lidar_mount.is_some());
    let replay = |name: &str, extra: &[&str]| {
        let _turn = common::pipeline_turn();
        let out = sb.path(name);
        let mut args = vec!["replay", m, "--max-rate", "--quiet", "--overlay-every", "0", "--out"];
        args.push(out.to_str().unwrap());
        args.extend_from_slice(extra);
        sb.run(&args).expect_code(0);
        summary(&out.join("summary.json"))
    };
    let (on, off) = (replay("on", &[]), replay("off", &["--deskew", "off"]));
    // The bag's bus was read once, at the door: the vehicle role sent the frames saved there.
    let vehicle_log = std::fs::read_to_string(sb.path("on").join("logs/vehicle.log")).unwrap_or_default();
    let sent = format!("sending the bus's frames the door read frames={}", log.frames.len());
    assert!(vehicle_log.contains(&sent), "{sent}: vehicle.log: {vehicle_log}");
    let mean = |s: &serde_json::Value| s["consistency"]["mean"].as_f64().unwrap();
    let (d, r_on, r_off) = (mean(&drive_s), mean(&on), mean(&off));
    eprintln!("drive (deskew on) {d:.4}, replay deskew on {r_on:.4}, off {r_off:.4}");
    assert!((r_on - d).abs() < 0.01, "replay {r_on} vs drive {d}");
    assert!(r_on >= r_off + 0.02, "replay deskew on {r_on} vs off {r_off}");
    // Cut short, the recording still replays up to its break, bus and all: reading the bus
    // at the door must not refuse what the replay accepts.
    let bytes = std::fs::read(&mcap).unwrap();
    let cut = sb.path("cut.mcap");
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let cut_log = logs::can::read_can(&cut).unwrap().expect("the bus before the break");
    assert!(!cut_log.frames.is_empty() && cut_log.frames.len() < log.frames.len());
    let out = sb.path("cut");
    let run = {
        let _turn = common::pipeline_turn();
        let c = cut.to_str().unwrap();
        sb.run(&[
            "replay",
            c,
            "--max-rate",
            "--quiet",
            "--overlay-every",
            "0",
            "--out",
            out.to_str().unwrap(),
        ])
    };
    assert_ne!(run.code(), Some(0), "{}", run.describe());
    assert_eq!(run.stderr().trim().lines().count(), 1, "{}", run.describe());
    let s = summary(&out.join("summary.json"));
    assert!(s["pairs"]["fused"].as_u64().unwrap() > 0, "{s}");
}
