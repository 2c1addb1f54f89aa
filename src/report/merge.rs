//! Merging shard summaries (`run --workers N`, `report merge DIR...`): histograms added
//! exactly, counters summed, curves aligned on wall-clock time, then every derived figure and
//! the verdict recomputed from the merged figures, as one process would have computed them.

use super::output::{OutputError, read_json};
use super::summary::RunSummary;
use crate::exit::Outcome;
use std::path::{Path, PathBuf};

/// Marks a merged summary failed (exit 5) for each shard folder that holds no summary: a shard
/// that died (killed, crashed) must not pass for one whose users all did well.
pub fn mark_missing(merged: &mut RunSummary, missing: &[PathBuf]) {
    if missing.is_empty() {
        return;
    }
    merged.verdict.outcome = Outcome::Unreachable.verdict().to_owned();
    merged.verdict.exit_code = Outcome::Unreachable.code();
    for d in missing {
        merged.verdict.reasons.push(format!(
            "shard in {} wrote no summary: its users are missing",
            d.display()
        ));
    }
}

/// Reads `summary.json` from each folder and merges them into one summary.
///
/// # Errors
/// A one-line description of the first folder that cannot be read or merged.
pub fn merge_dirs(dirs: &[PathBuf]) -> Result<RunSummary, OutputError> {
    let mut summaries = Vec::new();
    for d in dirs {
        summaries.push(read_json(&d.join("summary.json"))?);
    }
    merge(summaries)
}

/// Merges shard summaries: exact metrics merge, then every derived figure recomputed.
///
/// # Errors
/// When there is nothing to merge or a histogram cannot be decoded.
pub fn merge(summaries: Vec<RunSummary>) -> Result<RunSummary, OutputError> {
    let mut it = summaries.into_iter();
    let mut merged = it.next().ok_or(OutputError::NothingToMerge)?;
    for s in it {
        merged.metrics.merge(&s.metrics)?;
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
        g.tls_handshake_cpu_seconds += s.generator.tls_handshake_cpu_seconds;
        // Each shard's share is of its own process's cores: the busiest shard is the one judged.
        g.tls_handshake_cpu_peak_share = g
            .tls_handshake_cpu_peak_share
            .max(s.generator.tls_handshake_cpu_peak_share);
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
    super::build::derive(&mut merged);
    super::build::reevaluate_thresholds(&mut merged);
    super::build::decide(&mut merged);
    Ok(merged)
}

/// Writes `out_dir/metrics.hlog`: the exact merge of the `metrics.hlog` in each folder that has
/// one, aligned on their common start (`crate::metrics::hlog_merge`), so that a sharded run
/// leaves the same files as one process. Folders without a log (a lost shard) are left out, as
/// their summaries are. A failure is printed, not fatal: the summary and reports stand without it.
pub fn merge_hlogs(dirs: &[PathBuf], out_dir: &Path, merged: &RunSummary) {
    let inputs: Vec<PathBuf> = dirs
        .iter()
        .map(|d| d.join("metrics.hlog"))
        .filter(|p| p.is_file())
        .collect();
    if inputs.is_empty() {
        return;
    }
    let out = out_dir.join("metrics.hlog");
    // Written beside and renamed: the output may replace a log that is also an input.
    let partial = out_dir.join("metrics.hlog.partial");
    let comment = format!(
        "chatstorm {} seed {}, merged from {} shards",
        merged.run.name,
        merged.run.seed,
        inputs.len()
    );
    let refs: Vec<&Path> = inputs.iter().map(PathBuf::as_path).collect();
    let r = crate::metrics::hlog_merge::merge_files(&refs, &partial, &comment)
        .map_err(|e| e.to_string())
        .and_then(|_| std::fs::rename(&partial, &out).map_err(|e| e.to_string()));
    if let Err(e) = r {
        let _ = std::fs::remove_file(&partial);
        eprintln!("chatstorm: cannot merge the shards' logs into {}: {e}", out.display());
    }
}

/// Used by `report merge`: the folders' common parent, for the merged outputs.
pub fn common_parent(dirs: &[PathBuf]) -> PathBuf {
    dirs.first()
        .and_then(|d| d.parent())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}
