//! A live attacker: while a drive runs, this test process (same user, not one of the run's
//! roles) rewrites header words of committed slots in the live camera and lidar segments.
//! Fusion must never fuse a forged frame, and must count what it caught: a forged epoch that
//! no calibration ever published (`streams.*.unknown_epoch`, even with a valid checksum), a
//! forged epoch or size under the old checksum (`streams.*.invalid`, caught at use), a forged
//! sequence number (`streams.*.stale`).
//!
//! Each forgery is made while fusion is stopped (SIGSTOP) and only on frames committed since,
//! so fusion learns of every forged frame from its forged header: the outcome does not depend
//! on who wins a race. The drive runs at `--max-rate`: producers never lap fusion, and
//! pairing follows the data, not the (loaded) machine.

mod common;

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use common::{summary, Sandbox};
use shared::layout::{self, FrameHeader};
use zerocopy::{FromBytes, IntoBytes};

/// What a round of forgery does to every frame committed while fusion is stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Forgery {
    /// Epoch 77 (never published), checksum recomputed: only the epoch check can tell.
    UnpublishedEpoch,
    /// The previous (published) epoch, checksum left: only the checksum can tell.
    OtherEpoch,
    /// Payload length one record shorter, checksum left.
    Size,
    /// Sequence number a whole ring ahead, checksum left.
    Seq,
}

const FORGED_EPOCH: u64 = 77;

/// A live segment, opened for writing by a process that is not its writer.
struct Live {
    file: File,
    slots: u64,
    stride: u64,
}

impl Live {
    fn open(path: &Path) -> Self {
        let file = OpenOptions::new().read(true).write(true).open(path).unwrap();
        // The creator writes the layout version last: then the geometry is there.
        let deadline = Instant::now() + Duration::from_secs(30);
        while file.metadata().unwrap().len() < layout::HEADER_SIZE as u64 || {
            let mut b = [0u8; 8];
            file.read_exact_at(&mut b, layout::OFF_LAYOUT_VERSION as u64).unwrap();
            u64::from_le_bytes(b) != layout::LAYOUT_VERSION
        } {
            assert!(Instant::now() < deadline, "{} never became ready", path.display());
            std::thread::sleep(Duration::from_millis(10));
        }
        let mut s = Self { file, slots: 0, stride: 0 };
        s.slots = s.word(layout::OFF_SLOT_COUNT as u64);
        s.stride = s.word(layout::OFF_SLOT_STRIDE as u64);
        s
    }

    fn word(&self, at: u64) -> u64 {
        let mut b = [0u8; 8];
        self.file.read_exact_at(&mut b, at).unwrap();
        u64::from_le_bytes(b)
    }

    fn cursor(&self) -> u64 {
        self.word(layout::OFF_WRITE_CURSOR as u64)
    }

    fn slot(&self, seq: u64) -> u64 {
        layout::HEADER_SIZE as u64 + (seq % self.slots) * self.stride
    }

    /// Forges frame `seq`'s header; returns its original epoch, or None if the slot no
    /// longer holds it.
    fn forge(&self, seq: u64, how: Forgery) -> Option<u64> {
        let off = self.slot(seq);
        let mut bytes = [0u8; size_of::<FrameHeader>()];
        self.file.read_exact_at(&mut bytes, off + layout::SLOT_OFF_FRAME_HEADER as u64).unwrap();
        let mut h = FrameHeader::read_from_bytes(&bytes).unwrap();
        if h.frame_seq != seq || self.word(off) % 2 == 1 {
            return None;
        }
        let original = h.epoch;
        match how {
            Forgery::UnpublishedEpoch => {
                let mut payload = vec![0u8; h.payload_len as usize];
                self.file.read_exact_at(&mut payload, off + layout::SLOT_OFF_PAYLOAD as u64).unwrap();
                h.epoch = FORGED_EPOCH;
                h.checksum = h.seal(shared::checksum::checksum_bytes(&payload));
            }
            // Another published epoch (the recalibration drive has 1 to 4).
            Forgery::OtherEpoch => h.epoch = if original > 1 { original - 1 } else { 2 },
            Forgery::Size => h.payload_len = h.payload_len.saturating_sub(24),
            Forgery::Seq => h.frame_seq += self.slots,
        }
        self.file.write_all_at(h.as_bytes(), off + layout::SLOT_OFF_FRAME_HEADER as u64).unwrap();
        Some(original)
    }
}

/// The run directory under `root`, once the camera and lidar segments are there.
fn run_dir(root: &Path, deadline: Instant) -> PathBuf {
    loop {
        let found = std::fs::read_dir(root).ok().and_then(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path())
                .find(|p| p.join("camera.seg").exists() && p.join("lidar.seg").exists())
        });
        if let Some(p) = found {
            return p;
        }
        assert!(Instant::now() < deadline, "no run directory under {}", root.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The pid of the fusion role of run `run`.
fn fusion_pid(run: &Path) -> i32 {
    let want = run.to_string_lossy().into_owned();
    for e in std::fs::read_dir("/proc").unwrap().filter_map(Result::ok) {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else { continue };
        let args: Vec<String> =
            cmd.split(|&b| b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        if args.iter().any(|a| a == "role")
            && args.iter().any(|a| a == "fusion")
            && args.iter().any(|a| a.contains(&want))
        {
            return pid;
        }
    }
    panic!("no fusion process for {}", run.display());
}

/// Sends `sig`; false if the process is gone (the run ended).
fn signal(pid: i32, sig: &str) -> bool {
    let quiet = std::process::Stdio::null();
    std::process::Command::new("kill").args([sig, &pid.to_string()]).stderr(quiet).status().unwrap().success()
}

/// Waits until every thread of `pid` is stopped: `kill -STOP` only queues the signal, and a
/// thread still running on the other core could peek a frame committed after the attacker
/// took its cursor snapshot. False if the process is gone.
fn wait_stopped(pid: i32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    let tasks = PathBuf::from(format!("/proc/{pid}/task"));
    loop {
        let Ok(dir) = std::fs::read_dir(&tasks) else { return false };
        let running = dir.filter_map(Result::ok).any(|t| {
            let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
            // The state follows the command name's closing parenthesis.
            let state = stat.rsplit(')').next().and_then(|r| r.split_whitespace().next());
            !matches!(state, Some("T" | "t" | "Z" | "X") | None)
        });
        if !running {
            return true;
        }
        assert!(Instant::now() < deadline, "fusion {pid} did not stop");
        std::thread::yield_now();
    }
}

/// Forged frames: (stream, seq) → (forgery, original epoch).
type Forged = BTreeMap<(&'static str, u64), (Forgery, u64)>;

/// Rounds of "stop fusion, let frames be committed, forge them, continue fusion" until each
/// kind of forgery has landed twice, or the drive ends.
fn attack(child: &mut Child, root: &Path) -> Forged {
    let run = run_dir(root, Instant::now() + Duration::from_secs(60));
    let streams =
        [("camera", Live::open(&run.join("camera.seg"))), ("lidar", Live::open(&run.join("lidar.seg")))];
    // Let calibration and pairing settle first.
    std::thread::sleep(Duration::from_millis(500));
    let pid = fusion_pid(&run);
    let kinds = [Forgery::OtherEpoch, Forgery::Size, Forgery::UnpublishedEpoch, Forgery::Seq];
    let mut forged = Forged::new();
    // The next kind only once a round has forged a frame: in a round that finds the producers
    // held back by fusion's lag, nothing is committed to forge.
    let mut landed = 0;
    for round in 0.. {
        if child.try_wait().unwrap().is_some() || round >= 16 || landed >= 2 * kinds.len() {
            break;
        }
        let how = kinds[landed % kinds.len()];
        if !signal(pid, "-STOP") || !wait_stopped(pid) {
            break;
        }
        let before: Vec<u64> = streams.iter().map(|(_, l)| l.cursor()).collect();
        // A few frames (at `--max-rate` the producers stop when fusion is 6 frames behind,
        // well inside the 8-slot rings).
        std::thread::sleep(Duration::from_millis(100));
        let count = forged.len();
        for ((name, live), from) in streams.iter().zip(before) {
            for seq in from..live.cursor() {
                if let Some(epoch) = live.forge(seq, how) {
                    forged.insert((name, seq), (how, epoch));
                }
            }
        }
        landed += usize::from(forged.len() > count);
        if !signal(pid, "-CONT") {
            break;
        }
        std::thread::sleep(Duration::from_millis(150));
    }
    forged
}

#[test]
fn forged_header_words_in_a_live_run_are_never_fused_and_are_counted() {
    let _turn = common::pipeline_turn();
    let sb = Sandbox::new();
    let out = sb.path("out");
    let scenario = common::root().join("configs/drives/recalibration.ron");
    let mut child = sb
        .cmd(&[
            "drive",
            scenario.to_str().unwrap(),
            // Long enough for every round of the attack on a fast machine (at `--max-rate` an
            // 8 s drive can end within 1.5 s, before the fourth kind of forgery).
            "--duration",
            "24",
            "--per-pair",
            // Pairing on the data's own time: every sweep is paired (or fails at use) however
            // loaded the machine, so each forged sweep is put to the test.
            "--max-rate",
            "--quiet",
            "--out",
            out.to_str().unwrap(),
        ])
        .spawn()
        .unwrap();
    let forged = attack(&mut child, &sb.shm_root());
    let status = child.wait().unwrap();
    assert!(status.success(), "drive failed: {status:?}");
    let s = summary(&out.join("summary.json"));
    let count = |how: Forgery, stream: &str| {
        forged.iter().filter(|((st, _), (h, _))| *h == how && *st == stream).count() as u64
    };
    for how in [Forgery::UnpublishedEpoch, Forgery::OtherEpoch, Forgery::Size, Forgery::Seq] {
        assert!(count(how, "lidar") + count(how, "camera") > 0, "no {how:?} forgery landed: {forged:?}");
    }

    // Never fused: no pair holds a forged frame (its header was forged before fusion saw it).
    for f in s["frames"].as_array().unwrap() {
        let (c, l) = (f["camera_seq"].as_u64().unwrap(), f["lidar_seq"].as_u64().unwrap());
        assert!(
            !forged.contains_key(&("camera", c)) && !forged.contains_key(&("lidar", l)),
            "a forged frame was fused: pair {f} (forged: {:?} / {:?})",
            forged.get(&("camera", c)),
            forged.get(&("lidar", l))
        );
        assert_ne!(f["epoch"], FORGED_EPOCH);
    }
    assert_eq!(s["pairs"]["fused_epoch_mismatch"], 0);

    // Counted. A forged epoch nobody published: every such frame, checksum or not.
    for st in ["camera", "lidar"] {
        let unknown = s["streams"][st]["unknown_epoch"].as_u64().unwrap();
        assert!(
            unknown >= count(Forgery::UnpublishedEpoch, st),
            "{st}: unknown_epoch {unknown}, forged {forged:?}\n{s}"
        );
        let stale = s["streams"][st]["stale"].as_u64().unwrap();
        assert!(stale >= count(Forgery::Seq, st), "{st}: stale {stale}\n{s}");
    }
    // A shorter sweep under the old checksum keeps its epoch, so it is paired and caught at
    // use. (A forged other epoch may find no camera frame of that epoch and leave unread:
    // that it is never fused is the check above.)
    let invalid = s["streams"]["lidar"]["invalid"].as_u64().unwrap();
    let expected = count(Forgery::Size, "lidar");
    assert!(invalid >= expected, "lidar: invalid {invalid}, expected at least {expected}\n{s}");
    assert!(sb.leftover_runs().is_empty(), "run directory left behind");
}
