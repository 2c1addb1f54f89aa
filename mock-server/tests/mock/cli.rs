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
