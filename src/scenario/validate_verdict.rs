//! Validation of what decides a run's verdict: `thresholds` and `conformance`.

use super::de::Sp;
use super::model::Conformance;
use super::raw::*;
use super::threshold::{self, Threshold};
use super::validate::{Check, value};
use super::{suggest, tree::shorten};

pub(crate) fn thresholds(
    check: &mut Check<'_>,
    raw: Option<&Sp<RawMap<RawThreshold>>>,
) -> Vec<Threshold> {
    let Some(sp) = raw else {
        return Vec::new();
    };
    let mut out: Vec<Threshold> = Vec::new();
    for (key, cond) in &sp.value.0 {
        let metric = match threshold::parse_metric(key.value.trim()) {
            Ok(m) => Some(m),
            Err(e) => {
                check.report(&key.at, e);
                None
            }
        };
        let (text, text_at, abort, after) = match &cond.value {
            RawThreshold::Short(t) => (Some(t.clone()), cond.at.clone(), false, None),
            RawThreshold::Full(full) => {
                let abort = value(&full.abort).unwrap_or(false);
                let after = full.after.as_ref().and_then(|a| {
                    if !abort {
                        check.report(&a.at, "`after` only matters with `abort: true`");
                    }
                    check.duration(a)
                });
                match &full.limit {
                    Some(l) => (Some(l.value.clone()), l.at.clone(), abort, after),
                    None => {
                        check.missing(&cond.at, "limit", "\"< 500ms\"");
                        (None, cond.at.clone(), abort, after)
                    }
                }
            }
        };
        let (Some(metric), Some(text)) = (metric, text) else {
            continue;
        };
        match threshold::parse_condition(metric, &text) {
            Ok((op, bound)) => out.push(Threshold {
                key: key.value.trim().to_owned(),
                metric,
                op,
                bound,
                text: text.trim().to_owned(),
                abort,
                abort_after: after,
            }),
            Err(e) => check.report(&text_at, e),
        }
    }
    out
}

/// The protocol areas of PRODUCT.md; a rule id is `<AREA>-<n>`.
const RULE_AREAS: [&str; 12] = [
    "CONN",
    "AUTH",
    "USER",
    "HEALTH",
    "RECONNECT",
    "LONGPOLL",
    "PRIVACY",
    "TYPING",
    "READ",
    "DISCONNECT",
    "ERROR",
    "RATE",
];

pub(crate) fn conformance(check: &mut Check<'_>, raw: Option<&Sp<RawConformance>>) -> Conformance {
    let Some(sp) = raw else {
        return Conformance::default();
    };
    let strict = value(&sp.value.strict).unwrap_or(false);
    let Some(watch) = &sp.value.watch else {
        return Conformance {
            strict,
            ..Conformance::default()
        };
    };
    if watch.value.is_empty() {
        check.report(
            &watch.at,
            "an empty list watches no rule; leave `watch` out to watch them all",
        );
    }
    let mut globs = Vec::new();
    for glob in &watch.value {
        let g = glob.value.trim();
        let chars_ok = !g.is_empty()
            && g.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '*' | '?' | '-' | '_' | '.'));
        let area = g.split('-').next().unwrap_or("");
        let area_ok = area.contains(['*', '?']) || RULE_AREAS.contains(&area);
        if !chars_ok {
            check.report(
                &glob.at,
                "a rule glob is made of letters, digits, -, _, . and the wildcards * and ?, e.g. `CONN-*`",
            );
        } else if !area_ok {
            check.report(
                &glob.at,
                format!(
                    "unknown rule area `{}`; {}",
                    shorten(area),
                    suggest::hint(&area.to_ascii_uppercase(), &RULE_AREAS)
                ),
            );
        } else {
            globs.push(g.to_owned());
        }
    }
    Conformance {
        watch: globs,
        strict,
    }
}
