//! The sandbox, tried from a child process (this test binary re-executed), since a sandbox
//! cannot be undone: what a sandboxed process can and cannot open or connect to.
//!
//! `harness = false`: the sandbox must be applied on a single-threaded process, and libtest
//! runs every test on a thread of its own.

// The loom build of `shared` has no segments: this test is then an empty program.
#[cfg(not(loom))]
mod imp {
    use std::io::ErrorKind;
    use std::net::{TcpListener, TcpStream};
    use std::path::Path;
    use std::process::Command;

    use shared::sandbox::{apply, SandboxPlan, Step};

    const CHILD: &str = "EPOCHFUSE_SANDBOX_CHILD";

    /// Runs `case` in a child: the child applies the sandbox and prints one verdict per probe.
    fn run_child(case: &str, allowed: &Path, outside: &Path, port: u16) -> String {
        let out = Command::new(std::env::current_exe().unwrap())
            .env(CHILD, format!("{case}|{}|{}|{port}", allowed.display(), outside.display()))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "child failed: {text}\n{}", String::from_utf8_lossy(&out.stderr));
        text
    }

    fn verdict<T>(r: std::io::Result<T>) -> String {
        match r {
            Ok(_) => "ok".into(),
            Err(e) if e.kind() == ErrorKind::PermissionDenied => "EACCES".into(),
            Err(e) => format!("err:{e}"),
        }
    }

    /// The child's side.
    fn sandbox_child(spec: &str) {
        let parts: Vec<&str> = spec.split('|').collect();
        let (case, allowed, outside, port) = (parts[0], parts[1], parts[2], parts[3].parse().unwrap());
        let plan = SandboxPlan {
            read_write: vec![allowed.into()],
            keep_network: case != "full",
            tcp_connect: if case == "allow-port" { vec![port] } else { vec![] },
            ..SandboxPlan::default()
        };
        let report = apply(&plan).unwrap();
        println!("abi={}", report.landlock_abi);
        println!("got={:?}", report.got);
        println!("inside={}", verdict(std::fs::write(Path::new(allowed).join("x"), b"x")));
        println!("outside={}", verdict(std::fs::read(Path::new(outside).join("secret"))));
        println!("tcp={}", verdict(TcpStream::connect(("127.0.0.1", port))));
    }

    fn line<'a>(text: &'a str, key: &str) -> &'a str {
        text.lines().find_map(|l| l.strip_prefix(&format!("{key}="))).unwrap_or("<missing>")
    }

    fn setup() -> (tempfile::TempDir, tempfile::TempDir, TcpListener) {
        let allowed = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"s").unwrap();
        (allowed, outside, TcpListener::bind("127.0.0.1:0").unwrap())
    }

    fn landlock_abi() -> u32 {
        // The child reports it; a kernel without Landlock skips the Landlock assertions.
        let (a, o, l) = setup();
        let text = run_child("probe", a.path(), o.path(), l.local_addr().unwrap().port());
        line(&text, "abi").parse().unwrap()
    }

    fn a_sandboxed_process_reaches_only_its_allowance() {
        if landlock_abi() == 0 {
            eprintln!("note: this kernel has no Landlock; the sandbox test is skipped");
            return;
        }
        let (allowed, outside, listener) = setup();
        let port = listener.local_addr().unwrap().port();
        let text = run_child("full", allowed.path(), outside.path(), port);
        assert_eq!(line(&text, "inside"), "ok", "{text}");
        assert_eq!(line(&text, "outside"), "EACCES", "{text}");
        assert_ne!(line(&text, "tcp"), "ok", "{text}");
        assert!(line(&text, "got").contains(&format!("{:?}", Step::NoNewPrivs)), "{text}");
    }

    fn tcp_is_refused_by_landlock_unless_the_port_is_allowed() {
        if landlock_abi() < 4 {
            eprintln!("note: this kernel's Landlock has no TCP rules (ABI < 4); skipped");
            return;
        }
        let (allowed, outside, listener) = setup();
        let port = listener.local_addr().unwrap().port();
        let text = run_child("keep-net", allowed.path(), outside.path(), port);
        assert_eq!(line(&text, "tcp"), "EACCES", "{text}");
        let text = run_child("allow-port", allowed.path(), outside.path(), port);
        assert_eq!(line(&text, "tcp"), "ok", "{text}");
    }

    fn namespaces_are_entered_when_privileged() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("note: not root; the namespace assertions are skipped");
            return;
        }
        let (allowed, outside, listener) = setup();
        let text = run_child("full", allowed.path(), outside.path(), listener.local_addr().unwrap().port());
        for step in [Step::NetNamespace, Step::IpcNamespace, Step::MountNamespace] {
            assert!(line(&text, "got").contains(&format!("{step:?}")), "{step:?}: {text}");
        }
    }

    pub fn main() {
        if let Ok(spec) = std::env::var(CHILD) {
            sandbox_child(&spec);
            return;
        }
        let tests: [(&str, fn()); 3] = [
            (
                "a_sandboxed_process_reaches_only_its_allowance",
                a_sandboxed_process_reaches_only_its_allowance,
            ),
            (
                "tcp_is_refused_by_landlock_unless_the_port_is_allowed",
                tcp_is_refused_by_landlock_unless_the_port_is_allowed,
            ),
            ("namespaces_are_entered_when_privileged", namespaces_are_entered_when_privileged),
        ];
        for (name, test) in tests {
            test();
            println!("test {name} ... ok");
        }
        println!("{} passed, 0 failed", tests.len());
    }
}

fn main() {
    #[cfg(not(loom))]
    imp::main();
}
