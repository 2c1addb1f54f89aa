//! The run's files read by tools nobody here wrote (issue 16): `junit.xml` validated against the
//! Jenkins-xunit `junit-10.xsd` (vendored under tests/fixtures/junit) with Python `xmlschema`,
//! its statistics recomputed from its cases the way junitparser does; `metrics.hlog` decoded by
//! HdrHistogram_py, whose counts and percentiles must equal `summary.json`'s; `summary.json`
//! validated against the committed schema by Python `jsonschema` (with formats checked), and the
//! schema shown to reject bad summaries; `report --baseline` on two runs of the same scenario and
//! seed (no regression) and on a run against a slowed-down mock (a regression).
//!
//! The Python packages are pinned in tests/support/python-requirements.txt and installed into a
//! venv under target/ on first use (tests/support/python.rs).

mod support {
    pub mod python;
}

use chatstorm::report::junit;
use chatstorm::report::summary::RunSummary;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;
use support::python;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh directory under Cargo's per-target temp dir.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("report-files-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir
}

fn venv() -> &'static python::Venv {
    static VENV: OnceLock<python::Venv> = OnceLock::new();
    VENV.get_or_init(|| python::venv().unwrap_or_else(|e| panic!("Python test setup failed: {e}")))
}

/// The frozen summary of tests/golden.
fn fixture() -> RunSummary {
    chatstorm::report::read_json(&root().join("tests/golden/summary.json")).unwrap_or_else(|e| panic!("{e}"))
}

/// One real run of tests/golden/scenario.yaml (about 8 s against the embedded mock), shared by
/// the tests of this file: its output directory and summary.
fn real_run() -> &'static (PathBuf, RunSummary) {
    static RUN: OnceLock<(PathBuf, RunSummary)> = OnceLock::new();
    RUN.get_or_init(|| {
        let scenario =
            chatstorm::scenario::load(&root().join("tests/golden/scenario.yaml")).unwrap_or_else(|e| panic!("{e}"));
        let dir = scratch("real-run");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let summary = rt.block_on(async {
            tokio::time::timeout(
                Duration::from_secs(120),
                chatstorm::api::run_scenario(scenario, None, dir.clone()),
            )
            .await
            .expect("an 8 s run finishes within 2 minutes")
            .unwrap_or_else(|e| panic!("{e}"))
        });
        (dir, summary)
    })
}

/// Validates each file against junit-10.xsd and recomputes every suite's statistics from its
/// cases (as junitparser's `update_statistics` does); prints one line per problem.
const JUNIT_CHECK: &str = r#"
import sys, xmlschema, xml.etree.ElementTree as ET
schema = xmlschema.XMLSchema(sys.argv[1])
problems = []
def ms(text):
    return round(float(text) * 1000)
for path in sys.argv[2:]:
    for e in schema.iter_errors(path):
        problems.append(f"{path}: {e.reason} at {e.path}")
    root = ET.parse(path).getroot()
    totals = {"tests": 0, "failures": 0, "errors": 0, "time": 0}
    for suite in root.iter("testsuite"):
        cases = suite.findall("testcase")
        got = {
            "tests": len(cases),
            "failures": sum(1 for c in cases if c.find("failure") is not None),
            "errors": sum(1 for c in cases if c.find("error") is not None),
            "skipped": sum(1 for c in cases if c.find("skipped") is not None),
            "time": sum(ms(c.get("time", "x")) for c in cases),
        }
        for k, v in got.items():
            said = ms(suite.get(k)) if k == "time" else int(suite.get(k))
            if said != v:
                problems.append(f"{path}: suite {suite.get('name')} says {k}={suite.get(k)}, its cases give {v}")
            if k in totals:
                totals[k] += v
    for k, v in totals.items():
        said = ms(root.get(k)) if k == "time" else int(root.get(k))
        if said != v:
            problems.append(f"{path}: testsuites says {k}={root.get(k)}, its suites give {v}")
for p in problems:
    print(p)
sys.exit(1 if problems else 0)
"#;

fn check_junit(files: &[&Path]) {
    let xsd = root().join("tests/fixtures/junit/junit-10.xsd");
    let mut args = vec![xsd.to_str().expect("UTF-8 path")];
    args.extend(files.iter().map(|f| f.to_str().expect("UTF-8 path")));
    let run = venv().run_script(JUNIT_CHECK, &args, Duration::from_secs(120));
    assert!(run.success, "junit.xml is not valid JUnit {}", run.describe());
}

#[test]
fn junit_files_are_valid_against_junit_10_xsd_and_their_times_add_up() {
    let dir = scratch("junit");
    // The frozen fixture (a failed threshold, a failed conformance rule, skipped checks).
    let golden = dir.join("golden.xml");
    let mut out = Vec::new();
    junit::write(&fixture(), &mut out).expect("writes");
    std::fs::write(&golden, &out).expect("write");
    // `chatstorm conform`'s file: rules with their case times, run concurrently (the cases add up
    // to more than the wall time), one skipped.
    let mut section = fixture().conformance.expect("the fixture has a conformance section");
    section.source = chatstorm::report::summary::ConformanceSource::Suite;
    section.duration_ms = Some(1_500);
    for (i, r) in section.rules.iter_mut().enumerate() {
        r.duration_ms = Some(1_234 + i as u64 * 1_001);
    }
    section.rules[1].verdict = chatstorm::conformance::Verdict::Skipped {
        reason: "needs the secret".into(),
    };
    let conform = dir.join("conform.xml");
    let mut out = Vec::new();
    junit::write_conformance(&section, &mut out).expect("writes");
    std::fs::write(&conform, &out).expect("write");
    let text = String::from_utf8(out).expect("UTF-8");
    assert!(text.contains(r#"<property name="wall_time" value="1.500"/>"#), "{text}");
    assert!(
        text.contains(r#"time="3.469">"#),
        "suite time is the sum of its cases:\n{text}"
    );
    // A real run's.
    let (run_dir, _) = real_run();
    check_junit(&[&golden, &conform, &run_dir.join("junit.xml")]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_threshold_failure_names_the_histogram_it_measured() {
    let mut out = Vec::new();
    junit::write(&fixture(), &mut out).expect("writes");
    let text = String::from_utf8(out).expect("UTF-8");
    assert!(
        text.contains(
            r#"<failure message="threshold connect.p99 &lt; 1us breached (p99 of histogram connect, which merges connect.ws and connect.longpoll)">"#
        ),
        "{text}"
    );
}
