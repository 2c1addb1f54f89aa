//! A standalone mock is a full target (issue 11 item 5): `chatstorm run --target` against a mock
//! started as its own process (`chatstorm mock`, the same server as the `chatstorm-mock` binary)
//! finds its fault-control API with `--fault-secret` and carries out the scenario's server-side
//! faults; a server without that API, a wrong secret or no secret is refused before any user
//! starts, with a one-line reason (exit 2). Secrets go through the environment, as a CI service
//! would set them.

use chatstorm::report::summary::RunSummary;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_chatstorm");
const KEY: &str = "standalone_key";
const SECRET: &str = "standalone_app_secret";
const FAULT_SECRET: &str = "standalone_fault_secret";

/// A scaled-down scenario with a server-side fault of each kind the mock carries out.
const SCENARIO: &str = r#"
name: standalone-faults
seed: 7
target: {}
users:
  count: 40
  id: "sa-{index}"
  profile: {js: 70, android: 30}
  token: {ttl: 10m, mode: provider}
channels: {count: 4, members: 10}
load:
  - ramp: {to: 40, over: 2s}
  - hold: 14s
timeline:
  - at: 3s
    block_websocket: {for: 1s}
  - at: 5s
    drop_sockets: {fraction: 1.0, side: server, close: 1011}
  - at: 10s
    expire_tokens: {fraction: 0.5, side: server}
"#;

/// A child process killed when the test ends, pass or fail.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `chatstorm mock` on 127.0.0.1:0 with the secrets in its environment; returns it and
/// the address it printed.
fn start_mock() -> (Reaped, String) {
    let mut child = Command::new(BIN)
        .args(["mock", "--listen", "127.0.0.1:0", "--api-key", KEY])
        .env("CHATSTORM_SECRET", SECRET)
        .env("CHATSTORM_FAULT_SECRET", FAULT_SECRET)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn chatstorm mock");
    let stdout = child.stdout.take().expect("stdout");
    let child = Reaped(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        if let Some(Ok(l)) = lines.next() {
            let _ = tx.send(l);
        }
        // Keep draining so the mock never blocks on a full pipe.
        for _ in lines {}
    });
    let line = rx.recv_timeout(Duration::from_secs(30)).expect("the address line");
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();
    (child, addr)
}

fn scenario_file(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let p = dir.join("standalone.yaml");
    std::fs::write(&p, SCENARIO).unwrap();
    p
}

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("chatstorm-standalone-{name}-{}", std::process::id()))
}

/// `chatstorm run` against `target`; the fault secret (if any) through the environment.
fn run(scenario: &Path, target: &str, fault_secret: Option<&str>, out: &Path) -> std::process::Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("run")
        .arg(scenario)
        .args(["--target", &format!("http://{target}"), "--api-key", KEY])
        .args(["--quiet", "--format", "json", "--out"])
        .arg(out)
        .env("CHATSTORM_SECRET", SECRET)
        .env_remove("CHATSTORM_FAULT_SECRET")
        .env_remove("CHATSTORM_TARGET");
    if let Some(f) = fault_secret {
        cmd.env("CHATSTORM_FAULT_SECRET", f);
    }
    cmd.output().expect("run chatstorm")
}

#[test]
fn server_side_faults_run_against_a_standalone_mock() {
    let dir = temp("faults");
    let scenario = scenario_file(&dir);
    let (_mock, addr) = start_mock();
    let out = dir.join("out");
    let o = run(&scenario, &addr, Some(FAULT_SECRET), &out);
    let stderr = String::from_utf8_lossy(&o.stderr);
    let text = std::fs::read_to_string(out.join("summary.json")).unwrap_or_default();
    let s: Option<RunSummary> = serde_json::from_str(&text).ok();
    let why = s.as_ref().map(|s| s.verdict.reasons.join("; ")).unwrap_or_default();
    assert_eq!(o.status.code(), Some(0), "stderr: {stderr}; verdict: {why}");
    let s = s.expect("summary.json");
    let actions: Vec<&str> = s.timeline.iter().map(|m| m.action.as_str()).collect();
    for a in ["block_websocket", "drop_sockets", "expire_tokens"] {
        assert!(actions.contains(&a), "{a} was carried out: {:?}", s.timeline);
    }
    let storm = s.storms.first().expect("the server-side drop makes a storm");
    assert!(
        storm.dropped >= 30,
        "every live user was dropped by the mock: {storm:?}"
    );
    assert_eq!(storm.recovered, storm.dropped, "all came back: {storm:?}");
    let refreshes = s.metrics.counters.get("token_refreshes").copied().unwrap_or(0);
    assert!(refreshes > 0, "expired tokens were refreshed: {:?}", s.metrics.counters);
    assert!(s.run.target_is_mock, "the fault API was detected");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A server that answers every request 404, as any server without the fault API does.
fn plain_server() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut buf = [0u8; 4096];
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    addr
}

fn assert_refused(o: &std::process::Output, reason: &str) {
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "stderr: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    assert!(lines[0].contains(reason), "{stderr}");
    assert!(
        lines[0].contains("drop_sockets") || lines[0].contains("block_websocket"),
        "{stderr}"
    );
    assert!(!stderr.contains(FAULT_SECRET), "the secret is never printed");
}

#[test]
fn a_target_without_the_fault_api_or_with_a_wrong_secret_is_refused_up_front() {
    let dir = temp("refused");
    let scenario = scenario_file(&dir);
    let plain = plain_server();
    let o = run(&scenario, &plain, Some(FAULT_SECRET), &dir.join("a"));
    assert_refused(&o, "no chatstorm fault-control API");
    assert!(!dir.join("a").join("summary.json").exists(), "nothing ran");

    let (_mock, addr) = start_mock();
    let o = run(&scenario, &addr, Some("not-the-fault-secret"), &dir.join("b"));
    assert_refused(&o, "refused the fault secret");
    // The app secret is not the fault secret.
    let o = run(&scenario, &addr, Some(SECRET), &dir.join("c"));
    assert_refused(&o, "refused the fault secret");
    let o = run(&scenario, &addr, None, &dir.join("d"));
    assert_refused(&o, "no fault secret given");
    let _ = std::fs::remove_dir_all(&dir);
}
