//! The implicit checks that keep a run from passing by accident (scenarios/README.md
//! "checks"): the planned users connected, users dropped by a fault came back within their
//! SDK's back-off bounds, the target answered the in-run probe throughout, and what setup
//! created was still on the target at the end. Each is computed from the summary alone, so a
//! merge of shards recomputes it exactly as one process would.

use super::summary::{CheckResult, CheckStatus, RunSummary, StormFigures};
use crate::exit::Outcome;
use chatstorm_protocol::connect::Profile;

/// See [`crate::engine::run::CONNECT_GRACE_MS`] (the engine counts `users_due` with it).
pub use crate::engine::run::CONNECT_GRACE_MS;

/// Time allowed per reconnect attempt on top of the SDK's wait before it (token fetch, upgrade,
/// first `health.check`) in the `recovered` bound.
pub const ATTEMPT_SLACK_MS: u64 = 3_000;

/// Every implicit check of `s`, in a fixed order, with the outcome each failed one asks for.
pub fn evaluate(s: &RunSummary) -> Vec<(CheckResult, Option<Outcome>)> {
    vec![users_connected(s), recovered(s), target_reachable(s), state_kept(s)]
}

fn result(name: &str, expected: String, observed: String, status: CheckStatus) -> CheckResult {
    CheckResult {
        name: name.to_owned(),
        expected,
        observed,
        status,
    }
}

/// Users that connected at least once: every scheduled user records its first connect, and
/// only that one, in the `.intended` view of its transport's connect histogram.
pub fn users_ever_connected(s: &RunSummary) -> u64 {
    ["connect.ws.intended", "connect.longpoll.intended"]
        .iter()
        .filter_map(|t| s.latency.get(*t))
        .map(|l| l.summary.count)
        .sum()
}

fn users_connected(s: &RunSummary) -> (CheckResult, Option<Outcome>) {
    const NAME: &str = "users_connected";
    let Some(share) = s.check_settings.users_connected else {
        return (result(NAME, "off".into(), String::new(), CheckStatus::Off), None);
    };
    let due = s.run.users_due;
    let required = ((share * due as f64) - 1e-9).ceil().max(0.0) as u64;
    let connected = users_ever_connected(s);
    let expected = if share >= 1.0 {
        format!("each of the {due} users due (started 3 s or more before the end) connects at least once")
    } else {
        format!(
            "{required} of the {due} users due (started 3 s or more before the end; {:.1}%) connect at least once",
            share * 100.0
        )
    };
    if due == 0 {
        let observed = format!("no user was due to connect ({} started)", s.run.users_started);
        return (result(NAME, expected, observed, CheckStatus::NoData), None);
    }
    let observed = format!("{connected} of {due} connected");
    if connected >= required {
        (result(NAME, expected, observed, CheckStatus::Passed), None)
    } else {
        // Nobody at all: the target is not a chat server (or not there); some: a failed check.
        let outcome = if connected == 0 {
            Outcome::Unreachable
        } else {
            Outcome::CheckFailed
        };
        (result(NAME, expected, observed, CheckStatus::Failed), Some(outcome))
    }
}

/// The longest a user of `profile` may take to come back after `attempts` attempts: the SDK's
/// longest wait before each attempt plus [`ATTEMPT_SLACK_MS`] per attempt. A drop counts as the
/// first failure for the SDKs whose formula starts at one (JS, Android, Flutter: the first wait
/// is `retryInterval(1)`, up to 2.5 s) and not for Swift (first retry at once), so the wait before
/// attempt `i` is the larger of the formula's bounds at `i` and `i + 1`.
pub fn recovery_bound_ms(profile: Option<Profile>, attempts: u64) -> u64 {
    let params = crate::user::profile::params(profile.unwrap_or(Profile::Js));
    (0..attempts.max(1) as u32)
        .map(|i| params.retry_bounds_ms(i).1.max(params.retry_bounds_ms(i + 1).1) + ATTEMPT_SLACK_MS)
        .sum()
}

/// One storm's verdict: `None` when it cannot be decided (the run ended before its bound).
fn storm_verdict(st: &StormFigures, kind: &str, end_ms: u64) -> (Option<bool>, String) {
    let rows: Vec<(String, &StormFigures)> = if st.by_profile.is_empty() {
        vec![("js".to_owned(), st)]
    } else {
        st.by_profile.iter().map(|(n, p)| (n.clone(), p)).collect()
    };
    let back_from = st.at_ms + st.away_ms;
    let mut undecided = false;
    let mut worst: Option<String> = None;
    for (name, p) in rows {
        if p.dropped == 0 {
            continue;
        }
        let bound = recovery_bound_ms(Profile::from_name(&name), p.attempts_max);
        let late = p.p100_ms.is_some_and(|t| t > bound);
        let missing = p.recovered < p.dropped;
        if late || missing {
            if missing && !late && back_from + bound > end_ms {
                undecided = true;
                continue;
            }
            worst.get_or_insert(format!(
                "{kind} at {:.1}s: {name} {} of {} back, 100% {} (bound {:.1}s)",
                st.at_ms as f64 / 1000.0,
                p.recovered,
                p.dropped,
                p.p100_ms
                    .map_or_else(|| "never".to_owned(), |t| format!("after {:.1}s", t as f64 / 1000.0)),
                bound as f64 / 1000.0
            ));
        }
    }
    match (worst, undecided) {
        (Some(w), _) => (Some(false), w),
        (None, true) => (
            None,
            format!(
                "{kind} at {:.1}s: the run ended before its users' bound",
                st.at_ms as f64 / 1000.0
            ),
        ),
        (None, false) => (
            Some(true),
            format!(
                "{kind} at {:.1}s: {} of {} back",
                st.at_ms as f64 / 1000.0,
                st.recovered,
                st.dropped
            ),
        ),
    }
}

fn recovered(s: &RunSummary) -> (CheckResult, Option<Outcome>) {
    const NAME: &str = "recovered";
    if !s.check_settings.recovered {
        return (result(NAME, "off".into(), String::new(), CheckStatus::Off), None);
    }
    let expected = "every user dropped by a fault back within its SDK's back-off bounds".to_owned();
    let all: Vec<(&StormFigures, &str)> = s
        .storms
        .iter()
        .map(|st| (st, "storm"))
        .chain(s.waves.iter().map(|w| (w, "wave")))
        .filter(|(st, _)| st.dropped > 0)
        .collect();
    if all.is_empty() {
        return (
            result(
                NAME,
                expected,
                "no user was dropped by a fault".into(),
                CheckStatus::NoData,
            ),
            None,
        );
    }
    let verdicts: Vec<(Option<bool>, String)> = all
        .iter()
        .map(|(st, kind)| storm_verdict(st, kind, s.run.duration_ms))
        .collect();
    if let Some((_, why)) = verdicts.iter().find(|(v, _)| *v == Some(false)) {
        return (
            result(NAME, expected, why.clone(), CheckStatus::Failed),
            Some(Outcome::CheckFailed),
        );
    }
    let status = if verdicts.iter().any(|(v, _)| v.is_none()) {
        CheckStatus::NoData
    } else {
        CheckStatus::Passed
    };
    let observed = verdicts.into_iter().map(|(_, w)| w).collect::<Vec<_>>().join("; ");
    (result(NAME, expected, observed, status), None)
}

/// `"target stopped answering at 10.0s and never came back"`, for the verdict's reasons.
pub fn outage_text(o: &super::summary::Outage) -> String {
    match o.to_ms {
        Some(to) => format!(
            "target stopped answering at {:.1}s, back at {:.1}s ({})",
            o.from_ms as f64 / 1000.0,
            to as f64 / 1000.0,
            o.error
        ),
        None => format!(
            "target died at {:.1}s: no answer from then to the end of the run ({})",
            o.from_ms as f64 / 1000.0,
            o.error
        ),
    }
}

fn target_reachable(s: &RunSummary) -> (CheckResult, Option<Outcome>) {
    const NAME: &str = "target_reachable";
    if !s.check_settings.target_reachable {
        return (result(NAME, "off".into(), String::new(), CheckStatus::Off), None);
    }
    let h = &s.target_health;
    let expected = "the target answers the probe every second of the run".to_owned();
    if h.probes == 0 {
        return (
            result(NAME, expected, "no probe was sent".into(), CheckStatus::NoData),
            None,
        );
    }
    if !h.outages.is_empty() {
        let observed = h.outages.iter().map(outage_text).collect::<Vec<_>>().join("; ");
        return (
            result(NAME, expected, observed, CheckStatus::Failed),
            Some(Outcome::TargetLost),
        );
    }
    let observed = format!("{} of {} probes answered", h.probes - h.failures, h.probes);
    (result(NAME, expected, observed, CheckStatus::Passed), None)
}

fn state_kept(s: &RunSummary) -> (CheckResult, Option<Outcome>) {
    const NAME: &str = "state_kept";
    if !s.check_settings.state_kept {
        return (result(NAME, "off".into(), String::new(), CheckStatus::Off), None);
    }
    let expected = "the channels and memberships created at setup are still there at the end".to_owned();
    let Some(st) = &s.state else {
        return (
            result(
                NAME,
                expected,
                "not checked (no setup: no secret, or plain WebSocket users)".into(),
                CheckStatus::NoData,
            ),
            None,
        );
    };
    if let Some(e) = &st.error {
        return (
            result(
                NAME,
                expected,
                format!("the target could not be asked: {e}"),
                CheckStatus::Failed,
            ),
            Some(Outcome::CheckFailed),
        );
    }
    let observed = format!(
        "{} of {} channels and {} of {} memberships missing{}",
        st.channels_missing,
        st.channels_checked,
        st.memberships_missing,
        st.memberships_checked,
        if st.examples.is_empty() {
            String::new()
        } else {
            format!(" (e.g. {})", st.examples.join(", "))
        }
    );
    if st.channels_missing + st.memberships_missing > 0 {
        (
            result(NAME, expected, observed, CheckStatus::Failed),
            Some(Outcome::CheckFailed),
        )
    } else {
        (result(NAME, expected, observed, CheckStatus::Passed), None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::summary::{LatencyFigures, Outage, StateFigures};

    fn summary(connected: u64, due: u64) -> RunSummary {
        let mut s: RunSummary = serde_json::from_value(serde_json::json!({
            "schema": super::super::summary::SCHEMA_ID,
            "tool": {"name": "chatstorm", "version": "0"},
            "run": {"name": "t", "description": null, "scenario_file": null, "seed": 1, "target": "x",
                    "target_is_mock": true, "started_at": "", "duration_ms": 30000, "planned_ms": 30000,
                    "users_planned": due, "users_started": due, "users_due": due, "shards": 1,
                    "interrupted": false, "stop_reason": null},
            "verdict": {"outcome": "", "exit_code": 0, "reasons": []},
            "latency": {}, "errors": {"total": 0, "operations": 0, "rate_percent": 0.0, "by_code": {}, "by_close_code": {}},
            "storms": [], "timeline": [], "thresholds": [], "conformance": null,
            "generator": {"fd_limit": 0, "fd_peak": 0, "scheduler_lag_p99_us": 0, "scheduler_lag_max_us": 0,
                          "scheduler_lag_bound_us": 0, "late_starts": 0, "resource_failures": 0, "peak_rss_bytes": 0,
                          "rss_per_user_bytes": 0, "cpu_seconds": 0.0, "saturated": false, "reasons": []},
            "by_profile": {},
            "metrics": serde_json::to_value(crate::metrics::MetricsSnapshot::default()).expect("json"),
        }))
        .expect("a summary");
        let mut l = LatencyFigures::default();
        l.summary.count = connected;
        s.latency.insert("connect.ws.intended".into(), l);
        s.target_health.probes = 30;
        s
    }

    fn status(s: &RunSummary, name: &str) -> (CheckStatus, Option<Outcome>) {
        let (c, o) = evaluate(s)
            .into_iter()
            .find(|(c, _)| c.name == name)
            .expect("the check");
        (c.status, o)
    }

    #[test]
    fn users_connected_asks_for_every_due_user_or_the_share() {
        assert_eq!(status(&summary(10, 10), "users_connected").0, CheckStatus::Passed);
        assert_eq!(
            status(&summary(9, 10), "users_connected"),
            (CheckStatus::Failed, Some(Outcome::CheckFailed))
        );
        assert_eq!(
            status(&summary(0, 10), "users_connected"),
            (CheckStatus::Failed, Some(Outcome::Unreachable))
        );
        let mut s = summary(9, 10);
        s.check_settings.users_connected = Some(0.9);
        assert_eq!(status(&s, "users_connected").0, CheckStatus::Passed);
        s.check_settings.users_connected = None;
        assert_eq!(status(&s, "users_connected").0, CheckStatus::Off);
        assert_eq!(status(&summary(0, 0), "users_connected").0, CheckStatus::NoData);
    }

    fn storm(dropped: u64, recovered: u64, p100_ms: Option<u64>) -> StormFigures {
        StormFigures {
            label: "drop".into(),
            at_ms: 5000,
            dropped,
            recovered,
            p100_ms,
            attempts_max: 1,
            ..StormFigures::default()
        }
    }

    #[test]
    fn recovered_holds_users_to_their_sdks_bound() {
        let mut s = summary(10, 10);
        assert_eq!(
            status(&s, "recovered").0,
            CheckStatus::NoData,
            "no storm, nothing to check"
        );
        s.storms = vec![storm(10, 10, Some(2000))];
        assert_eq!(status(&s, "recovered").0, CheckStatus::Passed);
        let bound = recovery_bound_ms(Some(Profile::Js), 1);
        s.storms = vec![storm(10, 10, Some(bound + 1))];
        assert_eq!(status(&s, "recovered").0, CheckStatus::Failed, "late");
        s.storms = vec![storm(10, 9, None)];
        assert_eq!(status(&s, "recovered").0, CheckStatus::Failed, "one never came back");
        // A drop 1 s before the end cannot be judged yet: no data, not failed, not passed.
        s.storms = vec![StormFigures {
            at_ms: 29_000,
            ..storm(10, 9, None)
        }];
        assert_eq!(status(&s, "recovered").0, CheckStatus::NoData);
    }

    #[test]
    fn an_outage_is_a_lost_target_named_with_its_time() {
        let mut s = summary(10, 10);
        assert_eq!(status(&s, "target_reachable").0, CheckStatus::Passed);
        s.target_health.outages.push(Outage {
            from_ms: 10_000,
            to_ms: None,
            error: "connection refused".into(),
        });
        assert_eq!(
            status(&s, "target_reachable"),
            (CheckStatus::Failed, Some(Outcome::TargetLost))
        );
        crate::report::build::decide(&mut s);
        assert_eq!(s.verdict.exit_code, 5);
        assert!(
            s.verdict.reasons[0].starts_with("target died at 10.0s"),
            "{:?}",
            s.verdict.reasons
        );
    }

    #[test]
    fn vanished_state_fails_and_no_setup_is_no_data() {
        let mut s = summary(10, 10);
        assert_eq!(status(&s, "state_kept").0, CheckStatus::NoData);
        s.state = Some(StateFigures {
            channels_checked: 4,
            memberships_checked: 20,
            ..StateFigures::default()
        });
        assert_eq!(status(&s, "state_kept").0, CheckStatus::Passed);
        if let Some(st) = s.state.as_mut() {
            st.memberships_missing = 3;
        }
        assert_eq!(
            status(&s, "state_kept"),
            (CheckStatus::Failed, Some(Outcome::CheckFailed))
        );
    }
}
