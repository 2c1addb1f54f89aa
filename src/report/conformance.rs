//! The typed conformance section ([`ConformanceSection`]) built from either source: the scripted
//! suite's report (`chatstorm conform`) or the rules watched during a load run. Both become the
//! same type, so the console, JSON, JUnit and HTML renderers have one thing to read. Also the
//! evidence as text, which the console, JUnit and HTML show alike.

use super::summary::{ConformanceRule, ConformanceSection, ConformanceSource, RuleEvidence};
use crate::conformance::{ConformanceReport, ObserverSummary, Strictness, Verdict, rules};
use std::fmt::Write;

/// The longest wire-log text shown per line; the JSON keeps the whole text.
const WIRE_TEXT_MAX: usize = 400;

/// The section of a suite run.
pub fn from_suite(report: &ConformanceReport) -> ConformanceSection {
    let rules = report
        .results
        .iter()
        .map(|r| ConformanceRule {
            id: r.id.to_owned(),
            area: r.area,
            section: r.section.to_owned(),
            requirement: r.requirement.to_owned(),
            strictness: r.strictness,
            verdict: r.verdict.clone(),
            observed: None,
            failures: None,
            duration_ms: Some(r.duration_ms),
            evidence: r.evidence.as_ref().map(|e| RuleEvidence {
                expected: e.expected.clone(),
                received: e.received.clone(),
                user: e.user.clone(),
                at_ms: None,
                wire_log: e.wire_log.clone(),
            }),
        })
        .collect();
    counted(ConformanceSection {
        source: ConformanceSource::Suite,
        target: Some(report.target.clone()),
        strict: report.strict,
        duration_ms: Some(report.duration_ms),
        passed: 0,
        failed: 0,
        non_strict_failures: 0,
        skipped: 0,
        rules,
    })
}

/// The section of a load run: a rule with a violation failed (non-strict failure for a
/// non-strict rule), one without passed; rules never observed are left out.
pub fn from_observer(s: &ObserverSummary, strict: bool) -> ConformanceSection {
    let table = rules();
    let rules = s
        .rules
        .iter()
        .filter_map(|r| {
            // The observer only knows ids of the table; a missing one would be a bug upstream.
            let rule = table.iter().find(|t| t.id == r.id)?;
            let verdict = match (r.failures, r.strictness) {
                (0, _) => Verdict::Passed,
                (_, Strictness::Strict) => Verdict::Failed,
                (_, Strictness::NonStrict) => Verdict::NonStrictFailure,
            };
            Some(ConformanceRule {
                id: r.id.to_owned(),
                area: rule.area,
                section: rule.section.to_owned(),
                requirement: rule.requirement.to_owned(),
                strictness: r.strictness,
                verdict,
                observed: Some(r.checks),
                failures: Some(r.failures),
                duration_ms: None,
                evidence: r.first_failure.as_ref().map(|f| RuleEvidence {
                    expected: f.expected.clone(),
                    received: f.received.clone(),
                    user: Some(f.user.clone()),
                    at_ms: Some(f.at_ms),
                    wire_log: Vec::new(),
                }),
            })
        })
        .collect();
    counted(ConformanceSection {
        source: ConformanceSource::Observed,
        target: None,
        strict,
        duration_ms: None,
        passed: 0,
        failed: 0,
        non_strict_failures: 0,
        skipped: 0,
        rules,
    })
}

/// Fills the counts from the rules' verdicts.
fn counted(mut s: ConformanceSection) -> ConformanceSection {
    let count = |f: fn(&Verdict) -> bool| s.rules.iter().filter(|r| f(&r.verdict)).count() as u64;
    s.passed = count(|v| matches!(v, Verdict::Passed));
    s.failed = count(|v| matches!(v, Verdict::Failed));
    s.non_strict_failures = count(|v| matches!(v, Verdict::NonStrictFailure));
    s.skipped = count(|v| matches!(v, Verdict::Skipped { .. }));
    s
}

/// The evidence of `rule` for people: expected, received, who and when, how many observations
/// failed, and the wire log one line per entry (texts cut; the JSON has them whole). Empty when
/// the rule has no evidence.
pub fn evidence_text(rule: &ConformanceRule) -> String {
    let mut t = String::new();
    let Some(e) = &rule.evidence else {
        return t;
    };
    let _ = writeln!(t, "expected: {}", e.expected);
    let _ = writeln!(t, "received: {}", e.received);
    if let Some(u) = &e.user {
        let _ = writeln!(t, "user:     {u}");
    }
    if let Some(at) = e.at_ms {
        let _ = writeln!(t, "at:       {at} ms");
    }
    if let (Some(checks), Some(failures)) = (rule.observed, rule.failures) {
        let _ = writeln!(t, "failed:   {failures} of {checks} observations");
    }
    if !e.wire_log.is_empty() {
        let _ = writeln!(t, "wire log:");
        for l in &e.wire_log {
            let _ = writeln!(
                t,
                "  {:>6} ms {} {} {:<14} {}",
                l.t_ms,
                l.dir,
                l.user,
                l.kind,
                crate::conformance::client::one_line(&l.text, WIRE_TEXT_MAX)
            );
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::{ObservedFailure, RuleCount};

    use crate::conformance::sample_report;

    #[test]
    fn suite_section_counts_and_serializes_the_verdict_once() {
        let s = from_suite(&sample_report(false));
        assert_eq!((s.passed, s.failed, s.non_strict_failures, s.skipped), (1, 0, 1, 1));
        assert_eq!(s.failing(), 0);
        assert_eq!(from_suite(&sample_report(true)).failing(), 1);
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["rules"][1]["verdict"], "non_strict_failure");
        assert_eq!(json["rules"][2]["verdict"], "skipped");
        assert_eq!(json["rules"][2]["reason"], "no <rate>");
        let back: ConformanceSection = serde_json::from_value(json).unwrap();
        assert_eq!(back, s);
        assert!(evidence_text(&s.rules[1]).contains("wire log:\n       3 ms < u1 ws-text"));
    }

    #[test]
    fn observed_section_fails_strict_rules_and_counts_non_strict_ones_only_when_strict() {
        let table = rules();
        let strict = table.iter().find(|r| r.strictness == Strictness::Strict).unwrap();
        let lax = table.iter().find(|r| r.strictness == Strictness::NonStrict).unwrap();
        let count = |rule: &crate::conformance::Rule, failures| RuleCount {
            id: rule.id,
            strictness: rule.strictness,
            checks: 20,
            failures,
            first_failure: (failures > 0).then(|| ObservedFailure {
                at_ms: 7,
                user: "u".into(),
                expected: "e".into(),
                received: "r".into(),
            }),
        };
        let observed = ObserverSummary {
            rules: vec![count(strict, 1), count(lax, 2)],
        };
        let s = from_observer(&observed, false);
        assert_eq!(s.rules[0].verdict, Verdict::Failed);
        assert_eq!(s.rules[1].verdict, Verdict::NonStrictFailure);
        assert_eq!(s.rules[1].detail(), "2 of 20 observations failed");
        assert_eq!((s.failed, s.non_strict_failures, s.failing()), (1, 1, 1));
        assert_eq!(from_observer(&observed, true).failing(), 2);
        assert!(evidence_text(&s.rules[0]).contains("at:       7 ms"));
    }

    #[test]
    fn junit_escapes_and_counts_non_strict_failures_only_when_strict() {
        let junit = |strict| {
            let mut out = Vec::new();
            crate::report::junit::write_conformance(&from_suite(&sample_report(strict)), &mut out).unwrap();
            String::from_utf8(out).unwrap()
        };
        let s = junit(true);
        assert!(s.contains(r#"tests="3" failures="1" errors="0" skipped="1""#), "{s}");
        assert!(
            s.contains("expected: a &lt;frame&gt; &amp; more\nreceived: nothing \n"),
            "{s}"
        );
        assert!(s.contains(r#"<skipped message="no &lt;rate&gt;"/>"#), "{s}");
        assert!(!s.contains('\u{1}'));
        let s = junit(false);
        assert!(s.contains(r#"tests="3" failures="0" errors="0" skipped="2""#), "{s}");
        assert!(s.contains("non-strict failure (not counted without strict)"), "{s}");
    }

    #[test]
    fn console_shows_evidence_and_summary() {
        let mut out = Vec::new();
        crate::report::console::write_conformance(&from_suite(&sample_report(false)), &mut out).unwrap();
        let s = String::from_utf8(out).unwrap();
        assert!(s.starts_with("conformance against http://x (3 rules, 10 ms)"), "{s}");
        assert!(s.contains("--- AUTH-B (non-strict failure)"), "{s}");
        assert!(s.contains("expected: a <frame> & more"), "{s}");
        assert!(
            s.contains("1 passed, 0 failed, 1 non-strict failures, 1 skipped\n"),
            "{s}"
        );
        let mut out = Vec::new();
        crate::report::console::write_conformance(&from_suite(&sample_report(true)), &mut out).unwrap();
        assert!(String::from_utf8(out).unwrap().contains("1 skipped -> FAILED"));
    }

    #[test]
    fn conform_writes_its_files() {
        let dir = std::env::temp_dir().join(format!("chatstorm-conf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let section = from_suite(&sample_report(false));
        let wrote = crate::report::output::write_conformance_outputs(&section, &dir);
        assert_eq!(
            wrote,
            ["conformance.json", "junit.xml", "conformance.txt", "report.html"]
        );
        let back: ConformanceSection =
            serde_json::from_slice(&std::fs::read(dir.join("conformance.json")).unwrap()).unwrap();
        assert_eq!(back, section);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
