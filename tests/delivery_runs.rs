//! Lost, duplicated and reordered deliveries in a load run are conformance failures with evidence:
//! a small scenario (`chatstorm run`, scaled down) against a mock that delivers every event
//! twice, drops every second push, or swaps each connection's events in pairs fails its
//! DELIVERY rule (exit 3), and the same scenario against a correct mock passes every DELIVERY
//! rule it checked.

use chatstorm::api::run_scenario;
use chatstorm::conformance::Verdict;
use chatstorm::report::summary::{ConformanceRule, RunSummary};
use chatstorm::scenario;
use std::sync::OnceLock;

/// One run at a time: they share two cores.
fn turn() -> &'static tokio::sync::Mutex<()> {
    static TURN: OnceLock<tokio::sync::Mutex<()>> = OnceLock::new();
    TURN.get_or_init(|| tokio::sync::Mutex::new(()))
}

/// 40 users in ten channels of four, each typing, marking read and sending a message every
/// 2 to 3 s for 14 s: enough traffic that each receiver hears from the server well past the
/// tracker's 5 s grace, so a missing delivery is provably lost.
const SCENARIO: &str = r#"
name: delivery
target: {}
users: {count: 40, id: "dlv-{index}", profile: js, token: {mode: provider}}
channels: {count: 10, members: 4}
load:
  - ramp: {to: 40, over: 2s}
  - hold: 14s
behaviour:
  typing: {every: 2s}
  read: {every: 3s}
  message: {every: 2s}
conformance:
  watch: ["DELIVERY-*"]
"#;

async fn run_against(violation: Option<&str>) -> RunSummary {
    let config = chatstorm::conformance::embedded_mock_config();
    let mock = chatstorm_mock::start(config.clone()).await.expect("mock starts");
    if let Some(v) = violation {
        mock.control
            .set_violation(chatstorm_mock::Violation::from_name(v).expect("violation"), true);
    }
    let target = chatstorm::conformance::mock_target(&mock.base_url(), &config).expect("target");
    let s = scenario::parse("delivery.yaml", SCENARIO).expect("scenario");
    let _turn = turn().lock().await;
    let dir = std::env::temp_dir().join(format!(
        "chatstorm-test-delivery-{}-{}",
        violation.unwrap_or("none"),
        std::process::id()
    ));
    let r = run_scenario(s, Some(target), dir.clone()).await.expect("run");
    let _ = std::fs::remove_dir_all(&dir);
    mock.shutdown().await;
    r
}

fn rule<'a>(r: &'a RunSummary, id: &str) -> Option<&'a ConformanceRule> {
    r.conformance.as_ref()?.rules.iter().find(|x| x.id == id)
}

fn counter(s: &RunSummary, name: &str) -> u64 {
    s.metrics.counters.get(name).copied().unwrap_or(0)
}

/// Asserts `id` failed with evidence naming `needle`, and the run exited with the conformance
/// code (a saturated generator, exit 4, may outrank it on a busy machine: then the reason must
/// still name conformance).
fn assert_failed(r: &RunSummary, id: &str, needle: &str) {
    let x = rule(r, id).unwrap_or_else(|| panic!("{id} not checked: {:?}", r.conformance));
    assert_eq!(x.verdict, Verdict::Failed, "{id}: {x:?}");
    assert!(x.failures.unwrap_or(0) > 0, "{x:?}");
    let e = x.evidence.as_ref().expect("evidence");
    assert!(e.received.contains(needle), "{id}: evidence {e:?}");
    assert!(e.user.as_deref().is_some_and(|u| u.starts_with("user #")), "{e:?}");
    assert!(r.verdict.exit_code >= 3, "{:?}", r.verdict);
    assert!(
        r.verdict.reasons.iter().any(|x| x.contains("conformance")),
        "{:?}",
        r.verdict
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correct_server_passes_every_delivery_rule() {
    let r = run_against(None).await;
    for id in ["DELIVERY-EVERY-WATCHER", "DELIVERY-ONCE", "DELIVERY-ORDER"] {
        let x = rule(&r, id).unwrap_or_else(|| panic!("{id} not checked: {:?}", r.conformance));
        assert_eq!(x.verdict, Verdict::Passed, "{x:?}");
        assert!(
            x.observed.unwrap_or(0) > 100,
            "{id} checked only {:?} times",
            x.observed
        );
    }
    assert_eq!(counter(&r, "events_lost"), 0, "{:?}", r.metrics.counters);
    assert_eq!(counter(&r, "events_duplicated"), 0, "{:?}", r.metrics.counters);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_delivers_twice_fails_the_run() {
    let r = run_against(Some("deliver_twice")).await;
    assert!(counter(&r, "events_duplicated") > 0, "{:?}", r.metrics.counters);
    assert_failed(&r, "DELIVERY-ONCE", "received a second time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_drops_deliveries_fails_the_run() {
    let r = run_against(Some("drop_deliveries")).await;
    assert!(counter(&r, "events_lost") > 0, "{:?}", r.metrics.counters);
    assert_failed(&r, "DELIVERY-EVERY-WATCHER", "never reached");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_reorders_deliveries_fails_the_run() {
    let r = run_against(Some("reorder_deliveries")).await;
    assert!(counter(&r, "events_out_of_order") > 0, "{:?}", r.metrics.counters);
    assert_failed(&r, "DELIVERY-ORDER", "arrived after a later one");
}

/// `chatstorm conform` (the command, not only the rule runner) fails with exit 3 against a mock
/// that delivers every event twice, naming DELIVERY-ONCE, and passes the other DELIVERY rules.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conform_fails_against_a_server_that_delivers_twice() {
    let cfg = chatstorm::conformance::embedded_mock_config();
    let mock = chatstorm_mock::start(cfg.clone()).await.expect("mock starts");
    mock.control.set_violation(
        chatstorm_mock::Violation::from_name("deliver_twice").expect("violation"),
        true,
    );
    let dir = std::env::temp_dir().join(format!("chatstorm-conform-delivery-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let outcome = chatstorm::commands::conform(chatstorm::plan::ConformPlan {
        target: chatstorm::target::TargetOptions {
            target: Some(mock.base_url()),
            api_key: Some(cfg.api_key),
            secret: Some(cfg.secret),
            ..Default::default()
        },
        only: vec!["DELIVERY-*".into()],
        strict: false,
        out: Some(dir.clone()),
    })
    .await;
    mock.shutdown().await;
    let json = std::fs::read_to_string(dir.join("conformance.json")).expect("conformance.json");
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(outcome, chatstorm::exit::Outcome::ConformanceFailed);
    let section: chatstorm::report::summary::ConformanceSection = serde_json::from_str(&json).expect("typed");
    let verdict = |id: &str| section.rules.iter().find(|r| r.id == id).map(|r| r.verdict.clone());
    assert_eq!(verdict("DELIVERY-ONCE"), Some(Verdict::Failed), "{json}");
    for id in [
        "DELIVERY-EVERY-WATCHER",
        "DELIVERY-ORDER",
        "DELIVERY-NOT-WATCHING",
        "DELIVERY-STOP-WATCHING",
    ] {
        assert_eq!(verdict(id), Some(Verdict::Passed), "{id}: {json}");
    }
}
