//! The command line (clap derive lives here and only here): parsed arguments are turned into a
//! plain [`Plan`] right away ([`Cli::into_plan`]), so the rest of the crate never sees clap.

use chatstorm::plan::{ConformPlan, CoordinatePlan, FleetJoin, FleetPlan, Plan, ReportPlan, RunPlan};
use chatstorm::target::TargetOptions;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

/// chatstorm: load testing and conformance checking of the connection lifecycle of
/// Stream-Chat-compatible chat servers.
#[derive(Debug, Parser)]
#[command(name = "chatstorm", version, propagate_version = true)]
#[command(after_help = "EXIT CODES:
  0  passed
  1  a threshold was breached (or `report --baseline` found a regression)
  2  the configuration or scenario is invalid (nothing ran)
  3  a strict conformance rule failed
  4  the run is invalid: the load generator itself was saturated (scheduler lag, ports or descriptors),
     or shards of a fleet were lost or never started
  5  the target could not be reached at all, or the run was interrupted
  6  --source-ips (or the descriptor limit) cannot carry the users (nothing ran)

Without --target (and without `target.url` in the scenario) the bundled mock server is started
in-process on a free loopback port, so `chatstorm run scenarios/smoke.yaml` works on its own.")]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a scenario: thousands of simulated users against the target, with latency histograms,
    /// conformance counts and a report folder.
    Run(Box<RunArgs>),
    /// Run the conformance suite alone with a handful of scripted users.
    Conform(ConformArgs),
    /// Check scenario files and report every problem with file:line:column; run nothing.
    Validate(ValidateArgs),
    /// Re-render the outputs of a finished run from its summary.json, optionally comparing it with
    /// a baseline run.
    Report(ReportArgs),
    /// Run the bundled mock server alone (the same server `run` embeds by default); `chatstorm mock
    /// --help` lists its options and the fault-control API.
    #[command(disable_help_flag = true)]
    Mock(MockArgs),
    /// Run across machines: Kubernetes manifests for a fleet of shards, and the coordinator that
    /// starts them together, aborts them fleet-wide and writes the one merged report.
    #[command(subcommand)]
    Fleet(FleetCommand),
}

/// Where the server under test is and how to authenticate against it.
#[derive(Debug, Clone, Default, Args)]
pub struct TargetArgs {
    /// REST base URL of the server under test (http:// or https://); the WebSocket URL is derived
    /// as the SDKs do (http → ws, https → wss). Default: the embedded mock.
    #[arg(long, value_name = "URL", env = "CHATSTORM_TARGET")]
    pub target: Option<String>,
    /// The app's API key.
    #[arg(long, value_name = "KEY", env = "CHATSTORM_API_KEY")]
    pub api_key: Option<String>,
    /// The app secret: tokens are minted locally (HS256). Prefer the environment variable over the flag.
    #[arg(
        long,
        value_name = "SECRET",
        env = "CHATSTORM_SECRET",
        hide_env_values = true,
        conflicts_with = "token_endpoint"
    )]
    pub secret: Option<String>,
    /// Fetch user tokens from this endpoint instead (`GET URL?user_id=<id>`; body: the token, or
    /// `{"token": "..."}`).
    #[arg(long, value_name = "URL")]
    pub token_endpoint: Option<String>,
    /// The fault-control secret of a standalone chatstorm mock (its --fault-secret): with it, the
    /// scenario's server-side faults are carried out through the mock's /_fault API. Prefer the
    /// environment variable over the flag.
    #[arg(long, value_name = "SECRET", env = "CHATSTORM_FAULT_SECRET", hide_env_values = true)]
    pub fault_secret: Option<String>,
    /// A PEM file of CA certificates to trust for https:// and wss:// (a private CA), besides the
    /// platform's roots.
    #[arg(long, value_name = "PEM")]
    pub ca_cert: Option<std::path::PathBuf>,
    /// Accept any TLS certificate: no check of issuer, name or dates, so anyone between here and
    /// the target can read and change the traffic. For test servers only; warned about at start
    /// and recorded in summary.json.
    #[arg(long)]
    pub insecure: bool,
    /// Local addresses the users connect from, for a real target: a list (10.1.0.2,10.1.0.3) or a
    /// CIDR block (10.1.0.0/28). Each address carries about 28,000 connections to one server
    /// address and port; checked, with the descriptor limit, before the run starts (exit 6).
    #[arg(long, value_name = "LIST|CIDR")]
    pub source_ips: Option<String>,
}

/// `chatstorm run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The scenario file (YAML; see scenarios/README.md).
    #[arg(value_name = "SCENARIO.yaml")]
    pub scenario: PathBuf,
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub overrides: OverrideArgs,
    /// Write the results into this folder (default: a new folder under reports/).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Outputs to write, comma separated.
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        default_value = "console,json,junit,html"
    )]
    pub format: Vec<Format>,
    /// Split the users into N shards, each run by its own child process, merged into one report.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub workers: u32,
    /// Run only shard I of N (user indices i with i % N == I) and write a shard summary; merge
    /// shard folders with `chatstorm report merge`. `auto/N` takes I from the environment's
    /// JOB_COMPLETION_INDEX, as a Kubernetes Indexed Job sets it in each pod.
    #[arg(long, value_name = "I/N", value_parser = parse_shard)]
    pub shard: Option<(u32, u32)>,
    /// No progress bars or live line (also automatic when stderr is not a terminal).
    #[arg(long, short)]
    pub quiet: bool,
    /// Threads the simulated users run on, each a single-threaded lane holding its users' sockets
    /// and timers (default: one per core; half of them when the run starts its own mock, which
    /// takes the rest; shared out among --workers shards). Against a mock you started on the
    /// same machine, leave it cores too: e.g. 1 of 2.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub threads: Option<u16>,
    /// Serve the run's live metrics at http://ADDR/metrics in the Prometheus text format
    /// (histograms with buckets, counters, gauges). ADDR: a port (binds 127.0.0.1) or IP:PORT.
    #[arg(long, value_name = "ADDR", value_parser = parse_listen)]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Serve a live dashboard at http://ADDR/: the report's charts, redrawn every second, that
    /// turns into the final report when the run ends. ADDR: a port (binds 127.0.0.1) or IP:PORT.
    #[arg(long, value_name = "ADDR", value_parser = parse_listen)]
    pub dashboard: Option<std::net::SocketAddr>,
    /// Push the same series as --metrics-listen to a Prometheus remote-write receiver every 5 s
    /// and once at the end (e.g. http://localhost:9090/api/v1/write).
    #[arg(long, value_name = "URL")]
    pub prometheus_remote_write: Option<String>,
    /// Run as one shard of a fleet: wait on this NATS JetStream bus for the coordinator's start,
    /// publish every 1 s interval, obey a fleet-wide abort, store the final summary there
    /// (`chatstorm fleet coordinate`). Needs --shard.
    #[arg(long, value_name = "NATS-URL", env = "CHATSTORM_FLEET", requires = "shard")]
    pub fleet: Option<String>,
    /// The fleet run's id, the same for the coordinator and every shard (letters, digits, - and _).
    #[arg(long, value_name = "ID", env = "CHATSTORM_FLEET_RUN", requires = "fleet")]
    pub fleet_run: Option<String>,
    /// A shard that cannot reach the bus for this long stops its users (no load nobody watches).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "10s")]
    pub fleet_watchdog: Duration,
    /// A shard gives up when the fleet has not started this long after it was ready.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "10m")]
    pub fleet_start_timeout: Duration,
}

/// What `run` (and a fleet's coordinator, for its shards) may change of a scenario.
#[derive(Debug, Args)]
pub struct OverrideArgs {
    /// Override `users.count` (the load stages are scaled to it).
    #[arg(long, value_name = "N")]
    pub users: Option<u32>,
    /// Override the run length: the plan is cut (or the last stage extended) to this duration.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Override the scenario's seed.
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
}

/// `chatstorm fleet` subcommands.
#[derive(Debug, Subcommand)]
pub enum FleetCommand {
    /// Print the Kubernetes manifests of a fleet run (an Indexed Job of N shards, the coordinator
    /// Job, the scenario in a ConfigMap, the secret in a Secret) on stdout.
    Manifest(ManifestArgs),
    /// Start N shards together, watch their live intervals, abort them all when an aborting
    /// threshold breaches on the fleet's merged figures, and write the exact merged report.
    Coordinate(CoordinateArgs),
}

/// `chatstorm fleet manifest`.
#[derive(Debug, Args)]
pub struct ManifestArgs {
    /// The scenario file.
    #[arg(value_name = "SCENARIO.yaml")]
    pub scenario: PathBuf,
    /// Shards (pods of the Indexed Job).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub shards: u32,
    /// The container image (built from the Containerfile).
    #[arg(long, value_name = "NAME:TAG", default_value = "chatstorm:latest")]
    pub image: String,
    /// The NATS JetStream server to use; without it the manifests include one.
    #[arg(long, value_name = "NATS-URL")]
    pub nats: Option<String>,
    /// The run's id (default: the scenario's name and the current time).
    #[arg(long, value_name = "ID")]
    pub run: Option<String>,
}

/// `chatstorm fleet coordinate`.
#[derive(Debug, Args)]
pub struct CoordinateArgs {
    /// The scenario file the shards run.
    #[arg(value_name = "SCENARIO.yaml")]
    pub scenario: PathBuf,
    /// How many shards.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub shards: u32,
    /// The NATS JetStream server.
    #[arg(long, value_name = "NATS-URL", env = "CHATSTORM_FLEET")]
    pub nats: String,
    /// The fleet run's id, as given to the shards.
    #[arg(long, value_name = "ID", env = "CHATSTORM_FLEET_RUN")]
    pub run: String,
    /// The shards' overrides of the scenario (passed on to each).
    #[command(flatten)]
    pub overrides: OverrideArgs,
    /// Fail the run (exit 4, naming the missing shards) when not all are ready within this time.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "10m")]
    pub start_timeout: Duration,
    /// Write the merged results into this folder (default: a new folder under reports/).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Outputs to write, comma separated.
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        default_value = "console,json,junit,html"
    )]
    pub format: Vec<Format>,
    /// No live line.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Output formats of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
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

/// `chatstorm conform`.
#[derive(Debug, Args)]
pub struct ConformArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Run only the rules whose id matches one of these globs (e.g. `AUTH-*`); repeatable.
    #[arg(long, value_name = "GLOB")]
    pub only: Vec<String>,
    /// Count failures of non-strict rules (UNCONFIRMED in PROTOCOL.md) as failures.
    #[arg(long)]
    pub strict: bool,
    /// Write the results into this folder (default: a new folder under reports/).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// `chatstorm validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The scenario files to check.
    #[arg(value_name = "SCENARIO.yaml", required = true)]
    pub scenarios: Vec<PathBuf>,
}

/// `chatstorm report`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct ReportArgs {
    /// Merge shard folders instead of re-rendering one summary.
    #[command(subcommand)]
    pub action: Option<ReportCommand>,
    /// A summary.json written by `run` (or `report merge DIR...` for shard folders).
    #[arg(value_name = "SUMMARY.json", required = true)]
    pub summary: Option<PathBuf>,
    /// Compare with this older summary; exit 1 when a test gives evidence that a figure got worse
    /// by more than the minimum change and the tolerance.
    #[arg(long, value_name = "OLD.json")]
    pub baseline: Option<PathBuf>,
    /// How much worse (in percent) a figure may get before it counts as a regression.
    #[arg(long, value_name = "PERCENT", default_value_t = 10.0)]
    pub tolerance: f64,
    /// The smallest latency change, in milliseconds, that counts as a change in a comparison.
    #[arg(long, value_name = "MS", default_value_t = 5.0)]
    pub min_change: f64,
    /// Where to write the re-rendered outputs (default: next to the summary).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// `chatstorm report` subcommands.
#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Merge the summaries of shard folders (`run --shard I/N` run anywhere) into one summary,
    /// report and exit code.
    Merge(MergeArgs),
}

/// `chatstorm report merge`.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The shard folders, each holding a summary.json.
    #[arg(value_name = "DIR", required = true)]
    pub dirs: Vec<PathBuf>,
    /// Where to write the merged outputs (default: the folders' common parent).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// `chatstorm mock`.
#[derive(Debug, Args)]
pub struct MockArgs {
    /// Options of the mock server, as for the `chatstorm-mock` binary (see `chatstorm-mock --help`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "MOCK-OPTIONS")]
    pub args: Vec<String>,
}

impl Cli {
    /// The plain [`Plan`] these arguments ask for: nothing below the binary sees clap.
    pub fn into_plan(self) -> Plan {
        match self.command {
            Command::Run(a) => {
                let a = *a;
                Plan::Run(Box::new(RunPlan {
                    scenario: a.scenario,
                    target: a.target.into(),
                    users: a.overrides.users,
                    duration: a.overrides.duration,
                    seed: a.overrides.seed,
                    out: a.out,
                    formats: a.format.into_iter().map(Into::into).collect(),
                    workers: a.workers,
                    shard: a.shard,
                    quiet: a.quiet,
                    threads: a.threads.map(usize::from),
                    live: chatstorm::live::LiveOptions {
                        metrics_listen: a.metrics_listen,
                        dashboard: a.dashboard,
                        remote_write: a.prometheus_remote_write,
                    },
                    fleet: a.fleet.map(|url| FleetJoin {
                        url,
                        run: a.fleet_run.unwrap_or_default(),
                        watchdog: a.fleet_watchdog,
                        start_timeout: a.fleet_start_timeout,
                    }),
                }))
            }
            Command::Conform(a) => Plan::Conform(ConformPlan {
                target: a.target.into(),
                only: a.only,
                strict: a.strict,
                out: a.out,
            }),
            Command::Validate(a) => Plan::Validate(a.scenarios),
            Command::Report(a) => Plan::Report(match (a.action, a.summary) {
                (Some(ReportCommand::Merge(m)), _) => ReportPlan::Merge {
                    dirs: m.dirs,
                    out: m.out,
                },
                (None, summary) => ReportPlan::Render {
                    // clap requires it without a subcommand.
                    summary: summary.unwrap_or_default(),
                    baseline: a.baseline,
                    tolerance: a.tolerance,
                    min_change_ms: a.min_change,
                    out: a.out,
                },
            }),
            Command::Mock(a) => Plan::Mock(a.args),
            Command::Fleet(FleetCommand::Manifest(a)) => Plan::Fleet(FleetPlan::Manifest {
                scenario: a.scenario,
                shards: a.shards,
                image: a.image,
                nats: a.nats,
                run: a.run,
            }),
            Command::Fleet(FleetCommand::Coordinate(a)) => Plan::Fleet(FleetPlan::Coordinate(CoordinatePlan {
                scenario: a.scenario,
                users: a.overrides.users,
                duration: a.overrides.duration,
                seed: a.overrides.seed,
                shards: a.shards,
                nats: a.nats,
                run: a.run,
                start_timeout: a.start_timeout,
                out: a.out,
                formats: a.format.into_iter().map(Into::into).collect(),
                quiet: a.quiet,
            })),
        }
    }
}

impl From<TargetArgs> for TargetOptions {
    fn from(a: TargetArgs) -> Self {
        TargetOptions {
            target: a.target,
            api_key: a.api_key,
            secret: a.secret,
            token_endpoint: a.token_endpoint,
            fault_secret: a.fault_secret,
            tls: chatstorm::net::TlsOptions {
                ca_cert: a.ca_cert,
                insecure: a.insecure,
            },
            source_ips: a.source_ips,
        }
    }
}

impl From<Format> for chatstorm::report::Format {
    fn from(f: Format) -> Self {
        match f {
            Format::Console => Self::Console,
            Format::Json => Self::Json,
            Format::Junit => Self::Junit,
            Format::Html => Self::Html,
        }
    }
}

/// A flag value clap's parsers refuse (clap prints it after the flag's name).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlagError {
    /// Not a humantime duration.
    #[error("{0} (write a unit, e.g. 30s, 5m, 250ms)")]
    Duration(String),
    /// `--shard` without `/`.
    #[error("expected I/N, e.g. 0/3")]
    ShardForm,
    /// `--shard`'s I is not a number.
    #[error("I must be a whole number")]
    ShardIndex,
    /// `--shard`'s N is not a number.
    #[error("N must be a whole number")]
    ShardCount,
    /// `--shard I/N` with I >= N or N = 0.
    #[error("shard {0}/{1}: need 0 <= I < N")]
    ShardRange(u32, u32),
    /// `--shard auto/N` without JOB_COMPLETION_INDEX in the environment.
    #[error(
        "auto takes I from JOB_COMPLETION_INDEX, which is not set (a Kubernetes Indexed Job sets it; elsewhere give I/N)"
    )]
    AutoUnset,
    /// `--shard auto/N` with a JOB_COMPLETION_INDEX that is not an index below N.
    #[error("JOB_COMPLETION_INDEX is {0:?}: need a whole number I with 0 <= I < {1}")]
    AutoIndex(String, u32),
}

/// Parses a human duration such as `30s`, `5m`, `250ms`.
///
/// # Errors
/// [`FlagError::Duration`] with humantime's reason.
pub fn parse_duration(s: &str) -> Result<Duration, FlagError> {
    humantime::parse_duration(s).map_err(|e| FlagError::Duration(e.to_string()))
}

fn parse_listen(s: &str) -> Result<std::net::SocketAddr, chatstorm::live::AddrError> {
    chatstorm::live::parse_listen(s)
}

fn parse_shard(s: &str) -> Result<(u32, u32), FlagError> {
    parse_shard_with(s, std::env::var("JOB_COMPLETION_INDEX").ok())
}

/// `--shard I/N` or `auto/N`, with `auto` taken from `job_index` (JOB_COMPLETION_INDEX).
fn parse_shard_with(s: &str, job_index: Option<String>) -> Result<(u32, u32), FlagError> {
    let (i, n) = s.split_once('/').ok_or(FlagError::ShardForm)?;
    let count: u32 = n.trim().parse().map_err(|_| FlagError::ShardCount)?;
    if i.trim() == "auto" {
        let index = job_index.ok_or(FlagError::AutoUnset)?;
        return match index.trim().parse::<u32>() {
            Ok(i) if i < count => Ok((i, count)),
            _ => Err(FlagError::AutoIndex(index, count)),
        };
    }
    let i: u32 = i.trim().parse().map_err(|_| FlagError::ShardIndex)?;
    let n = count;
    if n == 0 || i >= n {
        return Err(FlagError::ShardRange(i, n));
    }
    Ok((i, n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn shard_and_duration_parsers() {
        assert_eq!(parse_shard("1/3"), Ok((1, 3)));
        assert!(parse_shard("3/3").is_err() && parse_shard("x").is_err());
        assert_eq!(parse_shard_with("auto/3", Some("2".into())), Ok((2, 3)));
        assert_eq!(parse_shard_with("auto/3", None), Err(FlagError::AutoUnset));
        assert_eq!(
            parse_shard_with("auto/3", Some("3".into())),
            Err(FlagError::AutoIndex("3".into(), 3))
        );
        assert!(parse_shard_with("auto/0", Some("0".into())).is_err());
        assert!(parse_shard_with("auto/x", Some("0".into())).is_err());
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("30").unwrap_err().to_string().contains("unit"));
    }
}
