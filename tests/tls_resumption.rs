//! TLS session resumption (`users.tls.resumption`, issue 13) against the TLS mock in this process
//! (stateless session tickets on): a reconnect storm with half the users resuming shows resumed
//! handshakes beside full ones in `summary.json`'s counters, and only the resuming users resume;
//! with resumption off, every handshake is full and no resumed counter appears.

#[path = "support/runs.rs"]
mod runs;

use chatstorm::exit::Outcome;
use chatstorm::report::summary::RunSummary;
use runs::{plan, summary, target_options, temp, tls_mock};

/// 20 JS users over wss; every socket dropped by the server at 3 s, so each user reconnects once.
fn scenario(resumption: &str) -> String {
    format!(
        r#"
name: tls-resumption
seed: 21
target: {{}}
users:
  count: 20
  id: "res-{{index}}"
  profile: js
  token: {{ttl: 10m, mode: provider}}
  tls: {{resumption: {resumption}}}
load:
  - ramp: {{to: 20, over: 1s}}
  - hold: 6s
timeline:
  - at: 3s
    drop_sockets: {{fraction: 1.0, side: server, close: 1011}}
"#
    )
}

async fn run(name: &str, resumption: &str) -> (Outcome, RunSummary) {
    let dir = temp("tlsres", name);
    let (mock, cfg, ca) = tls_mock(&dir, &["127.0.0.1", "localhost"], false).await;
    let file = dir.join("s.yaml");
    std::fs::write(&file, scenario(resumption)).unwrap();
    let out = dir.join("out");
    let plan = plan(&file, target_options(&mock, &cfg, runs::ca(&ca)), &out);
    let outcome = chatstorm::commands::run(plan).await;
    mock.shutdown().await;
    let s = summary(&out);
    let _ = std::fs::remove_dir_all(&dir);
    (outcome, s)
}

fn counter(s: &RunSummary, name: &str) -> Option<u64> {
    s.metrics.counters.get(name).copied()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_the_users_resume_their_sessions_after_a_storm() {
    let (outcome, s) = run("half", "0.5").await;
    assert_eq!(outcome, Outcome::Passed, "{:?}", s.verdict.reasons);
    let connects = counter(&s, "connects").unwrap_or(0);
    let full = counter(&s, "tls_full_handshakes").unwrap_or(0);
    let resumed = counter(&s, "tls_resumed_handshakes").unwrap_or(0);
    assert!(connects >= 40, "every user connected twice: {connects}");
    assert_eq!(
        full + resumed,
        s.latency["connect.tls"].summary.count,
        "each handshake counted once"
    );
    // The 10 resuming users' reconnects resume (their first connects may too, once a ticket from
    // another resuming user is in the pool); the other 10 never do.
    assert!(resumed >= 10, "resumed {resumed}, full {full}");
    assert!(
        resumed <= 20,
        "only the resuming half resumes: resumed {resumed}, full {full}"
    );
    assert!(full >= 20, "the other half's connects are full: {full}");
    // Per profile too (one profile: the totals).
    assert_eq!(
        s.by_profile["js"].counters.get("tls_resumed_handshakes").copied(),
        Some(resumed)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_resumption_every_handshake_is_full() {
    let (outcome, s) = run("off", "off").await;
    assert_eq!(outcome, Outcome::Passed, "{:?}", s.verdict.reasons);
    assert_eq!(
        counter(&s, "tls_resumed_handshakes"),
        None,
        "a zero sparse counter is left out"
    );
    let full = counter(&s, "tls_full_handshakes").unwrap_or(0);
    assert!(full >= 40, "{full}");
    assert_eq!(full, s.latency["connect.tls"].summary.count);
}
