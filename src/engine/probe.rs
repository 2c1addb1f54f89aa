//! Is the target there? One `GET /hi` (the JS SDK's warm-up call) before any user starts, so an
//! unreachable target is reported as such (exit 5) instead of as 10,000 failed connects; then
//! the same probe once a second for the whole run ([`watch`]), so a target that dies mid-run is
//! named with the time it stopped answering instead of passing on the strength of the figures
//! gathered before it died. Plain WebSocket targets get a TCP connect only. Before either, a
//! target reached over TLS gets one pre-flight handshake ([`tls_preflight`]).

use super::figures::{Outage, TargetHealth};
use crate::net;
use crate::target::Target;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How often the in-run probe asks.
pub const PROBE_EVERY: Duration = Duration::from_secs(1);
/// How long one in-run probe may take (a target slowed by `add_latency` is still there).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// Consecutive failed probes that make an outage: one lost probe is noise, three seconds of
/// silence is a target that is gone.
pub const OUTAGE_AFTER: u32 = 3;

/// Why the target did not answer a probe.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// No HTTP answer.
    #[error(transparent)]
    Http(#[from] net::Error),
    /// The WebSocket URL's host does not resolve.
    #[error("{0}")]
    Resolve(#[from] net::ResolveError),
    /// No TCP connection.
    #[error("{addr}: {reason}")]
    Tcp {
        /// The address tried.
        addr: std::net::SocketAddr,
        /// What failed.
        reason: String,
        /// The harness ran out of descriptors or ports.
        local: bool,
    },
}

impl ProbeError {
    /// True when the probe could not be sent for lack of the harness's own descriptors or
    /// ports: that says nothing about the target (the generator's health reports it).
    pub fn is_local(&self) -> bool {
        match self {
            Self::Http(e) => e.is_local(),
            Self::Tcp { local, .. } => *local,
            Self::Resolve(_) => false,
        }
    }
}

/// Checks that the target answers HTTP at all (any status counts: it is there).
///
/// # Errors
/// [`ProbeError`] when it does not answer within `timeout`.
pub async fn reachable_within(http: &net::Client, target: &Target, timeout: Duration) -> Result<(), ProbeError> {
    let url = Target::join(&target.http_base, "/hi");
    http.send(http::Method::GET, &url, &[], None, timeout).await?;
    Ok(())
}

/// Checks that the target answers HTTP at all within 5 s.
///
/// # Errors
/// [`ProbeError`] when it does not.
pub async fn reachable(target: &Target) -> Result<(), ProbeError> {
    reachable_within(
        &net::Client::with_tls(target.tls.clone()),
        target,
        Duration::from_secs(5),
    )
    .await
}

/// How long the TLS pre-flight handshake may take.
pub const PREFLIGHT_TIMEOUT: Duration = Duration::from_secs(10);

/// The TLS pre-flight of a run and of `conform`: one TCP connect and TLS handshake to the
/// target (and one to an `https` token endpoint), before any user starts, so that a certificate
/// the run does not trust ends it with one reason (unknown issuer, name mismatch, expired)
/// instead of a failed handshake per user. Nothing to do for a plain target.
///
/// # Errors
/// [`net::preflight::PreflightError`] with the reason.
pub async fn tls_preflight(target: &Target) -> Result<(), net::preflight::PreflightError> {
    let Some(tls) = &target.tls else {
        return Ok(());
    };
    if target.is_tls() {
        net::preflight::preflight(tls, &target.ws_base, PREFLIGHT_TIMEOUT).await?;
    }
    if let crate::target::TargetAuth::TokenEndpoint(url) = &target.auth
        && url.scheme() == "https"
    {
        net::preflight::preflight(tls, url, PREFLIGHT_TIMEOUT).await?;
    }
    Ok(())
}

/// Checks that the WebSocket URL's host accepts a TCP connection (and closes it at once).
///
/// # Errors
/// [`ProbeError`] when it does not resolve or accept within `timeout`.
pub async fn reachable_tcp_within(target: &Target, timeout: Duration) -> Result<(), ProbeError> {
    let addr = net::resolve(&target.ws_base).await.map_err(ProbeError::Resolve)?;
    match tokio::time::timeout(timeout, net::connect::open(addr, None)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(ProbeError::Tcp {
            addr,
            reason: e.to_string(),
            local: net::out_of_local_resources(&e),
        }),
        Err(_) => Err(ProbeError::Tcp {
            addr,
            reason: format!("no answer within {timeout:?}"),
            local: false,
        }),
    }
}

/// Checks that the WebSocket URL's host accepts a TCP connection within 5 s.
///
/// # Errors
/// [`ProbeError`] when it does not.
pub async fn reachable_tcp(target: &Target) -> Result<(), ProbeError> {
    reachable_tcp_within(target, Duration::from_secs(5)).await
}

/// Probes the target every [`PROBE_EVERY`] until `stop`, and returns what it saw: probes sent,
/// probes failed (probes the harness could not send for lack of its own descriptors or ports
/// count neither way), and every outage ([`OUTAGE_AFTER`] failures in a row), from its first failed
/// probe to the first answer after it (open when it never answered again).
pub async fn watch(target: Target, plain: bool, start: Instant, stop: CancellationToken) -> TargetHealth {
    let http = net::Client::with_tls(target.tls.clone());
    let mut health = TargetHealth::default();
    let mut failing: Option<(u64, u32, String)> = None;
    let mut tick = tokio::time::interval_at(start + PROBE_EVERY, PROBE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let at_ms = start.elapsed().as_millis() as u64;
        let probe = async {
            if plain {
                reachable_tcp_within(&target, PROBE_TIMEOUT).await
            } else {
                reachable_within(&http, &target, PROBE_TIMEOUT).await
            }
        };
        let result = tokio::select! {
            _ = stop.cancelled() => break,
            r = probe => r,
        };
        if result.as_ref().is_err_and(ProbeError::is_local) {
            // Out of descriptors or ports here: neither an answer nor a silence of the target.
            continue;
        }
        health.probes += 1;
        match result {
            Ok(()) => {
                if let Some(open) = health.outages.last_mut().filter(|o| o.to_ms.is_none()) {
                    open.to_ms = Some(at_ms);
                }
                failing = None;
            }
            Err(e) => {
                health.failures += 1;
                let (since, n, first) = failing.get_or_insert_with(|| (at_ms, 0, e.to_string()));
                *n += 1;
                if *n == OUTAGE_AFTER {
                    health.outages.push(Outage {
                        from_ms: *since,
                        to_ms: None,
                        error: first.clone(),
                    });
                }
            }
        }
    }
    health
}
