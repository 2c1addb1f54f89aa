//! Every shipped scenario, scaled down, run in-process against the embedded mock, with
//! assertions on its summary: the lifecycle event each scenario exists to show did happen.
//! The runs share two cores, so they take turns (one at a time) and assert on counts and
//! bounds, not on latencies.

use chatstorm::api::run_scenario;
use chatstorm::report::summary::RunSummary;
use chatstorm::scenario::{self, Scenario};
use std::path::PathBuf;
use std::sync::OnceLock;

#[path = "support/scaled.rs"]
mod scaled;
use scaled::scaled;

/// One run at a time: each uses hundreds of sockets and both cores.
fn turn() -> &'static tokio::sync::Mutex<()> {
    static TURN: OnceLock<tokio::sync::Mutex<()>> = OnceLock::new();
    TURN.get_or_init(|| tokio::sync::Mutex::new(()))
}

fn out(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("chatstorm-test-{name}-{}", std::process::id()))
}

async fn run(s: Scenario, name: &str) -> RunSummary {
    let _turn = turn().lock().await;
    let dir = out(name);
    let summary = run_scenario(s, None, dir.clone())
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    for f in ["summary.json", "junit.xml", "report.html", "metrics.hlog"] {
        assert!(dir.join(f).is_file(), "{name}: {f} missing");
    }
    let _ = std::fs::remove_dir_all(&dir);
    summary
}

fn counter(s: &RunSummary, name: &str) -> u64 {
    s.metrics.counters.get(name).copied().unwrap_or(0)
}

#[test]
fn every_shipped_scenario_validates() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            scenario::load(&path).unwrap_or_else(|e| panic!("{}:\n{e}", path.display()));
            n += 1;
        }
    }
    assert!(n >= 6, "expected the six shipped scenarios, found {n}");
    scaled::every_shipped_scenario_is_scaled();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_shows_every_lifecycle_event() {
    let s = scaled("smoke.yaml");
    let r = run(s, "smoke").await;
    assert!(counter(&r, "connects") >= 150, "{:?}", r.metrics.counters);
    assert!(
        counter(&r, "fallbacks") > 0,
        "upgrades were refused during the ramp: some JS users fall back"
    );
    let storm = r.storms.first().expect("the drop makes a storm");
    assert!(storm.dropped > 0 && storm.recovered > 0, "{storm:?}");
    assert!(
        counter(&r, "token_refreshes") > 0,
        "expired tokens are refreshed: {:?}",
        r.metrics.counters
    );
    assert!(counter(&r, "events_received") > 0);
    assert_eq!(counter(&r, "privacy_leaks"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_expiry_refreshes_after_code_40() {
    let s = scaled("token-expiry.yaml");
    let r = run(s, "token-expiry").await;
    assert!(counter(&r, "token_refreshes") > 0, "{:?}", r.metrics.counters);
    assert!(
        r.errors.by_code.contains_key("40"),
        "refreshes follow code 40: {:?}",
        r.errors.by_code
    );
    for bad in ["41", "42", "43", "5"] {
        assert!(
            !r.errors.by_code.contains_key(bad),
            "unexpected code {bad}: {:?}",
            r.errors.by_code
        );
    }
    assert!(r.latency.get("token.refresh").is_some_and(|l| l.summary.count > 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_storm_recovers_within_the_backoff_bounds() {
    let s = scaled("reconnect-storm.yaml");
    let r = run(s, "reconnect-storm").await;
    let storm = r.storms.first().expect("a storm");
    assert!(
        storm.dropped >= 100,
        "every live user was dropped: {storm:?}\n{:?}\n{:?}\n{:?}",
        r.metrics.counters,
        r.timeline,
        r.errors
    );
    assert!(
        storm.recovered * 100 >= storm.dropped * 95,
        "at least 95% back: {storm:?}"
    );
    // First retry after a 1011 waits at most 2.5 s (n = 1); half are back well within that
    // plus the connect itself, even on a busy machine.
    let half_back = storm.p50_ms.expect("half came back");
    assert!(half_back < 2_500 + 5_000, "half back after {half_back} ms");
    assert!(storm.attempts_mean >= 1.0 && storm.attempts_mean < 3.0, "{storm:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn longpoll_fallback_users_receive_events() {
    let s = scaled("longpoll-fallback.yaml");
    let r = run(s, "longpoll-fallback").await;
    assert!(counter(&r, "fallbacks") > 0, "{:?}", r.metrics.counters);
    assert!(r.latency.get("connect.longpoll").is_some_and(|l| l.summary.count > 0));
    assert!(counter(&r, "longpoll_events_received") > 0, "{:?}", r.metrics.counters);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn privacy_off_typing_reaches_no_one() {
    let s = scaled("privacy.yaml");
    let r = run(s, "privacy").await;
    assert!(
        r.latency.get("delivery.typing").is_some_and(|l| l.summary.count > 0),
        "typing flows between others"
    );
    assert_eq!(counter(&r, "privacy_leaks"), 0, "{:?}", r.metrics.counters);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_ramp_runs_its_steps() {
    let s = scaled("capacity-ramp.yaml");
    let r = run(s, "capacity-ramp").await;
    assert!(counter(&r, "connects") > 0);
    assert_eq!(r.thresholds.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_fleet_breaks_every_figure_down_by_profile_and_the_wave_comes_back() {
    let s = scaled("mixed-fleet.yaml");
    let mix: Vec<String> = s
        .users
        .profile
        .weights
        .iter()
        .map(|(p, _)| p.name().to_owned())
        .collect();
    let r = run(s, "mixed-fleet").await;
    // Exit 0 (every threshold held); only a saturated generator (exit 4, this machine busy with
    // other builds) may replace it, and then its latencies are the generator's, not the target's.
    assert!(r.verdict.exit_code == 0 || r.verdict.exit_code == 4, "{:?}", r.verdict);

    // Every profile of the mix has its own figures, and they add up to the run's.
    let keys: Vec<&String> = r.by_profile.keys().collect();
    let mut want: Vec<&String> = mix.iter().collect();
    want.sort();
    assert_eq!(keys, want, "one entry per profile of the mix");
    for (name, p) in &r.by_profile {
        assert!(p.users > 0 && p.connects > 0 && p.connected_peak > 0, "{name}: {p:?}");
        assert!(p.latency.get("connect").is_some_and(|l| l.count > 0), "{name}");
        if name != "js" {
            // Mobile users reconnect after their pauses: RECONNECT-NEW-CONNECTION-ID is checked.
            assert!(p.conformance.checks > 0, "{name}: its users' observations are counted");
        }
    }
    let sum =
        |f: &dyn Fn(&chatstorm::report::summary::ProfileFigures) -> u64| r.by_profile.values().map(f).sum::<u64>();
    assert_eq!(sum(&|p| p.users), r.run.users_started);
    for c in [
        "connects",
        "connect_failures",
        "disconnects",
        "reconnect_attempts",
        "token_fetches",
        "rest_requests",
        "events_sent",
        "events_received",
    ] {
        assert_eq!(
            sum(&|p| p.counters.get(c).copied().unwrap_or(0)),
            counter(&r, c),
            "{c} by profile adds up to the total"
        );
    }
    assert!(counter(&r, "events_received") > 0);
    let tag_count = |tag: &str| r.latency.get(tag).map_or(0, |l| l.summary.count);
    for tag in ["connect.ws", "token.fetch", "delivery.message"] {
        assert!(tag_count(tag) > 0, "{tag}");
        assert_eq!(
            sum(&|p| p.latency.get(tag).map_or(0, |l| l.count)),
            tag_count(tag),
            "{tag} histograms by profile add up"
        );
    }
    let closes = |m: &std::collections::BTreeMap<String, u64>| m.values().sum::<u64>();
    assert_eq!(
        sum(&|p| closes(&p.errors.by_close_code)),
        closes(&r.errors.by_close_code)
    );
    assert_eq!(sum(&|p| p.errors.total), r.errors.total);
    assert_eq!(
        sum(&|p| p.conformance.checks),
        r.conformance
            .iter()
            .flat_map(|c| &c.rules)
            .filter_map(|r| r.observed)
            .sum::<u64>(),
        "every conformance check was made by some profile's user"
    );

    // The morning-commute wave: mobile users only, all of them back, with their own curve.
    let wave = r.waves.first().expect("the background wave is reported");
    assert!(r.storms.is_empty(), "a wave is not a storm: {:?}", r.storms);
    assert!(wave.dropped >= 10, "{wave:?}");
    assert_eq!(
        wave.recovered, wave.dropped,
        "every user of the wave came back: {wave:?}"
    );
    assert!(wave.p50_ms.is_some() && wave.p100_ms.is_some(), "{wave:?}");
    assert!(wave.away_ms > 0 && wave.attempts_mean >= 1.0, "{wave:?}");
    assert!(wave.curve.last().is_some_and(|(_, pct)| (*pct - 100.0).abs() < 1e-9));
    assert!(
        !wave.by_profile.contains_key("js"),
        "web users have no background: {wave:?}"
    );
    assert_eq!(
        wave.by_profile.values().map(|p| p.dropped).sum::<u64>(),
        wave.dropped,
        "{wave:?}"
    );
    for (name, p) in &wave.by_profile {
        assert_eq!(p.recovered, p.dropped, "{name}");
        assert_eq!(r.by_profile[name].waves.len(), 1, "{name}");
    }
    // The background behaviour: mobile users come back from pauses beyond the wave (each return
    // is a reconnect attempt), web users never leave.
    assert_eq!(
        r.by_profile["js"].counters["reconnect_attempts"], 0,
        "no web user goes to the background: {:?}",
        r.by_profile["js"].counters
    );
    let mobile_returns: u64 = r
        .by_profile
        .iter()
        .filter(|(n, _)| n.as_str() != "js")
        .map(|(_, p)| p.counters["reconnect_attempts"])
        .sum();
    assert!(
        mobile_returns > wave.dropped,
        "pauses beyond the wave: {mobile_returns} returns, {} in the wave",
        wave.dropped
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_leaks_typing_is_caught() {
    // The same privacy scenario against a mock told to ignore typing privacy: the users must count
    // the leaks (the check above can fail).
    let config = chatstorm::conformance::embedded_mock_config();
    let mock = chatstorm_mock::start(config.clone()).await.unwrap();
    mock.control
        .set_violation(chatstorm_mock::Violation::TypingIgnoresPrivacy, true);
    let target = chatstorm::conformance::mock_target(&mock.base_url(), &config).unwrap();
    let s = scaled("privacy.yaml");
    let _turn = turn().lock().await;
    let dir = out("privacy-leak");
    let r = run_scenario(s, Some(target), dir.clone()).await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    mock.shutdown().await;
    assert!(counter(&r, "privacy_leaks") > 0, "{:?}", r.metrics.counters);
    let rules = r.conformance.as_ref().map(|c| c.rules.clone()).unwrap_or_default();
    assert!(
        rules
            .iter()
            .any(|rule| rule.id.starts_with("PRIVACY") && rule.verdict == chatstorm::conformance::Verdict::Failed),
        "the load-run observer turns the leak into a failed PRIVACY rule: {rules:?}"
    );
    // Exit 3 on a quiet machine; a saturated generator (exit 4) outranks it, so check the reason.
    assert!(r.verdict.exit_code >= 3, "{:?}", r.verdict);
    assert!(
        r.verdict.reasons.iter().any(|x| x.contains("conformance")),
        "{:?}",
        r.verdict
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breached_threshold_exits_1_and_is_named_in_every_output() {
    let yaml = r#"
name: breach
target: {}
users: {count: 10, id: "breach-{index}", profile: js}
load:
  - ramp: {to: 10, over: 1s}
  - hold: 3s
thresholds:
  connect.p50: "< 1us"
"#;
    let s = scenario::parse("breach.yaml", yaml).unwrap();
    let _turn = turn().lock().await;
    let dir = out("breach");
    let r = run_scenario(s, None, dir.clone()).await.unwrap();
    let t = &r.thresholds[0];
    assert!(!t.passed && t.metric == "connect.p50", "{t:?}");
    // Exit 1; only a saturated generator (exit 4, this machine busy) may outrank it.
    assert!(r.verdict.exit_code == 1 || r.verdict.exit_code == 4, "{:?}", r.verdict);
    assert!(
        r.verdict.reasons.iter().any(|x| x.contains("connect.p50")),
        "{:?}",
        r.verdict
    );
    for f in ["summary.json", "junit.xml", "report.html"] {
        let text = std::fs::read_to_string(dir.join(f)).unwrap();
        assert!(text.contains("connect.p50"), "{f} names the threshold");
    }
    let mut console = Vec::new();
    chatstorm::report::console::write(&r, &mut console).unwrap();
    assert!(String::from_utf8_lossy(&console).contains("FAIL connect.p50 < 1us"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn workers_split_the_users_and_merge_one_report() {
    // `--workers 2`: two child processes, each running half the users against its own mock, merged
    // into one summary whose counts add up to the whole run.
    let _turn = turn().blocking_lock();
    let dir = out("workers");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_chatstorm"))
        .args([
            "run",
            "scenarios/privacy.yaml",
            "--workers",
            "2",
            "--users",
            "40",
            "--duration",
            "8s",
            "--quiet",
        ])
        .arg("--out")
        .arg(&dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(std::process::Stdio::null())
        .status()
        .expect("run the chatstorm binary");
    assert!(status.code().is_some(), "{status:?}");
    let merged: RunSummary =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).expect("merged summary")).unwrap();
    let shard = |i: u32| -> RunSummary {
        let p = dir.join(format!("shard-{i}")).join("summary.json");
        serde_json::from_str(&std::fs::read_to_string(p).expect("shard summary")).unwrap()
    };
    let (a, b) = (shard(0), shard(1));
    assert_eq!(merged.run.shards, 2);
    assert_eq!(merged.run.users_started, 40);
    assert_eq!(a.run.users_started + b.run.users_started, 40);
    assert_eq!(
        counter(&merged, "connects"),
        counter(&a, "connects") + counter(&b, "connects")
    );
    let count = |s: &RunSummary| s.latency.get("connect.ws").map_or(0, |l| l.summary.count);
    assert_eq!(count(&merged), count(&a) + count(&b), "histograms are added exactly");
    // The per-profile breakdown merges exactly too.
    assert_eq!(merged.by_profile.keys().collect::<Vec<_>>(), ["js", "swift"]);
    for (name, m) in &merged.by_profile {
        let (x, y) = (&a.by_profile[name], &b.by_profile[name]);
        assert_eq!(m.users, x.users + y.users, "{name}");
        assert_eq!(m.connects, x.connects + y.connects, "{name}");
        let n = |p: &chatstorm::report::summary::ProfileFigures| p.latency.get("connect.ws").map_or(0, |l| l.count);
        assert_eq!(n(m), n(x) + n(y), "{name}");
        assert!(m.connected_peak <= x.connected_peak + y.connected_peak, "{name}");
    }
    for f in ["junit.xml", "report.html"] {
        assert!(dir.join(f).is_file(), "merged {f}");
    }
    // The shards' `.hlog` files merged at the top (the shards started apart: aligned on the
    // earlier start): each tag sums to the merged summary's histogram.
    let hlog = |d: &std::path::Path| {
        chatstorm::metrics::hlog::read(&std::fs::read(d.join("metrics.hlog")).expect("metrics.hlog")).unwrap()
    };
    let log = hlog(&dir);
    let starts: Vec<_> = [0, 1]
        .map(|i| hlog(&dir.join(format!("shard-{i}"))).start_time)
        .to_vec();
    assert_eq!(log.start_time, starts.iter().min().copied().flatten());
    for (tag, figures) in &merged.latency {
        let total: u64 = log
            .intervals
            .iter()
            .filter(|i| i.tag.as_deref() == Some(tag.as_str()))
            .map(|i| i.histogram.len())
            .sum();
        assert_eq!(total, figures.summary.count, "{tag}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn r12_a_hostile_name_cannot_leave_reports_with_or_without_workers() {
    // Issue 12: `--workers` built the run folder from the raw name, so `../../x` wrote outside
    // `reports/`. The name is now refused by validation, before any folder is made.
    let root = out("hostile-name");
    let cwd = root.join("a").join("b");
    std::fs::create_dir_all(&cwd).unwrap();
    let scenario = cwd.join("hostile.yaml");
    std::fs::write(
        &scenario,
        "name: ../../escaped\nusers: {count: 2}\nload:\n  - hold: 1s\n",
    )
    .unwrap();
    for extra in [&[][..], &["--workers", "2"][..]] {
        let res = std::process::Command::new(env!("CARGO_BIN_EXE_chatstorm"))
            .args(["run", "hostile.yaml", "--quiet"])
            .args(extra)
            .current_dir(&cwd)
            .output()
            .expect("run the chatstorm binary");
        let stderr = String::from_utf8_lossy(&res.stderr);
        assert_eq!(res.status.code(), Some(2), "{extra:?}: {stderr}");
        assert_eq!(
            stderr.trim_end(),
            "hostile.yaml:1:7: name: must be a plain file name: no `/`, `\\` or `..`",
            "{extra:?}"
        );
        // Nothing was written anywhere: not beside the scenario, not two levels up.
        let mut found = Vec::new();
        let mut stack = vec![root.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p.clone());
                }
                found.push(p);
            }
        }
        found.sort();
        assert_eq!(found, [root.join("a"), cwd.clone(), scenario.clone()], "{extra:?}");
    }
    let _ = std::fs::remove_dir_all(&root);
}
