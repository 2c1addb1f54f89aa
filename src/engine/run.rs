//! One run, start to finish: resolve the target (starting the embedded mock if none is named),
//! build the schedule, start users at their intended times, carry out the timeline, collect
//! metrics every second while probing the target, stop cleanly (on time, on SIGINT/SIGTERM, or
//! on an aborting threshold), check that what setup created is still there, and hand back what
//! was measured.

use super::embedded::EmbeddedMock;
use super::lag::{self, LagReport};
use super::progress::Progress;
use super::schedule::{Schedule, Stage};
use super::timeline;
use crate::metrics::{Collector, Gauge, MetricsSnapshot, Recorder};
use crate::scenario::{Scenario, StageKind};
use crate::target::Target;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, SystemTime};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Time a user gets to connect before the end of the run to count as due (`users_due`): a
/// connect against a healthy server takes milliseconds; one still under way 3 s after its start
/// (a slow fallback to long-poll) is not counted either way. Scenarios whose users are expected
/// to take longer ask for a share (`checks: {users_connected: "95%"}`).
pub const CONNECT_GRACE_MS: u64 = 3_000;

/// How long users get to close cleanly (close 1000, long-poll close) once the run ends.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// What to run.
pub struct RunRequest {
    /// The validated scenario, CLI overrides applied.
    pub scenario: Scenario,
    /// Where it came from.
    pub scenario_file: Option<PathBuf>,
    /// A target given on the command line (overrides the scenario's).
    pub target: Option<Target>,
    /// The run folder (created by the caller).
    pub out_dir: PathBuf,
    /// No progress display.
    pub quiet: bool,
    /// Run only shard I of N.
    pub shard: Option<(u32, u32)>,
    /// The single-threaded lanes the users run on (see [`super::lanes`]).
    pub lanes: super::lanes::LanePlan,
    /// Told about the run once per second (the live endpoints); `None`: nobody watches.
    pub watcher: Option<Arc<dyn super::watch::Watcher>>,
    /// A fleet steering this shard (start instant, live intervals, fleet-wide stop); `None`
    /// for a run on its own.
    pub link: Option<Arc<dyn super::link::RunLink>>,
}

/// What a run produced, before rendering.
pub struct RunOutput {
    /// Every measurement.
    pub metrics: MetricsSnapshot,
    /// The target as described in reports.
    pub target_description: String,
    /// Whether the target was the bundled mock.
    pub target_is_mock: bool,
    /// Users the shard's schedule holds.
    pub users_planned: u64,
    /// Users started.
    pub users_started: u64,
    /// Users started early enough to be expected to connect (`RunInfo::users_due`).
    pub users_due: u64,
    /// What the in-run probe of the target saw.
    pub target_health: super::figures::TargetHealth,
    /// The end-of-run check of what setup created (`None`: nothing to check).
    pub state: Option<super::figures::StateFigures>,
    /// The plan's length.
    pub planned: Duration,
    /// The real length.
    pub elapsed: Duration,
    /// Wall-clock start.
    pub started_at: SystemTime,
    /// Why the run stopped early, if it did.
    pub stop_reason: Option<String>,
    /// The timeline as carried out.
    pub marks: Vec<super::figures::TimelineMark>,
    /// The scheduler's honesty figures.
    pub lag: LagReport,
    /// The harness's own TLS handshake CPU (`None`: a plain target).
    pub tls_load: Option<super::tls_load::HandshakeLoad>,
    /// Starts later than [`lag::LATE_START`].
    pub late_starts: u64,
    /// The descriptor limit.
    pub fd_limit: u64,
    /// Most descriptors open at once.
    pub fd_peak: u64,
    /// Peak resident memory, bytes.
    pub peak_rss: u64,
    /// Peak live users.
    pub peak_connected: u64,
    /// CPU seconds used.
    pub cpu_seconds: f64,
    /// The threshold that stopped the run, if one did.
    pub aborted_by: Option<String>,
    /// Conformance observations during the run.
    pub conformance: Option<crate::conformance::ObserverSummary>,
    /// How the target was reached over TLS (`None`: plain).
    pub tls: Option<crate::report::summary::TlsInfo>,
    /// The host names the run looked up once (none for IP literals and the embedded mock).
    pub dns: Vec<crate::net::dns::Resolution>,
}

/// Why a run could not happen at all.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The target did not answer.
    #[error("target unreachable: {0}")]
    Unreachable(super::probe::ProbeError),
    /// The target answered setup with an error or garbage (exit 5).
    #[error("the target failed during setup: {0}")]
    Target(super::setup::SetupError),
    /// The TLS pre-flight handshake failed: a certificate the run does not trust, or no
    /// handshake at all (exit 5, before any user starts).
    #[error("{0}")]
    Tls(crate::net::preflight::PreflightError),
    /// A host name of the run does not resolve (exit 5, before any user starts).
    #[error("{0}")]
    Dns(crate::net::ResolveError),
    /// `--source-ips` cannot carry this process's users: an address that is not local, too
    /// few ports or descriptors (exit 6, before any user starts).
    #[error("{0}")]
    Sources(crate::net::sources::BudgetError),
    /// Anything else that stopped the run from starting (exit 2).
    #[error("{0}")]
    Setup(#[from] StartError),
    /// The fleet this shard belongs to never started it (exit 4).
    #[error("the fleet did not start this shard: {0}")]
    Fleet(String),
}

/// What stopped a run from starting, other than the target (each one line).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The SIGINT/SIGTERM handlers could not be installed.
    #[error("cannot listen for signals: {0}")]
    Signals(std::io::Error),
    /// The user lanes' threads could not be started.
    #[error("cannot start the user threads: {0}")]
    Lanes(std::io::Error),
    /// Plain users and no URL to open.
    #[error("plain-websocket users need the WebSocket URL to open: target.url in the scenario or --target ws://...")]
    PlainNeedsUrl,
    /// The scenario's `target:` is unusable.
    #[error(transparent)]
    Target(#[from] crate::target::TargetError),
    /// The embedded mock did not start.
    #[error(transparent)]
    Mock(#[from] super::embedded::MockStartError),
    /// Setup was refused for a reason of the scenario's (not the target's).
    #[error("setting up the channels: {0}")]
    Channels(super::setup::SetupError),
    /// The `.hlog` file could not be created.
    #[error("cannot write {}: {reason}", path.display())]
    Hlog {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: crate::metrics::hlog::HlogError,
    },
    /// The collector task panicked.
    #[error("collector failed: {0}")]
    Collector(tokio::task::JoinError),
    /// The run folder could not be created.
    #[error(transparent)]
    OutDir(std::io::Error),
}

/// The scenario's stages in the schedule's terms.
pub fn stages_of(scenario: &Scenario) -> Vec<Stage> {
    scenario
        .load
        .stages
        .iter()
        .map(|s| match s.kind {
            StageKind::Ramp => Stage::Ramp {
                to: s.users_after as u32,
                over: s.length,
            },
            StageKind::Hold => Stage::Hold { duration: s.length },
            StageKind::Arrival { per_second, session } => Stage::Arrival {
                rate: per_second,
                duration: s.length,
                max: Some(s.users_after.saturating_sub(s.users_before) as u32),
                session,
            },
        })
        .collect()
}

/// Runs a scenario.
///
/// # Errors
/// [`RunError::Unreachable`] when the target does not answer before any user starts;
/// [`RunError::Setup`] when the mock or the run folder cannot be set up.
pub async fn run(req: RunRequest) -> Result<RunOutput, RunError> {
    // Listening from the start: a signal during setup stops the run as soon as it begins.
    let interrupts = super::signals::Interrupts::listen(|sig| {
        eprintln!(
            "\nchatstorm: {}, stopping the users and writing what was measured ({} again to quit now)",
            sig.name(),
            sig.name()
        );
    })
    .map_err(StartError::Signals)?;
    let scenario = Arc::new(req.scenario);
    let fd_limit = crate::sys::raise_fd_limit();
    let schedule = Arc::new(Schedule::build(
        &stages_of(&scenario),
        scenario.users.count.min(u64::from(u32::MAX)) as u32,
    ));
    let (shard, shards) = req.shard.unwrap_or((0, 1));
    let indices: Vec<u32> = schedule.shard_indices(shard, shards).collect();
    let users_planned = indices.len() as u64;

    let plain = scenario.users.kind == crate::scenario::UserKind::PlainWebsocket;
    let (target, target_description, _mock_guard, dns_pins) =
        resolve_target(req.target, &scenario, users_planned, fd_limit).await?;
    let created = super::setup::create_channels(&scenario, &target).await.map_err(|e| {
        if e.is_config() {
            RunError::Setup(StartError::Channels(e))
        } else {
            RunError::Target(e)
        }
    })?;

    let profiles: Vec<crate::scenario::Profile> = scenario.users.profile.weights.iter().map(|(p, _)| *p).collect();
    let recorder = Recorder::for_profiles(&profiles);
    for r in &dns_pins.resolutions {
        recorder.record(crate::metrics::Metric::ConnectDns, r.took);
    }
    // A fleet shard starts at the fleet's common instant (every shard ready), not at once.
    let (started_at, start) = match &req.link {
        Some(link) => {
            let at = link.ready().await.map_err(RunError::Fleet)?;
            let start = Instant::now() + at.duration_since(SystemTime::now()).unwrap_or_default();
            tokio::time::sleep_until(start).await;
            (at, start)
        }
        None => (SystemTime::now(), Instant::now()),
    };
    // A child of the signal token: a signal cancels the run, an aborting threshold only the run.
    let root = interrupts.token().child_token();
    let stop_reason: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
    let watch_stop = CancellationToken::new();
    let watch_task = tokio::spawn(super::probe::watch(target.clone(), plain, start, watch_stop.clone()));

    let fault = target.is_mock.then(|| super::fault::FaultClient::new(&target));
    let observer = super::users::observer(&scenario);
    let ctx = super::users::context(
        &scenario,
        &target,
        recorder.clone(),
        start,
        shard,
        Some(observer.clone()),
        root.clone(),
    );
    let actions = timeline::Audience::new();

    // The scheduler-lag probe and the 1 s collector.
    let lag_stop = CancellationToken::new();
    let lanes = match req.lanes.count(_mock_guard.is_some()) {
        Some(n) => Some(Arc::new(super::lanes::Lanes::start(n).map_err(StartError::Lanes)?)),
        None => None,
    };
    let lag_tally = req
        .watcher
        .as_ref()
        .map(|w| w.lag_bounds_us())
        .filter(|b| !b.is_empty())
        .map(|b| Arc::new(lag::LagTally::new(b)));
    let lag_task = tokio::spawn(lag::probe_into(lag_stop.clone(), lag_tally.clone()));
    // The harness's own handshake CPU, judged beside the scheduler lag (`tls_load`), as a share
    // of the threads the users' handshakes run on: the lanes (or this runtime's workers), at
    // most one per core.
    let handshake_threads = lanes
        .as_ref()
        .map_or_else(
            || tokio::runtime::Handle::current().metrics().num_workers(),
            |l| l.count(),
        )
        .clamp(1, crate::sys::cores());
    let tls_load_task = target.tls.as_ref().map(|t| {
        tokio::spawn(super::tls_load::sample(
            t.handshake_cpu().clone(),
            handshake_threads,
            lag_stop.clone(),
        ))
    });
    let lane_lag_tasks = lanes
        .as_ref()
        .map(|l| l.on_each(|| lag::probe_into(lag_stop.clone(), lag_tally.clone())))
        .unwrap_or_default();
    let hlog_path = req.out_dir.join("metrics.hlog");
    let mut collector = Collector::new(recorder.clone(), start.into_std(), started_at)
        .with_hlog_file(
            &hlog_path,
            &format!("chatstorm {} seed {}", scenario.name, scenario.seed),
        )
        .map_err(|reason| StartError::Hlog {
            path: hlog_path.clone(),
            reason,
        })?;
    if req.link.is_some() {
        // A fleet shard publishes each interval's histograms as the `.hlog` encodes them.
        collector.keep_intervals();
    }
    let started = Arc::new(AtomicU64::new(0));
    let peaks = Arc::new(Peaks::default());
    let total = scenario.run_length();
    let late = Arc::new(AtomicU64::new(0));
    let marks: timeline::Marks = Arc::default();
    if let Some(watcher) = req.watcher.clone() {
        let (started, late, peaks, marks, observer) = (
            started.clone(),
            late.clone(),
            peaks.clone(),
            marks.clone(),
            observer.clone(),
        );
        let mut so_far = super::watch::RunSoFar {
            scenario: scenario.clone(),
            target_description: target_description.clone(),
            target_is_mock: target.is_mock,
            users_planned,
            users_started: 0,
            late_starts: 0,
            planned: total,
            started_at,
            marks: Vec::new(),
            fd_limit,
            fd_peak: 0,
            peak_rss: 0,
            peak_connected: 0,
            conformance: crate::conformance::ObserverSummary { rules: Vec::new() },
            conformance_by_profile: std::collections::BTreeMap::new(),
            scheduler_lag: lag_tally.clone(),
            dns: dns_pins.resolutions.clone(),
        };
        collector.set_on_tick(Box::new(move |c| {
            so_far.users_started = started.load(Relaxed);
            so_far.late_starts = late.load(Relaxed);
            so_far.fd_peak = peaks.fds.load(Relaxed);
            so_far.peak_rss = peaks.rss.load(Relaxed);
            so_far.peak_connected = peaks.connected.load(Relaxed);
            so_far.marks = marks.lock().map(|m| m.clone()).unwrap_or_default();
            so_far.conformance = observer.summary();
            so_far.conformance_by_profile = observer.by_profile();
            watcher.tick(c, &so_far);
        }));
    }
    let aborted_by: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
    let collector_task = {
        let (root, started, peaks, recorder) = (root.clone(), started.clone(), peaks.clone(), recorder.clone());
        let (scenario, stop_reason, aborted_by) = (scenario.clone(), stop_reason.clone(), aborted_by.clone());
        let mut progress = Progress::new(total, req.quiet);
        let schedule = schedule.clone();
        let link = req.link.clone();
        tokio::spawn(async move {
            let mut collector = collector;
            let mut tick = tokio::time::interval_at(start + Duration::from_secs(1), Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = root.cancelled() => break,
                    _ = tick.tick() => {
                        let view = collector.tick(Instant::now().into_std());
                        if let Some(l) = &link {
                            l.interval(start.elapsed(), &collector, &recorder);
                        }
                        peaks.observe(recorder.gauge(Gauge::Connected).max(0) as u64);
                        let stage = stage_name(&schedule, start.elapsed());
                        progress.update(&stage, started.load(Relaxed), &view);
                        if let Some((key, reason)) = super::abort::check(&scenario.thresholds, &collector, &recorder, start.elapsed()) {
                            progress.note(&reason);
                            if let Ok(mut r) = stop_reason.lock() {
                                r.get_or_insert(reason);
                            }
                            if let Ok(mut a) = aborted_by.lock() {
                                *a = Some(key);
                            }
                            root.cancel();
                        }
                    }
                }
            }
            progress.finish();
            collector
        })
    };

    // The timeline.
    let timeline_task = tokio::spawn(timeline::run(
        scenario.clone(),
        start,
        fault.clone(),
        actions.clone(),
        recorder.clone(),
        marks.clone(),
        root.clone(),
    ));

    // Users, each at its intended time.
    let tracker = TaskTracker::new();
    // With one lane, the scheduler runs on that lane and spawns each user there as a local task:
    // from the main runtime every start was a cross-thread spawn (an eventfd write and a wake of
    // the lane) plus a wake of a main-runtime worker for each start's timer, about a twentieth of
    // the harness's CPU in a 10,000-user connect burst. A start is then also judged late by the
    // clock of the thread its user runs on. With several lanes it stays on the main runtime,
    // which hands users out round-robin.
    let single_lane = lanes.as_ref().filter(|l| l.count() == 1).map(|l| l.of(0).clone());
    let starter = Starter {
        indices,
        schedule: schedule.clone(),
        start,
        plain,
        root: root.clone(),
        tracker: tracker.clone(),
        started: started.clone(),
        late: late.clone(),
        ctx: ctx.clone(),
        scenario: scenario.clone(),
        actions: actions.clone(),
        // On its lane, `spawn_user` without lanes spawns onto the current runtime: that lane.
        lanes: if single_lane.is_some() { None } else { lanes.clone() },
    };
    let scheduler = match &single_lane {
        Some(lane) => lane.spawn(start_users(starter)),
        None => tokio::spawn(start_users(starter)),
    };

    // A fleet stops every shard at once (a fleet-wide abort, or this shard lost the bus).
    let link_task = req.link.clone().map(|link| {
        let (root, stop_reason, aborted_by) = (root.clone(), stop_reason.clone(), aborted_by.clone());
        tokio::spawn(async move {
            let stop = link.stopped().await;
            eprintln!("chatstorm: {}", stop.reason);
            if let Ok(mut r) = stop_reason.lock() {
                r.get_or_insert(stop.reason);
            }
            if let (Some(key), Ok(mut a)) = (stop.threshold, aborted_by.lock()) {
                a.get_or_insert(key);
            }
            root.cancel();
        })
    });

    // Run for the plan's length, or until Ctrl-C / an aborting threshold cancels.
    tokio::select! {
        _ = tokio::time::sleep_until(start + total) => {}
        _ = root.cancelled() => {}
    }
    let elapsed = start.elapsed();
    watch_stop.cancel();
    if let Some(t) = &link_task {
        t.abort();
    }
    recorder.close_storms();
    root.cancel();
    scheduler.abort();
    timeline_task.abort();
    tracker.close();
    if tokio::time::timeout(STOP_GRACE, tracker.wait()).await.is_err() {
        eprintln!("chatstorm: some users did not stop within {STOP_GRACE:?}; their last measurements are kept");
    }
    ctx.deliveries.finish_into(&recorder);
    // Lost deliveries are DELIVERY-EVERY-WATCHER failures, with the first one as evidence, filed
    // under each receiver's profile.
    let d = &ctx.deliveries;
    for u in 0..d.user_count() {
        let (received, lost) = d.by_receiver(u);
        if received + lost == 0 {
            continue;
        }
        crate::metrics::profile::with_profile(super::users::profile_of(&scenario, u), || {
            observer.deliveries_settled(received, lost, || {
                d.first_lost().map(|l| (l.receiver, d.describe_lost(&l)))
            });
        });
    }
    lag_stop.cancel();
    let mut lags = vec![lag_task.await.unwrap_or_default()];
    for t in lane_lag_tasks {
        lags.push(t.await.unwrap_or_default());
    }
    let lag = LagReport::worst(lags);
    let tls_load = match tls_load_task {
        Some(t) => t.await.ok(),
        None => None,
    };
    // Every user has ended (or was given up on above): the lanes can go.
    drop(lanes);
    let collector = collector_task.await.map_err(StartError::Collector)?;
    let mut metrics = collector.finish(Instant::now().into_std());
    for (name, rules) in observer.by_profile() {
        if let Some(p) = metrics.profiles.get_mut(name) {
            p.conformance = rules;
        }
    }
    if let Some(f) = &fault {
        f.reset().await;
    }
    let target_health = watch_task.await.unwrap_or_default();
    // Not after an interruption: the person (or CI) that stopped the run wants it to end now.
    let state = if interrupts.first().is_none() && scenario.checks.state_kept {
        super::setup::verify(&target, &created).await
    } else {
        None
    };
    let users_started = started.load(Relaxed);
    let users_due = users_due(&schedule, (shard, shards), users_started, elapsed);
    let marks = marks.lock().map(|m| m.clone()).unwrap_or_default();
    let conformance = Some(observer.summary());
    let stop_reason = match interrupts.first() {
        Some(sig) => Some(format!("interrupted ({})", sig.name())),
        None => stop_reason.lock().map(|g| g.clone()).unwrap_or(None),
    };
    drop(interrupts);
    Ok(RunOutput {
        metrics,
        target_description,
        target_is_mock: target.is_mock,
        users_planned,
        users_started,
        users_due,
        target_health,
        state,
        planned: total,
        elapsed,
        started_at,
        stop_reason,
        marks,
        lag,
        tls_load,
        late_starts: late.load(Relaxed),
        fd_limit,
        fd_peak: peaks.fds.load(Relaxed),
        peak_rss: peaks.rss.load(Relaxed),
        peak_connected: peaks.connected.load(Relaxed),
        cpu_seconds: crate::sys::cpu_seconds(),
        aborted_by: aborted_by.lock().map(|a| a.clone()).unwrap_or(None),
        conformance,
        tls: target.tls.as_ref().map(|t| crate::report::summary::TlsInfo {
            insecure: t.is_insecure(),
        }),
        dns: dns_pins.resolutions.clone(),
    })
}

/// Step 1 of a run: the target (a given one, the scenario's remote one, or the embedded mock,
/// whose guard the caller holds for the run), how reports describe it, its host names looked up
/// once and pinned for the run (`net::dns`, the pins held by the caller), and a first probe that
/// it answers at all.
async fn resolve_target(
    given: Option<Target>,
    scenario: &Scenario,
    users_planned: u64,
    fd_limit: u64,
) -> Result<(Target, String, Option<EmbeddedMock>, crate::net::dns::Pins), RunError> {
    let mut _mock_guard = None;
    let plain = scenario.users.kind == crate::scenario::UserKind::PlainWebsocket;
    let target = match (given, &scenario.target) {
        (Some(t), _) => t,
        (None, crate::scenario::TargetSpec::Remote(r)) => {
            crate::target::Target::from_scenario(r, scenario).map_err(StartError::from)?
        }
        (None, crate::scenario::TargetSpec::Embedded(_)) if plain => {
            return Err(StartError::PlainNeedsUrl.into());
        }
        (None, crate::scenario::TargetSpec::Embedded(opts)) => {
            let mock = EmbeddedMock::start(opts, scenario.seed, users_planned, fd_limit)
                .await
                .map_err(StartError::from)?;
            let t = mock.target.clone();
            _mock_guard = Some(mock);
            t
        }
    };
    let target_description = match &_mock_guard {
        Some(m) => m.description.clone(),
        None if plain => target.ws_base.to_string(),
        None => target.http_base.to_string(),
    };
    let mut urls = vec![&target.http_base, &target.ws_base];
    if let crate::target::TargetAuth::TokenEndpoint(u) = &target.auth {
        urls.push(u);
    }
    let pins = crate::net::dns::resolve_once(&urls).await.map_err(RunError::Dns)?;
    // Local budgets before the first packet to the target.
    if let Some(sources) = &target.source_ips {
        check_sources(sources, &target, (users_planned, scenario.users.count), fd_limit).await?;
    }
    super::probe::tls_preflight(&target).await.map_err(RunError::Tls)?;
    if plain {
        // A bare WebSocket server may count an HTTP probe as a failed handshake: TCP only.
        super::probe::reachable_tcp(&target).await
    } else {
        super::probe::reachable(&target).await
    }
    .map_err(RunError::Unreachable)?;
    Ok((target, target_description, _mock_guard, pins))
}

/// `--source-ips`: the addresses are this machine's, this process's users fit in its
/// descriptors, and the run's users (every shard's: local shards share the addresses) fit in the
/// addresses' ports towards the address the users' WebSockets connect to (pinned by now).
async fn check_sources(
    sources: &[std::net::IpAddr],
    target: &Target,
    (here, run): (u64, u64),
    fd_limit: u64,
) -> Result<(), RunError> {
    use crate::net::sources;
    sources::check_local(sources).map_err(RunError::Sources)?;
    let server = crate::net::resolve(&target.ws_base).await.map_err(RunError::Dns)?;
    let ports = sources::ephemeral_ports();
    sources::check_budget(sources, server, here, ports, fd_limit).map_err(RunError::Sources)?;
    sources::check_budget(sources, server, run, ports, u64::MAX).map_err(RunError::Sources)
}

/// The users started early enough, and not stopped too soon, to be expected to connect: each
/// had [`CONNECT_GRACE_MS`] before the run (or its own session) ended.
fn users_due(schedule: &Schedule, (shard, shards): (u32, u32), users_started: u64, elapsed: Duration) -> u64 {
    let grace = Duration::from_millis(CONNECT_GRACE_MS);
    schedule
        .shard_indices(shard, shards)
        .take(users_started as usize)
        .filter(|&i| {
            let slot = schedule.slots[i as usize];
            let until = slot.stop.map_or(elapsed, |s| s.min(elapsed));
            slot.start + grace <= until
        })
        .count() as u64
}

/// What the scheduler task needs to start this shard's users.
struct Starter {
    indices: Vec<u32>,
    schedule: Arc<Schedule>,
    start: Instant,
    plain: bool,
    root: CancellationToken,
    tracker: TaskTracker,
    started: Arc<AtomicU64>,
    late: Arc<AtomicU64>,
    ctx: Arc<crate::user::UserCtx>,
    scenario: Arc<Scenario>,
    actions: timeline::Audience,
    lanes: Option<Arc<super::lanes::Lanes>>,
}

/// The scheduler: starts each user at its intended time until the plan ends or `root` is
/// cancelled, counting starts and late starts.
async fn start_users(s: Starter) {
    let Starter {
        indices,
        schedule,
        start,
        plain,
        root,
        tracker,
        started,
        late,
        ctx,
        scenario,
        actions,
        lanes,
    } = s;
    let lanes = lanes.as_deref();
    // Users spawned onto this runtime (one lane, or no lanes) stop through a token cancelled
    // here, by a relay on this runtime: cancelling their tokens from the run's own thread woke
    // each user from a foreign thread, an eventfd write per user (10,000 at the end of a
    // connect-rate run). Users spread over several lanes keep the run's token.
    let users_root = if lanes.is_none() {
        let local = CancellationToken::new();
        let (root, relay) = (root.clone(), local.clone());
        tokio::spawn(async move {
            root.cancelled().await;
            relay.cancel();
        });
        local
    } else {
        root.clone()
    };
    for index in indices {
        let slot = schedule.slots[index as usize];
        let intended = start + slot.start;
        // Users already due start back to back: a timer per user would hand the worker
        // to the users already started between every two spawns, and a burst (a ramp
        // over 1 ms) would then start late by the time all their connects take.
        if Instant::now() < intended {
            tokio::select! {
                _ = root.cancelled() => break,
                _ = tokio::time::sleep_until(intended) => {}
            }
        } else if root.is_cancelled() {
            break;
        }
        if Instant::now().saturating_duration_since(intended) > lag::LATE_START {
            late.fetch_add(1, Relaxed);
        }
        let stop_at = slot.stop.map(|s| start + s);
        if plain {
            super::users::spawn_plain(
                &tracker,
                lanes,
                &ctx,
                index,
                intended,
                stop_at,
                users_root.child_token(),
            );
        } else {
            super::users::spawn(
                &tracker,
                lanes,
                &scenario,
                &ctx,
                index,
                intended,
                stop_at,
                &actions,
                users_root.child_token(),
            );
        }
        started.fetch_add(1, Relaxed);
    }
}

/// Peaks sampled once per second (descriptors every [`FD_SAMPLE_EVERY`] seconds).
#[derive(Default)]
struct Peaks {
    connected: AtomicU64,
    fds: AtomicU64,
    rss: AtomicU64,
    ticks: AtomicU64,
}

/// Counting descriptors lists `/proc/self/fd`, which costs the kernel a lookup per descriptor:
/// once a second it was 4 % of a 10,000-user connect burst's CPU.
const FD_SAMPLE_EVERY: u64 = 5;

impl Peaks {
    fn observe(&self, connected: u64) {
        self.connected.fetch_max(connected, Relaxed);
        if self.ticks.fetch_add(1, Relaxed).is_multiple_of(FD_SAMPLE_EVERY)
            && let Some(n) = crate::sys::open_fds()
        {
            self.fds.fetch_max(n, Relaxed);
        }
        crate::sys::release_free_memory();
        if let Some(n) = crate::sys::resident_bytes() {
            self.rss.fetch_max(n, Relaxed);
        }
    }
}

/// The stage running at `t`, for the live line.
fn stage_name(schedule: &Schedule, t: Duration) -> String {
    if t >= schedule.total {
        return "stopping".to_owned();
    }
    format!("{}/{}s", t.as_secs(), schedule.total.as_secs())
}
