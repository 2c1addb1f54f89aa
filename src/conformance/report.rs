//! The result of a suite run as the suite sees it: [`ConformanceReport::new`] with its counts, the
//! exit decision, a lookup by rule id, and the failed result of a case the harness could not run.
//! Rendering it is the report layer's job: `report::conformance` turns it into the typed section
//! the console, JSON, JUnit and HTML renderers read.

use std::time::Duration;

use super::{ConformanceReport, Evidence, Rule, RuleResult, Verdict};

impl RuleResult {
    /// A failed result for a case that could not run to completion because of the harness.
    pub fn harness_error(rule: &Rule, why: &str) -> Self {
        Self {
            id: rule.id,
            area: rule.area,
            section: rule.section,
            requirement: rule.requirement,
            strictness: rule.strictness,
            verdict: Verdict::Failed,
            evidence: Some(Evidence {
                expected: "the case runs to completion".to_owned(),
                received: why.to_owned(),
                user: None,
                wire_log: Vec::new(),
            }),
            duration_ms: 0,
        }
    }
}

impl ConformanceReport {
    /// Builds the report and its counts.
    pub fn new(target: String, strict: bool, took: Duration, results: Vec<RuleResult>) -> Self {
        let count = |f: fn(&Verdict) -> bool| results.iter().filter(|r| f(&r.verdict)).count();
        Self {
            target,
            strict,
            duration_ms: u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
            passed: count(|v| matches!(v, Verdict::Passed)),
            failed: count(|v| matches!(v, Verdict::Failed)),
            non_strict_failures: count(|v| matches!(v, Verdict::NonStrictFailure)),
            skipped: count(|v| matches!(v, Verdict::Skipped { .. })),
            results,
        }
    }

    /// Whether the run failed: a strict rule failed, or with `strict` also a non-strict one.
    /// The CLI exits with code 3 then.
    pub fn exit_failed(&self, strict: bool) -> bool {
        self.failed > 0 || (strict && self.non_strict_failures > 0)
    }

    /// The result of rule `id`.
    pub fn result(&self, id: &str) -> Option<&RuleResult> {
        self.results.iter().find(|r| r.id == id)
    }
}

/// A rule result for tests of the renderers: evidence (with a wire line) when it failed.
#[cfg(test)]
pub(crate) fn sample_result(id: &'static str, verdict: Verdict, strictness: super::Strictness) -> RuleResult {
    let evidence = matches!(verdict, Verdict::Failed | Verdict::NonStrictFailure).then(|| Evidence {
        expected: "a <frame> & more".into(),
        received: "nothing \u{1}".into(),
        user: Some("u1".into()),
        wire_log: vec![super::WireEntry {
            t_ms: 3,
            user: "u1".into(),
            dir: '<',
            kind: "ws-text".into(),
            text: "{\"x\":1}".into(),
        }],
    });
    RuleResult {
        id,
        area: super::Area::Auth,
        section: "§2",
        requirement: "r.",
        strictness,
        verdict,
        evidence,
        duration_ms: 5,
    }
}

/// A suite report of a pass, a non-strict failure and a skip, for tests of the renderers.
#[cfg(test)]
pub(crate) fn sample_report(strict: bool) -> ConformanceReport {
    use super::Strictness;
    ConformanceReport::new(
        "http://x".into(),
        strict,
        std::time::Duration::from_millis(10),
        vec![
            sample_result("AUTH-A", Verdict::Passed, Strictness::Strict),
            sample_result("AUTH-B", Verdict::NonStrictFailure, Strictness::NonStrict),
            sample_result(
                "AUTH-C",
                Verdict::Skipped {
                    reason: "no <rate>".into(),
                },
                Strictness::Strict,
            ),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::Strictness;

    #[test]
    fn exit_decision_follows_strictness() {
        let r = sample_report(false);
        assert!(!r.exit_failed(false));
        assert!(r.exit_failed(true));
        let mut with_fail = r.clone();
        with_fail
            .results
            .push(sample_result("AUTH-D", Verdict::Failed, Strictness::Strict));
        let with_fail = ConformanceReport::new("x".into(), false, Duration::ZERO, with_fail.results);
        assert!(with_fail.exit_failed(false));
    }
}
