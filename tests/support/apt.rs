//! Debian packages a test needs on the machine (Chromium, Prometheus), installed with apt-get
//! when missing: parallel test processes serialise on one exclusive lock file, every apt-get is
//! bounded in time, and any failure panics with what apt said (the tests that need the program
//! are never skipped, so a missing install step fails CI rather than hiding).
//!
//! Built on `process.rs`, which the including crate declares as the top-level module `process`:
//!
//! ```ignore
//! #[path = "support/process.rs"] mod process;
//! #[path = "support/apt.rs"] mod apt;
//! let prometheus = apt::ensure("/usr/bin/prometheus", "prometheus", apt::Recommends::Skip);
//! ```

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::process::{exclusive_lock, run_bounded};

/// The lock every installing test process takes, so two never run apt-get at once.
const INSTALL_LOCK: &str = "/tmp/chatstorm-apt-install.lock";
/// Bound on each apt-get step.
const APT_LIMIT: Duration = Duration::from_secs(600);

/// The flags every test's headless Chromium starts with: no sandbox (tests may run as root), no
/// GPU, and none of the browser's own network traffic (QUIC, updates, sync), so that a test sees
/// only the requests of the page it opened.
pub const CHROMIUM_HEADLESS: [&str; 9] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
];

/// Headless Chromium's path, installing Debian's package (with its fonts) first when it is missing.
pub fn chromium() -> PathBuf {
    ensure("/usr/bin/chromium", "chromium", Recommends::Install)
}

/// Whether the package's recommended packages come along.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Recommends {
    /// Install them (Chromium: its fonts are recommends, and the report test reads rendered text).
    Install,
    /// Leave them out (Prometheus: a recommended exporter would start a daemon on a fixed port).
    Skip,
}

/// The last 15 lines of `text`.
pub fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// `program`'s path, installing Debian's `package` first when it is missing.
///
/// # Panics
/// When it is missing and cannot be installed (not root, apt-get failed or took too long).
pub fn ensure(program: &str, package: &str, recommends: Recommends) -> PathBuf {
    let path = PathBuf::from(program);
    if path.is_file() {
        return path;
    }
    let _lock = exclusive_lock(Path::new(INSTALL_LOCK)).unwrap_or_else(|e| panic!("{e}"));
    if path.is_file() {
        return path; // another process installed it while we waited
    }
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    assert!(
        root,
        "{program} is missing and this test is not root, so it cannot install it: run `apt-get install -y {package}` as root"
    );
    eprintln!("test: {program} missing; installing Debian's {package} package (apt-get)");
    let mut install = vec!["install", "-y"];
    if recommends == Recommends::Skip {
        install.push("--no-install-recommends");
    }
    install.push(package);
    for args in [vec!["update"], install] {
        let mut cmd = Command::new("apt-get");
        // No service is started by the package's scripts: a test must not leave a daemon
        // listening on a fixed port.
        cmd.args(&args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .env("RUNLEVEL", "1");
        let run = run_bounded(cmd, APT_LIMIT).unwrap_or_else(|e| panic!("installing {package} for a test: {e}"));
        assert!(
            run.success,
            "apt-get {} failed while installing {package} for a test ({}):\n{}\n{}",
            args.join(" "),
            run.status,
            tail(&run.stdout),
            tail(&run.stderr)
        );
    }
    assert!(
        path.is_file(),
        "apt-get installed {package} but {program} does not exist"
    );
    path
}
