//! The library entry points tests and embedders use: run a scenario in-process and get its
//! `RunSummary` back, exactly as `chatstorm run` builds it.

use crate::engine::run::{RunError, RunRequest, StartError};
use crate::report::summary::RunSummary;
use crate::scenario::Scenario;
use crate::target::Target;
use std::path::PathBuf;

/// Runs `scenario` (against `target`, or the embedded mock when `None`), writes `summary.json`,
/// `junit.xml`, `report.html` and the `.hlog` into `out_dir`, and returns the summary.
///
/// # Errors
/// As [`crate::engine::run::run`].
pub async fn run_scenario(
    scenario: Scenario,
    target: Option<Target>,
    out_dir: PathBuf,
) -> Result<RunSummary, RunError> {
    std::fs::create_dir_all(&out_dir).map_err(|e| RunError::Setup(StartError::OutDir(e)))?;
    let req = RunRequest {
        scenario: scenario.clone(),
        scenario_file: None,
        target,
        out_dir: out_dir.clone(),
        quiet: true,
        shard: None,
        lanes: crate::engine::lanes::LanePlan::Caller,
        watcher: None,
        link: None,
    };
    let output = crate::engine::run::run(req).await?;
    let summary = crate::report::build::build(&scenario, None, &output);
    crate::report::write_outputs(&summary, &out_dir, &crate::report::Format::FILES);
    Ok(summary)
}
