//! Scenarios: YAML files turned into the one [`Scenario`] model the engine sees.
//!
//! Two layers, like ripgrep's LowArgs/HiArgs: serde-saphyr parses the text into a tree that
//! keeps every value's line and column (`tree.rs`); a derived serde mirror with
//! `deny_unknown_fields` is filled from it (`raw.rs`, through `de.rs`, which goes on past the
//! first error); the validator (`validate.rs`, `validate_load.rs`) fills defaults and checks
//! every rule. Every problem is reported at once, one line each:
//! `file:line:column: path.to.key: what is wrong`.
//!
//! This module owns the format (see `scenarios/README.md`), not its execution: the engine,
//! the CLI and the reports only read [`Scenario`].

mod de;
mod model;
mod problem;
mod raw;
mod suggest;
pub mod threshold;
mod tree;
mod user_id;
mod validate;
mod validate_load;

#[cfg(test)]
mod tests;

pub use model::*;
pub use problem::{Problem, ScenarioErrors};
pub use threshold::Threshold;
pub use user_id::{MAX_USER_ID_LEN, check_user_id};

use de::Sp;
use raw::RawScenario;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

/// Scenario files larger than this are refused unread (a scenario is a page of YAML).
pub const MAX_SCENARIO_BYTES: usize = 1 << 20;

/// Reads, parses and validates the scenario at `path`.
///
/// # Errors
/// Every problem found, each with the file, line, column and key path; an unreadable file is
/// one problem.
pub fn load(path: &Path) -> Result<Scenario, ScenarioErrors> {
    let name = path.display().to_string();
    let whole_file = |message: String| {
        ScenarioErrors(vec![Problem {
            file: name.clone(),
            line: 0,
            column: 0,
            path: String::new(),
            message,
        }])
    };
    let file = std::fs::File::open(path).map_err(|e| whole_file(format!("cannot open: {}", lower(&e.to_string()))))?;
    let mut bytes = Vec::new();
    // One byte past the limit tells "too large" apart from "exactly at the limit".
    file.take(MAX_SCENARIO_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| whole_file(format!("cannot read: {}", lower(&e.to_string()))))?;
    if bytes.len() > MAX_SCENARIO_BYTES {
        return Err(whole_file(format!(
            "larger than {MAX_SCENARIO_BYTES} bytes; a scenario is a page of YAML"
        )));
    }
    let text = String::from_utf8(bytes)
        .map_err(|e| whole_file(format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to())))?;
    parse(&name, &text)
}

/// Parses and validates scenario `text`; `source_name` names it in problems (a path, or e.g.
/// `<stdin>`) and gives the default `name` (its file stem).
///
/// # Errors
/// Every problem found, in file order.
pub fn parse(source_name: &str, text: &str) -> Result<Scenario, ScenarioErrors> {
    let problem = |line: u32, column: u32, path: String, message: String| Problem {
        file: source_name.to_owned(),
        line,
        column,
        path,
        message,
    };
    if text.len() > MAX_SCENARIO_BYTES {
        return Err(ScenarioErrors(vec![problem(
            1,
            1,
            String::new(),
            format!("larger than {MAX_SCENARIO_BYTES} bytes; a scenario is a page of YAML"),
        )]));
    }
    let root =
        tree::parse(text).map_err(|e| ScenarioErrors(vec![problem(e.line, e.column, String::new(), e.message)]))?;
    let (raw, errors) = de::decode::<Sp<RawScenario>>(&root);
    let problems = errors
        .into_iter()
        .map(|e| {
            let at = e.at.unwrap_or_else(|| de::at_of(&root, ""));
            let message = if at.path.is_empty() && e.message.starts_with("expected a mapping") {
                format!(
                    "a scenario is a mapping of keys (name, users, load, ...), {}",
                    e.message.trim_start_matches("expected a mapping, ")
                )
            } else {
                e.message
            };
            problem(at.line, at.column, at.path, message)
        })
        .collect();
    let default_name = Path::new(source_name)
        .file_stem()
        .and_then(|s| s.to_str())
        .filter(|s| !s.is_empty())
        .unwrap_or("scenario");
    let mut check = validate::Check::new(source_name, problems);
    let scenario = raw.and_then(|raw| validate::scenario(&mut check, &raw.value, &raw.at, default_name));
    let mut problems = check.problems;
    match scenario {
        Some(s) if problems.is_empty() => Ok(s),
        _ => {
            if problems.is_empty() {
                // Every path that yields no scenario reports why; this is a guard, not a path.
                problems.push(problem(1, 1, String::new(), "the scenario is invalid".to_owned()));
            }
            problems.sort_by_key(|p| (p.line, p.column));
            problems.dedup();
            Err(ScenarioErrors(problems))
        }
    }
}

fn lower(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A problem caused by a command-line override (no place in the file).
fn flag_problem(flag: &str, path: &str, message: String) -> ScenarioErrors {
    ScenarioErrors(vec![Problem {
        file: flag.to_owned(),
        line: 0,
        column: 0,
        path: path.to_owned(),
        message,
    }])
}

impl Scenario {
    /// Overrides the seed (`--seed`).
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Caps the run at `cap` (`--duration`). Timeline events at or after the new end are
    /// removed, so that every event left in the model fires.
    ///
    /// # Errors
    /// A zero cap.
    pub fn with_duration(mut self, cap: Duration) -> Result<Self, ScenarioErrors> {
        if cap.is_zero() {
            return Err(flag_problem(
                "--duration",
                "duration",
                "must be greater than zero".to_owned(),
            ));
        }
        self.duration = Some(cap);
        let end = self.run_length();
        self.timeline.retain(|e| e.at < end);
        Ok(self)
    }

    /// Scales the population to `n` users (`--users`): every stage's user levels and arrival
    /// rates scale by `n / users.count`, and channel membership is capped at `n`. Fractions,
    /// durations and the timeline are unchanged.
    ///
    /// # Errors
    /// `n == 0`, or an id pattern that gives an invalid id at the new highest index.
    pub fn with_users(mut self, n: u64) -> Result<Self, ScenarioErrors> {
        if n == 0 {
            return Err(flag_problem("--users", "users.count", "must be at least 1".to_owned()));
        }
        let longest = self.users.id.id(n - 1);
        if let Err(reason) = check_user_id(&longest) {
            return Err(flag_problem(
                "--users",
                "users.id",
                format!("gives invalid user id \"{longest}\" (index {}): {reason}", n - 1),
            ));
        }
        let old = self.users.count.max(1);
        let scale = |x: u64| -> u64 {
            let scaled = (u128::from(x) * u128::from(n) + u128::from(old) / 2) / u128::from(old);
            u64::try_from(scaled).unwrap_or(u64::MAX).min(n)
        };
        let factor = n as f64 / old as f64;
        for stage in &mut self.load.stages {
            stage.users_before = scale(stage.users_before);
            stage.users_after = scale(stage.users_after);
            if let StageKind::Arrival { per_second } = &mut stage.kind {
                *per_second *= factor;
            }
        }
        self.users.count = n;
        self.channels.members = self.channels.members.min(n);
        Ok(self)
    }

    /// Points the scenario at another target (`--target`), refusing it when the timeline
    /// has server-side faults a real target cannot carry out.
    ///
    /// # Errors
    /// One problem per refused timeline event.
    pub fn with_target(mut self, target: Target, tokens: TokenSource) -> Result<Self, ScenarioErrors> {
        if !target.is_embedded() {
            let refused: Vec<Problem> = self
                .timeline
                .iter()
                .enumerate()
                .filter(|(_, e)| e.action.needs_mock())
                .map(|(i, e)| Problem {
                    file: "--target".to_owned(),
                    line: 0,
                    column: 0,
                    path: format!("timeline[{i}].{}", e.action.name()),
                    message: "needs the embedded mock's fault control; a real target cannot carry it out (use the client-side form where there is one)".to_owned(),
                })
                .collect();
            if !refused.is_empty() {
                return Err(ScenarioErrors(refused));
            }
        }
        self.target = target;
        self.users.token.source = tokens;
        Ok(self)
    }
}
