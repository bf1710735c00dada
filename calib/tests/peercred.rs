//! A peer running as another uid is refused by the SO_PEERCRED check.
//!
//! Run as root (as here and in CI), the test re-executes its own binary as uid/gid 65534 to
//! act as the client. The socket is made reachable for that uid (directory 0711, socket file
//! chmod'ed 0666 for this test only), so that it is the credential check, not the file mode,
//! that refuses it. If the binary cannot be executed by that uid (a build directory it cannot
//! enter), the client runs on a thread whose own credentials are switched instead
//! (`setresuid` on Linux is per thread at the system-call level). Not root: skipped, with a
//! notice.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use calib::{CalibSubscriber, RecvError, Schedule};
use common::{config_in, recv_n, rig, Running};
use shared::Role;

const CLIENT_ENV: &str = "EPOCHFUSE_CALIB_PEERCRED_CLIENT";
const TEST_NAME: &str = "peer_of_another_uid_is_refused";
const NOBODY: u32 = 65534;

/// The client side: connecting must work (the file mode allows it), then the service must
/// close the connection without sending anything.
fn client(path: &Path) -> Result<(), String> {
    let uid = rustix::process::geteuid().as_raw();
    if uid != NOBODY {
        return Err(format!("client runs as uid {uid}, not {NOBODY}"));
    }
    // The connect itself must succeed (the file mode lets us in); the service may then close
    // the connection before or after our hello goes out.
    let mut sub = match CalibSubscriber::connect(path, Role::Fusion) {
        Ok(sub) => sub,
        Err(e) if e.closed_by_service() => return Ok(()),
        Err(e) => return Err(format!("connect failed: {e}")),
    };
    match sub.recv_timeout(Duration::from_secs(20)) {
        Err(RecvError::Disconnected) if sub.updates_received() == 0 => Ok(()),
        other => {
            Err(format!("expected to be refused, got {other:?} after {} updates", sub.updates_received()))
        }
    }
}

fn client_in_thread(path: PathBuf) -> Result<(), String> {
    std::thread::spawn(move || {
        use rustix::process::{Gid, Uid};
        let (g, u) = (Gid::from_raw(NOBODY), Uid::from_raw(NOBODY));
        rustix::thread::set_thread_groups(&[]).map_err(|e| format!("setgroups: {e}"))?;
        rustix::thread::set_thread_res_gid(g, g, g).map_err(|e| format!("setresgid: {e}"))?;
        rustix::thread::set_thread_res_uid(u, u, u).map_err(|e| format!("setresuid: {e}"))?;
        client(&path)
    })
    .join()
    .unwrap_or_else(|_| Err("client thread panicked".to_owned()))
}

#[test]
fn peer_of_another_uid_is_refused() {
    if let Ok(path) = std::env::var(CLIENT_ENV) {
        if let Err(e) = client(Path::new(&path)) {
            panic!("client: {e}");
        }
        println!("client: refused as expected");
        return;
    }
    if !rustix::process::geteuid().is_root() {
        println!("notice: {TEST_NAME} skipped: it needs root to run a client as another uid");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let mut cfg = config_in(dir.path());
    cfg.schedule = Schedule::AllAtStart;
    let svc = Running::start(cfg, vec![rig(1, 0)]);
    // For this test only: let any uid connect, so that only SO_PEERCRED can refuse.
    std::fs::set_permissions(&svc.socket, std::fs::Permissions::from_mode(0o666)).unwrap();

    // Control: a peer of our own uid is served.
    let mut ours = CalibSubscriber::connect(&svc.socket, Role::Monitor).unwrap();
    assert_eq!(recv_n(&mut ours, 1, Duration::from_secs(10), svc.clock).len(), 1);

    let exe = std::env::current_exe().unwrap();
    let spawned = std::process::Command::new(&exe)
        .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
        .env(CLIENT_ENV, &svc.socket)
        .uid(NOBODY)
        .gid(NOBODY)
        .output();
    match spawned {
        Ok(out) => {
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "client failed ({}):\n{stdout}\n{stderr}", out.status);
            assert!(
                stdout.contains("client: refused as expected"),
                "client did not run:\n{stdout}\n{stderr}"
            );
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            println!(
                "notice: uid {NOBODY} cannot execute {} ({e}); running the client on a thread",
                exe.display()
            );
            client_in_thread(svc.socket.clone()).unwrap();
        }
        Err(e) => panic!("cannot spawn the client: {e}"),
    }
    let stats = svc.stop();
    assert_eq!(stats.peers_refused, 1, "{stats:?}");
    assert_eq!(stats.subscribers_accepted, 1, "{stats:?}");
    assert_eq!(stats.updates_sent, 1, "{stats:?}");
}

/// The thread fallback itself, exercised here so it does not rot.
#[test]
fn refused_on_a_thread_of_another_uid() {
    if std::env::var(CLIENT_ENV).is_ok() {
        return;
    }
    if !rustix::process::geteuid().is_root() {
        println!("notice: refused_on_a_thread_of_another_uid skipped: needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let svc = Running::start(config_in(dir.path()), vec![rig(1, 0)]);
    std::fs::set_permissions(&svc.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    client_in_thread(svc.socket.clone()).unwrap();
    // This thread is still root.
    assert!(rustix::process::geteuid().is_root());
    let stats = svc.stop();
    assert_eq!(stats.peers_refused, 1, "{stats:?}");
}
