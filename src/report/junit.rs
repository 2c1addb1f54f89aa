//! `junit.xml` for CI systems: one testsuite for the run's verdict (one testcase, failed unless
//! the run passed: a failed run is never all green), one for the implicit checks, one for
//! thresholds (a testcase each; one with no data fails), one for the generator's honesty, and one
//! for the conformance rules watched (a testcase per rule, the failure text carrying the
//! evidence). `chatstorm conform` writes that last testsuite alone ([`write_conformance`]).
//! Every string is XML-escaped.

use super::summary::{CheckStatus, ConformanceSection, RunSummary};
use crate::conformance::Verdict;
use std::io::{self, Write};
use std::path::Path;

pub use crate::markup::escape;

struct Case {
    name: String,
    failure: Option<(String, String)>,
    skipped: Option<String>,
}

fn suite(w: &mut dyn Write, name: &str, cases: &[Case]) -> io::Result<()> {
    let failures = cases.iter().filter(|c| c.failure.is_some()).count();
    let skipped = cases.iter().filter(|c| c.skipped.is_some()).count();
    writeln!(
        w,
        r#"  <testsuite name="{}" tests="{}" failures="{failures}" skipped="{skipped}">"#,
        escape(name),
        cases.len()
    )?;
    for c in cases {
        write!(
            w,
            r#"    <testcase classname="{}" name="{}""#,
            escape(name),
            escape(&c.name)
        )?;
        match (&c.failure, &c.skipped) {
            (Some((msg, text)), _) => {
                writeln!(w, ">")?;
                writeln!(
                    w,
                    r#"      <failure message="{}">{}</failure>"#,
                    escape(msg),
                    escape(text)
                )?;
                writeln!(w, "    </testcase>")?;
            }
            (None, Some(reason)) => {
                writeln!(w, ">")?;
                writeln!(w, r#"      <skipped message="{}"/>"#, escape(reason))?;
                writeln!(w, "    </testcase>")?;
            }
            (None, None) => writeln!(w, "/>")?,
        }
    }
    writeln!(w, "  </testsuite>")
}

/// The conformance rules as JUnit cases: a failure that counts (see
/// [`ConformanceSection::counts`]) is a `<failure>` whose message is the requirement and whose text
/// is the evidence; a skipped rule, and a non-strict failure that does not count, are `<skipped>`
/// with the reason.
fn conformance_cases(c: &ConformanceSection) -> Vec<Case> {
    c.rules
        .iter()
        .map(|r| {
            let detail = r.detail();
            let skipped = match r.verdict {
                Verdict::Skipped { .. } => Some(detail.clone()),
                Verdict::NonStrictFailure if !c.counts(r) => Some(if detail.is_empty() {
                    "non-strict failure (not counted without strict)".to_owned()
                } else {
                    format!("non-strict failure (not counted without strict): {detail}")
                }),
                _ => None,
            };
            Case {
                name: r.id.clone(),
                failure: c.counts(r).then(|| {
                    (
                        r.requirement.clone(),
                        super::conformance::evidence_text(r).trim_end().to_owned(),
                    )
                }),
                skipped,
            }
        })
        .collect()
}

/// Writes the JUnit XML of a run.
///
/// # Errors
/// When `w` fails.
pub fn write(s: &RunSummary, w: &mut dyn Write) -> io::Result<()> {
    writeln!(w, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
    writeln!(w, r#"<testsuites name="chatstorm {}">"#, escape(&s.run.name))?;
    let verdict = vec![Case {
        name: "run verdict".to_owned(),
        failure: (s.verdict.exit_code != 0).then(|| {
            (
                format!("{} (exit {})", s.verdict.outcome, s.verdict.exit_code),
                s.verdict.reasons.join("\n"),
            )
        }),
        skipped: None,
    }];
    suite(w, "verdict", &verdict)?;
    let checks: Vec<Case> = s
        .checks
        .iter()
        .map(|c| Case {
            name: c.name.clone(),
            failure: (c.status == CheckStatus::Failed).then(|| {
                (
                    format!("check {} failed", c.name),
                    format!(
                        "expected: {}\nobserved: {}{}",
                        c.expected,
                        c.observed,
                        if c.name == "users_connected" {
                            super::build::kinds_clause(&s.errors)
                                .replacen("; ", "\n", 1)
                                .replace("; ", "\n")
                        } else {
                            String::new()
                        }
                    ),
                )
            }),
            skipped: match c.status {
                CheckStatus::NoData => Some(format!("no data: {}", c.observed)),
                CheckStatus::Off => Some("turned off in the scenario's checks".to_owned()),
                _ => None,
            },
        })
        .collect();
    if !checks.is_empty() {
        suite(w, "checks", &checks)?;
    }
    let thresholds: Vec<Case> = s
        .thresholds
        .iter()
        .map(|t| Case {
            name: format!("{} {}", t.metric, t.condition),
            failure: (!t.passed).then(|| {
                let what = if t.no_data { "has no data" } else { "breached" };
                (
                    format!("threshold {} {} {what}", t.metric, t.condition),
                    format!("observed {}", t.observed_text),
                )
            }),
            skipped: None,
        })
        .collect();
    suite(w, "thresholds", &thresholds)?;
    let g = &s.generator;
    let generator = vec![Case {
        name: "generator kept up".to_owned(),
        failure: g.saturated.then(|| {
            (
                "the load generator was saturated; the run is invalid".to_owned(),
                g.reasons.join("\n"),
            )
        }),
        skipped: None,
    }];
    suite(w, "generator", &generator)?;
    if let Some(c) = s.conformance.as_ref().filter(|c| !c.rules.is_empty()) {
        suite(w, "conformance", &conformance_cases(c))?;
    }
    writeln!(w, "</testsuites>")
}

/// Writes the JUnit XML of `chatstorm conform`: the same `conformance` testsuite a run's
/// `junit.xml` carries, alone.
///
/// # Errors
/// When `w` fails.
pub fn write_conformance(c: &ConformanceSection, w: &mut dyn Write) -> io::Result<()> {
    writeln!(w, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
    writeln!(w, r#"<testsuites name="chatstorm conform">"#)?;
    suite(w, "conformance", &conformance_cases(c))?;
    writeln!(w, "</testsuites>")
}

/// Writes `junit.xml` into `dir`.
///
/// # Errors
/// When the file cannot be written.
pub fn write_file(s: &RunSummary, dir: &Path) -> io::Result<()> {
    let mut buf = Vec::new();
    write(s, &mut buf)?;
    std::fs::write(dir.join("junit.xml"), buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_dangerous() {
        assert_eq!(
            escape(r#"<a href="x">&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&apos;&lt;/a&gt;"
        );
        assert_eq!(escape("a\u{1}b\nc\u{FFFE}"), "ab\nc");
    }
}
