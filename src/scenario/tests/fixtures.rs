//! Fixture tests of the scenario format: every valid fixture loads, and every malformed one
//! gets exactly the expected problem lines.

use crate::scenario::*;
use std::path::PathBuf;

const FIXTURES: &str = "tests/fixtures/scenarios";

fn fixture_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(FIXTURES).join(rel)
}

/// Parses a fixture under its repository-relative name, so expected lines are stable.
fn parse_fixture(rel: &str) -> Result<Scenario, ScenarioErrors> {
    let text = std::fs::read_to_string(fixture_path(rel)).expect("fixture is readable");
    parse(&format!("{FIXTURES}/{rel}"), &text)
}

fn problems(rel: &str) -> Vec<String> {
    match parse_fixture(rel) {
        Ok(s) => panic!("{rel} should be refused, got {s:#?}"),
        Err(e) => e.lines(),
    }
}

fn assert_problems(rel: &str, expected: &[&str]) {
    let got = problems(rel);
    let expected: Vec<String> = expected.iter().map(|l| format!("{FIXTURES}/{rel}:{l}")).collect();
    assert_eq!(got, expected, "\n got:\n{}\n", got.join("\n"));
}

#[test]
fn every_valid_fixture_loads() {
    let dir = fixture_path("valid");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("valid/ exists") {
        let path = entry.expect("dir entry").path();
        if let Err(e) = load(&path) {
            panic!("{} should be valid:\n{e}", path.display());
        }
        seen += 1;
    }
    assert!(seen >= 4, "valid fixtures found: {seen}");
}

#[test]
fn wrong_types_are_all_reported() {
    assert_problems(
        "invalid/wrong-type.yaml",
        &[
            "2:7: seed: expected a whole number (0 or more), found string \"forty-two\"",
            "4:10: users.count: expected a whole number (0 or more), found string \"many\"",
            "5:13: users.fallback: expected true or false, found string \"maybe\"",
            "6:12: users.profile: expected a profile name (js, android, swift, flutter, unity) or a mix such as {js: 60, android: 40}, found a list",
            "9:11: channels: expected a mapping, found integer `7`",
        ],
    );
}

#[test]
fn bad_unity_settings_are_reported() {
    assert_problems(
        "invalid/bad-unity.yaml",
        &[
            "5:10: users.unity: these settings apply to unity users and the profile has none",
            "5:22: users.unity.reconnect: unknown value `sometimes`; expected one of: exponential, constant, never",
            "5:47: users.unity.retries: unknown key `retries`; expected one of: reconnect, interval",
        ],
    );
    assert_problems(
        "invalid/bad-unity-interval.yaml",
        &["5:45: users.unity.interval: `interval` applies to `reconnect: constant` only"],
    );
}

#[test]
fn unknown_keys_are_all_reported_with_suggestions() {
    assert_problems(
        "invalid/unknown-key.yaml",
        &[
            "4:3: users.profle: unknown key `profle`; did you mean `profile`?",
            "5:3: users.tokn: unknown key `tokn`; did you mean `token`?",
            "7:22: load[0].ramp.ovr: unknown key `ovr`; did you mean `over`?",
            "8:1: behavior: unknown key `behavior`; did you mean `behaviour`?",
            "12:5: timeline[0].drop_socket: unknown key `drop_socket`; did you mean `drop_sockets`?",
            "13:1: colour: unknown key `colour`; expected one of: name, description, seed, target, users, channels, load, behaviour, timeline, thresholds, conformance, duration, checks",
        ],
    );
}

#[test]
fn bad_durations_get_hints() {
    assert_problems(
        "invalid/bad-duration.yaml",
        &[
            "2:36: users.token.ttl: must be greater than zero",
            "4:28: load[0].ramp.over: a duration needs a unit: write `60s` or `60ms`, not a bare number",
            "5:11: load[1].hold: \"5 minutes please\" is not a duration; write a number with a unit, e.g. `30s`, `5m`, `250ms`",
            "6:22: load[2].arrival.rate: a rate needs a unit: write `10/s` or `10/m`",
            "8:20: behaviour.typing.every: \"-5s\" is not a duration; write a number with a unit, e.g. `30s`, `5m`, `250ms`",
            "10:9: timeline[0].at: a duration needs a unit: write `90s` or `90ms`, not a bare number",
        ],
    );
}

#[test]
fn user_id_pattern_is_checked_at_the_highest_index() {
    assert_problems(
        "invalid/bad-user-id.yaml",
        &[
            "4:7: users.id: gives invalid user id \"User-999\" (index 999): `U` is not allowed in a user id; use only a-z, 0-9, @, _ and -",
        ],
    );
    let long = format!(
        "users: {{ count: 100, id: \"{}{{index}}\" }}\nload: [ {{ hold: 1s }} ]\n",
        "a".repeat(254)
    );
    let err = parse("long.yaml", &long).expect_err("254 + 2 digits at index 99");
    assert_eq!(err.0.len(), 1, "{err}");
    assert_eq!((err.0[0].line, err.0[0].column), (1, 26));
    assert!(
        err.0[0]
            .message
            .ends_with("(index 99): a user id is at most 255 characters, this one has 256"),
        "{err}"
    );
    let ok = long.replace("count: 100", "count: 10");
    parse("long.yaml", &ok).expect("254 + 1 digit = 255 characters is fine");
}

#[test]
fn many_problems_at_once() {
    assert_problems(
        "invalid/many-problems.yaml",
        &[
            "8:7: users.id: unknown placeholder; the only one is `{index}` (and braces are not allowed in user ids)",
            "9:22: users.profile.andriod: unknown profile `andriod`; did you mean `android`?",
            "9:42: users.profile.swift: a weight is a positive whole number, found 0",
            "10:28: users.token.mode: unknown value `refresh`; expected one of: provider, static",
            "11:33: channels.members: 500 members per channel but users.count is 100",
            "13:17: load[0].ramp.to: ramps to 500 users but users.count is 100",
            "17:31: timeline[0].drop_sockets.fraction: a fraction is above 0 and at most 1 (0.5 = half), found 1.5",
            "17:42: timeline[0].drop_sockets.side: side: server needs the embedded mock's fault control and target.url is set; use side: client (users drop their own sockets)",
            "17:57: timeline[0].drop_sockets.close: close code 1006 is never sent on the wire; use `abrupt` for a cut connection",
            "19:22: timeline[1].block_websocket: needs the embedded mock's fault control and target.url is set; use refuse_websocket (users refuse their own WebSocket)",
            "21:18: timeline[2].set_privacy: set at least one of typing_indicators, read_receipts, delivery_receipts",
            "23:16: thresholds.connect.p99: a latency needs a unit (us, ms, s, m), e.g. \"< 500ms\"",
            "24:3: thresholds.conect.p95: unknown metric `conect.p95`; did you mean `connect.p95`?",
            "25:16: thresholds.errors.rate: condition \"0.1%\" must start with one of <, <=, >, >=, ==, e.g. \"< 0.1%\"",
            "26:3: thresholds.websocket.p99: unknown metric `websocket.p99`; expected `<histogram>.<stat>` such as `connect.p99` or a figure such as `errors.rate` (all are listed in scenarios/README.md)",
            "28:21: conformance.watch[1]: unknown rule area `CONECT`; expected one of: CONN, AUTH, USER, HEALTH, RECONNECT, LONGPOLL, PRIVACY, TYPING, READ, DISCONNECT, ERROR, RATE, DELIVERY",
        ],
    );
}

#[test]
fn yaml_level_problems() {
    assert_problems(
        "invalid/syntax.yaml",
        &["3:5: invalid yaml: while parsing a flow mapping, did not find expected ',' or '}'"],
    );
    assert_problems(
        "invalid/duplicate-key.yaml",
        &["3:1: invalid yaml: duplicate mapping key: users"],
    );
    assert_problems(
        "invalid/two-documents.yaml",
        &["5:1: invalid yaml: a scenario file holds one yaml document (found a `---` separator)"],
    );
    assert_problems(
        "invalid/not-a-mapping.yaml",
        &["1:1: a scenario is a mapping of keys (name, users, load, ...), found a list"],
    );
}

/// The README's complete example must stay valid as the format changes.
#[test]
fn readme_complete_example_is_valid() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/README.md"))
        .expect("scenarios/README.md");
    let section = readme
        .split("## A complete example")
        .nth(1)
        .expect("the section exists");
    let yaml = section
        .split("```yaml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a yaml block");
    let s = parse("README.md", yaml).unwrap_or_else(|e| panic!("README example:\n{e}"));
    assert_eq!(s.name, "full-example");
    assert_eq!(s.users.profile.weights.len(), 5);
}

/// Every YAML fragment in the README parses once the required keys are added around it.
#[test]
fn readme_fragments_are_valid() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/README.md"))
        .expect("scenarios/README.md");
    let mut checked = 0;
    for block in readme.split("```yaml\n").skip(1) {
        let fragment = block.split("```").next().unwrap_or_default();
        let mut text = String::new();
        if !fragment.lines().any(|l| l.starts_with("users:")) {
            // A mixed fleet, so that fragments about mobile-only behaviour (background) apply.
            text.push_str("users: { count: 10000, profile: { js: 50, android: 50 } }\n");
        }
        text.push_str(fragment);
        if !fragment.lines().any(|l| l.starts_with("load:")) {
            text.push_str("load: [ { ramp: { to: 10000, over: 60s } }, { hold: 10m } ]\n");
        }
        if let Err(e) = parse("README.md", &text) {
            panic!("README fragment:\n{fragment}\nproblems:\n{e}");
        }
        checked += 1;
    }
    assert!(checked >= 10, "{checked} fragments");
}

/// A stage that fails to decode leaves the list shorter; no check may then read the plan.
#[test]
fn a_broken_stage_does_not_cascade() {
    let text = "users: { count: 10 }\nload:\n  - hold: 10s\n  - 5\ntimeline:\n  - at: 15s\n    refuse_websocket: {}\n";
    let err = parse("c.yaml", text).expect_err("stage 1 is not a mapping");
    assert_eq!(
        err.lines(),
        ["c.yaml:4:5: load[1]: expected a mapping, found integer `5`"]
    );
}

#[test]
fn background_waves_need_a_length_and_mobile_users() {
    assert_problems(
        "invalid/background.yaml",
        &[
            "7:15: behaviour.background: only mobile apps go to the background and users.profile has no mobile profile; add android, swift, flutter or unity to the mix, e.g. {js: 70, android: 30}",
            "10:17: timeline[0].background.for: required key is missing, e.g. `for: 10s`",
            "12:28: timeline[1].background.fraction: a fraction is above 0 and at most 1 (0.5 = half), found 0",
            "12:36: timeline[1].background.for: must be greater than zero",
            "14:43: timeline[2].background.side: unknown key `side`; expected one of: fraction, for",
            "16:17: timeline[3].background: only mobile apps go to the background and users.profile has no mobile profile; add android, swift, flutter or unity to the mix, e.g. {js: 70, android: 30}",
        ],
    );
}

#[test]
fn plain_websocket_users_need_no_tokens_and_take_the_url_as_it_is() {
    let s = parse_fixture("valid/plain-websocket.yaml").expect("valid");
    assert_eq!(s.users.kind, UserKind::PlainWebsocket);
    assert_eq!(
        s.target,
        TargetSpec::Remote(RemoteTarget {
            url: "ws://127.0.0.1:9001/connect".to_owned(),
            api_key: String::new(),
        })
    );
    let minimal = parse_fixture("valid/minimal.yaml").expect("valid");
    assert_eq!(minimal.users.kind, UserKind::Stream, "stream users are the default");
}

#[test]
fn plain_websocket_users_refuse_what_only_stream_users_use() {
    assert_problems(
        "invalid/bad-plain-websocket.yaml",
        &[
            "2:8: target.url: \"ftp://127.0.0.1:9001/connect\" is not a URL; expected ws|wss|http|https://host[:port][/path]",
            "3:11: target.secret: `secret` applies to stream users; plain-websocket users open target.url as it is",
            "7:12: users.profile: `profile` applies to stream users; plain-websocket users speak no Stream protocol",
            "8:10: users.token: `token` applies to stream users; plain-websocket users speak no Stream protocol",
            "12:3: behaviour: `behaviour` applies to stream users; plain-websocket users only connect and hold",
        ],
    );
    assert_problems(
        "invalid/bad-user-kind.yaml",
        &["3:9: users.kind: unknown value `raw`; expected one of: stream, plain-websocket"],
    );
}

#[test]
fn tls_resumption_takes_off_on_or_a_share() {
    let s = parse_fixture("valid/tls-resumption.yaml").expect("valid");
    assert!((s.users.tls_resumption - 0.5).abs() < 1e-9);
    for (text, want) in [("off", 0.0), ("on", 1.0), ("true", 1.0), ("\"25%\"", 0.25), ("0", 0.0)] {
        let yaml = format!("users:\n  count: 4\n  tls: {{resumption: {text}}}\nload:\n  - hold: 1s\n");
        let s = parse("t.yaml", &yaml).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert!((s.users.tls_resumption - want).abs() < 1e-9, "{text}");
    }
    let none = parse("t.yaml", "users:\n  count: 4\nload:\n  - hold: 1s\n").expect("valid");
    assert!(none.users.tls_resumption.abs() < 1e-9);
    assert_problems(
        "invalid/bad-tls.yaml",
        &[
            "4:21: users.tls.resumption: resumption is off, on, or the share of users that resume their TLS sessions, such as 0.5 or \"50%\"",
            "4:26: users.tls.tickets: unknown key `tickets`; expected one of: resumption",
        ],
    );
}
