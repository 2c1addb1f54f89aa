//! Reports: the `RunSummary` built once at the end of a run, and the renderers that read only
//! it (console, `summary.json`, `junit.xml`, `report.html`). It owns every output: the format
//! enum and `write_outputs` (`output.rs`) and the merge of shard summaries (`merge.rs`).

pub mod build;
pub mod chart;
pub mod checks;
pub mod compare;
pub mod conformance;
pub mod connect_phases;
pub mod console;
pub mod html;
pub mod junit;
pub mod merge;
pub mod output;
pub mod summary;

pub use output::{Format, OutputError, read_json, write_json, write_outputs};
