//! Watching a run while it runs: a Prometheus endpoint (`--metrics-listen`), a live dashboard in
//! the browser (`--dashboard`) and pushes to a Prometheus remote-write receiver
//! (`--prometheus-remote-write`). All three are off unless asked for.
//!
//! Owns: the options and their addresses ([`LiveOptions`], [`parse_listen`]), the [`Live`] hub
//! the engine calls once per second (through [`crate::engine::watch::Watcher`]) and the command
//! calls once at the end ([`Live::finish`]), and the three outputs in their modules. Does not own:
//! what is measured (the collector keeps it; the hub only reads it once per second, after each
//! collection, so nothing here touches the users' recording path) or how the report is drawn
//! (the dashboard calls the report's own renderer).
//!
//! ```text
//! collector tick ──▶ Live::tick ──▶ exposition (families) ──▶ /metrics   (prometheus)
//!                                          │                └──▶ remote write every 5 s and at the end
//!                                          └── snapshot + summary (only while a page watches)
//!                                                  └──▶ report body ──▶ /events (server-sent) ──▶ page
//! ```

pub mod buckets;
pub mod dashboard;
pub mod exposition;
mod http;
pub mod prometheus;
pub mod remote_write;
pub mod snappy;

use crate::engine::watch::{RunSoFar, Watcher};
use crate::metrics::Collector;
use crate::report::summary::RunSummary;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use tokio::sync::watch;

/// What the command line asked to watch (all `None`: nothing runs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveOptions {
    /// `--metrics-listen`: where `/metrics` is served.
    pub metrics_listen: Option<SocketAddr>,
    /// `--dashboard`: where the live page is served.
    pub dashboard: Option<SocketAddr>,
    /// `--prometheus-remote-write`: the receiver's URL.
    pub remote_write: Option<String>,
}

impl LiveOptions {
    /// Whether anything is asked for.
    pub fn any(&self) -> bool {
        self.metrics_listen.is_some() || self.dashboard.is_some() || self.remote_write.is_some()
    }
}

/// Why a listen address cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected PORT (binds 127.0.0.1) or HOST:PORT, e.g. 9464 or 0.0.0.0:9464")]
pub struct AddrError;

/// A listen address: a bare port binds the loopback address only (nothing is exposed unless an
/// address says so); otherwise an IP address and port (`[::1]:9464`, `0.0.0.0:9464`).
///
/// # Errors
/// [`AddrError`] for anything else.
pub fn parse_listen(s: &str) -> Result<SocketAddr, AddrError> {
    let s = s.trim();
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    if let Some(port) = s.strip_prefix("localhost:") {
        let port = port.parse::<u16>().map_err(|_| AddrError)?;
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    s.parse::<SocketAddr>().map_err(|_| AddrError)
}

/// The labels every series of a run carries (a run's shards differ only in `shard`, so that
/// they add up with `sum without (shard)`). None of them can hold a secret: the scenario's name,
/// the run folder's name and the shard number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunLabels {
    /// The scenario's name.
    pub scenario: String,
    /// The run folder's name (the parent folder's for a shard of a `--workers` run).
    pub run_id: String,
    /// The shard index (`0` for a run of one process).
    pub shard: u32,
}

impl RunLabels {
    /// The labels of a run writing into `out_dir`.
    pub fn of(scenario: &str, out_dir: &std::path::Path, shard: Option<(u32, u32)>) -> RunLabels {
        let name = |p: &std::path::Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
        let own = name(out_dir).unwrap_or_default();
        // `run --workers N` gives shard I the folder `<run>/shard-I`: the run is the parent.
        let run_id = match (shard, out_dir.parent()) {
            (Some(_), Some(parent)) if own.starts_with("shard-") => name(parent).unwrap_or(own),
            _ => own,
        };
        RunLabels {
            scenario: scenario.to_owned(),
            run_id,
            shard: shard.map_or(0, |(i, _)| i),
        }
    }

    /// As (name, value) pairs, in label order.
    pub fn pairs(&self) -> [(&'static str, String); 3] {
        [
            ("scenario", self.scenario.clone()),
            ("run_id", self.run_id.clone()),
            ("shard", self.shard.to_string()),
        ]
    }
}

/// What watching costs the run, measured as it happens: the last collection of the series, the
/// last dashboard snapshot (both on the collector's task, once per second), the last scrape's
/// rendering (on the scraper's connection task).
#[derive(Debug, Default)]
pub struct Costs {
    /// Building the last exposition, nanoseconds.
    pub collect_ns: AtomicU64,
    /// Taking the last dashboard snapshot, nanoseconds.
    pub dashboard_ns: AtomicU64,
    /// Rendering the last `/metrics` answer, nanoseconds.
    pub scrape_ns: AtomicU64,
    /// Size of the last `/metrics` answer, bytes.
    pub scrape_bytes: AtomicU64,
}

impl Costs {
    fn families(&self) -> Vec<exposition::Family> {
        let s = |a: &AtomicU64| a.load(Relaxed) as f64 / 1e9;
        [
            (
                "chatstorm_live_collect_seconds",
                "Time the last collection of these series took (on the collector's task).",
                s(&self.collect_ns),
            ),
            (
                "chatstorm_live_dashboard_snapshot_seconds",
                "Time the last dashboard snapshot took (on the collector's task).",
                s(&self.dashboard_ns),
            ),
            (
                "chatstorm_live_scrape_render_seconds",
                "Time rendering the previous /metrics answer took.",
                s(&self.scrape_ns),
            ),
            (
                "chatstorm_live_scrape_bytes",
                "Size of the previous /metrics answer.",
                self.scrape_bytes.load(Relaxed) as f64,
            ),
        ]
        .into_iter()
        .map(|(name, help, v)| exposition::Family::gauge(name, help, v))
        .collect()
    }
}

fn nanos(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Why the live endpoints could not start (exit 2, before the run).
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// A listen address could not be bound.
    #[error("cannot listen on {addr} for {what}: {source}")]
    Bind {
        /// `--metrics-listen` or `--dashboard`.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The remote-write URL is unusable.
    #[error("--prometheus-remote-write {0}")]
    RemoteWriteUrl(String),
}

/// The running endpoints of one run, and what the engine tells them each second.
pub struct Live {
    labels: RunLabels,
    /// What watching costs, exposed with the run's own series.
    costs: Arc<Costs>,
    /// The latest exposition, read by scrapes and remote writes (`None` before the first
    /// collection).
    families: Option<watch::Sender<Option<Arc<exposition::Exposition>>>>,
    dashboard: Option<dashboard::Dashboard>,
    remote: Option<remote_write::Pusher>,
    /// Where each endpoint listens, as bound (port 0 resolved).
    pub metrics_addr: Option<SocketAddr>,
    /// Where the dashboard listens.
    pub dashboard_addr: Option<SocketAddr>,
}

impl Live {
    /// Binds the asked-for endpoints (on the caller's runtime) and prints where they are.
    ///
    /// # Errors
    /// [`LiveError`] when an address cannot be bound or the remote-write URL is unusable.
    pub async fn start(
        opts: &LiveOptions,
        labels: RunLabels,
        scenario: Arc<crate::scenario::Scenario>,
        scenario_file: Option<String>,
    ) -> Result<Arc<Live>, LiveError> {
        let needs_families = opts.metrics_listen.is_some() || opts.remote_write.is_some();
        let costs = Arc::new(Costs::default());
        let families = needs_families.then(|| watch::channel(None).0);
        let mut metrics_addr = None;
        if let (Some(addr), Some(tx)) = (opts.metrics_listen, &families) {
            let bound = prometheus::serve(addr, tx.subscribe(), costs.clone())
                .await
                .map_err(|source| LiveError::Bind {
                    what: "--metrics-listen",
                    addr,
                    source,
                })?;
            eprintln!("chatstorm: Prometheus metrics at http://{bound}/metrics");
            metrics_addr = Some(bound);
        }
        let mut dashboard_addr = None;
        let dashboard = match opts.dashboard {
            Some(addr) => {
                let d = dashboard::Dashboard::start(addr, scenario, scenario_file)
                    .await
                    .map_err(|source| LiveError::Bind {
                        what: "--dashboard",
                        addr,
                        source,
                    })?;
                eprintln!("chatstorm: live dashboard at http://{}/", d.addr);
                dashboard_addr = Some(d.addr);
                Some(d)
            }
            None => None,
        };
        let remote = match (&opts.remote_write, &families) {
            (Some(url), Some(tx)) => Some(remote_write::Pusher::start(url, tx.subscribe())?),
            _ => None,
        };
        Ok(Arc::new(Live {
            labels,
            costs,
            families,
            dashboard,
            remote,
            metrics_addr,
            dashboard_addr,
        }))
    }

    /// The end of the run: the dashboard turns into the final report, the last exposition is
    /// pushed, and both are given a few seconds to reach their readers.
    pub async fn finish(&self, summary: &RunSummary) {
        if let Some(d) = &self.dashboard {
            d.finish(summary);
        }
        if let Some(r) = &self.remote {
            r.finish().await;
        }
        if let Some(d) = &self.dashboard {
            d.drain().await;
        }
    }
}

impl Watcher for Live {
    fn tick(&self, collector: &Collector, run: &RunSoFar) {
        // The collection and the dashboard's snapshot take milliseconds of CPU once a second on
        // the collector's task: on a multi-threaded runtime its worker hands its other tasks
        // (the main lag probe among them) to another thread meanwhile, so nothing waits behind it.
        let multi = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        if multi {
            tokio::task::block_in_place(|| self.watch(collector, run));
        } else {
            self.watch(collector, run);
        }
    }

    fn lag_bounds_us(&self) -> Vec<u64> {
        if self.families.is_some() {
            buckets::BOUNDS_US.clone()
        } else {
            Vec::new()
        }
    }
}

impl Live {
    fn watch(&self, collector: &Collector, run: &RunSoFar) {
        if let Some(tx) = &self.families {
            let t = std::time::Instant::now();
            let mut e = exposition::Exposition::collect(collector, run, &self.labels);
            self.costs.collect_ns.store(nanos(t.elapsed()), Relaxed);
            e.families.extend(self.costs.families());
            tx.send_replace(Some(Arc::new(e)));
        }
        if let Some(d) = &self.dashboard {
            let t = std::time::Instant::now();
            if d.tick(collector, run) {
                self.costs.dashboard_ns.store(nanos(t.elapsed()), Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_port_binds_loopback_only() {
        assert_eq!(parse_listen("9464"), Ok("127.0.0.1:9464".parse().unwrap()));
        assert_eq!(parse_listen("localhost:0"), Ok("127.0.0.1:0".parse().unwrap()));
        assert_eq!(parse_listen("0.0.0.0:80"), Ok("0.0.0.0:80".parse().unwrap()));
        assert_eq!(parse_listen("[::1]:80"), Ok("[::1]:80".parse().unwrap()));
        assert!(parse_listen("example.com:80").is_err() && parse_listen("").is_err());
    }

    #[test]
    fn shards_of_one_run_share_its_id() {
        let l = RunLabels::of("smoke", std::path::Path::new("reports/smoke-1/shard-2"), Some((2, 3)));
        assert_eq!((l.run_id.as_str(), l.shard), ("smoke-1", 2));
        let l = RunLabels::of("smoke", std::path::Path::new("reports/smoke-1"), None);
        assert_eq!((l.run_id.as_str(), l.shard), ("smoke-1", 0));
    }
}
