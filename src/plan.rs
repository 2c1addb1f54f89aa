//! What the command line asks for, as plain data: `cli.rs` (the only module that sees clap)
//! turns parsed arguments into one [`Plan`], and `commands.rs` carries it out. Tests and
//! embedders can build a plan without clap.

use crate::report::Format;
use crate::target::TargetOptions;
use std::path::PathBuf;
use std::time::Duration;

/// One command.
#[derive(Debug, Clone)]
pub enum Plan {
    /// `chatstorm run`.
    /// Boxed: the other plans are a fraction of its size.
    Run(Box<RunPlan>),
    /// `chatstorm conform`.
    Conform(ConformPlan),
    /// `chatstorm validate FILE...`.
    Validate(Vec<PathBuf>),
    /// `chatstorm report ...`.
    Report(ReportPlan),
    /// `chatstorm mock ...`: the mock binary's own arguments.
    Mock(Vec<String>),
    /// `chatstorm fleet ...`.
    Fleet(FleetPlan),
}

/// `chatstorm run`.
#[derive(Debug, Clone)]
pub struct RunPlan {
    /// The scenario file.
    pub scenario: PathBuf,
    /// The target flags.
    pub target: TargetOptions,
    /// Override of `users.count`.
    pub users: Option<u32>,
    /// Override of the run length.
    pub duration: Option<Duration>,
    /// Override of the seed.
    pub seed: Option<u64>,
    /// The run folder (default: a new one under `reports/`).
    pub out: Option<PathBuf>,
    /// The outputs to write.
    pub formats: Vec<Format>,
    /// Shards run as child processes (1: none).
    pub workers: u32,
    /// Run only shard I of N.
    pub shard: Option<(u32, u32)>,
    /// No progress display.
    pub quiet: bool,
    /// User lanes (threads); `None`: one per core, shared out among `workers`.
    pub threads: Option<usize>,
    /// Watching the run live: Prometheus endpoint, dashboard, remote write (default: none).
    pub live: crate::live::LiveOptions,
    /// Run as one shard of a fleet steered over a bus (`--fleet`); needs `shard`.
    pub fleet: Option<FleetJoin>,
}

impl RunPlan {
    /// A run of `scenario` against `target` with the command line's defaults: the scenario's own
    /// users, length and seed, every output into a new folder under `reports/`, one process, one
    /// lane per core, nothing watching live, no fleet. Embedders and tests change what they need
    /// with struct update syntax.
    pub fn new(scenario: PathBuf, target: TargetOptions) -> Self {
        Self {
            scenario,
            target,
            users: None,
            duration: None,
            seed: None,
            out: None,
            formats: vec![Format::Console, Format::Json, Format::Junit, Format::Html],
            workers: 1,
            shard: None,
            quiet: false,
            threads: None,
            live: crate::live::LiveOptions::default(),
            fleet: None,
        }
    }
}

/// `run --shard I/N --fleet URL`: how a shard joins its fleet.
#[derive(Debug, Clone)]
pub struct FleetJoin {
    /// The NATS URL of the fleet's bus.
    pub url: String,
    /// The fleet run's id, shared by the coordinator and every shard.
    pub run: String,
    /// Stop the users when the bus has been unreachable this long.
    pub watchdog: Duration,
    /// Give up when the fleet has not started within this time of being ready.
    pub start_timeout: Duration,
}

/// `chatstorm fleet ...`.
#[derive(Debug, Clone)]
pub enum FleetPlan {
    /// Print the Kubernetes manifests of a fleet run.
    Manifest {
        /// The scenario file (its text goes into a ConfigMap).
        scenario: PathBuf,
        /// Shards (pods).
        shards: u32,
        /// The container image, NAME:TAG.
        image: String,
        /// The bus's URL; `None`: a NATS server is part of the manifests.
        nats: Option<String>,
        /// The run id (default: the scenario's name and the current time).
        run: Option<String>,
    },
    /// Start the shards together, watch them, abort fleet-wide, write the merged report.
    Coordinate(CoordinatePlan),
}

/// `chatstorm fleet coordinate`.
#[derive(Debug, Clone)]
pub struct CoordinatePlan {
    /// The scenario file the shards run.
    pub scenario: PathBuf,
    /// Override of `users.count`, as given to the shards.
    pub users: Option<u32>,
    /// Override of the run length, as given to the shards.
    pub duration: Option<Duration>,
    /// Override of the seed, as given to the shards.
    pub seed: Option<u64>,
    /// How many shards.
    pub shards: u32,
    /// The bus's URL.
    pub nats: String,
    /// The fleet run's id.
    pub run: String,
    /// Fail the start when not every shard is ready within this time.
    pub start_timeout: Duration,
    /// The merged report's folder (default: a new one under `reports/`).
    pub out: Option<PathBuf>,
    /// The outputs to write.
    pub formats: Vec<Format>,
    /// No live line.
    pub quiet: bool,
}

/// `chatstorm conform`.
#[derive(Debug, Clone)]
pub struct ConformPlan {
    /// The target flags.
    pub target: TargetOptions,
    /// Rule id globs to run (empty: all).
    pub only: Vec<String>,
    /// Count non-strict failures as failures.
    pub strict: bool,
    /// The results folder (default: a new one under `reports/`).
    pub out: Option<PathBuf>,
}

/// `chatstorm report`.
#[derive(Debug, Clone)]
pub enum ReportPlan {
    /// Re-render a summary, optionally compared with a baseline.
    Render {
        /// The summary.json.
        summary: PathBuf,
        /// An older summary to compare with.
        baseline: Option<PathBuf>,
        /// Percent a figure may worsen before it is a regression.
        tolerance: f64,
        /// The smallest latency change that counts, milliseconds.
        min_change_ms: f64,
        /// Where to write (default: next to the summary).
        out: Option<PathBuf>,
    },
    /// Merge shard folders into one summary and report.
    Merge {
        /// The shard folders.
        dirs: Vec<PathBuf>,
        /// Where to write (default: the folders' common parent).
        out: Option<PathBuf>,
    },
}
