//! `chatstorm fleet coordinate`: the fleet's one judge.
//!
//! 1. Start together: wait until all N shards have said ready (each with the same run shape), then
//!    set the run state to one start instant a little ahead; or, after the start timeout, cancel
//!    the run naming the missing shards (exit 4).
//! 2. Live: read every shard's 1 s intervals (an ordered JetStream consumer, so a bus restart
//!    loses none), add their histograms into the fleet's whole-run histograms and keep each
//!    shard's latest counter totals; an interval is judged when every live shard has sent it (or
//!    after [`GRACE`], then marked incomplete): the scenario's aborting thresholds on the fleet's
//!    figures (`crate::engine::abort::check_figures`, the same rules as one process), and on a
//!    breach the run state becomes `abort`, which every shard obeys. A shard silent for
//!    [`LOST_AFTER`] is lost. Memory is flat in run length: only pending intervals are kept.
//! 3. Final: each shard's summary from the object store, merged exactly by
//!    `crate::report::merge` (the same code as `report merge`), every output written as for one
//!    run, plus `fleet.json` and a printed per-shard table; lost or never-started shards are named
//!    in the verdict and make the run invalid (exit 4) beyond what the scenario allows
//!    (`checks: {shards_lost: N}`).

use super::bus::Bus;
use super::wire::{self, Done, Interval, Ready, RunState};
use crate::engine::abort::{Figures, check_figures};
use crate::exit::Outcome;
use crate::metrics::{Counter, HistogramSnapshot, Metric, new_histogram};
use crate::plan::CoordinatePlan;
use crate::report::summary::RunSummary;
use crate::scenario::Scenario;
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// How far ahead of "all ready" the start instant is set, so that every shard has seen it
/// before it comes.
const START_LEAD: Duration = Duration::from_millis(1_500);
/// How long an interval waits for a late shard before it is judged without it (incomplete).
pub const GRACE: Duration = Duration::from_secs(2);
/// A running shard that sent nothing for this long is lost.
pub const LOST_AFTER: Duration = Duration::from_secs(5);
/// After the planned end (plus the users' stop grace), how long shards get to store their
/// summaries.
const FINAL_WAIT: Duration = Duration::from_secs(30);

/// What became of one shard.
#[derive(Debug, Clone, Serialize)]
pub struct ShardRow {
    /// Its index.
    pub shard: u32,
    /// `finished`, `lost`, `never started`, `no summary`.
    pub state: String,
    /// Its host.
    pub host: String,
    /// Its users.
    pub users: u64,
    /// Intervals received from it.
    pub intervals: u32,
    /// Intervals it says it published (when it finished).
    pub intervals_sent: Option<u32>,
    /// Connects it counted (final summary when it has one, else its last interval).
    pub connects: u64,
    /// Its own exit code, when it finished.
    pub exit_code: Option<u8>,
    /// When it was declared lost, seconds after the start.
    pub lost_at_s: Option<u64>,
}

/// `fleet.json`: the per-shard table and the live path's own figures.
#[derive(Debug, Clone, Serialize)]
pub struct FleetReport {
    /// The run id.
    pub run: String,
    /// Every shard.
    pub shards: Vec<ShardRow>,
    /// Intervals judged without every live shard (seconds after the start).
    pub incomplete_intervals: Vec<u32>,
    /// The threshold that aborted the fleet, with its reason.
    pub aborted: Option<String>,
    /// Intervals received.
    pub intervals_received: u64,
    /// Bytes of interval messages received.
    pub interval_bytes: u64,
    /// CPU seconds this process spent merging and judging intervals.
    pub merge_cpu_seconds: f64,
}

#[derive(Default)]
struct ShardLive {
    ready: Option<Ready>,
    last_second: u32,
    last_heard: Option<Instant>,
    counters: BTreeMap<String, u64>,
    connected: i64,
    intervals: u32,
    lost_at: Option<Duration>,
    done: Option<Done>,
}

/// The fleet's whole-run figures so far.
#[derive(Default)]
struct Fleet {
    histograms: BTreeMap<Metric, Histogram<u64>>,
    shards: Vec<ShardLive>,
}

impl Figures for Fleet {
    fn cumulative(&self, metric: Metric) -> Option<&Histogram<u64>> {
        self.histograms.get(&metric)
    }

    fn counter(&self, counter: Counter) -> u64 {
        self.shards
            .iter()
            .map(|s| s.counters.get(counter.name()).copied().unwrap_or(0))
            .sum()
    }
}

impl Fleet {
    fn live(&self, i: usize) -> bool {
        let s = &self.shards[i];
        s.lost_at.is_none() && s.done.is_none()
    }
}

fn load_scenario(p: &CoordinatePlan) -> Result<Scenario, String> {
    let mut s = crate::scenario::load(&p.scenario).map_err(|e| e.to_string())?;
    if let Some(n) = p.users {
        s = s.with_users(u64::from(n)).map_err(|e| e.to_string())?;
    }
    if let Some(d) = p.duration {
        s = s.with_duration(d).map_err(|e| e.to_string())?;
    }
    if let Some(seed) = p.seed {
        s = s.with_seed(seed);
    }
    Ok(s)
}

fn fail(outcome: Outcome, msg: impl std::fmt::Display) -> Outcome {
    eprintln!("chatstorm: {msg}");
    outcome
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn list(indexes: &[u32]) -> String {
    indexes.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
}

/// Runs the coordinator.
pub async fn run(p: &CoordinatePlan) -> Outcome {
    let scenario = match load_scenario(p) {
        Ok(s) => s,
        Err(e) => {
            eprint!("{e}");
            return Outcome::InvalidConfig;
        }
    };
    let dir = match crate::run_folder::create(p.out.as_deref(), &scenario.name) {
        Ok(d) => d,
        Err(e) => return fail(Outcome::InvalidConfig, e),
    };
    let bus = match Bus::connect(&p.nats, &p.run, "chatstorm coordinator", Duration::from_secs(30)).await {
        Ok(b) => b,
        Err(e) => return fail(Outcome::Unreachable, e),
    };
    match bus.get::<RunState>(wire::STATE_KEY).await {
        Ok(None) => {}
        Ok(Some(_)) => {
            return fail(
                Outcome::InvalidConfig,
                format!(
                    "fleet run id {:?} was used before on this bus: give this run a new --run",
                    p.run
                ),
            );
        }
        Err(e) => return fail(Outcome::Unreachable, e),
    }
    let n = p.shards as usize;
    let mut fleet = Fleet {
        shards: (0..n).map(|_| ShardLive::default()).collect(),
        ..Fleet::default()
    };
    let file = p.scenario.display().to_string();

    // 1. Start together.
    if let Err((outcome, reason)) = wait_ready(&bus, p, &scenario, &mut fleet).await {
        let _ = bus
            .put(wire::STATE_KEY, &RunState::Cancelled { reason: reason.clone() })
            .await;
        let summary = crate::report::build::not_started(&scenario, Some(file), "fleet", outcome, &reason);
        crate::report::write_outputs(&summary, &dir, &p.formats);
        let rows = rows(&fleet, &BTreeMap::new(), true);
        write_fleet_json(&dir, &fleet_report(p, rows, Vec::new(), None, 0, 0, 0.0));
        return fail(outcome, reason);
    }
    let at = SystemTime::now() + START_LEAD;
    if let Err(e) = bus
        .put(
            wire::STATE_KEY,
            &RunState::Start {
                at_unix_ms: unix_ms(at),
            },
        )
        .await
    {
        return fail(Outcome::Unreachable, e);
    }
    let start = Instant::now() + START_LEAD;
    if !p.quiet {
        eprintln!(
            "chatstorm: all {n} shards ready; the fleet starts in {} ms",
            START_LEAD.as_millis()
        );
    }

    // 2. Live.
    let live = watch_live(&bus, p, &scenario, &mut fleet, start).await;

    // 3. Final.
    let mut summaries = Vec::new();
    let mut finals = BTreeMap::new();
    for (i, s) in fleet.shards.iter().enumerate() {
        if s.done.is_none() {
            continue;
        }
        let i = i as u32;
        let got = async {
            let bytes = bus
                .get_object(&wire::summary_object(i))
                .await
                .map_err(|e| e.to_string())?;
            let summary: RunSummary = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
            let shard_dir = dir.join(format!("shard-{i}"));
            std::fs::create_dir_all(&shard_dir).map_err(|e| e.to_string())?;
            std::fs::write(shard_dir.join("summary.json"), &bytes).map_err(|e| e.to_string())?;
            if let Ok(hlog) = bus.get_object(&wire::hlog_object(i)).await {
                std::fs::write(shard_dir.join("metrics.hlog"), hlog).map_err(|e| e.to_string())?;
            }
            Ok::<_, String>(summary)
        };
        match got.await {
            Ok(s) => {
                finals.insert(i, s.metrics.counters.get("connects").copied().unwrap_or(0));
                summaries.push(s);
            }
            Err(e) => eprintln!("chatstorm: shard {i}'s summary cannot be read from the bus: {e}"),
        }
    }
    let rows = rows(&fleet, &finals, false);
    let missing: Vec<&ShardRow> = rows.iter().filter(|r| r.state != "finished").collect();
    let allowed = scenario.checks.shards_lost as usize;
    let mut merged = if summaries.is_empty() {
        crate::report::build::not_started(
            &scenario,
            Some(file),
            "fleet",
            Outcome::ShardsLost,
            "no shard of the fleet stored a summary",
        )
    } else {
        match crate::report::merge::merge(summaries) {
            Ok(m) => m,
            Err(e) => return fail(Outcome::Unreachable, e),
        }
    };
    merged.run.users_planned = scenario.users.count;
    for r in &missing {
        let what = match (r.state.as_str(), r.lost_at_s) {
            ("lost", Some(t)) => format!("lost at {t}s (nothing heard for {} s)", LOST_AFTER.as_secs()),
            ("lost", None) => "lost".to_owned(),
            (s, _) => s.to_owned(),
        };
        merged.verdict.reasons.push(format!(
            "shard {} of {n} {what}: its {} users are missing from the figures",
            r.shard, r.users
        ));
    }
    if missing.len() > allowed {
        let current = Outcome::ALL
            .into_iter()
            .find(|o| o.verdict() == merged.verdict.outcome)
            .unwrap_or(Outcome::Passed);
        let worst = current.worst(Outcome::ShardsLost);
        merged.verdict.outcome = worst.verdict().to_owned();
        merged.verdict.exit_code = worst.code();
        merged.verdict.reasons.push(format!(
            "invalid run: {} of {n} shards lost or never started (the scenario allows {allowed}: checks.shards_lost)",
            missing.len()
        ));
    }
    crate::report::write_outputs(&merged, &dir, &p.formats);
    // The shards' `.hlog` files (fetched above into `shard-I/`) merged into the run's own.
    let finished: Vec<std::path::PathBuf> = finals.keys().map(|i| dir.join(format!("shard-{i}"))).collect();
    crate::report::merge::merge_hlogs(&finished, &dir, &merged);
    if let Ok(json) = serde_json::to_vec(&merged) {
        let _ = bus.put_object(wire::FLEET_SUMMARY_OBJECT, &json).await;
    }
    let report = fleet_report(
        p,
        rows,
        live.incomplete,
        live.aborted,
        live.received,
        live.bytes,
        live.cpu_seconds,
    );
    if p.formats.contains(&crate::report::Format::Console) {
        print_table(&report);
    }
    write_fleet_json(&dir, &report);
    Outcome::from_code(merged.verdict.exit_code)
}

fn fleet_report(
    p: &CoordinatePlan,
    shards: Vec<ShardRow>,
    incomplete: Vec<u32>,
    aborted: Option<String>,
    received: u64,
    bytes: u64,
    cpu: f64,
) -> FleetReport {
    FleetReport {
        run: p.run.clone(),
        shards,
        incomplete_intervals: incomplete,
        aborted,
        intervals_received: received,
        interval_bytes: bytes,
        merge_cpu_seconds: cpu,
    }
}

fn write_fleet_json(dir: &Path, report: &FleetReport) {
    let path = dir.join("fleet.json");
    let r = serde_json::to_vec_pretty(report)
        .map_err(|e| e.to_string())
        .and_then(|j| std::fs::write(&path, j).map_err(|e| e.to_string()));
    if let Err(e) = r {
        eprintln!("chatstorm: cannot write {}: {e}", path.display());
    }
}

fn print_table(r: &FleetReport) {
    println!("\nShards ({} of the fleet run {}):", r.shards.len(), r.run);
    println!("  shard  state            users  intervals  connects  exit  host");
    for s in &r.shards {
        println!(
            "  {:>5}  {:<15}  {:>5}  {:>9}  {:>8}  {:>4}  {}",
            s.shard,
            s.state,
            s.users,
            s.intervals,
            s.connects,
            s.exit_code.map_or("-".to_owned(), |c| c.to_string()),
            s.host
        );
    }
    if !r.incomplete_intervals.is_empty() {
        println!(
            "  live intervals judged without every shard (incomplete): {}",
            list(&r.incomplete_intervals)
        );
    }
}

fn rows(fleet: &Fleet, finals: &BTreeMap<u32, u64>, starting: bool) -> Vec<ShardRow> {
    fleet
        .shards
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let i = i as u32;
            let state = match (&s.ready, s.lost_at, &s.done) {
                (None, _, _) => "never started",
                (Some(_), _, _) if starting => "ready",
                (_, Some(_), _) => "lost",
                (_, None, Some(_)) if finals.contains_key(&i) => "finished",
                (_, None, Some(_)) => "no summary",
                (_, None, None) => "lost",
            };
            ShardRow {
                shard: i,
                state: state.to_owned(),
                host: s.ready.as_ref().map(|r| r.host.clone()).unwrap_or_default(),
                users: s.ready.as_ref().map_or(0, |r| r.users),
                intervals: s.intervals,
                intervals_sent: s.done.as_ref().map(|d| d.intervals),
                connects: finals
                    .get(&i)
                    .copied()
                    .unwrap_or_else(|| s.counters.get("connects").copied().unwrap_or(0)),
                exit_code: s.done.as_ref().map(|d| d.exit_code),
                lost_at_s: s.lost_at.map(|t| t.as_secs()),
            }
        })
        .collect()
}

/// Waits for every shard's `ready`, checking each runs the coordinator's plan.
async fn wait_ready(
    bus: &Bus,
    p: &CoordinatePlan,
    scenario: &Scenario,
    fleet: &mut Fleet,
) -> Result<(), (Outcome, String)> {
    let shape = super::shard::shape(scenario, p.shards);
    let deadline = Instant::now() + p.start_timeout;
    let mut entries = bus
        .kv
        .watch_with_history("ready.*")
        .await
        .map_err(|e| (Outcome::Unreachable, format!("NATS JetStream: {e}")))?;
    let n = fleet.shards.len();
    let mut ready = 0;
    while ready < n {
        let entry = match tokio::time::timeout_at(deadline, entries.next()).await {
            Ok(Some(Ok(e))) => e,
            Ok(Some(Err(_)) | None) => {
                // The watch ended (a bus restart): watch again; values already seen come again.
                tokio::time::sleep(Duration::from_millis(200)).await;
                entries = bus
                    .kv
                    .watch_with_history("ready.*")
                    .await
                    .map_err(|e| (Outcome::Unreachable, format!("NATS JetStream: {e}")))?;
                continue;
            }
            Err(_) => {
                let missing: Vec<u32> = (0..n as u32)
                    .filter(|&i| fleet.shards[i as usize].ready.is_none())
                    .collect();
                return Err((
                    Outcome::ShardsLost,
                    format!(
                        "the fleet did not start: shard{} {} of {n} not ready within {} ({ready} ready)",
                        if missing.len() == 1 { "" } else { "s" },
                        list(&missing),
                        humantime::format_duration(p.start_timeout)
                    ),
                ));
            }
        };
        let Some(i) = wire::key_shard(&entry.key).filter(|&i| (i as usize) < n) else {
            continue;
        };
        let Ok(r) = super::bus::decode::<Ready>("ready", &entry.value) else {
            continue;
        };
        if r.shape != shape {
            return Err((
                Outcome::InvalidConfig,
                format!(
                    "shard {i} runs another plan ({:?}) than the coordinator ({shape:?}): give every shard and the coordinator the same scenario, --users, --duration, --seed and N",
                    r.shape
                ),
            ));
        }
        if fleet.shards[i as usize].ready.replace(r).is_none() {
            ready += 1;
            if !p.quiet {
                eprintln!("chatstorm: fleet: {ready}/{n} shards ready (shard {i})");
            }
        }
    }
    Ok(())
}

/// What the live phase saw.
struct Live {
    incomplete: Vec<u32>,
    aborted: Option<String>,
    received: u64,
    bytes: u64,
    cpu_seconds: f64,
}

/// One interval second not yet judged.
struct Pending {
    from: Vec<bool>,
    since: Instant,
}

/// Reads intervals and `done` keys until every shard is done or lost, judging the thresholds.
async fn watch_live(bus: &Bus, p: &CoordinatePlan, scenario: &Scenario, fleet: &mut Fleet, start: Instant) -> Live {
    let n = fleet.shards.len();
    let mut live = Live {
        incomplete: Vec::new(),
        aborted: None,
        received: 0,
        bytes: 0,
        cpu_seconds: 0.0,
    };
    let planned = scenario.run_length();
    let end_by = start + planned + crate::engine::run::STOP_GRACE + FINAL_WAIT;
    let mut intervals = match bus.intervals().await {
        Ok(s) => Some(Box::pin(s)),
        Err(e) => {
            eprintln!("chatstorm: cannot read the shards' intervals: {e}");
            None
        }
    };
    let mut done = bus.kv.watch_with_history("done.*").await.ok();
    let mut pending: BTreeMap<u32, Pending> = BTreeMap::new();
    let mut judged_up_to = 0u32;
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let mut epoch = bus.reconnects();
    loop {
        if bus.reconnects() != epoch {
            // After a reconnect, read again from the first interval (duplicates are dropped by
            // `take_interval`) and watch `done` again, rather than wait for stale subscriptions'
            // heartbeats to run out.
            epoch = bus.reconnects();
            if let Ok(s) = bus.intervals().await {
                intervals = Some(Box::pin(s));
            }
            if let Ok(w) = bus.kv.watch_with_history("done.*").await {
                done = Some(w);
            }
        }
        if (0..n).all(|i| !fleet.live(i)) || Instant::now() >= end_by {
            break;
        }
        tokio::select! {
            m = async { match intervals.as_mut() { Some(s) => s.next().await, None => std::future::pending().await } } => {
                match m {
                    Some(Ok((iv, size))) => {
                        let cpu0 = crate::sys::cpu_seconds();
                        live.received += 1;
                        live.bytes += size as u64;
                        take_interval(fleet, &mut pending, judged_up_to, iv);
                        live.cpu_seconds += crate::sys::cpu_seconds() - cpu0;
                    }
                    Some(Err(e)) => eprintln!("chatstorm: an interval could not be read: {e}"),
                    None => {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        intervals = bus.intervals().await.ok().map(Box::pin);
                    }
                }
            }
            e = async { match done.as_mut() { Some(w) => w.next().await, None => std::future::pending().await } } => {
                match e {
                    Some(Ok(entry)) => {
                        if let (Some(i), Ok(d)) = (wire::key_shard(&entry.key), super::bus::decode::<Done>("done", &entry.value))
                            && (i as usize) < n
                        {
                            fleet.shards[i as usize].done = Some(d);
                        }
                    }
                    _ => {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        done = bus.kv.watch_with_history("done.*").await.ok();
                    }
                }
            }
            _ = tick.tick() => {}
        }
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(start);
        // Lost: running, not done, silent for LOST_AFTER (counted from the start for a shard
        // that never sent anything), before the planned end or after it alike.
        for (i, s) in fleet.shards.iter_mut().enumerate() {
            if s.lost_at.is_none() && s.done.is_none() {
                let heard = s.last_heard.unwrap_or(start);
                if now > heard && now - heard > LOST_AFTER && elapsed < planned {
                    s.lost_at = Some(elapsed);
                    eprintln!(
                        "chatstorm: fleet: shard {i} lost at {}s (nothing heard for {} s)",
                        elapsed.as_secs(),
                        LOST_AFTER.as_secs()
                    );
                }
            }
        }
        // Judge every interval that all live shards have sent, or whose grace has passed.
        let cpu0 = crate::sys::cpu_seconds();
        while let Some((&second, entry)) = pending.first_key_value() {
            let complete = (0..n).all(|i| entry.from[i] || !fleet.live(i));
            if !complete && now.saturating_duration_since(entry.since) < GRACE {
                break;
            }
            if !complete {
                live.incomplete.push(second);
            }
            pending.pop_first();
            judged_up_to = second;
            if live.aborted.is_none()
                && let Some((key, reason)) =
                    check_figures(&scenario.thresholds, fleet, Duration::from_secs(u64::from(second)))
            {
                let reason = reason.replace("run stopped", "fleet stopped");
                eprintln!("chatstorm: fleet: {reason}");
                let _ = bus
                    .put(
                        wire::STATE_KEY,
                        &RunState::Abort {
                            threshold: key,
                            reason: reason.clone(),
                        },
                    )
                    .await;
                live.aborted = Some(reason);
            }
            if !p.quiet {
                live_line(fleet, second, planned);
            }
        }
        live.cpu_seconds += crate::sys::cpu_seconds() - cpu0;
    }
    live
}

/// Adds one interval to the fleet's figures (once: a resend or a redelivery is ignored).
fn take_interval(fleet: &mut Fleet, pending: &mut BTreeMap<u32, Pending>, judged_up_to: u32, iv: Interval) {
    let n = fleet.shards.len();
    let Some(s) = fleet.shards.get_mut(iv.shard as usize) else {
        return;
    };
    // A shard publishes its intervals in order, each until stored: anything at or below the
    // last one taken is a duplicate.
    if iv.second <= s.last_second {
        return;
    }
    s.last_second = iv.second;
    s.last_heard = Some(Instant::now());
    s.intervals += 1;
    s.counters = iv.counters;
    s.connected = iv.connected;
    for (name, encoded) in &iv.histograms {
        let Some(metric) = Metric::from_name(name) else {
            continue;
        };
        let snap = HistogramSnapshot {
            count: 0,
            clamped: 0,
            encoded: encoded.clone(),
        };
        if let Ok(h) = snap.decode() {
            let _ = fleet.histograms.entry(metric).or_insert_with(new_histogram).add(&h);
        }
    }
    if iv.second > judged_up_to {
        let entry = pending.entry(iv.second).or_insert_with(|| Pending {
            from: vec![false; n],
            since: Instant::now(),
        });
        entry.from[iv.shard as usize] = true;
    }
}

/// The coordinator's live line: the fleet's figures and its shards.
fn live_line(fleet: &Fleet, second: u32, planned: Duration) {
    let running = (0..fleet.shards.len()).filter(|&i| fleet.live(i)).count();
    let lost = fleet.shards.iter().filter(|s| s.lost_at.is_some()).count();
    let done = fleet.shards.iter().filter(|s| s.done.is_some()).count();
    let connected: i64 = fleet.shards.iter().map(|s| s.connected).sum();
    let p99 = [Metric::ConnectWs, Metric::ConnectLongpoll]
        .iter()
        .filter_map(|m| fleet.histograms.get(m))
        .fold(None::<Histogram<u64>>, |acc, h| match acc {
            Some(mut a) => {
                let _ = a.add(h);
                Some(a)
            }
            None => Some(h.clone()),
        })
        .filter(|h| !h.is_empty())
        .map_or("-".to_owned(), |h| {
            format!("{:.1} ms", h.value_at_quantile(0.99) as f64 / 1000.0)
        });
    let errors = fleet.counter(Counter::ConnectFailures)
        + fleet.counter(Counter::RestFailures)
        + fleet.counter(Counter::TokenFetchFailures);
    eprintln!(
        "chatstorm: fleet {second}/{}s: {running} running, {done} done, {lost} lost | {connected} connected | {} connects | connect p99 {p99} | {errors} errors",
        planned.as_secs(),
        fleet.counter(Counter::Connects)
    );
}
