//! Watching a run from outside the engine: a [`Watcher`] given in the run request is called once
//! per second, right after the collector's collection (and once more after the last one), with
//! the collector and [`RunSoFar`], the engine's own figures at that moment. The engine knows
//! nothing of what a watcher does with them (the live endpoints of `crate::live`); it only hands
//! over what it already keeps, so watching adds nothing to the users' recording path.

use super::figures::TimelineMark;
use crate::conformance::ObserverSummary;
use crate::metrics::{Collector, RuleTally};
use crate::scenario::Scenario;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Called by the engine once per collection.
pub trait Watcher: Send + Sync {
    /// One collection: `collector` holds everything recorded up to now.
    fn tick(&self, collector: &Collector, run: &RunSoFar);

    /// Upper bounds (microseconds) to count the scheduler-lag probes' wake-ups in, live
    /// ([`RunSoFar::scheduler_lag`]); empty (the default): not counted.
    fn lag_bounds_us(&self) -> Vec<u64> {
        Vec::new()
    }
}

/// What the engine knows of a run beside its metrics, at one collection.
#[derive(Clone)]
pub struct RunSoFar {
    /// The scenario being run.
    pub scenario: Arc<Scenario>,
    /// The target as reports describe it.
    pub target_description: String,
    /// Whether the target is the bundled mock.
    pub target_is_mock: bool,
    /// Users the shard's schedule holds.
    pub users_planned: u64,
    /// Users started so far.
    pub users_started: u64,
    /// Starts later than the documented bound, so far.
    pub late_starts: u64,
    /// The plan's length.
    pub planned: Duration,
    /// Wall-clock start.
    pub started_at: SystemTime,
    /// Timeline actions carried out so far.
    pub marks: Vec<TimelineMark>,
    /// Descriptor limit.
    pub fd_limit: u64,
    /// Most descriptors open at once so far.
    pub fd_peak: u64,
    /// Peak resident memory so far, bytes.
    pub peak_rss: u64,
    /// Most users live at once so far.
    pub peak_connected: u64,
    /// Conformance observations so far.
    pub conformance: ObserverSummary,
    /// The same per profile.
    pub conformance_by_profile: BTreeMap<&'static str, BTreeMap<String, RuleTally>>,
    /// The scheduler-lag probes' wake-ups so far, in the watcher's bounds.
    pub scheduler_lag: Option<Arc<super::lag::LagTally>>,
    /// Host names looked up once before the users started (`net::dns`).
    pub dns: Vec<crate::net::dns::Resolution>,
}
