//! Every shipped scenario, scaled down as `tests/scenarios.rs` scales them (`support/scaled.rs`), run against the mock
//! over TLS (`https://` REST and long-poll, `wss://` WebSockets, the fault API over https): each
//! passes (exit 0; exit 4 only when this shared machine saturated the generator), every
//! WebSocket connect made a TLS handshake, and the lifecycle event the scenario exists to show
//! happened. The mock is the embedded one's configuration (the scenario's `target:` options)
//! served with a self-signed certificate the run trusts. `chatstorm conform` over TLS is in
//! `tests/tls.rs` (`the_conformance_suite_passes_over_tls`).

use chatstorm::api::run_scenario;
use chatstorm::report::summary::RunSummary;
use chatstorm::scenario::{self, Scenario, TargetSpec};
use chatstorm_mock::{MockConfig, SelfSigned};
use std::sync::OnceLock;

#[path = "support/scaled.rs"]
mod scaled;
use scaled::scaled;

/// One run at a time: each uses hundreds of sockets and both cores.
fn turn() -> &'static tokio::sync::Mutex<()> {
    static TURN: OnceLock<tokio::sync::Mutex<()>> = OnceLock::new();
    TURN.get_or_init(|| tokio::sync::Mutex::new(()))
}

/// Runs `s` against a TLS mock configured as the embedded mock would be for it.
async fn run_over_tls(s: Scenario, name: &str) -> RunSummary {
    let _turn = turn().lock().await;
    let TargetSpec::Embedded(opts) = &s.target else {
        panic!("{name}: a shipped scenario runs against the embedded mock")
    };
    let made = SelfSigned::default().make().expect("a certificate");
    let cfg = MockConfig {
        tls: Some(made.tls),
        health_interval: opts.health_interval,
        longpoll_hold: opts.longpoll_hold,
        expiry: match opts.token_expiry {
            scenario::TokenExpiry::Keep => chatstorm_mock::ExpiryPolicy::Keep,
            scenario::TokenExpiry::Kick => chatstorm_mock::ExpiryPolicy::Kick,
        },
        ..MockConfig::default()
    };
    let mock = chatstorm_mock::start(cfg.clone()).await.expect("the TLS mock starts");
    let mut target = chatstorm::target::Target::mock(
        mock.base_url().parse().unwrap(),
        cfg.api_key.clone(),
        &cfg.secret,
        cfg.fault_secret.clone(),
    )
    .unwrap();
    assert!(target.is_tls(), "{}", mock.base_url());
    target.tls = Some(chatstorm::net::Tls::with_ca_pem(made.cert_pem.as_bytes()).unwrap());
    let dir = std::env::temp_dir().join(format!("chatstorm-tls-scn-{name}-{}", std::process::id()));
    let summary = run_scenario(s, Some(target), dir.clone())
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    mock.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        summary.verdict.exit_code == 0 || summary.verdict.exit_code == 4,
        "{name}: {:?}\n{:?}",
        summary.verdict,
        summary.thresholds
    );
    let tls = summary.latency.get("connect.tls").map_or(0, |l| l.summary.count);
    let ws = summary.latency.get("connect.ws").map_or(0, |l| l.summary.count);
    assert!(tls >= ws && ws > 0, "{name}: {ws} wss connects, {tls} handshakes");
    assert_eq!(
        counter(&summary, "tls_full_handshakes") + counter(&summary, "tls_resumed_handshakes"),
        tls,
        "{name}"
    );
    assert!(
        !summary.errors.by_kind.contains_key("tls_handshake"),
        "{name}: {:?}",
        summary.errors.by_kind
    );
    summary
}

fn counter(s: &RunSummary, name: &str) -> u64 {
    s.metrics.counters.get(name).copied().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_over_tls() {
    let s = scaled("smoke.yaml");
    let r = run_over_tls(s, "smoke").await;
    assert!(
        counter(&r, "fallbacks") > 0,
        "long-poll over https: {:?}",
        r.metrics.counters
    );
    assert!(r.storms.first().is_some_and(|st| st.recovered > 0), "{:?}", r.storms);
    assert!(counter(&r, "token_refreshes") > 0 && counter(&r, "events_received") > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_expiry_over_tls() {
    let s = scaled("token-expiry.yaml");
    let r = run_over_tls(s, "token-expiry").await;
    assert!(counter(&r, "token_refreshes") > 0, "{:?}", r.metrics.counters);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_storm_over_tls() {
    let s = scaled("reconnect-storm.yaml");
    let r = run_over_tls(s, "reconnect-storm").await;
    let storm = r.storms.first().expect("a storm");
    assert!(
        storm.dropped >= 100 && storm.recovered * 100 >= storm.dropped * 95,
        "{storm:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn longpoll_fallback_over_tls() {
    let s = scaled("longpoll-fallback.yaml");
    let r = run_over_tls(s, "longpoll-fallback").await;
    assert!(counter(&r, "fallbacks") > 0, "{:?}", r.metrics.counters);
    assert!(counter(&r, "longpoll_events_received") > 0, "{:?}", r.metrics.counters);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn privacy_over_tls() {
    let s = scaled("privacy.yaml");
    let r = run_over_tls(s, "privacy").await;
    assert_eq!(counter(&r, "privacy_leaks"), 0, "{:?}", r.metrics.counters);
    assert!(r.latency.get("delivery.typing").is_some_and(|l| l.summary.count > 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_ramp_over_tls() {
    let s = scaled("capacity-ramp.yaml");
    let r = run_over_tls(s, "capacity-ramp").await;
    assert_eq!(r.thresholds.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_fleet_over_tls() {
    let s = scaled("mixed-fleet.yaml");
    let r = run_over_tls(s, "mixed-fleet").await;
    assert!(r.by_profile.len() > 1);
    assert!(r.waves.first().is_some_and(|w| w.recovered > 0), "{:?}", r.waves);
}

/// Every shipped scenario has its TLS run above (a new one must add its own) and a scaling rule.
#[test]
fn every_shipped_scenario_has_a_tls_run() {
    scaled::every_shipped_scenario_is_scaled();
    let here = include_str!("tls_scenarios.rs");
    for file in scaled::every_shipped() {
        assert!(
            here.contains(&format!("scaled(\"{file}\")")),
            "{file} has no TLS run here"
        );
    }
}
