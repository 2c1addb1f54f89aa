//! The subcommands, each a function from a plain [`Plan`] to an [`Outcome`]. `main.rs` only
//! parses (through `cli.rs`), builds the runtime and exits with the outcome's code; the one-line
//! messages of a command that cannot run are printed here.

pub mod report_command;

use crate::engine::run::{RunError, RunRequest};
use crate::exit::Outcome;
use crate::plan::{ConformPlan, Plan, RunPlan};
use crate::report::{self, Format, write_outputs};
use std::path::PathBuf;

/// Carries out one command.
pub async fn dispatch(plan: Plan) -> Outcome {
    match plan {
        Plan::Run(p) => run(*p).await,
        Plan::Validate(files) => validate(&files),
        Plan::Conform(p) => conform(p).await,
        Plan::Report(p) => report_command::run(&p),
        Plan::Mock(args) => mock(args).await,
        Plan::Fleet(p) => crate::fleet::command(p).await,
    }
}

fn fail(outcome: Outcome, msg: impl std::fmt::Display) -> Outcome {
    eprintln!("chatstorm: {msg}");
    outcome
}

/// An error and its causes on one line, `outer: cause: cause` (as `anyhow`'s `{:#}` printed them).
fn one_line(e: &dyn std::error::Error) -> String {
    let mut line = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        line.push_str(": ");
        line.push_str(&c.to_string());
        cause = c.source();
    }
    line
}

/// `chatstorm validate`: every problem of every file, one line each.
pub fn validate(files: &[PathBuf]) -> Outcome {
    let mut outcome = Outcome::Passed;
    for path in files {
        match crate::scenario::load(path) {
            Ok(s) => println!(
                "{}: ok ({}, {} users, {:?})",
                path.display(),
                s.name,
                s.users.count,
                s.run_length()
            ),
            Err(problems) => {
                eprint!("{problems}");
                outcome = Outcome::InvalidConfig;
            }
        }
    }
    outcome
}

/// `chatstorm run`.
pub async fn run(args: RunPlan) -> Outcome {
    let mut scenario = match crate::scenario::load(&args.scenario) {
        Ok(s) => s,
        Err(problems) => {
            eprint!("{problems}");
            return Outcome::InvalidConfig;
        }
    };
    let overridden = (|| {
        if let Some(n) = args.users {
            scenario = scenario.clone().with_users(u64::from(n))?;
        }
        if let Some(d) = args.duration {
            scenario = scenario.clone().with_duration(d)?;
        }
        Ok::<(), crate::scenario::ScenarioErrors>(())
    })();
    if let Err(problems) = overridden {
        eprint!("{problems}");
        return Outcome::InvalidConfig;
    }
    if let Some(s) = args.seed {
        scenario = scenario.with_seed(s);
    }
    let plain = scenario.users.kind == crate::scenario::UserKind::PlainWebsocket;
    let mut target = match args.target.build(plain) {
        Ok(t) => t,
        Err(e) => return fail(Outcome::InvalidConfig, e),
    };
    warn_insecure(target.as_ref());
    if let Some(t) = target.as_mut() {
        let needs = scenario.timeline.iter().find(|e| e.action.needs_mock());
        if needs.is_some() || t.fault_secret.is_some() {
            // A standalone chatstorm mock is a full target: its fault API carries out the
            // server-side faults. Anything else is refused before a user starts.
            if let Err(e) = crate::engine::probe::tls_preflight(t).await {
                return fail(Outcome::Unreachable, e);
            }
            match crate::engine::fault::detect(t).await {
                Ok(()) => t.is_mock = true,
                Err(crate::engine::fault::FaultApiError::Unreachable(e)) => {
                    return fail(Outcome::Unreachable, format!("target unreachable: {e}"));
                }
                Err(e) => {
                    let what = match needs {
                        Some(ev) => format!(
                            "timeline `{}` needs a chatstorm mock's fault control (or use a client-side form, side: client)",
                            ev.action.name()
                        ),
                        None => "--fault-secret was given".to_owned(),
                    };
                    return fail(
                        Outcome::InvalidConfig,
                        format!("{}: {what}: {e}", args.scenario.display()),
                    );
                }
            }
        }
    }
    if target.is_none()
        && args.target.tls != crate::net::TlsOptions::default()
        && let crate::scenario::TargetSpec::Remote(r) = &scenario.target
    {
        // --ca-cert / --insecure for the scenario's own target.url (built here rather than in
        // the engine, which knows nothing of the command line).
        match crate::target::Target::from_scenario(r, &scenario).and_then(|t| t.with_tls(&args.target.tls)) {
            Ok(t) => {
                warn_insecure(Some(&t));
                target = Some(t);
            }
            Err(e) => return fail(Outcome::InvalidConfig, e),
        }
    }
    if args.workers > 1 && args.shard.is_none() {
        if args.live.metrics_listen.is_some() || args.live.dashboard.is_some() {
            return fail(
                Outcome::InvalidConfig,
                "--metrics-listen and --dashboard watch one process; with --workers, use --prometheus-remote-write (the shards' series add up)",
            );
        }
        return run_workers(&args, &scenario).await;
    }
    let dir = match crate::run_folder::create(args.out.as_deref(), &scenario.name) {
        Ok(d) => d,
        Err(e) => return fail(Outcome::InvalidConfig, e),
    };
    let file = args.scenario.display().to_string();
    let live = if args.live.any() {
        let labels = crate::live::RunLabels::of(&scenario.name, &dir, args.shard);
        let scenario = std::sync::Arc::new(scenario.clone());
        match crate::live::Live::start(&args.live, labels, scenario, Some(file.clone())).await {
            Ok(l) => Some(l),
            Err(e) => return fail(Outcome::InvalidConfig, e),
        }
    } else {
        None
    };
    // A fleet shard joins its bus before anything starts (`crate::fleet::shard`).
    let link = match &args.fleet {
        Some(join) => match crate::fleet::shard::join(join, args.shard.unwrap_or((0, 1)), &scenario).await {
            Ok(l) => Some(l),
            Err(e) => return fail(Outcome::Unreachable, e),
        },
        None => None,
    };
    let req = RunRequest {
        scenario: scenario.clone(),
        scenario_file: Some(args.scenario.clone()),
        target,
        out_dir: dir.clone(),
        quiet: args.quiet,
        shard: args.shard,
        lanes: args.threads.map_or(
            crate::engine::lanes::LanePlan::Auto,
            crate::engine::lanes::LanePlan::Threads,
        ),
        watcher: live
            .clone()
            .map(|l| l as std::sync::Arc<dyn crate::engine::watch::Watcher>),
        link: link
            .clone()
            .map(|l| l as std::sync::Arc<dyn crate::engine::link::RunLink>),
    };
    let target_text = args.target.target.clone().unwrap_or_default();
    let output = match crate::engine::run::run(req).await {
        Ok(o) => o,
        Err(e @ (RunError::Unreachable(_) | RunError::Target(_) | RunError::Tls(_) | RunError::Dns(_))) => {
            // The run never started, but CI reads junit.xml: it must say the run failed.
            let reason = e.to_string();
            let summary =
                report::build::not_started(&scenario, Some(file), &target_text, Outcome::Unreachable, &reason);
            let formats: Vec<Format> = args
                .formats
                .iter()
                .filter(|f| **f != Format::Console)
                .copied()
                .collect();
            write_outputs(&summary, &dir, &formats);
            return fail(Outcome::Unreachable, reason);
        }
        Err(RunError::Setup(e)) => return fail(Outcome::InvalidConfig, one_line(&e)),
        Err(e @ RunError::Sources(_)) => {
            let reason = e.to_string();
            let summary =
                report::build::not_started(&scenario, Some(file), &target_text, Outcome::SourcesTooFew, &reason);
            write_outputs(&summary, &dir, &[Format::Json]);
            return fail(Outcome::SourcesTooFew, reason);
        }
        Err(e @ RunError::Fleet(_)) => return fail(Outcome::ShardsLost, e),
    };
    let summary = report::build::build(&scenario, Some(file), &output);
    write_outputs(&summary, &dir, &args.formats);
    if let Some(l) = &live {
        l.finish(&summary).await;
    }
    if let Some(l) = link {
        l.finish(&summary, &dir).await;
    }
    Outcome::from_code(summary.verdict.exit_code)
}

/// `run --workers N`: the shards as child processes, their summaries merged into one report.
async fn run_workers(args: &RunPlan, scenario: &crate::scenario::Scenario) -> Outcome {
    let dir = match crate::run_folder::create(args.out.as_deref(), &scenario.name) {
        Ok(d) => d,
        Err(e) => return fail(Outcome::InvalidConfig, e),
    };
    let spec = crate::engine::workers::ShardSpec {
        scenario: args.scenario.clone(),
        users: args.users,
        duration: args.duration,
        seed: args.seed,
        target: args.target.clone(),
        workers: args.workers,
        // Shards share the cores: two shards on two cores take one lane each.
        threads: args
            .threads
            .unwrap_or_else(|| (crate::sys::cores() / args.workers.max(1) as usize).max(1)),
        remote_write: args.live.remote_write.clone(),
    };
    let shards = match crate::engine::workers::run(&spec, &dir).await {
        Ok(s) => s,
        Err(e) => return fail(Outcome::InvalidConfig, e),
    };
    let mut merged = match report::merge::merge_dirs(&shards.written) {
        Ok(m) => m,
        Err(e) => return fail(Outcome::Unreachable, e),
    };
    report::merge::mark_missing(&mut merged, &shards.missing);
    write_outputs(&merged, &dir, &args.formats);
    report::merge::merge_hlogs(&shards.written, &dir, &merged);
    Outcome::from_code(merged.verdict.exit_code)
}

/// `chatstorm conform`.
pub async fn conform(args: ConformPlan) -> Outcome {
    let target = match args.target.build(false) {
        Ok(t) => t,
        Err(e) => return fail(Outcome::InvalidConfig, e),
    };
    let dir = match crate::run_folder::create(args.out.as_deref(), "conform") {
        Ok(d) => d,
        Err(e) => return fail(Outcome::InvalidConfig, e),
    };
    let opts = crate::conformance::embedded_suite_options(args.only.clone(), args.strict);
    warn_insecure(target.as_ref());
    let results = match &target {
        None => match crate::conformance::run_embedded(&opts).await {
            Ok(r) => r,
            Err(e) => return fail(Outcome::Unreachable, format!("cannot start the embedded mock: {e}")),
        },
        Some(t) => {
            if let Err(e) = crate::engine::probe::tls_preflight(t).await {
                return fail(Outcome::Unreachable, e);
            }
            if let Err(e) = crate::engine::probe::reachable(t).await {
                return fail(Outcome::Unreachable, format!("target unreachable: {e}"));
            }
            let opts = crate::conformance::SuiteOptions {
                health_interval: std::time::Duration::from_secs(30),
                ..opts
            };
            crate::conformance::run_suite(t, &opts).await
        }
    };
    let section = report::conformance::from_suite(&results);
    report::output::write_conformance_outputs(&section, &dir);
    if section.failing() > 0 {
        Outcome::ConformanceFailed
    } else {
        Outcome::Passed
    }
}

/// The `--insecure` warning, once at start: what it disables, said where a person (or a CI log)
/// sees it.
fn warn_insecure(target: Option<&crate::target::Target>) {
    if let Some(t) = target
        && t.tls.as_ref().is_some_and(crate::net::Tls::is_insecure)
    {
        eprintln!(
            "chatstorm: warning: --insecure: TLS certificates of {} are NOT checked (issuer, name, dates); anyone on the path can read and change this run's traffic, tokens included",
            t.http_base
        );
    }
}

/// `chatstorm mock`: the bundled mock server, with the `chatstorm-mock` binary's options.
pub async fn mock(args: Vec<String>) -> Outcome {
    let mut argv = vec!["chatstorm mock".to_owned()];
    argv.extend(args);
    match chatstorm_mock::cli::run(argv).await {
        Ok(()) => Outcome::Passed,
        Err(e) => fail(Outcome::InvalidConfig, e),
    }
}
