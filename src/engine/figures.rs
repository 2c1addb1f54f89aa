//! What a run observes beside the metrics, as the engine hands it back: the timeline as carried
//! out, the in-run probe of the target, and the end-of-run state check. The summary
//! (`crate::report::summary`) carries these types as they are, so they serialize into
//! `summary.json` unchanged.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A carried-out timeline entry.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct TimelineMark {
    /// Milliseconds from the start.
    pub at_ms: u64,
    /// The action's key (`drop_sockets`).
    pub action: String,
    /// Its parameters and effect.
    pub detail: String,
}

/// What the in-run probe of the target (`GET /hi`, or a TCP connect for plain WebSocket
/// targets, once a second) saw.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct TargetHealth {
    /// Probes sent.
    pub probes: u64,
    /// Probes not answered.
    pub failures: u64,
    /// Every stretch of 3 or more failed probes in a row.
    pub outages: Vec<Outage>,
}

/// A stretch during which the target did not answer.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct Outage {
    /// The first failed probe, milliseconds from the start.
    pub from_ms: u64,
    /// The first answer after it (`None`: it never answered again).
    pub to_ms: Option<u64>,
    /// Why the first probe failed.
    pub error: String,
}

/// The end-of-run check, through REST, that the channels and memberships created at setup are
/// still on the target.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct StateFigures {
    /// Channels looked up.
    pub channels_checked: u64,
    /// Of those, channels the target no longer had.
    pub channels_missing: u64,
    /// Memberships (user in channel) looked up.
    pub memberships_checked: u64,
    /// Of those, memberships the target no longer had (counting those of missing channels).
    pub memberships_missing: u64,
    /// Up to five examples of what vanished.
    pub examples: Vec<String>,
    /// Why the check could not be made, when it could not.
    pub error: Option<String>,
}
