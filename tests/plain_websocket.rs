//! Plain WebSocket users (`users.kind: plain-websocket`) end to end: a handful of them run through
//! the real engine against a tiny tokio-tungstenite server on a free loopback port. One server
//! sends a first frame (every user connects, is measured and closes with 1000 at the end); the
//! other never does (every connect fails).

use chatstorm::api::run_scenario;
use chatstorm::report::summary::RunSummary;
use chatstorm::scenario;
use chatstorm::target::Target;
use futures_util::{SinkExt, StreamExt};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

const USERS: u64 = 20;

/// What the server saw: upgrades, and one permit per close frame with code 1000.
struct Seen {
    accepted: AtomicU64,
    closed_1000: tokio::sync::Semaphore,
}

/// Accepts WebSockets on 127.0.0.1:0; sends one text frame first when `greet`, then holds each
/// connection until the client closes.
async fn server(greet: bool) -> (String, Arc<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let seen = Arc::new(Seen {
        accepted: AtomicU64::new(0),
        closed_1000: tokio::sync::Semaphore::new(0),
    });
    let s = seen.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let s = s.clone();
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                s.accepted.fetch_add(1, Ordering::Relaxed);
                if greet && ws.send(Message::text(r#"{"type":"health.check"}"#)).await.is_err() {
                    return;
                }
                while let Some(Ok(m)) = ws.next().await {
                    if let Message::Close(Some(f)) = m {
                        if u16::from(f.code) == 1000 {
                            s.closed_1000.add_permits(1);
                        }
                        break;
                    }
                }
            });
        }
    });
    (format!("ws://{addr}/connect"), seen)
}

async fn run(url: &str, name: &str) -> RunSummary {
    let yaml = format!(
        "name: {name}\nusers: {{count: {USERS}, kind: plain-websocket}}\n\
         load:\n  - ramp: {{to: {USERS}, over: 10ms}}\n  - hold: 1s\n"
    );
    let s = scenario::parse("plain.yaml", &yaml).expect("the scenario validates");
    let target = Target::plain(url).expect("a ws:// target");
    let dir = std::env::temp_dir().join(format!("chatstorm-test-plain-{name}-{}", std::process::id()));
    let summary = run_scenario(s, Some(target), dir.clone())
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let _ = std::fs::remove_dir_all(&dir);
    summary
}

fn counter(s: &RunSummary, name: &str) -> u64 {
    s.metrics.counters.get(name).copied().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_users_connect_hold_and_close_1000() {
    let (url, seen) = server(true).await;
    let r = run(&url, "greeting").await;
    assert_eq!(counter(&r, "connects"), USERS, "{:?}", r.metrics.counters);
    assert_eq!(counter(&r, "connect_failures"), 0);
    assert_eq!(counter(&r, "disconnects"), 0);
    let connect = r.latency.get("connect.ws").expect("connect.ws is measured");
    assert_eq!(connect.summary.count, USERS);
    assert_eq!(r.verdict.exit_code, 0, "{:?}", r.verdict);
    assert_eq!(r.run.target, url);
    assert_eq!(seen.accepted.load(Ordering::Relaxed), USERS);
    // The closes are sent before the run returns; the server's tasks may still be reading them.
    let closes = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        seen.closed_1000.acquire_many(USERS as u32),
    )
    .await;
    assert!(
        matches!(closes, Ok(Ok(_))),
        "every user closes with 1000; the server saw {}",
        seen.closed_1000.available_permits()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_first_frame_every_connect_fails() {
    let (url, seen) = server(false).await;
    let r = run(&url, "silent").await;
    assert_eq!(counter(&r, "connects"), 0, "{:?}", r.metrics.counters);
    assert_eq!(counter(&r, "connect_failures"), USERS);
    assert!(r.latency.get("connect.ws").is_none_or(|h| h.summary.count == 0));
    assert_eq!(
        seen.accepted.load(Ordering::Relaxed),
        USERS,
        "the upgrades themselves succeeded"
    );
}
