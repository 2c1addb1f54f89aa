//! The problem collector every validation step writes into ([`Check`]), with the helpers the
//! `validate*` files share. It sits below them all, so each section's checker imports it and
//! none imports another's walk.

use super::de::{At, Sp};
use super::problem::Problem;
use super::raw::Scalar;
use super::tree::shorten;
use std::time::Duration;

/// The longest duration any key takes.
const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// Most users one scenario may define (the engine allocates per user).
pub(crate) const MAX_USERS: u64 = 10_000_000;

/// Collects problems while the raw model is turned into the engine's model.
pub(crate) struct Check<'a> {
    pub file: &'a str,
    pub problems: Vec<Problem>,
    /// Paths where decoding already failed: no second problem is reported under them, and
    /// cross-field checks that read them are skipped.
    poisoned: Vec<String>,
}

impl<'a> Check<'a> {
    /// Starts from the problems decoding found; `also_reported` are paths whose problems
    /// those already cover.
    pub fn new(file: &'a str, problems: Vec<Problem>, also_reported: Vec<String>) -> Self {
        let mut poisoned: Vec<String> = problems.iter().map(|p| p.path.clone()).collect();
        poisoned.extend(also_reported);
        Check {
            file,
            problems,
            poisoned,
        }
    }

    pub fn report(&mut self, at: &At, message: impl Into<String>) {
        self.poisoned.push(at.path.clone());
        self.problems.push(Problem {
            file: self.file.to_owned(),
            line: at.line,
            column: at.column,
            path: at.path.clone(),
            message: message.into(),
        });
    }

    /// Reports a required key that is not written, unless it was written but broken.
    pub fn missing(&mut self, parent: &At, key: &str, example: &str) {
        let path = join(&parent.path, key);
        if self.is_poisoned(&path) {
            return;
        }
        let at = At { path, ..parent.clone() };
        self.report(&at, format!("required key is missing, e.g. `{key}: {example}`"));
    }

    /// True when a problem was already reported at or under `path`.
    pub fn is_poisoned(&self, path: &str) -> bool {
        self.poisoned.iter().any(|p| {
            p == path
                || path.is_empty()
                || p.strip_prefix(path)
                    .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
        })
    }

    /// A humantime duration; a bare number gets a hint.
    pub fn duration(&mut self, sp: &Sp<Scalar>) -> Option<Duration> {
        match &sp.value {
            Scalar::Text(s) => match humantime::parse_duration(s.trim()) {
                // Bounded so that sums of stages and offsets can never overflow.
                Ok(d) if d > MAX_DURATION => {
                    self.report(&sp.at, "at most 365 days");
                    None
                }
                Ok(d) => Some(d),
                Err(_) => {
                    self.report(
                        &sp.at,
                        format!(
                            "\"{}\" is not a duration; write a number with a unit, e.g. `30s`, `5m`, `250ms`",
                            shorten(s)
                        ),
                    );
                    None
                }
            },
            Scalar::Number(n) if n.is_finite() => {
                self.report(
                    &sp.at,
                    format!("a duration needs a unit: write `{n}s` or `{n}ms`, not a bare number"),
                );
                None
            }
            Scalar::Number(_) => {
                self.report(&sp.at, "not a duration; write e.g. `30s`, `5m`, `250ms`");
                None
            }
        }
    }

    /// A duration that must be greater than zero.
    pub fn positive_duration(&mut self, sp: &Sp<Scalar>) -> Option<Duration> {
        let d = self.duration(sp)?;
        if d.is_zero() {
            self.report(&sp.at, "must be greater than zero");
            return None;
        }
        Some(d)
    }

    pub fn opt_positive_duration(&mut self, sp: &Option<Sp<Scalar>>) -> Option<Duration> {
        sp.as_ref().and_then(|sp| self.positive_duration(sp))
    }

    /// A share in (0, 1]; `default` when absent.
    pub fn fraction(&mut self, sp: &Option<Sp<f64>>, default: f64) -> f64 {
        match sp {
            None => default,
            Some(sp) if sp.value > 0.0 && sp.value <= 1.0 => sp.value,
            Some(sp) => {
                self.report(
                    &sp.at,
                    format!("a fraction is above 0 and at most 1 (0.5 = half), found {}", sp.value),
                );
                default
            }
        }
    }
}

pub(crate) fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

pub(crate) fn value<T: Clone>(sp: &Option<Sp<T>>) -> Option<T> {
    sp.as_ref().map(|s| s.value.clone())
}
