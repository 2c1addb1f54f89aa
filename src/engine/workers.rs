//! Local shards (`run --workers N`): the users are split by index into N disjoint shards, each
//! run by a child process (`run --shard I/N`) with its own embedded mock (or aimed at the same
//! target), its own loopback source addresses and its own descriptor limit; their summaries are
//! merged exactly (histograms added, counters summed, curves aligned on wall-clock time) into one
//! summary, one report and one exit code. `report merge DIR...` does the same for shards run
//! anywhere.
//!
//! Shards run in their own process group, so a terminal's Ctrl-C reaches only the parent, which
//! forwards the first SIGINT or SIGTERM to every shard (each then stops its users and writes its
//! outputs, which are merged as usual); a second signal exits at once. Each shard is killed by
//! the kernel if the parent dies, even by SIGKILL ([`super::children::die_with_parent`]).

use super::children::TiedToParent;
use crate::cli::{Format, RunArgs};
use crate::exit::Outcome;
use crate::report::summary::RunSummary;
use crate::scenario::Scenario;
use std::path::{Path, PathBuf};
use std::process::Stdio;

/// Runs `args.workers` shards as child processes and merges them.
pub async fn run(args: &RunArgs, scenario: &Scenario) -> Outcome {
    let n = args.workers;
    let dir = match crate::run_folder::choose(args.out.as_deref(), &scenario.name) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("chatstorm: scenario name {:?}: {e}", scenario.name);
            return Outcome::InvalidConfig;
        }
    };
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("chatstorm: cannot create {}: {e}", dir.display());
        return Outcome::InvalidConfig;
    }
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("chatstorm: cannot find my own executable: {e}");
            return Outcome::InvalidConfig;
        }
    };
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
            .args(["--format", "json", "--quiet"]);
        if let Some(u) = args.users {
            cmd.arg("--users").arg(u.to_string());
        }
        if let Some(d) = args.duration {
            cmd.arg("--duration").arg(humantime::format_duration(d).to_string());
        }
        if let Some(s) = args.seed {
            cmd.arg("--seed").arg(s.to_string());
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
        if let Some(s) = &t.secret {
            cmd.env("CHATSTORM_SECRET", s);
        }
        if let Some(s) = &t.fault_secret {
            cmd.env("CHATSTORM_FAULT_SECRET", s);
        }
        // Each shard picks its own loopback source addresses from its index (sys::SOURCES_PER_SHARD).
        cmd.stdout(Stdio::null()).kill_on_drop(true).tied_to_parent();
        match cmd.spawn() {
            Ok(c) => children.push((shard_dir, c)),
            Err(e) => {
                eprintln!("chatstorm: cannot start shard {i}: {e}");
                return Outcome::InvalidConfig;
            }
        }
    }
    eprintln!(
        "chatstorm: {n} shards running; results will be merged into {}",
        dir.display()
    );
    let pids: Vec<u32> = children.iter().filter_map(|(_, c)| c.id()).collect();
    let _interrupts = match super::signals::Interrupts::listen(move |sig| {
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
    }) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("chatstorm: cannot listen for signals: {e}");
            return Outcome::InvalidConfig;
        }
    };
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
    // figures with it: merge what was written, and fail the run naming the missing shards.
    let (written, missing): (Vec<PathBuf>, Vec<PathBuf>) =
        dirs.into_iter().partition(|d| d.join("summary.json").exists());
    let mut merged = match merge_dirs(&written) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("chatstorm: {e}");
            return Outcome::Unreachable;
        }
    };
    if !missing.is_empty() {
        merged.verdict.outcome = Outcome::Unreachable.verdict().to_owned();
        merged.verdict.exit_code = Outcome::Unreachable.code();
        for d in &missing {
            merged.verdict.reasons.push(format!(
                "shard in {} wrote no summary: its users are missing",
                d.display()
            ));
        }
    }
    let formats: Vec<Format> = args.format.clone();
    crate::commands::write_outputs(&merged, &dir, &formats);
    Outcome::from_code(merged.verdict.exit_code)
}

/// Reads `summary.json` from each folder and merges them into one summary.
///
/// # Errors
/// A one-line description of the first folder that cannot be read or merged.
pub fn merge_dirs(dirs: &[PathBuf]) -> Result<RunSummary, String> {
    let mut summaries = Vec::new();
    for d in dirs {
        summaries.push(crate::report::read_json(&d.join("summary.json"))?);
    }
    merge(summaries)
}

/// Merges shard summaries: exact metrics merge, then every derived figure recomputed.
///
/// # Errors
/// When there is nothing to merge or a histogram cannot be decoded.
pub fn merge(summaries: Vec<RunSummary>) -> Result<RunSummary, String> {
    let mut it = summaries.into_iter();
    let mut merged = it.next().ok_or("no shard summaries to merge")?;
    for s in it {
        merged
            .metrics
            .merge(&s.metrics)
            .map_err(|e| format!("merging shard metrics: {e}"))?;
        let r = &mut merged.run;
        r.users_planned += s.run.users_planned;
        r.users_started += s.run.users_started;
        r.users_due += s.run.users_due;
        r.duration_ms = r.duration_ms.max(s.run.duration_ms);
        r.interrupted |= s.run.interrupted;
        r.stop_reason = r.stop_reason.take().or(s.run.stop_reason);
        let g = &mut merged.generator;
        g.fd_peak = g.fd_peak.max(s.generator.fd_peak);
        g.scheduler_lag_p99_us = g.scheduler_lag_p99_us.max(s.generator.scheduler_lag_p99_us);
        g.scheduler_lag_max_us = g.scheduler_lag_max_us.max(s.generator.scheduler_lag_max_us);
        g.late_starts += s.generator.late_starts;
        g.resource_failures += s.generator.resource_failures;
        g.generator_queue_timeouts += s.generator.generator_queue_timeouts;
        g.generator_queue_p99_us = g.generator_queue_p99_us.max(s.generator.generator_queue_p99_us);
        g.peak_rss_bytes += s.generator.peak_rss_bytes;
        g.cpu_seconds += s.generator.cpu_seconds;
        g.saturated |= s.generator.saturated;
        g.reasons.extend(s.generator.reasons);
        merged.timeline.extend(s.timeline);
        let h = &mut merged.target_health;
        h.probes += s.target_health.probes;
        h.failures += s.target_health.failures;
        h.outages.extend(s.target_health.outages);
        merged.state = match (merged.state.take(), s.state) {
            (Some(mut a), Some(b)) => {
                a.channels_checked += b.channels_checked;
                a.channels_missing += b.channels_missing;
                a.memberships_checked += b.memberships_checked;
                a.memberships_missing += b.memberships_missing;
                a.examples.extend(b.examples);
                a.examples.truncate(5);
                a.error = a.error.or(b.error);
                Some(a)
            }
            (a, b) => a.or(b),
        };
        for t in s.thresholds {
            if let Some(mine) = merged.thresholds.iter_mut().find(|m| m.metric == t.metric) {
                mine.aborted_run |= t.aborted_run;
            }
        }
    }
    merged.run.shards = merged.metrics.shards;
    merged.timeline.sort_by_key(|m| m.at_ms);
    merged.target_health.outages.sort_by_key(|o| o.from_ms);
    merged
        .timeline
        .dedup_by(|a, b| a.at_ms / 1000 == b.at_ms / 1000 && a.action == b.action);
    crate::report::build::derive(&mut merged);
    crate::report::build::reevaluate_thresholds(&mut merged);
    crate::report::build::decide(&mut merged);
    Ok(merged)
}

/// Used by `report merge`: the folders' common parent, for the merged outputs.
pub fn common_parent(dirs: &[PathBuf]) -> PathBuf {
    dirs.first()
        .and_then(|d| d.parent())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}
