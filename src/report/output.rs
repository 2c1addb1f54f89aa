//! Every file and stream a summary is written to: the [`Format`] enum, [`write_outputs`] (the
//! one place `run`, `report` and the library entry write results), [`write_conformance_outputs`]
//! (the same for `conform`, whose result is a conformance section alone), and `summary.json` in
//! and out. The renderers themselves are `console.rs`, `junit.rs` and `html.rs`.

use super::summary::{ConformanceSection, RunSummary, SCHEMA_ID};
use std::path::{Path, PathBuf};

/// Output formats of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The summary printed on stdout.
    Console,
    /// summary.json.
    Json,
    /// junit.xml (one testcase per conformance rule and threshold).
    Junit,
    /// report.html (self-contained).
    Html,
}

impl Format {
    /// Every file format (all but the console).
    pub const FILES: [Format; 3] = [Format::Json, Format::Junit, Format::Html];
}

/// Why a summary could not be read, merged or written.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The file could not be read.
    #[error("{}: {reason}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: std::io::Error,
    },
    /// The file is not JSON of a summary.
    #[error("{}: not a chatstorm summary: {reason}", path.display())]
    NotSummary {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: serde_json::Error,
    },
    /// The file is a summary of another schema.
    #[error("{}: schema {found:?}, expected {SCHEMA_ID:?}", path.display())]
    Schema {
        /// The file.
        path: PathBuf,
        /// The schema it names.
        found: String,
    },
    /// `merge` was given nothing.
    #[error("no shard summaries to merge")]
    NothingToMerge,
    /// Two shards' histograms could not be added.
    #[error("merging shard metrics: {0}")]
    Merge(#[from] crate::metrics::SnapshotError),
}

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
pub fn read_json(path: &Path) -> Result<RunSummary, OutputError> {
    let text = std::fs::read_to_string(path).map_err(|reason| OutputError::Read {
        path: path.to_owned(),
        reason,
    })?;
    let summary: RunSummary = serde_json::from_str(&text).map_err(|reason| OutputError::NotSummary {
        path: path.to_owned(),
        reason,
    })?;
    if summary.schema != SCHEMA_ID {
        return Err(OutputError::Schema {
            path: path.to_owned(),
            found: summary.schema,
        });
    }
    Ok(summary)
}

/// Writes the requested outputs of a summary into `dir`; failures are reported, not fatal.
pub fn write_outputs(summary: &RunSummary, dir: &Path, formats: &[Format]) {
    let mut wrote = Vec::new();
    for f in formats {
        let r = match f {
            Format::Console => super::console::write(summary, &mut std::io::stdout().lock()),
            Format::Json => write_json(summary, dir).map(|()| wrote.push("summary.json")),
            Format::Junit => super::junit::write_file(summary, dir).map(|()| wrote.push("junit.xml")),
            Format::Html => super::html::write_file(summary, dir).map(|()| wrote.push("report.html")),
        };
        if let Err(e) = r {
            eprintln!("chatstorm: cannot write {f:?} output into {}: {e}", dir.display());
        }
    }
    if !wrote.is_empty() {
        println!("results: {} ({})", dir.display(), wrote.join(", "));
    }
}

/// Writes the outputs of `chatstorm conform`: the conformance table on stdout, and into `dir`
/// `conformance.json` (the section, the same type as `summary.json`'s `conformance`),
/// `junit.xml`, `conformance.txt` (the console table) and `report.html`; failures are reported,
/// not fatal.
/// Returns the names of the files written.
pub fn write_conformance_outputs(c: &ConformanceSection, dir: &Path) -> Vec<&'static str> {
    let _ = super::console::write_conformance(c, &mut std::io::stdout().lock());
    let mut wrote = Vec::new();
    let mut put = |name: &'static str, bytes: std::io::Result<Vec<u8>>| match bytes
        .and_then(|b| std::fs::write(dir.join(name), b))
    {
        Ok(()) => wrote.push(name),
        Err(e) => eprintln!("chatstorm: cannot write {name} into {}: {e}", dir.display()),
    };
    let render = |f: &dyn Fn(&mut Vec<u8>) -> std::io::Result<()>| {
        let mut buf = Vec::new();
        f(&mut buf).map(|()| buf)
    };
    put(
        "conformance.json",
        serde_json::to_vec_pretty(c).map_err(std::io::Error::other),
    );
    put("junit.xml", render(&|b| super::junit::write_conformance(c, b)));
    put("conformance.txt", render(&|b| super::console::write_conformance(c, b)));
    put("report.html", Ok(super::html::render_conformance(c).into_bytes()));
    if !wrote.is_empty() {
        println!("results: {} ({})", dir.display(), wrote.join(", "));
    }
    wrote
}
