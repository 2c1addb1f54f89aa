//! TLS session resumption (`users.tls.resumption`, issue 13) against the TLS mock in this process
//! (stateless session tickets on): a reconnect storm with half the users resuming shows resumed
//! handshakes beside full ones in `summary.json`'s counters, and only the resuming users resume;
//! with resumption off, every handshake is full and no resumed counter appears.

#[path = "support/runs.rs"]
mod runs;

use chatstorm::exit::Outcome;
use chatstorm::net::TlsOptions;
use chatstorm::plan::RunPlan;
use chatstorm::report::summary::RunSummary;
use chatstorm::target::TargetOptions;
use chatstorm_mock::{MockConfig, SelfSigned};
use runs::summary;
use std::path::PathBuf;
use std::time::Duration;

/// 20 JS users over wss; every socket dropped by the server at 3 s, so each user reconnects once.
fn scenario(resumption: &str) -> String {
    format!(
        r#"
name: tls-resumption
seed: 21
target: {{}}
users:
  count: 20
  id: "res-{{index}}"
  profile: js
  token: {{ttl: 10m, mode: provider}}
  tls: {{resumption: {resumption}}}
load:
  - ramp: {{to: 20, over: 1s}}
  - hold: 6s
timeline:
  - at: 3s
    drop_sockets: {{fraction: 1.0, side: server, close: 1011}}
"#
    )
}

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("chatstorm-tlsres-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

async fn run(name: &str, resumption: &str) -> (Outcome, RunSummary) {
    let dir = temp(name);
    let made = SelfSigned::default().make().expect("a self-signed certificate");
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, &made.cert_pem).unwrap();
    let cfg = MockConfig {
        tls: Some(made.tls),
        health_interval: Duration::from_secs(3),
        ..MockConfig::default()
    };
    let mock = chatstorm_mock::start(cfg.clone()).await.expect("the TLS mock starts");
    let file = dir.join("s.yaml");
    std::fs::write(&file, scenario(resumption)).unwrap();
    let out = dir.join("out");
    let target = TargetOptions {
        target: Some(mock.base_url()),
        api_key: Some(cfg.api_key.clone()),
        secret: Some(cfg.secret.clone()),
        token_endpoint: None,
        fault_secret: Some(cfg.fault_secret.clone()),
        tls: TlsOptions {
            ca_cert: Some(ca),
            insecure: false,
        },
        source_ips: None,
    };
    let plan = RunPlan {
        out: Some(out.clone()),
        formats: vec![chatstorm::report::Format::Json],
        quiet: true,
        threads: Some(1),
        ..RunPlan::new(file, target)
    };
    let outcome = chatstorm::commands::run(plan).await;
    mock.shutdown().await;
    let s = summary(&out);
    let _ = std::fs::remove_dir_all(&dir);
    (outcome, s)
}

fn counter(s: &RunSummary, name: &str) -> Option<u64> {
    s.metrics.counters.get(name).copied()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_the_users_resume_their_sessions_after_a_storm() {
    let (outcome, s) = run("half", "0.5").await;
    assert_eq!(outcome, Outcome::Passed, "{:?}", s.verdict.reasons);
    let connects = counter(&s, "connects").unwrap_or(0);
    let full = counter(&s, "tls_full_handshakes").unwrap_or(0);
    let resumed = counter(&s, "tls_resumed_handshakes").unwrap_or(0);
    assert!(connects >= 40, "every user connected twice: {connects}");
    assert_eq!(
        full + resumed,
        s.latency["connect.tls"].summary.count,
        "each handshake counted once"
    );
    // The 10 resuming users' reconnects resume (their first connects may too, once a ticket from
    // another resuming user is in the pool); the other 10 never do.
    assert!(resumed >= 10, "resumed {resumed}, full {full}");
    assert!(
        resumed <= 20,
        "only the resuming half resumes: resumed {resumed}, full {full}"
    );
    assert!(full >= 20, "the other half's connects are full: {full}");
    // Per profile too (one profile: the totals).
    assert_eq!(
        s.by_profile["js"].counters.get("tls_resumed_handshakes").copied(),
        Some(resumed)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_resumption_every_handshake_is_full() {
    let (outcome, s) = run("off", "off").await;
    assert_eq!(outcome, Outcome::Passed, "{:?}", s.verdict.reasons);
    assert_eq!(
        counter(&s, "tls_resumed_handshakes"),
        None,
        "a zero sparse counter is left out"
    );
    let full = counter(&s, "tls_full_handshakes").unwrap_or(0);
    assert!(full >= 40, "{full}");
    assert_eq!(full, s.latency["connect.tls"].summary.count);
}
