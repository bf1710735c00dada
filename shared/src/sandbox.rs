//! Sandboxing a role process: namespaces, no-new-privileges, Landlock.
//!
//! A role calls [`apply`] once, on its main thread, after it has opened what it needs and
//! before it starts threads or touches untrusted input. Each step is best effort: a step the
//! kernel or the privileges do not allow is reported as missing with its reason, never fatal,
//! so a run works everywhere and the summary says exactly what each role got.
//!
//! | step | what it takes away | needs |
//! |---|---|---|
//! | [`Step::NetNamespace`] | every network interface but a downed loopback | root (CAP_SYS_ADMIN), else a user namespace |
//! | [`Step::IpcNamespace`] | System V IPC and POSIX message queues of the host | as above |
//! | [`Step::MountNamespace`] | seeing later mounts of the host, and making its own visible | as above |
//! | [`Step::UserNamespace`] | the fallback when not root: the namespaces above become possible | unprivileged user namespaces |
//! | [`Step::NoNewPrivs`] | gaining privileges through set-uid binaries | nothing |
//! | [`Step::LandlockFs`] | every file outside the plan's read-only and read-write paths | Landlock (ABI ≥ 1) |
//! | [`Step::LandlockNet`] | TCP bind and connect, but for the plan's ports | Landlock ABI ≥ 4 |
//! | [`Step::LandlockScope`] | signals and abstract Unix sockets outside the sandbox | Landlock ABI ≥ 6 |
//!
//! Shared memory keeps working in every namespace: two processes share a segment when they
//! map the same file, which the **mount** namespace decides, not the IPC namespace (the
//! futex on a shared file mapping is keyed by the file, not by an IPC id). Pathname Unix
//! sockets (the calibration socket) likewise work across network namespaces.
//!
//! Landlock and `unshare` act on the calling thread (and what it starts later): that is why
//! [`apply`] refuses to run once the process has a second thread.

use std::fmt;
use std::path::{Path, PathBuf};

use landlock::{
    Access, AccessFs, AccessNet, CompatLevel, Compatible, LandlockStatus, NetPort, PathBeneath, PathFd,
    Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope, ABI,
};
use rustix::thread::UnshareFlags;
use serde::{Deserialize, Serialize};

/// The newest Landlock ABI this build asks for; older kernels get what they support.
const REQUESTED_ABI: ABI = ABI::V7;

/// What a role may touch once sandboxed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SandboxPlan {
    /// Files and directories (with everything beneath) the role may read and write, create
    /// and remove files in: its run directory entries, its output directory.
    pub read_write: Vec<PathBuf>,
    /// Files and directories the role may only read.
    pub read_only: Vec<PathBuf>,
    /// TCP ports the role may connect to (a network bridge's endpoint); none by default.
    pub tcp_connect: Vec<u16>,
    /// TCP ports the role may bind; none by default.
    pub tcp_bind: Vec<u16>,
    /// Whether the role keeps the host's network namespace (a network bridge does).
    pub keep_network: bool,
}

/// One sandboxing step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// A user namespace (only taken when the process is not privileged).
    UserNamespace,
    /// A network namespace of its own.
    NetNamespace,
    /// An IPC namespace of its own.
    IpcNamespace,
    /// A mount namespace of its own.
    MountNamespace,
    /// `PR_SET_NO_NEW_PRIVS`.
    NoNewPrivs,
    /// Landlock filesystem rules.
    LandlockFs,
    /// Landlock TCP rules.
    LandlockNet,
    /// Landlock scoping of signals and abstract Unix sockets.
    LandlockScope,
}

impl Step {
    /// The steps every role asks for (a user namespace only as a fallback).
    pub const WANTED: [Self; 7] = [
        Self::NetNamespace,
        Self::IpcNamespace,
        Self::MountNamespace,
        Self::NoNewPrivs,
        Self::LandlockFs,
        Self::LandlockNet,
        Self::LandlockScope,
    ];
}

/// What [`apply`] achieved.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxReport {
    /// The Landlock ABI the kernel offers (0: none).
    pub landlock_abi: u32,
    /// Steps in force.
    pub got: Vec<Step>,
    /// Steps asked for but not in force, with why.
    pub missing: Vec<(Step, String)>,
}

impl SandboxReport {
    /// Whether `step` is in force.
    #[must_use]
    pub fn has(&self, step: Step) -> bool {
        self.got.contains(&step)
    }

    fn record(&mut self, step: Step, outcome: Result<(), String>) {
        match outcome {
            Ok(()) => self.got.push(step),
            Err(why) => self.missing.push((step, why)),
        }
    }
}

/// Why [`apply`] did not run at all (a programming error, not a missing kernel feature).
#[derive(Debug)]
pub enum SandboxError {
    /// The process already runs several threads; the sandbox would cover only one.
    Threaded(usize),
    /// A path of the plan could not be opened.
    Path(PathBuf, String),
}

impl fmt::Display for SandboxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Threaded(n) => write!(f, "sandbox: the process already runs {n} threads"),
            Self::Path(p, e) => write!(f, "sandbox: {}: {e}", p.display()),
        }
    }
}

impl std::error::Error for SandboxError {}

/// Sandboxes the calling process as `plan` says, step by step, best effort.
///
/// # Errors
/// [`SandboxError::Threaded`] when called with more than one thread running, and
/// [`SandboxError::Path`] when a path of the plan cannot be opened. A step the kernel or the
/// privileges refuse is not an error: it is listed in [`SandboxReport::missing`].
pub fn apply(plan: &SandboxPlan) -> Result<SandboxReport, SandboxError> {
    let threads = thread_count();
    if threads > 1 {
        return Err(SandboxError::Threaded(threads));
    }
    let mut report = SandboxReport::default();
    enter_namespaces(plan, &mut report);
    report.record(Step::NoNewPrivs, rustix::thread::set_no_new_privs(true).map_err(|e| e.to_string()));
    landlock(plan, &mut report)?;
    Ok(report)
}

fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(1, Iterator::count)
}

/// Namespaces: directly when privileged; else inside a new user namespace that maps our
/// uid and gid onto themselves (so segment owner checks still see us).
fn enter_namespaces(plan: &SandboxPlan, report: &mut SandboxReport) {
    let mut wanted =
        vec![(Step::IpcNamespace, UnshareFlags::NEWIPC), (Step::MountNamespace, UnshareFlags::NEWNS)];
    if !plan.keep_network {
        wanted.insert(0, (Step::NetNamespace, UnshareFlags::NEWNET));
    }
    let privileged = unshare(wanted[0].1).is_ok();
    if !privileged {
        let user = enter_user_namespace();
        let failed = user.is_err();
        report.record(Step::UserNamespace, user);
        if failed {
            for (step, _) in wanted {
                report.record(step, Err("no privilege and no user namespace".into()));
            }
            return;
        }
    }
    for (i, (step, flags)) in wanted.into_iter().enumerate() {
        let outcome = if privileged && i == 0 { Ok(()) } else { unshare(flags) };
        report.record(step, outcome.map_err(|e| e.to_string()));
    }
}

fn enter_user_namespace() -> Result<(), String> {
    let (uid, gid) = (rustix::process::getuid().as_raw(), rustix::process::getgid().as_raw());
    unshare(UnshareFlags::NEWUSER).map_err(|e| e.to_string())?;
    let write = |file: &str, text: String| {
        std::fs::write(format!("/proc/self/{file}"), text).map_err(|e| format!("{file}: {e}"))
    };
    write("setgroups", "deny".into())?;
    write("uid_map", format!("{uid} {uid} 1"))?;
    write("gid_map", format!("{gid} {gid} 1"))
}

fn landlock(plan: &SandboxPlan, report: &mut SandboxReport) -> Result<(), SandboxError> {
    let rules = path_rules(plan)?;
    let outcome = (|| {
        let mut ruleset = Ruleset::default()
            .set_compatibility(CompatLevel::BestEffort)
            .handle_access(AccessFs::from_all(REQUESTED_ABI))?
            .handle_access(AccessNet::from_all(REQUESTED_ABI))?
            .scope(Scope::from_all(REQUESTED_ABI))?
            .create()?
            .add_rules(rules.into_iter().map(Ok::<_, landlock::RulesetError>))?;
        for &port in &plan.tcp_connect {
            ruleset = ruleset.add_rule(NetPort::new(port, AccessNet::ConnectTcp))?;
        }
        for &port in &plan.tcp_bind {
            ruleset = ruleset.add_rule(NetPort::new(port, AccessNet::BindTcp))?;
        }
        ruleset.restrict_self()
    })();
    let status = match outcome {
        Ok(status) => status,
        Err(e) => {
            for step in [Step::LandlockFs, Step::LandlockNet, Step::LandlockScope] {
                report.record(step, Err(e.to_string()));
            }
            return Ok(());
        }
    };
    let abi = match status.landlock {
        LandlockStatus::Available { effective_abi, .. } => effective_abi as u32,
        LandlockStatus::NotEnabled | LandlockStatus::NotImplemented => 0,
    };
    report.landlock_abi = abi;
    let enforced = status.ruleset != RulesetStatus::NotEnforced;
    let need = |min: u32, what: &str| {
        if enforced && abi >= min {
            Ok(())
        } else {
            Err(format!("{what} needs Landlock ABI {min}, the kernel has {abi}"))
        }
    };
    report.record(Step::LandlockFs, need(1, "file access control"));
    report.record(Step::LandlockNet, need(4, "TCP access control"));
    report.record(Step::LandlockScope, need(6, "signal and abstract-socket scoping"));
    Ok(())
}

/// One rule per plan path; a regular file gets only the rights that apply to files.
fn path_rules(plan: &SandboxPlan) -> Result<Vec<PathBeneath<PathFd>>, SandboxError> {
    let abi = REQUESTED_ABI;
    let ro = plan.read_only.iter().map(|p| (p, AccessFs::from_read(abi)));
    let rw = plan.read_write.iter().map(|p| (p, AccessFs::from_all(abi)));
    ro.chain(rw)
        .map(|(path, access)| {
            let fd = PathFd::new(path).map_err(|e| SandboxError::Path(path.clone(), e.to_string()))?;
            let access = if is_dir(path) { access } else { access & AccessFs::from_file(abi) };
            Ok(PathBeneath::new(fd, access))
        })
        .collect()
}

fn is_dir(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_dir())
}

/// `unshare(2)` for namespace flags only.
fn unshare(flags: UnshareFlags) -> rustix::io::Result<()> {
    debug_assert!(!flags.contains(UnshareFlags::FILES) && !flags.contains(UnshareFlags::FS));
    // SAFETY: `unshare_unsafe` is unsafe only because `UnshareFlags::FILES` would split the
    // file-descriptor table between threads (and `FS` the cwd); callers pass namespace
    // flags only (asserted above), which change no descriptor, and `apply` runs while the
    // process has a single thread.
    unsafe { rustix::thread::unshare_unsafe(flags) }
}
