//! `junit.xml` for CI systems: one testsuite for the run's verdict (one testcase, failed unless
//! the run passed: a failed run is never all green), one for the implicit checks, one for
//! thresholds (a testcase each; one with no data fails), one for the generator's honesty, and one
//! for the conformance rules watched (a testcase per rule, the failure text carrying the
//! evidence). `chatstorm conform` writes that last testsuite alone ([`write_conformance`]).
//! Every string is XML-escaped.
//!
//! The files are valid against the Jenkins-xunit `junit-10.xsd` schema (a test validates them):
//! every `<testsuite>` carries `tests`, `failures`, `errors` (always 0: a case that could not be
//! decided is a failure or a skip, never an error), `skipped` and `time`; `<testsuites>` carries
//! the totals (it has no `skipped` in that schema); every `<testcase>` has a `time`.
//!
//! How time is reported, so that consumers which recompute a suite's statistics from its cases
//! (junitparser, junit-report-merger) arrive at the same numbers: a suite's `time` is exactly the
//! sum of its cases' times (in milliseconds, written with three decimals), and `<testsuites>`'s is
//! the sum of its suites'. In a run's file the `run verdict` case carries the run's duration (the
//! run is what was tested); the other cases are decided at the end from what the run recorded and
//! take 0. In `chatstorm conform`'s file each rule's case carries how long its case ran; the cases
//! run concurrently, so their sum exceeds the suite's wall time, which is given separately as the
//! suite property `wall_time` (seconds).

use super::summary::{CheckStatus, ConformanceSection, RunSummary, ThresholdResult};
use crate::conformance::Verdict;
use crate::scenario::threshold::parse_metric;
use std::io::{self, Write};
use std::path::Path;

pub use crate::markup::escape;

struct Case {
    name: String,
    failure: Option<(String, String)>,
    skipped: Option<String>,
    /// How long the case took, milliseconds.
    time_ms: u64,
}

/// One testsuite: its cases, and properties written before them.
struct Suite<'a> {
    name: &'a str,
    cases: Vec<Case>,
    properties: Vec<(&'static str, String)>,
}

impl<'a> Suite<'a> {
    fn new(name: &'a str, cases: Vec<Case>) -> Self {
        Suite {
            name,
            cases,
            properties: Vec::new(),
        }
    }

    fn failures(&self) -> usize {
        self.cases.iter().filter(|c| c.failure.is_some()).count()
    }

    /// The sum of the cases' times: what a consumer recomputing the statistics arrives at.
    fn time_ms(&self) -> u64 {
        self.cases.iter().map(|c| c.time_ms).sum()
    }
}

/// Milliseconds as JUnit seconds with three decimals (the schema's `SUREFIRE_TIME`), exact, so
/// that sums of cases and of suites agree to the digit.
fn seconds(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// Writes `<testsuites>` with the totals, then every suite.
fn document(w: &mut dyn Write, name: &str, suites: &[Suite<'_>]) -> io::Result<()> {
    writeln!(w, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
    writeln!(
        w,
        r#"<testsuites name="{}" tests="{}" failures="{}" errors="0" time="{}">"#,
        escape(name),
        suites.iter().map(|s| s.cases.len()).sum::<usize>(),
        suites.iter().map(Suite::failures).sum::<usize>(),
        seconds(suites.iter().map(Suite::time_ms).sum())
    )?;
    for s in suites {
        suite(w, s)?;
    }
    writeln!(w, "</testsuites>")
}

fn suite(w: &mut dyn Write, s: &Suite<'_>) -> io::Result<()> {
    let skipped = s
        .cases
        .iter()
        .filter(|c| c.skipped.is_some() && c.failure.is_none())
        .count();
    writeln!(
        w,
        r#"  <testsuite name="{}" tests="{}" failures="{}" errors="0" skipped="{skipped}" time="{}">"#,
        escape(s.name),
        s.cases.len(),
        s.failures(),
        seconds(s.time_ms())
    )?;
    if !s.properties.is_empty() {
        writeln!(w, "    <properties>")?;
        for (name, value) in &s.properties {
            writeln!(
                w,
                r#"      <property name="{}" value="{}"/>"#,
                escape(name),
                escape(value)
            )?;
        }
        writeln!(w, "    </properties>")?;
    }
    for c in &s.cases {
        write!(
            w,
            r#"    <testcase classname="{}" name="{}" time="{}""#,
            escape(s.name),
            escape(&c.name),
            seconds(c.time_ms)
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
/// with the reason. A case's time is how long the suite's case ran (0 for rules watched during a
/// load run).
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
                time_ms: r.duration_ms.unwrap_or(0),
            }
        })
        .collect()
}

/// `threshold connect.p99 < 2s breached (p99 of histogram connect: connect.ws and
/// connect.longpoll merged)`: the message names the figure the threshold was judged on.
fn threshold_message(t: &ThresholdResult) -> String {
    let what = if t.no_data { "has no data" } else { "breached" };
    let source = parse_metric(&t.metric).map_or_else(|_| String::new(), |m| format!(" ({})", m.source()));
    format!("threshold {} {} {what}{source}", t.metric, t.condition)
}

/// Writes the JUnit XML of a run.
///
/// # Errors
/// When `w` fails.
pub fn write(s: &RunSummary, w: &mut dyn Write) -> io::Result<()> {
    let mut suites = Vec::new();
    let verdict = vec![Case {
        name: "run verdict".to_owned(),
        failure: (s.verdict.exit_code != 0).then(|| {
            (
                format!("{} (exit {})", s.verdict.outcome, s.verdict.exit_code),
                s.verdict.reasons.join("\n"),
            )
        }),
        skipped: None,
        time_ms: s.run.duration_ms,
    }];
    suites.push(Suite::new("verdict", verdict));
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
            time_ms: 0,
        })
        .collect();
    if !checks.is_empty() {
        suites.push(Suite::new("checks", checks));
    }
    let thresholds: Vec<Case> = s
        .thresholds
        .iter()
        .map(|t| Case {
            name: format!("{} {}", t.metric, t.condition),
            failure: (!t.passed).then(|| (threshold_message(t), format!("observed {}", t.observed_text))),
            skipped: None,
            time_ms: 0,
        })
        .collect();
    suites.push(Suite::new("thresholds", thresholds));
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
        time_ms: 0,
    }];
    suites.push(Suite::new("generator", generator));
    if let Some(c) = s.conformance.as_ref().filter(|c| !c.rules.is_empty()) {
        suites.push(Suite::new("conformance", conformance_cases(c)));
    }
    document(w, &format!("chatstorm {}", s.run.name), &suites)
}

/// Writes the JUnit XML of `chatstorm conform`: the same `conformance` testsuite a run's
/// `junit.xml` carries, alone, with the suite's wall time as the property `wall_time` (the
/// suite's `time` is the sum of its concurrently run cases; see the module header).
///
/// # Errors
/// When `w` fails.
pub fn write_conformance(c: &ConformanceSection, w: &mut dyn Write) -> io::Result<()> {
    let mut suite = Suite::new("conformance", conformance_cases(c));
    if let Some(ms) = c.duration_ms {
        suite.properties.push(("wall_time", seconds(ms)));
    }
    document(w, "chatstorm conform", &[suite])
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
