//! The official Stream Chat JS SDK (npm `stream-chat`, pinned by `tests/js/package-lock.json`) driven
//! against the mock on loopback: starts the mock in-process on `127.0.0.1:0`, installs the pinned npm
//! packages when they are missing or stale, runs `tests/js/sdk_against_mock.mjs` under Node with a
//! bound on its run time, and fails with the script's output unless every SDK step passed. It runs
//! twice: over plain http/ws, and over https/wss with the SDK trusting the mock's self-signed
//! certificate through `NODE_EXTRA_CA_CERTS`.
//!
//! Needs `node` (18 or newer) and `npm` on the PATH; without them the test fails and says so, since
//! CI must really run it.

#[path = "../../tests/support/process.rs"]
mod process;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use process::{STAMP_FILE, run_bounded};

use chatstorm_mock::MockConfig;

/// Bound on the whole Node run (five steps take about 15 s; each step bounds itself at 20 s).
const NODE_RUN_LIMIT: Duration = Duration::from_secs(120);
/// Bound on `npm ci` (a cold install of the 54 packages takes a few seconds).
const NPM_CI_LIMIT: Duration = Duration::from_secs(300);

/// The two runs (plain and TLS) one after the other: each is timed, and Node beside Node on a
/// small machine makes the timing steps flaky.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn official_js_sdk_drives_the_mock() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    drive_the_mock(None);
}

/// The same script over `https://` and `wss://`: the mock serves a self-signed certificate made
/// at start, which Node trusts through `NODE_EXTRA_CA_CERTS` (the SDK's REST calls, its
/// WebSocket, and the script's own fetches of the fault API alike).
#[test]
fn official_js_sdk_drives_the_mock_over_tls() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let made = chatstorm_mock::SelfSigned::default()
        .make()
        .expect("a self-signed certificate");
    let ca = std::env::temp_dir().join(format!("chatstorm-js-sdk-ca-{}.pem", std::process::id()));
    fs::write(&ca, &made.cert_pem).expect("write the CA file");
    drive_the_mock(Some((made.tls, ca.clone())));
    let _ = fs::remove_file(&ca);
}

/// Starts the mock (serving TLS with `tls`, whose certificate is the PEM file given), runs the
/// script against it, and checks every step passed.
fn drive_the_mock(tls: Option<(chatstorm_mock::MockTls, PathBuf)>) {
    let js_dir = js_dir();
    if let Err(err) = ensure_npm_packages(&js_dir) {
        panic!("JS SDK test setup failed: {err}");
    }

    let (tls, ca) = tls.map_or((None, None), |(t, ca)| (Some(t), Some(ca)));
    let config = MockConfig {
        api_key: "js_sdk_test_key".to_owned(),
        secret: "js_sdk_test_secret_0123456789".to_owned(),
        health_interval: Duration::from_secs(2),
        longpoll_hold: Duration::from_secs(5),
        tls,
        ..MockConfig::default()
    };
    let (api_key, secret) = (config.api_key.clone(), config.secret.clone());
    let fault_secret = config.fault_secret.clone();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime for the mock");
    let mock = runtime
        .block_on(chatstorm_mock::start(config))
        .expect("start the mock on 127.0.0.1:0");
    let base_url = mock.base_url();

    let mut command = Command::new("node");
    command
        .arg("sdk_against_mock.mjs")
        .current_dir(&js_dir)
        // Either variable makes the SDK ignore `baseURL` (PROTOCOL.md, JS SDK section, point 4).
        .env_remove("STREAM_LOCAL_TEST_RUN")
        .env_remove("STREAM_LOCAL_TEST_HOST")
        .env_remove("NODE_OPTIONS")
        // The script's knobs for manual runs; this test always runs every step with its defaults.
        .env_remove("CHATSTORM_JS_ONLY")
        .env_remove("CHATSTORM_JS_WAIT_MS")
        .env_remove("CHATSTORM_JS_STEP_MS")
        .env("CHATSTORM_MOCK_URL", &base_url)
        .env("CHATSTORM_API_KEY", &api_key)
        .env("CHATSTORM_API_SECRET", &secret)
        .env("CHATSTORM_FAULT_SECRET", &fault_secret)
        .env_remove("NODE_EXTRA_CA_CERTS")
        .env_remove("NODE_TLS_REJECT_UNAUTHORIZED");
    if let Some(ca) = &ca {
        assert!(base_url.starts_with("https://"), "{base_url}");
        command.env("NODE_EXTRA_CA_CERTS", ca);
    }
    let run = run_bounded(command, NODE_RUN_LIMIT);

    let stopped = runtime.block_on(async { tokio::time::timeout(Duration::from_secs(10), mock.shutdown()).await });
    runtime.shutdown_timeout(Duration::from_secs(1));

    let run = match run {
        Ok(run) => run,
        Err(err) => panic!("could not run node sdk_against_mock.mjs: {err}"),
    };
    println!("{}", run.stdout);
    assert!(
        run.success,
        "the JS SDK steps failed ({}):\n--- stdout ---\n{}\n--- stderr ---\n{}",
        run.status, run.stdout, run.stderr
    );
    assert!(
        run.stdout.contains("5 passed, 0 failed"),
        "the script did not run all five steps:\n{}",
        run.stdout
    );
    assert!(
        stopped.is_ok(),
        "the mock did not shut down within 10 s of its shutdown signal"
    );
}

/// `tests/js` at the workspace root.
fn js_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("tests")
        .join("js")
}

/// Installs the packages pinned by `package-lock.json` with `npm ci` unless `node_modules` already
/// holds exactly that lock file's install. Parallel test processes (other worktrees, a second
/// `cargo test`) serialise on an exclusive lock on `tests/js/.npm-install.lock`.
fn ensure_npm_packages(js_dir: &Path) -> Result<(), String> {
    let how = "the JS SDK test needs Node.js 18+ and npm on the PATH (Debian: `apt-get install nodejs npm`)";
    let node = process::tool_version("node", how)?;
    process::tool_version("npm", how)?;
    let major: u32 = node
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .ok_or_else(|| format!("cannot read the Node.js version from `node --version`: {node}"))?;
    if major < 18 {
        return Err(format!(
            "Node.js {node} is too old: stream-chat needs Node.js 18 or newer"
        ));
    }

    let wanted = process::fingerprint(
        &[&js_dir.join("package.json"), &js_dir.join("package-lock.json")],
        &node,
    )?;
    let _lock = process::exclusive_lock(&js_dir.join(".npm-install.lock"))?;

    let stamp = js_dir.join("node_modules").join(STAMP_FILE);
    if fs::read_to_string(&stamp).is_ok_and(|s| s == wanted) {
        return Ok(());
    }
    let mut npm = Command::new("npm");
    npm.args(["ci", "--no-audit", "--no-fund", "--ignore-scripts"])
        .current_dir(js_dir)
        .env("npm_config_update_notifier", "false");
    let run = run_bounded(npm, NPM_CI_LIMIT).map_err(|e| format!("could not run npm ci: {e}"))?;
    if !run.success {
        return Err(format!(
            "`npm ci` in {} failed ({}):\n{}\n{}",
            js_dir.display(),
            run.status,
            run.stdout,
            run.stderr
        ));
    }
    fs::write(&stamp, &wanted).map_err(|e| format!("cannot write {}: {e}", stamp.display()))?;
    Ok(())
}
