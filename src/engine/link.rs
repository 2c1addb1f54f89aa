//! A run steered from outside the process: the seam through which a fleet shard
//! (`crate::fleet::shard`) starts its users at the fleet's common instant, hands each 1 s
//! interval to the bus, and is stopped by the fleet (a fleet-wide abort, a lost bus). The engine
//! knows only this trait, not the bus, so that `engine` never depends on `fleet`.

use crate::metrics::{Collector, Recorder};
use futures_util::future::BoxFuture;
use std::time::{Duration, SystemTime};

/// Why the fleet stopped this shard's run.
#[derive(Debug, Clone)]
pub struct LinkStop {
    /// The aborting threshold's key, when a fleet-wide threshold stopped the run.
    pub threshold: Option<String>,
    /// One line for the report (`stop_reason`).
    pub reason: String,
}

/// What a run asks of whoever steers it.
pub trait RunLink: Send + Sync {
    /// Called once setup is done (target reachable, channels created): says this shard is ready
    /// and waits for the wall-clock instant every shard starts at.
    ///
    /// # Errors
    /// One line when the fleet never starts (cancelled, timed out, bus lost): the run does not
    /// start.
    fn ready(&self) -> BoxFuture<'_, Result<SystemTime, String>>;

    /// After each 1 s collection; `elapsed` is the time since the start. Must not block: the
    /// collector calls it on its own task.
    fn interval(&self, elapsed: Duration, collector: &Collector, recorder: &Recorder);

    /// Resolves when the fleet stops this run early.
    fn stopped(&self) -> BoxFuture<'_, LinkStop>;
}
