//! `chatstorm report`: re-render a finished run's outputs from its `summary.json` without
//! re-running it, compare it with a baseline, or (`report merge DIR...`) merge shard folders.

use crate::cli::{Format, ReportArgs};
use crate::exit::Outcome;
use std::path::PathBuf;

/// Runs the report command.
pub fn run(args: &ReportArgs) -> Outcome {
    if args.summary.as_os_str() == "merge" {
        return merge(args);
    }
    let summary = match super::read_json(&args.summary) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("chatstorm: {e}");
            return Outcome::InvalidConfig;
        }
    };
    let dir = args
        .out
        .clone()
        .unwrap_or_else(|| args.summary.parent().map_or_else(|| PathBuf::from("."), PathBuf::from));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("chatstorm: cannot create {}: {e}", dir.display());
        return Outcome::InvalidConfig;
    }
    crate::commands::write_outputs(&summary, &dir, &[Format::Console, Format::Junit, Format::Html]);
    let Some(baseline) = &args.baseline else {
        return Outcome::from_code(summary.verdict.exit_code);
    };
    let old = match super::read_json(baseline) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("chatstorm: {e}");
            return Outcome::InvalidConfig;
        }
    };
    let rows = super::compare::compare(&summary, &old, args.tolerance);
    println!();
    println!("comparison with {}:", baseline.display());
    let _ = super::compare::write(&rows, args.tolerance, &mut std::io::stdout().lock());
    if rows.iter().any(|r| r.regression) {
        Outcome::ThresholdBreached
    } else {
        Outcome::Passed
    }
}

fn merge(args: &ReportArgs) -> Outcome {
    if args.more.is_empty() {
        eprintln!("chatstorm: report merge needs the shard folders: chatstorm report merge DIR...");
        return Outcome::InvalidConfig;
    }
    let merged = match crate::engine::workers::merge_dirs(&args.more) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("chatstorm: {e}");
            return Outcome::InvalidConfig;
        }
    };
    let dir = args
        .out
        .clone()
        .unwrap_or_else(|| crate::engine::workers::common_parent(&args.more));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("chatstorm: cannot create {}: {e}", dir.display());
        return Outcome::InvalidConfig;
    }
    crate::commands::write_outputs(
        &merged,
        &dir,
        &[Format::Console, Format::Json, Format::Junit, Format::Html],
    );
    Outcome::from_code(merged.verdict.exit_code)
}
