//! The fleet (issue 14): `--shard auto/N` as a Kubernetes Indexed Job's pods run it; the
//! Kubernetes manifests (`fleet manifest` and the committed copies under `deploy/kubernetes/`)
//! validated offline by `kubernetes-validate` against the Kubernetes JSON schemas.
//!
//! Python packages come from `tests/support/fleet-requirements.txt`, pinned, in their own venv.

mod support {
    pub mod python;
}

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
    assert!(String::from_utf8_lossy(&o.stderr).contains("JOB_COMPLETION_INDEX"), "{}", text(&o));
    // Out of range: refused too, with the value and the bound.
    let o = chatstorm()
        .args(["run", "scenarios/smoke.yaml", "--shard", "auto/3", "--quiet"])
        .env("JOB_COMPLETION_INDEX", "3")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("JOB_COMPLETION_INDEX is \"3\"") && err.contains("< 3"), "{}", text(&o));
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

fn fleet_venv() -> support::python::Venv {
    support::python::venv_named("fleet-venv", &root().join("tests/support/fleet-requirements.txt"))
        .unwrap_or_else(|e| panic!("{e}"))
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
    let mut files: Vec<(PathBuf, &str, &str)> = COMMITTED
        .iter()
        .map(|(f, a)| (root().join(f), a[0], a[2]))
        .collect();
    files.push((fresh, "scenarios/privacy.yaml", "3"));
    for (file, scenario, shards) in &files {
        let mut validate = Command::new(py.bin("kubernetes-validate"));
        validate.args(["--strict", "--quiet"]).arg(file);
        let run = support::python::run_bounded(validate, Duration::from_secs(120)).unwrap();
        assert!(run.success, "{}: {}", file.display(), run.describe());
        let shape = py.run_script(
            SHAPE,
            &[&file.to_string_lossy(), &root().join(scenario).to_string_lossy(), shards],
            Duration::from_secs(60),
        );
        assert!(shape.success, "{}: {}", file.display(), shape.describe());
    }
    // The validator does refuse a broken manifest (so a pass means something).
    let broken = dir.join("broken.yaml");
    let text = std::fs::read_to_string(&files[0].0).unwrap().replace("parallelism: 4", "parallelism: four");
    std::fs::write(&broken, text).unwrap();
    let mut validate = Command::new(py.bin("kubernetes-validate"));
    validate.args(["--strict", "--quiet"]).arg(&broken);
    let run = support::python::run_bounded(validate, Duration::from_secs(120)).unwrap();
    assert!(!run.success, "{}", run.describe());
    let _ = std::fs::remove_dir_all(&dir);
}
