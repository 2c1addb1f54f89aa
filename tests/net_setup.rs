//! What a run sets up on the network before its users start (issue 13): each host name looked
//! up once and pinned for the run (`connect.dns`, the addresses in summary.json and the
//! console), and `--source-ips`, the local addresses the users' connections are spread over,
//! with the port and descriptor budget checked up front. Against a TLS mock in this process.

use chatstorm::exit::Outcome;
use chatstorm::net::TlsOptions;
use chatstorm::plan::RunPlan;
use chatstorm::report::summary::RunSummary;
use chatstorm::target::TargetOptions;
use chatstorm_mock::{MockConfig, MockHandle, SelfSigned};
use std::path::{Path, PathBuf};
use std::time::Duration;

const CONNECT_ONLY: &str = r#"
name: net-setup
seed: 31
target: {}
users:
  count: 12
  id: "net-{index}"
  profile: js
  token: {ttl: 10m, mode: provider}
load:
  - ramp: {to: 12, over: 1s}
  - hold: 2s
"#;

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("chatstorm-netsetup-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

async fn tls_mock(dir: &Path) -> (MockHandle, MockConfig, PathBuf) {
    let made = SelfSigned::default().make().expect("a self-signed certificate");
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, &made.cert_pem).unwrap();
    let cfg = MockConfig {
        tls: Some(made.tls),
        health_interval: Duration::from_secs(3),
        ..MockConfig::default()
    };
    let mock = chatstorm_mock::start(cfg.clone()).await.expect("the TLS mock starts");
    (mock, cfg, ca)
}

fn plan(scenario: &Path, target: TargetOptions, out: &Path) -> RunPlan {
    RunPlan {
        scenario: scenario.to_owned(),
        target,
        users: None,
        duration: None,
        seed: None,
        out: Some(out.to_owned()),
        formats: vec![chatstorm::report::Format::Json],
        workers: 1,
        shard: None,
        quiet: true,
        threads: Some(1),
    }
}

fn summary(out: &Path) -> RunSummary {
    let text = std::fs::read_to_string(out.join("summary.json")).expect("summary.json");
    serde_json::from_str(&text).expect("a summary")
}

/// `https://localhost:PORT`: one lookup for the run, shown with its addresses, timed as
/// `connect.dns`; every user connected through the pinned address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_name_is_resolved_once_and_shown() {
    let dir = temp("dns");
    let (mock, cfg, ca) = tls_mock(&dir).await;
    let scenario = dir.join("s.yaml");
    std::fs::write(&scenario, CONNECT_ONLY).unwrap();
    let out = dir.join("out");
    let target = TargetOptions {
        target: Some(mock.base_url().replace("127.0.0.1", "localhost")),
        api_key: Some(cfg.api_key.clone()),
        secret: Some(cfg.secret.clone()),
        token_endpoint: None,
        fault_secret: Some(cfg.fault_secret.clone()),
        tls: TlsOptions {
            ca_cert: Some(ca),
            insecure: false,
        },
    };
    let outcome = chatstorm::commands::run(plan(&scenario, target, &out)).await;
    let port = mock.addr.port();
    mock.shutdown().await;
    let s = summary(&out);
    assert_eq!(outcome, Outcome::Passed, "{:?}", s.verdict.reasons);
    assert_eq!(s.run.dns.len(), 1, "{:?}", s.run.dns);
    let d = &s.run.dns[0];
    assert_eq!((d.host.as_str(), d.port), ("localhost", port));
    assert!(d.addresses.contains(&format!("127.0.0.1:{port}")), "{:?}", d.addresses);
    assert_eq!(s.latency.get("connect.dns").map(|l| l.summary.count), Some(1));
    assert!(s.metrics.counters["connects"] >= 12);
    let mut console = Vec::new();
    chatstorm::report::console::write(&s, &mut console).unwrap();
    let console = String::from_utf8(console).unwrap();
    assert!(console.contains(&format!("dns      localhost:{port} -> ")), "{console}");
    assert_eq!(
        chatstorm::net::dns::pinned("localhost", port),
        None,
        "the pins end with the run"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A name that does not resolve ends the run before any user starts, exit 5, naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_that_does_not_resolve_fails_the_run_up_front() {
    let dir = temp("nxdomain");
    let scenario = dir.join("s.yaml");
    std::fs::write(&scenario, CONNECT_ONLY).unwrap();
    let out = dir.join("out");
    let target = TargetOptions {
        target: Some("https://no-such-host.invalid:4433".to_owned()),
        api_key: Some("k".into()),
        secret: Some("s".into()),
        ..TargetOptions::default()
    };
    let outcome = chatstorm::commands::run(plan(&scenario, target, &out)).await;
    assert_eq!(outcome, Outcome::Unreachable);
    let s = summary(&out);
    let why = s.run.stop_reason.unwrap_or_default();
    assert!(why.contains("no-such-host.invalid"), "{why}");
    assert_eq!(s.run.users_started, 0);
    let _ = std::fs::remove_dir_all(&dir);
}
