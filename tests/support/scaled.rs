//! The shipped scenarios as the in-process tests run them: each scaled down to a size two cores
//! and a debug build carry in well under a minute, by one rule per file (`scaled`). Both
//! `tests/scenarios.rs` (plain) and `tests/tls_scenarios.rs` (over TLS) run every file through
//! it, so the two suites cannot drift apart and a new scenario without a rule fails both
//! (`every_shipped_scenario_is_scaled`). The full sizes run in `tests/shipped.rs`.

#![allow(dead_code)]

use chatstorm::scenario::{self, Scenario};
use std::path::PathBuf;
use std::time::Duration;

/// The shipped scenario `name` (a file of `scenarios/`), as shipped.
pub fn shipped(name: &str) -> Scenario {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios").join(name);
    scenario::load(&path).unwrap_or_else(|e| panic!("{name} does not validate:\n{e}"))
}

/// How one shipped scenario is made smaller.
enum Rule {
    /// This many users, every time of the scenario (load, timeline) multiplied by the factor.
    Scale(u64, f64),
    /// This many users and this long, times unchanged (for rules that do not scale).
    Cut(u64, Duration),
}

/// The rule of each shipped scenario, and why where it is not obvious.
fn rule(name: &str) -> Option<Rule> {
    Some(match name {
        // 0.8: the refused-upgrade window must stay longer than the JS SDK's 6 s fallback rule.
        "smoke.yaml" => Rule::Scale(150, 0.8),
        "token-expiry.yaml" => Rule::Scale(100, 0.4),
        "reconnect-storm.yaml" => Rule::Scale(120, 0.5),
        // Not time-scaled: the JS rule (healthy within 6 s) does not scale; fewer users, shorter.
        "longpoll-fallback.yaml" => Rule::Cut(40, Duration::from_secs(24)),
        "privacy.yaml" => Rule::Scale(60, 0.4),
        "capacity-ramp.yaml" => Rule::Scale(200, 0.15),
        "mixed-fleet.yaml" => Rule::Scale(150, 0.5),
        _ => return None,
    })
}

/// The shipped scenario `name`, scaled down by its rule.
pub fn scaled(name: &str) -> Scenario {
    let s = shipped(name);
    let mut s = match rule(name).unwrap_or_else(|| panic!("{name} has no scaling rule in tests/support/scaled.rs")) {
        Rule::Scale(users, factor) => s.with_users(users).unwrap().with_time_scale(factor).unwrap(),
        Rule::Cut(users, length) => s.with_users(users).unwrap().with_duration(length).unwrap(),
    };
    if name == "reconnect-storm.yaml" {
        // Scaled to 120 users the shipped channels (100 of 50 members) would put every user in
        // 30 channels of 50: the JS recovery re-query then asks the (debug-built, in-process)
        // mock for 1,500 members per user and the test measures the mock's JSON, not the
        // back-off.
        s.channels.count = 24;
        s.channels.members = 10;
    }
    s
}

/// The names of every file of `scenarios/`.
pub fn every_shipped() -> Vec<String> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Every shipped scenario has a rule here (a new one must add its own).
pub fn every_shipped_scenario_is_scaled() {
    for name in every_shipped() {
        assert!(
            rule(&name).is_some(),
            "{name} has no scaling rule in tests/support/scaled.rs"
        );
    }
}
