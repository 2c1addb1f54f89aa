//! The subcommands, each a function from parsed arguments to an [`Outcome`]. `main.rs` only
//! parses, builds the runtime and exits with the outcome's code.

use crate::cli::{Cli, Command, ConformArgs, Format, ReportArgs, RunArgs, TargetArgs, ValidateArgs};
use crate::engine::run::{RunError, RunRequest};
use crate::exit::Outcome;
use crate::report;
use crate::target::{Target, TargetAuth};
use std::path::{Path, PathBuf};

/// Runs one parsed command line.
pub async fn dispatch(cli: Cli) -> Outcome {
    match cli.command {
        Command::Run(args) => run(args).await,
        Command::Validate(args) => validate(&args),
        Command::Conform(args) => conform(args).await,
        Command::Report(args) => report_cmd(&args),
        Command::Mock(args) => mock(args.args).await,
    }
}

fn fail(outcome: Outcome, msg: impl std::fmt::Display) -> Outcome {
    eprintln!("chatstorm: {msg}");
    outcome
}

/// `chatstorm validate`: every problem of every file, one line each.
pub fn validate(args: &ValidateArgs) -> Outcome {
    let mut outcome = Outcome::Passed;
    for path in &args.scenarios {
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

/// The target named on the command line, if any. With `plain` (the scenario's users are
/// `kind: plain-websocket`) `--target` is the WebSocket URL the users open as it is, and needs no
/// key, secret or token endpoint.
///
/// # Errors
/// A one-line description of what is wrong with the flags.
pub fn target_from_args(args: &TargetArgs, plain: bool) -> Result<Option<Target>, String> {
    let Some(url) = &args.target else {
        if args.api_key.is_some() || args.secret.is_some() || args.token_endpoint.is_some() {
            return Err("--api-key, --secret and --token-endpoint need --target".to_owned());
        }
        // The embedded mock draws its own fault secret for every run; one given (e.g. from
        // CHATSTORM_FAULT_SECRET set for a service mock) has nothing to open here.
        return Ok(None);
    };
    if plain {
        if args.secret.is_some() || args.token_endpoint.is_some() {
            return Err("plain-websocket users use no tokens: drop --secret and --token-endpoint".to_owned());
        }
        return Target::plain(url).map(Some).map_err(|e| format!("--target {e}"));
    }
    let url = url.replacen("ws://", "http://", 1).replacen("wss://", "https://", 1);
    let url: url::Url = url.parse().map_err(|e| format!("--target {url:?}: {e}"))?;
    let api_key = args
        .api_key
        .clone()
        .ok_or("--target needs --api-key (or CHATSTORM_API_KEY)")?;
    let (auth, secret) = match (&args.secret, &args.token_endpoint) {
        (Some(s), _) => (TargetAuth::Secret(s.clone().into_bytes()), Some(s.clone().into_bytes())),
        (None, Some(e)) => {
            let e: url::Url = e.parse().map_err(|err| format!("--token-endpoint {e:?}: {err}"))?;
            (TargetAuth::TokenEndpoint(e), None)
        }
        (None, None) => return Err("--target needs --secret (or CHATSTORM_SECRET) or --token-endpoint".to_owned()),
    };
    let mut target = Target::new(url, api_key, auth, secret)?;
    // A chatstorm mock's fault API is used only once `fault::detect` has seen it accept this secret.
    target.fault_secret = args.fault_secret.clone().filter(|s| !s.is_empty());
    target.is_mock = false;
    Ok(Some(target))
}

/// A new run folder under `reports/` (or the one given), created now so a bad path fails
/// before anything runs.
fn out_dir(given: Option<&Path>, name: &str) -> Result<PathBuf, String> {
    let dir = crate::run_folder::choose(given, name).map_err(|e| format!("scenario name {name:?}: {e}"))?;
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create the run folder {}: {e}", dir.display()))?;
    Ok(dir)
}

/// `chatstorm run`.
pub async fn run(args: RunArgs) -> Outcome {
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
    let mut target = match target_from_args(&args.target, plain) {
        Ok(t) => t,
        Err(e) => return fail(Outcome::InvalidConfig, e),
    };
    if let Some(t) = target.as_mut() {
        let needs = scenario.timeline.iter().find(|e| e.action.needs_mock());
        if needs.is_some() || t.fault_secret.is_some() {
            // A standalone chatstorm mock is a full target: its fault API carries out the
            // server-side faults. Anything else is refused before a user starts.
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
    if args.workers > 1 && args.shard.is_none() {
        return crate::engine::workers::run(&args, &scenario).await;
    }
    let dir = match out_dir(args.out.as_deref(), &scenario.name) {
        Ok(d) => d,
        Err(e) => return fail(Outcome::InvalidConfig, e),
    };
    let file = args.scenario.display().to_string();
    let req = RunRequest {
        scenario: scenario.clone(),
        scenario_file: Some(args.scenario.clone()),
        target,
        out_dir: dir.clone(),
        quiet: args.quiet,
        shard: args.shard,
    };
    let target_text = args.target.target.clone().unwrap_or_default();
    let output = match crate::engine::run::run(req).await {
        Ok(o) => o,
        Err(e @ (RunError::Unreachable(_) | RunError::Target(_))) => {
            // The run never started, but CI reads junit.xml: it must say the run failed.
            let reason = e.to_string();
            let summary =
                report::build::not_started(&scenario, Some(file), &target_text, Outcome::Unreachable, &reason);
            let formats: Vec<Format> = args.format.iter().filter(|f| **f != Format::Console).cloned().collect();
            write_outputs(&summary, &dir, &formats);
            return fail(Outcome::Unreachable, reason);
        }
        Err(RunError::Setup(e)) => return fail(Outcome::InvalidConfig, format!("{e:#}")),
    };
    let summary = report::build::build(&scenario, Some(file), &output);
    write_outputs(&summary, &dir, &args.format);
    Outcome::from_code(summary.verdict.exit_code)
}

/// Writes the requested outputs of a summary into `dir`; failures are reported, not fatal.
pub fn write_outputs(summary: &report::summary::RunSummary, dir: &Path, formats: &[Format]) {
    let mut wrote = Vec::new();
    for f in formats {
        let r = match f {
            Format::Console => report::console::write(summary, &mut std::io::stdout().lock()),
            Format::Json => report::write_json(summary, dir).map(|()| wrote.push("summary.json")),
            Format::Junit => report::junit::write_file(summary, dir).map(|()| wrote.push("junit.xml")),
            Format::Html => report::html::write_file(summary, dir).map(|()| wrote.push("report.html")),
        };
        if let Err(e) = r {
            eprintln!("chatstorm: cannot write {f:?} output into {}: {e}", dir.display());
        }
    }
    if !wrote.is_empty() {
        println!("results: {} ({})", dir.display(), wrote.join(", "));
    }
}

/// `chatstorm conform`.
pub async fn conform(args: ConformArgs) -> Outcome {
    let target = match target_from_args(&args.target, false) {
        Ok(t) => t,
        Err(e) => return fail(Outcome::InvalidConfig, e),
    };
    let dir = match out_dir(args.out.as_deref(), "conform") {
        Ok(d) => d,
        Err(e) => return fail(Outcome::InvalidConfig, e),
    };
    let opts = crate::conformance::embedded_suite_options(args.only.clone(), args.strict);
    let report = match &target {
        None => match crate::conformance::run_embedded(&opts).await {
            Ok(r) => r,
            Err(e) => return fail(Outcome::Unreachable, format!("cannot start the embedded mock: {e}")),
        },
        Some(t) => {
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
    let _ = report.write_console(&mut std::io::stdout().lock());
    match report.write_to_dir(&dir) {
        Ok(files) => println!(
            "results: {} ({})",
            dir.display(),
            files
                .iter()
                .filter_map(|f| f.file_name())
                .map(|f| f.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Err(e) => eprintln!("chatstorm: cannot write the results into {}: {e}", dir.display()),
    }
    if report.exit_failed(args.strict) {
        Outcome::ConformanceFailed
    } else {
        Outcome::Passed
    }
}

/// `chatstorm report`.
pub fn report_cmd(args: &ReportArgs) -> Outcome {
    report::command::run(args)
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
