//! Generator honesty for TLS: how much of the harness's CPU went to its own handshakes, in the
//! busiest second of the run ([`sample`]). Over [`HANDSHAKE_SHARE_BOUND`] of the cores the
//! users run on (their lanes, at most one per core), connects were queueing behind the harness's own key agreements and
//! certificate checks: the run is reported invalid (exit 4), like a late scheduler, rather than
//! the server blamed for a slow `connect.tls` or a low connect rate. The scheduler-lag probe
//! does not see this: handshake steps are short, so its ticks still fire on time while every
//! core is busy handshaking (`net::handshake_cpu`).

use crate::net::handshake_cpu::HandshakeCpu;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

/// The window the share is measured over.
pub const WINDOW: Duration = Duration::from_secs(1);
/// The bound on the busiest window's handshake share of the cores: past half, the handshakes
/// are what the harness mostly does, and a connect's handshake waits for the ones before it.
pub const HANDSHAKE_SHARE_BOUND: f64 = 0.5;
/// A last, partial window shorter than this is not judged (too short to say anything).
const MIN_WINDOW: Duration = Duration::from_millis(250);

/// What the sampler saw.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct HandshakeLoad {
    /// CPU seconds the harness spent in TLS handshakes over the whole run.
    pub cpu_seconds: f64,
    /// The busiest [`WINDOW`]'s handshake CPU as a share of the cores' time in it (0 to 1).
    pub peak_share: f64,
}

impl HandshakeLoad {
    /// Whether the busiest window passed the bound.
    pub fn saturated(&self) -> bool {
        self.peak_share > HANDSHAKE_SHARE_BOUND
    }
}

/// The handshake CPU of `window` on `cores` cores as a share of their time.
pub fn share(cpu_ns: u64, window: Duration, cores: usize) -> f64 {
    let capacity = window.as_nanos() as f64 * cores.max(1) as f64;
    if capacity <= 0.0 { 0.0 } else { cpu_ns as f64 / capacity }
}

/// Reads `meter` every [`WINDOW`] until `stop`, and reports the run's handshake CPU and the
/// busiest window's share of `cores`.
pub async fn sample(meter: Arc<HandshakeCpu>, cores: usize, stop: CancellationToken) -> HandshakeLoad {
    let mut interval = tokio::time::interval_at(Instant::now() + WINDOW, WINDOW);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let (mut last_at, mut last_ns) = (Instant::now(), meter.total_ns());
    let mut peak = 0.0f64;
    let mut judge = |at: Instant, ns: u64, last_at: Instant, last_ns: u64| {
        let took = at.saturating_duration_since(last_at);
        if took >= MIN_WINDOW {
            peak = peak.max(share(ns.saturating_sub(last_ns), took, cores));
        }
    };
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = interval.tick() => {
                let (at, ns) = (Instant::now(), meter.total_ns());
                judge(at, ns, last_at, last_ns);
                (last_at, last_ns) = (at, ns);
            }
        }
    }
    let (at, ns) = (Instant::now(), meter.total_ns());
    judge(at, ns, last_at, last_ns);
    HandshakeLoad {
        cpu_seconds: ns as f64 / 1e9,
        peak_share: peak,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_is_of_every_core() {
        assert!((share(1_000_000_000, WINDOW, 2) - 0.5).abs() < 1e-9);
        assert!((share(500_000_000, Duration::from_millis(500), 1) - 1.0).abs() < 1e-9);
        assert_eq!(share(0, WINDOW, 0), 0.0);
    }

    /// Samples a meter on `cores` threads for 1.6 s (paused time), `work_ns` of handshake CPU
    /// added 100 ms in: what the sampler concludes.
    async fn sampled(work_ns: u64, cores: usize) -> HandshakeLoad {
        let meter = Arc::new(HandshakeCpu::default());
        let stop = CancellationToken::new();
        let task = tokio::spawn(sample(meter.clone(), cores, stop.clone()));
        tokio::time::sleep(Duration::from_millis(100)).await;
        meter.add(work_ns);
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        stop.cancel();
        task.await.unwrap()
    }

    /// A harness whose one core spent 0.9 s of a second in handshakes is told saturated; an
    /// idle one is not (paused time: the meter is fed directly, the windows are exact).
    #[tokio::test(start_paused = true)]
    async fn a_second_of_handshake_work_on_one_core_is_saturation() {
        let load = sampled(900_000_000, 1).await;
        assert!((load.cpu_seconds - 0.9).abs() < 1e-9, "{load:?}");
        assert!(load.saturated() && load.peak_share >= 0.89, "{load:?}");

        // The same work on two cores is under the bound.
        assert!(!sampled(900_000_000, 2).await.saturated());

        let idle = sampled(0, 1).await;
        assert!(!idle.saturated() && idle.cpu_seconds == 0.0, "{idle:?}");
    }
}
