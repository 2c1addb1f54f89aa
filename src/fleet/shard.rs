//! A shard's side of the fleet (`run --shard I/N --fleet URL`): join the bus, say ready once set
//! up, start at the coordinator's instant, hand every 1 s interval to a publisher task (which
//! resends until JetStream has it: the de-duplication id makes resends harmless), stop when the
//! run state says abort, and stop by itself when the bus has been gone longer than the watchdog
//! (fail-safe: no load that nobody watches). At the end it stores its summary and `.hlog` in the
//! object store and says done.

use super::bus::Bus;
use super::wire::{self, Done, Interval, Ready, RunShape, RunState};
use crate::engine::link::{LinkStop, RunLink};
use crate::metrics::{Collector, Counter, Gauge, Recorder};
use crate::plan::FleetJoin;
use crate::report::summary::RunSummary;
use crate::scenario::Scenario;
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::{mpsc, watch};

/// How long joining waits for the bus to answer at all.
const CONNECT_LIMIT: Duration = Duration::from_secs(30);
/// How long the final summary's upload is retried.
const FINISH_LIMIT: Duration = Duration::from_secs(20);

/// A shard's link to its fleet.
pub struct ShardLink {
    bus: Bus,
    shard: u32,
    ready: Ready,
    start_timeout: Duration,
    /// The latest run state seen (`None`: none yet).
    state: watch::Receiver<Option<RunState>>,
    /// Set once when the fleet (or the watchdog) stops this shard.
    stop: watch::Receiver<Option<LinkStop>>,
    /// To the publisher task; taken (closed) by [`ShardLink::finish`].
    intervals: Mutex<Option<mpsc::UnboundedSender<Interval>>>,
    publisher: Mutex<Option<tokio::task::JoinHandle<()>>>,
    second: AtomicU32,
    tasks: Vec<tokio::task::AbortHandle>,
}

impl Drop for ShardLink {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// What the shard will run, in the terms every member of the fleet compares.
pub fn shape(scenario: &Scenario, shards: u32) -> RunShape {
    RunShape {
        shards,
        users: scenario.users.count,
        seed: scenario.seed,
        run_length_ms: u64::try_from(scenario.run_length().as_millis()).unwrap_or(u64::MAX),
    }
}

/// Joins the fleet: connects, and starts watching the run state and the connection.
///
/// # Errors
/// One line when the bus cannot be reached or the run id is unusable.
pub async fn join(
    join: &FleetJoin,
    (shard, shards): (u32, u32),
    scenario: &Scenario,
) -> Result<Arc<ShardLink>, String> {
    if join.run.is_empty() {
        return Err("--fleet needs the fleet run's id: --fleet-run ID (or CHATSTORM_FLEET_RUN)".to_owned());
    }
    let bus = Bus::connect(
        &join.url,
        &join.run,
        &format!("chatstorm shard {shard}/{shards}"),
        CONNECT_LIMIT,
    )
    .await
    .map_err(|e| e.to_string())?;
    let users = (0..scenario.users.count)
        .filter(|i| i % u64::from(shards) == u64::from(shard))
        .count() as u64;
    let ready = Ready {
        shard,
        shape: shape(scenario, shards),
        users,
        host: host_name(),
        pid: std::process::id(),
    };
    let (state_tx, state) = watch::channel(None);
    let (stop_tx, stop) = watch::channel(None);
    let stop_tx = Arc::new(stop_tx);
    let watcher = tokio::spawn(watch_state(bus.clone(), state_tx, stop_tx.clone()));
    let watchdog = tokio::spawn(watchdog(bus.clone(), join.watchdog, stop_tx));
    let (tx, rx) = mpsc::unbounded_channel();
    let publisher = tokio::spawn(publish(bus.clone(), rx));
    Ok(Arc::new(ShardLink {
        bus,
        shard,
        ready,
        start_timeout: join.start_timeout,
        state,
        stop,
        intervals: Mutex::new(Some(tx)),
        publisher: Mutex::new(Some(publisher)),
        second: AtomicU32::new(0),
        tasks: vec![watcher.abort_handle(), watchdog.abort_handle()],
    }))
}

fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

/// Follows the KV `state` key (its last value first), across reconnects; an abort or a
/// cancellation also stops the run. A reconnect starts the watch again (see
/// [`Bus::reconnects`]); the client's connection events say when, without polling.
async fn watch_state(bus: Bus, state: watch::Sender<Option<RunState>>, stop: Arc<watch::Sender<Option<LinkStop>>>) {
    let mut events = bus.events();
    loop {
        let epoch = bus.reconnects();
        if let Ok(mut entries) = bus.kv.watch_with_history(wire::STATE_KEY).await {
            loop {
                let entry = tokio::select! {
                    e = entries.next() => match e {
                        Some(Ok(e)) => e,
                        _ => break,
                    },
                    () = Bus::next_event(&mut events) => {
                        if bus.reconnects() != epoch {
                            break;
                        }
                        continue;
                    }
                };
                let Ok(s) = super::bus::decode::<RunState>("run state", &entry.value) else {
                    continue;
                };
                let halt = match &s {
                    RunState::Abort { threshold, reason } => Some(LinkStop {
                        threshold: Some(threshold.clone()),
                        reason: format!("fleet-wide abort: {reason}"),
                    }),
                    RunState::Cancelled { reason } => Some(LinkStop {
                        threshold: None,
                        reason: format!("the fleet run was cancelled: {reason}"),
                    }),
                    RunState::Start { .. } => None,
                };
                state.send_replace(Some(s));
                if let Some(h) = halt {
                    stop.send_if_modified(|s| s.is_none() && s.replace(h).is_none());
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// How often the watchdog looks at the connection without being told of a change: a safety net
/// under the client's events, not the way it usually learns.
const WATCHDOG_CHECK: Duration = Duration::from_secs(1);

/// Stops the shard when the bus has been unreachable for longer than `limit`.
async fn watchdog(bus: Bus, limit: Duration, stop: Arc<watch::Sender<Option<LinkStop>>>) {
    let mut events = bus.events();
    let mut last_seen = tokio::time::Instant::now();
    let mut was_connected = true;
    loop {
        let now = tokio::time::Instant::now();
        let connected = bus.connected();
        // Just found down: the outage starts now (the event that woke us is prompt).
        if connected || was_connected {
            last_seen = now;
        } else if now.duration_since(last_seen) > limit {
            let reason = format!(
                "lost the fleet's bus for more than {}: stopped this shard's users (no load that nobody watches)",
                humantime::format_duration(limit)
            );
            stop.send_if_modified(|s| {
                s.is_none()
                    && s.replace(LinkStop {
                        threshold: None,
                        reason,
                    })
                    .is_none()
            });
            return;
        }
        was_connected = connected;
        // Connected: wait for an event. Down: also wake when the limit runs out.
        let wake = if connected {
            WATCHDOG_CHECK
        } else {
            (last_seen + limit + Duration::from_millis(1))
                .saturating_duration_since(now)
                .min(WATCHDOG_CHECK)
        };
        tokio::select! {
            () = Bus::next_event(&mut events) => {}
            () = tokio::time::sleep(wake) => {}
        }
    }
}

/// Sends intervals in order, each until JetStream has stored it.
async fn publish(bus: Bus, mut rx: mpsc::UnboundedReceiver<Interval>) {
    while let Some(interval) = rx.recv().await {
        while bus.publish_interval(&interval).await.is_err() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl ShardLink {
    /// After the run: drains the intervals still queued, stores the summary and `.hlog` in the
    /// object store, and says done. Failures are printed, not fatal: the shard's own outputs are
    /// on disk, and the coordinator names a shard that never said done.
    pub async fn finish(&self, summary: &RunSummary, dir: &Path) {
        let tx = self.intervals.lock().ok().and_then(|mut t| t.take());
        drop(tx);
        let publisher = self.publisher.lock().ok().and_then(|mut p| p.take());
        if let Some(p) = publisher {
            let abort = p.abort_handle();
            if tokio::time::timeout(FINISH_LIMIT, p).await.is_err() {
                abort.abort();
            }
        }
        let done = Done {
            shard: self.shard,
            exit_code: summary.verdict.exit_code,
            stop_reason: summary.run.stop_reason.clone(),
            intervals: self.second.load(Ordering::Relaxed),
        };
        let store = async {
            let json = serde_json::to_vec(summary).map_err(|e| e.to_string())?;
            self.bus
                .put_object(&wire::summary_object(self.shard), &json)
                .await
                .map_err(|e| e.to_string())?;
            if let Ok(hlog) = std::fs::read(dir.join("metrics.hlog")) {
                self.bus
                    .put_object(&wire::hlog_object(self.shard), &hlog)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            self.bus
                .put(&wire::done_key(self.shard), &done)
                .await
                .map_err(|e| e.to_string())
        };
        match tokio::time::timeout(FINISH_LIMIT, store).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("chatstorm: cannot store this shard's summary on the fleet's bus: {e}"),
            Err(_) => eprintln!(
                "chatstorm: cannot store this shard's summary on the fleet's bus within {} s",
                FINISH_LIMIT.as_secs()
            ),
        }
    }

    /// The interval ending now: each metric's samples since the last one, as the collector's
    /// `.hlog` line has just encoded them (`Collector::keep_intervals`).
    fn interval_of(&self, elapsed: Duration, collector: &Collector, recorder: &Recorder) -> Interval {
        let histograms = collector
            .last_interval()
            .iter()
            .map(|(metric, encoded)| (metric.name().to_owned(), encoded.clone()))
            .collect();
        let counters = Counter::ALL
            .into_iter()
            .map(|c| (c.name().to_owned(), recorder.counter(c)))
            .filter(|(_, n)| *n > 0)
            .collect();
        Interval {
            shard: self.shard,
            second: self.second.fetch_add(1, Ordering::Relaxed) + 1,
            elapsed_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
            histograms,
            counters,
            connected: recorder.gauge(Gauge::Connected),
        }
    }
}

impl RunLink for ShardLink {
    fn ready(&self) -> BoxFuture<'_, Result<SystemTime, String>> {
        Box::pin(async move {
            let deadline = tokio::time::Instant::now() + self.start_timeout;
            loop {
                match tokio::time::timeout_at(deadline, self.bus.put(&wire::ready_key(self.shard), &self.ready)).await {
                    Ok(Ok(())) => break,
                    Ok(Err(_)) => tokio::time::sleep(Duration::from_millis(200)).await,
                    Err(_) => return Err("could not say ready on the bus".to_owned()),
                }
            }
            eprintln!(
                "chatstorm: shard {}/{} ready ({} users), waiting for the fleet's start",
                self.shard, self.ready.shape.shards, self.ready.users
            );
            let mut state = self.state.clone();
            let mut stop = self.stop.clone();
            let waited = async {
                loop {
                    if let Some(s) = stop.borrow_and_update().clone() {
                        return Err(s.reason);
                    }
                    if let Some(RunState::Start { at_unix_ms }) = *state.borrow_and_update() {
                        return Ok(SystemTime::UNIX_EPOCH + Duration::from_millis(at_unix_ms));
                    }
                    tokio::select! {
                        r = state.changed() => if r.is_err() { return Err("the bus watcher ended".to_owned()) },
                        r = stop.changed() => if r.is_err() { return Err("the bus watcher ended".to_owned()) },
                    }
                }
            };
            match tokio::time::timeout_at(deadline, waited).await {
                Ok(r) => r,
                Err(_) => Err(format!(
                    "no start within {} of being ready",
                    humantime::format_duration(self.start_timeout)
                )),
            }
        })
    }

    fn interval(&self, elapsed: Duration, collector: &Collector, recorder: &Recorder) {
        let interval = self.interval_of(elapsed, collector, recorder);
        if let Ok(tx) = self.intervals.lock()
            && let Some(tx) = tx.as_ref()
        {
            let _ = tx.send(interval);
        }
    }

    fn stopped(&self) -> BoxFuture<'_, LinkStop> {
        Box::pin(async move {
            let mut stop = self.stop.clone();
            loop {
                if let Some(s) = stop.borrow_and_update().clone() {
                    return s;
                }
                if stop.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        })
    }
}
