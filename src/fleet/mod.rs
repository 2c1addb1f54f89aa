//! The fleet: one run spread over many machines (README "Across machines"). A Kubernetes
//! Indexed Job runs N shards (`run --shard auto/N --fleet URL`), a coordinator
//! (`fleet coordinate`) runs beside them, and a NATS JetStream server is their bus.
//!
//! Layout: `wire` (the messages and names on the bus), `bus` (the connection and the run's
//! JetStream stream, KV bucket and object store), `shard` (a shard's side: ready, start
//! together, live intervals, obey the fleet's stop, store its final summary), `coordinator` (start
//! together, merge live intervals, fleet-wide abort, the exact merged report with a per-shard
//! table), `manifest` (the Kubernetes manifests). The engine sees a shard only through
//! `crate::engine::link::RunLink`; the final merge is `crate::report::merge`'s, the same as
//! `report merge`'s.

pub mod bus;
pub mod coordinator;
pub mod manifest;
pub mod shard;
pub mod wire;

use crate::exit::Outcome;
use crate::plan::FleetPlan;

/// `chatstorm fleet ...`.
pub async fn command(plan: FleetPlan) -> Outcome {
    match plan {
        FleetPlan::Manifest {
            scenario,
            shards,
            image,
            nats,
            run,
        } => manifest::command(&scenario, shards, &image, nats.as_deref(), run.as_deref()),
        FleetPlan::Coordinate(p) => coordinator::run(&p).await,
    }
}
