//! The model the engine sees: normalization, defaults and the command-line overrides.

use crate::scenario::threshold::{Derived, Histogram, Metric, Op, Stat};
use crate::scenario::*;
use std::time::Duration;

fn fixture(rel: &str) -> Scenario {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/scenarios")
        .join(rel);
    match load(&path) {
        Ok(s) => s,
        Err(e) => panic!("{rel}:\n{e}"),
    }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn backoff_is_the_sdks_unless_fixed() {
    assert_eq!(fixture("valid/minimal.yaml").users.backoff, None);
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/scenarios/storm-19k.yaml");
    let storm = load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(storm.users.backoff, None, "`sdk` is the formula");
    let fixed = std::env::temp_dir().join(format!("chatstorm-backoff-{}.yaml", std::process::id()));
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("backoff: sdk", "backoff: 250ms");
    std::fs::write(&fixed, text).unwrap();
    let s = load(&fixed);
    let _ = std::fs::remove_file(&fixed);
    assert_eq!(
        s.unwrap_or_else(|e| panic!("{e}")).users.backoff,
        Some(Duration::from_millis(250))
    );
}

#[test]
fn unity_reconnect_settings_default_and_parse() {
    let s = fixture("valid/unity-reconnect.yaml");
    assert_eq!(
        s.users.unity,
        UnityReconnect {
            strategy: UnityStrategy::Constant,
            interval: secs(5),
        }
    );
    let s = fixture("valid/minimal.yaml");
    assert_eq!(s.users.unity, UnityReconnect::default());
    assert_eq!(s.users.unity.strategy, UnityStrategy::Exponential);
}

#[test]
fn full_fixture_normalizes_every_key() {
    let s = fixture("valid/full.yaml");
    assert_eq!(s.name, "full-example");
    assert_eq!(s.seed, 42);
    let TargetSpec::Embedded(mock) = &s.target else {
        panic!("embedded target expected")
    };
    assert_eq!(mock.health_interval, secs(5));
    assert_eq!(mock.longpoll_hold, secs(2));
    assert_eq!(mock.token_expiry, TokenExpiry::Kick);
    assert_eq!(s.users.count, 10_000);
    assert_eq!(s.users.id.id(7), "load-7@test");
    assert_eq!(s.users.profile.total_weight(), 100);
    assert_eq!(
        s.users.token,
        TokenSpec {
            ttl: Some(secs(600)),
            mode: TokenMode::Provider,
            source: TokenSource::Secret("chatstorm-secret".into()),
        }
    );
    assert!(!s.users.privacy.read_receipts && s.users.privacy.typing_indicators);
    assert!(s.users.fallback);
    assert_eq!(s.users.custom_bytes, 512);

    let stages = &s.load.stages;
    assert_eq!(stages.len(), 4);
    assert_eq!(
        (stages[0].start, stages[0].users_before, stages[0].users_after),
        (secs(0), 0, 5000)
    );
    assert_eq!(stages[1].kind, StageKind::Hold);
    assert_eq!(
        (stages[2].start, stages[2].users_before, stages[2].users_after),
        (secs(120), 5000, 7000),
        "arrival capped by max: 50/s for 60s would be 3000"
    );
    assert_eq!(
        stages[2].kind,
        StageKind::Arrival {
            per_second: 50.0,
            session: None
        }
    );
    assert_eq!(s.load.total(), secs(480));
    assert_eq!(s.load.peak_users(), 7000);
    assert_eq!(s.run_length(), secs(480), "duration cap 10m is beyond the plan");

    assert_eq!(s.behaviour.typing, Some(Every { every: secs(30) }));
    assert_eq!(
        s.behaviour.message,
        Some(MessageBehaviour {
            every: secs(120),
            bytes: 128
        })
    );
    assert_eq!(s.behaviour.background.map(|b| b.length), Some(secs(20)));

    let names: Vec<&str> = s.timeline.iter().map(|e| e.action.name()).collect();
    assert_eq!(
        names,
        [
            "drop_sockets",
            "expire_tokens",
            "block_websocket",
            "refuse_websocket",
            "set_privacy",
            "half_open",
            "add_latency",
            "drop_sockets",
            "background"
        ]
    );
    assert_eq!(
        s.timeline[8].action,
        Action::Background {
            fraction: 0.5,
            length: secs(10)
        }
    );
    assert!(!s.timeline[8].action.needs_mock(), "users pause their own apps");
    assert_eq!(
        s.timeline[0].action,
        Action::DropSockets {
            fraction: 0.5,
            side: Side::Server,
            close: Close::Code(1011)
        }
    );
    assert_eq!(s.timeline[3].at, secs(270));
    assert_eq!(
        s.timeline[7].action,
        Action::DropSockets {
            fraction: 0.1,
            side: Side::Client,
            close: Close::Abrupt
        }
    );

    assert_eq!(s.thresholds.len(), 5);
    let recovery = &s.thresholds[1];
    assert_eq!(
        recovery.metric,
        Metric::Latency(Histogram::One(crate::metrics::Metric::Recovery), Stat::P99)
    );
    assert_eq!((recovery.op, recovery.bound), (Op::Lt, 30_000_000.0));
    assert!(recovery.abort);
    assert_eq!(recovery.abort_after, Some(secs(180)));
    assert_eq!(s.thresholds[3].metric, Metric::Derived(Derived::ConformanceFailed));
    assert_eq!(s.thresholds[4].to_string(), "connects.rate >= 100/s");
    assert_eq!(s.conformance.watch, ["CONN-*", "AUTH-*", "RECONNECT-*"]);
    assert!(s.conformance.strict);
}

#[test]
fn minimal_fixture_gets_the_defaults() {
    let s = fixture("valid/minimal.yaml");
    assert_eq!(s.name, "minimal", "the file stem");
    assert_eq!(s.seed, 1);
    assert_eq!(s.target, TargetSpec::Embedded(MockOptions::default()));
    assert_eq!(s.users.id.id(3), "user-3");
    assert_eq!(s.users.profile, ProfileMix::single(Profile::Js));
    assert_eq!(s.users.token.mode, TokenMode::Provider);
    assert_eq!(s.users.token.ttl, None);
    assert_eq!(s.users.token.source, TokenSource::EmbeddedSecret);
    assert_eq!(s.users.privacy, Privacy::default());
    assert_eq!(
        s.channels,
        Channels {
            count: 1,
            members: 10,
            kind: "messaging".into()
        }
    );
    assert_eq!(s.behaviour, Behaviour::default());
    assert!(s.timeline.is_empty() && s.thresholds.is_empty());
    assert_eq!(s.conformance, Conformance::default());
}

#[test]
fn product_sketch_is_valid_as_written() {
    let s = fixture("valid/product-sketch.yaml");
    assert_eq!(s.name, "reconnect-storm");
    assert_eq!(s.load.total(), secs(360));
    assert_eq!(s.timeline.len(), 4);
    assert_eq!(
        s.timeline[1].action,
        Action::ExpireTokens {
            fraction: 1.0,
            side: Side::Client
        },
        "side defaults to client"
    );
}

#[test]
fn real_target_fixture() {
    let s = fixture("valid/real-target.yaml");
    assert_eq!(
        s.target,
        TargetSpec::Remote(RemoteTarget {
            url: "https://chat.staging.example".into(),
            api_key: "staging-key".into()
        })
    );
    assert_eq!(
        s.users.token.source,
        TokenSource::Endpoint("http://127.0.0.1:8080/token".into())
    );
    assert_eq!(s.users.token.mode, TokenMode::Static);
    assert!(s.timeline.iter().all(|e| !e.action.needs_mock()));
    assert_eq!(
        s.load.stages[0].kind,
        StageKind::Arrival {
            per_second: 20.0,
            session: Some(secs(90))
        }
    );
    assert_eq!(s.load.stages[0].users_after, 200);
}

#[test]
fn profile_mix_picks_in_proportion() {
    let mix = fixture("valid/full.yaml").users.profile;
    let mut js = 0;
    let mut unity = 0;
    for ticket in 0..1000 {
        match mix.pick(ticket) {
            Profile::Js => js += 1,
            Profile::Unity => unity += 1,
            _ => {}
        }
    }
    assert_eq!((js, unity), (600, 50));
}

#[test]
fn overrides_scale_the_scenario() {
    let s = fixture("valid/full.yaml").with_seed(7);
    assert_eq!(s.seed, 7);

    let small = s.clone().with_users(100).expect("100 users is fine");
    assert_eq!(small.users.count, 100);
    let st = &small.load.stages;
    assert_eq!((st[0].users_after, st[2].users_after), (50, 70));
    assert_eq!(
        st[2].kind,
        StageKind::Arrival {
            per_second: 0.5,
            session: None
        }
    );
    assert_eq!(small.channels.members, 100);
    let tiny = s.clone().with_users(10).expect("10 users");
    assert_eq!(tiny.channels.members, 10);

    let err = s.clone().with_users(0).expect_err("zero users");
    assert_eq!(err.to_string(), "--users: users.count: must be 1 to 10000000");

    let short = s.clone().with_duration(secs(200)).expect("cap");
    assert_eq!(short.run_length(), secs(200));
    assert!(short.timeline.iter().all(|e| e.at < secs(200)));
    assert_eq!(short.timeline.len(), 2, "events at 2m and 3m remain");
    assert!(s.clone().with_duration(Duration::ZERO).is_err());

    let long = s.clone().with_duration(secs(600)).expect("extend");
    assert_eq!(long.run_length(), secs(600));
    assert_eq!(long.load.stages.len(), 4, "the last stage is a hold: extended");
    assert_eq!(long.load.stages[3].length, secs(420));
    let ramp_only = parse("r.yaml", "users: {count: 10}\nload: [{ramp: {to: 10, over: 10s}}]\n")
        .expect("valid")
        .with_duration(secs(30))
        .expect("extend");
    let last = ramp_only.load.stages.last().expect("a stage");
    assert_eq!(
        (last.kind.clone(), last.start, last.length, last.users_before),
        (StageKind::Hold, secs(10), secs(20), 10)
    );
    assert_eq!(ramp_only.run_length(), secs(30));
}

#[test]
fn with_users_rechecks_the_id_length() {
    let text = format!(
        "users: {{ count: 10, id: \"{}{{index}}\" }}\nload: [ {{ hold: 1s }} ]\n",
        "a".repeat(254)
    );
    let s = parse("ids.yaml", &text).expect("index 9 gives 255 characters");
    let err = s.with_users(11).expect_err("index 10 gives 256 characters");
    assert!(
        err.to_string().starts_with("--users: users.id: gives invalid user id"),
        "{err}"
    );
}

#[test]
fn with_target_refuses_server_side_faults() {
    let s = fixture("valid/full.yaml");
    let remote = TargetSpec::Remote(RemoteTarget {
        url: "http://127.0.0.1:9".into(),
        api_key: "k".into(),
    });
    let err = s
        .clone()
        .with_target(remote.clone(), TokenSource::Secret("s".into()))
        .expect_err("server-side faults");
    assert_eq!(err.0.len(), 5, "{err}");
    assert!(err.0.iter().all(|p| p.file == "--target"));
    let client_only = fixture("valid/real-target.yaml");
    let moved = client_only
        .with_target(remote.clone(), TokenSource::Secret("s".into()))
        .expect("client-side faults only");
    assert_eq!(moved.target, remote);
}

#[test]
fn problem_display() {
    let p = Problem {
        file: "a.yaml".into(),
        line: 3,
        column: 5,
        path: "users.count".into(),
        message: "must be at least 1".into(),
    };
    assert_eq!(p.to_string(), "a.yaml:3:5: users.count: must be at least 1");
    let whole = Problem {
        line: 0,
        column: 0,
        path: String::new(),
        ..p
    };
    assert_eq!(whole.to_string(), "a.yaml: must be at least 1");
}

#[test]
fn load_reports_unreadable_files() {
    let err = load(std::path::Path::new("/nonexistent/chatstorm/x.yaml")).expect_err("missing");
    assert_eq!(err.0.len(), 1);
    assert!(
        err.to_string()
            .starts_with("/nonexistent/chatstorm/x.yaml: cannot open: "),
        "{err}"
    );
}

#[test]
fn time_scale_compresses_the_scenario_clock() {
    let s = fixture("valid/full.yaml");
    let fast = s.clone().with_time_scale(0.1).expect("ten times faster");
    assert_eq!(fast.load.total(), Duration::from_millis(48_000));
    assert_eq!(fast.load.stages[2].start, secs(12));
    assert_eq!(
        fast.load.stages[2].kind,
        StageKind::Arrival {
            per_second: 500.0,
            session: None
        },
        "the same users arrive in a tenth of the time"
    );
    assert_eq!(fast.load.peak_users(), s.load.peak_users());
    assert_eq!(fast.timeline[0].at, secs(12));
    assert_eq!(
        fast.timeline[2].action,
        Action::BlockWebsocket { length: Some(secs(3)) }
    );
    assert_eq!(fast.behaviour.typing, Some(Every { every: secs(3) }));
    assert_eq!(
        fast.timeline[8].action,
        Action::Background {
            fraction: 0.5,
            length: secs(1)
        }
    );
    assert_eq!(
        fast.behaviour.background.map(|b| (b.every, b.length)),
        Some((secs(18), secs(2)))
    );
    assert_eq!(fast.users.token.ttl, Some(secs(60)));
    assert_eq!(fast.thresholds[1].abort_after, Some(secs(18)));
    assert!(fast.timeline.iter().all(|e| e.at < fast.run_length()));
    assert!(s.clone().with_time_scale(0.0).is_err());
    assert!(s.clone().with_time_scale(f64::NAN).is_err());
    assert!(s.clone().with_time_scale(1e20).is_err());
    let slow = s.with_time_scale(1000.0).expect("a thousand times slower");
    assert_eq!(slow.load.total(), secs(480_000));
}

const MINIMAL: &str = "name: c\ntarget: {}\nusers: {count: 10}\nload:\n  - ramp: {to: 10, over: 1s}\n";

#[test]
fn checks_are_on_by_default_and_can_be_turned_off_or_shared() {
    let s = parse("c.yaml", MINIMAL).expect("valid");
    assert_eq!(s.checks, Checks::default());
    assert_eq!(s.checks.users_connected, Some(1.0));
    let text = format!(
        "{MINIMAL}checks: {{users_connected: \"95%\", recovered: false, target_reachable: false, state_kept: false}}\n"
    );
    let s = parse("c.yaml", &text).expect("valid");
    assert_eq!(
        s.checks,
        Checks {
            users_connected: Some(0.95),
            recovered: false,
            target_reachable: false,
            state_kept: false,
            shards_lost: 0
        }
    );
    let s = parse("c.yaml", &format!("{MINIMAL}checks: {{users_connected: false}}\n")).expect("valid");
    assert_eq!(s.checks.users_connected, None);
    assert!(s.checks.recovered);
    let s = parse("c.yaml", &format!("{MINIMAL}checks: {{users_connected: 0.5}}\n")).expect("valid");
    assert_eq!(s.checks.users_connected, Some(0.5));
    let s = parse("c.yaml", &format!("{MINIMAL}checks: {{shards_lost: 2}}\n")).expect("valid");
    assert_eq!(s.checks.shards_lost, 2);
}

#[test]
fn bad_checks_are_one_line_problems() {
    for (bad, says) in [
        (
            "checks: {users_connected: \"150%\"}",
            "users_connected is true, false or a share",
        ),
        (
            "checks: {users_connected: 0}",
            "users_connected is true, false or a share",
        ),
        (
            "checks: {users_connected: lots}",
            "users_connected is true, false or a share",
        ),
        ("checks: {reachable: true}", "reachable"),
        ("checks: {state_kept: 3}", "state_kept"),
    ] {
        let e = parse("c.yaml", &format!("{MINIMAL}{bad}\n"))
            .expect_err(bad)
            .to_string();
        assert!(e.contains(says), "{bad}: {e}");
        assert!(e.lines().all(|l| l.len() < 300), "{e}");
    }
}

#[test]
fn r12_a_name_that_is_not_a_plain_file_name_is_refused_with_its_place() {
    let base = "users: {count: 1}\nload:\n  - hold: 1s\n";
    for (name, msg) in [
        ("../../x", "must be a plain file name: no `/`, `\\` or `..`"),
        ("a/b", "must be a plain file name: no `/`, `\\` or `..`"),
        ("'a\\\\b'", "must be a plain file name: no `/`, `\\` or `..`"),
        ("'..'", "must be a plain file name: no `/`, `\\` or `..`"),
        ("'  '", "must not be empty"),
        ("\"a\\tb\"", "must be one line of at most 200 bytes"),
    ] {
        let text = format!("name: {name}\n{base}");
        let errors = parse("hostile.yaml", &text).expect_err(name);
        assert_eq!(errors.lines(), [format!("hostile.yaml:1:7: name: {msg}")], "{name}");
    }
    assert_eq!(
        parse("ok.yaml", &format!("name: smoke v2\n{base}")).unwrap().name,
        "smoke v2"
    );
}
