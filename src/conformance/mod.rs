//! The conformance suite: a table of protocol rules (one per requirement of PROTOCOL.md), each
//! checked by a small scripted case, with evidence for every failure.
//!
//! Layout:
//! - [`rules`] (`table.rs`): the rule table, the one place listing every rule id;
//! - `conn.rs`, `auth.rs` (with `auth_rest.rs`), `user.rs`, `health.rs`, `reconnect.rs`,
//!   `longpoll.rs`, `privacy.rs`, `typing.rs`, `read.rs`, `delivery.rs`, `disconnect.rs`,
//!   `error.rs`, `rate.rs`: the cases, one module per area;
//! - `coverage.rs`: the coverage matrix, every requirement of PROTOCOL.md with its rule ids or the
//!   reason it has none, rendered to `docs/conformance-coverage.md`;
//! - `ctx.rs`: what a case gets (scripted users, tokens, unique ids, timeouts);
//! - `client.rs` and `wire.rs`: the scripted WebSocket/HTTP client and its wire log;
//! - `suite.rs`: [`run_suite`]; `embedded.rs`: [`run_embedded`] and the mock config it uses;
//! - `report.rs`: a suite run's result, its counts and exit decision (rendered by `report/`);
//! - `observer.rs`, `observer_hooks.rs`: the same rules watched during load runs ([`Observer`]).

mod auth;
mod auth_rest;
pub mod client;
mod conn;
mod coverage;
mod ctx;
mod delivery;
mod disconnect;
mod embedded;
mod error;
mod health;
mod longpoll;
mod observer;
mod observer_hooks;
mod privacy;
mod rate;
mod read;
mod reconnect;
mod report;
#[cfg(test)]
pub(crate) use report::sample_report;
mod suite;
mod table;
mod typing;
mod user;
pub mod wire;

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use coverage::{COVERAGE_PATH, render_coverage};
pub use ctx::{CaseCtx, CaseError, CaseResult, ScriptedUser};
pub use embedded::{EMBEDDED_HEALTH_INTERVAL, embedded_mock_config, embedded_suite_options, mock_target, run_embedded};
pub use observer::{HealthForm, ObservedFailure, Observer, ObserverSummary, RuleCount};
pub use suite::{glob_match, run_rule, run_suite, unmatched_globs};
pub use table::rules;
pub use wire::{WireEntry, WireLog};

/// The protocol area a rule belongs to (one module each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum Area {
    /// WebSocket upgrade and the first frame (§1).
    Conn,
    /// Tokens and auth errors (§2).
    Auth,
    /// User id and size validation, upsert on connect (§8, §6.2).
    User,
    /// Health checks and pings (§3.1–3.2).
    Health,
    /// Reconnection and closes after errors (§3.4–3.5, §2.5).
    Reconnect,
    /// The long-poll fallback (§4).
    Longpoll,
    /// Privacy settings (§6).
    Privacy,
    /// Typing events (§7.1).
    Typing,
    /// Mark read (§7.2).
    Read,
    /// Disconnects and presence (§5).
    Disconnect,
    /// Error bodies (§2.5–2.6).
    Error,
    /// Rate limits (§9.1).
    Rate,
    /// Event fan-out: every watcher once, in order, no one else (§7.3).
    Delivery,
}

/// Whether a failure of the rule fails the suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Strictness {
    /// Documented behaviour: a failure fails the suite.
    Strict,
    /// PROTOCOL.md marks the point UNCONFIRMED or INFERRED: a failure is reported, and fails the
    /// suite only with `--strict`.
    NonStrict,
}

/// The future a case returns.
pub type CaseFuture = std::pin::Pin<Box<dyn std::future::Future<Output = CaseResult> + Send>>;

/// A case: checks one rule against the target.
pub type CaseFn = fn(std::sync::Arc<CaseCtx>) -> CaseFuture;

/// One rule of the protocol, as checked by the suite.
#[derive(Debug, Clone, Serialize)]
pub struct Rule {
    /// Stable id, e.g. `AUTH-EXPIRED-40`.
    pub id: &'static str,
    /// The area (module).
    pub area: Area,
    /// The PROTOCOL.md section(s) it comes from, e.g. `§2.5, §2.7`.
    pub section: &'static str,
    /// The requirement, one sentence.
    pub requirement: &'static str,
    /// Strict or non-strict.
    pub strictness: Strictness,
    /// The case that checks it.
    #[serde(skip)]
    pub case: CaseFn,
}

/// Options of one suite run.
#[derive(Debug, Clone)]
pub struct SuiteOptions {
    /// Globs over rule ids (`AUTH-*`, `HEALTH-PING-REPLY`); empty selects every rule.
    pub only: Vec<String>,
    /// Count non-strict failures as failures.
    pub strict: bool,
    /// The longest one case may take before it fails with "timed out".
    pub timeout_per_case: Duration,
    /// The server's health interval the suite expects (30 s per PROTOCOL.md §3.1; the embedded
    /// mock is started with a short one).
    pub health_interval: Duration,
    /// How many requests the RATE probe sends before concluding the target does not rate-limit.
    pub rate_probe: u32,
    /// How many cases run at once.
    pub concurrency: usize,
}

impl Default for SuiteOptions {
    fn default() -> Self {
        Self {
            only: Vec::new(),
            strict: false,
            timeout_per_case: Duration::from_secs(50),
            health_interval: Duration::from_secs(30),
            rate_probe: 150,
            concurrency: 16,
        }
    }
}

/// The outcome of one rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// The target behaved as required.
    Passed,
    /// A strict rule was violated (fails the suite).
    Failed,
    /// A non-strict rule was violated (reported; fails the suite only in strict mode).
    NonStrictFailure,
    /// The case could not run against this target.
    Skipped {
        /// Why, e.g. "the target does not rate-limit within 150 requests".
        reason: String,
    },
}

/// What a failing case saw.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evidence {
    /// What the rule required.
    pub expected: String,
    /// What arrived instead.
    pub received: String,
    /// The scripted user that saw it, when one did.
    pub user: Option<String>,
    /// Every frame, request and response of the case, timestamped, tokens redacted.
    pub wire_log: Vec<WireEntry>,
}

/// One rule's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleResult {
    /// Rule id.
    pub id: &'static str,
    /// Area.
    pub area: Area,
    /// PROTOCOL.md section.
    pub section: &'static str,
    /// The requirement sentence.
    pub requirement: &'static str,
    /// Strict or non-strict.
    pub strictness: Strictness,
    /// The verdict.
    #[serde(flatten)]
    pub verdict: Verdict,
    /// Evidence, for failures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Evidence>,
    /// How long the case ran.
    pub duration_ms: u64,
}

/// The result of a suite run; the report layer turns it into the typed conformance section its
/// renderers read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConformanceReport {
    /// The target, as given (no secrets).
    pub target: String,
    /// Whether non-strict failures count.
    pub strict: bool,
    /// Total wall time.
    pub duration_ms: u64,
    /// Passed rules.
    pub passed: usize,
    /// Failed strict rules.
    pub failed: usize,
    /// Failed non-strict rules.
    pub non_strict_failures: usize,
    /// Skipped rules.
    pub skipped: usize,
    /// One entry per selected rule, in table order.
    pub results: Vec<RuleResult>,
}
