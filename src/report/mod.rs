//! Reports: the `RunSummary` built once at the end of a run, and the renderers that read only
//! it (console, `summary.json`, `junit.xml`, `report.html`).

pub mod build;
pub mod chart;
pub mod checks;
pub mod command;
pub mod compare;
pub mod console;
pub mod html;
pub mod junit;
pub mod summary;

use std::path::Path;
use summary::RunSummary;

/// Writes `summary.json` into `dir`.
///
/// # Errors
/// When the file cannot be written.
pub fn write_json(summary: &RunSummary, dir: &Path) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(summary).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("summary.json"), text)
}

/// Reads a `summary.json`.
///
/// # Errors
/// A one-line description when the file is missing or not a chatstorm summary.
pub fn read_json(path: &Path) -> Result<RunSummary, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let summary: RunSummary =
        serde_json::from_str(&text).map_err(|e| format!("{}: not a chatstorm summary: {e}", path.display()))?;
    if summary.schema != summary::SCHEMA_ID {
        return Err(format!(
            "{}: schema {:?}, expected {:?}",
            path.display(),
            summary.schema,
            summary::SCHEMA_ID
        ));
    }
    Ok(summary)
}
