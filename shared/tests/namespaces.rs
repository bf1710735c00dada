//! The namespace lesson, as a test: what two processes can share through a memory-mapped
//! file is decided by the **mount** namespace, not the IPC namespace.
//!
//! - A reader in another IPC namespace (`unshare --ipc`) attaches to the writer's segment,
//!   parks on its futex and reads every frame it is woken for: the futex of a shared file
//!   mapping is keyed by the file, not by an IPC id.
//! - A writer and a reader in two mount namespaces, each with a private tmpfs mounted at the
//!   shm root, cannot meet: the reader's attach fails with one line.
//!
//! Needs root (to unshare and mount) and util-linux's `unshare`; skips with a notice
//! otherwise. `harness = false`: each child is this binary re-executed under `unshare`.

#[cfg(not(loom))]
mod common;

// The loom build of `shared` has no segments: this test is then an empty program.
#[cfg(not(loom))]
mod imp {
    use std::io::{BufRead, BufReader, Write};
    use std::path::Path;
    use std::process::{Command, Stdio};
    use std::time::Duration;

    use super::common::{len_for, pattern, tempdir, write_frame};
    use shared::ring::{ReadOutcome, RingReader, RingWriter};
    use shared::segment::SegmentSpec;
    use shared::{FrameSeq, StreamKind};

    const MODE: &str = "EPOCHFUSE_NS_CHILD";
    const FRAMES: u64 = 200;
    const CAPACITY: u64 = 64 * 1024;

    fn spec() -> SegmentSpec {
        SegmentSpec {
            kind: StreamKind::Camera,
            slot_count: 8,
            slot_capacity: CAPACITY,
            base_seq: FrameSeq(1),
        }
    }

    /// Re-executes this binary under `unshare ARGS`, in child mode `mode`.
    fn unshare(args: &[&str], mode: &str, root: &Path) -> Command {
        let mut cmd = Command::new("unshare");
        cmd.args(args).arg("--").arg(std::env::current_exe().unwrap());
        cmd.env(MODE, format!("{mode}|{}", root.display()));
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd
    }

    /// Child: reads frames, parking on the futex between them, until it has `FRAMES` valid ones.
    fn child_reader(root: &Path) {
        let mut r = RingReader::attach(&root.join("camera.seg"), StreamKind::Camera).unwrap();
        println!("attached");
        let (mut buf, mut good) = (Vec::new(), 0u64);
        while good < FRAMES {
            if !r.wait(Duration::from_secs(10)) {
                panic!("no frame for 10 s after {good}");
            }
            if let ReadOutcome::Frame(info) = r.read_next(&mut buf) {
                let seq = info.seq.0;
                assert_eq!(buf, pattern(seq, len_for(seq, CAPACITY as usize)), "frame {seq} corrupt");
                good += 1;
            }
        }
        println!("read {good}");
    }

    /// Child: mounts a private tmpfs at `root`, then writes (`mount-writer`) or attaches.
    fn child_private_tmpfs(mode: &str, root: &Path) {
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs"])
            .arg(root)
            .status();
        assert!(status.is_ok_and(|s| s.success()), "mount tmpfs failed");
        let path = root.join("camera.seg");
        if mode == "mount-writer" {
            let (mut w, _) = RingWriter::create_or_takeover(&path, &spec()).unwrap();
            write_frame(&mut w, 1000);
            println!("written");
            // Keep the namespace (and its tmpfs) alive until the parent is done.
            let _ = std::io::stdin().lines().next();
        } else {
            match RingReader::attach(&path, StreamKind::Camera) {
                Ok(_) => println!("attached"),
                Err(e) => println!("error: {e}"),
            }
        }
    }

    fn ipc_namespace_does_not_separate_a_ring() {
        let dir = tempdir();
        let (mut w, _) = RingWriter::create_or_takeover(&dir.path().join("camera.seg"), &spec()).unwrap();
        let mut child = unshare(&["--ipc"], "reader", dir.path()).spawn().unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "attached", "reader did not attach");
        // Write until the reader has its frames (it exits then); bounded, never a hang.
        let mut written = 0u64;
        while child.try_wait().unwrap().is_none() {
            assert!(written < 1_000_000, "reader never finished");
            let len = len_for(w.next_seq().0, CAPACITY as usize);
            write_frame(&mut w, len);
            written += 1;
            std::thread::yield_now();
        }
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
        let status = child.wait().unwrap();
        assert!(status.success(), "reader failed: {rest}");
        assert_eq!(rest.trim(), format!("read {FRAMES}"));
    }

    fn mount_namespaces_with_private_tmpfs_do_separate_it() {
        let dir = tempdir();
        let private = ["--mount", "--propagation", "private"];
        let mut writer = unshare(&private, "mount-writer", dir.path()).spawn().unwrap();
        let mut out = BufReader::new(writer.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "written", "writer did not start");
        let reader = unshare(&private, "mount-reader", dir.path()).output().unwrap();
        let said = String::from_utf8_lossy(&reader.stdout);
        // Nor does the host, outside both namespaces, see the writer's segment.
        let host_sees = dir.path().join("camera.seg").exists();
        writer.stdin.take().unwrap().write_all(b"done\n").unwrap();
        assert!(writer.wait().unwrap().success());
        assert!(said.starts_with("error: ") && said.trim().lines().count() == 1, "reader said: {said}");
        assert!(said.contains("no such segment"), "the reader says what it missed: {said}");
        assert!(!host_sees, "the host saw a segment written inside a private tmpfs");
    }

    pub fn main() {
        if let Ok(spec) = std::env::var(MODE) {
            let (mode, root) = spec.split_once('|').unwrap();
            match mode {
                "reader" => child_reader(Path::new(root)),
                _ => child_private_tmpfs(mode, Path::new(root)),
            }
            return;
        }
        let root = rustix::process::geteuid().is_root();
        let have_unshare =
            Command::new("unshare").arg("--version").output().is_ok_and(|o| o.status.success());
        if !root || !have_unshare {
            println!("note: namespace tests need root and util-linux unshare; skipped");
            println!("0 passed, 0 failed, 2 skipped");
            return;
        }
        ipc_namespace_does_not_separate_a_ring();
        println!("test ipc_namespace_does_not_separate_a_ring ... ok");
        mount_namespaces_with_private_tmpfs_do_separate_it();
        println!("test mount_namespaces_with_private_tmpfs_do_separate_it ... ok");
        println!("2 passed, 0 failed");
    }
}

fn main() {
    #[cfg(not(loom))]
    imp::main();
}
