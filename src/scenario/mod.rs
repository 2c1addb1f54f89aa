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

mod check;
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
mod validate_tls;
mod validate_users;
mod validate_verdict;

#[cfg(test)]
mod tests;

pub use model::*;
pub use problem::{Problem, ScenarioErrors};
pub use threshold::Threshold;
pub use user_id::{BadUserId, MAX_USER_ID_LEN, check_user_id};

use de::Sp;
use raw::RawScenario;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

/// Scenario files larger than this are refused unread: a scenario is a page of YAML, and the
/// YAML parser costs about 1 µs per byte (release build), so the bound keeps any file's check
/// well under a second.
pub const MAX_SCENARIO_BYTES: usize = 256 * 1024;

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
/// ```
/// use chatstorm::scenario;
///
/// let s = scenario::parse("smoke.yaml", "users: { count: 10 }\nload: [ { hold: 5s } ]\n")
///     .expect("valid");
/// assert_eq!((s.name.as_str(), s.users.count), ("smoke", 10));
///
/// let err = scenario::parse("bad.yaml", "users: { count: 10 }\nload: [ { hold: 5 } ]\n")
///     .expect_err("a bare number");
/// assert_eq!(
///     err.to_string(),
///     "bad.yaml:2:17: load[0].hold: a duration needs a unit: write `5s` or `5ms`, not a bare number"
/// );
/// ```
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
    let gave_up = errors.len() >= de::MAX_PROBLEMS;
    let mut also_reported = Vec::new();
    let problems = errors
        .into_iter()
        .map(|e| {
            let at = e.at.unwrap_or_else(|| de::at_of(&root, ""));
            if let Some(known) = e.suggested {
                // `ovr` was reported with "did you mean `over`": `over` missing is the same mistake.
                let parent = at.path.rsplit_once('.').map_or("", |(parent, _)| parent);
                also_reported.push(check::join(parent, known));
            }
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
    let mut check = check::Check::new(source_name, problems, also_reported);
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
            if gave_up {
                let last_line = problems.iter().map(|p| p.line).max().unwrap_or(1);
                problems.push(problem(
                    last_line,
                    1,
                    String::new(),
                    format!("stopped after {} problems; fix these first", de::MAX_PROBLEMS),
                ));
            }
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

    /// Sets the run's length (`--duration`): a shorter run cuts the plan at `length` (timeline
    /// events at or after the new end are removed, so every event left in the model fires); a
    /// longer one extends the last stage when it is a hold, or appends a hold at the final
    /// level. Either way `run_length()` is then `length`.
    ///
    /// # Errors
    /// A zero length.
    pub fn with_duration(mut self, length: Duration) -> Result<Self, ScenarioErrors> {
        if length.is_zero() {
            return Err(flag_problem(
                "--duration",
                "duration",
                "must be greater than zero".to_owned(),
            ));
        }
        let total = self.load.total();
        if length > total {
            let extra = length - total;
            match self.load.stages.last_mut() {
                Some(last) if last.kind == StageKind::Hold => last.length += extra,
                last => {
                    let level = last.map_or(0, |s| s.users_after);
                    self.load.stages.push(Stage {
                        start: total,
                        length: extra,
                        users_before: level,
                        users_after: level,
                        kind: StageKind::Hold,
                    });
                }
            }
        }
        self.duration = Some(length);
        self.timeline.retain(|e| e.at < length);
        Ok(self)
    }

    /// Scales the population to `n` users (`--users`): every stage's user levels and arrival
    /// rates scale by `n / users.count`, and channel membership is capped at `n`. Fractions,
    /// durations and the timeline are unchanged.
    ///
    /// # Errors
    /// `n` outside 1 to 10,000,000, or an id pattern that gives an invalid id at the new highest index.
    pub fn with_users(mut self, n: u64) -> Result<Self, ScenarioErrors> {
        if n == 0 || n > check::MAX_USERS {
            return Err(flag_problem(
                "--users",
                "users.count",
                format!("must be 1 to {}", check::MAX_USERS),
            ));
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
            if let StageKind::Arrival { per_second, .. } = &mut stage.kind {
                *per_second *= factor;
            }
        }
        self.users.count = n;
        self.channels.members = self.channels.members.min(n);
        Ok(self)
    }

    /// Compresses (or stretches) the scenario's own clock by `factor` (0.1 = ten times
    /// faster), for tests that run a shipped scenario in seconds: stage lengths and starts,
    /// timeline offsets and windows, behaviour intervals, token lifetimes, the `duration` cap
    /// and threshold warm-ups all scale; arrival rates scale inversely, so the same users
    /// arrive. The SDKs' own timings (back-off, health cadence, timeouts) and the mock's
    /// options do not: set those in the scenario when a test needs them short. Every scaled
    /// duration stays at least 1 ms.
    ///
    /// # Errors
    /// A factor outside (0, 1000]; the upper bound keeps every scaled sum of durations far
    /// from overflowing.
    pub fn with_time_scale(mut self, factor: f64) -> Result<Self, ScenarioErrors> {
        if !(factor > 0.0 && factor <= 1000.0) {
            return Err(flag_problem(
                "time scale",
                "",
                format!("must be above 0 and at most 1000, found {factor}"),
            ));
        }
        let scale = |d: Duration| d.mul_f64(factor).max(Duration::from_millis(1));
        let mut start = Duration::ZERO;
        for stage in &mut self.load.stages {
            stage.start = start;
            stage.length = scale(stage.length);
            start += stage.length;
            if let StageKind::Arrival { per_second, session } = &mut stage.kind {
                *per_second /= factor;
                *session = session.map(scale);
            }
        }
        let end = self.load.total();
        for event in &mut self.timeline {
            event.at = event
                .at
                .mul_f64(factor)
                .min(end.saturating_sub(Duration::from_millis(1)));
            match &mut event.action {
                Action::BlockWebsocket { length }
                | Action::RefuseWebsocket { length, .. }
                | Action::HalfOpen { length, .. }
                | Action::AddLatency { length, .. } => *length = length.map(scale),
                Action::Background { length, .. } => *length = scale(*length),
                Action::DropSockets { .. } | Action::ExpireTokens { .. } | Action::SetPrivacy { .. } => {}
            }
        }
        let b = &mut self.behaviour;
        for every in [
            b.typing.as_mut().map(|e| &mut e.every),
            b.read.as_mut().map(|e| &mut e.every),
        ]
        .into_iter()
        .flatten()
        {
            *every = scale(*every);
        }
        if let Some(m) = &mut b.message {
            m.every = scale(m.every);
        }
        if let Some(g) = &mut b.background {
            g.every = scale(g.every);
            g.length = scale(g.length);
        }
        self.users.token.ttl = self.users.token.ttl.map(scale);
        self.duration = self.duration.map(scale);
        for t in &mut self.thresholds {
            t.abort_after = t.abort_after.map(scale);
        }
        Ok(self)
    }

    /// Points the scenario at another target (`--target`), refusing it when the timeline
    /// has server-side faults a real target cannot carry out.
    ///
    /// # Errors
    /// One problem per refused timeline event.
    pub fn with_target(mut self, target: TargetSpec, tokens: TokenSource) -> Result<Self, ScenarioErrors> {
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
