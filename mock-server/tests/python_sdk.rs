//! The official Stream Chat Python server SDK (PyPI `stream-chat`, every package pinned by
//! `tests/python/requirements.txt`) driven against the mock the way a chat app's backend drives the
//! real service: starts the mock in-process on `127.0.0.1:0`, installs the pinned packages into a
//! venv under `target/` when missing or stale, runs `tests/python/server_sdk_against_mock.py` in
//! two bounded phases around two WebSocket clients (ann watches the channel the script made, bob
//! is connected without watching it), and checks both the script's own answers and the events the
//! two clients received.
//!
//! Needs `python3` (3.8 or newer) with the `venv` module; without it the test fails and says so,
//! since CI must really run it.

#[path = "../../tests/support/process.rs"]
mod process;
#[path = "../../tests/support/python.rs"]
mod python;
#[path = "mock/util.rs"]
mod util;

use std::path::{Path, PathBuf};
use std::time::Duration;

use process::{Run, run_bounded};

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// Bound on each phase of the script (the calls phase makes about 60 requests).
const PHASE_LIMIT: Duration = Duration::from_secs(120);
/// How long the clients wait for their last event after the script ended.
const EVENTS_LIMIT: Duration = Duration::from_secs(20);

#[test]
fn official_python_server_sdk_drives_the_mock() {
    let venv = python::venv(&python_dir().join("requirements.txt"), &install_root().join("venv"))
        .unwrap_or_else(|err| panic!("Python SDK test setup failed: {err}"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime for the mock");
    let mock = runtime.block_on(util::start());
    let run = format!("py{}", std::process::id());
    let user = |n: &str| format!("{run}-{n}");
    let room = format!("{run}-room");
    let room_cid = format!("messaging:{room}");

    let setup = script(&venv, &mock.base_url(), &run, "setup");
    assert_phase("setup", &setup, 5);

    // ann watches the room with presence; bob is connected and watches nothing.
    let (ann_ws, bob_ws) = runtime.block_on(async {
        let (ann_ws, first) =
            util::connect_details(&mock, &user("ann"), json!({"id": user("ann"), "name": "Ann Rowe"})).await;
        let conn = first["connection_id"].as_str().expect("connection_id").to_owned();
        let body = json!({"state": true, "watch": true, "presence": true});
        let r = util::rest(
            &mock,
            "POST",
            &format!("/channels/messaging/{room}/query"),
            &user("ann"),
            Some(&conn),
            body,
        )
        .await;
        assert_eq!(r.status, 201, "ann watches the room: {}", r.body);
        assert_eq!(r.body["channel"]["created_by"]["id"], user("dave"), "{}", r.body);
        let (bob_ws, _) = util::connect_details(&mock, &user("bob"), json!({"id": user("bob"), "name": "Bob"})).await;
        (ann_ws, bob_ws)
    });
    let ann = runtime.spawn(collect(ann_ws, room_cid.clone(), "channel.deleted"));
    let bob = runtime.spawn(collect(bob_ws, room_cid.clone(), "notification.channel_deleted"));

    let calls = script(&venv, &mock.base_url(), &run, "calls");
    let ann = runtime.block_on(ann).expect("ann's reader");
    let bob = runtime.block_on(bob).expect("bob's reader");
    let stopped = runtime.block_on(async { tokio::time::timeout(Duration::from_secs(10), mock.shutdown()).await });
    runtime.shutdown_timeout(Duration::from_secs(1));
    assert_phase("calls", &calls, 24);

    let kinds = |evs: &[Value]| {
        evs.iter()
            .map(|e| e["type"].as_str().unwrap_or("?").to_owned())
            .collect::<Vec<_>>()
    };
    // What ann sees of the room, call by call: update; add bob; partial update; eve's message and
    // read; eve's second message; remove bob; carl deleted; bob added again; delete.
    assert_eq!(
        kinds(&ann),
        [
            "channel.updated",
            "member.added",
            "channel.updated",
            "channel.updated",
            "message.new",
            "message.read",
            "member.removed",
            "channel.updated",
            "message.new",
            "user.deleted",
            "member.added",
            "channel.updated",
            "channel.deleted",
        ],
        "ann's events: {ann:#?}"
    );
    let renamed = &ann[0];
    assert_eq!(renamed["channel"]["name"], "Renamed", "{renamed}");
    assert_eq!(renamed["channel"]["color"], "blue", "{renamed}");
    assert_eq!(renamed["channel_member_count"], 2, "{renamed}");
    assert_eq!(
        renamed["channel"]["members"].as_array().map(Vec::len),
        Some(2),
        "{renamed}"
    );
    let added = &ann[1];
    assert_eq!(added["member"]["user_id"], user("bob"), "{added}");
    assert_eq!(added["member"]["user"]["id"], user("bob"), "{added}");
    assert_eq!(added["user"]["id"], user("bob"), "{added}");
    assert_eq!(ann[2]["channel_member_count"], 3, "{}", ann[2]);
    assert_eq!(ann[3]["channel"]["color"], "red", "{}", ann[3]);
    assert!(ann[3]["channel"].get("name").is_none(), "{}", ann[3]);
    assert_eq!(ann[4]["message"]["user"]["id"], user("eve"), "{}", ann[4]);
    assert_eq!(
        ann[5]["user"]["id"],
        user("eve"),
        "a non-member's server-side read: {}",
        ann[5]
    );
    assert_eq!(ann[6]["user"]["id"], user("bob"), "{}", ann[6]);
    assert_eq!(ann[7]["channel_member_count"], 2, "{}", ann[7]);
    let deleted = &ann[9];
    assert_eq!(deleted["user"]["id"], user("carl"), "{deleted}");
    assert!(deleted["user"]["deleted_at"].is_string(), "{deleted}");
    let gone = &ann[12];
    assert_eq!(gone["cid"], room_cid.as_str(), "{gone}");
    assert!(gone["channel"]["deleted_at"].is_string(), "{gone}");

    // bob, a member part of the time and never watching: notifications only.
    assert_eq!(
        kinds(&bob),
        [
            "notification.added_to_channel",
            "notification.message_new",
            "notification.removed_from_channel",
            "notification.added_to_channel",
            "notification.channel_deleted",
        ],
        "bob's events: {bob:#?}"
    );
    for e in &bob {
        assert_eq!(e["channel"]["cid"], room_cid.as_str(), "{e}");
    }
    assert_eq!(bob[0]["member"]["user_id"], user("bob"), "{}", bob[0]);
    assert!(bob[4]["channel"]["deleted_at"].is_string(), "{}", bob[4]);
    assert!(
        stopped.is_ok(),
        "the mock did not shut down within 10 s of its shutdown signal"
    );
}

/// Events of one socket about `cid` (and `user.deleted`), in order, until `last` arrives or the
/// socket stays quiet for `EVENTS_LIMIT`.
async fn collect(mut ws: util::Ws, cid: String, last: &'static str) -> Vec<Value> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + PHASE_LIMIT + EVENTS_LIMIT;
    loop {
        let frame = match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => t,
            Ok(Some(Ok(_))) => continue,
            _ => return out,
        };
        let Ok(v) = serde_json::from_str::<Value>(&frame) else {
            continue;
        };
        let kind = v["type"].as_str().unwrap_or("").to_owned();
        let ours = v["cid"] == cid.as_str() || kind == "user.deleted";
        if !ours || kind.starts_with("user.watching") {
            continue;
        }
        out.push(v);
        if kind == last {
            return out;
        }
    }
}

fn assert_phase(name: &str, run: &Result<Run, String>, steps: usize) {
    let run = match run {
        Ok(r) => r,
        Err(e) => panic!("could not run the {name} phase: {e}"),
    };
    println!("--- {name} ---\n{}", run.stdout);
    assert!(
        run.success,
        "the Python SDK's {name} phase failed ({}):\n--- stdout ---\n{}\n--- stderr ---\n{}",
        run.status, run.stdout, run.stderr
    );
    let want = format!("{steps} passed, 0 failed");
    assert!(
        run.stdout.lines().any(|l| l == want),
        "the {name} phase did not run all {steps} steps:\n{}",
        run.stdout
    );
}

fn script(venv: &python::Venv, base_url: &str, run: &str, phase: &str) -> Result<Run, String> {
    let mut command = venv.command();
    command
        .arg("server_sdk_against_mock.py")
        .arg(phase)
        .current_dir(python_dir())
        // The SDK reads these over its constructor arguments' defaults.
        .env_remove("STREAM_CHAT_URL")
        .env_remove("STREAM_CHAT_TIMEOUT")
        .env_remove("PYTHONPATH")
        .env("PYTHONUNBUFFERED", "1")
        .env("CHATSTORM_MOCK_URL", base_url)
        .env("CHATSTORM_API_KEY", util::KEY)
        .env("CHATSTORM_API_SECRET", util::SECRET)
        .env("CHATSTORM_RUN", run);
    run_bounded(command, PHASE_LIMIT)
}

/// `mock-server/tests/python`.
fn python_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("python")
}

/// `<target>/python-sdk`: `CARGO_TARGET_DIR` when set, else the workspace's `target/`.
fn install_root() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("target"));
    target.join("python-sdk")
}
