//! The `chatstorm-mock` binary: `--help` documents every option and the fault-control API; it prints
//! its address, serves, and stops cleanly on Ctrl-C (SIGINT).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_chatstorm-mock");

#[test]
fn help_documents_every_option_and_the_fault_api() {
    let out = Command::new(BIN).arg("--help").output().expect("run --help");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for opt in [
        "--listen",
        "--api-key",
        "--secret",
        "--health-interval",
        "--longpoll-hold",
        "--longpoll-buffer",
        "--longpoll-idle-timeout",
        "--expiry",
        "--allow-dev-tokens",
        "--user-size-limit",
        "--rate-limit",
        "--outbox-limit",
        "--fault-secret",
        "--fault-listen",
        "--idle-timeout",
        "--header-timeout",
        "--body-timeout",
        "--max-pending-body-bytes",
        "CHATSTORM_FAULT_SECRET",
    ] {
        assert!(help.contains(opt), "--help lacks {opt}");
    }
    for path in [
        "/_fault/stats",
        "/_fault/drop",
        "/_fault/half-open",
        "/_fault/refuse-upgrades",
        "/_fault/latency",
        "/_fault/first-frame-delay",
        "/_fault/expire-tokens",
        "/_fault/violations",
        "X-Chatstorm-Secret",
    ] {
        assert!(help.contains(path), "--help lacks {path}");
    }
    for v in chatstorm_mock::Violation::ALL {
        assert!(help.contains(v.name()), "--help lacks violation {}", v.name());
    }
    assert!(help.contains("127.0.0.1:3031"));
}

#[test]
fn bad_options_fail_with_a_message() {
    let out = Command::new(BIN)
        .args(["--listen", "not-an-address"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--listen"));
}

#[tokio::test]
async fn prints_its_address_serves_and_stops_on_sigint() {
    let mut child = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--health-interval", "1s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(Duration::from_secs(30)).expect("the address line");
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .expect("an address")
        .to_owned();
    let stream = tokio::net::TcpStream::connect(&addr).await.expect("connect");
    drop(stream);
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(kill.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(std::time::Instant::now() < deadline, "did not stop after SIGINT");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "{status:?}");
}

#[test]
fn listening_beyond_loopback_is_warned_about() {
    use chatstorm_mock::cli::exposure_warnings;
    let lo = "127.0.0.1:1".parse().unwrap();
    let lo6 = "[::1]:1".parse().unwrap();
    let any = "0.0.0.0:1".parse().unwrap();
    assert!(exposure_warnings(lo, None, false).is_empty());
    assert!(exposure_warnings(lo6, Some(lo), false).is_empty());
    let w = exposure_warnings(any, None, false);
    assert_eq!(w.len(), 1);
    assert!(w[0].contains("0.0.0.0:1") && w[0].contains("--fault-listen"), "{w:?}");
    assert!(w[0].contains("no TLS"), "{w:?}");
    assert!(!exposure_warnings(any, None, true)[0].contains("no TLS"));
    assert!(!exposure_warnings(any, Some(lo), false)[0].contains("fault-control API there"));
    assert_eq!(exposure_warnings(lo, Some(any), false).len(), 1);
}

/// Starts the binary with `args` (and `env`), returns it and its stdout lines as they come.
fn spawn_mock(cmd: &mut Command) -> (std::process::Child, mpsc::Receiver<String>) {
    let mut child = cmd.stdout(Stdio::piped()).spawn().expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines() {
            let Ok(l) = l else { break };
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

fn url_in(line: &str) -> String {
    line.split("http://")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .trim_end_matches("/_fault")
        .to_owned()
}

/// One raw HTTP/1.1 GET with an optional fault secret; the status.
async fn get_status(addr: &str, path: &str, secret: Option<&str>) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let h = secret
        .map(|x| format!("X-Chatstorm-Secret: {x}\r\n"))
        .unwrap_or_default();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n{h}Connection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("answer in time")
        .unwrap();
    String::from_utf8_lossy(&out)[9..12].parse().unwrap()
}

#[tokio::test]
async fn a_generated_fault_secret_is_printed_once_and_fault_listen_splits_the_api_off() {
    let (mut child, lines) = spawn_mock(
        Command::new(BIN)
            .args(["--listen", "127.0.0.1:0", "--fault-listen", "127.0.0.1:0"])
            .env_remove("CHATSTORM_FAULT_SECRET")
            .stderr(Stdio::null()),
    );
    let next = || lines.recv_timeout(Duration::from_secs(30)).expect("a line");
    let client = url_in(&next());
    let fault_line = next();
    assert!(fault_line.starts_with("fault-control API on"), "{fault_line}");
    let fault = url_in(&fault_line);
    let secret_line = next();
    let secret = secret_line
        .strip_prefix("fault-control secret: ")
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_else(|| panic!("{secret_line}"))
        .to_owned();
    assert_eq!(secret.len(), 32, "{secret_line}");
    assert_eq!(get_status(&fault, "/_fault/state", Some(&secret)).await, 200);
    assert_eq!(get_status(&fault, "/_fault/state", Some("mock_api_secret")).await, 401);
    assert_eq!(
        get_status(&client, "/_fault/state", Some(&secret)).await,
        404,
        "not on the client port"
    );
    assert_eq!(
        get_status(&fault, "/hi", None).await,
        404,
        "the fault port serves /_fault only"
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test]
async fn a_given_fault_secret_is_used_and_never_printed() {
    let (mut child, lines) = spawn_mock(
        Command::new(BIN)
            .args(["--listen", "127.0.0.1:0"])
            .env("CHATSTORM_FAULT_SECRET", "given-fault-secret")
            .stderr(Stdio::null()),
    );
    let addr = url_in(&lines.recv_timeout(Duration::from_secs(30)).expect("a line"));
    assert_eq!(
        get_status(&addr, "/_fault/state", Some("given-fault-secret")).await,
        200
    );
    let _ = child.kill();
    let _ = child.wait();
    let rest: Vec<String> = lines.iter().collect();
    assert!(rest.iter().all(|l| !l.contains("given-fault-secret")), "{rest:?}");
}

#[tokio::test]
async fn out_of_descriptors_it_keeps_serving_and_accepts_again_when_some_free_up() {
    // 64 descriptors: the runtime needs a handful, so some 50 connections fit.
    let (mut child, lines) = spawn_mock(
        Command::new("sh")
            .arg("-c")
            .arg(format!("ulimit -n 64 && exec {BIN} --listen 127.0.0.1:0"))
            .stderr(Stdio::piped()),
    );
    let addr = url_in(&lines.recv_timeout(Duration::from_secs(30)).expect("a line"));
    let mut conns = Vec::new();
    for _ in 0..90 {
        conns.push(
            tokio::net::TcpStream::connect(&addr)
                .await
                .expect("the backlog takes it"),
        );
    }
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    async fn ask(s: &mut tokio::net::TcpStream) -> bool {
        if s.write_all(b"GET /hi HTTP/1.1\r\nHost: x\r\n\r\n").await.is_err() {
            return false;
        }
        let mut buf = [0u8; 1024];
        matches!(tokio::time::timeout(Duration::from_secs(20), s.read(&mut buf)).await, Ok(Ok(n)) if n > 0)
    }
    // The first connection was accepted before descriptors ran out: still served.
    assert!(ask(&mut conns[0]).await, "an open connection is still served");
    // Free most of them: the mock sees them close, gives the descriptors back and accepts the
    // ones waiting in the backlog, the last included.
    let mut last = conns.pop().expect("last");
    conns.truncate(5);
    assert!(
        ask(&mut last).await,
        "a waiting connection is accepted once descriptors free up"
    );
    assert!(ask(&mut conns[1]).await);
    let _ = child.kill();
    let _ = child.wait();
    let mut err = String::new();
    let _ = std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut err);
    assert!(err.contains("accept failed"), "the shortage was reported: {err}");
}
