//! The fleet (issue 14): `--shard auto/N` as a Kubernetes Indexed Job's pods run it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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
