//! What a run sets up on the network before its users start (issue 13): each host name looked
//! up once and pinned for the run (`connect.dns`, the addresses in summary.json and the
//! console), and `--source-ips`, the local addresses the users' connections are spread over,
//! with the port and descriptor budget checked up front. Against a TLS mock in this process.

#[path = "support/runs.rs"]
mod runs;

use chatstorm::exit::Outcome;
use chatstorm::net::TlsOptions;
use chatstorm::target::TargetOptions;
use chatstorm_mock::SelfSigned;
use runs::{plan, summary, target_options, temp, tls_mock};

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

/// `https://localhost:PORT`: one lookup for the run, shown with its addresses, timed as
/// `connect.dns`; every user connected through the pinned address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_name_is_resolved_once_and_shown() {
    let dir = temp("netsetup", "dns");
    let (mock, cfg, ca) = tls_mock(&dir, &["127.0.0.1", "localhost"], false).await;
    let scenario = dir.join("s.yaml");
    std::fs::write(&scenario, CONNECT_ONLY).unwrap();
    let out = dir.join("out");
    let target = TargetOptions {
        target: Some(mock.base_url().replace("127.0.0.1", "localhost")),
        ..target_options(&mock, &cfg, runs::ca(&ca))
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
    let dir = temp("netsetup", "nxdomain");
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

/// A TLS WebSocket server that greets each upgraded socket with one frame and records the
/// address each upgraded socket came from.
async fn greeting_server() -> (
    std::net::SocketAddr,
    String,
    std::sync::Arc<std::sync::Mutex<Vec<std::net::IpAddr>>>,
) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let made = SelfSigned::default().make().expect("certificate");
    let acceptor = tokio_rustls::TlsAcceptor::from(made.tls.config());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let peers = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = peers.clone();
    tokio::spawn(async move {
        while let Ok((tcp, peer)) = listener.accept().await {
            let (acceptor, seen) = (acceptor.clone(), seen.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let Ok(mut ws) = tokio_tungstenite::accept_async(tls).await else {
                    return;
                };
                seen.lock().unwrap().push(peer.ip());
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
    (addr, made.cert_pem, peers)
}

/// `--source-ips 127.0.0.2,127.0.0.3`: the users' sockets come from those two addresses, in
/// turn, over wss.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_connect_from_the_given_source_addresses() {
    let dir = temp("netsetup", "sources");
    let (addr, pem, peers) = greeting_server().await;
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, pem).unwrap();
    let scenario = dir.join("plain.yaml");
    std::fs::write(
        &scenario,
        "name: plain-sources\nusers: {count: 10, kind: plain-websocket}\nload:\n  - ramp: {to: 10, over: 10ms}\n  - hold: 1s\n",
    )
    .unwrap();
    let target = TargetOptions {
        target: Some(format!("wss://{addr}/connect")),
        tls: TlsOptions {
            ca_cert: Some(ca),
            insecure: false,
        },
        source_ips: Some("127.0.0.2, 127.0.0.3".to_owned()),
        ..TargetOptions::default()
    };
    let out = dir.join("out");
    let outcome = chatstorm::commands::run(plan(&scenario, target, &out)).await;
    let s = summary(&out);
    assert_eq!(outcome, Outcome::Passed, "{:?}", s.verdict.reasons);
    let peers = peers.lock().unwrap().clone();
    assert_eq!(peers.len(), 10, "{peers:?}");
    for ip in ["127.0.0.2", "127.0.0.3"] {
        let n = peers.iter().filter(|p| p.to_string() == ip).count();
        assert_eq!(n, 5, "{ip}: {peers:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// SDK users against the TLS mock from a CIDR block of loopback addresses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_users_run_from_a_cidr_block() {
    let dir = temp("netsetup", "cidr");
    let (mock, cfg, ca) = tls_mock(&dir, &["127.0.0.1", "localhost"], false).await;
    let scenario = dir.join("s.yaml");
    std::fs::write(&scenario, CONNECT_ONLY).unwrap();
    let out = dir.join("out");
    let target = TargetOptions {
        target: Some(mock.base_url()),
        api_key: Some(cfg.api_key.clone()),
        secret: Some(cfg.secret.clone()),
        fault_secret: Some(cfg.fault_secret.clone()),
        tls: TlsOptions {
            ca_cert: Some(ca),
            insecure: false,
        },
        source_ips: Some("127.0.0.4/31".to_owned()),
        ..TargetOptions::default()
    };
    let outcome = chatstorm::commands::run(plan(&scenario, target, &out)).await;
    mock.shutdown().await;
    let s = summary(&out);
    assert_eq!(outcome, Outcome::Passed, "{:?}", s.verdict.reasons);
    assert!(s.metrics.counters["connects"] >= 12);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Too few addresses or descriptors for the users: exit 6 before any user starts, with one line
/// saying which budget and what would do; an address of another machine is refused the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_addresses_that_cannot_carry_the_users_fail_up_front() {
    let dir = temp("netsetup", "budget");
    let (addr, pem, peers) = greeting_server().await;
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, pem).unwrap();
    let scenario = dir.join("plain.yaml");
    std::fs::write(
        &scenario,
        "name: plain-many\nusers: {count: 60000, kind: plain-websocket}\nload:\n  - ramp: {to: 60000, over: 10s}\n",
    )
    .unwrap();
    let options = |ips: &str| TargetOptions {
        target: Some(format!("wss://{addr}/connect")),
        tls: TlsOptions {
            ca_cert: Some(ca.clone()),
            insecure: false,
        },
        source_ips: Some(ips.to_owned()),
        ..TargetOptions::default()
    };
    // Shard 0 of 4: 15,000 users here (descriptors enough), 60,000 in the run on one address.
    let mut p = plan(&scenario, options("127.0.0.2"), &dir.join("ports"));
    p.shard = Some((0, 4));
    let outcome = chatstorm::commands::run(p).await;
    assert_eq!((outcome, outcome.code()), (Outcome::SourcesTooFew, 6));
    let why = summary(&dir.join("ports")).run.stop_reason.unwrap_or_default();
    assert!(
        why.contains("60000 users need 60000 connections") && why.contains("give at least 3 addresses"),
        "{why}"
    );
    // One process, all 60,000 users: more descriptors than the hard limit allows here.
    let fd_limit = chatstorm::sys::raise_fd_limit();
    if fd_limit < 60_200 {
        let outcome = chatstorm::commands::run(plan(&scenario, options("127.0.0.2/30"), &dir.join("fds"))).await;
        assert_eq!(outcome, Outcome::SourcesTooFew);
        let why = summary(&dir.join("fds")).run.stop_reason.unwrap_or_default();
        assert!(why.contains("open descriptors"), "{why}");
    }
    let outcome = chatstorm::commands::run(plan(&scenario, options("192.0.2.77"), &dir.join("foreign"))).await;
    assert_eq!(outcome, Outcome::SourcesTooFew);
    let why = summary(&dir.join("foreign")).run.stop_reason.unwrap_or_default();
    assert!(why.contains("192.0.2.77 is not an address of this machine"), "{why}");
    assert!(peers.lock().unwrap().is_empty(), "no user started");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The binary: the budget's one line on stderr, exit 6; `--source-ips` without `--target` is a
/// configuration error (exit 2).
#[test]
fn the_command_line_says_it_in_one_line() {
    let dir = temp("netsetup", "cli");
    let scenario = dir.join("s.yaml");
    std::fs::write(
        &scenario,
        "name: cli\nusers: {count: 70000, kind: plain-websocket}\nload:\n  - ramp: {to: 70000, over: 10s}\n",
    )
    .unwrap();
    // Nothing listens: the budget is checked before any connection (a TCP probe would fail).
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_chatstorm"))
        .arg("run")
        .arg(&scenario)
        .args([
            "--target",
            "ws://127.0.0.1:9/connect",
            "--source-ips",
            "127.0.0.2",
            "--shard",
            "0/7",
        ])
        .args(["--quiet", "--format", "json", "--out"])
        .arg(dir.join("out"))
        .env_remove("CHATSTORM_TARGET")
        .output()
        .expect("run chatstorm");
    let stderr = String::from_utf8_lossy(&o.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(o.status.code(), Some(6), "{stderr}");
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains("--source-ips: 70000 users need"), "{stderr}");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_chatstorm"))
        .arg("run")
        .arg(&scenario)
        .args(["--source-ips", "127.0.0.2", "--quiet"])
        .env_remove("CHATSTORM_TARGET")
        .output()
        .expect("run chatstorm");
    assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
    let _ = std::fs::remove_dir_all(&dir);
}
