//! Running the suite: selects rules by glob, runs their cases concurrently (each with its own
//! users, ids and wire log, under a per-case timeout) and collects verdicts in table order.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::Semaphore;

use super::client::Http;
use super::ctx::{CaseCtx, CaseError};
use super::{ConformanceReport, Evidence, Rule, RuleResult, Strictness, SuiteOptions, Verdict, rules};
use crate::target::Target;

/// Whether `id` matches `pattern`, where `*` matches any run and `?` one character
/// (case-insensitive, as rule ids are upper case and people type lower case).
pub fn glob_match(pattern: &str, id: &str) -> bool {
    let p: Vec<char> = pattern.to_ascii_uppercase().chars().collect();
    let s: Vec<char> = id.to_ascii_uppercase().chars().collect();
    let (mut pi, mut si) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while si < s.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = si;
            pi += 1;
        } else if let Some(st) = star {
            pi = st + 1;
            mark += 1;
            si = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// The globs of `only` that select no rule (the CLI reports them as a usage error).
pub fn unmatched_globs(only: &[String]) -> Vec<String> {
    only.iter()
        .filter(|g| !rules().iter().any(|r| glob_match(g, r.id)))
        .cloned()
        .collect()
}

/// Runs the selected rules against `target`.
pub async fn run_suite(target: &Target, opts: &SuiteOptions) -> ConformanceReport {
    let started = Instant::now();
    let selected: Vec<&'static Rule> = rules()
        .iter()
        .filter(|r| opts.only.is_empty() || opts.only.iter().any(|g| glob_match(g, r.id)))
        .collect();
    let http = Http::with_tls(target.tls.clone());
    let run_tag = run_tag();
    let sem = Arc::new(Semaphore::new(opts.concurrency.max(1)));
    let mut tasks = Vec::with_capacity(selected.len());
    for rule in selected {
        let (target, http, run_tag, opts, sem) = (
            target.clone(),
            http.clone(),
            run_tag.clone(),
            opts.clone(),
            Arc::clone(&sem),
        );
        let task = tokio::spawn(async move {
            let _permit = sem.acquire_owned().await.ok();
            run_one(rule, target, http, &run_tag, &opts).await
        });
        tasks.push((rule, task));
    }
    let mut results = Vec::with_capacity(tasks.len());
    for (rule, t) in tasks {
        match t.await {
            Ok(r) => results.push(r),
            // A case panicking is a harness bug; it must not take the report down with it.
            Err(e) => results.push(RuleResult::harness_error(rule, &format!("the case task failed: {e}"))),
        }
    }
    ConformanceReport::new(target_label(target), opts.strict, started.elapsed(), results)
}

/// Runs one rule by id (used by the violation tests and `--only` with one id).
pub async fn run_rule(target: &Target, id: &str, opts: &SuiteOptions) -> Option<RuleResult> {
    let rule = rules().iter().find(|r| r.id == id)?;
    Some(
        run_one(
            rule,
            target.clone(),
            Http::with_tls(target.tls.clone()),
            &run_tag(),
            opts,
        )
        .await,
    )
}

async fn run_one(rule: &'static Rule, target: Target, http: Http, run_tag: &str, opts: &SuiteOptions) -> RuleResult {
    let ctx = Arc::new(CaseCtx::new(
        target,
        http,
        run_tag,
        rule.id,
        opts.health_interval,
        opts.rate_probe,
    ));
    let started = Instant::now();
    let outcome = match tokio::time::timeout(opts.timeout_per_case, (rule.case)(Arc::clone(&ctx))).await {
        Ok(r) => r,
        Err(_) => Err(CaseError::Fail {
            expected: format!("the case completes within {:?}", opts.timeout_per_case),
            received: "timed out".to_owned(),
            user: None,
        }),
    };
    let (verdict, evidence) = match outcome {
        Ok(()) => (Verdict::Passed, None),
        Err(CaseError::Skip(reason)) => (Verdict::Skipped { reason }, None),
        Err(CaseError::Fail {
            expected,
            received,
            user,
        }) => {
            let v = match rule.strictness {
                Strictness::Strict => Verdict::Failed,
                Strictness::NonStrict => Verdict::NonStrictFailure,
            };
            let evidence = Evidence {
                expected,
                received,
                user,
                wire_log: ctx.log.snapshot(),
            };
            (v, Some(evidence))
        }
    };
    RuleResult {
        id: rule.id,
        area: rule.area,
        section: rule.section,
        requirement: rule.requirement,
        strictness: rule.strictness,
        verdict,
        evidence,
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    }
}

/// Six hex digits making this run's user and channel ids unique on a shared target.
fn run_tag() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..6].to_owned()
}

fn target_label(t: &Target) -> String {
    t.http_base.as_str().trim_end_matches('/').to_owned()
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn globs() {
        assert!(glob_match("AUTH-*", "AUTH-EXPIRED-40"));
        assert!(glob_match("auth-*", "AUTH-EXPIRED-40"));
        assert!(glob_match("*-40", "AUTH-EXPIRED-40"));
        assert!(glob_match("AUTH-EXPIRED-4?", "AUTH-EXPIRED-40"));
        assert!(glob_match("*", "X"));
        assert!(!glob_match("AUTH-*", "CONN-ME"));
        assert!(!glob_match("AUTH", "AUTH-EXPIRED-40"));
        assert!(glob_match("A*E*0", "AUTH-EXPIRED-40"));
        assert_eq!(
            super::unmatched_globs(&["AUTH-*".into(), "NOPE-*".into()]),
            vec!["NOPE-*".to_owned()]
        );
    }
}
