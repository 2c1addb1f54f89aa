//! What shards and the coordinator say to each other on the bus, as JSON, and the names it is
//! said under. Histograms travel as HdrHistogram V2 deflate, base64 (the `.hlog` encoding).
//!
//! - KV bucket `chatstorm_<run>`: `ready.<i>` ([`Ready`], put by shard i once set up),
//!   `state` ([`RunState`], put by the coordinator, watched by every shard), `done.<i>`
//!   ([`Done`], put by shard i after storing its final summary).
//! - Stream `CHATSTORM_<run>`, subjects `chatstorm.<run>.interval.<i>`: one [`Interval`] per
//!   shard per second, with the de-duplication id `<run>/<i>/<second>` (`Nats-Msg-Id`), so a
//!   resend after a lost acknowledgement is stored once.
//! - Object store `chatstorm_<run>`: `shard-<i>/summary.json`, `shard-<i>/metrics.hlog`, and the
//!   coordinator's `fleet/summary.json`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The KV key of the run's state.
pub const STATE_KEY: &str = "state";

/// The KV key shard `i` says it is ready under.
pub fn ready_key(shard: u32) -> String {
    format!("ready.{shard}")
}

/// The KV key shard `i` says it is done under.
pub fn done_key(shard: u32) -> String {
    format!("done.{shard}")
}

/// The shard index of a `ready.<i>` or `done.<i>` key.
pub fn key_shard(key: &str) -> Option<u32> {
    key.rsplit_once('.')?.1.parse().ok()
}

/// Shard `i`'s final summary in the object store.
pub fn summary_object(shard: u32) -> String {
    format!("shard-{shard}/summary.json")
}

/// Shard `i`'s `.hlog` in the object store.
pub fn hlog_object(shard: u32) -> String {
    format!("shard-{shard}/metrics.hlog")
}

/// The coordinator's merged summary in the object store.
pub const FLEET_SUMMARY_OBJECT: &str = "fleet/summary.json";

/// What every shard and the coordinator must agree on for the shards to run one schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunShape {
    /// Shards in the fleet.
    pub shards: u32,
    /// Users of the whole fleet.
    pub users: u64,
    /// The seed.
    pub seed: u64,
    /// The run's planned length, milliseconds.
    pub run_length_ms: u64,
}

/// A shard is set up and waits for the start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ready {
    /// Its index.
    pub shard: u32,
    /// The run as it will run it.
    pub shape: RunShape,
    /// Its users.
    pub users: u64,
    /// Where it runs (host name), for the per-shard table.
    pub host: String,
    /// Its process id.
    pub pid: u32,
}

/// The run's state, set by the coordinator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum RunState {
    /// Every shard starts at this wall-clock instant.
    Start {
        /// Milliseconds since the Unix epoch.
        at_unix_ms: u64,
    },
    /// A threshold breached on the fleet's merged figures: every shard stops its users.
    Abort {
        /// The threshold's key.
        threshold: String,
        /// One line for the reports.
        reason: String,
    },
    /// The run will not start (a shard never came, or one runs another plan).
    Cancelled {
        /// One line for the shards' stderr.
        reason: String,
    },
}

/// One shard's figures for one 1 s interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// The shard.
    pub shard: u32,
    /// 1 for the interval ending about 1 s after the start, then 2, 3, ...
    pub second: u32,
    /// Time since the start at the end of the interval, milliseconds.
    pub elapsed_ms: u64,
    /// The interval's samples per metric (actual view) that had any, V2 deflate base64.
    pub histograms: BTreeMap<String, String>,
    /// Counter totals since the start (not deltas: a lost interval loses no count), non-zero only.
    pub counters: BTreeMap<String, u64>,
    /// Users connected at the end of the interval.
    pub connected: i64,
}

impl Interval {
    /// The de-duplication id (`Nats-Msg-Id`).
    pub fn message_id(&self, run: &str) -> String {
        format!("{run}/{}/{}", self.shard, self.second)
    }
}

/// A shard stored its final summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Done {
    /// The shard.
    pub shard: u32,
    /// Its own exit code.
    pub exit_code: u8,
    /// Why it stopped early, if it did.
    pub stop_reason: Option<String>,
    /// Intervals it published (the coordinator compares with those it received).
    #[serde(default)]
    pub intervals: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_states_round_trip() {
        assert_eq!(key_shard(&ready_key(12)), Some(12));
        assert_eq!(key_shard(&done_key(0)), Some(0));
        let s = RunState::Abort {
            threshold: "errors.rate".into(),
            reason: "x".into(),
        };
        let text = serde_json::to_string(&s).unwrap();
        assert!(text.contains("\"phase\":\"abort\""), "{text}");
        assert_eq!(serde_json::from_str::<RunState>(&text).unwrap(), s);
    }
}
