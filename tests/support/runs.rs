//! A run as the in-process tests make it, and what it wrote: one lane, quiet, summary.json only,
//! into a given folder (`plan`), and that summary read back (`summary`). Included with `#[path]`
//! by the tests that drive `chatstorm::commands::run` against a mock they started themselves.

#![allow(dead_code)]

use chatstorm::plan::RunPlan;
use chatstorm::report::summary::RunSummary;
use chatstorm::target::TargetOptions;
use std::path::Path;

/// `scenario` against `target`, summary.json into `out`, on one lane, without a live line.
pub fn plan(scenario: &Path, target: TargetOptions, out: &Path) -> RunPlan {
    RunPlan {
        out: Some(out.to_owned()),
        formats: vec![chatstorm::report::Format::Json],
        quiet: true,
        threads: Some(1),
        ..RunPlan::new(scenario.to_owned(), target)
    }
}

/// The summary.json a run wrote into `out`.
pub fn summary(out: &Path) -> RunSummary {
    let text = std::fs::read_to_string(out.join("summary.json")).expect("summary.json");
    serde_json::from_str(&text).expect("a summary")
}
