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

#[path = "support/process.rs"]
mod process;
#[path = "support/python.rs"]
mod python;

use chatstorm::report::junit;
use chatstorm::report::summary::RunSummary;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

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
    VENV.get_or_init(|| {
        let requirements = root().join("tests/support/python-requirements.txt");
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("python-venv");
        python::venv(&requirements, &dir).unwrap_or_else(|e| panic!("Python test setup failed: {e}"))
    })
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
    // A real `chatstorm conform` against the embedded mock (its cases run concurrently: their
    // times add up to more than its wall time, which is a property of its own).
    let conform_dir = dir.join("conform");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chatstorm"))
        .arg("conform")
        .arg("--out")
        .arg(&conform_dir)
        .output()
        .expect("chatstorm conform runs");
    assert!(
        out.status.success(),
        "chatstorm conform failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let real_conform = conform_dir.join("junit.xml");
    let text = std::fs::read_to_string(&real_conform).expect("conform's junit.xml");
    assert!(text.contains(r#"<property name="wall_time" value=""#), "{text}");
    // A real run's.
    let (run_dir, _) = real_run();
    check_junit(&[&golden, &conform, &real_conform, &run_dir.join("junit.xml")]);
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

/// Reads the `.hlog` with HdrHistogram_py: per tag, the sum of its intervals' histograms and each
/// line's start and length. Percentiles are read off HdrHistogram_py's decoded buckets at the
/// nearest rank, `ceil(q * count)` (the convention summary.json documents); HdrHistogram_py's own
/// `get_value_at_percentile` rounds the rank to the nearest integer instead, which is reported
/// too, with the rank it used, so the test can compare where the two conventions agree.
const HLOG_READ: &str = r#"
import sys, json, math
from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader
reader = HistogramLogReader(sys.argv[1], HdrHistogram(1, 3600000000, 3))
tags = {}
while True:
    h = reader.get_next_interval_histogram()
    if h is None:
        break
    t = tags.setdefault(h.get_tag(), {"sum": HdrHistogram(1, 3600000000, 3), "lines": []})
    t["sum"].add(h)
    t["lines"].append([h.get_start_time_stamp() / 1000.0 - reader.get_start_time_sec(),
                       (h.get_end_time_stamp() - h.get_start_time_stamp()) / 1000.0])
def at_rank(s, rank):
    seen = 0
    for item in s.get_recorded_iterator():
        seen += item.count_added_in_this_iter_step
        if seen >= rank:
            return s.get_highest_equivalent_value(item.value_iterated_to)
    return 0
out = {}
for tag, t in tags.items():
    s = t["sum"]
    n = s.get_total_count()
    figures = {"count": n, "lines": t["lines"], "own": {}}
    for key, q in [("p50_us", 0.5), ("p90_us", 0.9), ("p95_us", 0.95), ("p99_us", 0.99), ("p999_us", 0.999)]:
        figures[key] = at_rank(s, max(1, math.ceil(q * n))) if n else 0
        own_rank = s.get_target_count_at_percentile(q * 100)
        figures["own"][key] = [s.get_value_at_percentile(q * 100) if n else 0, own_rank]
    figures["max_us"] = s.get_max_value() if n else 0
    figures["mean_us"] = s.get_mean_value() if n else 0.0
    out[tag] = figures
print(json.dumps(out))
"#;

#[test]
fn hdrhistogram_py_reads_the_hlog_as_the_summary_says_with_a_line_per_histogram_per_second() {
    let (dir, _) = real_run();
    let run = venv().run_script(
        HLOG_READ,
        &[dir.join("metrics.hlog").to_str().expect("UTF-8 path")],
        Duration::from_secs(120),
    );
    assert!(
        run.success,
        "HdrHistogram_py could not read metrics.hlog {}",
        run.describe()
    );
    let read: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).expect("summary.json")).expect("JSON");
    let latency = summary["latency"].as_object().expect("latency");
    let duration_s = summary["metrics"]["duration_ms"].as_f64().expect("duration") / 1000.0;

    // Every histogram in summary.json is in the log with exactly its figures.
    assert!(!latency.is_empty());
    let mut own_compared = 0;
    for (tag, figures) in latency {
        let got = read
            .get(tag)
            .unwrap_or_else(|| panic!("{tag} is in summary.json but not in metrics.hlog"));
        let want = &figures["summary"];
        let count = want["count"].as_u64().expect("count");
        for k in ["count", "p50_us", "p90_us", "p95_us", "p99_us", "p999_us", "max_us"] {
            assert_eq!(got[k], want[k], "{tag} {k}: .hlog (HdrHistogram_py) vs summary.json");
        }
        // HdrHistogram_py's own percentiles agree wherever its rank rule gives the same rank.
        for (k, q) in [
            ("p50_us", 0.5),
            ("p90_us", 0.9),
            ("p95_us", 0.95),
            ("p99_us", 0.99),
            ("p999_us", 0.999),
        ] {
            let own = &got["own"][k];
            let nearest = ((q * count as f64).ceil() as u64).max(1);
            if own[1].as_u64() == Some(nearest) {
                assert_eq!(own[0], want[k], "{tag} {k}: HdrHistogram_py's own percentile");
                own_compared += 1;
            }
        }
        let (a, b) = (
            got["mean_us"].as_f64().expect("mean"),
            want["mean_us"].as_f64().expect("mean"),
        );
        assert!((a - b).abs() <= 1e-6 * b.max(1.0), "{tag} mean: {a} vs {b}");
    }
    assert!(
        own_compared > 10,
        "only {own_compared} of HdrHistogram_py's own percentiles compared"
    );
    // A histogram the summary does not list recorded nothing.
    for (tag, got) in &read {
        if !latency.contains_key(tag) {
            assert_eq!(
                got["count"], 0,
                "{tag} has samples in the .hlog but is not in summary.json"
            );
        }
    }
    for tag in [
        "connect.ws",
        "connect.ws.intended",
        "scheduler.lag",
        "rest.sync.intended",
    ] {
        assert!(read.contains_key(tag), "{tag} has no line at all");
    }
    // Every tag has one line per interval, the intervals follow each other from the start to the
    // end of the run with no second left out, and all tags share them.
    let mut shapes = std::collections::BTreeSet::new();
    for (tag, got) in &read {
        let lines: Vec<(f64, f64)> = got["lines"]
            .as_array()
            .expect("lines")
            .iter()
            .map(|l| (l[0].as_f64().expect("start"), l[1].as_f64().expect("length")))
            .collect();
        assert!(lines[0].0.abs() < 0.002, "{tag} starts at {}", lines[0].0);
        for w in lines.windows(2) {
            assert!((w[0].0 + w[0].1 - w[1].0).abs() < 0.003, "{tag}: a gap between {w:?}");
        }
        for (start, length) in &lines {
            assert!(*length < 1.5, "{tag}: an interval of {length} s at {start} s");
        }
        let (last_start, last_length) = lines[lines.len() - 1];
        assert!(
            (last_start + last_length - duration_s).abs() < 0.01,
            "{tag} ends at {} s, the run at {duration_s} s",
            last_start + last_length
        );
        shapes.insert(
            lines
                .iter()
                .map(|(s, _)| format!("{s:.3}"))
                .collect::<Vec<_>>()
                .join(","),
        );
    }
    assert_eq!(shapes.len(), 1, "tags have lines at different times: {shapes:?}");
}

#[test]
fn the_figure_a_threshold_judged_is_published_under_its_name() {
    let (dir, s) = real_run();
    // `connect.p99` judges `connect`, both transports merged: a histogram of its own in
    // summary.json (and so in the latency tables), with exactly its parts' samples.
    let count = |tag: &str| s.latency.get(tag).map_or(0, |l| l.summary.count);
    for view in ["", ".intended"] {
        let merged = count(&format!("connect{view}"));
        assert!(merged > 0, "connect{view} is not published");
        assert_eq!(
            merged,
            count(&format!("connect.ws{view}")) + count(&format!("connect.longpoll{view}")),
            "connect{view}"
        );
        assert!(s.metrics.series.contains_key(&format!("connect{view}")));
    }
    let t = s
        .thresholds
        .iter()
        .find(|t| t.metric == "connect.p99")
        .expect("the golden scenario has connect.p99");
    assert_eq!(t.observed, Some(s.latency["connect"].summary.p99_us as f64));
    // The run-wide figures under their threshold names.
    let t = s
        .thresholds
        .iter()
        .find(|t| t.metric == "errors.rate")
        .expect("the golden scenario has errors.rate");
    assert_eq!(t.observed, s.figures.get("errors.rate").copied());
    for name in ["errors.count", "connects.rate", "conformance.failed"] {
        assert!(s.figures.contains_key(name), "{name} is not published: {:?}", s.figures);
    }
    for (name, p) in &s.by_profile {
        let parts: u64 = ["connect.ws", "connect.longpoll"]
            .iter()
            .filter_map(|t| p.latency.get(*t))
            .map(|l| l.count)
            .sum();
        assert_eq!(p.latency.get("connect").map_or(0, |l| l.count), parts, "{name}");
    }
    let mut console = Vec::new();
    chatstorm::report::console::write(s, &mut console).expect("writes");
    let console = String::from_utf8(console).expect("UTF-8");
    assert!(
        console.lines().any(|l| l.trim_start().starts_with("connect ")),
        "no `connect` row in the console's latency table:\n{console}"
    );
    // And in the .hlog (its figures are checked against summary.json with the other tags).
    let log = std::fs::read_to_string(dir.join("metrics.hlog")).expect("metrics.hlog");
    assert!(log.lines().any(|l| l.starts_with("Tag=connect,")));
    assert!(log.lines().any(|l| l.starts_with("Tag=connect.intended,")));
}

/// A scaled-down run for the baseline comparison: 20 users for about 6 s against the embedded
/// mock, typing and messaging, with `extra` appended (a timeline).
fn comparison_scenario(dir: &Path, name: &str, extra: &str) -> PathBuf {
    let path = dir.join(format!("{name}.yaml"));
    let yaml = format!(
        "name: {name}\nseed: 11\ntarget: {{}}\nusers:\n  count: 20\n  id: \"cmp-{{index}}\"\n\
         channels: {{count: 4, members: 5}}\nload:\n  - ramp: {{to: 20, over: 1s}}\n  - hold: 5s\n\
         behaviour:\n  typing: {{every: 1s}}\n  message: {{every: 2s}}\n{extra}"
    );
    std::fs::write(&path, yaml).expect("write scenario");
    path
}

/// Runs a scenario file into `out`; its summary.json path.
fn run_into(rt: &tokio::runtime::Runtime, scenario: &Path, out: &Path) -> PathBuf {
    let scenario = chatstorm::scenario::load(scenario).unwrap_or_else(|e| panic!("{e}"));
    rt.block_on(async {
        tokio::time::timeout(
            Duration::from_secs(120),
            chatstorm::api::run_scenario(scenario, None, out.to_path_buf()),
        )
        .await
        .expect("a 6 s run finishes within 2 minutes")
        .unwrap_or_else(|e| panic!("{e}"))
    });
    out.join("summary.json")
}

/// Whether the run of this summary.json had a saturated load generator (an invalid run).
fn saturated(summary: &Path) -> bool {
    chatstorm::report::read_json(summary)
        .unwrap_or_else(|e| panic!("{e}"))
        .generator
        .saturated
}

/// `chatstorm report NEW --baseline OLD`: its exit code and output.
fn compare_with_baseline(new: &Path, old: &Path, out: &Path) -> (i32, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_chatstorm"))
        .arg("report")
        .arg(new)
        .arg("--baseline")
        .arg(old)
        // The test machine is shared and small: timing noise of a few tens of milliseconds
        // between two runs is the machine's, not the code's. The injected latency is 400 ms.
        .args(["--min-change", "50"])
        .arg("--out")
        .arg(out)
        .output()
        .expect("chatstorm report runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    (output.status.code().unwrap_or(-1), text)
}

#[test]
fn baseline_comparison_finds_no_regression_between_twins_and_one_against_a_slowed_mock() {
    let dir = scratch("baseline");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let plain = comparison_scenario(&dir, "twin", "");
    let slow = comparison_scenario(
        &dir,
        "slowed",
        "timeline:\n  - at: 0s\n    add_latency: {delay: 400ms}\n",
    );
    let a = run_into(&rt, &plain, &dir.join("a"));
    let b = run_into(&rt, &plain, &dir.join("b"));
    let c = run_into(&rt, &slow, &dir.join("c"));

    // Two runs of the same scenario and seed: no figure changed for the worse, exit 0. (On a
    // machine too loaded for the harness to keep time a run is invalid, and so is a comparison
    // with it: exit 4, said as such.)
    let (code, text) = compare_with_baseline(&b, &a, &dir.join("ab"));
    eprintln!("twins:\n{text}");
    if saturated(&a) || saturated(&b) {
        assert_eq!(code, 4, "{text}");
        assert!(text.contains("cannot be trusted"), "{text}");
    } else {
        assert_eq!(code, 0, "twins compared as a regression:\n{text}");
        assert!(text.contains("no regression"), "{text}");
        assert!(text.contains("no evidence of change"), "{text}");
        assert!(!text.contains("changed: worse"), "{text}");
    }

    // The same scenario against a mock that delays every response and frame by 400 ms: the REST
    // and delivery latencies changed for the worse, with evidence, exit 1.
    let (code, text) = compare_with_baseline(&c, &a, &dir.join("ac"));
    eprintln!("slowed mock:\n{text}");
    let expected = if saturated(&a) || saturated(&c) { 4 } else { 1 };
    assert_eq!(
        code, expected,
        "a 400 ms slower mock did not compare as a regression:\n{text}"
    );
    assert!(text.contains("REGRESSION:"), "{text}");
    for figure in ["rest.event p50 (ms)", "delivery.typing p50 (ms)"] {
        let line = text
            .lines()
            .find(|l| l.starts_with(figure))
            .unwrap_or_else(|| panic!("no {figure} row:\n{text}"));
        assert!(line.contains("changed: worse"), "{line}");
    }
    // Too few samples are said as such, not judged.
    assert!(text.contains("too few samples"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Validates summary.json files against the committed schema with Python `jsonschema` (draft
/// 2020-12, formats checked), then the first one broken in each of the ways given as JSON
/// `[name, pointer to the parent object, key, value]`; prints `VALID <file>` / `INVALID <file>`
/// and `REJECTED <name>` / `ACCEPTED <name>`, one per line, with the first error.
const SUMMARY_CHECK: &str = r#"
import sys, json, copy
from jsonschema import Draft202012Validator
schema = json.load(open(sys.argv[1]))
Draft202012Validator.check_schema(schema)
v = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
breaks = json.loads(sys.argv[2])
files = sys.argv[3:]
for f in files:
    errors = list(v.iter_errors(json.load(open(f))))
    print(("INVALID " if errors else "VALID ") + f, *[f"{list(e.absolute_path)}: {e.message[:200]}" for e in errors[:5]])
good = json.load(open(files[0]))
for name, path, key, value in breaks:
    doc = copy.deepcopy(good)
    parent = doc
    for p in path:
        parent = parent[p]
    parent[key] = value
    errors = list(v.iter_errors(doc))
    print(("REJECTED " if errors else "ACCEPTED ") + name, errors[0].message[:200] if errors else "")
"#;

#[test]
fn summary_json_is_strictly_validated_by_python_jsonschema() {
    let (dir, _) = real_run();
    let schema = root().join("schemas/summary.schema.json");
    let real = dir.join("summary.json");
    let golden = root().join("tests/golden/summary.json");
    // The issue's bad examples, and one a level down.
    let breaks = serde_json::json!([
        ["unknown top-level key", [], "bogus", 1],
        ["schema other/9", [], "schema", "other/9"],
        ["verdict.outcome banana", ["verdict"], "outcome", "banana"],
        ["exit_code 99", ["verdict"], "exit_code", 99],
        ["started_at yesterday", ["run"], "started_at", "yesterday"],
        ["conformance 42", [], "conformance", 42],
        ["unknown key in run", ["run"], "bogus", true],
        ["check status maybe", ["checks", 0], "status", "maybe"],
        [
            "unknown key in a conformance rule",
            ["conformance", "rules", 0],
            "bogus",
            1
        ],
    ]);
    let run = venv().run_script(
        SUMMARY_CHECK,
        &[
            schema.to_str().expect("UTF-8"),
            &breaks.to_string(),
            real.to_str().expect("UTF-8"),
            golden.to_str().expect("UTF-8"),
        ],
        Duration::from_secs(120),
    );
    assert!(run.success, "the schema check did not run {}", run.describe());
    let lines: Vec<&str> = run.stdout.lines().collect();
    for f in [&real, &golden] {
        assert!(
            lines.iter().any(|l| *l == format!("VALID {}", f.display())),
            "{} is not valid against the schema:\n{}",
            f.display(),
            run.stdout
        );
    }
    for b in breaks.as_array().expect("array") {
        let name = b[0].as_str().expect("name");
        assert!(
            lines.iter().any(|l| l.starts_with(&format!("REJECTED {name}"))),
            "the schema accepts a summary with {name}:\n{}",
            run.stdout
        );
    }
    eprintln!("{}", run.stdout);
}
