//! Faults in the target and in the harness (issue 18): a run never passes by accident and
//! leaves no process behind. Each test runs the `chatstorm` binary against a target on loopback
//! (the bundled mock in its own process, or a small fake server bound to port 0) with a few
//! users for a few seconds, and reads its exit code, `summary.json` and `junit.xml`.
//!
//! Where a fault happens at a time (the target killed 3 s into the run), the wait is the
//! scenario's timing, not synchronisation: every wait for a result polls a condition under a
//! deadline.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};

const API_KEY: &str = "faults-key";
const SECRET: &str = "faults-secret-0123456789";

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("chatstorm-faults-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// A scenario of `users` android users (no long-poll fallback: a user either connects over
/// WebSocket or not) for `secs` seconds, with extra top-level YAML.
fn scenario(dir: &Path, users: u32, secs: u32, extra: &str) -> PathBuf {
    let path = dir.join("scenario.yaml");
    let text = format!(
        "name: faults\nseed: 5\ntarget: {{}}\nusers:\n  count: {users}\n  id: \"f-{{index}}\"\n  profile: android\n\
         channels: {{count: {}, members: 5}}\nload:\n  - ramp: {{to: {users}, over: 1s}}\n  - hold: {}s\n{extra}",
        (users / 5).max(1),
        secs - 1
    );
    std::fs::write(&path, text).expect("scenario");
    path
}

/// `chatstorm run SCENARIO --out DIR/run ...`, stdout and stderr into files (never a full pipe).
fn chatstorm_run(dir: &Path, scenario: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_chatstorm"));
    cmd.arg("run")
        .arg(scenario)
        .arg("--out")
        .arg(dir.join("run"))
        .args(["--format", "console,json,junit,html", "--quiet"])
        .args(extra)
        .stdout(std::fs::File::create(dir.join("stdout")).expect("stdout file"))
        .stderr(std::fs::File::create(dir.join("stderr")).expect("stderr file"))
        .kill_on_drop(true);
    cmd
}

fn target_args(addr: &str) -> Vec<String> {
    vec![
        "--target".into(),
        format!("http://{addr}"),
        "--api-key".into(),
        API_KEY.into(),
        "--secret".into(),
        SECRET.into(),
    ]
}

async fn wait(child: &mut Child, limit: Duration) -> i32 {
    match tokio::time::timeout(limit, child.wait()).await {
        Ok(Ok(s)) => s.code().unwrap_or_else(|| panic!("chatstorm ended by a signal: {s}")),
        Ok(Err(e)) => panic!("waiting for chatstorm: {e}"),
        Err(_) => {
            let _ = child.start_kill();
            panic!("chatstorm did not finish within {limit:?}")
        }
    }
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_default()
}

fn summary(dir: &Path) -> Value {
    let text = read(dir, "run/summary.json");
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("run/summary.json is not JSON ({e}); stderr:\n{}", read(dir, "stderr")))
}

fn check<'a>(s: &'a Value, name: &str) -> &'a Value {
    s["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no check {name} in {}", s["checks"]))
}

/// The JUnit of a failed run: its verdict testcase fails.
fn assert_junit_not_green(dir: &Path) {
    let junit = read(dir, "run/junit.xml");
    let verdict = junit
        .split("<testsuite name=\"verdict\"")
        .nth(1)
        .unwrap_or_else(|| panic!("no verdict suite in junit.xml:\n{junit}"));
    let verdict = verdict.split("</testsuite>").next().unwrap_or("");
    assert!(
        verdict.contains("failures=\"1\"") && verdict.contains("<failure"),
        "the verdict testcase must fail:\n{junit}"
    );
}

/// The bundled mock in its own process (`chatstorm mock`), on `listen`; its address.
async fn start_mock(listen: &str) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chatstorm"))
        .args(["mock", "--listen", listen, "--api-key", API_KEY, "--secret", SECRET])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("mock starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("the mock prints its address")
        .expect("read")
        .expect("a line");
    let addr = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("http://"))
        .expect("an address")
        .to_owned();
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, addr)
}

fn sigkill(child: &Child) {
    let pid = child.id().expect("running") as libc::pid_t;
    // SAFETY: a child we spawned and have not reaped.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_killed_mid_run_is_exit_5_named_with_its_time() {
    let dir = scratch("killed");
    let (mut mock, addr) = start_mock("127.0.0.1:0").await;
    let sc = scenario(&dir, 40, 9, "");
    let mut run = chatstorm_run(&dir, &sc, &[])
        .args(target_args(&addr))
        .spawn()
        .expect("run");
    // The fault: the target dies 3 s into the run.
    tokio::time::sleep(Duration::from_secs(3)).await;
    sigkill(&mock);
    let _ = mock.wait().await;
    let code = wait(&mut run, Duration::from_secs(60)).await;
    let s = summary(&dir);
    assert_eq!(code, 5, "{}", read(&dir, "stdout"));
    assert_eq!(s["verdict"]["outcome"], "target died during the run");
    let died = s["verdict"]["reasons"]
        .as_array()
        .and_then(|r| {
            r.iter()
                .filter_map(Value::as_str)
                .find(|r| r.starts_with("target died at"))
        })
        .unwrap_or_else(|| panic!("no reason names the death: {}", s["verdict"]));
    let at: f64 = died["target died at ".len()..]
        .split('s')
        .next()
        .and_then(|t| t.parse().ok())
        .expect("a time");
    assert!((2.0..6.0).contains(&at), "died at {at}s, killed at 3s");
    assert_eq!(check(&s, "target_reachable")["status"], "failed");
    assert!(s["target_health"]["outages"][0]["to_ms"].is_null());
    assert!(read(&dir, "stdout").contains("target died at"));
    assert_junit_not_green(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_restarted_empty_fails_the_state_check() {
    let dir = scratch("restarted");
    let (mut mock, addr) = start_mock("127.0.0.1:0").await;
    let sc = scenario(&dir, 30, 9, "");
    let mut run = chatstorm_run(&dir, &sc, &[])
        .args(target_args(&addr))
        .spawn()
        .expect("run");
    tokio::time::sleep(Duration::from_secs(3)).await;
    sigkill(&mock);
    let _ = mock.wait().await;
    // The same address, nothing in it: users reconnect to a blank server.
    let (_mock2, addr2) = start_mock(&addr).await;
    assert_eq!(addr2, addr);
    let code = wait(&mut run, Duration::from_secs(60)).await;
    let s = summary(&dir);
    assert_ne!(code, 0, "{}", read(&dir, "stdout"));
    let state = check(&s, "state_kept");
    assert_eq!(state["status"], "failed", "{state}");
    // Users re-create their channels by watching them, each with only itself as member: the
    // channels may be back, the memberships setup made are not.
    assert!(
        s["state"]["memberships_missing"].as_u64().unwrap_or(0) > 0,
        "{}",
        s["state"]
    );
    assert!(
        s["verdict"]["reasons"].to_string().contains("check state_kept failed"),
        "{}",
        s["verdict"]
    );
    assert_junit_not_green(&dir);
}

/// A fake target: every HTTP request is answered by `answer(head)`; requests that ask for a
/// WebSocket upgrade are answered 101 with a correct accept key and then `garbage` bytes.
async fn fake_target(answer: fn(&str) -> Vec<u8>) -> String {
    fake_target_with(answer, true).await
}

/// As [`fake_target`]; with `upgrade_101` false, upgrade requests get `answer` like the rest.
async fn fake_target_with(answer: fn(&str) -> Vec<u8>, upgrade_101: bool) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    // Read one request head (and its body by content-length), answer, repeat.
                    let mut chunk = [0u8; 8192];
                    let head_end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                    let len = head
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    while buf.len() < head_end + len {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    buf.drain(..head_end + len);
                    let upgrade = head.lines().find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("sec-websocket-key").then(|| v.trim().to_owned())
                    });
                    if let Some(key) = upgrade.filter(|_| upgrade_101) {
                        let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
                        let resp = format!(
                            "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: {accept}\r\n\r\n"
                        );
                        let _ = sock.write_all(resp.as_bytes()).await;
                        let _ = sock.write_all(&noise(4096, 11)).await;
                        // Hold the socket open: the client decides what garbage means.
                        let _ = sock.read(&mut chunk).await;
                        return;
                    }
                    if sock.write_all(&answer(&head)).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// Seeded bytes that are neither UTF-8 text nor JSON.
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8 | 0x80
        })
        .collect()
}

fn http(status: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\ncontent-length: {}\r\n\r\n", body.len()).into_bytes();
    out.extend_from_slice(body);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_answering_500_at_setup_is_exit_5_with_a_short_body() {
    let addr = fake_target(|head| {
        if head.starts_with("GET /hi") {
            http("200 OK", b"{}")
        } else {
            // 10 KB of error page: the message must carry the status and at most 200 bytes of it.
            let mut body = b"<html>internal error ".to_vec();
            body.extend(std::iter::repeat_n(b'E', 10_000));
            http("500 Internal Server Error", &body)
        }
    })
    .await;
    let dir = scratch("setup500");
    let sc = scenario(&dir, 10, 3, "");
    let mut run = chatstorm_run(&dir, &sc, &[])
        .args(target_args(&addr))
        .spawn()
        .expect("run");
    let code = wait(&mut run, Duration::from_secs(60)).await;
    let stderr = read(&dir, "stderr");
    assert_eq!(code, 5, "{stderr}");
    assert!(
        stderr.contains("HTTP 500") && stderr.contains("<html>internal error"),
        "{stderr}"
    );
    let e_run = stderr.matches('E').count();
    assert!(
        e_run <= 200,
        "the body is cut to 200 bytes, got {} bytes of it:\n{stderr}",
        e_run
    );
    assert!(stderr.len() < 600, "one short message, got {} bytes", stderr.len());
    // The run never started, and its JUnit says so.
    assert_junit_not_green(&dir);
    assert_eq!(summary(&dir)["verdict"]["exit_code"], 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_answering_http_garbage_is_reported_as_such() {
    let addr = fake_target(|_| http("200 OK", &noise(3000, 7))).await;
    let dir = scratch("garbage-http");
    let sc = scenario(&dir, 10, 3, "");
    let mut run = chatstorm_run(&dir, &sc, &[])
        .args(target_args(&addr))
        .spawn()
        .expect("run");
    let code = wait(&mut run, Duration::from_secs(60)).await;
    let stderr = read(&dir, "stderr");
    assert_eq!(code, 5, "{stderr}");
    assert!(stderr.contains("HTTP 200 with a body that is not JSON"), "{stderr}");
    assert!(stderr.len() < 800, "one short message, got {} bytes", stderr.len());
    assert_junit_not_green(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_sending_garbage_fails_the_run_and_its_junit() {
    // REST answers an empty JSON object (setup succeeds); every WebSocket sends random bytes.
    let addr = fake_target(|_| http("201 Created", b"{}")).await;
    let dir = scratch("garbage-ws");
    let sc = scenario(&dir, 10, 5, "");
    let mut run = chatstorm_run(&dir, &sc, &[])
        .args(target_args(&addr))
        .spawn()
        .expect("run");
    let code = wait(&mut run, Duration::from_secs(60)).await;
    let s = summary(&dir);
    assert_eq!(code, 5, "{}", read(&dir, "stdout"));
    assert_eq!(check(&s, "users_connected")["status"], "failed");
    assert!(
        s["verdict"]["reasons"].to_string().contains("ever connected"),
        "{}",
        s["verdict"]
    );
    // The REST answers were not a channel list either: what setup created cannot be found.
    assert_eq!(check(&s, "state_kept")["status"], "failed");
    assert_junit_not_green(&dir);
    // Named by its cause: every failed connect is a first frame that is not the protocol's
    // (random bytes after a valid 101), never "no failures".
    let kinds = s["errors"]["by_kind"].as_object().expect("errors.by_kind").clone();
    let total: u64 = kinds.values().filter_map(Value::as_u64).sum();
    assert!(total > 0, "{kinds:?}");
    assert!(kinds.keys().all(|k| k.starts_with("first_frame_not_")), "{kinds:?}");
    assert_eq!(
        total,
        s["metrics"]["counters"]["connect_failures"].as_u64().unwrap(),
        "{kinds:?}"
    );
    assert!(
        s["verdict"]["reasons"]
            .to_string()
            .contains("connect failures by kind: first_frame_not_")
    );
    assert!(read(&dir, "run/junit.xml").contains("connect failures by kind"));
    assert!(read(&dir, "run/report.html").contains("connect failures by kind: first_frame_not_"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_answering_upgrades_with_200_and_garbage_names_the_status() {
    // REST answers an empty JSON object (setup succeeds); every upgrade request is answered
    // 200 with random bytes: a non-101 answer, reported with its status.
    let addr = fake_target_with(
        |head| {
            if head.contains("GET /connect") {
                http("200 OK", &noise(3000, 9))
            } else {
                http("201 Created", b"{}")
            }
        },
        false,
    )
    .await;
    let dir = scratch("garbage-upgrade");
    let sc = scenario(&dir, 10, 4, "");
    let mut run = chatstorm_run(&dir, &sc, &["--workers", "2"])
        .args(target_args(&addr))
        .spawn()
        .expect("run");
    let code = wait(&mut run, Duration::from_secs(60)).await;
    let s = summary(&dir);
    assert_eq!(code, 5, "{}", read(&dir, "stdout"));
    // Merged across the two workers: the kinds add up to every failed connect.
    let kinds = s["errors"]["by_kind"].as_object().expect("errors.by_kind").clone();
    assert!(kinds.keys().all(|k| k == "http_200"), "{kinds:?}");
    let n = kinds["http_200"].as_u64().unwrap();
    assert!(n >= 10, "{kinds:?}");
    assert_eq!(n, s["metrics"]["counters"]["connect_failures"].as_u64().unwrap());
    assert!(
        read(&dir, "stdout").contains("connect failures by kind: http_200"),
        "{}",
        read(&dir, "stdout")
    );
    assert_junit_not_green(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_threshold_with_no_samples_is_no_data_never_passed() {
    // No message behaviour: delivery.message has no samples, whatever its condition says.
    let dir = scratch("nodata");
    let sc = scenario(
        &dir,
        5,
        3,
        "thresholds:\n  delivery.message.p99: \"< 10s\"\n  connect.p99: \"< 10s\"\n",
    );
    let mut run = chatstorm_run(&dir, &sc, &[]).spawn().expect("run");
    let code = wait(&mut run, Duration::from_secs(60)).await;
    let s = summary(&dir);
    assert_eq!(code, 1, "{}", read(&dir, "stdout"));
    let t = &s["thresholds"][0];
    assert_eq!(t["metric"], "delivery.message.p99");
    assert_eq!(
        (t["passed"].as_bool(), t["no_data"].as_bool()),
        (Some(false), Some(true))
    );
    assert_eq!(t["observed_text"], "no data");
    assert_eq!(s["thresholds"][1]["passed"], true);
    assert!(read(&dir, "stdout").contains("NODATA delivery.message.p99"));
    let junit = read(&dir, "run/junit.xml");
    assert!(
        junit.contains("threshold delivery.message.p99 &lt; 10s has no data"),
        "{junit}"
    );
    assert!(read(&dir, "run/report.html").contains("no data"));
    assert_junit_not_green(&dir);
}

/// Waits until `path` exists (the run has started: the collector opened its `.hlog`).
async fn until_exists(path: &Path, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    while !path.exists() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every live descendant of `pid` (children, grandchildren), from `/proc`.
fn descendants(pid: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Some((ppid, state)) = stat(p)
            && state != 'Z'
        {
            parents.push((p, ppid));
        }
    }
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let me = out[i];
        out.extend(parents.iter().filter(|(_, pp)| *pp == me).map(|(p, _)| *p));
        i += 1;
    }
    out.remove(0);
    out
}

/// (parent pid, state) of a live process.
fn stat(pid: u32) -> Option<(u32, char)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 2..];
    let mut f = rest.split_whitespace();
    let state = f.next()?.chars().next()?;
    let ppid = f.next()?.parse().ok()?;
    Some((ppid, state))
}

fn alive(pid: u32) -> bool {
    stat(pid).is_some_and(|(_, s)| s != 'Z')
}

async fn until_gone(pids: &[u32], limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    while pids.iter().any(|p| alive(*p)) {
        if tokio::time::Instant::now() >= deadline {
            let left: Vec<u32> = pids.iter().copied().filter(|p| alive(*p)).collect();
            for p in &left {
                // SAFETY: processes this test started; leave none behind on failure either.
                unsafe { libc::kill(*p as libc::pid_t, libc::SIGKILL) };
            }
            panic!("still alive after {limit:?}: {left:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn sigterm(pid: u32) {
    // SAFETY: a child we spawned and have not reaped.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_run_and_writes_every_output() {
    let dir = scratch("sigterm");
    let sc = scenario(&dir, 20, 60, "");
    let mut run = chatstorm_run(&dir, &sc, &[]).spawn().expect("run");
    until_exists(&dir.join("run/metrics.hlog"), Duration::from_secs(30)).await;
    sigterm(run.id().expect("running"));
    let code = wait(&mut run, Duration::from_secs(30)).await;
    assert_eq!(code, 5, "{}", read(&dir, "stderr"));
    for f in ["summary.json", "junit.xml", "report.html", "metrics.hlog"] {
        assert!(dir.join("run").join(f).exists(), "{f} written");
    }
    let s = summary(&dir);
    assert_eq!(s["run"]["stop_reason"], "interrupted (SIGTERM)");
    assert!(read(&dir, "stdout").contains("verdict: target unreachable or interrupted (exit 5)"));
    assert_junit_not_green(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_exits_at_once_without_results() {
    let dir = scratch("second-signal");
    let sc = scenario(&dir, 20, 60, "");
    let mut run = chatstorm_run(&dir, &sc, &[]).spawn().expect("run");
    until_exists(&dir.join("run/metrics.hlog"), Duration::from_secs(30)).await;
    // Two different signals (two of the same may merge into one while pending): whichever the
    // harness takes second ends it at once, with 128 + its number.
    let pid = run.id().expect("running") as libc::pid_t;
    // SAFETY: a child we spawned and have not reaped.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
        libc::kill(pid, libc::SIGINT);
    }
    let code = wait(&mut run, Duration::from_secs(30)).await;
    assert!(code == 130 || code == 143, "exit {code}: {}", read(&dir, "stderr"));
    assert!(read(&dir, "stderr").contains("exiting now without writing results"));
    assert!(!dir.join("run/summary.json").exists());
}

/// `--workers 2`, one signal to the parent: the shards get it, stop, write; the parent merges.
async fn signal_with_workers(name: &str, sig: i32, reason: &str) {
    let dir = scratch(name);
    let sc = scenario(&dir, 20, 60, "");
    let mut run = chatstorm_run(&dir, &sc, &["--workers", "2"]).spawn().expect("run");
    let parent = run.id().expect("running");
    for i in 0..2 {
        until_exists(
            &dir.join(format!("run/shard-{i}/metrics.hlog")),
            Duration::from_secs(30),
        )
        .await;
    }
    let shards = descendants(parent);
    assert!(shards.len() >= 2, "two shards run: {shards:?}");
    // SAFETY: a child we spawned and have not reaped.
    unsafe { libc::kill(parent as libc::pid_t, sig) };
    let code = wait(&mut run, Duration::from_secs(30)).await;
    assert_eq!(code, 5, "{}", read(&dir, "stderr"));
    until_gone(&shards, Duration::from_secs(5)).await;
    for i in 0..2 {
        let shard: Value =
            serde_json::from_str(&read(&dir, &format!("run/shard-{i}/summary.json"))).expect("shard summary");
        assert_eq!(shard["run"]["stop_reason"], reason);
    }
    let s = summary(&dir);
    assert_eq!(s["run"]["shards"], 2);
    assert_eq!(s["run"]["interrupted"], true);
    assert!(dir.join("run/junit.xml").exists() && dir.join("run/report.html").exists());
    assert_junit_not_green(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_workers_reaches_the_shards_and_merges_their_outputs() {
    signal_with_workers("sigterm-workers", libc::SIGTERM, "interrupted (SIGTERM)").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_with_workers_reaches_the_shards_and_merges_their_outputs() {
    signal_with_workers("sigint-workers", libc::SIGINT, "interrupted (Ctrl-C)").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_turned_off_in_the_scenario_are_off_in_every_output() {
    // The opt-out works end to end: a run against a target that dies, with the two checks it
    // would fail turned off, is judged on the rest (and says the two are off).
    let dir = scratch("checks-off");
    let (mut mock, addr) = start_mock("127.0.0.1:0").await;
    let sc = scenario(&dir, 20, 6, "checks: {target_reachable: false, state_kept: false}\n");
    let mut run = chatstorm_run(&dir, &sc, &[])
        .args(target_args(&addr))
        .spawn()
        .expect("run");
    tokio::time::sleep(Duration::from_secs(2)).await;
    sigkill(&mock);
    let _ = mock.wait().await;
    let code = wait(&mut run, Duration::from_secs(60)).await;
    let s = summary(&dir);
    assert_eq!(code, 0, "{}", read(&dir, "stdout"));
    assert_eq!(check(&s, "target_reachable")["status"], "off");
    assert_eq!(check(&s, "state_kept")["status"], "off");
    assert_eq!(check(&s, "users_connected")["status"], "passed");
    assert!(read(&dir, "stdout").contains("off  check state_kept"));
    assert!(read(&dir, "run/junit.xml").contains("turned off in the scenario"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_the_parent_leaves_no_child_alive() {
    // Two shards, each with more users than its descriptor limit lets it serve in-process:
    // each starts its mock as a child process, so the tree is parent → shards → mocks.
    let dir = scratch("sigkill");
    let sc = scenario(&dir, 160, 60, "");
    let mut cmd = chatstorm_run(&dir, &sc, &["--workers", "2"]);
    // SAFETY: setrlimit is async-signal-safe and touches only the child's own limits.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 300,
                rlim_max: 300,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut run = cmd.spawn().expect("run");
    let parent = run.id().expect("running");
    for i in 0..2 {
        until_exists(
            &dir.join(format!("run/shard-{i}/metrics.hlog")),
            Duration::from_secs(30),
        )
        .await;
    }
    let tree = descendants(parent);
    assert!(tree.len() >= 4, "two shards and their two mocks: {tree:?}");
    sigkill(&run);
    let _ = run.wait().await;
    until_gone(&tree, Duration::from_secs(5)).await;
}
