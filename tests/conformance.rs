//! Conformance suite tests: the whole suite passes against the mock with no violation on, and
//! every rule is shown to fail against a server that violates it (a mock violation switch, a
//! mock misconfiguration, or a tiny scripted misbehaving peer), with evidence.

mod conformance {
    pub mod common;
    pub mod peer;
    pub mod token_endpoint;
    pub mod violations;
}

use std::time::{Duration, Instant};

use chatstorm::conformance::{SuiteOptions, Verdict, embedded_mock_config, run_embedded, run_suite};
use chatstorm::target::{Target, TargetAuth};
use conformance::common::{mock_target, start_mock, suite_options};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_suite_passes_against_the_embedded_mock_with_no_violation() {
    let started = Instant::now();
    let report = run_embedded(&suite_options()).await.expect("embedded mock starts");
    let took = started.elapsed();
    let section = chatstorm::report::conformance::from_suite(&report);
    let mut console = Vec::new();
    chatstorm::report::console::write_conformance(&section, &mut console).unwrap();
    let console = String::from_utf8_lossy(&console);
    let bad: Vec<_> = report
        .results
        .iter()
        .filter(|r| !matches!(r.verdict, Verdict::Passed))
        .map(|r| r.id)
        .collect();
    assert!(bad.is_empty(), "not passed: {bad:?}\n{console}");
    assert!(!report.exit_failed(true));
    assert!(took < Duration::from_secs(60), "suite took {took:?}");
    eprintln!("{console}");
    let mut junit = Vec::new();
    chatstorm::report::junit::write_conformance(&section, &mut junit).unwrap();
    let junit = String::from_utf8(junit).unwrap();
    assert_eq!(junit.matches("<testcase ").count(), report.results.len());
    assert_eq!(section.failing(), 0);
    let json = serde_json::to_value(&section).unwrap();
    assert_eq!(json["rules"].as_array().unwrap().len(), report.results.len());
    assert_eq!(json["rules"][0]["verdict"], "passed");
}

/// Forged-token cases need the secret; against a token endpoint they are skipped with the
/// reason, and everything else still passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_endpoint_target_skips_forged_token_cases() {
    let mock = start_mock(|_| {}).await;
    let endpoint = conformance::token_endpoint::start(embedded_mock_config().secret.into_bytes()).await;
    let target = Target::new(
        mock.base_url().parse().unwrap(),
        embedded_mock_config().api_key,
        TargetAuth::TokenEndpoint(endpoint.parse().unwrap()),
        None,
    )
    .unwrap();
    let report = run_suite(&target, &suite_options()).await;
    let skipped: Vec<_> = report
        .results
        .iter()
        .filter_map(|r| match &r.verdict {
            Verdict::Skipped { reason } => {
                assert!(reason.contains("token endpoint"), "{}: {reason}", r.id);
                Some(r.id)
            }
            Verdict::Passed => None,
            v => panic!("{}: {v:?} {:#?}", r.id, r.evidence),
        })
        .collect();
    assert_eq!(
        skipped,
        [
            "AUTH-EXPIRED-40",
            "AUTH-NOT-YET-VALID-41",
            "AUTH-IAT-FUTURE-42",
            "AUTH-REFRESH-40",
            "AUTH-STATIC-40-FATAL",
            "AUTH-REST-401-40",
            "AUTH-NO-EXP-VALID",
            "AUTH-WS-SERVER-TOKEN",
            "AUTH-REST-NOT-YET-VALID-41",
            "AUTH-REST-IAT-FUTURE-42",
            "AUTH-REST-NO-USER-CLAIM-5",
            "AUTH-REST-CLAIM-TYPE-5"
        ]
    );
    assert!(!report.exit_failed(true));
    mock.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_globs_select_rules_and_rate_rules_skip_when_the_target_does_not_limit() {
    let mock = start_mock(|c| c.rate_limit = None).await;
    let target = mock_target(&mock);
    let opts = SuiteOptions {
        only: vec!["rate-*".into(), "AUTH-EXPIRED-40".into()],
        rate_probe: 30,
        ..suite_options()
    };
    let report = run_suite(&target, &opts).await;
    let ids: Vec<_> = report.results.iter().map(|r| r.id).collect();
    assert_eq!(ids, ["AUTH-EXPIRED-40", "RATE-429-CODE-9", "RATE-HEADERS"]);
    assert_eq!(report.result("AUTH-EXPIRED-40").unwrap().verdict, Verdict::Passed);
    for id in ["RATE-429-CODE-9", "RATE-HEADERS"] {
        match &report.result(id).unwrap().verdict {
            Verdict::Skipped { reason } => assert!(reason.contains("did not rate-limit within 30"), "{reason}"),
            v => panic!("{id}: {v:?}"),
        }
    }
    assert!(!report.exit_failed(true));
    mock.shutdown().await;
}

/// A case that hangs past its timeout fails with "timed out" and keeps the wire log so far.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_case_fails_at_its_timeout_with_the_wire_log() {
    let peer = conformance::peer::start(conformance::peer::Behaviour::NoCloseEcho).await;
    let opts = SuiteOptions {
        timeout_per_case: Duration::from_millis(1500),
        ..suite_options()
    };
    let started = Instant::now();
    let r = chatstorm::conformance::run_rule(&peer.target(), "DISCONNECT-CLOSE-1000", &opts)
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(r.verdict, Verdict::Failed);
    let e = r.evidence.unwrap();
    assert_eq!(e.received, "timed out");
    assert!(e.wire_log.iter().any(|l| l.kind == "ws-close"), "{:#?}", e.wire_log);
}

/// Against a port where nothing listens every case fails fast with evidence (none panics,
/// none hangs), and the run fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_target_fails_every_case_quickly_without_panics() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let secret = b"s".to_vec();
    let target = Target::new(
        format!("http://127.0.0.1:{port}").parse().unwrap(),
        "k".into(),
        TargetAuth::Secret(secret.clone()),
        Some(secret),
    )
    .unwrap();
    let started = Instant::now();
    let report = run_suite(&target, &suite_options()).await;
    assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());
    assert!(report.exit_failed(false));
    for r in &report.results {
        match (&r.verdict, &r.evidence) {
            (Verdict::Failed | Verdict::NonStrictFailure, Some(e)) => {
                assert!(!e.received.is_empty() && e.received != "timed out", "{}: {e:?}", r.id)
            }
            (v, e) => panic!("{}: {v:?} {e:?}", r.id),
        }
    }
}

/// The long-poll fallback is opt-in: a target answering 404 on `/longpoll` gets the LONGPOLL rules
/// skipped, not failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn longpoll_rules_skip_when_the_target_does_not_serve_longpoll() {
    let base = conformance::token_endpoint::start_not_found().await;
    let secret = b"s".to_vec();
    let target = Target::new(
        base.parse().unwrap(),
        "k".into(),
        TargetAuth::Secret(secret.clone()),
        Some(secret),
    )
    .unwrap();
    let opts = SuiteOptions {
        only: vec!["LONGPOLL-*".into()],
        ..suite_options()
    };
    let report = run_suite(&target, &opts).await;
    assert_eq!(report.results.len(), 4);
    for r in &report.results {
        match &r.verdict {
            Verdict::Skipped { reason } => assert!(reason.contains("does not serve /longpoll"), "{reason}"),
            v => panic!("{}: {v:?} {:?}", r.id, r.evidence),
        }
    }
}

/// `chatstorm conform` writes `report.html` beside its other outputs: the verdict with its exit
/// code, and the failed rule with its evidence, here against a mock told to omit `me`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conform_writes_report_html_with_the_verdict_and_the_failed_rule() {
    let mock = start_mock(|_| {}).await;
    mock.control.set_violation(
        chatstorm_mock::Violation::from_name("omit_me").expect("violation"),
        true,
    );
    let cfg = embedded_mock_config();
    let dir = std::env::temp_dir().join(format!("chatstorm-conform-html-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let outcome = chatstorm::commands::conform(chatstorm::plan::ConformPlan {
        target: chatstorm::target::TargetOptions {
            target: Some(mock.base_url()),
            api_key: Some(cfg.api_key),
            secret: Some(cfg.secret),
            ..Default::default()
        },
        only: vec!["CONN-UPGRADE".into(), "CONN-ME".into()],
        strict: false,
        out: Some(dir.clone()),
    })
    .await;
    mock.shutdown().await;
    assert_eq!(outcome, chatstorm::exit::Outcome::ConformanceFailed, "exit 3 as before");
    let page = std::fs::read_to_string(dir.join("report.html")).expect("conform writes report.html");
    let json = std::fs::read_to_string(dir.join("conformance.json")).expect("and conformance.json");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(page.contains("conformance failed (exit 3)"), "{page}");
    assert!(
        page.contains("<td>CONN-ME</td>") && page.contains("<td class=\"fail\">failed</td>"),
        "{page}"
    );
    assert!(
        page.contains("me = absent"),
        "the failure's evidence is on the page: {page}"
    );
    assert!(page.contains("wire log:"), "with its wire log: {page}");
    assert!(
        page.contains("<td>CONN-UPGRADE</td>") && page.contains("<td class=\"pass\">passed</td>"),
        "{page}"
    );
    let section: chatstorm::report::summary::ConformanceSection = serde_json::from_str(&json).expect("typed");
    assert_eq!(section.rule("CONN-ME").map(|r| &r.verdict), Some(&Verdict::Failed));
}
