//! Child processes for tests that drive tools nobody here wrote (Python, Node, npm, pip): run one
//! with a bound on its time and keep what it printed, find a tool's version, fingerprint the files
//! an install is made from, and serialise installs between parallel test processes.
//!
//! Shared by both crates' tests: the chatstorm crate's (`tests/support/python.rs` builds on it)
//! and the mock's (`mock-server/tests/js_sdk.rs`, `python_sdk.rs`), each including this file with
//! `#[path]` as a top-level module named `process`.

#![allow(dead_code)]

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// Written beside an install after it succeeded; holds the fingerprint of what it installed.
pub const STAMP_FILE: &str = ".chatstorm-install-stamp";

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
    /// The status and output, for assertion and error messages.
    pub fn describe(&self) -> String {
        format!(
            "({})\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status, self.stdout, self.stderr
        )
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
        let _ = child.kill();
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

/// `<tool> --version` (some tools print it on stderr), or a message naming the tool, its error
/// and `how_to_get` it.
///
/// # Errors
/// When the tool is missing or its `--version` fails.
pub fn tool_version(tool: &str, how_to_get: &str) -> Result<String, String> {
    let output = Command::new(tool)
        .arg("--version")
        .output()
        .map_err(|e| format!("`{tool}` is not available ({e}); {how_to_get}"))?;
    if !output.status.success() {
        return Err(format!("`{tool} --version` failed: {}", output.status));
    }
    let mut version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if version.is_empty() {
        version = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    }
    Ok(version)
}

/// A fingerprint (FNV-1a, 64 bit) of what an install is made from: the `files`' bytes, each
/// followed by its name, then `extra` (a tool's version), as one stamp line.
///
/// # Errors
/// When a file cannot be read.
pub fn fingerprint(files: &[&Path], extra: &str) -> Result<String, String> {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for byte in bytes {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    };
    for path in files {
        let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        feed(&bytes);
        feed(path.file_name().map_or(&[][..], |n| n.as_encoded_bytes()));
    }
    feed(extra.as_bytes());
    Ok(format!("{hash:016x} {extra}\n"))
}

/// An exclusive lock on `path` (made when missing), held until the returned file is dropped:
/// parallel test processes (a second `cargo test`, another checkout) install one at a time.
///
/// # Errors
/// When the file cannot be made or locked.
pub fn exclusive_lock(path: &Path) -> Result<File, String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let file = File::create(path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    file.lock()
        .map_err(|e| format!("cannot lock {}: {e}", path.display()))?;
    Ok(file)
}
