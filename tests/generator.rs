//! Generator honesty: a harness that runs out of descriptors says so with figures and exits 4.
//!
//! The binary runs as a child process with its descriptor limit (soft and hard) cut to 96, so
//! it cannot raise it; 300 users then cannot all have a socket. The run must finish, count the
//! failed sockets as the generator's own (not the server's), and exit 4 with the reason named.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

const SCENARIO: &str = "\
name: out-of-descriptors
seed: 3
target: {}
users:
  count: 300
  id: \"fd-{index}\"
  profile: js
channels: {count: 30, members: 10}
load:
  - ramp: {to: 300, over: 2s}
  - hold: 2s
";

#[test]
fn running_out_of_descriptors_makes_the_run_invalid_with_exit_4() {
    let dir = std::env::temp_dir().join(format!("chatstorm-test-fds-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let scenario = dir.join("scenario.yaml");
    std::fs::write(&scenario, SCENARIO).unwrap();
    let out = dir.join("run");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_chatstorm"));
    cmd.arg("run")
        .arg(&scenario)
        .arg("--out")
        .arg(&out)
        .args(["--format", "json,console", "--quiet"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    // SAFETY: setrlimit is async-signal-safe and touches only the child's own limits.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 96,
                rlim_max: 96,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("chatstorm starts");
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the run did not end within 120 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert_eq!(status.code(), Some(4), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let g = &summary["generator"];
    assert_eq!(g["saturated"], true, "{g}");
    assert!(g["resource_failures"].as_u64().unwrap() > 0, "{g}");
    assert!(g["fd_limit"].as_u64().unwrap() <= 96, "{g}");
    let reasons = summary["verdict"]["reasons"].to_string();
    assert!(reasons.contains("descriptors"), "the reason names the cause: {reasons}");
    assert!(stdout.contains("invalid"), "the console says so:\n{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}

const BUSY: &str = "\
name: harness-queue
seed: 5
target: {}
users:
  count: 150
  id: \"q-{index}\"
  profile: js
channels: {count: 15, members: 10}
load:
  - ramp: {to: 150, over: 1s}
  - hold: 6s
behaviour:
  typing: {every: 50ms}
  message: {every: 50ms}
";

/// A queue inside the harness is the generator's limit, never the server's latency: with one REST
/// slot (`CHATSTORM_REST_SLOTS=1`) 150 users typing and messaging every 50 ms queue for it. The run
/// must be invalid (exit 4) with `generator.queue` named, while `rest.*` keeps measuring only the
/// server's time (an in-process mock answers in milliseconds, far below the queue's wait).
#[test]
fn a_queue_in_the_harness_is_exit_4_and_stays_out_of_rest_latency() {
    let dir = std::env::temp_dir().join(format!("chatstorm-test-queue-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let scenario = dir.join("scenario.yaml");
    std::fs::write(&scenario, BUSY).unwrap();
    let out = dir.join("run");
    let res = std::process::Command::new(env!("CARGO_BIN_EXE_chatstorm"))
        .arg("run")
        .arg(&scenario)
        .arg("--out")
        .arg(&out)
        .args(["--format", "json,console", "--quiet"])
        .env("CHATSTORM_REST_SLOTS", "1")
        .output()
        .expect("chatstorm runs");
    let console = String::from_utf8_lossy(&res.stdout);
    assert_eq!(
        res.status.code(),
        Some(4),
        "{console}\n{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let reasons = s["generator"]["reasons"].to_string();
    assert!(reasons.contains("generator.queue"), "{reasons}");
    assert!(
        console.contains("generator.queue"),
        "named on the console too: {console}"
    );
    let queue_p99 = s["generator"]["generator_queue_p99_us"].as_u64().unwrap();
    let rest_p50 = s["latency"]["rest.message"]["summary"]["p50_us"].as_u64().unwrap();
    assert!(queue_p99 > 25_000, "the harness queued: {queue_p99} µs");
    assert!(
        rest_p50 * 4 < queue_p99,
        "rest.message p50 {rest_p50} µs must be the server's time, not the {queue_p99} µs queue"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
