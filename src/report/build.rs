//! From what a run measured to the `RunSummary` every renderer reads: derived latency figures,
//! error rates, storm recovery, generator health, thresholds evaluated, and the verdict.

use super::summary::*;
use crate::engine::lag::LAG_BOUND;
use crate::engine::run::RunOutput;
use crate::exit::Outcome;
use crate::metrics::{MetricsSnapshot, PercentileSummary, spectrum};
use crate::scenario::Scenario;
pub use crate::scenario::threshold::format_value;
use crate::scenario::threshold::{Derived, Metric, Stat, Threshold};
use std::collections::BTreeMap;

/// Builds the summary of a finished run.
pub fn build(scenario: &Scenario, scenario_file: Option<String>, out: &RunOutput) -> RunSummary {
    let metrics = out.metrics.clone();
    let mut summary = RunSummary {
        schema: SCHEMA_ID.to_owned(),
        tool: ToolInfo::default(),
        run: RunInfo {
            name: scenario.name.clone(),
            description: scenario.description.clone(),
            scenario_file,
            seed: scenario.seed,
            target: out.target_description.clone(),
            target_is_mock: out.target_is_mock,
            started_at: chatstorm_protocol::time::format_rfc3339(out.started_at),
            duration_ms: out.elapsed.as_millis() as u64,
            planned_ms: out.planned.as_millis() as u64,
            users_planned: out.users_planned,
            users_started: out.users_started,
            users_due: out.users_due,
            shards: metrics.shards.max(1),
            interrupted: out.stop_reason.is_some(),
            stop_reason: out.stop_reason.clone(),
            tls: out.tls.clone(),
            dns: out
                .dns
                .iter()
                .map(|r| crate::report::summary::DnsInfo {
                    host: r.host.clone(),
                    port: r.port,
                    addresses: r.addrs.iter().map(ToString::to_string).collect(),
                    lookup_ms: r.took.as_secs_f64() * 1000.0,
                })
                .collect(),
        },
        verdict: Verdict::default(),
        latency: BTreeMap::new(),
        errors: ErrorFigures::default(),
        figures: BTreeMap::new(),
        storms: Vec::new(),
        waves: Vec::new(),
        timeline: out.marks.clone(),
        thresholds: Vec::new(),
        checks: Vec::new(),
        check_settings: settings_of(scenario),
        target_health: out.target_health.clone(),
        state: out.state.clone(),
        conformance: out
            .conformance
            .as_ref()
            .map(|c| super::conformance::from_observer(c, scenario.conformance.strict)),
        generator: generator_health(out),
        by_profile: BTreeMap::new(),
        metrics,
    };
    derive(&mut summary);
    summary.thresholds = scenario
        .thresholds
        .iter()
        .map(|t| ThresholdResult {
            aborted_run: out.aborted_by.as_deref() == Some(t.key.as_str()),
            ..evaluate(t, &summary)
        })
        .collect();
    decide(&mut summary);
    summary
}

/// The scenario's `checks` as the summary records them.
fn settings_of(scenario: &Scenario) -> CheckSettings {
    let c = scenario.checks;
    CheckSettings {
        users_connected: c.users_connected,
        recovered: c.recovered,
        target_reachable: c.target_reachable,
        state_kept: c.state_kept,
    }
}

/// The summary of a run that never started (the target unreachable, or failing during setup):
/// no figures, every check "no data", and a verdict with the one reason, so `junit.xml` and
/// `summary.json` say the run failed instead of being absent (or stale).
pub fn not_started(
    scenario: &Scenario,
    scenario_file: Option<String>,
    target: &str,
    outcome: Outcome,
    reason: &str,
) -> RunSummary {
    let mut summary = RunSummary {
        schema: SCHEMA_ID.to_owned(),
        tool: ToolInfo::default(),
        run: RunInfo {
            name: scenario.name.clone(),
            description: scenario.description.clone(),
            scenario_file,
            seed: scenario.seed,
            target: target.to_owned(),
            started_at: chatstorm_protocol::time::now_rfc3339(),
            planned_ms: scenario.run_length().as_millis() as u64,
            shards: 1,
            interrupted: true,
            stop_reason: Some(reason.to_owned()),
            ..RunInfo::default()
        },
        verdict: Verdict::default(),
        latency: BTreeMap::new(),
        errors: ErrorFigures::default(),
        figures: BTreeMap::new(),
        storms: Vec::new(),
        waves: Vec::new(),
        timeline: Vec::new(),
        thresholds: Vec::new(),
        checks: Vec::new(),
        check_settings: settings_of(scenario),
        target_health: TargetHealth::default(),
        state: None,
        conformance: None,
        generator: GeneratorHealth::default(),
        by_profile: BTreeMap::new(),
        metrics: MetricsSnapshot::default(),
    };
    summary.thresholds = scenario.thresholds.iter().map(|t| evaluate(t, &summary)).collect();
    decide(&mut summary);
    summary.verdict.outcome = outcome.verdict().to_owned();
    summary.verdict.exit_code = outcome.code();
    summary.verdict.reasons.insert(0, reason.to_owned());
    summary
}

/// Recomputes every derived figure from `summary.metrics` (also after a merge of shards).
pub fn derive(summary: &mut RunSummary) {
    let m = &summary.metrics;
    summary.latency = m
        .histograms
        .iter()
        .filter_map(|(tag, h)| {
            let hist = h.decode().ok()?;
            Some((
                tag.clone(),
                LatencyFigures {
                    summary: PercentileSummary::of(&hist, h.clamped),
                    spectrum: spectrum(&hist),
                },
            ))
        })
        .collect();
    summary.errors = error_figures(&m.counters, &m.error_codes, &m.close_codes, &m.failure_kinds);
    let figures: Vec<(bool, StormFigures)> = m
        .storms
        .iter()
        .filter_map(|s| {
            let f = s.figures().ok()?;
            Some((s.away_ms > 0, f))
        })
        .collect();
    let (waves, storms): (Vec<_>, Vec<_>) = figures.into_iter().partition(|(wave, _)| *wave);
    summary.storms = storms.into_iter().map(|(_, f)| f).collect();
    summary.waves = waves.into_iter().map(|(_, f)| f).collect();
    summary.by_profile = m
        .profiles
        .iter()
        .map(|(name, p)| (name.clone(), profile_figures(name, p, summary)))
        .collect();
    summary.figures = Derived::ALL
        .iter()
        .filter_map(|(d, name)| Some(((*name).to_owned(), observe(Metric::Derived(*d), summary)?)))
        .collect();
}

/// Error totals and rates from counters and code tables (the run's or one profile's).
fn error_figures(
    counters: &BTreeMap<String, u64>,
    error_codes: &crate::metrics::CodeCounts,
    close_codes: &crate::metrics::CodeCounts,
    failure_kinds: &crate::metrics::CodeCounts,
) -> ErrorFigures {
    let c = |name: &str| counters.get(name).copied().unwrap_or(0);
    let failures = c("connect_failures") + c("rest_failures") + c("token_fetch_failures");
    let operations = c("connects") + c("connect_failures") + c("rest_requests") + c("token_fetches");
    ErrorFigures {
        total: failures,
        operations,
        rate_percent: if operations == 0 {
            0.0
        } else {
            failures as f64 * 100.0 / operations as f64
        },
        by_code: error_codes.by_code.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        by_close_code: close_codes.by_code.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        by_kind: kind_names(failure_kinds),
    }
}

/// Failure kinds by name; statuses beyond the table's slots as `other`.
pub(crate) fn kind_names(kinds: &crate::metrics::CodeCounts) -> BTreeMap<String, u64> {
    let mut out: BTreeMap<String, u64> = BTreeMap::new();
    for (k, v) in &kinds.by_code {
        *out.entry(crate::metrics::FailureKind::key_name(*k)).or_insert(0) += v;
    }
    if kinds.other > 0 {
        out.insert("other".into(), kinds.other);
    }
    out
}

/// One profile's figures, read off its snapshot and the run's storms (already derived).
fn profile_figures(name: &str, p: &crate::metrics::ProfileSnapshot, summary: &RunSummary) -> ProfileFigures {
    let c = |n: &str| p.counters.get(n).copied().unwrap_or(0);
    let mut latency: BTreeMap<String, PercentileSummary> = p
        .histograms
        .iter()
        .filter_map(|(tag, h)| Some((tag.clone(), h.summary().ok()?)))
        .collect();
    // Published by the collector; rebuilt from its parts for summaries written before.
    if !latency.contains_key(crate::metrics::CONNECT_TAG)
        && let Ok((h, clamped)) = p.combined(&["connect.ws", "connect.longpoll"])
        && !h.is_empty()
    {
        latency.insert("connect".to_owned(), PercentileSummary::of(&h, clamped));
    }
    // Across merged shards the per-second column gives the exact peak; one process's own
    // sample is exact already.
    let column = format!("connected.{name}");
    let connected_peak = match summary.metrics.timeline.gauges.get(&column) {
        Some(levels) => levels.iter().copied().max().unwrap_or(0).max(0) as u64,
        None if summary.metrics.profiles.len() == 1 => summary
            .metrics
            .timeline
            .gauges
            .get("connected")
            .and_then(|l| l.iter().copied().max())
            .map_or(p.connected_peak, |m| m.max(0) as u64),
        None => p.connected_peak,
    };
    let of = |list: &[StormFigures]| {
        list.iter()
            .filter_map(|s| s.by_profile.get(name).cloned())
            .collect::<Vec<_>>()
    };
    ProfileFigures {
        users: p.users,
        connected_peak,
        connects: c("connects"),
        connect_attempts: c("connects") + c("connect_failures"),
        counters: p.counters.clone(),
        errors: error_figures(&p.counters, &p.error_codes, &p.close_codes, &p.failure_kinds),
        latency,
        storms: of(&summary.storms),
        waves: of(&summary.waves),
        conformance: ProfileConformance {
            checks: p.conformance.values().map(|t| t.checks).sum(),
            failures: p.conformance.values().map(|t| t.failures).sum(),
            rules: p.conformance.clone(),
        },
    }
}

/// The handshake share named as a cause of a saturation found by the other signs.
const HANDSHAKE_CAUSE_SHARE: f64 = 0.25;

fn generator_health(out: &RunOutput) -> GeneratorHealth {
    let mut reasons = Vec::new();
    if out.lag.saturated() {
        reasons.push(format!(
            "scheduler lag p99 {:.1} ms is over the {} ms bound: the harness could not keep time",
            out.lag.p99_us as f64 / 1000.0,
            LAG_BOUND.as_millis()
        ));
    }
    // The harness's own handshakes: busy enough in some second that connects queued behind them
    // in the harness (the lag probe cannot see this; see engine::tls_load).
    let tls_load = out.tls_load.unwrap_or_default();
    if tls_load.saturated() {
        reasons.push(format!(
            "the harness's own TLS handshakes took {:.0} % of its cores in the busiest second (bound {:.0} %): connects queued behind them in the harness, so connect.tls and the connect rate measure the harness",
            tls_load.peak_share * 100.0,
            crate::engine::tls_load::HANDSHAKE_SHARE_BOUND * 100.0
        ));
    }
    let late_limit = (out.users_started / 100).max(10);
    if out.late_starts > late_limit {
        reasons.push(format!(
            "{} users started more than {} ms after their intended time",
            out.late_starts,
            crate::engine::lag::LATE_START.as_millis()
        ));
    }
    let resource_failures = out.metrics.counters.get("resource_failures").copied().unwrap_or(0);
    if resource_failures > 0 {
        reasons.push(format!(
            "{resource_failures} connects failed for lack of local ports or descriptors"
        ));
    }
    // The harness's own REST queue: a call that waited for a slot, or never got one, measures the
    // generator, not the server (`rest.*` starts when the request leaves).
    let queue_timeouts = out
        .metrics
        .counters
        .get("generator_queue_timeouts")
        .copied()
        .unwrap_or(0);
    let queue_p99_us = out
        .metrics
        .histogram("generator.queue")
        .map(|h| h.value_at_quantile(0.99))
        .unwrap_or(0);
    if queue_timeouts > 0 {
        reasons.push(format!(
            "{queue_timeouts} REST calls never left the harness: no free request slot within their timeout (generator.queue)"
        ));
    }
    if queue_p99_us > LAG_BOUND.as_micros() as u64 {
        reasons.push(format!(
            "REST calls waited for a harness request slot: generator.queue p99 {:.1} ms is over the {} ms bound",
            queue_p99_us as f64 / 1000.0,
            LAG_BOUND.as_millis()
        ));
    }
    // Saturated by the signs above with the handshakes under their own bound but a large part
    // of the load (a storm of 5,000 wss connects on one lane: lag p99 620 ms, handshakes 44 %):
    // name them as a cause, so the person reading sees what to change (fewer users per lane,
    // resumption, more shards).
    if !reasons.is_empty() && !tls_load.saturated() && tls_load.peak_share >= HANDSHAKE_CAUSE_SHARE {
        reasons.push(format!(
            "the harness's own TLS handshakes took {:.0} % of its cores in the busiest second: a cause of the above",
            tls_load.peak_share * 100.0
        ));
    }
    GeneratorHealth {
        generator_queue_p99_us: queue_p99_us,
        generator_queue_timeouts: queue_timeouts,
        fd_limit: out.fd_limit,
        fd_peak: out.fd_peak,
        scheduler_lag_p99_us: out.lag.p99_us,
        scheduler_lag_max_us: out.lag.max_us,
        scheduler_lag_bound_us: LAG_BOUND.as_micros() as u64,
        late_starts: out.late_starts,
        resource_failures,
        peak_rss_bytes: out.peak_rss,
        rss_per_user_bytes: out.peak_rss.checked_div(out.peak_connected).unwrap_or(0),
        cpu_seconds: out.cpu_seconds,
        tls_handshake_cpu_seconds: tls_load.cpu_seconds,
        tls_handshake_cpu_peak_share: tls_load.peak_share,
        saturated: !reasons.is_empty(),
        reasons,
    }
}

/// The observed value of a threshold's metric, in the metric's unit.
pub fn observe(metric: Metric, summary: &RunSummary) -> Option<f64> {
    match metric {
        Metric::Latency(h, stat) => {
            // The histogram published under the threshold's name; a summary written before
            // `connect` was published has only its parts, which add up to the same.
            let hist = match summary.metrics.histograms.get(h.name()) {
                Some(published) => published.decode().ok()?,
                None => summary.metrics.combined(&h.parts()).ok()?.0,
            };
            if hist.is_empty() {
                return None;
            }
            Some(match stat {
                Stat::Mean => hist.mean(),
                Stat::Max => hist.max() as f64,
                s => hist.value_at_percentile(s.percentile().unwrap_or(100.0)) as f64,
            })
        }
        Metric::Derived(f) => Some(match f {
            Derived::ErrorsRate if summary.errors.operations == 0 => return None,
            Derived::ErrorsRate => summary.errors.rate_percent / 100.0,
            Derived::ErrorsCount => summary.errors.total as f64,
            Derived::ConformanceFailed => conformance_failed(summary) as f64,
            Derived::ConnectsRate => peak_connect_rate(&summary.metrics),
        }),
        Metric::Counter(c) => Some(summary.metrics.counters.get(c.name()).copied().unwrap_or(0) as f64),
    }
}

fn conformance_failed(summary: &RunSummary) -> u64 {
    summary.conformance.as_ref().map_or(0, ConformanceSection::failing)
}

fn peak_connect_rate(m: &MetricsSnapshot) -> f64 {
    m.series
        .get("connect.ws")
        .map(|s| s.iter().map(|p| p.count).max().unwrap_or(0) as f64)
        .unwrap_or(0.0)
}

/// Evaluates one threshold. A threshold whose metric had no samples (a latency never measured,
/// an error rate of no operations) is "no data": not passed, whatever its condition, because a
/// gate that nothing was measured against has not been passed.
pub fn evaluate(t: &Threshold, summary: &RunSummary) -> ThresholdResult {
    let observed = observe(t.metric, summary);
    ThresholdResult {
        metric: t.key.clone(),
        condition: t.text.clone(),
        observed,
        observed_text: observed.map_or_else(|| "no data".to_owned(), |v| format_value(t.metric.unit(), v)),
        passed: observed.is_some_and(|v| t.passes(v)),
        no_data: observed.is_none(),
        aborted_run: false,
    }
}

/// `; connect failures by kind: http_200: 10, ...` (or by code when the target answered with
/// API errors), so that a target that never let anyone in is reported with its cause.
pub(crate) fn kinds_clause(e: &ErrorFigures) -> String {
    let list = |m: &BTreeMap<String, u64>| {
        m.iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out = String::new();
    if !e.by_kind.is_empty() {
        out.push_str("; connect failures by kind: ");
        out.push_str(&list(&e.by_kind));
    }
    if !e.by_code.is_empty() {
        out.push_str("; failures by code: ");
        out.push_str(&list(&e.by_code));
    }
    out
}

/// Sets the verdict from the implicit checks, thresholds, conformance, generator health and
/// how the run stopped (the checks are recomputed first, so a merge of shards decides exactly
/// as one process would).
pub fn decide(summary: &mut RunSummary) {
    let mut outcome = Outcome::Passed;
    let mut reasons = Vec::new();
    let checks = super::checks::evaluate(summary);
    for (c, o) in &checks {
        let Some(o) = o else { continue };
        outcome = outcome.worst(*o);
        reasons.push(match c.name.as_str() {
            "users_connected" if *o == Outcome::Unreachable => {
                format!(
                    "none of the {} users due to connect ever connected{}",
                    summary.run.users_due,
                    kinds_clause(&summary.errors)
                )
            }
            "target_reachable" => c.observed.clone(),
            _ => format!("check {} failed: {} (expected: {})", c.name, c.observed, c.expected),
        });
    }
    summary.checks = checks.into_iter().map(|(c, _)| c).collect();
    for t in summary.thresholds.iter().filter(|t| !t.passed) {
        outcome = outcome.worst(Outcome::ThresholdBreached);
        reasons.push(if t.no_data {
            format!(
                "threshold {} {} has no data: nothing was measured against it",
                t.metric, t.condition
            )
        } else {
            format!(
                "threshold {} {} breached (observed {})",
                t.metric, t.condition, t.observed_text
            )
        });
    }
    if conformance_failed(summary) > 0 {
        outcome = outcome.worst(Outcome::ConformanceFailed);
        reasons.push(format!(
            "{} strict conformance rules failed",
            conformance_failed(summary)
        ));
    }
    if summary.generator.saturated {
        outcome = outcome.worst(Outcome::GeneratorSaturated);
        reasons.extend(summary.generator.reasons.iter().map(|r| format!("invalid run: {r}")));
    }
    if let Some(r) = &summary.run.stop_reason {
        if r.starts_with("interrupted") {
            outcome = outcome.worst(Outcome::Unreachable);
        } else if summary.thresholds.iter().any(|t| t.aborted_run) {
            // The breach stopped the run: it fails even if the final figure recovered.
            outcome = outcome.worst(Outcome::ThresholdBreached);
        }
        reasons.push(format!("stopped early: {r}"));
    }
    // With the users_connected check turned off, a run where nobody connected still fails.
    let started = summary.run.users_started;
    let connects = summary.metrics.counters.get("connects").copied().unwrap_or(0);
    if summary.check_settings.users_connected.is_none() && started > 0 && connects == 0 {
        outcome = outcome.worst(Outcome::Unreachable);
        reasons.push(format!(
            "none of the {started} users ever connected{}",
            kinds_clause(&summary.errors)
        ));
    }
    summary.verdict = Verdict {
        outcome: outcome.verdict().to_owned(),
        exit_code: outcome.code(),
        reasons,
    };
}

/// Re-evaluates thresholds written in a summary (after a merge of shards), from their key and
/// condition text; a threshold that no longer parses is reported failed with the reason.
pub fn reevaluate_thresholds(summary: &mut RunSummary) {
    let old = std::mem::take(&mut summary.thresholds);
    summary.thresholds = old
        .into_iter()
        .map(|t| {
            let parsed = crate::scenario::threshold::parse_metric(&t.metric).and_then(|metric| {
                crate::scenario::threshold::parse_condition(metric, &t.condition).map(|(op, bound)| (metric, op, bound))
            });
            match parsed {
                Ok((metric, op, bound)) => {
                    let th = Threshold {
                        key: t.metric.clone(),
                        metric,
                        op,
                        bound,
                        text: t.condition.clone(),
                        abort: false,
                        abort_after: None,
                    };
                    ThresholdResult {
                        aborted_run: t.aborted_run,
                        ..evaluate(&th, summary)
                    }
                }
                Err(e) => ThresholdResult {
                    passed: false,
                    observed_text: format!("cannot evaluate: {e}"),
                    ..t
                },
            }
        })
        .collect();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::tls_load::HandshakeLoad;

    /// A finished 10-second run of 100 users, healthy in every other respect.
    fn output(tls_load: Option<HandshakeLoad>) -> RunOutput {
        RunOutput {
            metrics: crate::metrics::MetricsSnapshot::default(),
            target_description: "https://127.0.0.1:1".into(),
            target_is_mock: true,
            users_planned: 100,
            users_started: 100,
            users_due: 100,
            target_health: Default::default(),
            state: None,
            planned: std::time::Duration::from_secs(10),
            elapsed: std::time::Duration::from_secs(10),
            started_at: std::time::SystemTime::UNIX_EPOCH,
            stop_reason: None,
            marks: Vec::new(),
            lag: crate::engine::lag::LagReport::default(),
            tls_load,
            late_starts: 0,
            fd_limit: 20_000,
            fd_peak: 200,
            peak_rss: 10 << 20,
            peak_connected: 100,
            cpu_seconds: 3.0,
            aborted_by: None,
            conformance: None,
            tls: None,
            dns: Vec::new(),
        }
    }

    /// Issue 13: a harness whose own handshakes filled its cores says the run is invalid, even
    /// with its scheduler on time; under the bound the figures are shown and the run is valid.
    #[test]
    fn a_harness_saturated_by_its_own_handshakes_is_an_invalid_run() {
        let busy = HandshakeLoad {
            cpu_seconds: 2.5,
            peak_share: 0.8,
        };
        let g = generator_health(&output(Some(busy)));
        assert!(g.saturated, "{g:?}");
        assert!(
            g.reasons.iter().any(|r| r.contains("TLS handshakes took 80 %")),
            "{:?}",
            g.reasons
        );
        assert_eq!(
            (g.tls_handshake_cpu_seconds, g.tls_handshake_cpu_peak_share),
            (2.5, 0.8)
        );

        let calm = HandshakeLoad {
            cpu_seconds: 0.3,
            peak_share: 0.2,
        };
        let g = generator_health(&output(Some(calm)));
        assert!(!g.saturated, "{g:?}");
        assert_eq!(g.tls_handshake_cpu_seconds, 0.3);
        assert!(!generator_health(&output(None)).saturated);

        // Late by the scheduler, with handshakes a large part of it: named as a cause.
        let mut late = output(Some(HandshakeLoad {
            cpu_seconds: 2.0,
            peak_share: 0.44,
        }));
        late.lag.p99_us = 620_000;
        let g = generator_health(&late);
        assert!(g.saturated);
        assert!(
            g.reasons
                .iter()
                .any(|r| r.contains("TLS handshakes took 44 %") && r.contains("a cause")),
            "{:?}",
            g.reasons
        );
    }
}
