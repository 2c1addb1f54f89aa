//! Debian packages a test needs on the machine (Chromium, Prometheus), installed with apt-get
//! when missing, the same way `tests/report.rs` installs Chromium: parallel test processes
//! serialise on an `flock`ed lock file, the install is bounded in time, and any failure panics
//! with what apt said (the tests that need the program are never skipped). Also: running an
//! external program to completion within a bound.
//!
//! Use it from a test crate with
//!
//! ```ignore
//! mod support { pub mod apt; }
//! let prometheus = support::apt::ensure("/usr/bin/prometheus", "prometheus");
//! ```

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The lock every installing test process takes (the Chromium test's, so the two never run
/// apt-get at the same time).
const INSTALL_LOCK: &str = "/tmp/chatstorm-chromium-install.lock";

/// Runs `cmd` to completion within `limit`, killing it past that; gives (success, stdout,
/// stderr). Output goes through files in `scratch`, which must exist.
///
/// # Errors
/// When it cannot start or does not finish in time.
pub fn run_bounded(mut cmd: Command, limit: Duration, scratch: &Path) -> Result<(bool, String, String), String> {
    let what = format!("{cmd:?}");
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (out_path, err_path) = (
        scratch.join(format!("cmd-{n}.stdout")),
        scratch.join(format!("cmd-{n}.stderr")),
    );
    let out = std::fs::File::create(&out_path).map_err(|e| e.to_string())?;
    let err = std::fs::File::create(&err_path).map_err(|e| e.to_string())?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("{what}: {e}"))?;
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| format!("{what}: {e}"))? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{what} did not finish within {limit:?}; killed"));
        }
        // Polling an external process: there is nothing to await on std's Child.
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    let _ = std::fs::remove_file(&out_path);
    let _ = std::fs::remove_file(&err_path);
    Ok((status.success(), stdout, stderr))
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
pub fn ensure(program: &str, package: &str) -> PathBuf {
    let path = PathBuf::from(program);
    if path.is_file() {
        return path;
    }
    use std::os::fd::AsRawFd;
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(INSTALL_LOCK)
        .unwrap_or_else(|e| panic!("{INSTALL_LOCK}: {e}"));
    let deadline = Instant::now() + Duration::from_secs(900);
    // SAFETY: flock on a descriptor this function owns; non-blocking so the wait stays bounded.
    while unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        assert!(
            Instant::now() < deadline,
            "another process held {INSTALL_LOCK} for 15 minutes while installing packages"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
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
    let scratch = std::env::temp_dir().join(format!("chatstorm-apt-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap_or_else(|e| panic!("{}: {e}", scratch.display()));
    for args in [
        &["update"][..],
        &["install", "-y", "--no-install-recommends", package][..],
    ] {
        let mut cmd = Command::new("apt-get");
        // No service is started by the package's scripts: a test must not leave a daemon
        // listening on a fixed port.
        cmd.args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .env("RUNLEVEL", "1");
        match run_bounded(cmd, Duration::from_secs(600), &scratch) {
            Ok((true, _, _)) => {}
            Ok((false, out, err)) => panic!(
                "apt-get {} failed while installing {package} for a test:\n{}\n{}",
                args.join(" "),
                tail(&out),
                tail(&err)
            ),
            Err(e) => panic!("installing {package} for a test: {e}"),
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    assert!(
        path.is_file(),
        "apt-get installed {package} but {program} does not exist"
    );
    path
}
