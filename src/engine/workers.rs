//! Local shards (`run --workers N`): the users are split by index into N disjoint shards, each
//! run by a child process (`run --shard I/N`) with its own embedded mock (or aimed at the same
//! target), its own loopback source addresses and its own descriptor limit; the caller merges
//! their summaries (`crate::report::merge`) into one summary, one report and one exit code, as
//! `report merge DIR...` does for shards run anywhere. This module only starts and waits.
//!
//! Shards run in their own process group, so a terminal's Ctrl-C reaches only the parent, which
//! forwards the first SIGINT or SIGTERM to every shard (each then stops its users and writes its
//! outputs, which are merged as usual); a second signal exits at once. Each shard is killed by
//! the kernel if the parent dies, even by SIGKILL ([`super::children::die_with_parent`]).

use super::children::TiedToParent;
use crate::target::TargetOptions;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// Why the shards could not be started (nothing was merged; exit 2).
#[derive(Debug, thiserror::Error)]
pub enum WorkersError {
    /// `std::env::current_exe` failed.
    #[error("cannot find my own executable: {0}")]
    OwnExecutable(std::io::Error),
    /// A child could not be spawned.
    #[error("cannot start shard {0}: {1}")]
    Spawn(u32, std::io::Error),
    /// The signal handlers could not be installed.
    #[error("cannot listen for signals: {0}")]
    Signals(std::io::Error),
}

/// The shard folders of a finished `--workers` run.
#[derive(Debug)]
pub struct ShardDirs {
    /// Folders whose shard wrote its `summary.json`.
    pub written: Vec<PathBuf>,
    /// Folders whose shard wrote none (killed, crashed): their users are missing.
    pub missing: Vec<PathBuf>,
}

/// What each shard is started with: the parts of the run's request a child's command line
/// carries (the secrets go through its environment, not its arguments).
#[derive(Debug, Clone)]
pub struct ShardSpec {
    /// The scenario file.
    pub scenario: PathBuf,
    /// Override of `users.count`.
    pub users: Option<u32>,
    /// Override of the run length.
    pub duration: Option<Duration>,
    /// Override of the seed.
    pub seed: Option<u64>,
    /// The target flags, passed on as they were given.
    pub target: TargetOptions,
    /// How many shards.
    pub workers: u32,
    /// User lanes (threads) of each shard.
    pub threads: usize,
    /// `--prometheus-remote-write`, passed on to every shard (their series add up by `run_id`).
    pub remote_write: Option<String>,
}

/// Runs `args.workers` shards as child processes, each writing into `dir/shard-I`, and waits for
/// them; merging their summaries is the caller's (`crate::report::merge`).
///
/// # Errors
/// When a shard cannot be started.
pub async fn run(args: &ShardSpec, dir: &Path) -> Result<ShardDirs, WorkersError> {
    let n = args.workers;
    let exe = std::env::current_exe().map_err(WorkersError::OwnExecutable)?;
    let mut children = Vec::new();
    for i in 0..n {
        let shard_dir = dir.join(format!("shard-{i}"));
        let mut cmd = tokio::process::Command::new(&exe);
        cmd.arg("run")
            .arg(&args.scenario)
            .arg("--shard")
            .arg(format!("{i}/{n}"))
            .arg("--out")
            .arg(&shard_dir)
            .args(["--format", "json", "--quiet"])
            .arg("--threads")
            .arg(args.threads.to_string());
        if let Some(u) = args.users {
            cmd.arg("--users").arg(u.to_string());
        }
        if let Some(d) = args.duration {
            cmd.arg("--duration").arg(humantime::format_duration(d).to_string());
        }
        if let Some(s) = args.seed {
            cmd.arg("--seed").arg(s.to_string());
        }
        if let Some(url) = &args.remote_write {
            cmd.arg("--prometheus-remote-write").arg(url);
        }
        let t = &args.target;
        for (flag, v) in [
            ("--target", &t.target),
            ("--api-key", &t.api_key),
            ("--token-endpoint", &t.token_endpoint),
        ] {
            if let Some(v) = v {
                cmd.arg(flag).arg(v);
            }
        }
        if let Some(ca) = &t.tls.ca_cert {
            cmd.arg("--ca-cert").arg(ca);
        }
        if t.tls.insecure {
            cmd.arg("--insecure");
        }
        // Every shard connects from the same addresses (each checks the whole run's users
        // against their ports).
        if let Some(ips) = &t.source_ips {
            cmd.arg("--source-ips").arg(ips);
        }
        if let Some(s) = &t.secret {
            cmd.env("CHATSTORM_SECRET", s);
        }
        if let Some(s) = &t.fault_secret {
            cmd.env("CHATSTORM_FAULT_SECRET", s);
        }
        // Each shard picks its own loopback source addresses from its index (sys::SOURCES_PER_SHARD).
        cmd.stdout(Stdio::null()).kill_on_drop(true).tied_to_parent();
        children.push((shard_dir, cmd.spawn().map_err(|e| WorkersError::Spawn(i, e))?));
    }
    eprintln!(
        "chatstorm: {n} shards running; results will be merged into {}",
        dir.display()
    );
    let pids: Vec<u32> = children.iter().filter_map(|(_, c)| c.id()).collect();
    let _interrupts = super::signals::Interrupts::listen(move |sig| {
        eprintln!(
            "\nchatstorm: {}, stopping the {} shards and merging what they wrote ({} again to quit now)",
            sig.name(),
            pids.len(),
            sig.name()
        );
        for pid in &pids {
            // SAFETY: kill with the ids of children not yet waited for (so not reused).
            unsafe {
                libc::kill(*pid as libc::pid_t, sig.number());
            }
        }
    })
    .map_err(WorkersError::Signals)?;
    let mut dirs = Vec::new();
    for (shard_dir, mut child) in children {
        let status = child.wait().await;
        if let Ok(s) = status
            && !s.success()
            && s.code().is_none_or(|c| c >= 2 && c != 3 && c != 4 && c != 5)
        {
            eprintln!("chatstorm: shard in {} exited with {s}", shard_dir.display());
        }
        dirs.push(shard_dir);
    }
    // A shard that died without writing its summary (killed, crashed) must not take the others'
    // figures with it: the caller merges what was written and fails the run naming the rest.
    let (written, missing) = dirs.into_iter().partition(|d| d.join("summary.json").exists());
    Ok(ShardDirs { written, missing })
}
