//! `RunSummary`: the single source of truth of a finished run. Every renderer (console, JSON,
//! JUnit, HTML) and `chatstorm report` read this and nothing else; its JSON Schema is committed
//! at `schemas/summary.schema.json` and checked by a test.

use crate::metrics::{MetricsSnapshot, PercentileSummary, SpectrumPoint};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

// Figures the engine observes beside the metrics; the summary carries them as they are.
pub use crate::engine::figures::{Outage, StateFigures, TargetHealth, TimelineMark};
// A storm's figures are read off its histograms in `metrics`, next to the raw counts.
pub use crate::metrics::StormFigures;

/// The schema identifier written into every summary.
pub const SCHEMA_ID: &str = "chatstorm-summary/1";

/// The JSON Schema of `summary.json`, as committed at `schemas/summary.schema.json`: the schemars
/// derivation of [`RunSummary`] (with the `schema` const, the outcome and exit-code enums and the
/// `date-time` format set on its fields) made strict, every object with a fixed set of
/// properties closed to others ([`close_objects`]).
pub fn json_schema() -> schemars::Schema {
    let mut schema = schemars::schema_for!(RunSummary).to_value();
    close_objects(&mut schema, false);
    // Back into a `Schema`, whose serialization puts `$schema`, `title` and `description` first.
    schemars::Schema::try_from(schema).unwrap_or_else(|_| schemars::schema_for!(RunSummary))
}

/// Closes every object schema with fixed `properties` (a struct) to properties it does not
/// name: `additionalProperties: false`, or, when the struct flattens an enum in (its variants
/// are `oneOf`/`anyOf`/`allOf` branches beside the properties), `unevaluatedProperties: false`,
/// which counts the properties the matching branch names; the branches themselves stay open, as
/// each sees the whole object. Maps (`additionalProperties` already set) are left as they are.
fn close_objects(schema: &mut serde_json::Value, flattened_branch: bool) {
    let serde_json::Value::Object(map) = schema else {
        if let serde_json::Value::Array(items) = schema {
            for item in items {
                close_objects(item, flattened_branch);
            }
        }
        return;
    };
    let has_properties = map.contains_key("properties");
    let has_branches = ["oneOf", "anyOf", "allOf"].iter().any(|k| map.contains_key(*k));
    if has_properties && !flattened_branch && !map.contains_key("additionalProperties") {
        let key = if has_branches {
            "unevaluatedProperties"
        } else {
            "additionalProperties"
        };
        map.insert(key.to_owned(), serde_json::Value::Bool(false));
    }
    for (key, child) in map.iter_mut() {
        match key.as_str() {
            "oneOf" | "anyOf" | "allOf" => close_objects(child, has_properties),
            "properties" | "$defs" | "patternProperties" => {
                if let serde_json::Value::Object(children) = child {
                    for c in children.values_mut() {
                        close_objects(c, false);
                    }
                }
            }
            "items" | "additionalProperties" | "prefixItems" | "not" | "if" | "then" | "else" => {
                close_objects(child, false);
            }
            _ => {}
        }
    }
}

/// Everything a run measured and decided.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct RunSummary {
    /// Always [`SCHEMA_ID`].
    #[schemars(extend("const" = SCHEMA_ID))]
    pub schema: String,
    /// The tool that wrote it.
    pub tool: ToolInfo,
    /// What ran, against what, when.
    pub run: RunInfo,
    /// Pass or fail, the exit code and why.
    pub verdict: Verdict,
    /// Latency figures per histogram tag (`connect.ws`, `connect.ws.intended`, `reconnect`, ...,
    /// and `connect`: both transports merged, the histogram a `connect.*` threshold judges).
    pub latency: BTreeMap<String, LatencyFigures>,
    /// Error totals and rates.
    pub errors: ErrorFigures,
    /// Every run-wide figure a threshold can name that is neither a histogram (those are in
    /// `latency`) nor a counter (`metrics.counters`), by its threshold name: `errors.rate` (a
    /// share in [0, 1]), `errors.count`, `connects.rate` (per second), `conformance.failed`.
    /// A figure with no data (an error rate of no operations) is absent.
    #[serde(default)]
    pub figures: BTreeMap<String, f64>,
    /// Reconnect storms and their recovery.
    pub storms: Vec<StormFigures>,
    /// Background waves (mobile apps sent to the background at once) and their recovery after
    /// the apps came back to the foreground.
    #[serde(default)]
    pub waves: Vec<StormFigures>,
    /// The scenario's timeline as it was carried out.
    pub timeline: Vec<TimelineMark>,
    /// Threshold results, in the scenario's order.
    pub thresholds: Vec<ThresholdResult>,
    /// The implicit checks (users connected, recovered, target reachable, state kept), each
    /// passed, failed, no data or off; recomputed from the figures below by `build::decide`.
    #[serde(default)]
    pub checks: Vec<CheckResult>,
    /// Which implicit checks the scenario asked for.
    #[serde(default)]
    pub check_settings: CheckSettings,
    /// What the in-run probe of the target saw.
    #[serde(default)]
    pub target_health: TargetHealth,
    /// The end-of-run check of what setup created on the target (`None`: not checked).
    #[serde(default)]
    pub state: Option<StateFigures>,
    /// Conformance rules watched during the run (`None`: a summary of no run, e.g. a test's).
    pub conformance: Option<ConformanceSection>,
    /// Whether the load generator kept up.
    pub generator: GeneratorHealth,
    /// Figures broken down by SDK profile of the run's mix (every profile of the mix, each
    /// user under its own profile; the sums are the totals, except for what belongs to no user:
    /// scheduler lag, late ticks, lost and duplicated deliveries).
    pub by_profile: BTreeMap<String, ProfileFigures>,
    /// The raw measurements: exact histograms (for merging and re-rendering), counters, curves.
    pub metrics: MetricsSnapshot,
}

/// The tool.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ToolInfo {
    /// `chatstorm`.
    pub name: String,
    /// The crate version.
    pub version: String,
}

impl Default for ToolInfo {
    fn default() -> Self {
        Self {
            name: "chatstorm".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }
}

/// What ran.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct RunInfo {
    /// The scenario's name (or `conform`).
    pub name: String,
    /// Its description.
    pub description: Option<String>,
    /// The scenario file.
    pub scenario_file: Option<String>,
    /// The seed every random choice derived from.
    pub seed: u64,
    /// The target: its URL, or `embedded mock (http://127.0.0.1:PORT)`.
    pub target: String,
    /// Whether the target was the bundled mock.
    pub target_is_mock: bool,
    /// RFC 3339 start time.
    #[schemars(extend("format" = "date-time"))]
    pub started_at: String,
    /// Length of the run, milliseconds.
    pub duration_ms: u64,
    /// The plan's length, milliseconds.
    pub planned_ms: u64,
    /// Users the plan schedules.
    pub users_planned: u64,
    /// Users actually started.
    pub users_started: u64,
    /// Users whose intended start left them at least the connect grace (3 s) before the run
    /// ended: the ones the `users_connected` check expects to have connected.
    #[serde(default)]
    pub users_due: u64,
    /// Shards merged into this summary (1 for a single process).
    pub shards: u32,
    /// Stopped early by Ctrl-C or an aborting threshold.
    pub interrupted: bool,
    /// Why it stopped early, when it did.
    pub stop_reason: Option<String>,
    /// How the target was reached over TLS; absent for a plain target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsInfo>,
    /// The host names the run looked up, once each before any user started (every connection
    /// of the run then used these addresses); absent for IP literals and the embedded mock.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<DnsInfo>,
}

/// One host name's lookup (`net::dns`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DnsInfo {
    /// The name.
    pub host: String,
    /// The port connected to.
    pub port: u16,
    /// The addresses it resolved to, in the order connections try them (a user's WebSocket
    /// uses the first).
    pub addresses: Vec<String>,
    /// The lookup's time, milliseconds.
    pub lookup_ms: f64,
}

/// The TLS of a run against an `https://` / `wss://` target.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TlsInfo {
    /// `--insecure`: server certificates were NOT checked (issuer, name, dates), so nothing
    /// proves the figures came from the intended server.
    pub insecure: bool,
}

impl RunInfo {
    /// `", N shards merged"` for merged runs, empty otherwise (for the console and HTML headers).
    pub fn shards_note(&self) -> String {
        if self.shards > 1 {
            format!(", {} shards merged", self.shards)
        } else {
            String::new()
        }
    }
}

/// The outcome.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct Verdict {
    /// `passed`, `threshold breached`, ... (one of [`Outcome::verdict`](crate::exit::Outcome::verdict)'s words).
    #[schemars(extend("enum" = crate::exit::Outcome::verdicts()))]
    pub outcome: String,
    /// The process exit code (one of the documented codes, README "Exit codes").
    #[schemars(extend("enum" = crate::exit::Outcome::codes()))]
    pub exit_code: u8,
    /// One line per reason it did not pass.
    pub reasons: Vec<String>,
}

/// One histogram's figures.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct LatencyFigures {
    /// Percentiles, microseconds.
    pub summary: PercentileSummary,
    /// p50 to p99.99, for the spectrum chart.
    pub spectrum: Vec<SpectrumPoint>,
}

/// Errors.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct ErrorFigures {
    /// Failed operations (connects, REST calls, token fetches).
    pub total: u64,
    /// Operations attempted.
    pub operations: u64,
    /// `total / operations`, in percent.
    pub rate_percent: f64,
    /// Failures by Stream error code.
    pub by_code: BTreeMap<String, u64>,
    /// Closes by WebSocket close code.
    pub by_close_code: BTreeMap<String, u64>,
    /// Connect failures without an API error, by cause (`refused`, `reset`, `timeout_upgrade`,
    /// `http_503`, `first_frame_not_json`, `dns`, `local_resources`, ...).
    #[serde(default)]
    pub by_kind: BTreeMap<String, u64>,
}

/// A threshold and how it fared.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct ThresholdResult {
    /// The key as written (`connect.p99`).
    pub metric: String,
    /// The condition as written (`< 500ms`).
    pub condition: String,
    /// The observed value in the metric's unit, when there was one.
    pub observed: Option<f64>,
    /// The observed value for people (`412.3ms`).
    pub observed_text: String,
    /// Whether it held. A threshold with no samples has not held: it is never green.
    pub passed: bool,
    /// True when its metric had no samples: reported as "no data", never as passed.
    #[serde(default)]
    pub no_data: bool,
    /// Whether it stopped the run.
    pub aborted_run: bool,
}

/// How an implicit check fared.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    /// It held.
    Passed,
    /// It did not: the run fails.
    Failed,
    /// Nothing to check (no fault dropped a user, no setup to verify): never shown as passed.
    #[default]
    NoData,
    /// Turned off in the scenario's `checks`.
    Off,
}

impl CheckStatus {
    /// `passed`, `FAILED`, `no data`, `off` for people.
    pub fn word(self) -> &'static str {
        match self {
            Self::Passed => "passed",
            Self::Failed => "FAILED",
            Self::NoData => "no data",
            Self::Off => "off",
        }
    }
}

/// One implicit check.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct CheckResult {
    /// Its key in the scenario's `checks` (`users_connected`, `recovered`, `target_reachable`,
    /// `state_kept`).
    pub name: String,
    /// What it asks for.
    pub expected: String,
    /// What was seen.
    pub observed: String,
    /// How it fared.
    pub status: CheckStatus,
}

/// Which implicit checks a run makes (the scenario's `checks`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema)]
pub struct CheckSettings {
    /// Share of the due users that must connect, in `(0, 1]`; `None` when off.
    pub users_connected: Option<f64>,
    /// Users dropped by a fault came back within their SDK's bounds.
    pub recovered: bool,
    /// The target answered the in-run probe throughout.
    pub target_reachable: bool,
    /// What setup created was still there at the end.
    pub state_kept: bool,
}

impl Default for CheckSettings {
    fn default() -> Self {
        let c = crate::scenario::Checks::default();
        Self {
            users_connected: c.users_connected,
            recovered: c.recovered,
            target_reachable: c.target_reachable,
            state_kept: c.state_kept,
        }
    }
}

/// Whether the generator kept up: a run where it did not is invalid (exit 4).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct GeneratorHealth {
    /// The descriptor limit the run had.
    pub fd_limit: u64,
    /// The most descriptors open at once.
    pub fd_peak: u64,
    /// How late the scheduler's 10 ms ticks fired, p99, microseconds.
    pub scheduler_lag_p99_us: u64,
    /// Worst tick lateness, microseconds.
    pub scheduler_lag_max_us: u64,
    /// The documented bound on the p99 lag, microseconds.
    pub scheduler_lag_bound_us: u64,
    /// User starts that began later than the bound after their intended time.
    pub late_starts: u64,
    /// Connects that failed for lack of local ports or descriptors.
    pub resource_failures: u64,
    /// How long REST calls waited for one of the harness's request slots, p99, microseconds
    /// (`generator.queue`; the bound is the scheduler-lag bound).
    #[serde(default)]
    pub generator_queue_p99_us: u64,
    /// REST calls that never got a harness request slot within their timeout.
    #[serde(default)]
    pub generator_queue_timeouts: u64,
    /// Peak resident memory of the harness, bytes.
    pub peak_rss_bytes: u64,
    /// Peak resident memory divided by peak live users, bytes.
    pub rss_per_user_bytes: u64,
    /// CPU seconds (user + system) of the harness.
    pub cpu_seconds: f64,
    /// CPU seconds the harness spent in its own TLS handshakes (0 for a plain target).
    #[serde(default)]
    pub tls_handshake_cpu_seconds: f64,
    /// The busiest second's handshake CPU as a share of the harness's cores (0 to 1; over 0.5
    /// makes the run invalid: connects queued behind the harness's own handshakes).
    #[serde(default)]
    pub tls_handshake_cpu_peak_share: f64,
    /// True when any bound was passed; the reasons say which.
    pub saturated: bool,
    /// One line per bound passed.
    pub reasons: Vec<String>,
}

/// Figures of one SDK profile: the run-level figures restricted to its users.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct ProfileFigures {
    /// Users of this profile started.
    pub users: u64,
    /// Most of them live at once.
    pub connected_peak: u64,
    /// Connections that reached the first `health.check`.
    pub connects: u64,
    /// Connect attempts: connects plus failed attempts.
    pub connect_attempts: u64,
    /// Counters of this profile's users, by name (as `metrics.counters`).
    pub counters: BTreeMap<String, u64>,
    /// Errors of this profile's users (as `errors`).
    pub errors: ErrorFigures,
    /// Latency percentiles of this profile's users, by histogram tag, plus `connect` (both
    /// transports).
    pub latency: BTreeMap<String, PercentileSummary>,
    /// Its users in each reconnect storm.
    pub storms: Vec<StormFigures>,
    /// Its users in each background wave.
    pub waves: Vec<StormFigures>,
    /// Conformance observations of its users.
    pub conformance: ProfileConformance,
}

/// Conformance observations of one profile's users during a load run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct ProfileConformance {
    /// Observations checked, every rule together.
    pub checks: u64,
    /// Observations that violated a rule.
    pub failures: u64,
    /// Per rule id.
    pub rules: BTreeMap<String, crate::metrics::RuleTally>,
}

/// The conformance section: the rules `chatstorm conform`'s scripted suite checked, or the rules
/// watched during a load run, with one verdict each. The same type is `summary.json`'s
/// `conformance` key and `conform`'s `conformance.json`, and every renderer reads it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ConformanceSection {
    /// How the rules were checked.
    pub source: ConformanceSource,
    /// The target, as given (no secrets); `None` in a load run, whose `run.target` says it.
    #[serde(default)]
    pub target: Option<String>,
    /// Whether non-strict failures count as failures.
    pub strict: bool,
    /// Wall time of the suite, milliseconds; `None` in a load run (the rules were watched all along).
    #[serde(default)]
    pub duration_ms: Option<u64>,
    /// Rules passed.
    pub passed: u64,
    /// Strict rules failed.
    pub failed: u64,
    /// Non-strict rules failed (counted as failures only when `strict`).
    pub non_strict_failures: u64,
    /// Rules skipped.
    pub skipped: u64,
    /// One entry per rule, in the rule table's order.
    pub rules: Vec<ConformanceRule>,
}

/// Where a conformance section's verdicts come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConformanceSource {
    /// `chatstorm conform`: a scripted case per rule.
    Suite,
    /// A load run: what the simulated users saw, checked against the watched rules.
    Observed,
}

/// One rule's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ConformanceRule {
    /// Rule id, e.g. `AUTH-EXPIRED-40`.
    pub id: String,
    /// Its protocol area.
    pub area: crate::conformance::Area,
    /// The PROTOCOL.md section(s).
    pub section: String,
    /// The requirement, one sentence.
    pub requirement: String,
    /// Strict or non-strict.
    pub strictness: crate::conformance::Strictness,
    /// The verdict (`verdict`: `passed`, `failed`, `non_strict_failure`, `skipped` with `reason`).
    #[serde(flatten)]
    pub verdict: crate::conformance::Verdict,
    /// Observations checked against the rule (load runs).
    #[serde(default)]
    pub observed: Option<u64>,
    /// Observations that violated it (load runs).
    #[serde(default)]
    pub failures: Option<u64>,
    /// How long the case ran, milliseconds (the suite).
    #[serde(default)]
    pub duration_ms: Option<u64>,
    /// What the failure looked like: the suite's case, or the first violation seen in a load run.
    #[serde(default)]
    pub evidence: Option<RuleEvidence>,
}

/// The evidence of a rule's failure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RuleEvidence {
    /// What the rule required.
    pub expected: String,
    /// What arrived instead.
    pub received: String,
    /// The simulated or scripted user that saw it, when one did.
    #[serde(default)]
    pub user: Option<String>,
    /// When it was seen, milliseconds from the start of the run (load runs).
    #[serde(default)]
    pub at_ms: Option<u64>,
    /// Every frame, request and response of the case, timestamped, tokens redacted (the suite;
    /// a load run keeps no wire log).
    #[serde(default)]
    pub wire_log: Vec<crate::conformance::WireEntry>,
}

impl ConformanceSection {
    /// Rules whose failure fails the run: strict failures, and non-strict ones when `strict`.
    pub fn failing(&self) -> u64 {
        self.failed + if self.strict { self.non_strict_failures } else { 0 }
    }

    /// The rule `id`.
    pub fn rule(&self, id: &str) -> Option<&ConformanceRule> {
        self.rules.iter().find(|r| r.id == id)
    }

    /// Whether `rule`'s failure counts against the run (see [`failing`](Self::failing)).
    pub fn counts(&self, rule: &ConformanceRule) -> bool {
        use crate::conformance::Verdict;
        matches!(rule.verdict, Verdict::Failed) || (self.strict && matches!(rule.verdict, Verdict::NonStrictFailure))
    }
}

impl ConformanceRule {
    /// The verdict as a word for people: `passed`, `FAILED`, `non-strict failure`, `skipped`.
    pub fn verdict_word(&self) -> &'static str {
        use crate::conformance::Verdict;
        match self.verdict {
            Verdict::Passed => "passed",
            Verdict::Failed => "FAILED",
            Verdict::NonStrictFailure => "non-strict failure",
            Verdict::Skipped { .. } => "skipped",
        }
    }

    /// One line on why the verdict is what it is: the skip reason, or how many observations of
    /// a load run failed; empty for a pass.
    pub fn detail(&self) -> String {
        use crate::conformance::Verdict;
        match (&self.verdict, self.observed, self.failures) {
            (Verdict::Skipped { reason }, _, _) => reason.clone(),
            (_, Some(checks), Some(failures)) if failures > 0 => {
                format!("{failures} of {checks} observations failed")
            }
            _ => String::new(),
        }
    }
}
