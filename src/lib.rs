//! chatstorm: load testing and conformance checking of the connection lifecycle of
//! Stream-Chat-compatible servers.
//!
//! # Layout
//!
//! The modules stack in layers; each imports only from layers below it (no import circles;
//! `python3 ../shared/tools/import-circles.py src` checks the circles). From the bottom:
//!
//! - `chatstorm_protocol` (crate): wire types, tokens, limits, back-off; no I/O.
//! - `chatstorm_mock` (crate): the bundled mock server, started in-process by default.
//! - Leaves: [`exit`] (exit codes), [`seed`], [`sys`] (descriptors, memory, loopback sources),
//!   [`run_folder`] (the one rule for run-folder names), [`markup`] (XML/HTML escaping).
//! - [`net`]: every connection the harness opens: the one TCP connect and hyper connector
//!   (source addresses; TLS for `https`/`wss` with the run's one [`net::Tls`], and the
//!   pre-flight handshake), and the one HTTP client type, [`net::Client`] (pool,
//!   body limit, optional cap on requests in flight as options; one classified [`net::Error`]).
//!   Used by `user`, `conformance` and `engine`; imports nothing above the leaves.
//! - [`scenario`]: YAML → validated [`scenario::Scenario`] (every problem with file:line:column).
//! - [`target`]: every way to build a [`target::Target`] (flags, scenario, mock, plain WebSocket).
//! - [`metrics`]: lock-free recording, the 1 s collector, HDR histograms and their snapshots.
//! - [`user`]: one simulated SDK user (sans-IO state machine plus its WebSocket/long-poll I/O).
//! - [`conformance`]: the rule table, the in-run observer and the scripted suite (`conform`).
//! - [`engine`]: one run start to finish (schedule, users, timeline, faults, probes, signals)
//!   and the `--workers` child processes; returns typed results ([`engine::run::RunOutput`]).
//! - [`report`]: the [`report::summary::RunSummary`] built once, its renderers (console, JSON,
//!   JUnit, HTML), merging of shard summaries, and [`report::write_outputs`].
//! - [`live`]: watching a run while it runs (Prometheus endpoint, remote write, live dashboard);
//!   the engine calls it once per second through [`engine::watch::Watcher`], and it draws with
//!   `report`'s renderer.
//! - [`fleet`]: one run across machines: Kubernetes manifests, a shard's link to the NATS
//!   JetStream bus (start together, live intervals, fleet-wide stop) and the coordinator that
//!   judges the fleet live and merges the final summaries with `report`'s merge.
//! - [`plan`]: the plain requests the command line is turned into.
//! - [`commands`]: one function per subcommand, from a [`plan::Plan`] to an [`exit::Outcome`];
//!   [`api`]: the in-process entry for tests and embedders.
//! - The binary (`src/main.rs` and `src/cli.rs`, the only place clap is seen) parses, builds the
//!   runtime and exits with the outcome's code.
//!
//! ARCHITECTURE.md at the repository root draws the data flow from YAML to report.

pub mod api;
pub mod commands;
pub mod conformance;
pub mod engine;
pub mod exit;
pub mod fleet;
pub mod live;
pub mod markup;
pub mod metrics;
pub mod net;
pub mod plan;
pub mod report;
pub mod run_folder;
pub mod scenario;
pub mod seed;
pub mod sys;
pub mod target;
pub mod user;
