//! The small commands: inspect, calib check, top, and --help.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::Sandbox;
use shared::ring::RingWriter;
use shared::segment::SegmentSpec;
use shared::StreamKind;

fn one_line_error(run: &common::Run, needle: &str) {
    run.expect_code(2);
    let err = run.stderr();
    assert_eq!(err.trim().lines().count(), 1, "not one line:\n{}", run.describe());
    assert!(err.contains(needle), "expected {needle:?}:\n{}", run.describe());
    assert!(!err.contains("panicked"), "{}", run.describe());
}

#[test]
fn inspect_answers_garbage_with_one_line() {
    let sb = Sandbox::new();
    let d = sb.dir.path();
    let garbage = d.join("garbage");
    std::fs::write(&garbage, vec![0x5a; 10_000]).unwrap();
    std::fs::set_permissions(&garbage, std::fs::Permissions::from_mode(0o600)).unwrap();
    one_line_error(&sb.run(&["inspect", garbage.to_str().unwrap()]), "bad magic");
    let short = d.join("short");
    std::fs::write(&short, b"EFSEGv01").unwrap();
    std::fs::set_permissions(&short, std::fs::Permissions::from_mode(0o600)).unwrap();
    one_line_error(&sb.run(&["inspect", short.to_str().unwrap()]), "smaller than");
    one_line_error(&sb.run(&["inspect", d.to_str().unwrap()]), "directory");
    let fifo = d.join("fifo");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    one_line_error(&sb.run(&["inspect", fifo.to_str().unwrap()]), "fifo");
    let seg = d.join("lidar.seg");
    let (_w, _) =
        RingWriter::create_or_takeover(&seg, &SegmentSpec::new(StreamKind::Lidar, 4, 1024)).unwrap();
    let link = d.join("link.seg");
    std::os::unix::fs::symlink(&seg, &link).unwrap();
    one_line_error(&sb.run(&["inspect", link.to_str().unwrap()]), "symbolic link");
    one_line_error(&sb.run(&["inspect", d.join("nope").to_str().unwrap()]), "no such segment");
    let cut = d.join("cut.seg");
    std::fs::copy(&seg, &cut).unwrap();
    std::fs::OpenOptions::new().write(true).open(&cut).unwrap().set_len(5000).unwrap();
    one_line_error(&sb.run(&["inspect", cut.to_str().unwrap()]), "truncated");
}

#[test]
fn inspect_shows_a_live_segment_as_table_and_json() {
    let sb = Sandbox::new();
    let seg = sb.path("camera.seg");
    let (mut w, _) =
        RingWriter::create_or_takeover(&seg, &SegmentSpec::new(StreamKind::Camera, 4, 1024)).unwrap();
    for _ in 0..6 {
        let mut loan = w.loan();
        shared::frames::PayloadSink::push(&mut loan, &[1; 100]).unwrap();
        loan.commit(shared::ring::FrameMeta {
            capture: shared::TimestampNs(5),
            epoch: shared::CalibEpoch(3),
        });
    }
    let run = sb.run(&["inspect", seg.to_str().unwrap()]);
    run.expect_code(0);
    for line in ["alive (lock held)", "written   6 frames,", "(0 frames lost)", "slot map  identity"] {
        assert!(run.stdout().contains(line), "{line}: {}", run.describe());
    }
    let run = sb.run(&["inspect", "--json", seg.to_str().unwrap()]);
    run.expect_code(0);
    let v: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
    assert_eq!(v["stream"], "camera");
    assert_eq!(v["frames_written"], 6);
    assert_eq!(v["write_cursor"], 6);
    assert_eq!(v["slots"].as_array().unwrap().len(), 4);
    assert_eq!(v["slot_map"], serde_json::json!([0, 1, 2, 3]));
    assert!(v["slots"].as_array().unwrap().iter().all(|s| s["state"] == "frame" && s["epoch"] == 3));
}

/// A writer that reuses released slots moves frames off the identity map: `inspect` shows
/// where each residue goes, and that slot holds the frame with that residue.
#[test]
fn inspect_shows_the_slot_map_of_a_writer_that_reuses_slots() {
    let sb = Sandbox::new();
    let seg = sb.path("camera.seg");
    let (mut w, _) =
        RingWriter::create_or_takeover(&seg, &SegmentSpec::new(StreamKind::Camera, 4, 1024)).unwrap();
    // No reader to wait for: every frame goes into the slot of the frame before.
    w.reuse_released(Some(0));
    let meta = shared::ring::FrameMeta { capture: shared::TimestampNs(5), epoch: shared::CalibEpoch(3) };
    let mut loan = w.loan();
    shared::frames::PayloadSink::push(&mut loan, &[1; 100]).unwrap();
    loan.commit(meta);
    let run = sb.run(&["inspect", seg.to_str().unwrap()]);
    run.expect_code(0);
    assert!(run.stdout().contains("written   1 frame,"), "{}", run.describe());
    for _ in 0..2 {
        let mut loan = w.loan();
        shared::frames::PayloadSink::push(&mut loan, &[1; 100]).unwrap();
        loan.commit(meta);
    }
    let run = sb.run(&["inspect", "--json", seg.to_str().unwrap()]);
    run.expect_code(0);
    let v: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
    let map: Vec<u64> = v["slot_map"].as_array().unwrap().iter().map(|s| s.as_u64().unwrap()).collect();
    assert_ne!(map, [0, 1, 2, 3], "{}", run.describe());
    let mut sorted = map.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, [0, 1, 2, 3], "not a permutation: {map:?}");
    let newest = &v["slots"][map[2] as usize];
    assert_eq!(newest["frame_seq"], 2, "residue 2's slot: {}", run.describe());
    let run = sb.run(&["inspect", seg.to_str().unwrap()]);
    assert!(run.stdout().contains("of 4 residues moved)"), "{}", run.describe());
    // A scribbled word (residue 0 sent to residue 1's slot; each word is the slot XOR its
    // residue) is shown as such.
    let word = map[1].to_le_bytes(); // residue 0: the slot XOR 0
    std::os::unix::fs::FileExt::write_all_at(
        &std::fs::OpenOptions::new().write(true).open(&seg).unwrap(),
        &word,
        shared::layout::slot_map_offset(0) as u64,
    )
    .unwrap();
    let run = sb.run(&["inspect", seg.to_str().unwrap()]);
    assert!(run.stdout().contains("; two residues name one slot)"), "{}", run.describe());
}

#[test]
fn calib_check_accepts_the_default_rig_and_names_the_broken_field() {
    let sb = Sandbox::new();
    let good = common::root().join("configs/calib/default.ron");
    sb.run(&["calib", "check", good.to_str().unwrap()]).expect_code(0);
    let text = std::fs::read_to_string(&good).unwrap();
    let nan = sb.path("nan.ron");
    std::fs::write(&nan, text.replacen("fx: 1000.0", "fx: NaN", 1)).unwrap();
    assert_ne!(std::fs::read_to_string(&nan).unwrap(), text, "fixture did not change");
    one_line_error(&sb.run(&["calib", "check", nan.to_str().unwrap()]), "camera.fx");
    let neg = sb.path("neg.ron");
    std::fs::write(&neg, text.replacen("fy: 1000.0", "fy: -1000.0", 1)).unwrap();
    one_line_error(&sb.run(&["calib", "check", neg.to_str().unwrap()]), "camera.fy");
    let syntax = sb.path("syntax.ron");
    std::fs::write(&syntax, text.replacen("fx: 1000.0,", "fx: 1000.0 +", 1)).unwrap();
    one_line_error(&sb.run(&["calib", "check", syntax.to_str().unwrap()]), "syntax.ron:");
}

#[test]
fn top_without_a_run_says_so_and_help_explains() {
    let sb = Sandbox::new();
    let run = sb.run(&["top", "--once"]);
    one_line_error(&run, "no live run");
    let help = sb.run(&["drive", "--help"]);
    help.expect_code(0);
    for word in ["--duration", "--pairing", "--max-rate", "--record", "--shm-root", "--per-pair"] {
        assert!(help.stdout().contains(word), "{word} missing from --help");
    }
    sb.run(&["no-such-command"]).expect_code(2);
}

/// Usage errors are one line on stderr and exit 2, like any bad input (clap's own output
/// was 2 to 16 lines).
#[test]
fn usage_errors_are_one_line() {
    let sb = common::Sandbox::new();
    for args in [&["drive", "--bogus"][..], &["drive", "--duration", "abc"], &[], &["replay"], &["can"]] {
        let run = sb.run(args);
        run.expect_code(2);
        assert_eq!(run.stderr().trim().lines().count(), 1, "{}", run.describe());
        assert!(run.stderr().starts_with("epochfuse: error: "), "{}", run.describe());
    }
    sb.run(&["--version"]).expect_code(0);
    // An export of no frames would be a folder no replay accepts: refused before it is made.
    let dir = sb.path("none");
    one_line_error(&sb.run(&["sim", "export", "--frames", "0", dir.to_str().unwrap()]), "at least 1");
    assert!(!dir.exists(), "an empty export was written");
}

/// `calib check` validates the socket policy like a rig, and refuses a FIFO or a device in
/// one line instead of hanging on it or reading forever.
#[test]
fn calib_check_takes_policies_and_refuses_fifos_and_devices() {
    let sb = common::Sandbox::new();
    let policy = common::root().join("configs/calib/socket-policy.ron");
    let ok = sb.run(&["calib", "check", policy.to_str().unwrap()]);
    ok.expect_code(0);
    assert!(ok.stdout().contains("socket policy"), "{}", ok.describe());
    let bad = sb.path("bad-policy.ron");
    std::fs::write(&bad, "SocketPolicy(\n  subscribe: (same_user: true),\n  roles: [camera, calib],\n)\n")
        .unwrap();
    let run = sb.run(&["calib", "check", bad.to_str().unwrap()]);
    one_line_error(&run, "roles");
    let fifo = sb.path("fifo.ron");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
        0,
    )
    .unwrap();
    one_line_error(&sb.run(&["calib", "check", fifo.to_str().unwrap()]), "FIFO");
    one_line_error(&sb.run(&["calib", "check", "/dev/zero"]), "character device");
}

fn mkfifo(path: &std::path::Path) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
        0,
    )
    .unwrap();
}

/// A FIFO or a device given as a scenario, a KITTI file or a bag is refused at the door in
/// one line naming the file (exit 2, at once), never read until a hang or out of memory.
#[test]
fn drive_and_replay_refuse_fifos_and_devices_at_the_door() {
    let sb = common::Sandbox::new();
    let fast = |args: &[&str], needle: &str| {
        let t0 = std::time::Instant::now();
        let run = sb.run(args);
        one_line_error(&run, needle);
        assert!(t0.elapsed() < std::time::Duration::from_secs(20), "slow: {}", run.describe());
    };
    let fifo = sb.path("fifo.ron");
    mkfifo(&fifo);
    fast(&["drive", "--duration", "1", fifo.to_str().unwrap()], "fifo.ron: is a FIFO");
    fast(&["drive", "--duration", "1", "/dev/zero"], "/dev/zero: is a character device");
    fast(&["replay", "/dev/zero"], "/dev/zero");

    // A KITTI folder whose second sweep is a FIFO.
    let kitti = sb.path("kitti");
    let scenario = common::root().join("configs/drives/default.ron");
    sb.run(&["sim", "export", "--frames", "2", kitti.to_str().unwrap(), scenario.to_str().unwrap()])
        .expect_code(0);
    let sweep = kitti.join("velodyne/000001.bin");
    std::fs::remove_file(&sweep).unwrap();
    mkfifo(&sweep);
    fast(
        &["replay", kitti.to_str().unwrap(), "--quiet", "--out", sb.path("o1").to_str().unwrap()],
        "000001.bin: is a FIFO",
    );

    // A rosbag2 folder whose only file is a FIFO.
    let bag = sb.path("bag");
    std::fs::create_dir(&bag).unwrap();
    mkfifo(&bag.join("b_0.mcap"));
    fast(
        &["replay", bag.to_str().unwrap(), "--quiet", "--out", sb.path("o2").to_str().unwrap()],
        "b_0.mcap: is a FIFO",
    );
}
