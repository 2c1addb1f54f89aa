//! Outputs of a suite run: the exit decision, a console table, JUnit XML (one testcase per rule,
//! failures carrying expected/received and the wire log) and the serde form for `summary.json`.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::client::one_line;
use super::{ConformanceReport, Evidence, Rule, RuleResult, Strictness, Verdict};

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

    /// The verdict as a short word for tables.
    pub fn verdict_word(&self) -> &'static str {
        match self.verdict {
            Verdict::Passed => "passed",
            Verdict::Failed => "FAILED",
            Verdict::NonStrictFailure => "non-strict failure",
            Verdict::Skipped { .. } => "skipped",
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

    /// Writes `junit.xml`, `conformance.json` (this report) and `conformance.txt` (the console
    /// table) into `dir`, creating it; returns the paths written.
    ///
    /// # Errors
    /// File system errors.
    pub fn write_to_dir(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir)?;
        let mut written = Vec::new();
        let mut put = |name: &str, bytes: Vec<u8>| -> io::Result<()> {
            let p = dir.join(name);
            std::fs::write(&p, bytes)?;
            written.push(p);
            Ok(())
        };
        let mut junit = Vec::new();
        self.write_junit(&mut junit)?;
        put("junit.xml", junit)?;
        put(
            "conformance.json",
            serde_json::to_vec_pretty(self).map_err(io::Error::other)?,
        )?;
        let mut console = Vec::new();
        self.write_console(&mut console)?;
        put("conformance.txt", console)?;
        Ok(written)
    }

    /// A console table: one line per rule, then the evidence of each failure.
    ///
    /// # Errors
    /// Write errors.
    pub fn write_console(&self, w: &mut dyn Write) -> io::Result<()> {
        writeln!(
            w,
            "conformance against {} ({} rules, {} ms)",
            self.target,
            self.results.len(),
            self.duration_ms
        )?;
        writeln!(
            w,
            "{:<30} {:<10} {:<20} {:>7}  requirement",
            "rule", "grade", "verdict", "ms"
        )?;
        for r in &self.results {
            let grade = match r.strictness {
                Strictness::Strict => "strict",
                Strictness::NonStrict => "non-strict",
            };
            writeln!(
                w,
                "{:<30} {:<10} {:<20} {:>7}  {} [{}]",
                r.id,
                grade,
                r.verdict_word(),
                r.duration_ms,
                r.requirement,
                r.section
            )?;
            if let Verdict::Skipped { reason } = &r.verdict {
                writeln!(w, "{:<30} skipped: {reason}", "")?;
            }
        }
        for r in self.results.iter().filter(|r| r.evidence.is_some()) {
            let Some(e) = &r.evidence else { continue };
            writeln!(w)?;
            writeln!(w, "--- {} ({}) {}", r.id, r.verdict_word(), r.section)?;
            write_evidence(w, e)?;
        }
        writeln!(
            w,
            "\n{} passed, {} failed, {} non-strict failures, {} skipped{}",
            self.passed,
            self.failed,
            self.non_strict_failures,
            self.skipped,
            if self.exit_failed(self.strict) {
                " -> FAILED"
            } else {
                ""
            }
        )
    }

    /// JUnit XML: one testsuite, one testcase per rule (`classname` = area), `<failure>` with the
    /// evidence for failures (non-strict ones only when `strict`), `<skipped>` with the reason.
    ///
    /// # Errors
    /// Write errors.
    pub fn write_junit(&self, w: &mut dyn Write) -> io::Result<()> {
        let failures = self.failed + if self.strict { self.non_strict_failures } else { 0 };
        writeln!(w, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
        writeln!(
            w,
            r#"<testsuites name="chatstorm conformance" tests="{}" failures="{failures}" skipped="{}" time="{:.3}">"#,
            self.results.len(),
            self.skipped,
            ms_to_s(self.duration_ms)
        )?;
        writeln!(
            w,
            r#"  <testsuite name="conformance {}" tests="{}" failures="{failures}" errors="0" skipped="{}" time="{:.3}">"#,
            xml(&self.target),
            self.results.len(),
            self.skipped,
            ms_to_s(self.duration_ms)
        )?;
        for r in &self.results {
            let area = serde_json::to_value(r.area)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            write!(
                w,
                r#"    <testcase name="{} {}" classname="conformance.{area}" time="{:.3}">"#,
                r.id,
                xml(r.requirement),
                ms_to_s(r.duration_ms)
            )?;
            let counts =
                matches!(r.verdict, Verdict::Failed) || (self.strict && matches!(r.verdict, Verdict::NonStrictFailure));
            match (&r.verdict, &r.evidence) {
                (Verdict::Skipped { reason }, _) => write!(w, r#"<skipped message="{}"/>"#, xml(reason))?,
                (Verdict::Failed | Verdict::NonStrictFailure, Some(e)) => {
                    let mut text = Vec::new();
                    writeln!(text, "{} {}", r.section, r.requirement)?;
                    write_evidence(&mut text, e)?;
                    let text = String::from_utf8_lossy(&text);
                    let tag = if counts { "failure" } else { "system-out" };
                    if counts {
                        write!(
                            w,
                            "\n      <failure message=\"expected {}; received {}\" type=\"{}\">{}</failure>\n    ",
                            xml(&e.expected),
                            xml(&e.received),
                            r.verdict_word(),
                            xml(&text)
                        )?;
                    } else {
                        write!(
                            w,
                            "\n      <{tag}>non-strict failure (not counted without --strict)\n{}</{tag}>\n    ",
                            xml(&text)
                        )?;
                    }
                }
                _ => {}
            }
            writeln!(w, "</testcase>")?;
        }
        writeln!(w, "  </testsuite>")?;
        writeln!(w, "</testsuites>")
    }
}

fn write_evidence(w: &mut dyn Write, e: &Evidence) -> io::Result<()> {
    writeln!(w, "expected: {}", e.expected)?;
    writeln!(w, "received: {}", e.received)?;
    if let Some(u) = &e.user {
        writeln!(w, "user:     {u}")?;
    }
    writeln!(w, "wire log:")?;
    for l in &e.wire_log {
        // The full texts are in the JSON report; keep the human view scannable.
        writeln!(
            w,
            "  {:>6} ms {} {} {:<14} {}",
            l.t_ms,
            l.dir,
            l.user,
            l.kind,
            one_line(&l.text, 400)
        )?;
    }
    Ok(())
}

fn ms_to_s(ms: u64) -> f64 {
    // Durations are small; the precision loss of u64 -> f64 is irrelevant here.
    #[allow(clippy::cast_precision_loss)]
    let s = ms as f64 / 1000.0;
    s
}

/// XML escaping shared with the run's JUnit writer.
use crate::markup::escape as xml;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::{Area, WireEntry};

    fn result(id: &'static str, verdict: Verdict, strictness: Strictness) -> RuleResult {
        let evidence = matches!(verdict, Verdict::Failed | Verdict::NonStrictFailure).then(|| Evidence {
            expected: "a <frame> & more".into(),
            received: "nothing \u{1}".into(),
            user: Some("u1".into()),
            wire_log: vec![WireEntry {
                t_ms: 3,
                user: "u1".into(),
                dir: '<',
                kind: "ws-text".into(),
                text: "{\"x\":1}".into(),
            }],
        });
        RuleResult {
            id,
            area: Area::Auth,
            section: "§2",
            requirement: "r.",
            strictness,
            verdict,
            evidence,
            duration_ms: 5,
        }
    }

    fn report(strict: bool) -> ConformanceReport {
        ConformanceReport::new(
            "http://x".into(),
            strict,
            Duration::from_millis(10),
            vec![
                result("AUTH-A", Verdict::Passed, Strictness::Strict),
                result("AUTH-B", Verdict::NonStrictFailure, Strictness::NonStrict),
                result(
                    "AUTH-C",
                    Verdict::Skipped {
                        reason: "no <rate>".into(),
                    },
                    Strictness::Strict,
                ),
            ],
        )
    }

    #[test]
    fn exit_decision_follows_strictness() {
        let r = report(false);
        assert!(!r.exit_failed(false));
        assert!(r.exit_failed(true));
        let mut with_fail = r.clone();
        with_fail
            .results
            .push(result("AUTH-D", Verdict::Failed, Strictness::Strict));
        let with_fail = ConformanceReport::new("x".into(), false, Duration::ZERO, with_fail.results);
        assert!(with_fail.exit_failed(false));
    }

    #[test]
    fn junit_escapes_and_counts() {
        let mut out = Vec::new();
        report(true).write_junit(&mut out).unwrap();
        let s = String::from_utf8(out).unwrap();
        assert!(s.contains(r#"failures="1""#), "{s}");
        assert!(
            s.contains("<failure message=\"expected a &lt;frame&gt; &amp; more; received nothing \""),
            "{s}"
        );
        assert!(s.contains(r#"<skipped message="no &lt;rate&gt;"/>"#));
        assert!(!s.contains('\u{1}'));
        let mut out = Vec::new();
        report(false).write_junit(&mut out).unwrap();
        let s = String::from_utf8(out).unwrap();
        assert!(s.contains(r#"failures="0""#) && s.contains("<system-out>"), "{s}");
    }

    #[test]
    fn writes_three_files() {
        let dir = std::env::temp_dir().join(format!("chatstorm-conf-{}", std::process::id()));
        let paths = report(false).write_to_dir(&dir).unwrap();
        assert_eq!(paths.len(), 3);
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("conformance.json")).unwrap()).unwrap();
        assert_eq!(json["results"][1]["verdict"], "non_strict_failure");
        assert_eq!(json["results"][2]["reason"], "no <rate>");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn console_shows_evidence_and_summary() {
        let mut out = Vec::new();
        report(false).write_console(&mut out).unwrap();
        let s = String::from_utf8(out).unwrap();
        assert!(s.contains("--- AUTH-B (non-strict failure)"));
        assert!(s.contains("expected: a <frame> & more"));
        assert!(s.contains("1 passed, 0 failed, 1 non-strict failures, 1 skipped"));
    }
}
