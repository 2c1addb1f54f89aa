//! TLS end to end (issue 13): a TLS mock in this process (a self-signed certificate made at start,
//! 127.0.0.1:0), and the harness against it over `https://` and `wss://`: a scaled-down scenario
//! whose users connect over TLS on both transports (WebSocket, and long-poll after the fallback),
//! the conformance suite, and the refusals: a certificate the run does not trust (unknown
//! issuer, a name mismatch, expired) ends the run before any user starts, exit 5, with one line
//! saying why; `--insecure` connects and says so, on stderr and in summary.json.

#[path = "support/runs.rs"]
mod runs;

use chatstorm::exit::Outcome;
use chatstorm::net::TlsOptions;
use chatstorm::plan::ConformPlan;
use chatstorm::report::summary::TlsInfo;
use chatstorm::target::TargetOptions;
use chatstorm_mock::{MockConfig, SelfSigned};
use runs::{ca, plan, summary, target_options, temp, tls_mock};
use std::path::PathBuf;

const BIN: &str = env!("CARGO_BIN_EXE_chatstorm");

/// JS users with the long-poll fallback: the mock refuses upgrades for the first 9 s, so the
/// users that start then fall back to `/longpoll` (over https) and the later ones connect over
/// wss; messages cross both.
const SCENARIO: &str = r#"
name: tls-smoke
seed: 11
target: {}
users:
  count: 24
  id: "tls-{index}"
  profile: js
  token: {ttl: 10m, mode: provider}
  fallback: true
channels: {count: 3, members: 8}
load:
  - ramp: {to: 24, over: 12s}
  - hold: 4s
behaviour:
  message: {every: 2s}
timeline:
  - at: 0s
    block_websocket: {for: 9s}
"#;

/// A scenario that only connects (the refusal tests never get as far as a user).
const CONNECT_ONLY: &str = r#"
name: tls-connect
seed: 12
target: {}
users:
  count: 6
  id: "tlc-{index}"
  profile: {js: 50, android: 50}
  token: {ttl: 10m, mode: provider}
load:
  - ramp: {to: 6, over: 1s}
  - hold: 2s
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scenario_runs_over_https_and_wss_on_both_transports() {
    let dir = temp("tls", "run");
    let (mock, cfg, ca_file) = tls_mock(&dir, &["127.0.0.1", "localhost"], false).await;
    let scenario = dir.join("tls.yaml");
    std::fs::write(&scenario, SCENARIO).unwrap();
    let out = dir.join("out");
    let outcome = chatstorm::commands::run(plan(&scenario, target_options(&mock, &cfg, ca(&ca_file)), &out)).await;
    let stats = mock.control.stats();
    mock.shutdown().await;
    let s = summary(&out);
    assert_eq!(outcome, Outcome::Passed, "verdict: {:?}", s.verdict.reasons);
    let count = |k: &str| s.latency.get(k).map_or(0, |l| l.summary.count);
    assert!(
        count("connect.ws") > 0,
        "users connected over wss: {:?}",
        s.latency.keys()
    );
    assert!(count("connect.longpoll") > 0, "users connected over https long-poll");
    assert!(s.metrics.counters.get("fallbacks").copied().unwrap_or(0) > 0);
    assert!(s.run.target_is_mock, "the fault API answered over https");
    assert_eq!(s.run.tls, Some(TlsInfo { insecure: false }));
    assert!(
        stats.ws_accepted_total > 0 && stats.longpoll_accepted_total > 0,
        "{stats:?}"
    );
    assert_eq!(s.errors.by_kind.get("tls_handshake"), None, "{:?}", s.errors.by_kind);
    // Each WebSocket connect's phases are histograms of their own, the handshake among them.
    for phase in ["connect.tcp", "connect.tls", "connect.upgrade", "connect.first_frame"] {
        assert!(
            count(phase) >= count("connect.ws"),
            "{phase}: {} of {}",
            count(phase),
            count("connect.ws")
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A scenario's own `target.url` over https takes `--ca-cert` from the command line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scenarios_https_target_uses_the_command_lines_ca() {
    let dir = temp("tls", "scenario-target");
    let (mock, cfg, ca_file) = tls_mock(&dir, &["127.0.0.1"], false).await;
    let scenario = dir.join("remote.yaml");
    let text = CONNECT_ONLY.replace(
        "target: {}",
        &format!(
            "target: {{url: \"{}\", api_key: {}, secret: {}}}",
            mock.base_url(),
            cfg.api_key,
            cfg.secret
        ),
    );
    std::fs::write(&scenario, text).unwrap();
    let without = TargetOptions::default();
    let outcome = chatstorm::commands::run(plan(&scenario, without.clone(), &dir.join("a"))).await;
    assert_eq!(outcome, Outcome::Unreachable, "not trusted without --ca-cert");
    let with = TargetOptions {
        tls: ca(&ca_file),
        ..without
    };
    let outcome = chatstorm::commands::run(plan(&scenario, with, &dir.join("b"))).await;
    mock.shutdown().await;
    let s = summary(&dir.join("b"));
    assert_eq!(outcome, Outcome::Passed, "{:?}", s.verdict.reasons);
    assert!(s.latency.get("connect.tls").is_some_and(|l| l.summary.count >= 6));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A plain target's connects have the same phases, without `connect.tls`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_run_has_no_tls_phase() {
    let dir = temp("tls", "plain");
    let cfg = MockConfig::default();
    let mock = chatstorm_mock::start(cfg.clone()).await.expect("mock");
    let scenario = dir.join("connect.yaml");
    std::fs::write(&scenario, CONNECT_ONLY).unwrap();
    let out = dir.join("out");
    let mut options = target_options(&mock, &cfg, TlsOptions::default());
    options.fault_secret = None;
    let outcome = chatstorm::commands::run(plan(&scenario, options, &out)).await;
    mock.shutdown().await;
    let s = summary(&out);
    assert_eq!(outcome, Outcome::Passed, "{:?}", s.verdict.reasons);
    assert_eq!(s.run.tls, None);
    let count = |k: &str| s.latency.get(k).map_or(0, |l| l.summary.count);
    assert!(count("connect.ws") >= 6);
    assert_eq!(count("connect.tls"), 0);
    for phase in ["connect.tcp", "connect.upgrade", "connect.first_frame"] {
        assert_eq!(count(phase), count("connect.ws"), "{phase}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_conformance_suite_passes_over_tls() {
    let dir = temp("tls", "conform");
    let made = SelfSigned::default().make().expect("certificate");
    let cfg = MockConfig {
        tls: Some(made.tls),
        ..chatstorm::conformance::embedded_mock_config()
    };
    let mock = chatstorm_mock::start(cfg.clone()).await.expect("mock");
    // The whole suite, as `conform` runs it against the embedded mock, over https and wss.
    let target = chatstorm::conformance::mock_target(&mock.base_url(), &cfg)
        .unwrap()
        .with_tls(&TlsOptions::default())
        .unwrap();
    let mut target = target;
    target.tls = Some(chatstorm::net::Tls::with_ca_pem(made.cert_pem.as_bytes()).unwrap());
    let report = chatstorm::conformance::run_suite(
        &target,
        &chatstorm::conformance::embedded_suite_options(Vec::new(), false),
    )
    .await;
    let bad: Vec<_> = report
        .results
        .iter()
        .filter(|r| !matches!(r.verdict, chatstorm::conformance::Verdict::Passed))
        .map(|r| (r.id, format!("{:?}", r.verdict)))
        .collect();
    assert!(bad.is_empty(), "not passed over TLS: {bad:?}");
    // And `chatstorm conform --target https://… --ca-cert …` (pre-flight, probe, a few rules).
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, &made.cert_pem).unwrap();
    let outcome = chatstorm::commands::conform(ConformPlan {
        target: target_options(&mock, &cfg, ca(&ca_file)),
        only: vec!["CONN-*".into(), "LONGPOLL-*".into()],
        strict: false,
        out: Some(dir.join("out")),
    })
    .await;
    mock.shutdown().await;
    assert_eq!(outcome, Outcome::Passed);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs `CONNECT_ONLY` against a mock whose certificate the run must refuse; checks exit 5, the
/// reason in the not-started summary, and that no user reached the mock.
async fn refused(name: &str, names: &[&str], expired: bool, trust: bool, reason: &str) {
    let dir = temp("tls", name);
    let (mock, cfg, ca_file) = tls_mock(&dir, names, expired).await;
    let scenario = dir.join("connect.yaml");
    std::fs::write(&scenario, CONNECT_ONLY).unwrap();
    let tls = if trust { ca(&ca_file) } else { TlsOptions::default() };
    let mut options = target_options(&mock, &cfg, tls);
    options.fault_secret = None;
    let out = dir.join("out");
    let outcome = chatstorm::commands::run(plan(&scenario, options.clone(), &out)).await;
    assert_eq!(outcome, Outcome::Unreachable, "{name}: exit 5");
    assert_eq!(outcome.code(), 5);
    let s = summary(&out);
    let why = s.run.stop_reason.clone().unwrap_or_default();
    assert!(why.contains(reason) && why.contains("TLS pre-flight"), "{name}: {why}");
    assert_eq!(s.run.users_started, 0, "{name}: no user started");
    // `conform` refuses the same way, before any case.
    let outcome = chatstorm::commands::conform(ConformPlan {
        target: options,
        only: Vec::new(),
        strict: false,
        out: Some(dir.join("conform")),
    })
    .await;
    assert_eq!(outcome, Outcome::Unreachable, "{name}: conform exit 5");
    let stats = mock.control.stats();
    assert_eq!(
        stats.ws_accepted_total + stats.longpoll_accepted_total,
        0,
        "{name}: {stats:?}"
    );
    mock.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_fails_the_run_before_users_start() {
    refused("untrusted", &["127.0.0.1", "localhost"], false, false, "unknown issuer").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_for_another_name_fails_the_run_before_users_start() {
    refused("mismatch", &["chat.example"], false, true, "name mismatch").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_certificate_fails_the_run_before_users_start() {
    refused("expired", &["127.0.0.1"], true, true, "expired").await;
}

/// The binary: an untrusted certificate is one line on stderr and exit 5; `--insecure`
/// connects, warns on stderr, and says so in summary.json.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_says_why_in_one_line_and_insecure_is_loud() {
    let dir = temp("tls", "cli");
    let (mock, cfg, _ca) = tls_mock(&dir, &["127.0.0.1"], false).await;
    let scenario = dir.join("connect.yaml");
    std::fs::write(&scenario, CONNECT_ONLY).unwrap();
    let run = |extra: &'static [&'static str], out: PathBuf| {
        let mut cmd = std::process::Command::new(BIN);
        cmd.arg("run")
            .arg(&scenario)
            .args(["--target", &mock.base_url(), "--api-key", &cfg.api_key])
            .args(["--quiet", "--format", "json", "--threads", "1", "--out"])
            .arg(out)
            .args(extra)
            .env("CHATSTORM_SECRET", &cfg.secret)
            .env_remove("CHATSTORM_FAULT_SECRET")
            .env_remove("CHATSTORM_TARGET");
        tokio::task::spawn_blocking(move || cmd.output().expect("run chatstorm"))
    };
    let o = run(&[], dir.join("a")).await.unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(5), "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    assert!(lines[0].contains("unknown issuer"), "{stderr}");

    let o = run(&["--insecure"], dir.join("b")).await.unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("warning: --insecure") && stderr.contains("NOT checked"),
        "{stderr}"
    );
    let s = summary(&dir.join("b"));
    assert_eq!(s.run.tls, Some(TlsInfo { insecure: true }));
    assert!(s.metrics.counters.get("connects").copied().unwrap_or(0) >= 6);
    mock.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Plain WebSocket users (`users.kind: plain-websocket`) open a `wss://` URL as it is: a tiny
/// TLS WebSocket server that greets each socket with one frame.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_websocket_users_connect_over_wss() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let made = SelfSigned::default().make().expect("certificate");
    let acceptor = tokio_rustls::TlsAcceptor::from(made.tls.config());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let seen = accepted.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, seen) = (acceptor.clone(), seen.clone());
            tokio::spawn(async move {
                // The pre-flight handshake closes without an upgrade: nothing to serve then.
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let Ok(mut ws) = tokio_tungstenite::accept_async(tls).await else {
                    return;
                };
                seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if ws.send(Message::text(r#"{"type":"health.check"}"#)).await.is_err() {
                    return;
                }
                while let Some(Ok(m)) = ws.next().await {
                    if matches!(m, Message::Close(_)) {
                        break;
                    }
                }
            });
        }
    });
    let yaml = "name: plain-wss\nusers: {count: 10, kind: plain-websocket}\n\
                load:\n  - ramp: {to: 10, over: 10ms}\n  - hold: 1s\n";
    let s = chatstorm::scenario::parse("plain.yaml", yaml).expect("valid");
    let mut target = chatstorm::target::Target::plain(&format!("wss://{addr}/connect")).unwrap();
    assert!(target.is_tls());
    target.tls = Some(chatstorm::net::Tls::with_ca_pem(made.cert_pem.as_bytes()).unwrap());
    let dir = temp("tls", "plain-wss");
    let summary = chatstorm::api::run_scenario(s, Some(target), dir.join("out"))
        .await
        .expect("the run");
    assert_eq!(summary.metrics.counters.get("connects").copied(), Some(10));
    assert_eq!(accepted.load(std::sync::atomic::Ordering::Relaxed), 10);
    assert_eq!(summary.latency.get("connect.tls").map(|l| l.summary.count), Some(10));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A user whose handshake is refused (a certificate that changed after the pre-flight) fails
/// that connect as `tls_handshake`, not as a reset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_handshake_is_a_tls_failure_of_the_user() {
    use chatstorm::metrics::FailureKind;
    use chatstorm::user::machine::Failure;
    use chatstorm_protocol::connect::ConnectPayload;
    use chatstorm_protocol::{Profile, User};
    let dir = temp("tls", "user-failure");
    let (mock, cfg, _ca) = tls_mock(&dir, &["127.0.0.1"], false).await;
    let token = chatstorm_protocol::token::sign(
        &chatstorm_protocol::token::Claims::user("u-0", None),
        cfg.secret.as_bytes(),
    );
    let payload = ConnectPayload::for_profile(Profile::Js, &User::new("u-0".to_owned()), &token, false, "r-1");
    let ws_base: url::Url = mock.ws_url().parse().unwrap();
    let untrusted = chatstorm::net::Tls::new(&TlsOptions::default()).unwrap();
    let rec = chatstorm::metrics::Recorder::new();
    let r = chatstorm::user::transport::connect_ws(
        &ws_base,
        mock.addr,
        None,
        Some(&untrusted),
        &cfg.api_key,
        &token,
        &payload,
        Profile::Js,
        &rec,
        None,
        None,
    )
    .await;
    assert_eq!(r.err(), Some(Failure::Network(FailureKind::Tls)));
    mock.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
