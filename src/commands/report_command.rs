//! `chatstorm report`: re-render a finished run's outputs from its `summary.json` without
//! re-running it, compare it with a baseline, or (`report merge DIR...`) merge shard folders.
//! A command: it reads a [`ReportPlan`] and decides the exit code; the work is `crate::report`'s.

use crate::exit::Outcome;
use crate::plan::ReportPlan;
use crate::report::{self, Format};
use std::path::{Path, PathBuf};

/// Runs the report command.
pub fn run(plan: &ReportPlan) -> Outcome {
    match plan {
        ReportPlan::Render {
            summary,
            baseline,
            tolerance,
            min_change_ms,
            out,
        } => render(
            summary,
            baseline.as_deref(),
            &report::compare::Settings {
                tolerance_percent: *tolerance,
                min_change_ms: *min_change_ms,
                ..report::compare::Settings::default()
            },
            out.as_deref(),
        ),
        ReportPlan::Merge { dirs, out } => merge(dirs, out.as_deref()),
    }
}

fn render(path: &Path, baseline: Option<&Path>, settings: &report::compare::Settings, out: Option<&Path>) -> Outcome {
    let summary = match report::read_json(path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("chatstorm: {e}");
            return Outcome::InvalidConfig;
        }
    };
    let dir = out.map_or_else(
        || path.parent().map_or_else(|| PathBuf::from("."), PathBuf::from),
        Path::to_path_buf,
    );
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("chatstorm: cannot create {}: {e}", dir.display());
        return Outcome::InvalidConfig;
    }
    report::write_outputs(&summary, &dir, &[Format::Console, Format::Junit, Format::Html]);
    let Some(baseline) = baseline else {
        return Outcome::from_code(summary.verdict.exit_code);
    };
    let old = match report::read_json(baseline) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("chatstorm: {e}");
            return Outcome::InvalidConfig;
        }
    };
    let rows = report::compare::compare(&summary, &old, settings);
    println!();
    println!("comparison with {}:", baseline.display());
    let _ = report::compare::write(&rows, settings, &mut std::io::stdout().lock());
    let invalid = report::compare::invalid_runs(&summary, &old);
    if !invalid.is_empty() {
        for line in &invalid {
            println!("{line}");
        }
        println!("the comparison cannot be trusted: its latencies include the harness's own delays (exit 4)");
        return Outcome::GeneratorSaturated;
    }
    if rows.iter().any(|r| r.regression) {
        Outcome::ThresholdBreached
    } else {
        Outcome::Passed
    }
}

fn merge(dirs: &[PathBuf], out: Option<&Path>) -> Outcome {
    if dirs.is_empty() {
        eprintln!("chatstorm: report merge needs the shard folders: chatstorm report merge DIR...");
        return Outcome::InvalidConfig;
    }
    let merged = match report::merge::merge_dirs(dirs) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("chatstorm: {e}");
            return Outcome::InvalidConfig;
        }
    };
    let dir = out.map_or_else(|| report::merge::common_parent(dirs), Path::to_path_buf);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("chatstorm: cannot create {}: {e}", dir.display());
        return Outcome::InvalidConfig;
    }
    report::write_outputs(
        &merged,
        &dir,
        &[Format::Console, Format::Json, Format::Junit, Format::Html],
    );
    report::merge::merge_hlogs(dirs, &dir, &merged);
    Outcome::from_code(merged.verdict.exit_code)
}
